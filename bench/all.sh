#!/usr/bin/env bash
# Everything (~25 min): criterion, the wrk comparisons (5 alternating pairs of 5 s, the
# nginx one under each driver), the lb comparison when bench/lb/compare.sh exists, both
# full scenarios, and both again under the docker-compose cpu/memory limits.
# Needs root (network namespaces, cgroups). Results: bench/results/, plots: bench/plots/.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/env.sh
echo "== criterion"
cargo bench -q -p bench
for d in uring epoll; do
  echo "== wrk: gateway ($d) vs nginx return 202 (one core)"
  IO_DRIVER=$d bench/wrk/compare_nginx.sh 5 5 64
done
echo "== wrk: io_uring vs epoll (same binary, one core)"
bench/wrk/compare_drivers.sh 5 5 64
if [ -x bench/lb/compare.sh ]; then
  for w in nginx proxy driver; do
    echo "== lb: $w (saturating, then paced at the test's rate)"
    bench/lb/compare.sh "$w" 3 10 64
    PACE_MS=1000 bench/lb/compare.sh "$w" 3 10 600
  done
fi
for s in preview final; do
  echo "== scenario: $s"
  bench/scenario.py --scenario "$s"
  echo "== scenario: $s under the docker-compose limits"
  bench/scenario.py --scenario "$s" --limits --no-build
done
