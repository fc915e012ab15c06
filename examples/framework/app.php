<?php
// A simulated framework: bootstrap() stands for what Laravel or Symfony do before the first
// request (load config, register services, compile routes). Under PHP-FPM it runs on every
// request; under rr it runs once per worker. handle() is the per-request work.

function bootstrap(): array
{
    $config = [];
    for ($i = 0; $i < 2000; $i++) {
        $config["service.$i"] = ['class' => "App\\Service$i", 'args' => range(0, 5), 'tags' => ["tag" . ($i % 17)]];
    }
    $routes = [];
    for ($i = 0; $i < 300; $i++) {
        $routes[] = ['/^\/api\/resource' . $i . '\/(\d+)$/', "handler$i"];
    }
    $routes[] = ['/^\/$/', 'home'];
    $container = [];
    foreach ($config as $id => $def) {
        $container[$id] = fn() => new ArrayObject($def['args']);
    }
    $views = [];
    for ($i = 0; $i < 200; $i++) {
        $views["view$i"] = str_repeat("<div>{{ value$i }}</div>", 10);
    }
    return ['config' => $config, 'routes' => $routes, 'container' => $container, 'views' => $views];
}

function handle(array $app, string $path): string
{
    foreach ($app['routes'] as [$pattern, $handler]) {
        if (preg_match($pattern, $path, $m)) {
            return json_encode(['handler' => $handler, 'services' => count($app['container']), 'id' => $m[1] ?? null]);
        }
    }
    return json_encode(['handler' => 'not_found']);
}
