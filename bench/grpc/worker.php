<?php
// The same PHP work for the gRPC benchmark's three paths: read the call, upper-case the message,
// answer. RR_MODE=grpc (and the bare relay): a `service.Message`; RR_MODE=http: the body.
require __DIR__ . '/../../tests/php/lib/Grpc.php';
require __DIR__ . '/../../tests/php/lib/Http.php';

use RrTest\{Grpc, HttpWorker};

if (getenv('RR_MODE') === 'http') {
    $http = HttpWorker::create();
    while (($req = $http->waitRequest()) !== null) {
        $http->respond(200, strtoupper($req['body'] ?? ''));
    }
} else {
    Grpc::create()->serve(function (array $call, string $body, Grpc $g): void {
        $g->reply(Grpc::message(strtoupper(Grpc::messageText($body))));
    });
}
