#!/bin/sh
# Installs the rangepool-ipam CNI plugin on this node and keeps its credentials fresh.
# Runs in the node DaemonSet (busybox sh); tests/chart/check.sh runs it with temporary directories.
#
# 1. copies rangepool-ipam into the host's CNI bin directory under a temporary name and renames it
#    into place, so the runtime never executes a half-written binary;
# 2. writes the plugin's kubeconfig (directory 0700, file 0600) from the pod's projected
#    ServiceAccount token and CA, again through a temporary file and a rename;
# 3. optionally installs a conflist (only after 1 and 2, so the runtime never sees a network
#    configuration whose plugin or credentials are missing);
# 4. every CHECK_SECONDS, rewrites the kubeconfig when the kubelet has rotated the token (it does so
#    after 80% of the token's lifetime), and puts back anything of 1-3 that has gone missing.
#
# Nothing is removed on exit: pods on this node keep needing the plugin for DEL and CHECK, including
# while the DaemonSet is upgraded.
set -eu

CNI_BIN_DIR="${CNI_BIN_DIR:-/host/opt/cni/bin}"        # the host's bin directory, as mounted here
CNI_CONF_DIR="${CNI_CONF_DIR:-/host/etc/cni/net.d}"    # the host's conf directory, as mounted here
PLUGIN_SRC="${PLUGIN_SRC:-/usr/local/bin/rangepool-ipam}"
TOKEN_DIR="${TOKEN_DIR:-/var/run/secrets/rangepool}"   # projected volume: token and ca.crt
CONFLIST_SRC="${CONFLIST_SRC:-}"                       # conflist to install, empty for none
CONFLIST_NAME="${CONFLIST_NAME:-10-rangepool.conflist}"
NODE_NAME="${NODE_NAME:-}"
API_SERVER="${API_SERVER:-}"
CHECK_SECONDS="${CHECK_SECONDS:-10}"

KUBECONFIG_DIR="$CNI_CONF_DIR/rangepool"
KUBECONFIG_FILE="$KUBECONFIG_DIR/kubeconfig"

log() { echo "install-cni: $*"; }
die() { echo "install-cni: error: $*" >&2; exit 1; }

api_server() {
    if [ -n "$API_SERVER" ]; then
        echo "$API_SERVER"
        return
    fi
    [ -n "${KUBERNETES_SERVICE_HOST:-}" ] || die "KUBERNETES_SERVICE_HOST is not set; set cni.apiServer"
    host="$KUBERNETES_SERVICE_HOST"
    case "$host" in *:*) host="[$host]" ;; esac
    echo "https://$host:${KUBERNETES_SERVICE_PORT:-443}"
}

install_plugin() {
    [ -f "$PLUGIN_SRC" ] || die "$PLUGIN_SRC is missing from the image"
    mkdir -p "$CNI_BIN_DIR"
    target="$CNI_BIN_DIR/rangepool-ipam"
    if [ -x "$target" ] && cmp -s "$PLUGIN_SRC" "$target"; then
        log "$target is up to date"
        return
    fi
    tmp="$CNI_BIN_DIR/.rangepool-ipam.tmp.$$"
    cp "$PLUGIN_SRC" "$tmp"
    chmod 0755 "$tmp"
    mv -f "$tmp" "$target"
    log "installed $target"
}

# What the kubeconfig is made of: the token and the CA. The kubelet swaps both in atomically.
credentials() {
    [ -s "$TOKEN_DIR/token" ] || die "no ServiceAccount token at $TOKEN_DIR/token"
    [ -s "$TOKEN_DIR/ca.crt" ] || die "no CA certificate at $TOKEN_DIR/ca.crt"
    cat "$TOKEN_DIR/token" "$TOKEN_DIR/ca.crt"
}

write_kubeconfig() {
    token="$(cat "$TOKEN_DIR/token")"
    ca="$(base64 < "$TOKEN_DIR/ca.crt" | tr -d '\n')"
    server="$(api_server)"
    mkdir -p "$KUBECONFIG_DIR"
    chmod 0700 "$KUBECONFIG_DIR"
    tmp="$KUBECONFIG_DIR/.kubeconfig.tmp.$$"
    # umask first: the token never sits in a file anyone else can read, not even for a moment.
    (
        umask 077
        cat > "$tmp" <<EOF
# Written by the rangepool node DaemonSet for the rangepool-ipam CNI plugin. Rewritten when the
# token rotates; do not edit.
apiVersion: v1
kind: Config
clusters:
  - name: cluster
    cluster:
      server: "$server"
      certificate-authority-data: "$ca"
users:
  - name: rangepool-ipam
    user:
      token: "$token"
contexts:
  - name: rangepool-ipam
    context:
      cluster: cluster
      user: rangepool-ipam
current-context: rangepool-ipam
EOF
    )
    chmod 0600 "$tmp"
    mv -f "$tmp" "$KUBECONFIG_FILE"
}

install_conflist() {
    [ -n "$CONFLIST_SRC" ] || return 0
    [ -f "$CONFLIST_SRC" ] || die "conflist $CONFLIST_SRC not found"
    target="$CNI_CONF_DIR/$CONFLIST_NAME"
    tmp="$CNI_CONF_DIR/.$CONFLIST_NAME.tmp.$$"
    # The plugin's nodeName: the node object's name, which may differ from the host name.
    sed "s|__NODE_NAME__|$NODE_NAME|g" "$CONFLIST_SRC" > "$tmp"
    if [ -f "$target" ] && cmp -s "$tmp" "$target"; then
        rm -f "$tmp"
        return 0
    fi
    chmod 0644 "$tmp"
    mv -f "$tmp" "$target"
    log "installed $target"
}

case "$CHECK_SECONDS" in '' | *[!0-9]*) die "CHECK_SECONDS must be a number of seconds" ;; esac
[ -n "$CONFLIST_SRC" ] && [ -z "$NODE_NAME" ] && die "NODE_NAME is not set"

install_plugin
seen="$(credentials)"
write_kubeconfig
log "wrote $KUBECONFIG_FILE for $(api_server)"
install_conflist

trap 'log "stopping; the plugin and its kubeconfig stay installed"; exit 0' TERM INT
while :; do
    sleep "$CHECK_SECONDS" &
    wait $! || true
    now="$(credentials)"
    if [ "$now" != "$seen" ] || [ ! -s "$KUBECONFIG_FILE" ]; then
        write_kubeconfig
        seen="$now"
        log "rewrote $KUBECONFIG_FILE (token rotated, CA changed, or file missing)"
    fi
    [ -x "$CNI_BIN_DIR/rangepool-ipam" ] || install_plugin
    [ -z "$CONFLIST_SRC" ] || [ -f "$CNI_CONF_DIR/$CONFLIST_NAME" ] || install_conflist
done
