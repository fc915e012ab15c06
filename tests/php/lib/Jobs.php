<?php
/**
 * A jobs consumer (shared/PROTOCOL.md §5): tasks arrive with a JSON context and the payload as
 * body; answers are JSON {"type": T, "data": D} in a data frame with an empty context.
 */
declare(strict_types=1);

namespace RrTest;

require_once __DIR__ . '/Goridge.php';

final class Consumer
{
    private ?array $task = null;

    public function __construct(public Worker $worker)
    {
    }

    public static function create(): self
    {
        return new self(Worker::create());
    }

    /** @return array{id:string,job:string,driver:string,headers:array,pipeline:string,queue:string,payload:string}|null */
    public function waitTask(): ?array
    {
        $p = $this->worker->waitPayload();
        if ($p === null) {
            return null;
        }
        $ctx = json_decode($p->header, true);
        $this->task = $ctx + ['payload' => $p->body];
        $this->task['headers'] = $this->task['headers'] ?? [];
        return $this->task;
    }

    private function answer(int $type, array|object $data): void
    {
        $this->worker->respond(new Payload(json_encode(['type' => $type, 'data' => $data])));
    }

    public function ack(): void
    {
        $this->answer(2, []);
    }

    public function nack(string $message, bool $requeue = false, int $delay = 0): void
    {
        $this->answer(3, ['message' => $message, 'requeue' => $requeue, 'delay_seconds' => $delay]);
    }

    /** @param array<string, list<string>> $headers */
    public function requeue(string $message, int $delay = 0, array $headers = []): void
    {
        $this->answer(4, ['message' => $message, 'delay_seconds' => $delay, 'headers' => (object)$headers]);
    }
}
