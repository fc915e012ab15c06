<?php
/**
 * A logger over RPC with roadrunner-php/app-logger's calls (PLUGINS-MORE.md §C): without context
 * `app.<Level>` with the message as a JSON string; with context `app.<Level>WithContext` with an
 * applogger.v1.LogEntry whose values are strings (other values JSON-encoded).
 */
declare(strict_types=1);

namespace RrTest;

require_once __DIR__ . '/Rpc.php';
require_once __DIR__ . '/Proto.php';

final class AppLogger
{
    public function __construct(private Rpc $rpc)
    {
    }

    public function error(string|\Stringable $message, array $context = []): mixed
    {
        return $this->send('Error', $message, $context);
    }

    public function warning(string|\Stringable $message, array $context = []): mixed
    {
        return $this->send('Warning', $message, $context);
    }

    public function info(string|\Stringable $message, array $context = []): mixed
    {
        return $this->send('Info', $message, $context);
    }

    public function debug(string|\Stringable $message, array $context = []): mixed
    {
        return $this->send('Debug', $message, $context);
    }

    public function log(string|\Stringable $message, array $context = []): mixed
    {
        return $this->send('Log', $message, $context);
    }

    /** The plain call's JSON reply, or the WithContext call's raw protobuf reply. */
    private function send(string $level, string|\Stringable $message, array $context): mixed
    {
        if ($context === []) {
            return $this->rpc->call("app.$level", (string) $message);
        }
        $entry = Proto::bytes(1, (string) $message);
        foreach ($context as $key => $value) {
            $value = is_string($value) ? $value : ($value instanceof \Stringable ? (string) $value : json_encode($value, JSON_THROW_ON_ERROR));
            $entry .= Proto::bytes(2, Proto::bytes(1, (string) $key) . Proto::bytes(2, $value));
        }
        return $this->rpc->callRaw("app.{$level}WithContext", $entry, Frame::CODEC_PROTO);
    }
}
