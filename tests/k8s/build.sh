#!/usr/bin/env bash
# Builds etcd, kube-apiserver, kube-controller-manager and kube-scheduler of one Kubernetes version
# from the Go module in tests/k8s/v<VERSION> into a cache outside the repo, and prints the folder.
# Idempotent: a folder that already holds all four binaries built from the same go.sum is reused.
#   tests/k8s/build.sh [VERSION]      (default: the version in tests/k8s/DEFAULT)
# The cache is $RANGEPOOL_K8S_CACHE, else $XDG_CACHE_HOME/rangepool/k8s, else ~/.cache/rangepool/k8s.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
version=${1:-$(cat "$here/DEFAULT")}
module="$here/v$version"
[ -f "$module/go.mod" ] || { echo "build.sh: no module for Kubernetes $version in $module (make one with gen-module.sh)" >&2; exit 2; }
cache=${RANGEPOOL_K8S_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/rangepool/k8s}
out="$cache/v$version"
# Contents only: the same module built from another path or clone is the same build.
stamp=$(cat "$module/go.sum" "$module/go.mod" "$0" | sha256sum | cut -c1-16)
minor=${version#1.}; minor=${minor%%.*}
bins=(etcd kube-apiserver kube-controller-manager kube-scheduler)
# Test processes may ask at the same time: one builds, the others wait and reuse.
mkdir -p "$cache"
exec 9>"$cache/v$version.lock"
flock 9
if [ -f "$out/.stamp" ] && [ "$(cat "$out/.stamp")" = "$stamp" ]; then
  ok=1; for b in "${bins[@]}"; do [ -x "$out/$b" ] || ok=0; done
  if [ $ok = 1 ]; then echo "$out"; exit 0; fi
fi
command -v go >/dev/null || { echo "build.sh: Go is not installed; it builds the control plane" >&2; exit 2; }
mkdir -p "$out"
rm -f "$out/.stamp"
cd "$module"
export CGO_ENABLED=0 GOFLAGS=-mod=readonly
echo "building Kubernetes $version control plane into $out (minutes when cold: about 2,000 Go packages on $(nproc) cores)" >&2
start=$SECONDS
for b in "${bins[@]}"; do
  case $b in
    etcd) pkg=go.etcd.io/etcd/server/v3 ;;
    *) pkg=k8s.io/kubernetes/cmd/$b ;;
  esac
  echo "  go build $b ..." >&2
  go build -trimpath -ldflags "-s -w -X k8s.io/component-base/version.gitVersion=v$version -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor" -o "$out/$b.tmp" "$pkg"
  mv "$out/$b.tmp" "$out/$b"
  echo "  built $b ($((SECONDS - start)) s so far)" >&2
done
echo "$stamp" > "$out/.stamp"
echo "$out"
