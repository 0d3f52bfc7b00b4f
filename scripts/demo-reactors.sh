#!/usr/bin/env bash
# The reactors part of `make demo` (issue 12): three `react` members share the inventory reactor
# (a process manager on the Stock aggregates) while `load` writes and pays orders; one member is
# killed with SIGKILL mid-way and the other two take its orders over. At the end every SKU's
# stock `sold` (counted by the inventory, once per paid line) equals the units sold that the
# product_sales read model counted. Runs on its own embedded server in .order-system/demo-reactors
# (started clean each time).
#   scripts/demo-reactors.sh [ORDER_SYSTEM_BIN] [ORDERS]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bin="${1:-$root/build/bin/order-system}"
orders="${2:-1500}"
dir=.order-system/demo-reactors
rm -rf "$dir" && mkdir -p "$dir"
os() { "$bin" --data-dir "$dir" "$@"; }
# Background processes are started without the function, so that $! is the program's own pid.

declare -A member
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT

echo "== reactors: inventory run by 3 members (a, b, c); product_sales by serve"
"$bin" --data-dir "$dir" serve 2>"$dir/serve.log" &
pids+=($!)
# Receiving stock also waits for the embedded server (serve started it, the others join it).
for sku in sku-000 sku-001 sku-002; do os stock receive "$sku" --qty 100; done
for m in a b c; do
  "$bin" --data-dir "$dir" react --instance "$m" --lease-ms 2000 2>"$dir/react-$m.log" &
  member[$m]=$!
  pids+=($!)
done

"$bin" --data-dir "$dir" load --orders "$orders" --concurrency 4 >"$dir/load.log" 2>&1 &
load=$!
sleep 1
kill -9 "${member[b]}"
{ wait "${member[b]}"; } 2>/dev/null || true
echo "== killed member b (pid ${member[b]}) mid-way: a and c take over its partitions after the 2 s lease"
wait "$load"
echo "== load done ($(tail -1 "$dir/load.log"))"

# Until every SKU's stock sold equals product_sales' units_sold (both catch up asynchronously).
skus=$(for i in $(seq 0 39); do printf 'sku-%03d ' "$i"; done)
for attempt in $(seq 1 60); do
  ok=1 table=""
  for sku in $skus; do
    stock=$(os query stock "$sku" --json)
    sold=$(sed -E 's/.*"sold":(-?[0-9]+).*/\1/' <<<"$stock")
    on_hand=$(sed -E 's/.*"on_hand":(-?[0-9]+).*/\1/' <<<"$stock")
    product=$(os query product "$sku" --json 2>/dev/null || echo '{"units_sold":0}')
    units=$(sed -E 's/.*"units_sold":(-?[0-9]+).*/\1/' <<<"$product")
    [[ "$sold" == "$units" ]] || ok=0
    table+=$(printf '%-8s %8s %10s %8s\n' "$sku" "$sold" "$units" "$on_hand")$'\n'
  done
  [[ $ok == 1 ]] && break
  sleep 1
done
printf '%-8s %8s %10s %8s\n' sku sold units_sold on_hand
printf '%s' "$table"
os reactors status
if [[ $ok == 1 ]]; then
  echo "== every SKU: stock sold (inventory reactor) = units sold (product_sales read model)"
else
  echo "== MISMATCH after 60 s: see $dir/react-*.log" >&2
  exit 1
fi
