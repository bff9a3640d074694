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
# version under ~/.cache/cyclone-sse (only the first run builds: several minutes). Everything Go
# compiles is built here, outside any test's time limit: k6 with the SSE extension, the
# extension's test binary (`go test -c`) and helm.
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin"
if [ -f loadtest/build-k6.sh ]; then bash loadtest/build-k6.sh --test-binary >/dev/null; fi
if [ -f scripts/ensure-helm.sh ]; then bash scripts/ensure-helm.sh >/dev/null; fi
# The chart's cluster test (deploy/helm/test/kube-install.test.ts) is opt-in: etcd, the Kubernetes
# control plane and kwok take a long first build (see scripts/kube-tools.sh).
if [ "${CYCLONE_KUBE_TESTS:-0}" = 1 ] && [ -f scripts/kube-tools.sh ]; then bash scripts/kube-tools.sh >/dev/null; fi
