#!/usr/bin/env bash
# `make e2e` (and the last step of `make test`): builds what the end-to-end test needs, then runs
# tests/e2e/e2e.py, which prints a timeline and ends with "e2e: N passed, N failed".
#
# Needs root (network namespaces, mounts, cgroups, containerd): without it, says so and exits 0.
# Builds, each reused when already built: the Kubernetes control plane and node binaries
# (tests/k8s/build.sh, build-node.sh, cached outside the repo), the images (`make image`,
# images/build.sh) and the rangepool-envtest binary. Installs, each only when missing: Debian's
# containerd, runc, busybox-static, conntrack and CNI plugins, kubectl and helm.
set -euo pipefail
cd "$(dirname "$0")/../.."
start=$SECONDS
say() { printf '[%7s] e2e: %s\n' "$((SECONDS - start)).0s" "$*"; }

if [ "$(id -u)" -ne 0 ]; then
    echo "e2e: skipped: the end-to-end test needs root (it creates network namespaces, mounts and cgroups, and runs containerd and two kubelets)"
    exit 0
fi
version=${K8S_VERSION:-$(cat tests/k8s/DEFAULT)}
say "installing what the nodes run (only what is missing)"
bash tests/tools/install-node-packages.sh
bash tests/tools/install-cni-plugins.sh
bash tests/tools/install-k8s-tools.sh
say "Kubernetes $version control plane and node binaries (built from Go modules when not cached)"
k8s_bin=$(bash tests/k8s/build.sh "$version")
bash tests/k8s/build-node.sh "$version" >/dev/null
say "images (make image) and rangepool-envtest"
bash images/build.sh
target=${CARGO_TARGET_DIR:-target}
case "$target" in /*) ;; *) target=$PWD/$target ;; esac
# Packing the same binaries again must give the same bytes (the build is reproducible).
first=$(cd "$target/images" && sha256sum controller.oci.tar cni-installer.oci.tar)
bash images/build.sh >/dev/null 2>&1
if [ "$first" != "$(cd "$target/images" && sha256sum controller.oci.tar cni-installer.oci.tar)" ]; then
    echo "e2e: FAIL: make image run twice gave different archives" >&2
    exit 1
fi
say "make image run twice gives the same archives"
cargo build --quiet --locked -p rangepool-envtest
say "built everything; starting the test"
E2E_STARTED_AGO=$((SECONDS - start)) RANGEPOOL_K8S_BIN=$k8s_bin RANGEPOOL_ENVTEST=$target/debug/rangepool-envtest RANGEPOOL_IMAGES=$target/images \
    python3 tests/e2e/e2e.py
