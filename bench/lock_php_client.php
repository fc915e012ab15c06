<?php
// One PHP client taking and releasing the write lock on argv[2] for argv[1] seconds through
// our lock client (roadrunner-php/lock's calls); prints the number of lock/release pairs.
// Used by plugins/lock/examples/lock_bench.rs.
require __DIR__ . '/../tests/php/lib/Lock.php';

$lock = new RrTest\Lock(RrTest\Rpc::fromEnv());
$deadline = microtime(true) + (float) $argv[1];
$pairs = 0;
while (microtime(true) < $deadline) {
    $id = $lock->lock($argv[2], null, 10, 10);
    if ($id === false || !$lock->release($argv[2], $id)) {
        fwrite(STDERR, "lock or release failed\n");
        exit(1);
    }
    $pairs++;
}
echo $pairs, "\n";
