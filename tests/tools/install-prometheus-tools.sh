#!/usr/bin/env bash
# Puts Debian's `promtool` and `prometheus` binaries into the repo-local, git-ignored `.tools/bin/`,
# unpacked from the `prometheus` package with `apt-get download` and `dpkg-deb -x`: nothing is
# installed on the host, no user is created and no service is started. `promtool` checks and
# unit-tests the chart's PrometheusRule (tests/chart/check.sh); `prometheus` scrapes a real run for
# tests/monitoring/render-dashboard.sh.
#
# Idempotent: does nothing when both are there. Without apt-get (or when the download fails) it
# says so and exits 0: the checks that need them skip with a printed reason.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BIN="$ROOT/.tools/bin"
if [[ -x "$BIN/promtool" && -x "$BIN/prometheus" ]]; then
    echo "promtool and prometheus already in $BIN ($("$BIN/promtool" --version 2>&1 | head -n 1))"
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1 || ! command -v dpkg-deb >/dev/null 2>&1; then
    echo "note: not installing promtool (needs apt-get and dpkg-deb); the PrometheusRule's promtool checks will skip" >&2
    exit 0
fi
mkdir -p "$BIN"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
cd "$WORK"
# A fresh machine has no package lists (apt-get update needs root).
if ! apt-get download prometheus >/dev/null 2>&1; then
    if [[ "$(id -u)" -eq 0 ]]; then apt-get update -qq; fi
    apt-get download prometheus >/dev/null 2>&1 || {
        echo "note: apt-get download prometheus failed; the PrometheusRule's promtool checks will skip" >&2
        exit 0
    }
fi
dpkg-deb -x prometheus_*.deb unpacked
install -m 0755 unpacked/usr/bin/promtool unpacked/usr/bin/prometheus "$BIN/"
echo "installed $("$BIN/promtool" --version 2>&1 | head -n 1) and prometheus into $BIN (from Debian's package, not installed on the host)"
