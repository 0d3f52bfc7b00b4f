#!/usr/bin/env bash
# ADR 0014: server CPU while a group follows a live stream (consumers at the head, a publisher
# adding MSGS commits at RATE/s): member cursors vs partition consumers.  live_costs.sh URL SERVER_PID
set -euo pipefail
URL=$1 SPID=$2 BIN=${BIN:-/tmp} MSGS=${MSGS:-50000} RATE=${RATE:-10000}
ticks() { awk '{print $14 + $15}' "/proc/$SPID/stat"; }
HZ=$(getconf CLK_TCK)
parts() { local P=$1 m=$2 n=$3; for p in $(seq "$m" "$n" $((P-1))); do printf "'x%d.*.%d.*' " "$P" "$p"; done; }
run() {
  local label=$1; shift
  local i=0 pids=()
  for cmd in "$@"; do START=new TOTAL=$MSGS eval "$BIN/react_probe $URL fetch $cmd" > "/tmp/r12-lc$i.out" & pids+=($!); i=$((i+1)); done
  sleep 4  # consumers created at the head
  local c0; c0=$(ticks)
  "$BIN/react_probe" "$URL" pub X64 64 "$MSGS" "$RATE" > /tmp/r12-pub.out
  for p in "${pids[@]}"; do wait "$p"; done
  local c1; c1=$(ticks)
  echo "$label: server CPU $(( (c1 - c0) * 1000 / HZ )) ms for $MSGS commits ($(cat /tmp/r12-pub.out))"
  cat /tmp/r12-lc*.out | sed 's/^/    /'; rm -f /tmp/r12-lc*.out
}
c0=$(ticks); "$BIN/react_probe" "$URL" pub X64 64 "$MSGS" "$RATE" > /tmp/r12-pub.out; c1=$(ticks)
echo "publisher alone: server CPU $(( (c1 - c0) * 1000 / HZ )) ms ($(cat /tmp/r12-pub.out))"
run "1 member cursor" "X64 -"
run "3 member cursors" "X64 -" "X64 -" "X64 -"
run "64 partition consumers, 1 member" "X64 $(parts 64 0 1)"
