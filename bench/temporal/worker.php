<?php
// The PHP side of bench/temporal.sh (our protocol-level worker, tests/php/lib/Temporal.php):
// on task queue $TEMPORAL_TQ, `OneActivity` runs the no-op activity `noop` once and completes;
// `Activities(n)` runs it n times in a row.
require __DIR__ . '/../../tests/php/lib/Temporal.php';

use RrTest\Temporal\Factory;

$noop = ['ExecuteActivity', ['name' => 'noop', 'options' => ['StartToCloseTimeout' => 10_000_000_000]], ['x']];
$factory = Factory::create();
$factory->newWorker(getenv('TEMPORAL_TQ') ?: 'bench-php')
    ->workflow('OneActivity', run: function (array $info, string $rrId, string $s) use ($noop) {
        return yield $noop;
    })
    ->workflow('Activities', run: function (array $info, string $rrId, int $n) use ($noop) {
        for ($i = 0; $i < $n; $i++) {
            yield $noop;
        }
        return $n;
    })
    ->activity('noop', fn(array $info, string $s) => $s);
$factory->run();
