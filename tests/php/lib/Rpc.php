<?php
/**
 * A goridge RPC client (shared/PROTOCOL.md §4): one connection, one call at a time, sequence
 * numbers, JSON / RAW / protobuf bodies. Errors come back as RpcException with the server's text.
 */
declare(strict_types=1);

namespace RrTest;

require_once __DIR__ . '/Goridge.php';

final class RpcException extends \RuntimeException
{
}

final class Rpc
{
    private static int $seq = 1;
    private SocketRelay $relay;

    public function __construct(public string $address)
    {
        $this->relay = SocketRelay::fromEnv($address);
    }

    public static function fromEnv(): self
    {
        return new self(getenv('RR_RPC') ?: 'tcp://127.0.0.1:6001');
    }

    /** Call with an already encoded body; returns the encoded reply. */
    public function callRaw(string $method, string $body, int $codec): string
    {
        $seq = self::$seq;
        $this->relay->send(new Frame($codec, [$seq, strlen($method)], $method . $body));
        $frame = $this->relay->receive();
        if ($frame === null) {
            throw new RpcException('connection closed by the server');
        }
        if (count($frame->options) !== 2) {
            throw new RpcException('Invalid RPC frame, options missing');
        }
        if ($frame->options[0] !== $seq) {
            throw new RpcException('Invalid RPC frame, sequence mismatch');
        }
        self::$seq++;
        $reply = substr($frame->payload, $frame->options[1]);
        if ($frame->flags & Frame::ERROR) {
            throw new RpcException("Error '$reply' on {$this->address}");
        }
        return $reply;
    }

    public function call(string $method, mixed $arg): mixed
    {
        return json_decode($this->callRaw($method, json_encode($arg), Frame::CODEC_JSON), true);
    }
}
