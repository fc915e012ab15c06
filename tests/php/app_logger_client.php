<?php
// Runs logger calls from argv[1], a JSON list of [level, message, context]; prints one JSON line
// per call: {"ok": reply} (a WithContext reply hex-encoded) or {"error": text}.
require __DIR__ . '/lib/AppLogger.php';

$logger = new RrTest\AppLogger(RrTest\Rpc::fromEnv());
foreach (json_decode($argv[1], true) as [$level, $message, $context]) {
    try {
        $reply = $logger->$level($message, $context);
        echo json_encode(['ok' => $context === [] ? $reply : bin2hex($reply)]), "\n";
    } catch (RrTest\RpcException $e) {
        echo json_encode(['error' => $e->getMessage()]), "\n";
    }
}
