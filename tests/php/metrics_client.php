<?php
// Declares and feeds application collectors over RPC like spiral/roadrunner-metrics does
// (JSON codec, metrics.* methods); prints one JSON line per call.
require __DIR__ . '/lib/Rpc.php';

$rpc = RrTest\Rpc::fromEnv();
$calls = [
    ['metrics.Declare', ['name' => 'orders_total', 'collector' => ['namespace' => 'app', 'subsystem' => '', 'type' => 'counter', 'help' => 'Orders', 'labels' => ['shop'], 'buckets' => []]]],
    ['metrics.Declare', ['name' => 'queue_depth', 'collector' => ['namespace' => '', 'subsystem' => '', 'type' => 'gauge', 'help' => 'Depth', 'labels' => [], 'buckets' => []]]],
    ['metrics.Declare', ['name' => 'latency', 'collector' => ['namespace' => '', 'subsystem' => '', 'type' => 'histogram', 'help' => 'Latency', 'labels' => [], 'buckets' => [0.1, 1.0]]]],
    ['metrics.Add', ['name' => 'orders_total', 'value' => 3, 'labels' => ['eu']]],
    ['metrics.Add', ['name' => 'orders_total', 'value' => 2, 'labels' => ['eu']]],
    ['metrics.Set', ['name' => 'queue_depth', 'value' => 10, 'labels' => []]],
    ['metrics.Sub', ['name' => 'queue_depth', 'value' => 4, 'labels' => []]],
    ['metrics.Observe', ['name' => 'latency', 'value' => 0.5, 'labels' => []]],
    ['metrics.Add', ['name' => 'missing', 'value' => 1, 'labels' => []]],
    ['metrics.Sub', ['name' => 'orders_total', 'value' => 1, 'labels' => ['eu']]],
    ['metrics.Add', ['name' => 'orders_total', 'value' => 1, 'labels' => []]],
    ['metrics.Declare', ['name' => 'orders_total', 'collector' => ['type' => 'counter']]],
    ['metrics.Unregister', 'nope'],
];
foreach ($calls as [$method, $arg]) {
    try {
        echo json_encode(['ok' => $rpc->call($method, $arg)]), "\n";
    } catch (RrTest\RpcException $e) {
        echo json_encode(['error' => $e->getMessage()]), "\n";
    }
}
