#!/usr/bin/env bash
# Builds (once) a pinned helm from the Go module proxy and prints the binary's path as the last
# line of stdout. The binary is cached per version under ~/.cache/cyclone-sse/helm-<version>/,
# so repeated runs on one machine skip the ~5 minute build.
#
#   HELM_VERSION     version to build (default below)
#   CYCLONE_SSE_CACHE cache root (default ${XDG_CACHE_HOME:-~/.cache}/cyclone-sse)
#   HELM_BIN         use this helm instead (printed as is, nothing is built)
set -euo pipefail

HELM_VERSION="${HELM_VERSION:-v3.22.0}"
CACHE_ROOT="${CYCLONE_SSE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/cyclone-sse}"

if [[ -n "${HELM_BIN:-}" ]]; then
  echo "$HELM_BIN"
  exit 0
fi

export PATH="/usr/local/go/bin:$PATH"

bin_for() { echo "$CACHE_ROOT/helm-$1/helm"; }

if [[ -x "$(bin_for "$HELM_VERSION")" ]]; then
  bin_for "$HELM_VERSION"
  exit 0
fi

command -v go >/dev/null || { echo "ensure-helm: go not found (looked in PATH and /usr/local/go/bin)" >&2; exit 1; }
mkdir -p "$CACHE_ROOT"

# One build at a time (a background build and a test run may race).
exec 9>"$CACHE_ROOT/helm.lock"
flock 9

# Pick the newest v3 on the proxy when the pinned version is not there.
if ! GOTOOLCHAIN=local go list -m "helm.sh/helm/v3@$HELM_VERSION" >/dev/null 2>&1; then
  newest="$(GOTOOLCHAIN=local go list -m -versions helm.sh/helm/v3 | tr ' ' '\n' | grep -E '^v3\.[0-9]+\.[0-9]+$' | sort -V | tail -1)"
  [[ -n "$newest" ]] || { echo "ensure-helm: no helm v3 version on the module proxy" >&2; exit 1; }
  echo "ensure-helm: $HELM_VERSION is not on the module proxy, using $newest" >&2
  HELM_VERSION="$newest"
fi

target="$(bin_for "$HELM_VERSION")"
if [[ ! -x "$target" ]]; then
  echo "ensure-helm: building helm $HELM_VERSION into $(dirname "$target") (takes a few minutes) ..." >&2
  tmp="$(mktemp -d "$CACHE_ROOT/helm-build.XXXXXX")"
  trap 'rm -rf "$tmp"' EXIT
  # Stamp the version and the Kubernetes version of the bundled client-go like helm's Makefile
  # does; without them `helm version` says "v3.22" and `helm template` assumes Kubernetes v1.20.
  gomod="$(GOTOOLCHAIN=local go mod download -json "helm.sh/helm/v3@$HELM_VERSION" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",*$/\1/p')"
  k8s_minor="$(sed -n 's/^[[:space:]]*k8s\.io\/client-go v0\.\([0-9]*\)\..*/\1/p' "$gomod" | head -1)"
  ldflags="-w -s -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
  if [[ -n "$k8s_minor" ]]; then
    for pkg in pkg/lint/rules pkg/chartutil; do
      ldflags+=" -X helm.sh/helm/v3/$pkg.k8sVersionMajor=1 -X helm.sh/helm/v3/$pkg.k8sVersionMinor=$k8s_minor"
    done
  fi
  GOBIN="$tmp" GOTOOLCHAIN=local GOFLAGS=-mod=mod CGO_ENABLED=0 \
    go install -trimpath -ldflags "$ldflags" "helm.sh/helm/v3/cmd/helm@$HELM_VERSION" >&2
  mkdir -p "$(dirname "$target")"
  mv "$tmp/helm" "$target"
  echo "ensure-helm: built $("$target" version --short 2>/dev/null || echo "$target")" >&2
fi
echo "$target"
