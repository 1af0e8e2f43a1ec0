#!/usr/bin/env bash
# The quick set (~5 min): criterion with short runs, the wrk comparisons (gateway vs nginx,
# io_uring vs epoll; 3 alternating pairs of 3 s), and the preview scenario compressed 4×.
# Needs root (the scenario runs in its own network namespace).
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/env.sh
echo "== criterion"
cargo bench -q -p bench -- --warm-up-time 1 --measurement-time 2
echo "== wrk: gateway vs nginx return 202 (one core)"
bench/wrk/compare_nginx.sh 3 3 64
echo "== wrk: io_uring vs epoll (same binary, one core)"
bench/wrk/compare_drivers.sh 3 3 64
echo "== scenario: preview, compressed 4x"
bench/scenario.py --scenario preview --compress 4
