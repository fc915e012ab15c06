<?php
/**
 * A small goridge worker library for our tests, written from shared/PROTOCOL.md §1-2.
 * Frames, the pipes and socket relays, and a Worker with waitPayload/respond/error/stop.
 */
declare(strict_types=1);

namespace RrTest;

final class Frame
{
    public const CONTROL = 0x01;
    public const CODEC_RAW = 0x04;
    public const CODEC_JSON = 0x08;
    public const ERROR = 0x40;
    public const CODEC_PROTO = 0x80;

    public const STREAM = 0x01;
    public const STOP = 0x02;
    public const PING = 0x04;
    public const PONG = 0x08;

    /** @param int[] $options */
    public function __construct(
        public int $flags = 0,
        public array $options = [],
        public string $payload = '',
        public int $byte10 = 0,
    ) {
    }

    public static function pack(Frame $f): string
    {
        $head = pack('CCV', 0x10 | (3 + count($f->options)), $f->flags, strlen($f->payload));
        return $head . pack('VCxV*', crc32($head), $f->byte10, ...$f->options) . $f->payload;
    }
}

interface Relay
{
    public function send(Frame $frame): void;

    /** Blocks until a whole frame arrives; null on EOF. */
    public function receive(): ?Frame;

    /** True when a frame can be read without blocking. */
    public function poll(): bool;
}

abstract class ByteRelay implements Relay
{
    /** @return resource the stream frames are read from */
    abstract protected function input();

    /** @return resource the stream frames are written to */
    abstract protected function output();

    protected function read(int $n): ?string
    {
        $buf = fread($this->input(), $n);
        if ($buf !== false && strlen($buf) === $n) {
            return $buf;
        }
        $buf = $buf === false ? '' : $buf;
        while (strlen($buf) < $n) {
            $chunk = fread($this->input(), $n - strlen($buf));
            if ($chunk === false || ($chunk === '' && feof($this->input()))) {
                return null;
            }
            $buf .= $chunk;
        }
        return $buf;
    }

    public function receive(): ?Frame
    {
        $head = $this->read(12);
        if ($head === null) {
            return null;
        }
        $optionBytes = max(0, (ord($head[0]) & 0x0F) - 3) * 4;
        $len = unpack('V', $head, 2)[1];
        // Options and payload in one read: one call per frame after the header.
        $rest = $optionBytes + $len > 0 ? $this->read($optionBytes + $len) : '';
        if ($rest === null) {
            return null;
        }
        if ($optionBytes === 0) {
            return new Frame(ord($head[1]), [], $rest, ord($head[10]));
        }
        $options = $optionBytes === 4 ? [unpack('V', $rest)[1]] : array_values(unpack('V*', substr($rest, 0, $optionBytes)));
        return new Frame(ord($head[1]), $options, substr($rest, $optionBytes), ord($head[10]));
    }

    public function send(Frame $frame): void
    {
        $bytes = Frame::pack($frame);
        while ($bytes !== '') {
            $n = @fwrite($this->output(), $bytes);
            if ($n === false || $n === 0) {
                throw new \RuntimeException('cannot write a frame to the server: ' . (error_get_last()['message'] ?? 'stream closed'));
            }
            $bytes = substr($bytes, $n);
        }
    }

    public function poll(): bool
    {
        $r = [$this->input()];
        $w = $e = null;
        return stream_select($r, $w, $e, 0) > 0;
    }
}

final class StreamRelay extends ByteRelay
{
    /** @param resource $in @param resource $out */
    public function __construct(private $in, private $out)
    {
    }

    protected function input()
    {
        return $this->in;
    }

    protected function output()
    {
        return $this->out;
    }
}

final class SocketRelay extends ByteRelay
{
    /** @var resource */
    private $sock;

    public function __construct(string $address)
    {
        $this->sock = stream_socket_client($address, $errno, $errstr, 5);
        if ($this->sock === false) {
            throw new \RuntimeException("cannot connect to $address: $errstr");
        }
    }

    protected function input()
    {
        return $this->sock;
    }

    protected function output()
    {
        return $this->sock;
    }

    /** RR_RELAY / RR_RPC form (`tcp://host:port`, `unix:///path`) to a PHP stream address. */
    public static function fromEnv(string $relay): self
    {
        return new self(str_starts_with($relay, 'unix://') ? 'unix://' . substr($relay, 7) : $relay);
    }
}

final class Payload
{
    public function __construct(public string $body = '', public string $header = '', public int $flags = 0)
    {
    }
}

final class Worker
{
    private int $sent = 0;
    private bool $awaitingPong = false;

    public function __construct(public Relay $relay)
    {
    }

    public static function create(): self
    {
        $relay = getenv('RR_RELAY') ?: 'pipes';
        if ($relay === 'pipes') {
            return new self(new StreamRelay(STDIN, STDOUT));
        }
        return new self(SocketRelay::fromEnv($relay));
    }

    /** The next request; null when the server asks this worker to stop. */
    public function waitPayload(): ?Payload
    {
        while (true) {
            $frame = $this->relay->receive();
            if ($frame === null) {
                return null;
            }
            if ($frame->flags & Frame::CONTROL) {
                $msg = json_decode($frame->payload, true);
                if (!empty($msg['stop'])) {
                    return null;
                }
                if (!empty($msg['pid'])) {
                    $this->relay->send(new Frame(Frame::CONTROL, [], json_encode(['pid' => getmypid()])));
                    continue;
                }
                throw new \RuntimeException('Invalid task header, undefined control package');
            }
            if ($frame->byte10 & (Frame::STOP | Frame::PONG)) {
                continue;
            }
            $ctxLen = $frame->options[0] ?? 0;
            $this->sent = 0;
            $this->awaitingPong = false;
            return new Payload(substr($frame->payload, $ctxLen), substr($frame->payload, 0, $ctxLen), $frame->flags);
        }
    }

    /** Send a response; `$eos = false` makes it a stream chunk. */
    public function respond(Payload $p, int $codec = 0, bool $eos = true): void
    {
        $frame = new Frame($codec, [strlen($p->header)], $p->header . $p->body);
        if (!$eos) {
            $frame->byte10 |= Frame::STREAM;
        }
        $this->sent++;
        if (!$eos && $this->relay instanceof StreamRelay && $this->sent % 5 === 0) {
            $frame->byte10 |= Frame::PING;
            $this->awaitingPong = true;
        }
        $this->relay->send($frame);
    }

    /** Between stream chunks: true when the server sent STOP (stream cancelled). */
    public function streamStopped(): bool
    {
        if ($this->relay instanceof StreamRelay && !$this->awaitingPong) {
            return false;
        }
        while ($this->relay->poll()) {
            $frame = $this->relay->receive();
            if ($frame === null) {
                return true;
            }
            if ($frame->byte10 & Frame::PONG) {
                $this->awaitingPong = false;
            }
            if ($frame->byte10 & Frame::STOP) {
                return true;
            }
        }
        return false;
    }

    public function error(string $message): void
    {
        $this->relay->send(new Frame(Frame::ERROR, [], $message));
    }

    /** Ask the server to replace this worker (it retries the request elsewhere). */
    public function stop(): void
    {
        $this->relay->send(new Frame(0, [13], '{"stop":true}'));
    }
}
