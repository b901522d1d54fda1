#!/usr/bin/env sh
# The chat page at / (issue 16) in headless Chromium: runs
# scripts/chat_page_test.py against `moeflux serve` on the demo model.
# Exits 77 (CTest's skip) naming what is missing where Chromium,
# chromedriver or selenium is absent; scripts/install_deps.sh installs
# them (Debian's chromium, chromium-driver and python3-selenium).
#   scripts/chat_page_test.sh BUILD_DIR
set -eu
build=${1:?usage: chat_page_test.sh BUILD_DIR}
here=$(cd "$(dirname "$0")" && pwd)
# Debian's Python, where python3-selenium is installed (a python3 earlier
# on PATH, as from pyenv, would not see it).
py=/usr/bin/python3
[ -x "$py" ] || py=$(command -v python3 || true)
[ -n "$py" ] || { echo "SKIP: no python3"; exit 77; }
for tool in chromium chromedriver; do
  command -v "$tool" >/dev/null 2>&1 || { echo "SKIP: $tool is not installed (scripts/install_deps.sh installs it)"; exit 77; }
done
"$py" -c 'import selenium' 2>/dev/null || { echo "SKIP: selenium is not importable by $py (scripts/install_deps.sh installs python3-selenium)"; exit 77; }
exec "$py" "$here/chat_page_test.py" --moeflux "$build/moeflux"
