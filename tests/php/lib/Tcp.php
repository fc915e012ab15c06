<?php
/**
 * The tcp plugin's worker side on top of Goridge.php, written from shared/PLUGINS-MORE.md §A:
 * events arrive with a JSON context (remote_addr, server, uuid, event), replies carry a bare word.
 */
declare(strict_types=1);

namespace RrTest;

require_once __DIR__ . '/Goridge.php';

final class TcpWorker
{
    public const WRITE = 'WRITE';
    public const CONTINUE = 'CONTINUE';
    public const WRITECLOSE = 'WRITECLOSE';
    public const CLOSE = 'CLOSE';

    public function __construct(public Worker $worker)
    {
    }

    public static function create(): self
    {
        return new self(Worker::create());
    }

    /**
     * The next event; null when the server stops this worker (answered with CLOSE first, as
     * spiral/roadrunner-tcp does).
     * @return array{remote_addr:string,server:string,uuid:string,event:string,body:string}|null
     */
    public function waitRequest(): ?array
    {
        $p = $this->worker->waitPayload();
        if ($p === null) {
            try {
                $this->respond('', self::CLOSE);
            } catch (\RuntimeException) {
                // The server may have closed the relay already.
            }
            return null;
        }
        $ctx = json_decode($p->header, true, 512, JSON_THROW_ON_ERROR);
        foreach (['remote_addr', 'uuid', 'server'] as $key) {
            if (!array_key_exists($key, $ctx)) {
                throw new \RuntimeException("tcp context without `$key`: {$p->header}");
            }
        }
        $ctx['event'] ??= 'UNKNOWN';
        $ctx['body'] = $p->body;
        return $ctx;
    }

    /** Answer the event: `$word` is WRITE, CONTINUE, WRITECLOSE or CLOSE (or anything, which closes). */
    public function respond(string $body, string $word = self::WRITE): void
    {
        $this->worker->respond(new Payload($body, $word));
    }
}
