#!/usr/bin/env bash
# Jobs per second end to end for the kafka and sqs drivers beside the memory driver (the ceiling),
# 2 PHP workers with an empty handler. Needs the brokers .ci/run starts (tansu :9092, moto :4566).
# Usage: bench/jobs_kafka_sqs.sh [jobs-per-run] [runs]     (results go to docs/BENCHMARKS.md by hand)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo run --release -q -p rr-jobs-kafka --example kafka_sqs_bench -- "${1:-2000}" "${2:-3}"
