#!/usr/bin/env bash
# Builds (once) a real Kubernetes control plane from the Go module proxy for the chart's
# cluster tests (deploy/helm/test/kube-harness.ts) and prints the directory holding the binaries
# as the last line of stdout (progress goes to stderr):
#
#   etcd                     go.etcd.io/etcd/server/v3 (its own main package)
#   kube-apiserver           k8s.io/kubernetes/cmd/...
#   kube-controller-manager
#   kube-scheduler
#   kubectl
#   kwok                     sigs.k8s.io/kwok/cmd/kwok (fake nodes: pods become Running without a kubelet)
#   crds/                    the ServiceMonitor, PodMonitor and PrometheusRule CRDs of the
#                            prometheus-operator module (PROMETHEUS_OPERATOR_VERSION)
#   kwok-stages.yaml         kwok's own "fast" node and pod Stages (copied from its module; the
#                            kwok binary has none built in, kwokctl embeds them)
#
# k8s.io/kubernetes is not meant to be a dependency: its go.mod requires every k8s.io/* staging
# module at v0.0.0 and `replace`s them with ./staging/src/... directories, which `go install
# pkg@version` refuses. So this writes a small wrapper module that requires k8s.io/kubernetes at
# KUBE_VERSION and replaces each staging module it requires with the published v0.<minor>.<patch>
# matching it (the list is generated from k8s.io/kubernetes's own go.mod), then `go build`s the
# commands in one go (shared packages compile once). etcd and kwok are required by the same
# wrapper, so they compile against the same client libraries (kwok's own go.mod asks for the
# previous minor of the k8s.io/* modules; it builds and runs against this one, and a second copy
# of client-go would cost minutes of compile time). Versions are stamped like Kubernetes's
# hack/lib/version.sh does, so `kube-apiserver --version` and /version say KUBE_VERSION.
#
# The binaries are cached under ${CYCLONE_SSE_CACHE:-~/.cache/cyclone-sse}/kube-<KUBE_VERSION>/
# (with a `versions` file naming every pin, 440 MB); only the first run builds. A cold build
# (empty module and build caches) downloads ~670 MB of modules, takes ~830 CPU-seconds and adds
# ~3.9 GB to the Go build cache: 16 minutes on a busy 2-core machine at nice 19, an estimated 7-9
# minutes on 2 idle cores. Go runs at the lowest priority. Safe to run repeatedly and
# concurrently (flock).
#
# v1.37.2 is the newest k8s.io/kubernetes on the module proxy; its go.mod asks for go 1.26.0, so
# the machine's go 1.26 builds it (with k8s.io/kubernetes's own godebug line).
#
#   KUBE_VERSION  k8s.io/kubernetes version (default below; staging modules follow it)
#   ETCD_VERSION  go.etcd.io/etcd/server/v3 version
#   KWOK_VERSION  sigs.k8s.io/kwok version
#   PROMETHEUS_OPERATOR_VERSION  github.com/prometheus-operator/prometheus-operator version (CRDs only)
#   KUBE_TOOLS_DIR use this directory instead (printed as is, nothing is built)
#   KUBE_REBUILD=1 ignore the cache
#
# With --check it builds nothing and exits 0 when the cache is complete, 1 otherwise.
# With --gateway-api-crds it builds nothing and prints the directory of the Gateway API standard
# CRDs (HTTPRoute, …) of the sigs.k8s.io/gateway-api module (GATEWAY_API_VERSION; only the module
# download, kept in the Go module cache).
set -euo pipefail

KUBE_VERSION="${KUBE_VERSION:-v1.37.2}"
ETCD_VERSION="${ETCD_VERSION:-v3.7.3}"
KWOK_VERSION="${KWOK_VERSION:-v0.8.0}"
PROMETHEUS_OPERATOR_VERSION="${PROMETHEUS_OPERATOR_VERSION:-v0.85.0}"
# v1.7.0 asks for go 1.27; v1.6.3 is the newest the machine's go 1.26 accepts.
GATEWAY_API_VERSION="${GATEWAY_API_VERSION:-v1.6.3}"
CACHE_ROOT="${CYCLONE_SSE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/cyclone-sse}"
BINARIES=(etcd kube-apiserver kube-controller-manager kube-scheduler kubectl kwok)
check_only=0
[[ "${1:-}" == --check ]] && check_only=1

if [[ -n "${KUBE_TOOLS_DIR:-}" && "${1:-}" != --gateway-api-crds ]]; then
  echo "$KUBE_TOOLS_DIR"
  exit 0
fi

export PATH="/usr/local/go/bin:$PATH"
export GOTOOLCHAIN=local CGO_ENABLED=0
command -v go >/dev/null || { echo "kube-tools: go not found (looked in PATH and /usr/local/go/bin)" >&2; exit 1; }

if [[ "${1:-}" == --gateway-api-crds ]]; then
  gw_dir="$(cd /tmp && go mod download -json "sigs.k8s.io/gateway-api@$GATEWAY_API_VERSION" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",*$/\1/p')"
  [[ -f "$gw_dir/config/crd/standard/gateway.networking.k8s.io_httproutes.yaml" ]] ||
    { echo "kube-tools: no Gateway API CRDs in sigs.k8s.io/gateway-api@$GATEWAY_API_VERSION" >&2; exit 1; }
  echo "$gw_dir/config/crd/standard"
  exit 0
fi

dir="$CACHE_ROOT/kube-$KUBE_VERSION"
want="kubernetes=$KUBE_VERSION etcd=$ETCD_VERSION kwok=$KWOK_VERSION prometheus-operator=$PROMETHEUS_OPERATOR_VERSION go=$(go env GOVERSION)"
complete() {
  [[ -f "$dir/versions" && "$(cat "$dir/versions")" == "$want" ]] || return 1
  local b
  for b in "${BINARIES[@]}"; do [[ -x "$dir/$b" ]] || return 1; done
  [[ -f "$dir/kwok-stages.yaml" && -f "$dir/crds/monitoring.coreos.com_servicemonitors.yaml" ]]
}
if [[ $check_only == 1 ]]; then
  complete && exit 0
  exit 1
fi

mkdir -p "$CACHE_ROOT"
if complete && [[ "${KUBE_REBUILD:-0}" != 1 ]]; then
  echo "$dir"
  exit 0
fi

# One build at a time (a background build and a test run may race).
exec 9>"$CACHE_ROOT/.kube-build.lock"
flock 9
if complete && [[ "${KUBE_REBUILD:-0}" != 1 ]]; then
  echo "$dir"
  exit 0
fi

# Go builds share the machine with timing-sensitive tests: lowest CPU priority.
nice_go() { nice -n 19 go "$@"; }

echo "kube-tools: building Kubernetes $KUBE_VERSION, etcd $ETCD_VERSION, kwok $KWOK_VERSION into $dir with $(go env GOVERSION) (the first build takes a while) ..." >&2
start=$(date +%s)
tmp="$(mktemp -d "$CACHE_ROOT/kube-build.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/mod" "$tmp/bin"

kube_gomod="$(go mod download -json "k8s.io/kubernetes@$KUBE_VERSION" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",*$/\1/p')"
[[ -f "$kube_gomod" ]] || { echo "kube-tools: k8s.io/kubernetes@$KUBE_VERSION is not on the module proxy" >&2; exit 1; }
# v1.37.2 -> v0.37.2: the tag every staging module carries for this Kubernetes release.
staging_version="v0.${KUBE_VERSION#v1.}"
# Staging modules = those k8s.io/kubernetes replaces with a ./staging/ directory and requires.
mapfile -t staging < <(
  awk '$2 == "=>" && $3 ~ /^\.\/staging\// { print $1 }' "$kube_gomod" | while read -r m; do
    if grep -qE "^[[:space:]]+$m v0\.0\.0([[:space:]]|$)" "$kube_gomod"; then echo "$m"; fi
  done
)
[[ ${#staging[@]} -gt 10 ]] || { echo "kube-tools: found only ${#staging[@]} staging modules in $kube_gomod" >&2; exit 1; }
go_directive="$(awk '$1 == "go" { print $2; exit }' "$kube_gomod")"
godebug="$(awk '$1 == "godebug" { print; exit }' "$kube_gomod")"
{
  echo "module cyclone-sse.local/kube-tools"
  echo
  echo "go $go_directive"
  [[ -n "$godebug" ]] && echo "$godebug"
  echo
  echo "require ("
  echo "	k8s.io/kubernetes $KUBE_VERSION"
  echo "	go.etcd.io/etcd/server/v3 $ETCD_VERSION"
  echo "	sigs.k8s.io/kwok $KWOK_VERSION"
  echo ")"
  echo
  echo "replace ("
  for m in "${staging[@]}"; do echo "	$m => $m $staging_version"; done
  echo ")"
} >"$tmp/mod/go.mod"

# Stamp like hack/lib/version.sh (component-base for the servers, client-go for kubectl's client).
minor="${KUBE_VERSION#v1.}"
minor="${minor%%.*}"
build_date="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
ldflags="-s -w -X sigs.k8s.io/kwok/pkg/consts.Version=${KWOK_VERSION#v}"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ldflags+=" -X $pkg.gitVersion=$KUBE_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
  ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=$build_date"
done

(
  cd "$tmp/mod"
  GOFLAGS=-mod=mod nice_go build -trimpath -ldflags "$ldflags" -o "$tmp/bin/" \
    k8s.io/kubernetes/cmd/kube-apiserver \
    k8s.io/kubernetes/cmd/kube-controller-manager \
    k8s.io/kubernetes/cmd/kube-scheduler \
    k8s.io/kubernetes/cmd/kubectl \
    go.etcd.io/etcd/server/v3 \
    sigs.k8s.io/kwok/cmd/kwok
)
# `go build` names a /vN package's binary after the element before the version: server.
mv "$tmp/bin/server" "$tmp/bin/etcd"
echo "kube-tools: compiled in $(( $(date +%s) - start ))s" >&2

kwok_dir="$(go mod download -json "sigs.k8s.io/kwok@$KWOK_VERSION" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",*$/\1/p')"
for f in node/fast/node-initialize.yaml node/heartbeat-with-lease/node-heartbeat-with-lease.yaml \
  pod/fast/pod-ready.yaml pod/fast/pod-complete.yaml pod/fast/pod-delete.yaml; do
  echo "---"
  cat "$kwok_dir/kustomize/stage/$f"
done >"$tmp/bin/kwok-stages.yaml"

# Not built: CRD manifests shipped in the prometheus-operator module's source.
po_dir="$(go mod download -json "github.com/prometheus-operator/prometheus-operator@$PROMETHEUS_OPERATOR_VERSION" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",*$/\1/p')"
mkdir -p "$tmp/bin/crds"
for crd in servicemonitors podmonitors prometheusrules; do
  cp "$po_dir/example/prometheus-operator-crd/monitoring.coreos.com_$crd.yaml" "$tmp/bin/crds/"
done

"$tmp/bin/kube-apiserver" --version >&2
"$tmp/bin/etcd" --version >&2

rm -rf "$dir"
mkdir -p "$dir"
for b in "${BINARIES[@]}" kwok-stages.yaml crds; do mv "$tmp/bin/$b" "$dir/$b"; done
cp "$tmp/mod/go.mod" "$dir/wrapper.go.mod"
echo "$want" >"$dir/versions"
echo "kube-tools: built in $(( $(date +%s) - start ))s ($(du -sh "$dir" | cut -f1))" >&2
echo "$dir"
