#!/usr/bin/env bash
# Installs the Debian packages moeflux builds and tests with, only those
# missing, so `make demo` / `make test` work on a fresh Debian 12 as root.
set -euo pipefail
packages=(
  build-essential cmake ninja-build pkg-config
  nlohmann-json3-dev libfmt-dev libcli11-dev libhwy-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  libpcre2-dev libutf8proc-dev zlib1g-dev libreadline-dev liburing-dev libcpp-httplib-dev
  clang libclang-rt-14-dev
  # The chat page's test in headless Chromium (scripts/chat_page_test.sh).
  python3 chromium chromium-driver python3-selenium
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then exit 0; fi
echo "moeflux: installing ${missing[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
