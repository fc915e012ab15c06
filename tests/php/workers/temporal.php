<?php
// A Temporal worker for tests (tests/php/lib/Temporal.php): task queues `default` and `orders`.
// Activities on `default`: echo (upper-cases its argument), fail (throws), async (completes
// later: doNotCompleteOnReturn), env (the worker's RR_MODE/RR_CODEC and what it was invoked with),
// sum (adds its arguments). Workflow SimpleWorkflow completes at once with its argument
// upper-cased and the rr_id it ran under; FailingWorkflow fails; the generator workflows below
// run activities, timers, GetVersion, SideEffect, signals and queries through a server.
require __DIR__ . '/../lib/Temporal.php';
require_once __DIR__ . '/../lib/Rpc.php';

use RrTest\Rpc;
use RrTest\RpcException;
use RrTest\Temporal\Codec;
use RrTest\Temporal\DoNotComplete;
use RrTest\Temporal\Factory;

$factory = Factory::create();
// Tests against one shared Temporal server keep apart by a task queue prefix.
$prefix = getenv('TEMPORAL_TQ_PREFIX') ?: '';
// `default` fails a workflow that panics (WorkflowPanicPolicy 1); `orders` blocks it (0, Go's default).
$factory->newWorker($prefix . 'default', ['MaxConcurrentActivityExecutionSize' => 4, 'WorkflowPanicPolicy' => 1])
    ->workflow('SimpleWorkflow', signals: ['add'], queries: ['get'], run: fn(array $info, string $rrId, string $s) => [
        'result' => strtoupper($s),
        'rr_id' => $rrId,
        'workflow_id' => $info['WorkflowExecution']['ID'] ?? '',
    ])
    ->workflow('FailingWorkflow', run: fn(array $info, string $rrId) => throw new \RuntimeException('workflow failed on purpose'))
    // One activity, then done.
    ->workflow('ActivityWorkflow', run: function (array $info, string $rrId, string $s) {
        $echo = yield ['ExecuteActivity', ['name' => 'echo', 'options' => ['StartToCloseTimeout' => 10_000_000_000]], [$s]];
        return [$echo, $info['Namespace'] ?? '', $info['TaskQueueName'] ?? '', $info['WorkflowType']['Name'] ?? ''];
    })
    // The end-to-end of TEMPORAL.md §10: GetVersion, SideEffect, a timer, an activity, then it
    // waits for signal `go`; query `state` answers what it has so far.
    ->workflow('E2EWorkflow', signals: ['go'], queries: ['state'], run: function (array $info, string $rrId, string $name) {
        $version = yield ['GetVersion', ['changeID' => 'chg', 'minSupported' => -1, 'maxSupported' => 2]];
        $random = yield ['SideEffect', [], [random_int(1, 1_000_000_000)]];
        // TEMPORAL_CHANGED: a deploy that swapped the timer and the activity (nondeterministic
        // for runs recorded before it; the replay tests use it).
        if (getenv('TEMPORAL_CHANGED')) {
            $echo = yield ['ExecuteActivity', ['name' => 'echo', 'options' => ['StartToCloseTimeout' => 10_000_000_000]], [$name]];
            yield ['NewTimer', ['ms' => 100]];
        } else {
            yield ['NewTimer', ['ms' => 100]];
            $echo = yield ['ExecuteActivity', ['name' => 'echo', 'options' => ['StartToCloseTimeout' => 10_000_000_000]], [$name]];
        }
        yield ['state', [$version, $random, $echo]];
        [$suffix] = yield ['signal', 'go'];
        return [$version, $random, $echo . $suffix];
    })
    // An activity that fails: the failure reaches the workflow, which fails with it.
    ->workflow('ActivityFailureWorkflow', run: function (array $info, string $rrId) {
        yield ['ExecuteActivity', ['name' => 'fail', 'options' => ['StartToCloseTimeout' => 10_000_000_000, 'RetryPolicy' => ['MaximumAttempts' => 1]]], []];
        return 'unreachable';
    })
    ->activity('echo', fn(array $info, string $s) => strtoupper($s))
    ->activity('fail', fn(array $info) => throw new \DomainException('failed on purpose'))
    ->activity('async', fn(array $info) => throw new DoNotComplete())
    ->activity('env', fn(array $info) => [
        'RR_MODE' => getenv('RR_MODE'),
        'RR_CODEC' => getenv('RR_CODEC'),
        'pid' => getmypid(),
        'activity' => $info['ActivityType']['Name'] ?? '',
        'token' => $info['TaskToken'] ?? '',
        'local' => $info['IsLocalActivity'] ?? null,
    ])
    ->activity('sum', fn(array $info, int ...$n) => array_sum($n))
    // Heartbeats $n times through RoadRunner's RPC (as the SDK's ActivityContext does), then once
    // with a token that is not running; returns what the RPC said.
    ->activity('heartbeat', function (array $info, int $n) {
        $rpc = Rpc::fromEnv();
        $replies = [];
        for ($i = 1; $i <= $n; $i++) {
            $replies[] = $rpc->call('temporal.RecordActivityHeartbeat', ['taskToken' => $info['TaskToken'], 'details' => base64_encode(Codec::payloads([$i]))]);
        }
        try {
            $rpc->call('temporal.RecordActivityHeartbeat', ['taskToken' => base64_encode('not-running'), 'details' => '']);
        } catch (RpcException $e) {
            $replies[] = $e->getMessage();
        }
        return $replies;
    })
    // Heartbeats until the heartbeat says the activity was cancelled (at most 30 s).
    ->activity('until_cancelled', function (array $info) {
        $rpc = Rpc::fromEnv();
        for ($deadline = microtime(true) + 30; microtime(true) < $deadline; usleep(100_000)) {
            $reply = $rpc->call('temporal.RecordActivityHeartbeat', ['taskToken' => $info['TaskToken'], 'details' => '']);
            if ($reply['canceled'] ?? false) {
                return 'saw the cancel';
            }
        }
        return 'no cancel';
    })
    // A local activity: it runs on the activity pool and says so.
    ->workflow('LocalActivityWorkflow', run: function (array $info, string $rrId) {
        $env = yield ['ExecuteLocalActivity', ['name' => 'env', 'options' => ['StartToCloseTimeout' => 10_000_000_000]], []];
        return [$env['local'], $env['RR_MODE'], $env['pid'] !== getmypid()];
    })
    // A local activity that fails twice, retried a second apart: with `local_retry_threshold`
    // under a second each wait is a timer in history and then the next attempt (Core's DoBackoff).
    ->workflow('LocalBackoffWorkflow', run: function (array $info, string $rrId) {
        return yield ['ExecuteLocalActivity', ['name' => 'flaky', 'options' => [
            'StartToCloseTimeout' => 10_000_000_000,
            'RetryPolicy' => ['InitialInterval' => 1_000_000_000, 'BackoffCoefficient' => 1.0, 'MaximumAttempts' => 5],
        ]], []];
    })
    // A local activity that always fails, retried an hour later: a workflow cancel during the
    // wait cancels the backoff timer and answers the local activity with a cancel.
    ->workflow('LocalBackoffCancelWorkflow', run: function (array $info, string $rrId) {
        yield ['keep-on-cancel'];
        try {
            yield ['ExecuteLocalActivity', ['name' => 'fail', 'options' => [
                'StartToCloseTimeout' => 10_000_000_000,
                'RetryPolicy' => ['InitialInterval' => 3_600_000_000_000, 'MaximumAttempts' => 5],
            ]], []];
            return 'the local activity ended';
        } catch (\RuntimeException $e) {
            return 'caught: ' . $e->getMessage();
        }
    })
    ->activity('flaky', fn(array $info) => ($info['Attempt'] ?? 0) < 3
        ? throw new \DomainException('attempt ' . ($info['Attempt'] ?? '?') . ' fails')
        : ['attempt' => $info['Attempt'], 'local' => $info['IsLocalActivity'] ?? null])
    // Which processes ran it: this workflow process and the activity worker (two servers, one queue).
    ->workflow('PidWorkflow', run: function (array $info, string $rrId) {
        $env = yield ['ExecuteActivity', ['name' => 'env', 'options' => ['StartToCloseTimeout' => 10_000_000_000]], []];
        return ['workflow' => getmypid(), 'activity' => $env['pid']];
    })
    // Many activations: three rounds of a SideEffect recording this process's pid and a short
    // timer, then an activity. The recycle test runs it with a small workflow_process.max_jobs.
    ->workflow('StepsWorkflow', run: function (array $info, string $rrId, string $s) {
        $pids = [];
        for ($i = 0; $i < 3; $i++) {
            $pids[] = yield ['SideEffect', [], [getmypid()]];
            yield ['NewTimer', ['ms' => 50]];
        }
        $echo = yield ['ExecuteActivity', ['name' => 'echo', 'options' => ['StartToCloseTimeout' => 10_000_000_000]], [$s]];
        return ['echo' => $echo, 'pids' => $pids, 'pid' => getmypid()];
    })
    // Continues as new until $n reaches 3, then returns the run chain's last $n.
    ->workflow('ContinuingWorkflow', run: function (array $info, string $rrId, int $n) {
        if ($n < 3) {
            yield ['ContinueAsNew', ['name' => 'ContinuingWorkflow', 'options' => []], [$n + 1]];
        }
        return ['n' => $n, 'continued_from' => $info['ContinuedExecutionRunID'] !== ''];
    })
    // A side effect's value, recorded in history.
    ->workflow('SideEffectWorkflow', run: function (array $info, string $rrId) {
        return yield ['SideEffect', [], ['side ' . $rrId]];
    })
    // Upserts search attributes (untyped and typed) and memo, then waits for signal `go`.
    ->workflow('UpsertWorkflow', signals: ['go'], run: function (array $info, string $rrId) {
        yield ['UpsertWorkflowSearchAttributes', ['searchAttributes' => ['CustomKeywordField' => 'kw-1']]];
        yield ['UpsertWorkflowTypedSearchAttributes', ['search_attributes' => ['CustomIntField' => ['type' => 'int64', 'operation' => 'set', 'value' => 42]]]];
        yield ['UpsertMemo', ['memo' => ['note' => 'hello memo']]];
        yield ['signal', 'go'];
        return 'done';
    })
    // Runs ActivityWorkflow as a child; returns its result and execution.
    ->workflow('ParentWorkflow', run: function (array $info, string $rrId, string $s) {
        $result = yield ['ExecuteChildWorkflow', ['name' => 'ActivityWorkflow', 'options' => []], [$s]];
        $execution = yield ['child-execution'];
        return ['result' => $result, 'child' => $execution, 'parent_run' => $info['WorkflowExecution']['RunID']];
    })
    // Signals one workflow (`go`) and cancels another, by workflow id.
    ->workflow('ExternalWorkflow', run: function (array $info, string $rrId, string $signalTarget, string $cancelTarget) {
        yield ['SignalExternalWorkflow', ['namespace' => 'default', 'workflowID' => $signalTarget, 'runID' => '', 'signal' => 'go', 'childWorkflowOnly' => false], ['from outside']];
        yield ['CancelExternalWorkflow', ['namespace' => 'default', 'workflowID' => $cancelTarget, 'runID' => '']];
        return 'sent';
    })
    ->workflow('PanicWorkflow', run: function (array $info, string $rrId) {
        yield ['Panic', 'panicked on purpose'];
    })
    // Waits an hour on a timer unless cancelled.
    ->workflow('TimerWorkflow', run: function (array $info, string $rrId) {
        yield ['NewTimer', ['ms' => 3_600_000]];
        return 'the timer fired';
    })
    // Runs `until_cancelled`; a workflow cancel cancels the activity, whose result it returns.
    ->workflow('CancelActivityWorkflow', run: function (array $info, string $rrId) {
        yield ['keep-on-cancel'];
        return yield ['ExecuteActivity', ['name' => 'until_cancelled', 'options' => ['StartToCloseTimeout' => 60_000_000_000, 'HeartbeatTimeout' => 1_000_000_000, 'WaitForCancellation' => true]], []];
    })
    ->workflow('HeartbeatWorkflow', run: function (array $info, string $rrId, int $n) {
        return yield ['ExecuteActivity', ['name' => 'heartbeat', 'options' => ['StartToCloseTimeout' => 10_000_000_000, 'HeartbeatTimeout' => 10_000_000_000]], [$n]];
    });
$factory->newWorker($prefix . 'orders')
    ->workflow('PanicWorkflow', run: function (array $info, string $rrId) {
        yield ['Panic', 'panicked on purpose'];
    })
    ->workflow('OrderWorkflow', run: function (array $info, string $rrId, int $cents) {
        return yield ['ExecuteActivity', ['name' => 'charge', 'options' => ['StartToCloseTimeout' => 10_000_000_000]], [$cents]];
    })
    ->activity('charge', fn(array $info, int $cents) => "charged $cents");
$factory->run();
