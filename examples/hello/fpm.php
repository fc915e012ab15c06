<?php
// The hello app under PHP-FPM (the comparison in bench/http).
header('Content-Type: text/plain');
echo "Hello, World!\n";
