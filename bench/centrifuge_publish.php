<?php
// PHP publishing to the embedded Centrifuge hub through RPC (centrifuge.Publish over RR_RPC, as
// roadrunner-php/centrifugo's RPCCentrifugoApi does). argv: channel, count, gap in µs between
// publications (0: back to back); numbers start at $BENCH_FIRST (default 1). Each publication's
// data carries its send time (µs since the epoch) and number: plugins/centrifuge/examples/
// hub_bench.rs computes latency from it. Prints `first:<send time of the first>`.
require __DIR__ . '/../tests/php/lib/Rpc.php';
require __DIR__ . '/../tests/php/lib/Proto.php';

use RrTest\Frame;
use RrTest\Proto;

[, $channel, $count, $gap] = $argv;
$rpc = RrTest\Rpc::fromEnv();
$from = (int) (getenv('BENCH_FIRST') ?: 1);
$first = 0;
for ($n = $from; $n < $from + (int) $count; $n++) {
    $t = (int) (microtime(true) * 1e6);
    $first = $first ?: $t;
    $data = json_encode(['t' => $t, 'n' => $n]);
    $reply = $rpc->callRaw('centrifuge.Publish', Proto::bytes(1, $channel) . Proto::bytes(2, $data), Frame::CODEC_PROTO);
    if (isset(Proto::fields($reply)[1])) {
        fwrite(STDERR, 'centrifuge.Publish failed: ' . bin2hex($reply) . "\n");
        exit(1);
    }
    if ((int) $gap > 0) {
        usleep((int) $gap);
    }
}
echo "first:$first\n";
