<?php
// An empty job handler for the jobs benchmarks: acknowledge every job.
require __DIR__ . '/../tests/php/lib/Jobs.php';

$consumer = RrTest\Consumer::create();
while ($consumer->waitTask() !== null) {
    $consumer->ack();
}
