<?php
/**
 * A minimal protobuf wire-format codec (varints and length-delimited fields), enough for the
 * http.v1, kv.v1, jobs.v1, lock.v1beta1, applogger.v1 and service.v1 messages of shared/PROTOCOL.md.
 */
declare(strict_types=1);

namespace RrTest;

final class Proto
{
    public static function varint(string $buf, int &$pos): int
    {
        $result = 0;
        $shift = 0;
        do {
            $b = ord($buf[$pos++]);
            $result |= ($b & 0x7F) << $shift;
            $shift += 7;
        } while ($b & 0x80);
        return $result;
    }

    /** @return array<int, list<int|string>> field number => values (varints as int, length-delimited and fixed32 as bytes) */
    public static function fields(string $buf): array
    {
        $out = [];
        $pos = 0;
        $len = strlen($buf);
        while ($pos < $len) {
            // Keys and lengths below 128 are one byte: read them inline, they are nearly all.
            $key = ord($buf[$pos++]);
            if ($key > 0x7F) {
                $pos--;
                $key = self::varint($buf, $pos);
            }
            $field = $key >> 3;
            switch ($key & 7) {
                case 2:
                    $n = ord($buf[$pos++]);
                    if ($n > 0x7F) {
                        $pos--;
                        $n = self::varint($buf, $pos);
                    }
                    $out[$field][] = substr($buf, $pos, $n);
                    $pos += $n;
                    break;
                case 0:
                    $out[$field][] = self::varint($buf, $pos);
                    break;
                case 1:
                    $pos += 8;
                    break;
                case 5:
                    $out[$field][] = substr($buf, $pos, 4);
                    $pos += 4;
                    break;
                default:
                    throw new \RuntimeException('unsupported wire type');
            }
        }
        return $out;
    }

    /** A negative int is written as its 64-bit two's complement, as int64 fields are. */
    public static function encodeVarint(int $v): string
    {
        $out = '';
        while ($v < 0 || $v > 0x7F) {
            $out .= chr(($v & 0x7F) | 0x80);
            $v = ($v >> 7) & 0x01FFFFFFFFFFFFFF;
        }
        return $out . chr($v);
    }

    public static function int(int $field, int $value): string
    {
        return self::encodeVarint($field << 3) . self::encodeVarint($value);
    }

    public static function bytes(int $field, string $value): string
    {
        $n = strlen($value);
        return ($field < 16 ? chr(($field << 3) | 2) : self::encodeVarint(($field << 3) | 2))
            . ($n < 0x80 ? chr($n) : self::encodeVarint($n)) . $value;
    }

    /** map<string, HeaderValue> field: entries of {1: key, 2: HeaderValue{1: repeated bytes}} */
    public static function headerMap(string $entry): array
    {
        // One pass over both nesting levels; every length is a varint, mostly one byte.
        $key = '';
        $values = [];
        $pos = 0;
        $len = strlen($entry);
        while ($pos < $len) {
            $tag = ord($entry[$pos++]);
            $n = self::length($entry, $pos);
            if ($tag === 0x0A) {
                $key = substr($entry, $pos, $n);
            } elseif ($tag === 0x12) {
                for ($v = $pos, $end = $pos + $n; $v < $end;) {
                    $vt = ord($entry[$v++]);
                    $vn = self::length($entry, $v);
                    if ($vt === 0x0A) {
                        $values[] = substr($entry, $v, $vn);
                    }
                    $v += $vn;
                }
            }
            $pos += $n;
        }
        return [$key, $values];
    }

    private static function length(string $buf, int &$pos): int
    {
        $n = ord($buf[$pos]);
        if ($n < 0x80) {
            $pos++;
            return $n;
        }
        return self::varint($buf, $pos);
    }
}
