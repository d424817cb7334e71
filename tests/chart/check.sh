#!/usr/bin/env bash
# Checks of the Helm chart charts/rangepool, run by `make chart` (and so by `make test`):
#   1. the chart's CRDs are byte-identical to the generated crds/;
#   2. `helm lint --strict` and `helm template` with every values set in tests/chart/values/, each
#      rendering checked against its expectations (tests/chart/rendered.py) and every manifest
#      validated with kubernetes-validate --strict for Kubernetes 1.33.0; the optional
#      PrometheusRule checked and unit-tested with promtool (prometheus-rules.test.yaml), and the
#      Grafana dashboard's queries parsed by it;
#   3. every values set in tests/chart/bad-values/ is refused, with a message naming the bad field;
#   4. the node installer script (charts/rangepool/files/install-cni.sh) against temporary
#      directories: atomic install, kubeconfig modes, token rotation, conflist;
#   5. helm install / upgrade / uninstall against a real etcd + kube-apiserver (rangepool-envtest,
#      with kube-controller-manager), and the CNI plugin using the kubeconfig the installer wrote
#      from a real token of the chart's node ServiceAccount, so with the chart's RBAC, both through
#      the node agent (rangepool-agent, as the DaemonSet runs it) and directly.
# CHART_INSTALL_ONLY=1 runs only section 5 (for another Kubernetes version: RANGEPOOL_K8S_VERSION).
# Idempotent: installs what it needs under .tools/ (git-ignored) only when missing.
# Prints what it checked; exits non-zero on the first failure.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
CHART=charts/rangepool
KUBE_VERSION=1.33.0
KV_VERSION=1.37.0
HERE=tests/chart
WORK="$(mktemp -d)"
PIDS=()
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    # rangepool-envtest stops its etcd and kube-apiserver on SIGTERM: let it finish.
    wait "${PIDS[@]}" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

step() { echo; echo "== $*"; }
fail() { echo "FAIL: $*" >&2; exit 1; }
ok() { echo "  ok: $*"; }
# Runs the installer (files/install-cni.sh) against $1 (a fresh directory) in the background, with
# a made-up token and CA unless the directory has them; sets INSTALLER_PID.
start_installer() {
    local dir="$1" shell="$2"
    shift 2
    mkdir -p "$dir/bin" "$dir/conf" "$dir/token" "$dir/image"
    [ -e "$dir/token/ca.crt" ] || cp "$WORK/ca.crt" "$dir/token/ca.crt"
    [ -e "$dir/token/token" ] || printf 'token-one' > "$dir/token/token"
    printf '#!/bin/sh\necho fake plugin\n' > "$dir/image/rangepool-ipam"
    # $shell is "sh" or "busybox sh": split on purpose.
    # shellcheck disable=SC2086
    env CNI_BIN_DIR="$dir/bin" CNI_CONF_DIR="$dir/conf" TOKEN_DIR="$dir/token" \
        PLUGIN_SRC="$dir/image/rangepool-ipam" NODE_NAME=node-a CHECK_SECONDS=1 "$@" \
        $shell "$CHART/files/install-cni.sh" > "$dir/log" 2>&1 &
    INSTALLER_PID=$!
    PIDS+=("$INSTALLER_PID")
}
wait_for() { # seconds description command...
    local n="$1" what="$2"
    shift 2
    for _ in $(seq $((n * 10))); do "$@" && return 0; sleep 0.1; done
    fail "timed out waiting for: $what"
}

# --- tools ----------------------------------------------------------------------------------------
bash tests/tools/install-k8s-tools.sh >/dev/null
HELM="$ROOT/.tools/bin/helm"
KUBECTL="$ROOT/.tools/bin/kubectl"
export HELM_CACHE_HOME="$WORK/helm/cache" HELM_CONFIG_HOME="$WORK/helm/config" HELM_DATA_HOME="$WORK/helm/data"

VENV="$ROOT/.tools/venv"
PY="$VENV/bin/python"
if ! { [ -x "$PY" ] && "$PY" -c "import kubernetes_validate, yaml, jsonschema" 2>/dev/null; }; then
    echo "installing kubernetes-validate ${KV_VERSION} into .tools/venv"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet "kubernetes-validate==${KV_VERSION}"
fi
"$PY" -c "import kubernetes_validate" || fail "kubernetes-validate is not importable from $VENV"
KV="$VENV/bin/kubernetes-validate"
echo "helm $("$HELM" version --template '{{.Version}}'), kubernetes-validate $("$KV" --version 2>&1 | tail -n 1)"

# The validator must be able to fail: a Deployment with a misspelled field is refused.
cat > "$WORK/canary.yaml" <<'EOF'
apiVersion: apps/v1
kind: Deployment
metadata: {name: canary}
spec:
  replica: 2
  selector: {matchLabels: {a: b}}
  template: {metadata: {labels: {a: b}}, spec: {containers: [{name: c, image: i}]}}
EOF
if "$KV" --strict -k "$KUBE_VERSION" --quiet "$WORK/canary.yaml" >/dev/null 2>&1; then
    fail "kubernetes-validate --strict accepted a Deployment with an unknown field"
fi

# Sections 1-4 need no cluster: CHART_INSTALL_ONLY=1 skips them (make chart runs them once, and the
# install on each Kubernetes version it supports). Their bodies are not indented: they hold
# here-documents.
if [ "${CHART_INSTALL_ONLY:-}" == 1 ]; then
    echo "CHART_INSTALL_ONLY=1: only the install on a real API server (section 5)"
else

# --- 1. CRDs ----------------------------------------------------------------------------------------
step "chart CRDs are the generated crds/ (refresh: make crds && cp crds/*.yaml $CHART/crds/)"
want="$(cd crds && ls ./*.yaml)"
have="$(cd "$CHART/crds" && ls ./*.yaml)"
[ "$want" == "$have" ] || fail "$CHART/crds has [$have], crds/ has [$want]"
for f in crds/*.yaml; do
    cmp -s "$f" "$CHART/crds/$(basename "$f")" \
        || fail "$CHART/crds/$(basename "$f") differs from $f: run make crds && cp crds/*.yaml $CHART/crds/"
    ok "$(basename "$f") identical"
done

# --- 2. good values -------------------------------------------------------------------------------
render() { # name values-file [extra helm args] -> $WORK/<name>.yaml
    local name="$1" values="$2"
    shift 2
    "$HELM" template rangepool "$CHART" --namespace kube-system --kube-version "$KUBE_VERSION" \
        --include-crds -f "$values" "$@" > "$WORK/$name.yaml"
}
for values in "$HERE"/values/*.yaml; do
    name="$(basename "$values" .yaml)"
    step "values set $name"
    "$HELM" lint --strict --quiet "$CHART" -f "$values" --kube-version "$KUBE_VERSION" >/dev/null \
        || { "$HELM" lint --strict "$CHART" -f "$values" --kube-version "$KUBE_VERSION"; fail "helm lint --strict with $values"; }
    ok "helm lint --strict"
    render "$name" "$values" || fail "helm template with $values"
    ok "helm template ($(grep -c '^kind:' "$WORK/$name.yaml") objects)"
    "$PY" "$HERE/rendered.py" split "$WORK/$name.yaml" "$WORK/$name.builtin.yaml"
    "$KV" --strict -k "$KUBE_VERSION" "$WORK/$name.builtin.yaml" > "$WORK/$name.kv" 2>&1 \
        || { cat "$WORK/$name.kv"; fail "kubernetes-validate --strict -k $KUBE_VERSION with $values"; }
    if grep -q "Couldn't find schema" "$WORK/$name.kv"; then
        cat "$WORK/$name.kv"; fail "kubernetes-validate has no schema for an object it was given"
    fi
    ok "kubernetes-validate --strict -k $KUBE_VERSION: $(grep -c ' passed ' "$WORK/$name.kv") objects passed (CRDs as apiextensions.k8s.io/v1)"
    "$PY" "$HERE/rendered.py" pools "$WORK/$name.yaml" crds
    "$PY" "$HERE/rendered.py" expect "$name" "$WORK/$name.yaml"
done

# The chart's ConfigMap carries the installer script unchanged.
"$PY" - "$WORK/defaults.yaml" "$CHART/files/install-cni.sh" <<'EOF'
import sys, yaml
cm = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d and d["kind"] == "ConfigMap"][0]
assert cm["data"]["install-cni.sh"] == open(sys.argv[2]).read(), "ConfigMap script differs from the file"
print("  ok: the node ConfigMap carries files/install-cni.sh byte for byte")
EOF

# The optional PrometheusRule (promtool check and unit tests of its alerts) and the Grafana
# dashboard's queries (PromQL syntax). That every metric they name is one the controller exports is
# checked by the controller's tests (crates/controller/tests/metrics.rs) on a real /metrics.
step "PrometheusRule and Grafana dashboard queries (promtool)"
bash tests/tools/install-prometheus-tools.sh > /dev/null
PROMTOOL="$ROOT/.tools/bin/promtool"
if [ -x "$PROMTOOL" ]; then
    mkdir -p "$WORK/rules"
    "$HELM" template rangepool "$CHART" --namespace kube-system --set prometheusRule.enabled=true \
        --show-only templates/prometheusrule.yaml > "$WORK/rules/rendered.yaml"
    "$PY" - "$WORK/rules" "$CHART/files/grafana-dashboard.json" <<'EOF'
import json, sys, yaml
out, dashboard = sys.argv[1], sys.argv[2]
with open(f"{out}/rendered.yaml") as f:
    rule = yaml.safe_load(f)
with open(f"{out}/rangepool-rules.yaml", "w") as f:
    yaml.safe_dump(rule["spec"], f, sort_keys=False)
# Each panel query as a recording rule, so that promtool parses it; Grafana's variables get values.
with open(dashboard) as f:
    panels = json.load(f)["panels"]
queries = [t["expr"].replace("$__rate_interval", "1m").replace("$pool", ".*")
           for p in panels for t in p["targets"]]
with open(f"{out}/dashboard-queries.yaml", "w") as f:
    yaml.safe_dump({"groups": [{"name": "dashboard", "rules": [
        {"record": f"dashboard:query{i}", "expr": q} for i, q in enumerate(queries)]}]}, f)
print(f"  {len(rule['spec']['groups'][0]['rules'])} alerting rules, {len(queries)} dashboard queries")
EOF
    "$PROMTOOL" check rules "$WORK/rules/rangepool-rules.yaml" "$WORK/rules/dashboard-queries.yaml" > "$WORK/rules/check.out" 2>&1 \
        || { cat "$WORK/rules/check.out"; fail "promtool check rules"; }
    ok "promtool check rules: the alerts and every dashboard query parse"
    cp "$HERE/prometheus-rules.test.yaml" "$WORK/rules/"
    "$PROMTOOL" test rules "$WORK/rules/prometheus-rules.test.yaml" > "$WORK/rules/test.out" 2>&1 \
        || { cat "$WORK/rules/test.out"; fail "promtool test rules $HERE/prometheus-rules.test.yaml"; }
    ok "promtool test rules: a pool over 90 % alerts after 10m, a standby's stale numbers do not; refusals alert; no leader (or none scraped) alerts"
else
    echo "  SKIPPED: promtool is not installed (tests/tools/install-prometheus-tools.sh needs apt-get)"
fi

# --- 3. bad values ----------------------------------------------------------------------------------
step "bad values are refused with a message naming the field"
for values in "$HERE"/bad-values/*.yaml; do
    name="$(basename "$values" .yaml)"
    grep -q '^# expect: ' "$values" || fail "$values has no '# expect:' line"
    if "$HELM" template rangepool "$CHART" --kube-version "$KUBE_VERSION" -f "$values" > "$WORK/bad.out" 2>&1; then
        fail "$name: helm template accepted $values"
    fi
    while IFS= read -r want; do
        grep -qF -- "$want" "$WORK/bad.out" || { cat "$WORK/bad.out"; fail "$name: message lacks \"$want\""; }
    done < <(sed -n 's/^# expect: //p' "$values")
    case "$(sed -n 's/^# refused-by: //p' "$values")" in
        schema)
            if "$HELM" lint --strict "$CHART" -f "$values" --kube-version "$KUBE_VERSION" > /dev/null 2>&1; then
                fail "$name: helm lint accepted $values"
            fi ;;
        template) ;; # helm lint logs a template's `fail` instead of failing; template and install fail
        *) fail "$values has no '# refused-by: schema|template' line" ;;
    esac
    # The whole message, as helm prints it: a schema error's line "- at '/path': ...", or a
    # template's fail() after "execution error at (file:line:col): ".
    msg=$(sed -n -e "s/^- \(at '.*\)$/\1/p" -e 's/^Error: execution error at ([^)]*): //p' "$WORK/bad.out" | head -n 1)
    [[ -n $msg ]] || { cat "$WORK/bad.out"; fail "$name: no schema or template message in helm's output"; }
    ok "$name: refused ($msg)"
done

# --- 4. the installer script ------------------------------------------------------------------------
step "node installer script (files/install-cni.sh)"
shells=(sh)
command -v busybox >/dev/null 2>&1 && shells+=("busybox sh") || echo "  note: busybox not installed here; the script is checked with sh only"
openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=test-ca \
    -keyout "$WORK/ca.key" -out "$WORK/ca.crt" >/dev/null 2>&1 || fail "openssl could not make a test CA"

rotate_token() { # like the kubelet: write aside, then rename over
    printf '%s' "$2" > "$1/token/.tmp" && mv -f "$1/token/.tmp" "$1/token/token"
}
conflist_src="$WORK/10-rangepool.conflist"
"$PY" - "$WORK/conflist-ptp.yaml" "$conflist_src" <<'EOF'
import sys, yaml
cm = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d and d["kind"] == "ConfigMap"][0]
open(sys.argv[2], "w").write(cm["data"]["10-rangepool.conflist"])
EOF
for shell in "${shells[@]}"; do
    d="$WORK/node-$(echo "$shell" | tr ' ' '-')"
    start_installer "$d" "$shell" CONFLIST_SRC="$conflist_src" KUBERNETES_SERVICE_HOST=fd00::1 KUBERNETES_SERVICE_PORT=443
    kc="$d/conf/rangepool/kubeconfig"
    wait_for 10 "installer ($shell) writes the conflist" test -f "$d/conf/10-rangepool.conflist"
    { cmp -s "$d/image/rangepool-ipam" "$d/bin/rangepool-ipam" && [ -x "$d/bin/rangepool-ipam" ]; } \
        || fail "$shell: plugin not installed as an executable copy"
    { [ "$(stat -c %a "$d/conf/rangepool")" == 700 ] && [ "$(stat -c %a "$kc")" == 600 ]; } \
        || fail "$shell: kubeconfig dir/file modes are $(stat -c %a "$d/conf/rangepool")/$(stat -c %a "$kc"), want 700/600"
    [ "$("$KUBECTL" --kubeconfig "$kc" config view --raw -o jsonpath='{.users[0].user.token}')" == token-one ] \
        || fail "$shell: kubeconfig does not carry the projected token"
    [ "$("$KUBECTL" --kubeconfig "$kc" config view --raw -o jsonpath='{.clusters[0].cluster.server}')" == "https://[fd00::1]:443" ] \
        || fail "$shell: kubeconfig server is not the kubernetes Service (IPv6 in brackets)"
    "$KUBECTL" --kubeconfig "$kc" config view --raw -o jsonpath='{.clusters[0].cluster.certificate-authority-data}' \
        | base64 -d | cmp -s - "$d/token/ca.crt" || fail "$shell: kubeconfig CA differs from ca.crt"
    grep -q '"nodeName": "node-a"' "$d/conf/10-rangepool.conflist" || fail "$shell: node name not put in the conflist"
    ok "$shell: plugin installed (0755), kubeconfig 0600 in a 0700 dir with token, CA and server, conflist with node name"
    rotate_token "$d" token-two
    wait_for 10 "kubeconfig rewritten after token rotation ($shell)" \
        grep -q '"token-two"' "$kc"
    [ "$(stat -c %a "$kc")" == 600 ] || fail "$shell: rewritten kubeconfig is not 0600"
    ok "$shell: rotated token reaches the kubeconfig within seconds, still 0600"
    rm -f "$kc" "$d/bin/rangepool-ipam"
    wait_for 10 "missing files put back ($shell)" test -s "$kc" -a -x "$d/bin/rangepool-ipam"
    ok "$shell: deleted kubeconfig and plugin are put back"
    kill -TERM "$INSTALLER_PID"
    wait "$INSTALLER_PID" || fail "$shell: installer did not exit 0 on SIGTERM: $(cat "$d/log")"
    { [ -x "$d/bin/rangepool-ipam" ] && [ -s "$kc" ]; } || fail "$shell: files removed on exit"
    leftovers="$(find "$d/bin" "$d/conf" -name '.*tmp*')"
    [ -z "$leftovers" ] || fail "$shell: temporary files left: $leftovers"
    ok "$shell: exits 0 on SIGTERM, leaves the plugin and kubeconfig, no temporary files"
done
# Without a token the installer refuses rather than writing a kubeconfig that cannot work.
d="$WORK/node-no-token"
mkdir -p "$d/empty"
start_installer "$d" sh KUBERNETES_SERVICE_HOST=10.96.0.1 TOKEN_DIR="$d/empty"
if wait "$INSTALLER_PID"; then fail "installer succeeded without a token"; fi
grep -q "no ServiceAccount token" "$d/log" || fail "missing token message: $(cat "$d/log")"
[ ! -e "$d/conf/rangepool/kubeconfig" ] || fail "kubeconfig written without a token"
ok "missing token: exits non-zero with a clear message, writes no kubeconfig"

fi # sections 1-4

# --- 5. install against a real API server -----------------------------------------------------------
step "helm install / upgrade / uninstall against a real kube-apiserver (rangepool-envtest)"
# RANGEPOOL_BIN_DIR: a directory that already holds the three binaries (skips the build).
if [ -n "${RANGEPOOL_BIN_DIR:-}" ]; then
    BIN_DIR="$RANGEPOOL_BIN_DIR"
    echo "  note: using rangepool-envtest, rangepool-ipam and rangepool-agent from $BIN_DIR"
else
    cargo build --quiet --locked -p rangepool-envtest -p rangepool-cni --bin rangepool-envtest --bin rangepool-ipam \
        --bin rangepool-agent
    BIN_DIR="$(cargo metadata --format-version 1 --no-deps | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/debug"
fi
# With kube-controller-manager (namespace, ServiceAccount and garbage-collector controllers), so that
# deletions complete as on a cluster; no scheduler or kubelet: workloads are stored, no pod runs.
"$BIN_DIR/rangepool-envtest" --kubeconfig-out "$WORK/kc/config" --controller-manager \
    > "$WORK/envtest.out" 2> "$WORK/envtest.err" &
ENVTEST_PID=$!
PIDS+=("$ENVTEST_PID")
envtest_ready() {
    kill -0 "$ENVTEST_PID" 2>/dev/null \
        || { cat "$WORK/envtest.err" >&2; fail "rangepool-envtest exited before it was ready"; }
    grep -q '^ready ' "$WORK/envtest.out"
}
# The first run on a machine builds etcd and kube-apiserver from Go modules (tests/k8s/build.sh).
wait_for 900 "rangepool-envtest ready" envtest_ready
URL="$(sed -n 's/^ready //p' "$WORK/envtest.out")"
export KUBECONFIG="$WORK/kc/config"
echo "  note: kube-apiserver $("$KUBECTL" version -o json | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["serverVersion"]["gitVersion"])') at $URL"
# cniVersion 1.1.0: the plugin's STATUS, which this section calls with the installed conflist,
# exists from CNI 1.1.0 on (the chart's default, 1.0.0, is for reference plugins older than 1.5).
install_args=(--namespace kube-system -f "$HERE/values/conflist-ptp.yaml"
    -f "$HERE/values/pools.yaml" --set cni.apiServer="$URL" --set cni.cniVersion=1.1.0)
"$HELM" install rangepool "$CHART" "${install_args[@]}" > "$WORK/install.out" 2>&1 \
    || { cat "$WORK/install.out"; fail "helm install"; }
grep -q "STATUS: deployed" "$WORK/install.out" || fail "helm install did not deploy"
ok "helm install (CRDs, RBAC, Deployment, PodDisruptionBudget, DaemonSet, Service, ConfigMap, IPPools)"
# Every CRD the chart ships, and no other.
chart_crds="$(cd "$CHART/crds" && ls ./*.yaml | sed 's|^\./|customresourcedefinition.apiextensions.k8s.io/|; s|\.yaml$||' | sort | tr '\n' ' ')"
[ "$("$KUBECTL" get crd -o name | sort | tr '\n' ' ')" == "$chart_crds" ] \
    || fail "CRDs not installed"
[ "$("$KUBECTL" get ippools -o jsonpath='{range .items[*]}{.metadata.name}={.spec.cidr} {end}')" == "batch=10.244.129.0/24 general=10.244.0.0/17 payments=10.244.128.0/24 " ] \
    || fail "pools not created as declared: $("$KUBECTL" get ippools -o wide)"
ok "IPPools accepted by the server's CRD validation"
[ "$("$KUBECTL" -n kube-system get deploy rangepool-controller -o jsonpath='{.spec.replicas}')" == 2 ] || fail "Deployment"
"$KUBECTL" -n kube-system get ds rangepool-node -o name > /dev/null || fail "DaemonSet"
[ "$("$KUBECTL" -n kube-system get pdb rangepool-controller -o jsonpath='{.spec.maxUnavailable}')" == 1 ] \
    || fail "PodDisruptionBudget not stored"
ok "controller Deployment, its PodDisruptionBudget (policy/v1) and node DaemonSet stored"

# The installer writes a kubeconfig from the token directory the DaemonSet projects: a token of
# the chart's node ServiceAccount (minted as the kubelet would, with the DaemonSet's lifetime and
# audience) and the cluster's CA (the kubelet projects it from the kube-root-ca.crt ConfigMap; here it
# comes from the admin's kubeconfig). The plugin uses it (CNI STATUS lists IPAMBlocks) with the
# conflist that was installed, so with exactly the chart's RBAC.
d="$WORK/node-live"
mkdir -p "$d/token"
ds_jsonpath() { "$KUBECTL" -n kube-system get ds rangepool-node -o jsonpath="$1"; }
api_server="$(ds_jsonpath '{.spec.template.spec.containers[0].env[?(@.name=="API_SERVER")].value}')"
[ "$api_server" == "$URL" ] || fail "the DaemonSet's API_SERVER is \"$api_server\", not cni.apiServer ($URL)"
token_source='.spec.template.spec.volumes[?(@.name=="token")].projected.sources[0].serviceAccountToken'
lifetime="$(ds_jsonpath "{$token_source.expirationSeconds}")"
audience="$(ds_jsonpath "{$token_source.audience}")"
"$KUBECTL" -n kube-system create token rangepool-node --duration "${lifetime}s" ${audience:+--audience "$audience"} \
    > "$d/token/token" 2> "$WORK/token.err" || { cat "$WORK/token.err"; fail "kubectl create token rangepool-node"; }
"$KUBECTL" config view --raw -o jsonpath='{.clusters[0].cluster.certificate-authority-data}' \
    | base64 -d > "$d/token/ca.crt"
grep -q "BEGIN CERTIFICATE" "$d/token/ca.crt" || fail "no CA in the admin kubeconfig"
ok "token of ServiceAccount rangepool-node (${lifetime} s${audience:+, audience $audience}) and the control plane's CA in the token directory"
"$KUBECTL" -n kube-system get configmap rangepool-node -o jsonpath='{.data.10-rangepool\.conflist}' > "$WORK/live.conflist"
start_installer "$d" sh CONFLIST_SRC="$WORK/live.conflist" API_SERVER="$api_server"
wait_for 10 "installer writes the live conflist" test -f "$d/conf/10-rangepool.conflist"
kill -TERM "$INSTALLER_PID"; wait "$INSTALLER_PID" || true
kc="$d/conf/rangepool/kubeconfig"
[ "$("$KUBECTL" --kubeconfig "$kc" auth whoami -o jsonpath='{.status.userInfo.username}')" == system:serviceaccount:kube-system:rangepool-node ] \
    || fail "the installer's kubeconfig does not authenticate as the node ServiceAccount"
if "$KUBECTL" --kubeconfig "$kc" get ippools > "$WORK/denied.out" 2>&1; then
    fail "the node ServiceAccount may list ippools, which the chart does not grant"
fi
grep -q "Forbidden" "$WORK/denied.out" || { cat "$WORK/denied.out"; fail "listing ippools as the node failed, but not with Forbidden"; }
# The plugin writes nothing: the node may read IPAMBlocks, and write none of them.
[ "$("$KUBECTL" --kubeconfig "$kc" auth can-i get ipamblocks.rangepool.dev 2> /dev/null)" == yes ] \
    || fail "the node ServiceAccount may not read ipamblocks"
for verb in create update patch delete deletecollection; do
    answer="$("$KUBECTL" --kubeconfig "$kc" auth can-i "$verb" ipamblocks.rangepool.dev 2> /dev/null)" || true
    [ "$answer" == no ] || fail "the node ServiceAccount may $verb ipamblocks ($answer)"
done
ok "the installer's kubeconfig authenticates as rangepool-node over TLS; RBAC refuses what the chart does not grant (no write on ipamblocks)"
# The node agent as the DaemonSet's agent container runs it (the rendered DaemonSet names the
# kubeconfig the installer writes), with that kubeconfig and a socket under the test dir.
agent_args="$(ds_jsonpath '{.spec.template.spec.containers[?(@.name=="agent")].command}')"
grep -q -- '--kubeconfig=/etc/cni/net.d/rangepool/kubeconfig' <<< "$agent_args" \
    || fail "the DaemonSet's agent does not read the plugin's kubeconfig: $agent_args"
sock="$d/run/agent.sock"
"$BIN_DIR/rangepool-agent" --kubeconfig "$kc" --socket "$sock" --log-level debug > "$d/agent.log" 2>&1 &
AGENT_PID=$!
PIDS+=("$AGENT_PID")
wait_for 10 "rangepool-agent listens on $sock" test -S "$sock"
[ "$(stat -c %a "$d/run") $(stat -c %a "$sock")" == "700 600" ] \
    || fail "agent socket dir/file modes are $(stat -c %a "$d/run") $(stat -c %a "$sock"), want 700 600"
status_input() { # conflist kubeconfig socket-or-empty -> the plugin's stdin for STATUS
    "$PY" - "$@" <<'EOF'
import json, sys
conf = json.load(open(sys.argv[1]))
plugin = dict(conf["plugins"][0], cniVersion=conf["cniVersion"], name=conf["name"])
assert plugin["ipam"]["agentSocket"] == "/run/rangepool/agent.sock", "the conflist does not name the agent"
plugin["ipam"]["kubeconfig"] = sys.argv[2]   # the host path /etc/cni/net.d/... lives under the test dir here
if sys.argv[3]:
    plugin["ipam"]["agentSocket"] = sys.argv[3]   # and so does /run/rangepool
else:
    del plugin["ipam"]["agentSocket"]
print(json.dumps(plugin))
EOF
}
status_input "$d/conf/10-rangepool.conflist" "$kc" "$sock" > "$WORK/status-agent.in"
status_input "$d/conf/10-rangepool.conflist" "$kc" "" > "$WORK/status.in"
for input in "$WORK/status-agent.in" "$WORK/status.in"; do
    CNI_COMMAND=STATUS "$BIN_DIR/rangepool-ipam" < "$input" > "$WORK/status.out" 2> "$WORK/status.err" \
        || { cat "$WORK/status.out" "$WORK/status.err" "$d/agent.log"; fail "rangepool-ipam STATUS ($(basename "$input")) with the installed conflist and kubeconfig"; }
done
grep -q "request: LIST ipamblocks" "$d/agent.log" || { cat "$d/agent.log"; fail "STATUS did not go through the agent"; }
ok "rangepool-ipam STATUS succeeds through the node agent and directly, with the chart's conflist, the installer's kubeconfig and the chart's node RBAC"
kill -TERM "$AGENT_PID"
wait "$AGENT_PID" || fail "rangepool-agent did not exit 0 on SIGTERM: $(cat "$d/agent.log")"
[ ! -e "$sock" ] || fail "rangepool-agent left its socket behind on SIGTERM"
if CNI_COMMAND=STATUS "$BIN_DIR/rangepool-ipam" < "$WORK/status-agent.in" > "$WORK/status.out" 2> "$WORK/status.err"; then
    fail "STATUS succeeded with the agent stopped"
fi
grep -q '"code":50' "$WORK/status.out" && grep -q "node agent is not answering" "$WORK/status.out" \
    || { cat "$WORK/status.out"; fail "STATUS with the agent stopped is not code 50 naming the agent"; }
ok "rangepool-agent removes its socket on SIGTERM; STATUS then fails with code 50: the node agent is not answering"

"$HELM" upgrade rangepool "$CHART" "${install_args[@]}" --set logFormat=json > "$WORK/upgrade.out" 2>&1 \
    || { cat "$WORK/upgrade.out"; fail "helm upgrade"; }
"$KUBECTL" -n kube-system get deploy rangepool-controller -o jsonpath='{.spec.template.spec.containers[0].args}' \
    | grep -q -- '--log-format=json' || fail "upgrade did not change the controller's args"
ok "helm upgrade changes the controller's flags"
"$HELM" uninstall rangepool --namespace kube-system > "$WORK/uninstall.out" 2>&1 \
    || { cat "$WORK/uninstall.out"; fail "helm uninstall"; }
"$KUBECTL" -n kube-system get deploy rangepool-controller > /dev/null 2>&1 && fail "Deployment left after uninstall"
[ "$("$KUBECTL" get crd -o name | sort | tr '\n' ' ')" == "$chart_crds" ] || fail "CRDs removed by uninstall"
[ "$("$KUBECTL" get ippools -o name | wc -l)" == 3 ] || fail "pools removed by uninstall despite keepPoolsOnUninstall"
ok "helm uninstall removes the workloads, keeps the CRDs and (keepPoolsOnUninstall) the pools"
"$HELM" install rangepool "$CHART" "${install_args[@]}" > "$WORK/reinstall.out" 2>&1 \
    || { cat "$WORK/reinstall.out"; fail "helm install after uninstall (adopting the kept pools)"; }
ok "a second helm install adopts the kept pools"

echo
echo "chart checks passed"
