"""Checks on the chart's rendered manifests, for tests/chart/check.sh.

    rendered.py split RENDERED OUT_BUILTIN        built-in kinds to OUT_BUILTIN; notes on the rest
    rendered.py pools RENDERED CRD_DIR            IPPools against the IPPool CRD's schema
    rendered.py expect NAME RENDERED              what values set NAME must render (EXPECTATIONS)

Every command prints what it checked and exits 1 on the first failed check.
"""

import json
import sys

import yaml

# Kinds that kubernetes-validate has no schema for; each is checked another way (printed).
CUSTOM = {
    ("rangepool.dev/v1", "IPPool"): "validated against the IPPool CRD's openAPIV3Schema below "
    "(CEL rules are not evaluated here; the test API server install below applies the schema "
    "and its CEL rules)",
    ("monitoring.coreos.com/v1", "ServiceMonitor"): "not validated: the Prometheus Operator's "
    "CRD is not available here; checked field by field by the expectations instead",
    ("monitoring.coreos.com/v1", "PrometheusRule"): "not validated: the Prometheus Operator's "
    "CRD is not available here; checked by the expectations, and its rules by promtool when "
    "installed; the controller's tests check the metrics they use exist",
}


def load(path):
    with open(path) as f:
        return [d for d in yaml.safe_load_all(f) if d]


def fail(msg):
    print(f"FAIL: {msg}")
    sys.exit(1)


def split(rendered, out):
    docs = load(rendered)
    builtin = []
    for d in docs:
        key = (d.get("apiVersion"), d.get("kind"))
        if key in CUSTOM:
            print(f"  note: skipping {key[1]} {d['metadata']['name']} for kubernetes-validate: {CUSTOM[key]}")
        elif "." in key[0].split("/")[0] and not key[0].split("/")[0].endswith(".k8s.io"):
            fail(f"{key[1]} ({key[0]}) is neither built in nor known to this check")
        else:
            builtin.append(d)
    with open(out, "w") as f:
        yaml.safe_dump_all(builtin, f, sort_keys=False)
    print(f"  {len(builtin)} built-in objects to validate, {len(docs) - len(builtin)} custom")


def pools_schema(rendered, crd_dir):
    import jsonschema

    with open(f"{crd_dir}/ippools.rangepool.dev.yaml") as f:
        crd = yaml.safe_load(f)
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    n = 0
    for d in load(rendered):
        if d.get("kind") != "IPPool":
            continue
        body = {k: v for k, v in d.items() if k not in ("apiVersion", "kind", "metadata")}
        try:
            jsonschema.validate(body, schema)
        except jsonschema.ValidationError as e:
            fail(f"IPPool {d['metadata']['name']}: {e.message} at {list(e.absolute_path)}")
        n += 1
    print(f"  {n} IPPool(s) match the CRD schema")


# --- expectations per values set ---------------------------------------------------------------


class Rendered:
    def __init__(self, path):
        self.docs = load(path)

    def all(self, kind):
        return [d for d in self.docs if d["kind"] == kind]

    def one(self, kind, name=None):
        found = [d for d in self.all(kind) if name is None or d["metadata"]["name"] == name]
        if len(found) != 1:
            fail(f"expected one {kind} {name or ''}, found {len(found)}")
        return found[0]

    def controller(self):
        return self.one("Deployment")["spec"]["template"]["spec"]["containers"][0]

    def args(self):
        return self.controller()["args"]

    def node_pod(self):
        return self.one("DaemonSet")["spec"]["template"]["spec"]

    def agent(self):
        found = [c for c in self.node_pod()["containers"] if c["name"] == "agent"]
        return found[0] if found else None

    def conflist(self):
        data = [d for d in self.all("ConfigMap") if d["metadata"]["name"].endswith("-node")][0]["data"]
        lists = [k for k in data if k.endswith(".conflist")]
        return json.loads(data[lists[0]]) if lists else None

    def rules(self, kind, name_suffix):
        role = [d for d in self.all(kind) if d["metadata"]["name"].endswith(name_suffix)]
        return role[0]["rules"] if role else None


def check(cond, what):
    if not cond:
        fail(what)
    print(f"  ok: {what}")


def common(r):
    """What every values set must render."""
    dep = r.one("Deployment")
    pod = dep["spec"]["template"]["spec"]
    c = r.controller()
    check(pod["serviceAccountName"].endswith("-controller"), "controller runs as its own ServiceAccount")
    check(pod["securityContext"]["runAsNonRoot"] is True and c["securityContext"]["runAsNonRoot"] is True,
          "controller runAsNonRoot")
    hardened = [("controller", c["securityContext"])] + [
        (f"node {nc['name']}", nc["securityContext"]) for nc in r.node_pod()["containers"]]
    for name, sc in hardened:
        check(sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False
              and sc["capabilities"]["drop"] == ["ALL"] and sc["seccompProfile"]["type"] == "RuntimeDefault",
              f"{name}: read-only root, no privilege escalation, all capabilities dropped, seccomp RuntimeDefault")
    env = {e["name"]: e["valueFrom"]["fieldRef"]["fieldPath"] for e in c["env"]}
    check(env == {"POD_NAME": "metadata.name", "POD_NAMESPACE": "metadata.namespace"},
          "POD_NAME/POD_NAMESPACE from the downward API for the Lease")
    port = c["ports"][0]
    check(c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
          and c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
          and port["name"] == "metrics", "liveness /healthz and readiness /readyz on the metrics port")
    check(any(a == f"--metrics-addr=0.0.0.0:{port['containerPort']}" or
              a == f"--metrics-addr=[::]:{port['containerPort']}" for a in r.args()),
          "--metrics-addr listens on the metrics port")
    check("resources" in c and "requests" in c["resources"], "controller has resource requests")

    node = r.node_pod()
    check(node["hostNetwork"] is True and node["priorityClassName"] == "system-node-critical",
          "node DaemonSet: hostNetwork, system-node-critical")
    check(node["tolerations"] == [{"operator": "Exists"}], "node DaemonSet tolerates every taint")
    check(node["automountServiceAccountToken"] is False, "node pod has no default token mount")
    paths = {v["name"]: v["hostPath"]["path"] for v in node["volumes"] if "hostPath" in v}
    agent = r.agent()
    want = {"cni-bin", "cni-conf"} | ({"agent-run"} if agent else set())
    check(set(paths) == want, f"node DaemonSet mounts only the CNI dirs (and the agent's) {sorted(paths.values())}")
    if agent:
        conf_dir = paths["cni-conf"].rstrip("/")
        check(agent["command"][:3] == ["/usr/local/bin/rangepool-agent",
                                       f"--kubeconfig={conf_dir}/rangepool/kubeconfig",
                                       "--socket=/run/rangepool/agent.sock"]
              and agent["image"] == node["containers"][0]["image"],
              "agent container runs rangepool-agent from the installer image with the plugin's kubeconfig and the socket")
        mounts = {m["name"]: m for m in agent["volumeMounts"]}
        check(set(mounts) == {"cni-conf", "agent-run"} and mounts["cni-conf"]["readOnly"] is True
              and mounts["cni-conf"]["mountPath"] == paths["cni-conf"]
              and mounts["agent-run"]["mountPath"] == paths["agent-run"] == "/run/rangepool",
              "agent mounts the CNI conf dir read-only at its host path and /run/rangepool")
        check(agent["securityContext"]["runAsUser"] == 0 and "test -S /run/rangepool/agent.sock"
              in agent["readinessProbe"]["exec"]["command"][-1] and "requests" in agent["resources"],
              "agent runs as root (its socket is root's), ready when its socket exists, has resource requests")
    token = [v for v in node["volumes"] if v["name"] == "token"][0]["projected"]["sources"]
    sat = token[0]["serviceAccountToken"]
    check(sat["expirationSeconds"] >= 600 and token[1]["configMap"]["name"] == "kube-root-ca.crt",
          f"projected token with explicit expirationSeconds ({sat['expirationSeconds']}) and the cluster CA")

    lease = r.rules("Role", "-lease")
    check(lease is not None and all(rule["apiGroups"] == ["coordination.k8s.io"] for rule in lease)
          and {v for rule in lease for v in rule["verbs"]} == {"get", "create", "update", "patch"},
          "controller Lease Role: get/create/update/patch leases only")
    ctl = r.rules("ClusterRole", "-controller")
    check(not any("secrets" in rule["resources"] or "*" in rule["verbs"] or "*" in rule["resources"]
                  for rule in ctl), "controller ClusterRole: no secrets, no wildcards")
    node_rules = r.rules("ClusterRole", "-node")
    verbs = {(g, res, v) for rule in node_rules for g in rule["apiGroups"] for res in rule["resources"]
             for v in rule["verbs"]}
    writes = {(g, res, v) for g, res, v in verbs if v not in ("get", "list", "watch")}
    check(writes == set(), "node ClusterRole grants no write at all, so none on ipamblocks"
          + (f" (it grants {sorted(writes)})" if writes else ""))
    check(("rangepool.dev", "ipamblocks", "get") in verbs, "node ClusterRole reads ipamblocks")
    check(("", "pods", "watch") in verbs and not any(res == "secrets" for _, res, _ in verbs),
          "node ClusterRole reads pods, never secrets")
    pdb = r.all("PodDisruptionBudget")
    check(all(p["spec"]["maxUnavailable"] == 1 for p in pdb), "PodDisruptionBudget maxUnavailable 1 (when rendered)")


def defaults(r):
    dep = r.one("Deployment")
    check(dep["spec"]["replicas"] == 2, "2 controller replicas")
    a = r.args()
    check(not any(x.startswith("--pod-cidr") for x in a), "no --pod-cidr: pod CIDRs come from kubeadm-config")
    check("--no-default-pool" not in a and "--strict-affinity" not in a, "default pool on, strict affinity off")
    check({"--leak-grace-period=5m", "--log-format=text", "--metrics-addr=0.0.0.0:10267"} <= set(a),
          "leak grace 5m, text logs, metrics on 0.0.0.0:10267")
    cm = r.rules("Role", "-kubeadm-config")
    check(cm == [{"apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["kubeadm-config"],
                  "verbs": ["get"]}], "kubeadm-config Role: get that one ConfigMap")
    check(r.one("Role", "rangepool-controller-kubeadm-config")["metadata"]["namespace"] == "kube-system",
          "kubeadm-config Role lives in kube-system")
    check(r.conflist() is None, "no conflist: the admin's CNI configuration is left alone")
    check(r.agent() is not None, "the node agent runs by default")
    check(len(r.all("PodDisruptionBudget")) == 1 and not r.all("ServiceMonitor") and not r.all("IPPool"),
          "a PodDisruptionBudget, no ServiceMonitor, no IPPool")
    check(not r.all("PrometheusRule") and [c["metadata"]["name"] for c in r.all("ConfigMap")] == ["rangepool-node"],
          "no PrometheusRule, no Grafana dashboard")
    check(not any(e["name"] == "CONFLIST_SRC" for e in r.node_pod()["containers"][0]["env"]),
          "installer is not told to write a conflist")
    sat = [v for v in r.node_pod()["volumes"] if v["name"] == "token"][0]["projected"]["sources"][0]
    check(sat["serviceAccountToken"]["expirationSeconds"] == 3600 and "audience" not in sat["serviceAccountToken"],
          "token lives 3600 s, audience the API server's own")


def documented(r):
    check([x for x in r.args() if x.startswith("--pod-cidr")] == ["--pod-cidr=10.244.0.0/16"],
          "--pod-cidr=10.244.0.0/16 from --set podCIDRs={10.244.0.0/16}")
    check(r.rules("Role", "-kubeadm-config") is None, "no kubeadm-config Role when podCIDRs is set")


def dual_stack(r):
    a = r.args()
    check([x for x in a if x.startswith("--pod-cidr")] == ["--pod-cidr=10.244.0.0/16", "--pod-cidr=fd00:10:244::/56"],
          "one --pod-cidr per pod CIDR")
    check({"--families=ipv4,ipv6", "--log-format=json", "--strict-affinity", "--leak-grace-period=10m"} <= set(a),
          "families, json logs, strict affinity, leak grace period from values")


def ipv6_only(r):
    check("--metrics-addr=[::]:10267" in r.args(), "IPv6-only cluster: metrics on [::]:10267")


def expect_pools(r):
    ps = {p["metadata"]["name"]: p for p in r.all("IPPool")}
    check(set(ps) == {"general", "payments", "batch"}, "one IPPool per pools entry")
    check(ps["payments"]["spec"] == {"cidr": "10.244.128.0/24", "blockSize": 28, "assignmentMode": "Manual",
                                     "namespaceSelector": "kubernetes.io/metadata.name == 'payments'"},
          "payments pool fields as declared")
    check(ps["general"]["spec"] == {"cidr": "10.244.0.0/17"}, "unset fields are left out (controller defaults)")
    check(ps["batch"]["spec"]["disabled"] is True and "has(node-role" in ps["batch"]["spec"]["nodeSelector"],
          "disabled and nodeSelector rendered")
    check(all(p["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep" for p in ps.values()),
          "pools kept on uninstall")
    check("--no-default-pool" in r.args(), "declared pools turn the default pool off")


def conflist_ptp(r):
    cl = r.conflist()
    check(cl is not None and cl["cniVersion"] == "1.0.0", "conflist written, cniVersion 1.0.0 (Debian 12's plugins refuse 1.1.0)")
    main = cl["plugins"][0]
    check(main["type"] == "ptp" and main["mtu"] == 1450 and main["ipMasq"] is True, "main plugin ptp, mtu 1450")
    check(main["ipam"] == {"type": "rangepool-ipam", "kubeconfig": "/etc/cni/net.d/rangepool/kubeconfig",
                           "timeout": 20, "prefix": {"ipv4": 16}, "gateway": {"ipv4": "10.244.0.1"},
                           "routes": [{"dst": "0.0.0.0/0"}], "logLevel": "info", "nodeName": "__NODE_NAME__",
                           "agentSocket": "/run/rangepool/agent.sock"},
          "ipam section: rangepool-ipam with kubeconfig, the agent's socket, timeout, prefix, gateway, routes, "
          "node name placeholder")
    check(cl["plugins"][1] == {"type": "portmap", "capabilities": {"portMappings": True}}, "extra plugins chained")
    env = {e["name"]: e.get("value") for e in r.node_pod()["containers"][0]["env"]}
    check(env["CONFLIST_SRC"] == "/rangepool/10-rangepool.conflist" and env["API_SERVER"] == "https://192.0.2.10:6443",
          "installer told to write the conflist, API server from values")
    sat = [v for v in r.node_pod()["volumes"] if v["name"] == "token"][0]["projected"]["sources"][0]
    check(sat["serviceAccountToken"] == {"path": "token", "expirationSeconds": 7200,
                                         "audience": "https://kubernetes.default.svc.cluster.local"},
          "token lifetime and audience from values")


def conflist_bridge(r):
    cl = r.conflist()
    main = cl["plugins"][0]
    check(main["type"] == "bridge" and main["bridge"] == "cni0" and main["isGateway"] is True, "main plugin bridge cni0")
    check(main["ipam"]["prefix"] == "pool" and main["ipam"]["kubeconfig"] == "/etc/cni/custom.d/rangepool/kubeconfig"
          and main["ipam"]["dns"]["nameservers"] == ["10.96.0.10"], "pool prefix, kubeconfig under confDir, dns")
    check(len(cl["plugins"]) == 1, "no extra plugins")
    paths = {v["name"]: v["hostPath"]["path"] for v in r.node_pod()["volumes"] if "hostPath" in v}
    check({k: paths[k] for k in ("cni-bin", "cni-conf")} == {"cni-bin": "/usr/libexec/cni",
                                                               "cni-conf": "/etc/cni/custom.d"},
          "binDir and confDir from values")
    node_rules = r.rules("ClusterRole", "-node")
    check({"apiGroups": ["rangepool.dev"], "resources": ["ippools"], "verbs": ["get"]} in node_rules,
          "\"pool\" prefix style grants the node plugin get on ippools")


def agent_off(r):
    check(r.agent() is None and len(r.node_pod()["containers"]) == 1, "cni.agent.enabled=false: no agent container")
    ipam = r.conflist()["plugins"][0]["ipam"]
    check("agentSocket" not in ipam and ipam["kubeconfig"] == "/etc/cni/net.d/rangepool/kubeconfig",
          "the conflist sends the plugin to the API server itself: kubeconfig, no agentSocket")


def servicemonitor(r):
    sm = r.one("ServiceMonitor")
    svc = r.one("Service")
    check(sm["spec"]["endpoints"] == [{"port": "metrics", "path": "/metrics", "interval": "15s"}],
          "ServiceMonitor scrapes /metrics on the metrics port every 15s")
    check(all(svc["metadata"]["labels"].get(k) == v for k, v in sm["spec"]["selector"]["matchLabels"].items()),
          "ServiceMonitor selects the metrics Service")
    check(sm["metadata"]["labels"]["release"] == "prometheus", "extra ServiceMonitor labels")
    check(svc["spec"]["ports"][0]["port"] == 9464 and "--metrics-addr=0.0.0.0:9464" in r.args(), "metrics port 9464")
    check(not r.all("PodDisruptionBudget") and r.one("Deployment")["spec"]["replicas"] == 1,
          "one replica, no PodDisruptionBudget")
    check("--no-default-pool" in r.args(), "defaultPool: false gives --no-default-pool")


def monitoring(r):
    rule = r.one("PrometheusRule")
    check(rule["metadata"]["labels"]["release"] == "prometheus" and rule["metadata"]["namespace"] == "kube-system",
          "PrometheusRule in the release's namespace, with the extra labels")
    rules = {x["alert"]: x for g in rule["spec"]["groups"] for x in g["rules"]}
    check(set(rules) == {"RangepoolPoolAlmostFull", "RangepoolAssignmentFailures", "RangepoolNoLeader"},
          "alerts: a pool almost full, pods refused an address, no leader")
    full = rules["RangepoolPoolAlmostFull"]
    check(full["expr"].rstrip().endswith("> 0.85") and "rangepool_pool_allocated_addresses" in full["expr"]
          and "rangepool_pool_capacity_addresses" in full["expr"] and full["for"] == "10m",
          "pool alert: allocated / capacity > poolUsagePercent 85 %, for 10m")
    check("More than 85 % of the addresses" in full["annotations"]["description"]
          and "{{ $labels.pool }}" in full["annotations"]["summary"], "pool alert's text names the share and the pool")
    failures = rules["RangepoolAssignmentFailures"]
    check("increase(rangepool_assignment_failures_total[10m])" in failures["expr"] and failures["for"] == "0m",
          "failure alert: any refusal within 10m")
    check(all(x["labels"] == {"severity": "page"} for x in rules.values()), "severity label from values")
    cm = r.one("ConfigMap", "rangepool-grafana-dashboard")
    check(cm["metadata"]["namespace"] == "monitoring" and cm["metadata"]["labels"]["grafana_dashboard"] == "1"
          and cm["metadata"]["annotations"] == {"grafana_folder": "Networking"},
          "dashboard ConfigMap in grafanaDashboard.namespace, with the sidecar's label and the annotations")
    with open("charts/rangepool/files/grafana-dashboard.json") as f:
        want = json.load(f)
    dash = json.loads(cm["data"]["rangepool-ipam.json"])
    check(dash == want, "the ConfigMap carries files/grafana-dashboard.json")
    panels = dash["panels"]
    check(len({p["id"] for p in panels}) == len(panels), f"{len(panels)} panels with distinct ids")
    cells = set()
    for p in panels:
        g = p["gridPos"]
        mine = {(x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])}
        if g["x"] + g["w"] > 24 or cells & mine:
            fail(f"panel {p['title']!r} overlaps another or leaves the 24 columns")
        cells |= mine
    check(True, "no two panels overlap, all within 24 columns")
    check(all(p["datasource"]["uid"] == "${datasource}" and p["targets"] and
              all(t["datasource"]["uid"] == "${datasource}" and "rangepool_" in t["expr"] for t in p["targets"])
              for p in panels), "every panel queries rangepool_ metrics from the chosen data source")


EXPECTATIONS = {
    "defaults": defaults,
    "documented": documented,
    "dual-stack": dual_stack,
    "ipv6-only": ipv6_only,
    "pools": expect_pools,
    "conflist-ptp": conflist_ptp,
    "conflist-bridge": conflist_bridge,
    "agent-off": agent_off,
    "servicemonitor": servicemonitor,
    "monitoring": monitoring,
}


def main(argv):
    cmd = argv[1]
    if cmd == "split":
        split(argv[2], argv[3])
    elif cmd == "pools":
        pools_schema(argv[2], argv[3])
    elif cmd == "expect":
        name, r = argv[2], Rendered(argv[3])
        if name not in EXPECTATIONS:
            fail(f"no expectations for values set {name}: add them to {__file__}")
        common(r)
        EXPECTATIONS[name](r)
    else:
        fail(f"unknown command {cmd}")

if __name__ == "__main__":
    main(sys.argv)
