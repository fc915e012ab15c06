<?php
// The framework app as an rr worker: bootstrap once, then serve requests.
require __DIR__ . '/../../tests/php/lib/Http.php';
require __DIR__ . '/app.php';

$app = bootstrap();
$http = RrTest\HttpWorker::create();
while (($request = $http->waitRequest()) !== null) {
    $path = parse_url($request['uri'], PHP_URL_PATH) ?: '/';
    $http->respond(200, handle($app, $path), ['Content-Type' => 'application/json']);
}
