#!/usr/bin/env bash
# Runs every benchmark scenario (build/bin/jetsource-bench all) and keeps the result lines in
# build/bench-results.txt. Extra arguments are passed through, e.g.
#   scripts/run-bench.sh --runs 3 --nats-url nats://127.0.0.1:4222
# Environment: JETSOURCE_BENCH = the binary (default build/bin/jetsource-bench),
#              JETSOURCE_BENCH_OUT = the results file (default build/bench-results.txt).
# Result lines go to stdout and the file (nothing else); progress ('# ...') to stderr only.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bench="${JETSOURCE_BENCH:-$root/build/bin/jetsource-bench}"
out="${JETSOURCE_BENCH_OUT:-$root/build/bench-results.txt}"
if [[ ! -x "$bench" ]]; then
  echo "run-bench: $bench not found; build it first (make build)" >&2
  exit 1
fi
mkdir -p "$(dirname "$out")"
"$bench" all "$@" | tee "$out"
echo "run-bench: results in $out" >&2
