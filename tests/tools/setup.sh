#!/usr/bin/env bash
# Installs what `make test` needs on a fresh machine. Idempotent: re-running changes nothing.
set -euo pipefail
cd "$(dirname "$0")/../.."

# Go builds the Kubernetes control plane the integration tests run on (tests/k8s/build.sh).
if ! command -v go >/dev/null 2>&1; then
  echo "setup: Go is not installed; the tests run on a Kubernetes control plane built from Go modules (tests/k8s/). Install Go 1.26 or newer." >&2
  exit 1
fi

if ! command -v cargo-nextest >/dev/null 2>&1; then
  echo "setup: installing cargo-nextest"
  cargo install --locked cargo-nextest
fi

# Real kubectl and helm binaries for the test API server, chart and CRD checks.
if [ -x tests/tools/install-k8s-tools.sh ] || [ -f tests/tools/install-k8s-tools.sh ]; then
  bash tests/tools/install-k8s-tools.sh
fi

# Debian's reference CNI plugins (bridge, host-local, ...) for the plugin's end-to-end tests.
if [ -f tests/tools/install-cni-plugins.sh ]; then
  bash tests/tools/install-cni-plugins.sh
fi
