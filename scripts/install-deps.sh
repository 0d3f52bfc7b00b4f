#!/usr/bin/env bash
# Installs jetsource's build and test dependencies from Debian's packages.
# Idempotent: runs apt-get (and apt-get update) only when something is missing.
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
  openssl     # the openssl command: tests/support/tls_certs.hpp makes the TLS tests' certificates
  libcpp-httplib-dev
  clang-format
  prometheus  # promtool checks the /metrics text and alert rules; a test scrapes serve with prometheus
  chromium    # headless: tests/integration/status_page_test.cpp renders GET / (the status page)
)

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
