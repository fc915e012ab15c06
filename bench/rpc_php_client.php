<?php
// One PHP RPC client calling rpc.Version over RR_RPC for argv[1] seconds; prints the call count.
// Used by plugins/rpc/examples/rpc_bench.rs to measure what a PHP application sees.
require __DIR__ . '/../tests/php/lib/Rpc.php';

$rpc = RrTest\Rpc::fromEnv();
$deadline = microtime(true) + (float) $argv[1];
$calls = 0;
while (microtime(true) < $deadline) {
    $rpc->call('rpc.Version', true);
    $calls++;
}
echo $calls, "\n";
