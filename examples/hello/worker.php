<?php
// Hello world over RoadRunner's HTTP protocol, with our test worker library
// (tests/php/lib). A real app uses spiral/roadrunner-http the same way.
require __DIR__ . '/../../tests/php/lib/Http.php';

$http = RrTest\HttpWorker::create();
while (($request = $http->waitRequest()) !== null) {
    $http->respond(200, "Hello, World!\n", ['Content-Type' => 'text/plain']);
}
