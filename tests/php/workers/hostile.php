<?php
// A worker that misbehaves on request (runtime/tests/hostile_workers.rs). Bodies:
//   "exit-after-answer" -> answers, then exits (exit() in shutdown code)
//   "exit-before-answer"-> exits without answering the request it read
//   "stderr-latin1"     -> a non-UTF-8 line on stderr, then a normal one, then answers
//   "stderr-huge:<KB>"  -> one stderr line of <KB> kilobytes, then a short one, then answers
//   "stdout-binary"     -> binary garbage on stdout instead of a frame
//   "partial-frame"     -> half of a valid answer frame, then exits
//   "bad-crc"           -> an answer frame whose header checksum is wrong
//   "fatal"             -> the line PHP prints for a Fatal error, on stderr, then the process dies
//   "relay"             -> answers its RR_RELAY
// Anything else is echoed.
require __DIR__ . '/../lib/Goridge.php';

use RrTest\{Frame, Payload, Worker};

$worker = Worker::create();
while (($p = $worker->waitPayload()) !== null) {
    [$cmd, $arg] = array_pad(explode(':', $p->body, 2), 2, '');
    switch ($cmd) {
        case 'exit-after-answer':
            $worker->respond(new Payload($p->body, $p->header));
            exit(0);
        case 'exit-before-answer':
            exit(1);
        case 'stderr-latin1':
            fwrite(STDERR, "caf\xe9 au lait\n");
            fwrite(STDERR, "after the latin-1 line\n");
            $worker->respond(new Payload($p->body, $p->header));
            break;
        case 'stderr-huge':
            fwrite(STDERR, str_repeat('h', (int)$arg * 1024) . "\n");
            fwrite(STDERR, "after the huge line\n");
            $worker->respond(new Payload($p->body, $p->header));
            break;
        case 'stdout-binary':
            fwrite(STDOUT, "\x00\xff\xfe\x80garbage\x01\x02");
            fflush(STDOUT);
            break;
        case 'partial-frame':
            $bytes = Frame::pack(new Frame(Frame::CODEC_RAW, [0], str_repeat('p', 100)));
            fwrite(STDOUT, substr($bytes, 0, 60));
            fflush(STDOUT);
            exit(0);
        case 'bad-crc':
            $bytes = Frame::pack(new Frame(Frame::CODEC_RAW, [0], 'answer'));
            $bytes[6] = chr(ord($bytes[6]) ^ 0xff);
            fwrite(STDOUT, $bytes);
            fflush(STDOUT);
            break;
        case 'fatal':
            fwrite(STDERR, "PHP Fatal error:  Uncaught Error: Call to undefined function boom() in hostile.php:42\n");
            exit(255);
        case 'relay':
            $worker->respond(new Payload((string)getenv('RR_RELAY'), $p->header));
            break;
        default:
            $worker->respond(new Payload($p->body, $p->header));
    }
}
