<?php
// Runs KV calls from argv[1]: a JSON list of [method, storage, items] (items: [key, value,
// timeout]); prints one JSON line per call: {"ok": items} or {"error": text}.
require __DIR__ . '/lib/Kv.php';

$rpc = RrTest\Rpc::fromEnv();
foreach (json_decode($argv[1], true) as [$method, $storage, $items]) {
    try {
        echo json_encode(['ok' => (new RrTest\Kv($rpc, $storage))->call($method, $items)]), "\n";
    } catch (RrTest\RpcException $e) {
        echo json_encode(['error' => $e->getMessage()]), "\n";
    }
}
