#!/usr/bin/env bash
# The same gateway binary on one core under io_uring and under epoll, measured the same
# way: wrk pinned to the other core, runs alternating A B A B, ratios uring/epoll.
# Usage: bench/wrk/compare_drivers.sh [rounds] [seconds] [connections]
set -euo pipefail
cd "$(dirname "$0")/../.."
ROUNDS=${1:-3}; SECS=${2:-5}; CONNS=${3:-64}
. bench/wrk/common.sh
URING_PORT=$(free_port); EPOLL_PORT=$(free_port)
start_gateway "$URING_PORT" uring
start_gateway "$EPOLL_PORT" epoll
cat "$DIR"/gw-*.log | grep -o 'io driver [a-z_]*' | sort | uniq -c
for i in $(seq "$ROUNDS"); do
  run uring "http://127.0.0.1:$URING_PORT/payments"
  run epoll "http://127.0.0.1:$EPOLL_PORT/payments"
done | python3 bench/wrk/ratios.py ${MARKDOWN:+--markdown}
