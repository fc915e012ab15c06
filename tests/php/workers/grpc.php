<?php
// The gRPC test worker (RR_MODE=grpc). `service.Echo`'s `msg` drives the behaviour:
//   "ctx"                -> msg = the call's JSON context as received
//   "error:<code>:<text>" -> GRPCException: {"error": base64 Status}, with header x-h and trailer x-t
//   "details"            -> Status 7 "denied" with an ErrorInfo detail
//   "status0"            -> an `error` whose code is 0 (success, empty message)
//   "throw:<text>"       -> a worker error frame (PHP exception)
//   "legacy:<code>:<text>" -> error frame in roadrunner-grpc 2.0.0's `code|:|message` form
//   "headers"            -> headers {"x-id": "42"}, trailers {"x-t": "1"} (roadrunner-grpc >= 3.4)
//   "flat"               -> flat headers {"x-id": "42"} (roadrunner-grpc < 3.4)
//   "badmeta"            -> reply metadata that is not a JSON object of strings
//   "big:<n>"            -> msg of n bytes
//   "sleep:<ms>"         -> sleep, then echo
//   "pid", "env"         -> the worker's pid; RR_MODE and GRPC_TEST_ENV
//   "crash"              -> the worker exits mid-call
//   "stream:<n>"         -> (Stream) n messages "0".."n-1", then a final frame with trailer x-done
//   "streamerr:<n>"      -> (Stream) n messages, then status 9 "stream failed"
//   "endless:<file>"     -> (Stream) a message every 20 ms until the server says stop; then writes
//                           "stopped" to <file>
//   anything else        -> msg upper-cased
require __DIR__ . '/../lib/Grpc.php';

use RrTest\Grpc;

Grpc::create()->serve(function (array $call, string $body, Grpc $g, string $header): void {
    $msg = Grpc::messageText($body);
    [$cmd, $arg] = array_pad(explode(':', $msg, 2), 2, '');
    $one = fn(string $text) => $g->reply(Grpc::message($text));
    switch ($cmd) {
        case 'ctx':
            $one($header);
            return;
        case 'error':
            [$code, $text] = explode(':', $arg, 2);
            $g->reply('', ['x-h' => 'h'], ['x-t' => 't'], Grpc::status((int)$code, $text));
            return;
        case 'details':
            $info = "\x0a\x10PermissionDenied\x12\x03app";
            $g->reply('', [], [], Grpc::status(7, 'denied', [['type.googleapis.com/google.rpc.ErrorInfo', $info]]));
            return;
        case 'status0':
            $g->reply('', [], [], Grpc::status(0, ''));
            return;
        case 'throw':
            $g->worker->error($arg);
            return;
        case 'legacy':
            [$code, $text] = explode(':', $arg, 2);
            $g->worker->error("$code|:|$text");
            return;
        case 'headers':
            $g->reply(Grpc::message('ok'), ['x-id' => '42'], ['x-t' => '1']);
            return;
        case 'flat':
            $g->replyFlat(Grpc::message('ok'), ['x-id' => '42']);
            return;
        case 'badmeta':
            $g->worker->respond(new \RrTest\Payload(Grpc::message('x'), '{"x":1}'));
            return;
        case 'big':
            $one(str_repeat('x', (int)$arg));
            return;
        case 'sleep':
            usleep((int)$arg * 1000);
            $one($msg);
            return;
        case 'pid':
            $one((string)getmypid());
            return;
        case 'crash':
            exit(3);
        case 'env':
            $one(getenv('RR_MODE') . ',' . getenv('GRPC_TEST_ENV'));
            return;
        case 'stream':
        case 'streamerr':
            for ($i = 0; $i < (int)$arg; $i++) {
                $g->reply(Grpc::message((string)$i), $i === 0 ? ['x-first' => 'yes'] : [], [], null, false);
            }
            if ($cmd === 'stream') {
                $g->reply('', [], ['x-done' => 'yes']);
            } else {
                $g->reply('', [], [], Grpc::status(9, 'stream failed'));
            }
            return;
        case 'endless':
            for ($i = 0; ; $i++) {
                if ($g->worker->streamStopped()) {
                    file_put_contents($arg, "stopped\n");
                    $g->reply('');
                    return;
                }
                $g->reply(Grpc::message((string)$i), [], [], null, false);
                usleep(20000);
            }
        default:
            $one(strtoupper($msg));
    }
});
