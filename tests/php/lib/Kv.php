<?php
/**
 * A KV client over RPC with the kv.v1 protobuf messages (shared/PROTOCOL.md §4.6.5), as
 * spiral/roadrunner-kv speaks it.
 */
declare(strict_types=1);

namespace RrTest;

require_once __DIR__ . '/Rpc.php';
require_once __DIR__ . '/Proto.php';

final class Kv
{
    public function __construct(private Rpc $rpc, private string $storage)
    {
    }

    /** @param list<array{0:string,1?:string,2?:string}> $items [key, value, timeout] */
    public static function request(string $storage, array $items): string
    {
        $out = Proto::bytes(1, $storage);
        foreach ($items as $item) {
            $msg = Proto::bytes(1, $item[0]);
            if (($item[1] ?? '') !== '') {
                $msg .= Proto::bytes(2, $item[1]);
            }
            if (($item[2] ?? '') !== '') {
                $msg .= Proto::bytes(3, $item[2]);
            }
            $out .= Proto::bytes(2, $msg);
        }
        return $out;
    }

    /** @return list<array{key:string,value:string,timeout:string}> */
    public static function response(string $bytes): array
    {
        $items = [];
        foreach (Proto::fields($bytes)[1] ?? [] as $raw) {
            $f = Proto::fields($raw);
            $items[] = ['key' => $f[1][0] ?? '', 'value' => $f[2][0] ?? '', 'timeout' => $f[3][0] ?? ''];
        }
        return $items;
    }

    public function call(string $method, array $items): array
    {
        return self::response($this->rpc->callRaw("kv.$method", self::request($this->storage, $items), Frame::CODEC_PROTO));
    }
}
