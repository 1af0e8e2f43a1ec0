#!/usr/bin/env bash
# POST /payments on one gateway core against nginx `return 202` on one worker, measured
# the same way: wrk pinned to the other core, runs alternating A B A B, ratios
# gateway/nginx. IO_DRIVER picks the gateway's driver (auto).
# Usage: bench/wrk/compare_nginx.sh [rounds] [seconds] [connections]
set -euo pipefail
cd "$(dirname "$0")/../.."
ROUNDS=${1:-3}; SECS=${2:-5}; CONNS=${3:-64}
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || { echo "needs nginx (apt-get install nginx)"; exit 1; }
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
. bench/wrk/common.sh
GW_PORT=$(free_port); NGX_PORT=$(free_port)
start_gateway "$GW_PORT" "${IO_DRIVER:-auto}"
sed -e "s#NGINX_DIR#$DIR#g" -e "s#NGINX_PORT#$NGX_PORT#g" bench/wrk/nginx-202.conf > "$DIR/nginx.conf"
taskset -c 0 "$NGINX" -c "$DIR/nginx.conf" -p "$DIR" 2>"$DIR/nginx.log" &
wait_port "$NGX_PORT"
grep -m1 'listening on' "$DIR/gw-$GW_PORT.log" || true
for i in $(seq "$ROUNDS"); do
  run gateway "http://127.0.0.1:$GW_PORT/payments"
  run nginx "http://127.0.0.1:$NGX_PORT/payments"
done | python3 bench/wrk/ratios.py ${MARKDOWN:+--markdown}
