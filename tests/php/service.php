<?php
// A process for the service plugin tests: records its pid in $SERVICE_LOG, says hello on stdout,
// then sleeps $SLEEP_MS milliseconds and exits.
file_put_contents(getenv('SERVICE_LOG'), getmypid() . "\n", FILE_APPEND | LOCK_EX);
echo "hello from ", getmypid(), "\n";
usleep(1000 * (int)getenv('SLEEP_MS'));
