#!/usr/bin/env bash
# Runs a shell command with Node 24 inside the Debian 13 root of scripts/debian13-root.sh, the
# repository bind-mounted at /src (its working directory), the host's npm cache at /root/.npm, the
# host's cyclone-sse cache (prebuilt k6, helm, Go test binary) at /root/.cache/cyclone-sse and the
# host's Go toolchain (static binaries) read-only at /usr/local/go.
#
#   bash scripts/debian13-run.sh 'node --version && node scripts/test.mjs wire'
#
# Everything is mounted inside a private mount namespace (unshare --mount), so the mounts vanish
# when the command ends, however it ends; nothing is left mounted on the host. The root shares
# the host's network: the shared Redis on 127.0.0.1:6379 and RabbitMQ on 5672 are the host's.
# Environment passed in: CI, TEST_CONCURRENCY, REDIS_URL, CYCLONE_TEST_* (nothing else leaks in).
set -euo pipefail
[ $# -ge 1 ] || { echo "usage: $0 '<command>'" >&2; exit 2; }
repo="$(cd "$(dirname "$0")/.." && pwd)"
root="$(bash "$repo/scripts/debian13-root.sh" | tail -1)"
npm_cache="$(npm config get cache 2>/dev/null || echo "$HOME/.npm")"
cyclone_cache="${CYCLONE_SSE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/cyclone-sse}"
go_bin="$(command -v go || echo /usr/local/go/bin/go)"
go_root="$(dirname "$(dirname "$(readlink -f "$go_bin")")")"
# Go's module and build caches too, so a Go build in the root (normally everything is prebuilt on
# the host by ensure-test-deps.sh) downloads nothing.
go_mod="$("$go_bin" env GOMODCACHE 2>/dev/null || true)"
go_build="$("$go_bin" env GOCACHE 2>/dev/null || true)"
# A git worktree's .git is a file naming the main repository's git directory: mount that at the
# same path, so git works in the root (the bins test clones the repository).
git_common="$(cd "$repo" && git rev-parse --path-format=absolute --git-common-dir 2>/dev/null || true)"
case "$git_common" in "$repo"/* | "") git_common="" ;; esac
mkdir -p "$npm_cache" "$cyclone_cache"
cp /etc/resolv.conf "$root/etc/resolv.conf"
cp /etc/hosts "$root/etc/hosts"

pass=(HOME=/root PATH=/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:/usr/local/go/bin LANG=C.UTF-8 TERM="${TERM:-dumb}")
while IFS='=' read -r name _; do
  case "$name" in CI | TEST_CONCURRENCY | REDIS_URL | CYCLONE_TEST_*) pass+=("$name=${!name}") ;; esac
done < <(env)

exec unshare --mount --propagation private -- bash -ec '
  root="$1" repo="$2" cache="$3" cyclone="$4" go="$5" gomod="$6" gobuild="$7" gitdir="$8"; shift 8
  mkdir -p "$root/src" "$root/root/.npm" "$root/root/.cache/cyclone-sse" "$root/usr/local/go"
  mount -t proc proc "$root/proc"
  mount --rbind /dev "$root/dev"
  mount -t tmpfs -o mode=1777,size=1g tmpfs "$root/dev/shm"   # Chromium needs a writable /dev/shm
  mount --rbind /sys "$root/sys"
  mount --bind "$repo" "$root/src"
  if [ -n "$gitdir" ]; then mkdir -p "$root$gitdir" && mount --bind "$gitdir" "$root$gitdir"; fi
  mount --bind "$cache" "$root/root/.npm"
  mount --bind "$cyclone" "$root/root/.cache/cyclone-sse"
  if [ -x "$go/bin/go" ]; then mount --bind -o ro "$go" "$root/usr/local/go"; fi
  if [ -d "$gomod" ]; then mkdir -p "$root/root/go/pkg/mod" && mount --bind "$gomod" "$root/root/go/pkg/mod"; fi
  if [ -d "$gobuild" ]; then mkdir -p "$root/root/.cache/go-build" && mount --bind "$gobuild" "$root/root/.cache/go-build"; fi
  exec chroot "$root" /usr/bin/env -i "$@"
' _ "$root" "$repo" "$npm_cache" "$cyclone_cache" "$go_root" "$go_mod" "$go_build" "$git_common" "${pass[@]}" bash -ec "cd /src && $1"
