<?php
// One contender for a resource: takes `rounds` write (or read) locks, each with `wait` seconds
// to get it, and checks mutual exclusion through markers in `dir` (a directory `writer` for the
// writer, a file `reader-<id>` per reader) while it holds the lock.
// Usage: lock_contender.php <dir> <resource> <writer|reader> <rounds> <wait>
// Prints {"granted": n, "timeouts": n, "violations": [text, ...]}.
require __DIR__ . '/lib/Lock.php';

[, $dir, $resource, $role, $rounds, $wait] = $argv;
$lock = new RrTest\Lock(RrTest\Rpc::fromEnv());
$granted = $timeouts = 0;
$violations = [];
for ($i = 0; $i < (int) $rounds; $i++) {
    $id = $role === 'writer' ? $lock->lock($resource, null, 30, (float) $wait) : $lock->lockRead($resource, null, 30, (float) $wait);
    if ($id === false) {
        $timeouts++;
        continue;
    }
    $granted++;
    if ($role === 'writer') {
        if (!@mkdir("$dir/writer")) {
            $violations[] = 'a writer got the lock while another writer held it';
        }
        if (glob("$dir/reader-*")) {
            $violations[] = 'a writer got the lock while readers held it';
        }
        usleep(random_int(0, 2000));
        @rmdir("$dir/writer");
    } else {
        touch("$dir/reader-$id");
        if (is_dir("$dir/writer")) {
            $violations[] = 'a reader got the lock while a writer held it';
        }
        usleep(random_int(0, 2000));
        unlink("$dir/reader-$id");
    }
    if (!$lock->release($resource, $id)) {
        $violations[] = "release of a held $role lock returned false";
    }
}
echo json_encode(['granted' => $granted, 'timeouts' => $timeouts, 'violations' => $violations]), "\n";
