#!/usr/bin/env bash
# Runs two processor simulators and two gateways locally, in the foreground.
# LEDGER=redis uses a local redis-server instead of the memory ledger with PEERS.
# Ctrl-C (or SIGTERM) stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."
LEDGER=${LEDGER:-memory}
cargo build --release -q --bin gateway --bin processor-sim
DIR=$(mktemp -d)
cleanup() { kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$DIR"; }
trap cleanup EXIT INT TERM

LISTEN=127.0.0.1:8001 TRANSACTION_FEE=0.05 INSTANCE_ID=processor-default target/release/processor-sim &
LISTEN=127.0.0.1:8002 TRANSACTION_FEE=0.15 INSTANCE_ID=processor-fallback target/release/processor-sim &
common=(PROCESSOR_DEFAULT_URL=http://127.0.0.1:8001 PROCESSOR_FALLBACK_URL=http://127.0.0.1:8002)
if [ "$LEDGER" = redis ]; then
  redis-server --port 0 --unixsocket "$DIR/redis.sock" --save "" --appendonly no >/dev/null &
  common+=(REDIS_URL="unix:$DIR/redis.sock")
  gw1=(); gw2=()
else
  gw1=(PEERS=127.0.0.1:9998); gw2=(PEERS=127.0.0.1:9999)
fi
sleep 0.3
env "${common[@]}" "${gw1[@]}" LISTEN=127.0.0.1:9999 INSTANCE_ID=gateway-1 target/release/gateway &
env "${common[@]}" "${gw2[@]}" LISTEN=127.0.0.1:9998 INSTANCE_ID=gateway-2 target/release/gateway &
sleep 0.5
echo "gateways:   http://127.0.0.1:9999  http://127.0.0.1:9998   (ledger: $LEDGER)"
echo "processors: http://127.0.0.1:8001 (default)  http://127.0.0.1:8002 (fallback), admin token 123"
echo "Ctrl-C stops everything."
wait
