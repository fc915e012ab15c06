<?php
/**
 * A lock client over RPC with the lock.v1beta1 protobuf messages (PLUGINS-MORE.md §B), with
 * roadrunner-php/lock's API: seconds in, microseconds on the wire, ttl and wait always sent by
 * lock() and lockRead(), no id on forceRelease(), "*" for exists() without an id.
 */
declare(strict_types=1);

namespace RrTest;

require_once __DIR__ . '/Rpc.php';
require_once __DIR__ . '/Proto.php';

final class Lock
{
    public function __construct(private Rpc $rpc)
    {
    }

    public function lock(string $resource, ?string $id = null, int|float $ttl = 0, int|float $waitTTL = 0): string|false
    {
        $id ??= self::uuid();
        return $this->call('Lock', $resource, $id, $ttl, $waitTTL) ? $id : false;
    }

    public function lockRead(string $resource, ?string $id = null, int|float $ttl = 0, int|float $waitTTL = 0): string|false
    {
        $id ??= self::uuid();
        return $this->call('LockRead', $resource, $id, $ttl, $waitTTL) ? $id : false;
    }

    public function release(string $resource, string $id): bool
    {
        return $this->call('Release', $resource, $id);
    }

    public function forceRelease(string $resource): bool
    {
        return $this->call('ForceRelease', $resource);
    }

    public function exists(string $resource, ?string $id = null): bool
    {
        return $this->call('Exists', $resource, $id ?? '*');
    }

    public function updateTTL(string $resource, string $id, int|float $ttl): bool
    {
        return $this->call('UpdateTTL', $resource, $id, $ttl);
    }

    /** Encode a Request, call lock.<method>, decode Response.ok. */
    private function call(string $method, string $resource, string $id = '', int|float|null $ttl = null, int|float|null $wait = null): bool
    {
        $body = Proto::bytes(1, $resource);
        if ($id !== '') {
            $body .= Proto::bytes(2, $id);
        }
        if ($ttl !== null) {
            $body .= Proto::int(3, (int) round($ttl * 1_000_000));
        }
        if ($wait !== null) {
            $body .= Proto::int(4, (int) round($wait * 1_000_000));
        }
        $reply = $this->rpc->callRaw("lock.$method", $body, Frame::CODEC_PROTO);
        return (Proto::fields($reply)[1][0] ?? 0) === 1;
    }

    public static function uuid(): string
    {
        $b = random_bytes(16);
        $b[6] = chr(ord($b[6]) & 0x0F | 0x40);
        $b[8] = chr(ord($b[8]) & 0x3F | 0x80);
        return vsprintf('%s%s-%s-%s-%s-%s%s%s', str_split(bin2hex($b), 4));
    }
}
