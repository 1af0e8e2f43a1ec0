# Shared by the wrk comparisons: build, one held processor simulator, gateways pinned to
# CPU 0 measuring intake only, and a wrk run pinned to CPU 1 printing one summary line.
# Sourced with ROUNDS, SECS and CONNS set; the caller is in the repository root.
command -v wrk >/dev/null || { echo "needs wrk (apt-get install wrk)"; exit 1; }
cargo build --release -q -p gateway -p processor-sim
DIR=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; wait 2>/dev/null; rm -rf "$DIR"' EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# wait_port PORT: waits up to 5 s until 127.0.0.1:PORT accepts a connection (works for any
# build, including ones older than the ready line).
wait_port() {
  for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.05; done
  echo "nothing listens on 127.0.0.1:$1 after 5 s"; cat "$DIR"/*.log; exit 1
}

# The processor holds every payment (a 600 s delay), so each gateway's one worker stays
# busy and the measured path is intake only: parse, validate, dedup, queue, 202.
SIM_PORT=$(free_port)
LISTEN=127.0.0.1:$SIM_PORT IO_DRIVER=epoll taskset -c 1 target/release/processor-sim >"$DIR/sim.log" 2>&1 &
wait_port "$SIM_PORT"
curl -s -X PUT -H 'X-Rinha-Token: 123' -d '{"delay":600000}' "http://127.0.0.1:$SIM_PORT/admin/configurations/delay" >/dev/null

start_gateway() { # port io_driver [binary, default this tree's]
  CORES=1 LISTEN=127.0.0.1:$1 MAX_IN_FLIGHT=1 QUEUE_CAPACITY=8000000 IO_DRIVER=$2 \
    PROCESSOR_DEFAULT_URL=http://127.0.0.1:$SIM_PORT PROCESSOR_FALLBACK_URL=http://127.0.0.1:$SIM_PORT \
    taskset -c 0 "${3:-target/release/gateway}" >>"$DIR/gw-$1.log" 2>&1 &
  wait_port "$1"
}

run() { # name url
  taskset -c 1 wrk -t1 -c"$CONNS" -d"${SECS}s" --latency -s bench/wrk/post_payments.lua "$2" \
    | awk -v n="$1" '/Requests\/sec/ {rps=$2} /^ +99%/ {p99=$2} /^ +50%/ {p50=$2} END {printf "%s rps=%s p50=%s p99=%s\n", n, rps, p50, p99}'
}
