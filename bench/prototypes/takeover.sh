#!/usr/bin/env bash
# ADR 0014: time from SIGKILL of a lease holder to the first event pulled by the member that took
# its partition over (lease_probe take), ROUNDS times, lease L_MS. Needs a server with stream X16
# filled by `react_probe URL fill X16 16 200000 50000`.   takeover.sh URL L_MS ROUNDS
set -euo pipefail
URL=$1 L=$2 ROUNDS=${3:-10} BIN=${BIN:-/tmp}
for i in $(seq 1 "$ROUNDS"); do
  "$BIN/lease_probe" "$URL" hold X16 3 "$L" holder > /tmp/r12-hold.out 2>&1 & HOLD=$!
  sleep 0.3
  "$BIN/lease_probe" "$URL" take X16 3 "$L" taker > /tmp/r12-take.out 2>&1 & TAKE=$!
  sleep "0.$((RANDOM % 9 + 1))"; sleep "$(( (RANDOM % 2) ))"
  K=$(date +%s%N); kill -9 "$HOLD"; wait "$HOLD" 2>/dev/null || true
  wait "$TAKE"
  line=$(grep TAKEOVER /tmp/r12-take.out)
  get() { sed -n "s/.*$1=\([0-9]*\).*/\1/p" <<< "$line"; }
  echo "round $i: kill->expiry seen $(( ($(get expired_seen_ns) - K) / 1000000 )) ms, ->CAS won $(( ($(get cas_ns) - K) / 1000000 )) ms, ->consumer $(( ($(get consumer_ns) - K) / 1000000 )) ms, ->first event $(( ($(get first_ns) - K) / 1000000 )) ms (seq $(get first_seq), epoch $(get epoch))"
done
