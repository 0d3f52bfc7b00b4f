#!/usr/bin/env bash
# http-baseline: loads each trivial-handler server (cpp-httplib, Boost.Beast) with wrk on the
# same workload (GET /ping, keep-alive), 3 runs per point, and prints the median requests/s
# and p99 latency. Used for ADR 0013; the machine it ran on is noted there.
#
#   bench/http-baseline/run.sh BIN_DIR [DURATION_S=5]
set -euo pipefail
bin=${1:?usage: run.sh BIN_DIR [DURATION_S]}
duration=${2:-5}
command -v wrk > /dev/null || { echo "run.sh: wrk is not installed (apt-get install wrk)" >&2; exit 1; }

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
# wrk's latency "1.23ms"/"456.00us"/"1.2s" in microseconds.
to_us() { awk '{v=$1; if (v ~ /us$/) {sub(/us/,"",v); print v} else if (v ~ /ms$/) {sub(/ms/,"",v); print v*1000} else {sub(/s/,"",v); print v*1000000}}'; }

run_server() {  # name binary port threads
  local name=$1 binary=$2 port=$3 threads=$4
  "$binary" --port "$port" --threads "$threads" & local pid=$!
  trap 'kill $pid 2>/dev/null || true' EXIT
  for _ in $(seq 50); do curl -fs "http://127.0.0.1:$port/ping" > /dev/null && break; sleep 0.1; done
  for conns in 8 64; do
    local rps=() p99=()
    for _ in 1 2 3; do
      out=$(wrk -t2 -c"$conns" -d"${duration}s" --latency "http://127.0.0.1:$port/ping")
      rps+=("$(awk '/Requests\/sec/ {print $2}' <<< "$out")")
      p99+=("$(awk '$1 == "99%" {print $2}' <<< "$out" | to_us)")
    done
    printf 'http-baseline lib=%s threads=%s connections=%s rps_median=%s rps_runs=%s p99_us_median=%s\n' \
      "$name" "$threads" "$conns" "$(printf '%s\n' "${rps[@]}" | median)" "$(IFS=,; echo "${rps[*]}")" \
      "$(printf '%s\n' "${p99[@]}" | median)"
  done
  kill "$pid"; wait "$pid" 2>/dev/null || true
  trap - EXIT
}

run_server httplib "$bin/jetsource-http-baseline-httplib" 18081 16
run_server beast "$bin/jetsource-http-baseline-beast" 18082 2
run_server beast "$bin/jetsource-http-baseline-beast" 18083 1
