<?php
// Calls the metrics.* RPC methods as spiral/roadrunner-metrics does (JSON codec): reads a JSON
// list of [method, argument] from stdin, prints one JSON line per call, {"ok":…} or {"error":…}.
require __DIR__ . '/lib/Rpc.php';

$rpc = RrTest\Rpc::fromEnv();
foreach (json_decode(stream_get_contents(STDIN), true, flags: JSON_THROW_ON_ERROR) as [$method, $arg]) {
    try {
        echo json_encode(['ok' => $rpc->call($method, $arg)]), "\n";
    } catch (RrTest\RpcException $e) {
        echo json_encode(['error' => $e->getMessage()]), "\n";
    }
}
