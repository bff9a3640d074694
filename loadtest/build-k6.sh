#!/usr/bin/env bash
# Builds k6 with cyclone-sse's `k6/x/sse` extension (loadtest/xk6-sse) and prints the binary's
# path as the last line of stdout (progress goes to stderr).
#
# xk6 is not available from the Go module proxy here, so this does what xk6 would: a main
# package (xk6-sse/cmd/k6) that calls k6's cmd.Execute() and blank-imports the extension, built
# with plain `go build`. The k6 version is pinned in xk6-sse/go.mod. The binary is cached under
#   ${CYCLONE_SSE_CACHE:-~/.cache/cyclone-sse}/k6-<k6 version>-<hash of the extension sources>/k6
# so only the first run (about 3 minutes) builds; later runs just print the path.
#
# With --test-binary it also compiles the extension's Go tests once (`go test -c`, cached the same
# way under .../xk6-sse-test-<hash of all sources>/xk6-sse.test) and prints that binary's path
# instead: CI builds both before the suite (scripts/ensure-test-deps.sh), so no test pays Go
# compile time within its time limit.
#
# Env: GO (go binary; default: go on PATH, else /usr/local/go/bin/go), CYCLONE_SSE_CACHE,
#      K6_REBUILD=1 (ignore the cache).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ext="$here/xk6-sse"

GO="${GO:-$(command -v go || true)}"
[ -n "$GO" ] || GO=/usr/local/go/bin/go
if [ ! -x "$GO" ] && ! command -v "$GO" >/dev/null 2>&1; then
  echo "build-k6: no Go toolchain (set GO=/path/to/go; Go >= 1.25 is needed)" >&2
  exit 1
fi
export GOTOOLCHAIN=local GOFLAGS="${GOFLAGS:-} -mod=readonly" CGO_ENABLED=0

k6_version="$(awk '$1 == "go.k6.io/k6" { print $2 }' "$ext/go.mod")"
[ -n "$k6_version" ] || { echo "build-k6: go.k6.io/k6 is not pinned in $ext/go.mod" >&2; exit 1; }

# Everything that goes into the binary: module files, non-test Go sources, the Go version.
hash="$(
  cd "$ext"
  { "$GO" env GOVERSION; find . -name '*.go' ! -name '*_test.go' -o -name go.mod -o -name go.sum | LC_ALL=C sort | xargs sha256sum; } \
    | sha256sum | cut -c1-12
)"
cache_root="${CYCLONE_SSE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/cyclone-sse}"
dir="$cache_root/k6-$k6_version-$hash"
bin="$dir/k6"
mkdir -p "$cache_root"

# One build at a time per cache (parallel test runs would otherwise build twice).
exec 9>"$cache_root/.k6-build.lock"
command -v flock >/dev/null 2>&1 && flock 9

if [ -x "$bin" ] && [ "${K6_REBUILD:-0}" != 1 ]; then
  echo "build-k6: cached k6 $k6_version + k6/x/sse ($hash)" >&2
else
  echo "build-k6: building k6 $k6_version + k6/x/sse ($hash) with $("$GO" env GOVERSION); the first build takes a few minutes" >&2
  mkdir -p "$dir"
  start=$(date +%s)
  tmp="$dir/k6.tmp.$$"
  trap 'rm -f "$tmp"' EXIT
  (cd "$ext" && "$GO" build -trimpath -ldflags='-s -w' -o "$tmp" ./cmd/k6)
  "$tmp" version >/dev/null
  mv -f "$tmp" "$bin"
  echo "build-k6: built in $(( $(date +%s) - start ))s" >&2
  # Keep the three most recent builds (each is ~50 MB).
  ls -1dt "$cache_root"/k6-*/ 2>/dev/null | tail -n +4 | xargs -r rm -rf
fi
if [ "${1:-}" != --test-binary ]; then
  echo "$bin"
  exit 0
fi

# The extension's unit tests, compiled once per source state (test files included).
thash="$(
  cd "$ext"
  { "$GO" env GOVERSION; find . -name '*.go' -o -name go.mod -o -name go.sum | LC_ALL=C sort | xargs sha256sum; } \
    | sha256sum | cut -c1-12
)"
tdir="$cache_root/xk6-sse-test-$thash"
tbin="$tdir/xk6-sse.test"
if [ -x "$tbin" ] && [ "${K6_REBUILD:-0}" != 1 ]; then
  echo "build-k6: cached xk6-sse test binary ($thash)" >&2
else
  start=$(date +%s)
  mkdir -p "$tdir"
  ttmp="$tdir/xk6-sse.test.tmp.$$"
  trap 'rm -f "$ttmp"' EXIT
  (cd "$ext" && "$GO" test -c -trimpath -o "$ttmp" .)
  mv -f "$ttmp" "$tbin"
  echo "build-k6: compiled the xk6-sse tests in $(( $(date +%s) - start ))s" >&2
  ls -1dt "$cache_root"/xk6-sse-test-*/ 2>/dev/null | tail -n +4 | xargs -r rm -rf
fi
echo "$tbin"
