#!/usr/bin/env bash
# Instruction profile (callgrind) of one gateway core under wrk: two simulators answer at
# once, every payment is accepted, processed and recorded. Prints instructions per
# payment and the largest costs. Instruction counts are repeatable whatever else the
# machine does, so two builds compare without alternating runs.
# Usage: bench/profile.sh [seconds]   (needs valgrind and wrk; builds release binaries)
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-8}
cargo build --release -q -p gateway -p processor-sim
OUT=$(mktemp -d)
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; }
trap cleanup EXIT
for p in 18001:0.07 18002:0.10; do
  LISTEN=127.0.0.1:${p%%:*} TRANSACTION_FEE=${p##*:} IO_DRIVER=epoll \
    target/release/processor-sim 2>/dev/null & pids+=($!)
done
sleep 0.5
CORES=1 IO_DRIVER=epoll LISTEN=127.0.0.1:18080 INSTANCE_ID=gw \
  PROCESSOR_DEFAULT_URL=http://127.0.0.1:18001 PROCESSOR_FALLBACK_URL=http://127.0.0.1:18002 \
  valgrind --tool=callgrind --callgrind-out-file="$OUT/callgrind.out" target/release/gateway \
  2>"$OUT/valgrind.log" & G=$!
sleep 4
wrk -t1 -c16 -d"${SECS}s" -s bench/wrk/post_payments.lua http://127.0.0.1:18080/payments | grep -E "requests in"
sleep 3
N=$(curl -s http://127.0.0.1:18080/payments-summary | python3 -c 'import json,sys; s=json.load(sys.stdin); print(s["default"]["totalRequests"]+s["fallback"]["totalRequests"])')
kill -TERM $G; wait $G 2>/dev/null || true
TOTAL=$(callgrind_annotate "$OUT/callgrind.out" | awk '/PROGRAM TOTALS/ {gsub(",","",$1); print $1}')
echo "payments: $N; instructions: $TOTAL; per payment: $((TOTAL / N))"
callgrind_annotate --inclusive=yes "$OUT/callgrind.out" | grep -E "post_payment::|request::parse |(payment|body)::parse_body |(Signals|Vitals)::expected |Core<L>::publish |Service>::call" | cut -c1-150
echo "profile: $OUT/callgrind.out"
