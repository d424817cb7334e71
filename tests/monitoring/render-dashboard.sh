#!/usr/bin/env bash
# Renders the chart's Grafana dashboard from the metrics of a real run, without Grafana, into
# target/rangepool-dashboard.png (render-dashboard.py says how). About 5 minutes; not part of
# `make test`. Builds what it needs, and installs into .tools/ only: Debian's prometheus binaries
# (tests/tools/install-prometheus-tools.sh) and matplotlib from PyPI (.tools/venv-render).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
OUT="${1:-$(pwd)/${CARGO_TARGET_DIR:-target}/rangepool-dashboard.png}"

bash tests/tools/install-k8s-tools.sh > /dev/null
bash tests/tools/install-prometheus-tools.sh
[ -x .tools/bin/prometheus ] || { echo "render-dashboard: no prometheus binary (needs apt-get)" >&2; exit 1; }
VENV=.tools/venv-render
if ! { [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c "import matplotlib, yaml" 2>/dev/null; }; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet matplotlib pyyaml
fi
cargo build --locked -p rangepool-envtest -p rangepool-controller
BIN_DIR="${CARGO_TARGET_DIR:-target}/debug"
export RANGEPOOL_K8S_BIN="$(bash tests/k8s/build.sh)"

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
# The chart's rules with short "for" durations, so that a few minutes show them fire.
.tools/bin/helm template rangepool charts/rangepool --set prometheusRule.enabled=true \
    --set prometheusRule.poolUsageFor=20s --set prometheusRule.failureWindow=1m \
    --set prometheusRule.noLeaderFor=4s --show-only templates/prometheusrule.yaml \
    | "$VENV/bin/python" -c 'import sys, yaml; yaml.safe_dump(yaml.safe_load(sys.stdin)["spec"], sys.stdout)' \
    > "$WORK/rules.yaml"
"$VENV/bin/python" tests/monitoring/render-dashboard.py "$BIN_DIR" .tools/bin/prometheus .tools/bin/kubectl \
    "$WORK/rules.yaml" "$OUT"
