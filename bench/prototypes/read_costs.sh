#!/usr/bin/env bash
# ADR 0014: server CPU and wall time to read a pre-filled stream (200k commits over 50k ids) as
# a group would: member cursors (one unfiltered consumer per member) or partition consumers (one
# filtered consumer per partition). Needs streams X16/X64 filled by react_probe (see the ADR).
#   read_costs.sh URL SERVER_PID
set -euo pipefail
URL=$1 SPID=$2 BIN=${BIN:-/tmp}
ticks() { awk '{print $14 + $15}' "/proc/$SPID/stat"; }
HZ=$(getconf CLK_TCK)
run() {  # label, then one command line per member (run concurrently)
  local label=$1; shift
  local t0 c0; t0=$(date +%s%N); c0=$(ticks)
  local i=0 pids=()
  for cmd in "$@"; do eval "$BIN/react_probe $URL fetch $cmd" > "/tmp/r12-rc$i.out" & pids+=($!); i=$((i+1)); done
  for p in "${pids[@]}"; do wait "$p"; done
  local c1 t1; c1=$(ticks); t1=$(date +%s%N)
  echo "$label: wall $(( (t1 - t0) / 1000000 )) ms (consumer creation included), server CPU $(( (c1 - c0) * 1000 / HZ )) ms"
  cat /tmp/r12-rc*.out | sed 's/^/    /'; rm -f /tmp/r12-rc*.out
}
parts() { local P=$1 m=$2 n=$3; for p in $(seq "$m" "$n" $((P-1))); do printf "'x%d.*.%d.*' " "$P" "$p"; done; }
run "1 member, 1 cursor (X64)" "X64 -"
run "3 members, a cursor each (X64)" "X64 -" "X64 -" "X64 -"
run "1 member, 16 partition consumers (X16)" "X16 $(parts 16 0 1)"
run "3 members, 16 partition consumers split 6/5/5 (X16)" "X16 $(parts 16 0 3)" "X16 $(parts 16 1 3)" "X16 $(parts 16 2 3)"
run "1 member, 64 partition consumers (X64)" "X64 $(parts 64 0 1)"
run "filter x16.*.3.> (one partition, order check)" "X16 'x16.*.3.>'"
