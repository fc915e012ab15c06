<?php
// Runs RPC calls given as JSON on argv[1] (a list of [method, arg]) against RR_RPC and prints
// one JSON line per call: {"ok": reply} or {"error": text}.
require __DIR__ . '/lib/Rpc.php';

$rpc = RrTest\Rpc::fromEnv();
foreach (json_decode($argv[1], true) as [$method, $arg]) {
    try {
        echo json_encode(['ok' => $rpc->call($method, $arg)]), "\n";
    } catch (RrTest\RpcException $e) {
        echo json_encode(['error' => $e->getMessage()]), "\n";
    }
}
