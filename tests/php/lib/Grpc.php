<?php
/**
 * A minimal gRPC worker for our tests, written from shared/GRPC.md §2-3: the JSON call context,
 * replies with `headers` / `trailers` / `error` (a base64 google.rpc.Status), and hand-encoded
 * protobuf for the one test message (`service.Message { string msg = 1; }`).
 */
declare(strict_types=1);

namespace RrTest;

require_once __DIR__ . '/Goridge.php';

final class Grpc
{
    public function __construct(public Worker $worker)
    {
    }

    public static function create(): self
    {
        return new self(Worker::create());
    }

    /**
     * Serve calls: $handler(array $call, string $body) returns a GrpcReply.
     * $call = ['service' => ..., 'method' => ..., 'context' => [key => [values]]].
     */
    public function serve(callable $handler): void
    {
        while (($p = $this->worker->waitPayload()) !== null) {
            $call = json_decode($p->header, true, 512, JSON_THROW_ON_ERROR);
            $handler($call, $p->body, $this, $p->header);
        }
    }

    public function reply(string $body, array $headers = [], array $trailers = [], ?string $error = null, bool $eos = true): void
    {
        $ctx = [];
        if ($headers) {
            $ctx['headers'] = json_encode($headers);
        }
        if ($trailers) {
            $ctx['trailers'] = json_encode($trailers);
        }
        if ($error !== null) {
            $ctx['error'] = $error;
        }
        $this->worker->respond(new Payload($body, $ctx ? json_encode($ctx) : '{}'), 0, $eos);
    }

    /** roadrunner-grpc < 3.4: headers as one flat map. */
    public function replyFlat(string $body, array $headers): void
    {
        $this->worker->respond(new Payload($body, json_encode($headers)));
    }

    /** A base64 google.rpc.Status; $details = [[type_url, value bytes], ...]. */
    public static function status(int $code, string $message, array $details = []): string
    {
        $out = Wire::varintField(1, $code) . Wire::bytesField(2, $message);
        foreach ($details as [$type, $value]) {
            $out .= Wire::bytesField(3, Wire::bytesField(1, $type) . Wire::bytesField(2, $value));
        }
        return base64_encode($out);
    }

    /** `service.Message { string msg = 1; }` */
    public static function message(string $msg): string
    {
        return $msg === '' ? '' : Wire::bytesField(1, $msg);
    }

    public static function messageText(string $bytes): string
    {
        return Wire::readFields($bytes)[1] ?? '';
    }
}

/** Just enough protobuf wire format for the test messages. */
final class Wire
{
    public static function varint(int $v): string
    {
        $out = '';
        while ($v > 0x7f) {
            $out .= chr(($v & 0x7f) | 0x80);
            $v >>= 7;
        }
        return $out . chr($v);
    }

    public static function varintField(int $field, int $v): string
    {
        return $v === 0 ? '' : self::varint($field << 3) . self::varint($v);
    }

    public static function bytesField(int $field, string $v): string
    {
        return $v === '' ? '' : self::varint(($field << 3) | 2) . self::varint(strlen($v)) . $v;
    }

    /** Length-delimited and varint fields by number (last wins). */
    public static function readFields(string $b): array
    {
        $fields = [];
        $i = 0;
        $n = strlen($b);
        $readVarint = function () use ($b, &$i, $n): int {
            $v = 0;
            $shift = 0;
            while ($i < $n) {
                $c = ord($b[$i++]);
                $v |= ($c & 0x7f) << $shift;
                if ($c < 0x80) {
                    break;
                }
                $shift += 7;
            }
            return $v;
        };
        while ($i < $n) {
            $key = $readVarint();
            $field = $key >> 3;
            if (($key & 7) === 2) {
                $len = $readVarint();
                $fields[$field] = substr($b, $i, $len);
                $i += $len;
            } elseif (($key & 7) === 0) {
                $fields[$field] = $readVarint();
            } else {
                throw new \RuntimeException("unsupported wire type in test message");
            }
        }
        return $fields;
    }
}
