#!/usr/bin/env bash
# Installs what the CNI plugin's end-to-end test and benchmark drive: Debian's reference CNI
# plugins (`/usr/lib/cni/bridge`, `/usr/lib/cni/host-local`, ...) and the `ip` and `ping` tools.
#
# Idempotent: installs only what is missing, and runs `apt-get update` only when an install is
# needed. Without root (or without apt-get) it says what is missing and exits 0: the tests that
# need these tools skip with a printed reason in that case.
set -euo pipefail

missing=()
[[ -x /usr/lib/cni/bridge && -x /usr/lib/cni/host-local ]] || missing+=(containernetworking-plugins)
command -v ip >/dev/null 2>&1 || missing+=(iproute2)
command -v ping >/dev/null 2>&1 || missing+=(iputils-ping)

if [[ ${#missing[@]} -eq 0 ]]; then
    echo "cni plugins and network tools already installed"
    exit 0
fi

if [[ "$(id -u)" -ne 0 ]] || ! command -v apt-get >/dev/null 2>&1; then
    echo "note: not installing ${missing[*]} (needs root and apt-get); the CNI end-to-end test and benchmark will skip" >&2
    exit 0
fi

export DEBIAN_FRONTEND=noninteractive
echo "installing ${missing[*]}"
# A fresh machine has no package lists; an old list may name versions the mirror no longer has.
if ! apt-get install -y --no-install-recommends "${missing[@]}"; then
    apt-get update -qq
    apt-get install -y --no-install-recommends "${missing[@]}"
fi
