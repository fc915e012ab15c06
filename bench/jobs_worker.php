<?php
// The empty job handler of plugins/jobs/examples/jobs_bench.rs: acknowledge every job.
require __DIR__ . '/../tests/php/lib/Jobs.php';

$consumer = RrTest\Consumer::create();
while ($consumer->waitTask() !== null) {
    $consumer->ack();
}
