<?php
// The framework app under PHP-FPM: bootstrap on every request (the comparison in bench/http).
require __DIR__ . '/app.php';

header('Content-Type: application/json');
echo handle(bootstrap(), parse_url($_SERVER['REQUEST_URI'], PHP_URL_PATH) ?: '/');
