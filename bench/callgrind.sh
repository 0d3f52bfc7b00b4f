#!/usr/bin/env bash
# Instructions per commit appended, per event loaded and per event applied, counted by
# `valgrind --tool=callgrind`: a yardstick that does not move with whatever else the machine
# does (docs/performance.md, "Instruction counts"). Prints one line:
#   instructions_per_commit_appended=… instructions_per_event_loaded=… instructions_per_event_applied=…
#   instructions_per_cold_load=… instructions_per_cold_load_raw=…  (one default load() of a
#   20-event aggregate whose head carries its state; raw: the same get, js_DirectGetMsg, undecoded)
#   instructions_per_event_pipeline=… instr_ratio_pipeline=…   (the raw pipeline, and it / applied)
#   instructions_per_event_pipeline_nodecode=… instr_ratio_pipeline_nodecode=…  (one that reads
#   no body)
#
#   bench/callgrind.sh [--events N] [--runs R]     (defaults: N = 2000, R = 1)
#
# Each figure is (Ir(2N) - Ir(N)) / N, Ir being the instructions callgrind counts in the whole
# jetsource-bench process (all its threads) for a run of `instr-append`, `instr-load`,
# `instr-cold-load[-raw]`, `instr-project` or `instr-pipeline` (bench/instructions.cpp) with
# --events N and with 2N (for the cold loads: N and 2N loads):
# start-up, connecting and set-up are the same in both runs and cancel out. nats-server is a separate process, started
# here (not under valgrind): only the client's instructions are counted, never the server's.
# With R > 1 each figure is the median of R pairs of runs.
#
# Environment: JETSOURCE_BENCH = the binary (default build-bench/bin/jetsource-bench, built by
# this script when missing: RelWithDebInfo, -DJETSOURCE_BUILD_BENCH=ON, only jetsource-bench).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
events=2000
runs=1
while [[ $# -gt 0 ]]; do
  case "$1" in
    --events) events="$2"; shift 2 ;;
    --runs) runs="$2"; shift 2 ;;
    *) echo "usage: bench/callgrind.sh [--events N] [--runs R]" >&2; exit 2 ;;
  esac
done

"$root/scripts/install-deps.sh" bench  # valgrind
bench="${JETSOURCE_BENCH:-$root/build-bench/bin/jetsource-bench}"
if [[ ! -x "$bench" ]]; then
  echo "# callgrind: building $bench" >&2
  cmake -S "$root" -B "$root/build-bench" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DJETSOURCE_BUILD_BENCH=ON -DJETSOURCE_BUILD_TESTS=OFF >/dev/null
  cmake --build "$root/build-bench" -j "$(nproc)" --target jetsource-bench >&2
fi

work="$(mktemp -d /tmp/jetsource-callgrind-XXXXXX)"
server_pid=""
cleanup() {
  if [[ -n "$server_pid" ]]; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

# A free loopback port: the kernel's choice for a socket bound to port 0.
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
nats-server -js -a 127.0.0.1 -p "$port" -sd "$work/store" >"$work/nats-server.log" 2>&1 &
server_pid=$!
url="nats://127.0.0.1:$port"
for _ in $(seq 100); do
  (echo >"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
  sleep 0.1
done

# The instructions callgrind counted in one run of `jetsource-bench <scenario> --events <n>`.
count() {
  local scenario="$1" n="$2" out="$work/callgrind.$1.$2.$RANDOM"
  valgrind --tool=callgrind --callgrind-out-file="$out" --trace-children=no \
    "$bench" "$scenario" --events "$n" --nats-url "$url" >"$work/last.out" 2>"$work/last.err" || {
    echo "callgrind: $scenario --events $n failed:" >&2
    cat "$work/last.out" "$work/last.err" >&2
    exit 1
  }
  awk '/^(summary|totals):/ {print $2; exit}' "$out"
}

for n in "$events" "$((2 * events))"; do
  "$bench" instr-fill --events "$n" --nats-url "$url" >/dev/null 2>"$work/fill.err" || {
    cat "$work/fill.err" >&2
    exit 1
  }
done

# (Ir(2N) - Ir(N)) / N for one scenario, median over the runs.
per_unit() {
  local scenario="$1" values=()
  for ((r = 0; r < runs; r++)); do
    local a b
    a="$(count "$scenario" "$events")"
    b="$(count "$scenario" "$((2 * events))")"
    values+=("$(((b - a) / events))")
    echo "# callgrind: $scenario N=$events: Ir(N)=$a Ir(2N)=$b -> $(((b - a) / events)) per unit" >&2
  done
  printf '%s\n' "${values[@]}" | sort -n | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'
}

append="$(per_unit instr-append)"
load="$(per_unit instr-load)"
cold="$(per_unit instr-cold-load)"
cold_raw="$(per_unit instr-cold-load-raw)"
apply="$(per_unit instr-project)"
pipeline="$(per_unit instr-pipeline)"
nodecode="$(per_unit instr-pipeline-nodecode)"
# The hand-written pipeline's instructions over the projector's: the throughput ratio's
# instruction-count twin (1.0 = the framework costs nothing over the raw loop).
ratio="$(awk -v p="$pipeline" -v a="$apply" 'BEGIN { printf "%.2f", (a > 0 ? p / a : 0) }')"
ratio_nodecode="$(awk -v p="$nodecode" -v a="$apply" 'BEGIN { printf "%.2f", (a > 0 ? p / a : 0) }')"
echo "instructions_per_commit_appended=$append instructions_per_event_loaded=$load" \
  "instructions_per_cold_load=$cold instructions_per_cold_load_raw=$cold_raw" \
  "instructions_per_event_applied=$apply instructions_per_event_pipeline=$pipeline" \
  "instr_ratio_pipeline=$ratio instructions_per_event_pipeline_nodecode=$nodecode" \
  "instr_ratio_pipeline_nodecode=$ratio_nodecode events=$events runs=$runs"
