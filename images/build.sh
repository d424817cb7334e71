#!/usr/bin/env bash
# `make image`: the two images of the Helm chart, as OCI image archives, built on this machine
# without a container engine and without pulling a base image.
#
#   target/images/controller.oci.tar     rangepool-controller on an empty base, user 65532:65532
#   target/images/cni-installer.oci.tar  busybox (Debian's busybox-static) + rangepool-ipam and
#                                        rangepool-agent, user 0:0 (the chart runs both as root)
#
# The Rust binaries are a release build for this machine's target, each with exactly the shared
# libraries `ldd` says it needs (and the dynamic loader), copied from this machine; the controller
# image also has the CA bundle. images/oci.py writes the layout. Reproducible: SOURCE_DATE_EPOCH
# (default: the commit's time) stamps every file, tar entries are sorted, and build paths are
# remapped out of the binaries; the same commit built with the same Rust toolchain on the same
# Debian packages gives the same digests. The images are named IMAGE_REPOSITORY/controller:VERSION and
# IMAGE_REPOSITORY/cni-installer:VERSION (default repository `rangepool`, the chart's default), so
# that `ctr -n k8s.io images import` on a node gives what the chart's defaults name.
#
# Environment: IMAGE_REPOSITORY (rangepool), IMAGE_SOURCE (the source URL label; default: the git
# remote `origin`, else https://rangepool.dev), SOURCE_DATE_EPOCH, CARGO (cargo), OUT
# (target/images).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD

step() { echo "== make image: $*"; }
die() { echo "make image: error: $*" >&2; exit 1; }

CARGO=${CARGO:-cargo}
target_dir=${CARGO_TARGET_DIR:-target}
case "$target_dir" in /*) ;; *) target_dir=$repo/$target_dir ;; esac
OUT=${OUT:-$target_dir/images}
REPOSITORY=${IMAGE_REPOSITORY:-rangepool}
version=$(sed -n '/^\[workspace.package\]/,/^\[/s/^version = "\(.*\)"/\1/p' Cargo.toml)
[ -n "$version" ] || die "no version in Cargo.toml's [workspace.package]"
revision=$(git rev-parse HEAD 2>/dev/null || echo unknown)
# Sources that are not committed make another binary: say so in the revision.
if [ "$revision" != unknown ] && ! git diff --quiet HEAD -- Cargo.toml Cargo.lock crates 2>/dev/null; then
    revision="$revision-dirty"
fi
epoch=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || echo 0)}
source_url=${IMAGE_SOURCE:-$(git config --get remote.origin.url 2>/dev/null || true)}
source_url=${source_url:-https://rangepool.dev}

case "$(uname -m)" in
    x86_64) arch=amd64 ;;
    aarch64) arch=arm64 ;;
    *) die "no OCI architecture known for $(uname -m)" ;;
esac

[ -x /bin/busybox ] && /bin/busybox --list >/dev/null 2>&1 && ! ldd /bin/busybox >/dev/null 2>&1 \
    || die "/bin/busybox is missing or not static: install Debian's busybox-static (bash tests/tools/install-node-packages.sh)"
command -v python3 >/dev/null || die "python3 writes the image layout"

step "release build of rangepool-controller, rangepool-ipam and rangepool-agent (minutes the first time)"
# Paths of this checkout and of cargo's registry do not go into the binaries (panic locations).
cargo_home=${CARGO_HOME:-$HOME/.cargo}
RUSTFLAGS="--remap-path-prefix=$cargo_home=/cargo --remap-path-prefix=$repo=/src" \
    "$CARGO" build --release --locked -p rangepool-controller -p rangepool-cni \
    --bin rangepool-controller --bin rangepool-ipam --bin rangepool-agent
bin=$target_dir/release

mkdir -p "$OUT"
stage=$OUT/stage
rm -rf "$stage"

# Copies a binary into a root, stripped, with every shared library ldd names and the loader, each
# at the path the loader looks for it.
add_binary() {
    local root=$1 src=$2 dest=$3
    mkdir -p "$root$(dirname "$dest")"
    strip -o "$root$dest" "$src"
    chmod 0755 "$root$dest"
    local lib
    # Lines: "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)" or "/lib64/ld-linux-x86-64.so.2 (0x...)".
    for lib in $(ldd "$src" | sed -n 's/.*=> \(\/[^ ]*\) .*/\1/p; s/^\s*\(\/[^ ]*\) .*/\1/p'); do
        mkdir -p "$root$(dirname "$lib")"
        cp -L "$lib" "$root$lib"
        chmod 0755 "$root$lib"
    done
}

# Runs a binary of a root as the image would: in a chroot of it (as root), so that a missing
# library fails here and not on a node.
smoke() {
    local root=$1; shift
    if [ "$(id -u)" -ne 0 ]; then
        echo "   (not root: the chroot check of $1 is skipped)"
        return
    fi
    env -i PATH=/usr/local/bin:/bin "$(command -v chroot)" "$root" "$@" >/dev/null \
        || die "$* does not run in its image's root filesystem (a shared library missing?)"
}

labels=(
    --label "org.opencontainers.image.source=$source_url"
    --label "org.opencontainers.image.version=$version"
    --label "org.opencontainers.image.revision=$revision"
    --label "org.opencontainers.image.licenses=Apache-2.0"
)

# A name as the container runtime stores it (docker.io/ for a name without a registry), so that
# the chart's image reference finds the imported image.
qualified() {
    case "${1%%/*}" in
        *.* | *:* | localhost) echo "$1" ;;
        *) echo "docker.io/$1" ;;
    esac
}

step "controller image"
root=$stage/controller
add_binary "$root" "$bin/rangepool-controller" /usr/local/bin/rangepool-controller
mkdir -p "$root/etc/ssl/certs"
[ -f /etc/ssl/certs/ca-certificates.crt ] && cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/"
smoke "$root" /usr/local/bin/rangepool-controller --help
python3 images/oci.py --root "$root" --out "$OUT/controller.oci.tar" \
    --name "$(qualified "$REPOSITORY/controller:$version")" --arch "$arch" --epoch "$epoch" \
    --user 65532:65532 --entrypoint '["/usr/local/bin/rangepool-controller"]' \
    --env PATH=/usr/local/bin "${labels[@]}" \
    --label "org.opencontainers.image.title=rangepool-controller"

step "node installer image"
root=$stage/cni-installer
mkdir -p "$root/bin"
cp /bin/busybox "$root/bin/busybox"
for applet in $(/bin/busybox --list); do
    [ -e "$root/bin/$applet" ] || ln -s busybox "$root/bin/$applet"
done
add_binary "$root" "$bin/rangepool-ipam" /usr/local/bin/rangepool-ipam
add_binary "$root" "$bin/rangepool-agent" /usr/local/bin/rangepool-agent
# What the chart's install-cni.sh and probes use.
smoke "$root" /bin/sh -c 'for a in base64 cat chmod cmp cp mkdir mv rm sed sleep test tr; do command -v $a || exit 1; done'
smoke "$root" /usr/local/bin/rangepool-agent --help
python3 images/oci.py --root "$root" --out "$OUT/cni-installer.oci.tar" \
    --name "$(qualified "$REPOSITORY/cni-installer:$version")" --arch "$arch" --epoch "$epoch" \
    --user 0:0 --cmd '["/bin/sh", "-c", "echo run by the rangepool chart: /bin/sh /rangepool/install-cni.sh; exit 1"]' \
    --env PATH=/usr/local/bin:/bin "${labels[@]}" \
    --label "org.opencontainers.image.title=rangepool-cni-installer"
rm -rf "$stage"

# rangepool-ipam runs on the node itself (the installer copies it to the host's CNI bin folder),
# with the node's own C library.
glibc=$(objdump -T "$bin/rangepool-ipam" 2>/dev/null | sed -n 's/.*GLIBC_\([0-9.]*\).*/\1/p' | sort -V | tail -n 1)
step "done: $REPOSITORY/controller:$version and $REPOSITORY/cni-installer:$version (revision $revision, SOURCE_DATE_EPOCH $epoch) in $OUT"
[ -z "$glibc" ] || echo "   rangepool-ipam runs on the nodes and needs their glibc to be $glibc or newer"
