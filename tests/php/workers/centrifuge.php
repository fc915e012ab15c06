<?php
// The centrifuge proxy test worker (RR_MODE=centrifuge). The request's `client` field (1) picks
// the behaviour (NotifyChannelState: the first event's channel):
//   "error"      -> <X>Response{error{4001, "nope", temporary}}
//   "disconnect" -> <X>Response{disconnect{4500, "bye"}}
//   "throw"      -> a worker error frame "boom"
//   "garbage"    -> a body that is not protobuf
//   "empty"      -> an empty body
//   "stream"     -> a streamed answer (two frames)
//   "hang"       -> never answers
//   "slow"       -> answers (the echo) after a second
//   "crash"      -> exits mid-call
//   anything else -> result whose data (info for refresh / subrefresh; user "42" on connect;
//                    error.message for notifychannelstate "echo") is the JSON echo
//                    {type, headers, context, flags, body (base64), pid, mode}
// NotifyChannelState with any other channel -> result {}.
// Connect, subscribe, publish and rpc whose data is a JSON object with `cmd` use that instead
// (the hub's tests: there `client` is the hub's own id). Connect with `cmd` "expire" expires in
// a second as user "expire-me", whose refresh answers `expired`; connect with "expire-subs" has
// the server-side channel "expired-srv" expiring in 2 s. Subscribe with "expire" expires in 2 s,
// with "expired" 10 s ago. Subrefresh of a channel named "expired..." answers `expired`, of
// "gone..." disconnect{4501, "subrefresh <user> <channel>"}, of others the echo (no expiry).
require __DIR__ . '/../lib/Centrifuge.php';

use RrTest\Centrifuge;
use RrTest\Proto;

$c = Centrifuge::create();
while ($req = $c->waitRequest()) {
    $fields = $req->fields();
    $cmd = $req->type === 'notifychannelstate'
        ? (Proto::fields($fields[1][0] ?? '')[2][0] ?? '')
        : (string)($fields[1][0] ?? '');
    // The embedded hub names the client itself: there the request's JSON data may carry `cmd`.
    $dataField = ['connect' => 10, 'subscribe' => 14, 'publish' => 12, 'rpc' => 12][$req->type] ?? null;
    $data = $dataField ? json_decode((string)($fields[$dataField][0] ?? ''), true) : null;
    if (is_array($data) && isset($data['cmd'])) {
        $cmd = (string)$data['cmd'];
    }
    $echo = json_encode([
        'type' => $req->type,
        'headers' => $req->headers,
        'context' => $req->context,
        'body' => base64_encode($req->body),
        'pid' => getmypid(),
        'mode' => getenv('RR_MODE'),
    ]);
    switch ($cmd) {
        case 'error':
            $req->error(4001, 'nope', true);
            continue 2;
        case 'disconnect':
            $req->disconnect(4500, 'bye');
            continue 2;
        case 'throw':
            $c->worker->error('boom');
            continue 2;
        case 'garbage':
            $req->respond("\xff\xff\xff");
            continue 2;
        case 'empty':
            $req->respond('');
            continue 2;
        case 'stream':
            $c->worker->respond(new RrTest\Payload("\x0a\x00"), 0, false);
            $c->worker->respond(new RrTest\Payload("\x0a\x00"));
            continue 2;
        case 'hang':
            sleep(3600);
            continue 2;
        case 'slow':
            sleep(1);
            break;
        case 'crash':
            exit(3);
    }
    if ($req->type === 'subrefresh') {
        $channel = (string)($fields[11][0] ?? '');
        if (str_starts_with($channel, 'expired')) {
            $req->result(Proto::int(1, 1));
            continue;
        }
        if (str_starts_with($channel, 'gone')) {
            $req->disconnect(4501, 'subrefresh ' . ($fields[10][0] ?? '') . ' ' . $channel);
            continue;
        }
    }
    if ($cmd === 'expire-subs' && $req->type === 'connect') {
        $options = Proto::int(1, time() + 2);
        $req->result(Proto::bytes(1, '42') . Proto::bytes(8, Proto::bytes(1, 'expired-srv') . Proto::bytes(2, $options)));
        continue;
    }
    if (($cmd === 'expire' || $cmd === 'expired') && $req->type === 'subscribe') {
        $req->result(Proto::int(1, $cmd === 'expire' ? time() + 2 : time() - 10) . Proto::bytes(4, $echo));
        continue;
    }
    if ($cmd === 'expire' && $req->type === 'connect') {
        // A connection that expires in a second; its refresh (user "expire-me") says expired.
        $req->result(Proto::bytes(1, 'expire-me') . Proto::int(2, time() + 1));
        continue;
    }
    if ($req->type === 'refresh' && ($fields[10][0] ?? '') === 'expire-me') {
        $req->result(Proto::int(1, 1));
        continue;
    }
    switch ($req->type) {
        case 'connect':
            $req->result(Proto::bytes(1, '42') . Proto::bytes(5, $echo));
            break;
        case 'refresh':
        case 'subrefresh':
            $req->result(Proto::bytes(3, $echo));
            break;
        case 'subscribe':
            $req->result(Proto::bytes(4, $echo));
            break;
        case 'publish':
        case 'rpc':
            $req->result(Proto::bytes(1, $echo));
            break;
        case 'notifychannelstate':
            if ($cmd === 'echo') {
                $req->error(1000, $echo);
            } else {
                $req->result('');
            }
            break;
        default:
            $c->worker->error("unknown request type {$req->type}: {$req->context}");
    }
}
