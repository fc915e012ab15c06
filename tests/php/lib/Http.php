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
    public bool $json = false;

    public function __construct(public Worker $worker)
    {
    }

    public static function create(): self
    {
        return new self(Worker::create());
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
            return [
                'method' => $c['method'], 'uri' => $c['uri'], 'protocol' => $c['protocol'],
                'remoteAddr' => $c['remoteAddr'], 'headers' => $c['headers'] ?? [], 'cookies' => $c['cookies'] ?? [],
                'rawQuery' => $c['rawQuery'] ?? '', 'parsed' => $c['parsed'] ?? false, 'uploads' => $c['uploads'] ?? null,
                'attributes' => $c['attributes'] ?? [], 'body' => $p->body,
            ];
        }
        $this->json = false;
        $f = Proto::fields($p->header);
        $map = function (int $n) use ($f): array {
            $out = [];
            foreach ($f[$n] ?? [] as $entry) {
                [$k, $v] = Proto::headerMap($entry);
                $out[$k] = $v;
            }
            return $out;
        };
        $uploads = isset($f[9][0]) && $f[9][0] !== '' ? json_decode($f[9][0], true) : null;
        return [
            'remoteAddr' => $f[1][0] ?? '', 'protocol' => $f[2][0] ?? '', 'method' => $f[3][0] ?? '',
            'uri' => $f[4][0] ?? '', 'headers' => $map(5),
            'cookies' => array_map(fn($v) => implode(',', $v), $map(6)),
            'rawQuery' => $f[7][0] ?? '', 'parsed' => (bool)($f[8][0] ?? 0), 'uploads' => $uploads,
            'attributes' => array_map(fn($v) => $v[0] ?? '', $map(10)), 'body' => $p->body,
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
            $this->worker->respond(new Payload($body, $ctx), Frame::CODEC_JSON, $eos);
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
