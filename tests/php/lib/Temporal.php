<?php
/**
 * A minimal Temporal worker (shared/TEMPORAL.md §3, §4), written from the spec: no Temporal PHP
 * SDK. It answers GetWorkerInfo with the registered task queues and runs InvokeActivity /
 * InvokeLocalActivity with registered PHP callables; arguments and results are json/plain
 * payloads; an exception becomes an ApplicationFailure; DoNotComplete asks for async completion.
 *
 * Like the SDK it requires RR_CODEC=protobuf (the SDK would fall back to its JSON codec) and
 * routes a batch by the context's taskQueue: none = the factory (GetWorkerInfo only), an
 * unknown one = an error.
 */
declare(strict_types=1);

namespace RrTest\Temporal;

require_once __DIR__ . '/Goridge.php';
require_once __DIR__ . '/Proto.php';

use RrTest\Payload as Frame;
use RrTest\Proto;
use RrTest\Worker as GoridgeWorker;

/** Thrown by an activity that will be completed later through the client. */
final class DoNotComplete extends \Exception
{
}

/** Thrown into a workflow when Temporal cancels it; uncaught, the workflow ends cancelled. */
final class Canceled extends \Exception
{
}

/** One protocol message. */
final class Message
{
    /**
     * @param list<array{metadata: array<string,string>, data: string}> $payloads
     * @param array<string,mixed>|null $failure {message, type, nonRetryable}
     */
    public function __construct(
        public int $id = 0,
        public string $command = '',
        public array $options = [],
        public array $payloads = [],
        public ?array $failure = null,
        public string $runId = '',
        public string $taskQueue = '',
        public bool $hasPayloads = false,
    ) {
    }
}

final class Codec
{
    /** @return list<Message> */
    public static function decodeFrame(string $body): array
    {
        $out = [];
        foreach (Proto::fields($body)[1] ?? [] as $raw) {
            $f = Proto::fields($raw);
            $payloads = [];
            foreach (Proto::fields($f[5][0] ?? '')[1] ?? [] as $p) {
                $payloads[] = self::decodePayload($p);
            }
            $options = ($f[3][0] ?? '') === '' ? [] : json_decode($f[3][0], true, 512, JSON_THROW_ON_ERROR);
            $out[] = new Message(
                id: (int)($f[1][0] ?? 0),
                command: $f[2][0] ?? '',
                options: $options,
                payloads: $payloads,
                failure: isset($f[4]) ? self::decodeFailure($f[4][0]) : null,
                runId: $f[8][0] ?? '',
                taskQueue: $f[9][0] ?? '',
                hasPayloads: isset($f[5]),
            );
        }
        return $out;
    }

    /** A Failure's message and its cause's (an activity failure carries the activity's error there). */
    public static function decodeFailure(string $raw): array
    {
        $f = Proto::fields($raw);
        $cause = isset($f[4]) ? self::decodeFailure($f[4][0]) : null;
        return ['message' => $f[1][0] ?? '', 'cause' => $cause];
    }

    /** @return array{metadata: array<string,string>, data: string} */
    public static function decodePayload(string $raw): array
    {
        $f = Proto::fields($raw);
        $metadata = [];
        foreach ($f[1] ?? [] as $entry) {
            $e = Proto::fields($entry);
            $metadata[$e[1][0] ?? ''] = $e[2][0] ?? '';
        }
        return ['metadata' => $metadata, 'data' => $f[2][0] ?? ''];
    }

    public static function jsonPayload(mixed $value): string
    {
        $entry = Proto::bytes(1, 'encoding') . Proto::bytes(2, 'json/plain');
        return Proto::bytes(1, $entry) . Proto::bytes(2, json_encode($value, JSON_THROW_ON_ERROR));
    }

    /** @param list<mixed> $values */
    public static function payloads(array $values): string
    {
        return implode('', array_map(fn($v) => Proto::bytes(1, self::jsonPayload($v)), $values));
    }

    /** A Failure with an ApplicationFailureInfo, as the SDK's FailureConverter makes it. */
    public static function failure(string $message, string $type, bool $nonRetryable = false, string $trace = ''): string
    {
        $info = Proto::bytes(1, $type) . ($nonRetryable ? Proto::int(2, 1) : '');
        return Proto::bytes(1, $message) . Proto::bytes(2, 'PHP_SDK') . ($trace === '' ? '' : Proto::bytes(3, $trace)) . Proto::bytes(5, $info);
    }

    /** A response message: id, then payloads (field 5) or a failure (field 4). */
    public static function response(int $id, ?string $payloads, ?string $failure = null): string
    {
        $m = ($id === 0 ? '' : Proto::int(1, $id));
        if ($failure !== null) {
            $m .= Proto::bytes(4, $failure);
        }
        if ($payloads !== null) {
            $m .= Proto::bytes(5, $payloads);
        }
        return $m;
    }

    /** A command message: id (PHP's own counter), name, JSON options, payloads, failure. */
    public static function command(int $id, string $name, array $options, ?string $payloads = null, ?string $failure = null): string
    {
        $m = Proto::int(1, $id) . Proto::bytes(2, $name) . Proto::bytes(3, json_encode((object)$options, JSON_THROW_ON_ERROR));
        if ($failure !== null) {
            $m .= Proto::bytes(4, $failure);
        }
        if ($payloads !== null) {
            $m .= Proto::bytes(5, $payloads);
        }
        return $m;
    }

    /** @param list<string> $messages encoded Message bodies */
    public static function frame(array $messages): string
    {
        return implode('', array_map(fn($m) => Proto::bytes(1, $m), $messages));
    }

    /** The JSON value of a json/plain payload. */
    public static function value(array $payload): mixed
    {
        if (($payload['metadata']['encoding'] ?? '') !== 'json/plain') {
            throw new \InvalidArgumentException('unsupported payload encoding ' . ($payload['metadata']['encoding'] ?? ''));
        }
        return json_decode($payload['data'], true, 512, JSON_THROW_ON_ERROR);
    }
}

/** One task queue's registrations. */
final class TaskQueue
{
    /** @var array<string, array{queries: list<string>, signals: list<string>, run: ?callable}> */
    public array $workflows = [];
    /** @var array<string, callable> */
    public array $activities = [];

    public function __construct(public string $name, public array $options = [])
    {
    }

    /**
     * A workflow; `$run(array $info, string $rrId, ...$args)` completes it with its return value
     * (a thrown exception fails it). A run that is a generator yields commands and gets their
     * results back (a failure is thrown into it):
     * `['ExecuteActivity', ['name' => 'echo', 'options' => [...]], [$arg]]`, `['NewTimer', ['ms' => 100]]`,
     * `['GetVersion', ['changeID' => 'c', 'minSupported' => -1, 'maxSupported' => 2]]`,
     * `['SideEffect', [], [$value]]`; and two local ones: `['state', $value]` sets what every
     * query answers, `['signal', $name]` waits for that signal and gets its arguments, `['Panic', $message]` panics (the task queue's `WorkflowPanicPolicy` decides), `['child-execution']` gives the last child's {ID, RunID} once started
     * (`ExecuteChildWorkflow` also sends `GetChildWorkflowExecution`), `['keep-on-cancel']` makes a
     * workflow cancel only cancel what it waits for (not throw into it). Query `pid` answers the
     * workflow process's pid.
     */
    public function workflow(string $name, array $signals = [], array $queries = [], ?callable $run = null): self
    {
        $this->workflows[$name] = ['signals' => $signals, 'queries' => $queries, 'run' => $run];
        return $this;
    }

    public function activity(string $name, callable $fn): self
    {
        $this->activities[$name] = $fn;
        return $this;
    }
}

final class Factory
{
    public const SDK_VERSION = '2.8.3-rrtest';

    /** @var array<string, TaskQueue> */
    private array $queues = [];
    /** The ids of the commands this worker sends. */
    private int $nextId = 0;
    /** Running workflow instances: rr_id => workflow type. */
    private array $running = [];
    /** Generator workflows: rr_id => {gen, state, signals, awaiting}. */
    private array $instances = [];
    /** Our command id => the rr_id waiting for its result. */
    private array $waits = [];
    /** GetChildWorkflowExecution ids => the rr_id that started the child. */
    private array $childStarts = [];

    public function __construct(private GoridgeWorker $worker)
    {
    }

    public static function create(): self
    {
        $codec = getenv('RR_CODEC') ?: '';
        if (!in_array($codec, ['proto', 'protobuf'], true)) {
            fwrite(STDERR, "RR_CODEC is `$codec`: this worker speaks only the protobuf codec\n");
            exit(1);
        }
        if (getenv('RR_MODE') !== 'temporal') {
            fwrite(STDERR, 'RR_MODE is `' . getenv('RR_MODE') . "`, expected `temporal`\n");
            exit(1);
        }
        return new self(GoridgeWorker::create());
    }

    public function newWorker(string $taskQueue = 'default', array $options = []): TaskQueue
    {
        return $this->queues[$taskQueue] = new TaskQueue($taskQueue, $options);
    }

    public function run(): void
    {
        while (($p = $this->worker->waitPayload()) !== null) {
            try {
                $context = json_decode($p->header, true, 512, JSON_THROW_ON_ERROR);
                $replies = $this->dispatch($context, Codec::decodeFrame($p->body));
                $this->worker->respond(new Frame(Codec::frame($replies)));
            } catch (\Throwable $e) {
                $this->worker->error(get_class($e) . ': ' . $e->getMessage());
            }
        }
    }

    /** @return list<string> encoded reply messages */
    private function dispatch(array $context, array $messages): array
    {
        $queue = $context['taskQueue'] ?? null;
        if ($queue !== null && !isset($this->queues[$queue])) {
            throw new \OutOfRangeException("no worker for task queue `$queue`");
        }
        $replies = [];
        foreach ($messages as $m) {
            if ($m->command === '') {
                // The result of one of our commands.
                array_push($replies, ...$this->resume($m));
                continue;
            }
            array_push($replies, ...match (true) {
                $queue === null && $m->command === 'GetWorkerInfo' => [$this->workerInfo($m)],
                $queue === null => throw new \LogicException("command {$m->command} needs a task queue"),
                $m->command === 'InvokeActivity', $m->command === 'InvokeLocalActivity' => [$this->activity($this->queues[$queue], $m)],
                $m->command === 'StartWorkflow' => $this->startWorkflow($this->queues[$queue], $m, $context),
                $m->command === 'DestroyWorkflow' => [$this->destroyWorkflow($m)],
                $m->command === 'InvokeSignal' => $this->signal($m, $context),
                $m->command === 'InvokeQuery' => [$this->query($m, $context)],
                $m->command === 'InvokeUpdate' => $this->update($m, $context),
                $m->command === 'CancelWorkflow' => $this->cancel($m, $context),
                default => throw new \LogicException("command {$m->command} is not supported by this test worker"),
            });
        }
        return $replies;
    }

    private function workerInfo(Message $m): string
    {
        $infos = [];
        foreach ($this->queues as $q) {
            $infos[] = [
                'TaskQueue' => $q->name,
                'Options' => $q->options + ['MaxConcurrentActivityExecutionSize' => 0, 'Identity' => ''],
                'Workflows' => array_map(
                    fn($name, $w) => ['Name' => $name, 'Queries' => $w['queries'], 'Signals' => $w['signals']],
                    array_keys($q->workflows),
                    array_values($q->workflows),
                ),
                'Activities' => array_map(fn($name) => ['Name' => $name], array_keys($q->activities)),
                'PhpSdkVersion' => self::SDK_VERSION,
                // PHP's ServiceClient API key (Temporal Cloud), when a test sets one.
                'Flags' => getenv('TEMPORAL_API_KEY') ? ['ApiKey' => getenv('TEMPORAL_API_KEY')] : (object)[],
                // What the handshake told us, so that tests can see it arrived.
                'Plugins' => [['Name' => 'rr_version', 'Version' => (string)($m->options['rr_version'] ?? '')], ['Name' => 'ww_pid', 'Version' => (string)($m->options['ww_pid'] ?? '')]],
            ];
        }
        return Codec::response(0, Codec::payloads($infos));
    }

    /** @return list<string> */
    private function startWorkflow(TaskQueue $q, Message $m, array $context): array
    {
        // Newer SDKs read the instance id from the message, older ones from the context.
        $rrId = $m->runId !== '' ? $m->runId : ($context['rr_id'] ?? '');
        $type = $m->options['info']['WorkflowType']['Name'] ?? '';
        $run = $q->workflows[$type]['run'] ?? null;
        if ($run === null) {
            throw new \LogicException("workflow `$type` is not registered on task queue `{$q->name}` or has no body");
        }
        $this->running[$rrId] = $type;
        $this->instances[$rrId] = ['gen' => null, 'state' => null, 'signals' => [], 'awaiting' => null];
        try {
            $result = $run($m->options['info'], $rrId, ...array_map([Codec::class, 'value'], $m->payloads));
        } catch (\Throwable $e) {
            return [$this->fail($e)];
        }
        if (!$result instanceof \Generator) {
            return [Codec::command(++$this->nextId, 'CompleteWorkflow', [], Codec::payloads([$result]))];
        }
        $this->instances[$rrId]['gen'] = $result;
        return $this->advance($rrId, fn(\Generator $g) => $g->current());
    }

    private function fail(\Throwable $e): string
    {
        if ($e instanceof Canceled) {
            // A Failure with a CanceledFailureInfo (field 7), as the SDK reports a cancelled workflow.
            $failure = Proto::bytes(1, 'canceled') . Proto::bytes(2, 'PHP_SDK') . Proto::bytes(7, '');
            return Codec::command(++$this->nextId, 'CompleteWorkflow', [], null, $failure);
        }
        return Codec::command(++$this->nextId, 'CompleteWorkflow', [], null, Codec::failure($e->getMessage(), (new \ReflectionClass($e))->getShortName()));
    }

    /**
     * Run a generator workflow until it waits: `$step` sends it a result (or throws a failure
     * into it), then its yielded commands are sent or, for the local ones, answered here.
     * @return list<string>
     */
    private function advance(string $rrId, callable $step): array
    {
        $i = &$this->instances[$rrId];
        $gen = $i['gen'];
        $out = [];
        try {
            $step($gen);
            while ($gen->valid()) {
                $cmd = $gen->current();
                if (in_array($cmd[0], ['UpsertWorkflowSearchAttributes', 'UpsertWorkflowTypedSearchAttributes', 'UpsertMemo'], true)) {
                    // Commands without an answer.
                    $out[] = Codec::command(++$this->nextId, $cmd[0], $cmd[1]);
                    $gen->send(null);
                } elseif ($cmd[0] === 'Panic') {
                    // As the SDK reports an error in workflow code: no answer expected.
                    $out[] = Codec::command(++$this->nextId, 'Panic', [], null, Codec::failure($cmd[1], 'Error'));
                    return $out;
                } elseif ($cmd[0] === 'child-execution') {
                    $gen->send($i['child'] ?? null);
                } elseif ($cmd[0] === 'keep-on-cancel') {
                    $i['keepOnCancel'] = true;
                    $gen->send(null);
                } elseif ($cmd[0] === 'state') {
                    $i['state'] = $cmd[1];
                    $gen->send(null);
                } elseif ($cmd[0] === 'signal') {
                    if (isset($i['signals'][$cmd[1]]) && $i['signals'][$cmd[1]] !== []) {
                        $gen->send(array_shift($i['signals'][$cmd[1]]));
                    } else {
                        $i['awaiting'] = $cmd[1];
                        return $out;
                    }
                } else {
                    $id = ++$this->nextId;
                    $this->waits[$id] = $rrId;
                    $out[] = Codec::command($id, $cmd[0], $cmd[1], isset($cmd[2]) ? Codec::payloads($cmd[2]) : null);
                    if ($cmd[0] === 'ExecuteChildWorkflow') {
                        // As the SDK does: ask for the child's execution (ID, RunID) alongside.
                        $start = ++$this->nextId;
                        $this->childStarts[$start] = $rrId;
                        $out[] = Codec::command($start, 'GetChildWorkflowExecution', ['id' => $id]);
                    }
                    return $out;
                }
            }
            return [...$out, Codec::command(++$this->nextId, 'CompleteWorkflow', [], Codec::payloads([$gen->getReturn()]))];
        } catch (\Throwable $e) {
            return [...$out, $this->fail($e)];
        }
    }

    /** @return list<string> */
    private function resume(Message $m): array
    {
        if (isset($this->childStarts[$m->id])) {
            $rrId = $this->childStarts[$m->id];
            unset($this->childStarts[$m->id]);
            if (isset($this->instances[$rrId]) && $m->failure === null && $m->payloads !== []) {
                $this->instances[$rrId]['child'] = Codec::value($m->payloads[0]);
            }
            return [];
        }
        $rrId = $this->waits[$m->id] ?? null;
        if ($rrId === null || !isset($this->instances[$rrId])) {
            return [];
        }
        unset($this->waits[$m->id]);
        if ($m->failure !== null) {
            $message = $m->failure['message'];
            for ($c = $m->failure['cause']; $c !== null; $c = $c['cause']) {
                $message .= ': ' . $c['message'];
            }
            return $this->advance($rrId, fn(\Generator $g) => $g->throw(new \RuntimeException($message)));
        }
        $value = $m->payloads === [] ? null : Codec::value($m->payloads[0]);
        return $this->advance($rrId, fn(\Generator $g) => $g->send($value));
    }

    /** @return list<string> */
    private function signal(Message $m, array $context): array
    {
        $rrId = $m->runId !== '' ? $m->runId : ($context['rr_id'] ?? '');
        $name = $m->options['name'] ?? '';
        $args = array_map([Codec::class, 'value'], $m->payloads);
        $replies = [Codec::response($m->id, Codec::payloads([]))];
        if (!isset($this->instances[$rrId])) {
            return $replies;
        }
        $i = &$this->instances[$rrId];
        $i['signals'][$name][] = $args;
        if ($i['awaiting'] === $name && $i['gen'] !== null) {
            $i['awaiting'] = null;
            array_push($replies, ...$this->advance($rrId, fn(\Generator $g) => $g->send(array_shift($this->instances[$rrId]['signals'][$name]))));
        }
        return $replies;
    }

    /**
     * Cancel the command the workflow waits for, then throw Canceled into it.
     * @return list<string>
     */
    private function cancel(Message $m, array $context): array
    {
        $rrId = $m->runId !== '' ? $m->runId : ($context['rr_id'] ?? '');
        $replies = [Codec::response($m->id, Codec::payloads([]))];
        if (($this->instances[$rrId]['gen'] ?? null) === null) {
            return $replies;
        }
        $waiting = array_keys($this->waits, $rrId, true);
        if ($waiting !== []) {
            $replies[] = Codec::command(++$this->nextId, 'Cancel', ['ids' => $waiting]);
        }
        if ($this->instances[$rrId]['keepOnCancel'] ?? false) {
            // The workflow waits for what it waited for to end (cancelled or not).
            return $replies;
        }
        foreach ($waiting as $id) {
            unset($this->waits[$id]);
        }
        array_push($replies, ...$this->advance($rrId, fn(\Generator $g) => $g->throw(new Canceled('workflow canceled'))));
        return $replies;
    }

    /**
     * Update `set`: rejects an empty value (validator), else sets the query state and returns the
     * previous one. Other names are rejected.
     * @return list<string>
     */
    private function update(Message $m, array $context): array
    {
        $rrId = $m->runId !== '' ? $m->runId : ($context['rr_id'] ?? '');
        $id = $m->options['updateId'] ?? '';
        $value = $m->payloads === [] ? null : Codec::value($m->payloads[0]);
        $replay = $m->options['replay'] ?? false;
        $reject = match (true) {
            ($m->options['name'] ?? '') !== 'set' => 'unknown update ' . ($m->options['name'] ?? ''),
            !$replay && ($value === '' || $value === null) => 'the value must not be empty',
            default => null,
        };
        if ($reject !== null) {
            return [Codec::command(++$this->nextId, 'UpdateValidated', ['id' => $id], null, Codec::failure($reject, 'InvalidArgumentException'))];
        }
        $previous = $this->instances[$rrId]['state'] ?? null;
        $this->instances[$rrId]['state'] = $value;
        return [
            Codec::command(++$this->nextId, 'UpdateValidated', ['id' => $id]),
            Codec::command(++$this->nextId, 'UpdateCompleted', ['id' => $id], Codec::payloads([$previous])),
        ];
    }

    private function query(Message $m, array $context): string
    {
        $rrId = $m->runId !== '' ? $m->runId : ($context['rr_id'] ?? '');
        if (($m->options['name'] ?? '') === 'pid') {
            return Codec::response($m->id, Codec::payloads([getmypid()]));
        }
        return Codec::response($m->id, Codec::payloads([$this->instances[$rrId]['state'] ?? null]));
    }

    private function destroyWorkflow(Message $m): string
    {
        unset($this->running[$m->runId], $this->instances[$m->runId]);
        return Codec::response(0, Codec::payloads([count($this->running)]));
    }

    private function activity(TaskQueue $q, Message $m): string
    {
        $name = $m->options['name'] ?? '';
        $fn = $q->activities[$name] ?? null;
        if ($fn === null) {
            return Codec::response(0, null, Codec::failure("Activity `$name` is not registered on task queue `{$q->name}`", 'ActivityNotRegisteredError', true));
        }
        try {
            $args = array_map([Codec::class, 'value'], $m->payloads);
            $result = $fn($m->options['info'] ?? [], ...$args);
            return Codec::response(0, Codec::payloads([$result]));
        } catch (DoNotComplete) {
            return Codec::response(0, null, Codec::failure('doNotCompleteOnReturn', 'DoNotComplete'));
        } catch (\Throwable $e) {
            return Codec::response(0, null, Codec::failure($e->getMessage(), (new \ReflectionClass($e))->getShortName(), false, $e->getTraceAsString()));
        }
    }
}
