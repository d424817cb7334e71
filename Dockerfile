# rangepool images, built from this repository's root:
#
#   docker build -t <registry>/rangepool/controller:0.1.0 .                      (default: last stage)
#   docker build -t <registry>/rangepool/cni-installer:0.1.0 --target installer .
#
# (or `buildah bud --layers ...` with the same arguments). The Helm chart's `image` and
# `cni.image` values name them. docs/install.md explains the two images.
#
# The binaries are built once, statically, for the musl target of the build platform.

# Base images, as short names. Builders that do not resolve short names (buildah/podman without
# unqualified-search registries) pass fully qualified names with --build-arg.
ARG RUST_IMAGE=rust:1.89-bookworm
ARG INSTALLER_BASE=busybox:1.37.0-musl

# --- build: rangepool-controller, rangepool-ipam and rangepool-agent, static musl binaries ----------
FROM ${RUST_IMAGE} AS build
RUN apt-get update \
    && apt-get install -y --no-install-recommends musl-tools \
    && rm -rf /var/lib/apt/lists/*
RUN case "$(uname -m)" in \
        x86_64) echo x86_64-unknown-linux-musl ;; \
        aarch64) echo aarch64-unknown-linux-musl ;; \
        *) echo "unsupported build architecture $(uname -m)" >&2; exit 1 ;; \
    esac > /rust-target \
    && rustup target add "$(cat /rust-target)"
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY crates crates
RUN cargo build --release --locked --target "$(cat /rust-target)" \
        -p rangepool-controller -p rangepool-cni \
        --bin rangepool-controller --bin rangepool-ipam --bin rangepool-agent \
    && mkdir -p /out \
    && for b in rangepool-controller rangepool-ipam rangepool-agent; do \
        cp "target/$(cat /rust-target)/release/$b" /out/ \
        && strip /out/$b \
        && if readelf -l /out/$b | grep -q 'Requesting program interpreter'; then \
            echo "$b is dynamically linked" >&2; exit 1; \
        fi; \
    done

# --- installer: the node DaemonSet's image (a shell for the chart's install-cni.sh, the plugin it
# installs, and the node agent, which runs from this image as the DaemonSet's second container) --
# busybox's static musl build: sh, cp, mv, cmp, base64, sed, sleep, test, and nothing else.
FROM ${INSTALLER_BASE} AS installer
COPY --from=build /out/rangepool-ipam /out/rangepool-agent /usr/local/bin/
# Runs as root on purpose: the installer writes the root-owned host directories /opt/cni/bin and
# /etc/cni/net.d; the agent reads the root-only kubeconfig there and creates its root-only socket
# in /run/rangepool. The chart drops every capability and mounts the root filesystem read-only.
USER 0:0
CMD ["/bin/sh", "-c", "echo 'run by the rangepool chart: /bin/sh /rangepool/install-cni.sh'; exit 1"]

# --- controller (default): no shell, no package manager, non-root ---------------------------------
FROM scratch AS controller
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build /out/rangepool-controller /out/rangepool-ipam /usr/local/bin/
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/rangepool-controller"]
