<?php
// A jobs consumer for tests: appends one JSON line per delivery to $JOBS_LOG, then answers by
// the payload: "ack", "nack-once" (nack with requeue and 1 s delay the first time), "requeue-once"
// (requeue with header attempt=1 the first time), "fail" (error frame), "fail-once" (error frame
// the first time), "crash" (exit),
// "sleep-MS" (ack after MS milliseconds).
require __DIR__ . '/../lib/Jobs.php';

$consumer = RrTest\Consumer::create();
$log = getenv('JOBS_LOG');
while (($task = $consumer->waitTask()) !== null) {
    file_put_contents($log, json_encode($task + ['pid' => getmypid(), 'at' => microtime(true)]) . "\n", FILE_APPEND | LOCK_EX);
    $seen = isset($task['headers']['attempt']) || file_exists("$log.{$task['id']}");
    if (str_starts_with($task['payload'], 'sleep-')) {
        usleep(1000 * (int)substr($task['payload'], 6));
    }
    switch ($task['payload']) {
        case 'nack-once':
            if (!$seen) {
                touch("$log.{$task['id']}");
                $consumer->nack('try again', true, 1);
                break;
            }
            $consumer->ack();
            break;
        case 'requeue-once':
            $seen ? $consumer->ack() : $consumer->requeue('again', 0, ['attempt' => ['1']]);
            break;
        case 'fail-once':
            if (!$seen) {
                touch("$log.{$task['id']}");
                $consumer->worker->error('job failed on purpose');
                break;
            }
            $consumer->ack();
            break;
        case 'fail':
            $consumer->worker->error('job failed on purpose');
            break;
        case 'crash':
            exit(1);

        default:
            $consumer->ack();
    }
}
