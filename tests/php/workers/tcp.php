<?php
// A tcp test app. CONNECTED: server "greet" says hello, others read on. DATA lines (delimiter
// kept in the body) drive it:
//   "quit"  -> WRITECLOSE "bye"          "close"  -> CLOSE            "word:<w>" -> reply word <w>
//   "ctx"   -> WRITE the event as JSON    "sleep:<ms>" -> sleep, WRITE "slept"
//   "error" -> error frame               "crash"  -> exit mid-event   "stream" -> a STREAM reply
//   "pid"   -> WRITE this worker's pid   "big:<n>" -> WRITE n bytes   anything else -> WRITE it back (echo)
// CLOSE is answered with CLOSE. With TCP_LOG set, every event is appended there as a JSON line.
require __DIR__ . '/../lib/Tcp.php';

use RrTest\{Payload, TcpWorker};

$tcp = TcpWorker::create();
$log = getenv('TCP_LOG') ?: null;
while (($req = $tcp->waitRequest()) !== null) {
    if ($log !== null) {
        file_put_contents($log, json_encode($req + ['pid' => getmypid()]) . "\n", FILE_APPEND | LOCK_EX);
    }
    if ($req['event'] === 'CONNECTED') {
        $req['server'] === 'greet' ? $tcp->respond("hello {$req['uuid']}\n") : $tcp->respond('', TcpWorker::CONTINUE);
        continue;
    }
    if ($req['event'] !== 'DATA') {
        $tcp->respond('', TcpWorker::CLOSE);
        continue;
    }
    [$cmd, $arg] = array_pad(explode(':', rtrim($req['body'], "\r\n"), 2), 2, '');
    switch ($cmd) {
        case 'quit':
            $tcp->respond("bye\n", TcpWorker::WRITECLOSE);
            break;
        case 'close':
            $tcp->respond('ignored', TcpWorker::CLOSE);
            break;
        case 'word':
            $tcp->respond("after $arg\n", $arg);
            break;
        case 'ctx':
            $tcp->respond(json_encode($req) . "\n");
            break;
        case 'sleep':
            usleep((int)$arg * 1000);
            $tcp->respond("slept\n");
            break;
        case 'error':
            $tcp->worker->error('app failed');
            break;
        case 'crash':
            exit(3);
        case 'stream':
            $tcp->worker->respond(new Payload('chunk', TcpWorker::WRITE), 0, false);
            $tcp->worker->respond(new Payload('end', TcpWorker::WRITE));
            break;
        case 'big':
            ini_set('memory_limit', '-1');
            $tcp->respond(str_repeat('x', (int)$arg));
            break;
        case 'pid':
            $tcp->respond(getmypid() . "\n");
            break;
        default:
            $tcp->respond($req['body']);
    }
}
