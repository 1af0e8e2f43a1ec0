#!/usr/bin/env bash
# The front door in front of two gateways, compared A B A B under the same wrk load.
#
#   bench/lb/compare.sh nginx  [pairs] [seconds] [connections]
#       A: lb LB_MODE=handoff   B: nginx as the best Rinha entries ran it (nginx-lb.conf)
#       Everything on the server side pinned to CPU 0, wrk to CPU 1. No cgroups.
#   bench/lb/compare.sh proxy  [pairs] [seconds] [connections]
#       A: lb LB_MODE=handoff   B: lb LB_MODE=proxy
#   bench/lb/compare.sh driver [pairs] [seconds] [connections]
#       A: gateways IO_DRIVER=epoll   B: gateways IO_DRIVER=uring   (lb handoff, epoll)
#       proxy and driver run every process in a cgroup v1 cpu+memory group with the
#       limits of docker-compose.yml (LB_CPU/LB_MEM, GW_CPU/GW_MEM); wrk pinned to CPU 1.
#
# Each run starts fresh gateways and front door (the two processor simulators stay).
# SIM_DELAY_MS (default 600000) is the simulators' delay: by default they hold every
# payment, so the measured path is the front door plus the gateways' intake (parse,
# validate, dedup, queue, 202) and nothing else competes for the CPU; SIM_DELAY_MS=0
# lets the gateways' processor clients work too.
#
# PACE_MS, when set, paces each connection (bench/wrk/post_payments_paced.lua): the
# load is then below saturation, like the official test's (e.g. 600 connections,
# PACE_MS=1000).
#
# Per run: requests/s, p99, CPU seconds of the front door + both gateways (deltas of
# the time their threads ran, /proc/<pid>/task/*/schedstat), CPU per request, non-2xx answers. At the end:
# ratios A/B per pair with min/median/max.
set -euo pipefail
cd "$(dirname "$0")/../.."
WHAT=${1:?usage: bench/lb/compare.sh nginx|proxy|driver [pairs] [seconds] [connections]}
PAIRS=${2:-3}; SECS=${3:-10}; CONNS=${4:-64}
LB_CPU=${LB_CPU:-0.1}; LB_MEM=${LB_MEM:-20}   # CPUs, MB: docker-compose.yml's limits
GW_CPU=${GW_CPU:-0.7}; GW_MEM=${GW_MEM:-165}
SIM_DELAY_MS=${SIM_DELAY_MS:-600000}
SCRIPT=bench/wrk/post_payments.lua
if [ -n "${PACE_MS:-}" ]; then SCRIPT=bench/wrk/post_payments_paced.lua; fi
case "$WHAT" in nginx|proxy|driver) ;; *) echo "unknown comparison $WHAT"; exit 2 ;; esac
command -v wrk >/dev/null || { echo "needs wrk (apt-get install wrk)"; exit 1; }
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
[ "$WHAT" != nginx ] || [ -x "$NGINX" ] || { echo "needs nginx (apt-get install nginx)"; exit 1; }
if [ "$WHAT" != nginx ]; then
  [ -w /sys/fs/cgroup/cpu ] && [ -w /sys/fs/cgroup/memory ] \
    || { echo "needs writable cgroup v1 cpu and memory controllers (run as root)"; exit 1; }
fi
cargo build --release -q -p gateway -p processor-sim -p lb

DIR=$(mktemp -d)
CG="rinha-lb-bench-$$"
RUN_PIDS=()
stop_run() {
  for p in "${RUN_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${RUN_PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  RUN_PIDS=()
}
cleanup() {
  stop_run
  kill $(jobs -p) 2>/dev/null || true
  wait 2>/dev/null || true
  for g in lb gw1 gw2; do
    rmdir "/sys/fs/cgroup/cpu/$CG-$g" "/sys/fs/cgroup/memory/$CG-$g" 2>/dev/null || true
  done
  rm -rf "$DIR"
}
trap cleanup EXIT INT TERM

# cgroup NAME CPUS MB: a cpu and a memory group with those limits.
cgroup() {
  local cpu=/sys/fs/cgroup/cpu/$CG-$1 mem=/sys/fs/cgroup/memory/$CG-$1
  mkdir -p "$cpu" "$mem"
  echo 100000 > "$cpu/cpu.cfs_period_us"
  echo "$(python3 -c "print(round($2 * 100000))")" > "$cpu/cpu.cfs_quota_us"
  echo $(( $3 * 1024 * 1024 )) > "$mem/memory.limit_in_bytes"
}
# launch GROUP LOG ENV... -- CMD...: starts CMD (in the cgroups GROUP unless it is
# "none"), so every thread it creates is born inside them; records its pid.
launch() {
  local group=$1 log=$2; shift 2
  if [ "$group" = none ]; then
    env "$@" >"$log" 2>&1 &
  else
    env CG_CPU="/sys/fs/cgroup/cpu/$CG-$group" CG_MEM="/sys/fs/cgroup/memory/$CG-$group" \
      sh -c 'echo $$ > "$CG_CPU/cgroup.procs" && echo $$ > "$CG_MEM/cgroup.procs" && exec env "$@"' \
      sh "$@" >"$log" 2>&1 &
  fi
  RUN_PIDS+=($!)
  LAST_PID=$!
}
wait_log() { # LOG PATTERN: waits up to 5 s for PATTERN in LOG (a server's ready line)
  for _ in $(seq 100); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.05; done
  echo "timed out waiting for '$2' in $1:"; cat "$1"; exit 1
}
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
cpu_ns() { # CPU time of the given processes, all their threads, in ns (schedstat:
  # the same time as utime+stime in /proc/<pid>/stat, without its 10 ms ticks, which
  # are too coarse for the paced runs)
  local t=0 p f
  for p in "$@"; do
    for f in /proc/"$p"/task/*/schedstat; do t=$(( t + $(cut -d' ' -f1 "$f") )); done
  done
  echo "$t"
}

# Two simulators, outside any cgroup, on CPU 1 with wrk.
SIM_URLS=()
for n in 1 2; do
  LISTEN=127.0.0.1:0 INSTANCE_ID=sim$n IO_DRIVER=epoll taskset -c 1 target/release/processor-sim >"$DIR/sim$n.log" 2>&1 &
  wait_log "$DIR/sim$n.log" "^ready listen "
  port=$(grep -o '^ready listen [0-9.]*:[0-9]*' "$DIR/sim$n.log" | head -1 | sed 's/.*://')
  curl -sf -X PUT -H 'X-Rinha-Token: 123' -d "{\"delay\":$SIM_DELAY_MS}" \
    "http://127.0.0.1:$port/admin/configurations/delay" >/dev/null
  SIM_URLS+=("http://127.0.0.1:$port")
done

if [ "$WHAT" = nginx ]; then
  PIN=(taskset -c 0); GROUPS_ON=0
else
  PIN=(); GROUPS_ON=1
  cgroup lb "$LB_CPU" "$LB_MEM"; cgroup gw1 "$GW_CPU" "$GW_MEM"; cgroup gw2 "$GW_CPU" "$GW_MEM"
fi
group() { if [ "$GROUPS_ON" = 1 ]; then echo "$1"; else echo none; fi; }

# start_gateways DRIVER: two gateways with the memory ledger, peers of each other.
start_gateways() {
  rm -f "$DIR"/gw*.sock "$DIR"/gw*.handoff
  GW_PIDS=()
  for n in 1 2; do
    other=$(( 3 - n ))
    launch "$(group gw$n)" "$DIR/gw$n.log" CORES=1 IO_DRIVER="$1" INSTANCE_ID=gateway-$n \
      LISTEN="unix:$DIR/gw$n.sock" HANDOFF="unix:$DIR/gw$n.handoff" PEERS="unix:$DIR/gw$other.sock" \
      PROCESSOR_DEFAULT_URL="${SIM_URLS[0]}" PROCESSOR_FALLBACK_URL="${SIM_URLS[1]}" \
      QUEUE_CAPACITY=4000000 "${PIN[@]}" target/release/gateway
    GW_PIDS+=("$LAST_PID")
  done
  wait_log "$DIR/gw1.log" "^ready listen "; wait_log "$DIR/gw2.log" "^ready listen "
}
# start_front KIND: the lb in handoff or proxy mode, or nginx; sets URL and FRONT_PIDS.
start_front() {
  local port; port=$(free_port)
  URL="http://127.0.0.1:$port/payments"
  case "$1" in
    handoff|proxy)
      if [ "$1" = handoff ]; then ups="unix:$DIR/gw1.handoff,unix:$DIR/gw2.handoff"
      else ups="unix:$DIR/gw1.sock,unix:$DIR/gw2.sock"; fi
      launch "$(group lb)" "$DIR/lb.log" LB_MODE="$1" LISTEN="127.0.0.1:$port" UPSTREAMS="$ups" \
        CORES=1 IO_DRIVER=epoll "${PIN[@]}" target/release/lb
      FRONT_PIDS=("$LAST_PID")
      wait_log "$DIR/lb.log" "^ready listen "
      ;;
    nginx)
      sed -e "s#NGINX_DIR#$DIR#g" -e "s#NGINX_PORT#$port#g" \
          -e "s#GW1_SOCK#$DIR/gw1.sock#g" -e "s#GW2_SOCK#$DIR/gw2.sock#g" \
          bench/lb/nginx-lb.conf > "$DIR/nginx.conf"
      launch none "$DIR/nginx.log" "${PIN[@]}" "$NGINX" -c "$DIR/nginx.conf" -p "$DIR"
      for _ in $(seq 100); do [ -n "$(pgrep -P "$LAST_PID" || true)" ] && break; sleep 0.05; done
      # shellcheck disable=SC2207
      FRONT_PIDS=("$LAST_PID" $(pgrep -P "$LAST_PID"))
      sleep 0.2
      ;;
  esac
}

# cgroup_stats: per group, periods throttled so far and peak memory (MB) since reset.
cgroup_stats() {
  [ "$GROUPS_ON" = 1 ] || return 0
  local g out=""
  for g in lb gw1 gw2; do
    out+=" ${g}_throttled=$(awk '/nr_throttled/ {print $2}' "/sys/fs/cgroup/cpu/$CG-$g/cpu.stat")"
    out+=" ${g}_peak_mb=$(( $(cat "/sys/fs/cgroup/memory/$CG-$g/memory.max_usage_in_bytes") / 1048576 ))"
  done
  echo "$out"
}
reset_peaks() {
  [ "$GROUPS_ON" = 1 ] || return 0
  local g
  for g in lb gw1 gw2; do echo 0 > "/sys/fs/cgroup/memory/$CG-$g/memory.max_usage_in_bytes"; done
}

# one NAME FRONT DRIVER: one measured run on a fresh topology; appends a line to results.
one() {
  reset_peaks
  start_gateways "$3"
  start_front "$2"
  # A first request through the front door, so a failure to start shows up here.
  curl -sf -o /dev/null -X POST -H 'Content-Type: application/json' \
    -d '{"correlationId":"00000000-0000-4000-8000-000000000000","amount":1}' "$URL" \
    || { echo "$1: the front door does not answer"; tail -n 5 "$DIR"/*.log; exit 1; }
  local pids=("${FRONT_PIDS[@]}" "${GW_PIDS[@]}") before after stats0
  stats0=$(cgroup_stats)
  before=$(cpu_ns "${pids[@]}")
  taskset -c 1 wrk -t1 -c"$CONNS" -d"${SECS}s" --latency -s "$SCRIPT" "$URL" > "$DIR/wrk.out"
  after=$(cpu_ns "${pids[@]}")
  local stats1; stats1=$(cgroup_stats)
  stop_run
  python3 - "$1" "$DIR/wrk.out" $(( after - before )) "$stats0" "$stats1" <<'PY' | tee -a "$DIR/results"
import re, sys
name, path, cpu_ns = sys.argv[1], sys.argv[2], int(sys.argv[3])
s0 = dict(f.split("=") for f in sys.argv[4].split())
s1 = dict(f.split("=") for f in sys.argv[5].split())
# Throttled periods during the run; peak memory over the run.
groups = " ".join(f"{k}={int(v) - int(s0[k])}" if k.endswith("throttled") else f"{k}={v}"
                  for k, v in s1.items())
out = open(path).read()
unit = {"us": 1e-3, "ms": 1.0, "s": 1e3}
m = re.search(r"^\s+99%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
p99 = float(m.group(1)) * unit[m.group(2)]
reqs = int(re.search(r"(\d+) requests in", out).group(1))
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
errs = re.search(r"Socket errors: (.*)", out)
cpu = cpu_ns / 1e9
print(f"{name} rps={rps:.0f} p99_ms={p99:.3f} cpu_s={cpu:.2f} cpu_us_per_req={cpu / reqs * 1e6:.2f} "
      f"non2xx={bad.group(1) if bad else 0} {groups} "
      f"socket_errors={(errs.group(1).strip() if errs else 'none').replace(' ', '')}")
PY
}

case "$WHAT" in
  nginx)  A=(lb-handoff handoff auto);   B=(nginx nginx auto) ;;
  proxy)  A=(lb-handoff handoff auto);   B=(lb-proxy proxy auto) ;;
  driver) A=(gw-epoll handoff epoll);    B=(gw-uring handoff uring) ;;
esac
echo "# $WHAT: $PAIRS pairs, wrk -t1 -c$CONNS -d${SECS}s -s $SCRIPT${PACE_MS:+ (PACE_MS=$PACE_MS)}; sim delay ${SIM_DELAY_MS} ms" \
  "$([ "$GROUPS_ON" = 1 ] && echo "; cgroups lb ${LB_CPU} CPU/${LB_MEM} MB, gateways ${GW_CPU} CPU/${GW_MEM} MB each")"
for _ in $(seq "$PAIRS"); do
  one "${A[@]}"
  one "${B[@]}"
done
python3 - "$DIR/results" "${A[0]}" "${B[0]}" <<'PY'
import statistics, sys
path, a, b = sys.argv[1:]
runs = {a: [], b: []}
for line in open(path):
    name, *fields = line.split()
    runs[name].append({k: float(v) for k, v in (f.split("=") for f in fields[:4])})
def show(key, label):
    r = [x[key] / y[key] for x, y in zip(runs[a], runs[b])]
    print(f"{label} {a}/{b}: min {min(r):.2f}  median {statistics.median(r):.2f}  max {max(r):.2f}")
show("p99_ms", "p99 ratio")
show("cpu_us_per_req", "CPU/request ratio")
show("rps", "rps ratio")
PY
