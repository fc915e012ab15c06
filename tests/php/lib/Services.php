<?php
/**
 * A service manager over RPC with the service.v1 protobuf messages (PLUGINS-MORE.md §F), with
 * spiral/roadrunner-services' Manager API and defaults.
 */
declare(strict_types=1);

namespace RrTest;

require_once __DIR__ . '/Rpc.php';
require_once __DIR__ . '/Proto.php';

final class Services
{
    public function __construct(private Rpc $rpc)
    {
    }

    /** @return list<string> */
    public function list(): array
    {
        return Proto::fields($this->call('List', ''))[1] ?? [];
    }

    public function create(
        string $name,
        string $command,
        int $processNum = 1,
        int $execTimeout = 0,
        bool $remainAfterExit = false,
        array $env = [],
        int $restartSec = 30,
        bool $serviceNameInLogs = false,
        int $stopTimeout = 5,
    ): bool {
        // proto3: fields at their default are not written.
        $body = Proto::bytes(1, $name) . Proto::bytes(2, $command);
        foreach ([3 => $processNum, 4 => $execTimeout, 5 => (int) $remainAfterExit] as $field => $value) {
            $body .= $value !== 0 ? Proto::int($field, $value) : '';
        }
        foreach ($env as $key => $value) {
            $body .= Proto::bytes(6, Proto::bytes(1, (string) $key) . Proto::bytes(2, (string) $value));
        }
        foreach ([7 => $restartSec, 8 => (int) $serviceNameInLogs, 9 => $stopTimeout] as $field => $value) {
            $body .= $value !== 0 ? Proto::int($field, $value) : '';
        }
        return self::ok($this->call('Create', $body));
    }

    public function restart(string $name): bool
    {
        return self::ok($this->call('Restart', Proto::bytes(1, $name)));
    }

    public function terminate(string $name): bool
    {
        return self::ok($this->call('Terminate', Proto::bytes(1, $name)));
    }

    /** @return list<array{cpu_percent: float, pid: int, memory_usage: int, command: string, error: ?string}> */
    public function statuses(string $name): array
    {
        $out = [];
        foreach (Proto::fields($this->call('Statuses', Proto::bytes(1, $name)))[1] ?? [] as $raw) {
            $out[] = self::decodeStatus($raw);
        }
        return $out;
    }

    /** The deprecated single-process status. */
    public function status(string $name): array
    {
        return self::decodeStatus($this->call('Status', Proto::bytes(1, $name)));
    }

    private function call(string $method, string $body): string
    {
        return $this->rpc->callRaw("service.$method", $body, Frame::CODEC_PROTO);
    }

    private static function ok(string $response): bool
    {
        return (Proto::fields($response)[2][0] ?? 0) === 1;
    }

    private static function decodeStatus(string $raw): array
    {
        $f = Proto::fields($raw);
        $error = isset($f[5][0]) ? (Proto::fields($f[5][0])[2][0] ?? '') : null;
        return [
            'cpu_percent' => isset($f[1][0]) ? unpack('g', $f[1][0])[1] : 0.0,
            'pid' => $f[2][0] ?? 0,
            'memory_usage' => $f[3][0] ?? 0,
            'command' => $f[4][0] ?? '',
            'error' => $error,
        ];
    }
}
