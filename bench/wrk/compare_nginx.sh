#!/usr/bin/env bash
# POST /payments on one gateway core against nginx `return 202` on one worker, measured
# the same way: wrk pinned to the other core, runs alternating A B A B.
# Usage: bench/wrk/compare_nginx.sh [rounds] [seconds] [connections]
set -euo pipefail
cd "$(dirname "$0")/../.."
ROUNDS=${1:-3}; SECS=${2:-5}; CONNS=${3:-64}
command -v wrk >/dev/null || { echo "needs wrk (apt-get install wrk)"; exit 1; }
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || { echo "needs nginx (apt-get install nginx)"; exit 1; }
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
cargo build --release -q --bin gateway --bin processor-sim
DIR=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$DIR"' EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
SIM_PORT=$(free_port); GW_PORT=$(free_port); NGX_PORT=$(free_port)

# The processor holds every payment (long delay), so the gateway's one worker is busy and
# the measured path is intake only: parse, validate, dedup, queue, 202.
LISTEN=127.0.0.1:$SIM_PORT IO_DRIVER=epoll taskset -c 1 target/release/processor-sim 2>"$DIR/sim.log" &
sleep 0.3
curl -s -X PUT -H 'X-Rinha-Token: 123' -d '{"delay":600000}' "http://127.0.0.1:$SIM_PORT/admin/configurations/delay" >/dev/null
CORES=1 LISTEN=127.0.0.1:$GW_PORT MAX_IN_FLIGHT=1 QUEUE_CAPACITY=8000000 IO_DRIVER=${IO_DRIVER:-auto} \
  PROCESSOR_DEFAULT_URL=http://127.0.0.1:$SIM_PORT PROCESSOR_FALLBACK_URL=http://127.0.0.1:$SIM_PORT \
  taskset -c 0 target/release/gateway 2>"$DIR/gw.log" &
sed -e "s#NGINX_DIR#$DIR#g" -e "s#NGINX_PORT#$NGX_PORT#g" bench/wrk/nginx-202.conf > "$DIR/nginx.conf"
taskset -c 0 "$NGINX" -c "$DIR/nginx.conf" -p "$DIR" 2>"$DIR/nginx.log" &
sleep 0.5
head -1 "$DIR/gw.log"

run() { # name url
  taskset -c 1 wrk -t1 -c"$CONNS" -d"${SECS}s" --latency -s bench/wrk/post_payments.lua "$2" \
    | awk -v n="$1" '/Requests\/sec/ {rps=$2} /^ +99%/ {p99=$2} /^ +50%/ {p50=$2} END {printf "%s rps=%s p50=%s p99=%s\n", n, rps, p50, p99}'
}
for i in $(seq "$ROUNDS"); do
  run gateway "http://127.0.0.1:$GW_PORT/payments"
  run nginx "http://127.0.0.1:$NGX_PORT/payments"
done
