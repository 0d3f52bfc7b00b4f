#!/usr/bin/env bash
# http-load: `order-system serve --http` under wrk (issue 14), beside two references measured in
# the same run: cpp-httplib's own trivial handler (jetsource-http-baseline-httplib, GET /ping, 128
# threads as serve) and the same order commands through repository::execute_async (and
# execute) in-process from as many client threads as wrk has connections
# (jetsource-http-load-execute, on the same nats-server and stream). execute_async runs twice:
# each client with one command in flight (--window 1: what a wrk connection has, since wrk does
# not pipeline; the target's reference) and each client submitting without bound (unbounded).
#
#   bench/http-load/run.sh BIN_DIR [SECONDS=5]
#     env: CONNS="1 2 4 8 16 32"  RUNS=3  MIXES="realistic commands"  FRESH=0
#
# FRESH=1: a new nats-server and serve (empty store, seeded again) for each connection count and
# for each half-peak stage, so that no figure runs over the orders of the ones before it (by
# default one pair serves the whole run, and the last counts meet the most accumulated state).
#
# Starts its own nats-server -js and serve (free loopback ports, a temp dir; both stopped by PID
# on exit). Mixes (mix.lua): `realistic` = create with items, place, pay, GET the order with
# ?min_sequence= of the payment, GET the customer, GET a product (3 commands, 3 queries per
# order); `commands` = the 3 commands only. One wrk thread per connection, closed loop.
# Per connection count: RUNS runs of each, medians. Then the peak (best median req/s) and a
# run at half the peak rate: the peak's connections with a per-request delay in mix.lua (wrk2's
# constant rate is not in Debian), calibrated by two runs, then RUNS runs.
# Output, one line per figure (medians; *_runs lists every run):
#   http_trivial conns= rps=       execute_orders mode=async|sync clients= window= commands_per_s=
#   http_load mix= conns= load=closed|half rps= cmd_rps= p50_ms= p99_ms= p999_ms= errors=
#             ratio_trivial= ratio_execute_async= ratio_execute_async_unbounded= ratio_execute=
#             rps_runs=
# cmd_rps is the command part of rps (half of it for `realistic`); ratio_execute_async =
# cmd_rps / execute_async's commands/s at the same count of clients, one command in flight per
# client (window 1); ratio_execute_async_unbounded = the same against clients that submit
# without bound; ratio_trivial = rps / the trivial handler's req/s at the same connections.
set -euo pipefail
bin=${1:?usage: run.sh BIN_DIR [SECONDS]}
bin=$(cd "$bin" && pwd)
seconds=${2:-5}
conns_list=${CONNS:-1 2 4 8 16 32}
runs=${RUNS:-3}
mixes=${MIXES:-realistic commands}
fresh=${FRESH:-0}
here=$(cd "$(dirname "$0")" && pwd)

for tool in wrk nats-server curl python3; do
  command -v "$tool" > /dev/null ||
    { echo "run.sh: $tool is not installed (apt-get install $tool; scripts/install-deps.sh has nats-server)" >&2; exit 1; }
done
for b in order-system jetsource-http-baseline-httplib jetsource-http-load-execute; do
  [ -x "$bin/$b" ] || { echo "run.sh: $bin/$b missing (a build with -DJETSOURCE_BUILD_BENCH=ON)" >&2; exit 1; }
done

dir=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2> /dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2> /dev/null || true; done
  rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
key() { sed -n "s/.*[ ]$1=\([^ ]*\).*/\1/p"; }  # key NAME < line: that key's value
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# wait_for FILE REGEX: the first capture group once a line matching REGEX shows up (30 s).
wait_for() {
  for _ in $(seq 300); do
    v=$(sed -n -E "s|.*$2.*|\1|p" "$1" | head -1)
    [ -n "$v" ] && { echo "$v"; return; }
    sleep 0.1
  done
  echo "run.sh: no '$2' in $1:" >&2; cat "$1" >&2; exit 1
}

# start_servers: nats-server -js and serve on a store of their own (stopping the previous pair),
# then the seed: customers c-0..c-49 and the products exist before the queries without
# min_sequence run. Sets nats_url and api.
server_pids=()
generation=0
start_servers() {
  for p in "${server_pids[@]}"; do kill "$p" 2> /dev/null || true; done
  for p in "${server_pids[@]}"; do wait "$p" 2> /dev/null || true; done
  server_pids=()
  generation=$((generation + 1))
  local d="$dir/g$generation"
  mkdir -p "$d"
  nats-server -a 127.0.0.1 -p -1 -js -sd "$d/nats" > "$d/nats.log" 2>&1 &
  server_pids+=($!); pids+=($!)
  nats_url="nats://127.0.0.1:$(wait_for "$d/nats.log" 'client connections on 127\.0\.0\.1:([0-9]+)')"
  "$bin/order-system" --data-dir "$d/cli" --nats-url "$nats_url" serve --http 127.0.0.1:0 \
    > "$d/serve.out" 2> "$d/serve.log" &
  server_pids+=($!); pids+=($!)
  api="http://127.0.0.1:$(wait_for "$d/serve.log" 'HTTP API on http://127\.0\.0\.1:([0-9]+)')"
  local seq=0
  for i in $(seq 0 49); do
    curl -fs -X POST "$api/orders" -H 'Content-Type: application/json' -d "{\"customer_id\":\"c-$i\",\"order_id\":\"seed-$i\",
      \"items\":[{\"sku\":\"widget\",\"qty\":2,\"unit_price_cents\":250},{\"sku\":\"gadget\",\"qty\":1,\"unit_price_cents\":1000}]}" > /dev/null
    curl -fs -X POST "$api/orders/seed-$i/place" > /dev/null
    seq=$(curl -fs -X POST "$api/orders/seed-$i/pay" -H 'Content-Type: application/json' \
          -d '{"amount_cents":1500}' | sed -E 's/.*"sequence":([0-9]+).*/\1/')
  done
  curl -fs "$api/customers/c-49?min_sequence=$seq&wait_ms=10000" > /dev/null
  curl -fs "$api/products/widget?min_sequence=$seq&wait_ms=10000" > /dev/null
}
start_servers

trivial_port=$(free_port)
"$bin/jetsource-http-baseline-httplib" --port "$trivial_port" --threads 128 > /dev/null 2>&1 &
pids+=($!)
for _ in $(seq 50); do curl -fs "http://127.0.0.1:$trivial_port/ping" > /dev/null && break; sleep 0.1; done

# Each run's order ids get a prefix of their own (the functions run in subshells: no counter).
# wrk_mix MIX CONNS DELAY_MS: one wrk run of mix.lua; prints its wrk_result line.
wrk_mix() {
  local out
  out=$(HTTP_LOAD_MIX=$1 HTTP_LOAD_PREFIX="r$(date +%s%N)" HTTP_LOAD_DELAY_MS=$3 \
        wrk -t"$2" -c"$2" -d"${seconds}s" --timeout 10s -s "$here/mix.lua" "$api")
  grep '^wrk_last_error' <<< "$out" >&2 || true
  grep '^wrk_result' <<< "$out"
}
wrk_trivial() {
  wrk -t"$1" -c"$1" -d"${seconds}s" "http://127.0.0.1:$trivial_port/ping" | awk '/Requests\/sec/ {print $2}'
}
execute_orders() {  # MODE CLIENTS COMMANDS [WINDOW]
  "$bin/jetsource-http-load-execute" --nats-url "$nats_url" --mode "$1" --clients "$2" \
    --commands "$3" --window "${4:-0}" --prefix "x$(date +%s%N)" 2> /dev/null | key commands_per_s
}
# summarize MIX CONNS LOAD TRIVIAL ASYNC1 ASYNC SYNC LINES...: the medians of the runs'
# wrk_result lines (ASYNC1: execute_async with one command in flight per client).
summarize() {
  local mix=$1 conns=$2 load=$3 trivial=$4 async1=$5 async=$6 sync=$7; shift 7
  local lines; lines=$(printf '%s\n' "$@")
  m() { key "$1" <<< "$lines" | median; }
  local rps cmd; rps=$(m rps)
  cmd=$(awk -v r="$rps" -v mix="$mix" 'BEGIN {printf "%.1f", mix == "commands" ? r : r / 2}')
  printf 'http_load mix=%s conns=%s load=%s rps=%s cmd_rps=%s p50_ms=%s p99_ms=%s p999_ms=%s errors=%s ratio_trivial=%s ratio_execute_async=%s ratio_execute_async_unbounded=%s ratio_execute=%s rps_runs=%s\n' \
    "$mix" "$conns" "$load" "$rps" "$cmd" "$(m p50_ms)" "$(m p99_ms)" "$(m p999_ms)" \
    "$(key errors <<< "$lines" | awk '{s += $1} END {print s + 0}')" \
    "$(awk -v a="$rps" -v b="$trivial" 'BEGIN {printf "%.3f", a / b}')" \
    "$(awk -v a="$cmd" -v b="$async1" 'BEGIN {printf "%.3f", a / b}')" \
    "$(awk -v a="$cmd" -v b="$async" 'BEGIN {printf "%.3f", a / b}')" \
    "$(awk -v a="$cmd" -v b="$sync" 'BEGIN {printf "%.3f", a / b}')" \
    "$(key rps <<< "$lines" | paste -sd,)"
}

declare -A peak_rps peak_conns trivial_at async1_at async_at sync_at unloaded_ms
for c in $conns_list; do
  [ "$fresh" = 1 ] && [ "$c" != "${conns_list%% *}" ] && start_servers
  t=(); a1=(); a=(); s=()
  for _ in $(seq "$runs"); do t+=("$(wrk_trivial "$c")"); done
  for _ in $(seq "$runs"); do a1+=("$(execute_orders async "$c" $((1000 * seconds)) 1)"); done
  for _ in $(seq "$runs"); do a+=("$(execute_orders async "$c" $((3000 * seconds)))"); done
  for _ in $(seq "$runs"); do s+=("$(execute_orders sync "$c" $((600 * seconds)))"); done
  trivial_at[$c]=$(printf '%s\n' "${t[@]}" | median)
  async1_at[$c]=$(printf '%s\n' "${a1[@]}" | median)
  async_at[$c]=$(printf '%s\n' "${a[@]}" | median)
  sync_at[$c]=$(printf '%s\n' "${s[@]}" | median)
  echo "http_trivial conns=$c rps=${trivial_at[$c]} rps_runs=$(IFS=,; echo "${t[*]}")"
  echo "execute_orders mode=async clients=$c window=1 commands_per_s=${async1_at[$c]} runs=$(IFS=,; echo "${a1[*]}")"
  echo "execute_orders mode=async clients=$c window=unbounded commands_per_s=${async_at[$c]} runs=$(IFS=,; echo "${a[*]}")"
  echo "execute_orders mode=sync clients=$c window=1 commands_per_s=${sync_at[$c]} runs=$(IFS=,; echo "${s[*]}")"
  for mix in $mixes; do
    results=()
    for _ in $(seq "$runs"); do results+=("$(wrk_mix "$mix" "$c" 0)"); done
    line=$(summarize "$mix" "$c" closed "${trivial_at[$c]}" "${async1_at[$c]}" "${async_at[$c]}" \
      "${sync_at[$c]}" "${results[@]}")
    echo "$line"
    rps=$(key rps <<< "$line")
    [ -z "${unloaded_ms[$mix]:-}" ] && unloaded_ms[$mix]=$(printf '%s\n' "${results[@]}" | key mean_ms | median)
    if [ -z "${peak_rps[$mix]:-}" ] || awk -v a="$rps" -v b="${peak_rps[$mix]}" 'BEGIN {exit !(a > b)}'; then
      peak_rps[$mix]=$rps; peak_conns[$mix]=$c
    fi
  done
done

# Half the peak: the peak's connections, each waiting DELAY before each request. A connection's
# cycle is DELAY + latency; DELAY starts from 2*C/peak - the unloaded mean latency, then two
# calibration runs each correct it by the cycle they measured.
for mix in $mixes; do
  [ "$fresh" = 1 ] && start_servers
  c=${peak_conns[$mix]}; r=${peak_rps[$mix]}
  echo "http_load_peak mix=$mix conns=$c rps=$r"
  d=$(awk -v c="$c" -v r="$r" -v l="${unloaded_ms[$mix]}" 'BEGIN {d = 2000 * c / r - l; printf "%.3f", (d > 0 ? d : 0)}')
  for i in 1 2; do
    got=$(wrk_mix "$mix" "$c" "$d" | key rps)
    echo "# half-peak calibration $i: delay_ms=$d rps=${got:-none} target_rps=$(awk -v r="$r" 'BEGIN {printf "%.1f", r / 2}')"
    # A run that reported no rate leaves the delay as it was (a division by zero made it 0).
    d=$(awk -v c="$c" -v r="$r" -v g="${got:-0}" -v d="$d" 'BEGIN {if (g > 0) d += 1000 * (2 * c / r - c / g); printf "%.3f", (d > 0 ? d : 0)}')
  done
  results=()
  for _ in $(seq "$runs"); do results+=("$(wrk_mix "$mix" "$c" "$d")"); done
  line=$(summarize "$mix" "$c" half "${trivial_at[$c]}" "${async1_at[$c]}" "${async_at[$c]}" \
    "${sync_at[$c]}" "${results[@]}")
  echo "$line delay_ms=$d target_rps=$(awk -v r="$r" 'BEGIN {printf "%.1f", r / 2}')"
done
