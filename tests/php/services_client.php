<?php
// Runs service manager calls from argv[1], a JSON list of [method, args] with
// spiral/roadrunner-services' arguments; prints one JSON line per call: {"ok": result} or
// {"error": text}.
require __DIR__ . '/lib/Services.php';

$services = new RrTest\Services(RrTest\Rpc::fromEnv());
foreach (json_decode($argv[1], true) as [$method, $args]) {
    try {
        echo json_encode(['ok' => $services->$method(...$args)]), "\n";
    } catch (RrTest\RpcException $e) {
        echo json_encode(['error' => $e->getMessage()]), "\n";
    }
}
