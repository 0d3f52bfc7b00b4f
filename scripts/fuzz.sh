#!/usr/bin/env bash
# Builds the fuzz targets (tests/fuzz: libFuzzer, clang, ASan+UBSan) in build-fuzz and runs each:
# first over its seed corpus and every input in tests/fuzz/regressions/<target> (inputs that
# once crashed it), then fuzzing for --seconds. Fails on the first crash, leak or sanitizer
# report; the input is kept in build-fuzz/artifacts/ and the command to reproduce it printed.
#
#   scripts/fuzz.sh [--seconds S] [target...]     (default 20 s each; targets: commit_decoder,
#                                                  header_parser)
#   make test   runs it with 20 s per target; make fuzz FUZZ_SECONDS=600 for longer
#
# The corpus each run grows is kept in build-fuzz/corpus/<target> (not committed), so runs go
# on where the last one stopped. A crash found: add the input to tests/fuzz/regressions/<target>,
# and a unit test with it to tests/unit/fuzz_regressions_test.cpp, with the fix (docs/fuzzing.md).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
seconds=20
targets=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --seconds) seconds="$2"; shift 2 ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    *) targets+=("$1"); shift ;;
  esac
done
[[ ${#targets[@]} -gt 0 ]] || targets=(commit_decoder header_parser)

build="$root/build-fuzz"
launcher=()
if command -v ccache >/dev/null; then
  launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
  export CCACHE_BASEDIR="$root" CCACHE_NOHASHDIR=1
fi
cmake -S "$root/tests/fuzz" -B "$build" -DCMAKE_CXX_COMPILER=clang++ "${launcher[@]}" >/dev/null
cmake --build "$build" -j "$(nproc)" >/dev/null

export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1}"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:suppressions=$root/tests/fuzz/ubsan.supp"
passed=0
failed=0
for t in "${targets[@]}"; do
  bin="$build/fuzz_$t"
  corpus="$build/corpus/$t"
  mkdir -p "$corpus" "$build/artifacts"
  log="$build/fuzz_$t.log"
  # Known inputs first (each run once), then the bounded fuzzing run.
  known=("$root/tests/fuzz/corpus/$t"/*)
  if compgen -G "$root/tests/fuzz/regressions/$t/*" >/dev/null; then
    known+=("$root/tests/fuzz/regressions/$t"/*)
  fi
  if "$bin" "${known[@]}" >"$log" 2>&1 &&
    "$bin" -max_total_time="$seconds" -timeout=10 -max_len=16384 -print_final_stats=1 \
      -artifact_prefix="$build/artifacts/$t-" "$corpus" "$root/tests/fuzz/corpus/$t" >>"$log" 2>&1; then
    runs="$(awk '/stat::number_of_executed_units/ {print $NF}' "$log")"
    echo "fuzz: $t: no crash in ${runs:-?} inputs (${seconds} s), corpus $(ls "$corpus" | wc -l) files"
    passed=$((passed + 1))
  else
    echo "fuzz: $t FAILED; its log: $log" >&2
    grep -E "ERROR|runtime error|SUMMARY|Test unit written|^artifact" "$log" | head -20 >&2 || true
    echo "fuzz: reproduce with: UBSAN_OPTIONS=$UBSAN_OPTIONS $bin <the input above>" >&2
    failed=$((failed + 1))
  fi
done
echo "fuzz: $passed passed, $failed failed"
[[ $failed -eq 0 ]]
