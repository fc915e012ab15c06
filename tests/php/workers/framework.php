<?php
// Stands in for a framework's worker (Laravel Octane's roadrunner-worker, the Symfony runtime,
// Spiral, Temporal): says on stderr that it booted, as frameworks do, and answers each request
// with what it was started with, so tests/integrations can check how rr ran it.
require __DIR__ . '/../lib/Http.php';

use RrTest\HttpWorker;

fwrite(STDERR, "framework worker booted\n");
$http = HttpWorker::create();
while (($req = $http->waitRequest()) !== null) {
    $path = parse_url($req['uri'], PHP_URL_PATH);
    if ($path === '/log') {
        // What a framework's logger, `dump()` or Octane's error stream writes.
        fwrite(STDERR, urldecode($req['rawQuery']) . "\n");
    }
    $env = [];
    foreach (['APP_RUNTIME', 'APP_ENV', 'APP_BASE_PATH', 'LARAVEL_OCTANE', 'RR_MODE', 'RR_RPC', 'RR_RELAY'] as $name) {
        $env[$name] = getenv($name);
    }
    $body = ['argv' => $argv, 'cwd' => getcwd(), 'env' => $env, 'pid' => getmypid(), 'uri' => $req['uri']];
    $http->respond(200, json_encode($body, JSON_THROW_ON_ERROR), ['Content-Type' => 'application/json']);
}
