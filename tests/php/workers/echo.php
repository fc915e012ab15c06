<?php
// Echoes every request: same context, same body, codec RAW. Special bodies drive test behaviour:
//   "error:<text>"   -> error frame            "crash"        -> exit mid-request
//   "sleep:<ms>"     -> sleep then echo         "leak:<MB>"    -> keep MB allocated, echo
//   "stop"           -> ask to be replaced      "stream:<n>"   -> n chunks then a final frame
//   "pid"            -> answers its pid         "stderr:<txt>" -> writes txt to stderr, echoes
//   "garbage"        -> writes text to stdout (breaks the pipes relay)
//   "orphan:<secs>"  -> leave a background process behind that lives <secs> (zombie-reaping tests)
//   "stopat:<n>"     -> ask to be replaced if this worker already served n requests, else echo
//   "afterstop:<f>"  -> echo, then ask to be replaced; the next request (which the server may have
//                       sent before it read the stop) is answered 100 ms later, and <f> records
//                       "answered" once that answer was written, then "exited" when the server stops us
require __DIR__ . '/../lib/Goridge.php';

use RrTest\{Payload, Worker};

$worker = Worker::create();
$leak = [];
$served = 0;
$afterStop = null;
while (($p = $worker->waitPayload()) !== null) {
    $served++;
    if ($afterStop !== null) {
        usleep(100000);
        $worker->respond(new Payload($p->body, $p->header));
        file_put_contents($afterStop, "answered\n", FILE_APPEND);
        continue;
    }
    $body = $p->body;
    [$cmd, $arg] = array_pad(explode(':', $body, 2), 2, '');
    switch ($cmd) {
        case 'error':
            $worker->error($arg);
            break;
        case 'crash':
            exit(3);
        case 'sleep':
            usleep((int)$arg * 1000);
            $worker->respond(new Payload($body, $p->header));
            break;
        case 'leak':
            $leak[] = str_repeat('x', (int)$arg * 1024 * 1024);
            $worker->respond(new Payload($body, $p->header));
            break;
        case 'stop':
            $worker->stop();
            break;
        case 'stopat':
            if ($served - 1 === (int)$arg) {
                $worker->stop();
            } else {
                $worker->respond(new Payload($body, $p->header));
            }
            break;
        case 'afterstop':
            $worker->respond(new Payload($body, $p->header));
            $worker->stop();
            $afterStop = $arg;
            register_shutdown_function(fn() => file_put_contents($arg, "exited\n", FILE_APPEND));
            break;
        case 'orphan':
            exec(sprintf("sh -c 'sleep %s' > /dev/null 2>&1 &", escapeshellarg($arg)));
            $worker->respond(new Payload($body, $p->header));
            break;
        case 'pid':
            $worker->respond(new Payload((string)getmypid(), $p->header));
            break;
        case 'stderr':
            fwrite(STDERR, $arg . "\n");
            $worker->respond(new Payload($body, $p->header));
            break;
        case 'garbage':
            echo "this is not a frame, it is php echo output\n";
            break;
        case 'stream':
            $n = (int)$arg;
            for ($i = 0; $i < $n; $i++) {
                if ($worker->streamStopped()) {
                    $worker->respond(new Payload(''), 0, true);
                    break 2;
                }
                $worker->respond(new Payload("chunk$i", $p->header), 0, false);
                usleep(20000);
            }
            $worker->respond(new Payload('end', $p->header));
            break;
        default:
            $worker->respond(new Payload($body, $p->header));
    }
}
