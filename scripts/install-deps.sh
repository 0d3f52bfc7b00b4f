#!/usr/bin/env bash
# Installs jetsource's build and test dependencies from Debian's packages.
# Idempotent: runs apt-get (and apt-get update) only when something is missing.
#   scripts/install-deps.sh          what the build and `make test` need
#   scripts/install-deps.sh bench    also what the benchmarks alone need: valgrind
#                                    (bench/callgrind.sh), PostgreSQL 15 and libpq
#                                    (jetsource-bench peer-postgres), wrk (bench/http-load);
#                                    the tests need none of them
set -euo pipefail

packages=(
  build-essential cmake pkg-config ccache
  nats-server libnats-dev
  libsqlite3-dev sqlite3
  libcereal-dev rapidjson-dev
  libboost-dev
  libspdlog-dev libfmt-dev
  libgtest-dev libgmock-dev
  libcli11-dev nlohmann-json3-dev
  libssl-dev
  libsodium-dev  # XChaCha20-Poly1305 of personal fields (crypto-shredding)
  openssl     # the openssl command: tests/support/tls_certs.hpp makes the TLS tests' certificates
  libcpp-httplib-dev
  clang-format
  clang libclang-rt-14-dev  # the fuzz targets (tests/fuzz, scripts/fuzz.sh): clang's libFuzzer
  prometheus  # promtool checks the /metrics text and alert rules; a test scrapes serve with prometheus
  chromium    # headless: tests/integration/status_page_test.cpp renders GET / (the status page)
)

if [[ "${1:-}" == "bench" ]]; then
  packages+=(valgrind)  # bench/callgrind.sh: instruction counts
  packages+=(postgresql libpq-dev)  # jetsource-bench peer-postgres: the PostgreSQL peer
  packages+=(wrk)  # bench/http-load/run.sh: the HTTP load
fi

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed'; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

echo "install-deps: installing ${missing[*]}"
sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
