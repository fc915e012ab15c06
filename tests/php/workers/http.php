<?php
// An HTTP test app: routes on the request path. See plugins/http/tests for what each route proves.
require __DIR__ . '/../lib/Http.php';

use RrTest\HttpWorker;

$http = HttpWorker::create();
while (($req = $http->waitRequest()) !== null) {
    $path = parse_url($req['uri'], PHP_URL_PATH);
    parse_str($req['rawQuery'], $query);
    switch ($path) {
        case '/echo':
            $uploads = $req['uploads'] ?? [];
            array_walk_recursive($uploads, function (&$v, $k) {
                // Prove the temp file exists while PHP handles the request.
                if ($k === 'tmpName' && $v !== '') {
                    $v = ['path' => $v, 'content' => file_get_contents($v)];
                }
            });
            $req['uploads'] = $uploads;
            $req['pid'] = getmypid();
            $req['mode'] = $http->json ? 'json' : 'proto';
            $http->respond(200, json_encode($req, JSON_INVALID_UTF8_SUBSTITUTE | JSON_THROW_ON_ERROR), ['Content-Type' => 'application/json']);
            break;
        case '/status':
            $http->respond((int)$query['code'], 'status ' . $query['code']);
            break;
        case '/error':
            $http->worker->error('app failed: ' . ($query['msg'] ?? 'boom'));
            break;
        case '/crash':
            exit(1);
        case '/sleep':
            usleep((int)$query['ms'] * 1000);
            $http->respond(200, 'slept');
            break;
        case '/big':
            $http->respond(200, str_repeat("compressible text ", 1000), ['Content-Type' => 'text/plain']);
            break;
        case '/sendfile':
            $http->respond(200, 'php body (replaced)', ['X-Sendfile' => $query['path']]);
            break;
        case '/orphan':
            // Leave a background process behind (zombie-reaping test of rr as PID 1).
            exec("sh -c 'sleep 0.3' > /dev/null 2>&1 &");
            $http->respond(200, 'orphaned');
            break;
        case '/wrong-length':
            // A misbehaving app: a Content-Length that is not its body's (tests/hostile.rs).
            $http->respond(200, $query['body'] ?? '', ['Content-Length' => $query['declared'] ?? '0']);
            break;
        case '/wrong-length-stream':
            $http->respond(200, $query['body'] ?? '', ['Content-Length' => $query['declared'] ?? '0'], false);
            $http->respond(200, $query['more'] ?? '');
            break;
        case '/pid':
            $http->respond(200, (string)getmypid());
            break;
        case '/multi':
            $http->respond(200, 'multi', ['Set-Cookie' => ['a=1', 'b=2'], 'X-Multi' => ['x', 'y']]);
            break;
        case '/trailer':
            $http->respond(200, 'body with trailer', ['Trailer' => 'X-Checksum', 'X-Checksum' => 'abc123']);
            break;
        case '/hints':
            $http->respond(103, '', ['Link' => '</style.css>; rel=preload'], false);
            $http->respond(103, '', ['Link' => '</app.js>; rel=preload'], false);
            usleep(1000 * (int)($query['ms'] ?? 0));   // the app's real work, after the hints
            $http->respond(200, 'after hints', ['Content-Type' => 'text/plain']);
            break;
        case '/stream':
            $n = (int)($query['n'] ?? 5);
            $delay = (int)($query['ms'] ?? 10) * 1000;
            for ($i = 0; $i < $n; $i++) {
                if ($http->worker->streamStopped()) {
                    $http->worker->respond(new RrTest\Payload(''), 0, true);
                    break 2;
                }
                $http->respond(200, "chunk$i\n", ['Content-Type' => 'text/plain'], false);
                usleep($delay);
            }
            $http->respond(200, "done\n", ['Content-Type' => 'text/plain']);
            break;
        default:
            $http->respond(200, 'Hello, World!', ['Content-Type' => 'text/plain']);
    }
}
