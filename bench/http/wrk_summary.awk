#!/usr/bin/awk -f
# `wrk --latency` output to one line: requests/s, p50 ms, p99 ms (the bench scripts' shared parser).
function ms(v) {
  if (v ~ /us$/) { sub("us", "", v); return v / 1000 }
  if (v ~ /ms$/) { sub("ms", "", v); return v + 0 }
  if (v ~ /s$/) { sub("s", "", v); return v * 1000 }
  return v
}
/Requests\/sec/ { rps = $2 }
$1 == "50%" { p50 = ms($2) }
$1 == "99%" { p99 = ms($2) }
END { print rps, p50, p99 }
