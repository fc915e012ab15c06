<?php
// Calls centrifuge.* RPC methods as roadrunner-php/centrifugo's RPCCentrifugoApi does (goridge
// RPC, ProtobufCodec). argv[1]: JSON list of [method, base64 request message, codec?] (codec
// "json" sends the body with the JSON flag instead). Prints one JSON line per call:
// {"ok": base64 reply} or {"error": text}.
require __DIR__ . '/lib/Rpc.php';

use RrTest\Frame;

$rpc = RrTest\Rpc::fromEnv();
foreach (json_decode($argv[1], true) as $call) {
    [$method, $body] = $call;
    $codec = ($call[2] ?? '') === 'json' ? Frame::CODEC_JSON : Frame::CODEC_PROTO;
    try {
        echo json_encode(['ok' => base64_encode($rpc->callRaw($method, base64_decode($body), $codec))]), "\n";
    } catch (RrTest\RpcException $e) {
        echo json_encode(['error' => $e->getMessage()]), "\n";
    }
}
