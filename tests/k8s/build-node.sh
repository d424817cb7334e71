#!/usr/bin/env bash
# Builds what a Kubernetes node runs, of one version, from the same Go module in tests/k8s/v<VERSION>
# that build.sh builds the control plane from: kubelet, kube-proxy, and the pause binary of the
# pod sandbox image (build/pause/linux/pause.c of the k8s.io/kubernetes module, with gcc, static).
# Same cache and the same rules as build.sh: prints the folder; a folder holding all three, built
# from the same go.sum, is reused; concurrent callers wait for one build.
#   tests/k8s/build-node.sh [VERSION]      (default: the version in tests/k8s/DEFAULT)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
version=${1:-$(cat "$here/DEFAULT")}
module="$here/v$version"
[ -f "$module/go.mod" ] || { echo "build-node.sh: no module for Kubernetes $version in $module (make one with gen-module.sh)" >&2; exit 2; }
cache=${RANGEPOOL_K8S_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/rangepool/k8s}
out="$cache/v$version"
stamp=$(cat "$module/go.sum" "$module/go.mod" "$0" | sha256sum | cut -c1-16)
minor=${version#1.}; minor=${minor%%.*}
bins=(kubelet kube-proxy pause)
mkdir -p "$cache"
exec 9>"$cache/v$version.node.lock"
flock 9
if [ -f "$out/.stamp-node" ] && [ "$(cat "$out/.stamp-node")" = "$stamp" ]; then
  ok=1; for b in "${bins[@]}"; do [ -x "$out/$b" ] || ok=0; done
  if [ $ok = 1 ]; then echo "$out"; exit 0; fi
fi
command -v go >/dev/null || { echo "build-node.sh: Go is not installed; it builds the kubelet" >&2; exit 2; }
command -v gcc >/dev/null || { echo "build-node.sh: gcc is not installed; it builds the pause binary" >&2; exit 2; }
mkdir -p "$out"
rm -f "$out/.stamp-node"
cd "$module"
export CGO_ENABLED=0 GOFLAGS=-mod=readonly
echo "building Kubernetes $version node binaries into $out (minutes when cold)" >&2
start=$SECONDS
ldflags="-s -w -X k8s.io/component-base/version.gitVersion=v$version -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor"
for b in kubelet kube-proxy; do
  echo "  go build $b ..." >&2
  go build -trimpath -ldflags "$ldflags" -o "$out/$b.tmp" "k8s.io/kubernetes/cmd/$b"
  mv "$out/$b.tmp" "$out/$b"
  echo "  built $b ($((SECONDS - start)) s so far)" >&2
done
# The pause source ships in the module (the same file Kubernetes' own pause image is built from).
src="$(go list -m -f '{{.Dir}}' k8s.io/kubernetes)/build/pause/linux/pause.c"
[ -f "$src" ] || { echo "build-node.sh: $src not found in the module" >&2; exit 1; }
echo "  gcc pause ..." >&2
gcc -Os -Wall -Werror -static -DVERSION="v$version-rangepool" -o "$out/pause.tmp" "$src"
strip "$out/pause.tmp"
mv "$out/pause.tmp" "$out/pause"
echo "$stamp" > "$out/.stamp-node"
echo "$out"
