<?php
// Runs lock calls from argv[1], a JSON list of [method, ...args] with roadrunner-php/lock's
// arguments (seconds); prints one JSON line per call: {"ok": result} or {"error": text}.
require __DIR__ . '/lib/Lock.php';

$lock = new RrTest\Lock(RrTest\Rpc::fromEnv());
foreach (json_decode($argv[1], true) as [$method, $args]) {
    try {
        echo json_encode(['ok' => $lock->$method(...$args)]), "\n";
    } catch (RrTest\RpcException $e) {
        echo json_encode(['error' => $e->getMessage()]), "\n";
    }
}
