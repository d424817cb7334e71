#!/usr/bin/env bash
# Installs what the end-to-end test's nodes run and what `make image` packs, from Debian's packages:
# containerd and runc (the container runtime under the kubelet), busybox-static (the installer
# image's shell), iptables and conntrack (kube-proxy), iproute2 (the nodes' network namespaces).
#
#   install-node-packages.sh              all of them (the end-to-end test)
#   install-node-packages.sh busybox-static   only those named (make image)
#
# Idempotent: installs only what is missing, and runs `apt-get update` only when an install is
# needed. Without root (or without apt-get) it says what is missing and exits 0: `make image` and
# the end-to-end test then stop with their own message.
set -euo pipefail

missing=()
for want in containerd:containerd runc:runc busybox-static:/bin/busybox iptables:iptables \
            conntrack:conntrack iproute2:ip; do
    pkg=${want%%:*} probe=${want#*:}
    if [[ $# -gt 0 && " $* " != *" $pkg "* ]]; then continue; fi
    if [[ $probe == /* ]]; then
        # busybox-static installs /bin/busybox; so does the dynamic busybox: ask dpkg which.
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
    else
        command -v "$probe" >/dev/null 2>&1 || missing+=("$pkg")
    fi
done

if [[ ${#missing[@]} -eq 0 ]]; then
    echo "node packages already installed (${*:-containerd, runc, busybox-static, iptables, conntrack, iproute2})"
    exit 0
fi

if [[ "$(id -u)" -ne 0 ]] || ! command -v apt-get >/dev/null 2>&1; then
    echo "note: not installing ${missing[*]} (needs root and apt-get); make image and the end-to-end test need them" >&2
    exit 0
fi

export DEBIAN_FRONTEND=noninteractive
echo "installing ${missing[*]}"
# The test starts its own containerd per node; a containerd service the package may start is not
# used. A fresh machine has no package lists; an old list may name versions the mirror no longer
# has.
if ! apt-get install -y --no-install-recommends -o Dpkg::Options::=--force-confold "${missing[@]}"; then
    apt-get update -qq
    apt-get install -y --no-install-recommends -o Dpkg::Options::=--force-confold "${missing[@]}"
fi
