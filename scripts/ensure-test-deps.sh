#!/usr/bin/env bash
# Installs the system packages the test suite talks to (real Chromium, real nginx, redis-server,
# curl) when they are missing. Debian/Ubuntu; needs root for apt-get. Safe to run repeatedly.
set -euo pipefail
missing=()
command -v chromium >/dev/null 2>&1 || [ -x /usr/bin/chromium ] || missing+=(chromium)
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing+=(nginx)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v curl >/dev/null 2>&1 || missing+=(curl)
[ -f /usr/share/javascript/jquery/jquery.js ] || missing+=(libjs-jquery)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "test prerequisites missing: ${missing[*]} (install them, e.g. apt-get install ${missing[*]})" >&2
    exit 1
  fi
  echo "installing test prerequisites: ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# Go tools the chart and load-test suites use, built from the Go module proxy and cached by
# version under ~/.cache/cyclone-sse (only the first run builds: several minutes).
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin"
for tool in loadtest/build-k6.sh scripts/ensure-helm.sh; do
  if [ -f "$tool" ]; then bash "$tool" >/dev/null; fi
done
