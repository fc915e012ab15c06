<?php
// A traced app for the otel tests, one script for both pools (RR_MODE):
// - http: answers JSON {"traceparent", "uber-trace-id", "tracestate", "baggage"} as the request
//   headers carried them; on `/push` it first pushes a job to pipeline `traced` (jobs.Push over
//   RPC) whose headers carry its traceparent, as an instrumented app hands its trace to a job;
// - jobs: appends each task's context as a JSON line to $JOBS_LOG and acks.
require __DIR__ . '/../lib/Http.php';
require __DIR__ . '/../lib/Jobs.php';
require_once __DIR__ . '/../lib/Rpc.php';

use RrTest\{Consumer, Frame, HttpWorker, Proto, Rpc};

if (getenv('RR_MODE') === 'jobs') {
    $consumer = Consumer::create();
    while (($task = $consumer->waitTask()) !== null) {
        file_put_contents(getenv('JOBS_LOG'), json_encode($task) . "\n", FILE_APPEND | LOCK_EX);
        $consumer->ack();
    }
    exit(0);
}

function header_of(array $headers, string $name): ?string
{
    foreach ($headers as $k => $v) {
        if (strcasecmp($k, $name) === 0) {
            return is_array($v) ? ($v[0] ?? null) : $v;
        }
    }
    return null;
}

$http = HttpWorker::create();
$rpc = null;
while (($req = $http->waitRequest()) !== null) {
    $seen = [];
    foreach (['traceparent', 'uber-trace-id', 'tracestate', 'baggage'] as $name) {
        $seen[$name] = header_of($req['headers'], $name);
    }
    if (parse_url($req['uri'], PHP_URL_PATH) === '/push') {
        $rpc ??= Rpc::fromEnv();
        // jobs.v1.Job{job=1, id=2, payload=3, headers=4 map<string, HeaderValue{value=1}>, options=5{pipeline=2}}
        $job = Proto::bytes(1, 'App\\Traced') . Proto::bytes(2, 'traced-' . $req['rawQuery']) . Proto::bytes(3, 'payload')
            . Proto::bytes(4, Proto::bytes(1, 'traceparent') . Proto::bytes(2, Proto::bytes(1, (string)$seen['traceparent'])))
            . Proto::bytes(5, Proto::bytes(2, 'traced'));
        $rpc->callRaw('jobs.Push', Proto::bytes(1, $job), Frame::CODEC_PROTO);
    }
    $http->respond(200, json_encode($seen), ['Content-Type' => 'application/json']);
}
