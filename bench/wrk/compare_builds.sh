#!/usr/bin/env bash
# This tree's gateway against another build of it (say, the last commit's), on one core
# under the same driver, measured the same way: wrk pinned to the other core, runs
# alternating A B A B, ratios this/other. Build the other one first, for example:
#   git worktree add /tmp/base HEAD~1 && (cd /tmp/base && cargo build --release --bin gateway)
# Usage: bench/wrk/compare_builds.sh other-gateway-binary [rounds] [seconds] [connections]
set -euo pipefail
OTHER=$(realpath "${1:?usage: compare_builds.sh other-gateway-binary [rounds] [seconds] [connections]}")
cd "$(dirname "$0")/../.."
ROUNDS=${2:-3}; SECS=${3:-5}; CONNS=${4:-64}
DRIVER=${IO_DRIVER:-epoll}
. bench/wrk/common.sh
THIS_PORT=$(free_port); OTHER_PORT=$(free_port)
start_gateway "$THIS_PORT" "$DRIVER"
start_gateway "$OTHER_PORT" "$DRIVER" "$OTHER"
for i in $(seq "$ROUNDS"); do
  run this "http://127.0.0.1:$THIS_PORT/payments"
  run other "http://127.0.0.1:$OTHER_PORT/payments"
done | python3 bench/wrk/ratios.py ${MARKDOWN:+--markdown}
