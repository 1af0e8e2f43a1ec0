#!/usr/bin/env bash
# Runs fuzz targets for a time or a count of inputs, each from a corpus seeded by the
# tests (seed.py), and prints one line per target: inputs run, seconds, corpus size.
#
#   fuzz/run.sh --time 20            # every target for 20 s
#   fuzz/run.sh --runs 10000000 amount chunked
#
# Needs the nightly toolchain and cargo-fuzz. Corpora grow in fuzz/corpus/<target>
# (not committed); a crash stops the script with the input in fuzz/artifacts/<target>.
set -euo pipefail
cd "$(dirname "$0")"

limit=""
case "${1:-}" in
  --time) limit="-max_total_time=$2"; shift 2 ;;
  --runs) limit="-runs=$2"; shift 2 ;;
  *) echo "usage: $0 --time SECONDS | --runs COUNT [TARGET...]" >&2; exit 2 ;;
esac
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets < <(cargo +nightly fuzz list)
fi

python3 seed.py corpus >/dev/null
cargo +nightly fuzz build -O
mkdir -p logs
for t in "${targets[@]}"; do
  log="logs/$t.log"
  if ! cargo +nightly fuzz run -O "$t" "corpus/$t" -- "$limit" -print_final_stats=1 >"$log" 2>&1; then
    tail -40 "$log" >&2
    echo "$t: FAILED (log in fuzz/$log)" >&2
    exit 1
  fi
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  secs=$(sed -n 's/^Done [0-9]* runs in \([0-9]*\) second.*/\1/p' "$log" | tail -1)
  echo "$t: ${runs:-?} inputs in ${secs:-?} s, corpus $(ls "corpus/$t" | wc -l)"
done
