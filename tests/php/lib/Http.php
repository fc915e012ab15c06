<?php
/**
 * HTTP on top of Goridge.php: decodes the request context (protobuf http.v1.Request, or the
 * legacy JSON object) and encodes responses (protobuf http.v1.Response with flag 0x80, or JSON
 * with 0x08), as shared/PROTOCOL.md §3 describes. The protobuf codec is a minimal hand-written one.
 */
declare(strict_types=1);

namespace RrTest;

require_once __DIR__ . '/Goridge.php';
require_once __DIR__ . '/Proto.php';

final class HttpWorker
{
    /** Keys an older server may leave out of the JSON context. */
    private const JSON_DEFAULTS = [
        'headers' => [], 'cookies' => [], 'rawQuery' => '', 'parsed' => false, 'uploads' => null, 'attributes' => [],
    ];

    public bool $json = false;

    /** The spiral/roadrunner-http version this worker behaves as (null: the current one). */
    public ?string $version = null;

    public function __construct(public Worker $worker)
    {
    }

    public static function create(): self
    {
        return new self(Worker::create());
    }

    /**
     * Behave as the spiral/roadrunner-http version a composer `installed.php` lists: before 3.5
     * it reads JSON contexts only and answers JSON with flags 0 (PROTOCOL.md §3.2).
     */
    public function pretend(string $installedPhp): void
    {
        $installed = require $installedPhp;
        $this->version = $installed['versions']['spiral/roadrunner-http']['version'];
    }

    private function jsonOnly(): bool
    {
        return $this->version !== null && version_compare($this->version, '3.5', '<');
    }

    /**
     * @return array{method:string,uri:string,protocol:string,remoteAddr:string,headers:array,cookies:array,
     *               rawQuery:string,parsed:bool,uploads:mixed,attributes:array,body:string}|null
     */
    public function waitRequest(): ?array
    {
        $p = $this->worker->waitPayload();
        if ($p === null || ($p->header === '' && $p->body === '')) {
            return null;
        }
        if ($p->header[0] === '{') {
            $this->json = true;
            $c = json_decode($p->header, true);
            $c['body'] = $p->body;
            return $c + self::JSON_DEFAULTS;
        }
        if ($this->jsonOnly()) {
            throw new \RuntimeException("spiral/roadrunner-http {$this->version} reads JSON contexts only");
        }
        $this->json = false;
        $f = Proto::fields($p->header);
        $headers = $cookies = $attributes = [];
        foreach ($f[5] ?? [] as $entry) {
            [$k, $v] = Proto::headerMap($entry);
            $headers[$k] = $v;
        }
        foreach ($f[6] ?? [] as $entry) {
            [$k, $v] = Proto::headerMap($entry);
            $cookies[$k] = implode(',', $v);
        }
        foreach ($f[10] ?? [] as $entry) {
            [$k, $v] = Proto::headerMap($entry);
            $attributes[$k] = $v[0] ?? '';
        }
        $uploads = isset($f[9][0]) && $f[9][0] !== '' ? json_decode($f[9][0], true) : null;
        return [
            'remoteAddr' => $f[1][0] ?? '', 'protocol' => $f[2][0] ?? '', 'method' => $f[3][0] ?? '',
            'uri' => $f[4][0] ?? '', 'headers' => $headers, 'cookies' => $cookies,
            'rawQuery' => $f[7][0] ?? '', 'parsed' => (bool)($f[8][0] ?? 0), 'uploads' => $uploads,
            'attributes' => $attributes, 'body' => $p->body,
        ];
    }

    /** @param array<string, string|list<string>> $headers */
    public function respond(int $status, string $body = '', array $headers = [], bool $eos = true): void
    {
        $norm = [];
        foreach ($headers as $k => $v) {
            $norm[$k] = is_array($v) ? array_values($v) : [$v];
        }
        if ($this->json) {
            $ctx = json_encode(['status' => $status, 'headers' => (object)$norm]);
            $this->worker->respond(new Payload($body, $ctx), $this->jsonOnly() ? 0 : Frame::CODEC_JSON, $eos);
            return;
        }
        $ctx = Proto::encodeVarint(1 << 3) . Proto::encodeVarint($status);
        foreach ($norm as $k => $values) {
            $hv = '';
            foreach ($values as $v) {
                $hv .= Proto::bytes(1, (string)$v);
            }
            $ctx .= Proto::bytes(2, Proto::bytes(1, (string)$k) . Proto::bytes(2, $hv));
        }
        $this->worker->respond(new Payload($body, $ctx), Frame::CODEC_PROTO, $eos);
    }
}
