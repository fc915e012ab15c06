<?php
// A Temporal worker for tests (tests/php/lib/Temporal.php): task queues `default` and `orders`.
// Activities on `default`: echo (upper-cases its argument), fail (throws), async (completes
// later: doNotCompleteOnReturn), env (the worker's RR_MODE/RR_CODEC and what it was invoked with),
// sum (adds its arguments). Workflow SimpleWorkflow completes at once with its argument
// upper-cased and the rr_id it ran under; FailingWorkflow fails.
require __DIR__ . '/../lib/Temporal.php';

use RrTest\Temporal\DoNotComplete;
use RrTest\Temporal\Factory;

$factory = Factory::create();
$factory->newWorker('default', ['MaxConcurrentActivityExecutionSize' => 4])
    ->workflow('SimpleWorkflow', signals: ['add'], queries: ['get'], run: fn(array $info, string $rrId, string $s) => [
        'result' => strtoupper($s),
        'rr_id' => $rrId,
        'workflow_id' => $info['WorkflowExecution']['ID'] ?? '',
    ])
    ->workflow('FailingWorkflow', run: fn(array $info, string $rrId) => throw new \RuntimeException('workflow failed on purpose'))
    ->activity('echo', fn(array $info, string $s) => strtoupper($s))
    ->activity('fail', fn(array $info) => throw new \DomainException('failed on purpose'))
    ->activity('async', fn(array $info) => throw new DoNotComplete())
    ->activity('env', fn(array $info) => [
        'RR_MODE' => getenv('RR_MODE'),
        'RR_CODEC' => getenv('RR_CODEC'),
        'pid' => getmypid(),
        'activity' => $info['ActivityType']['Name'] ?? '',
        'token' => $info['TaskToken'] ?? '',
        'local' => $info['IsLocalActivity'] ?? null,
    ])
    ->activity('sum', fn(array $info, int ...$n) => array_sum($n));
$factory->newWorker('orders')->workflow('OrderWorkflow')->activity('charge', fn(array $info, int $cents) => "charged $cents");
$factory->run();
