<?php
/**
 * A minimal centrifuge proxy worker (RR_MODE=centrifuge), written from shared/CENTRIFUGE.md §2.1
 * and §4.1: the context is JSON `{"type": [...], <metadata>: [...]}`, the body a
 * `centrifugal.centrifugo.proxy` request; the answer is the matching `<X>Response` bytes.
 */
declare(strict_types=1);

namespace RrTest;

require_once __DIR__ . '/Goridge.php';
require_once __DIR__ . '/Proto.php';

final class CentrifugeRequest
{
    /** @param array<string, list<string>> $headers */
    public function __construct(
        public string $type,
        public array $headers,
        public string $context,
        public string $body,
        private Worker $worker,
    ) {
    }

    /** Field number => values of the request message. */
    public function fields(): array
    {
        return Proto::fields($this->body);
    }

    public function field(int $n): string|int|null
    {
        return $this->fields()[$n][0] ?? null;
    }

    /** Answer with `<X>Response{result}` from the encoded result message. */
    public function result(string $result): void
    {
        $this->respond(Proto::bytes(1, $result));
    }

    /** `<X>Response{error{code, message, temporary}}`, as `$request->error()` writes it. */
    public function error(int $code, string $message, bool $temporary = false): void
    {
        $error = Proto::int(1, $code) . Proto::bytes(2, $message) . ($temporary ? Proto::int(3, 1) : '');
        $this->respond(Proto::bytes(2, $error));
    }

    /** `<X>Response{disconnect{code, reason}}`, as `$request->disconnect()` writes it. */
    public function disconnect(int $code, string $reason): void
    {
        $this->respond(Proto::bytes(3, Proto::int(1, $code) . Proto::bytes(2, $reason)));
    }

    public function respond(string $body): void
    {
        $this->worker->respond(new Payload($body));
    }
}

final class Centrifuge
{
    public function __construct(public Worker $worker)
    {
    }

    public static function create(): self
    {
        return new self(Worker::create());
    }

    /** The next proxy event; null when the server stops this worker. */
    public function waitRequest(): ?CentrifugeRequest
    {
        $p = $this->worker->waitPayload();
        if ($p === null || ($p->body === '' && $p->header === '')) {
            return null;
        }
        $headers = json_decode($p->header, true, 512, JSON_THROW_ON_ERROR);
        return new CentrifugeRequest($headers['type'][0] ?? 'unknown', $headers, $p->header, $p->body, $this->worker);
    }
}
