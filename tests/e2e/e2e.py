#!/usr/bin/env python3
"""The end-to-end test: the chart's images on real nodes, installed as docs/install.md says.

tests/e2e/run.sh builds what this needs and runs it as root; `make e2e` runs it alone. It starts

- a control plane (crates/envtest's binary: etcd, kube-apiserver, kube-controller-manager with
  every default controller, kube-scheduler) whose API server listens on the host's end of a test
  bridge, 192.168.233.1;
- two nodes, rp-node-1 (192.168.233.11) and rp-node-2 (.12), each in a network namespace of its
  own behind that bridge and a mount namespace of its own (its own /etc/cni/net.d, /opt/cni/bin
  with Debian's plugins, /run/rangepool, /var/lib/kubelet, containerd's folders), each with
  containerd + runc from Debian, the kubelet and kube-proxy of tests/k8s, and a cgroup subtree of
  its own. Pods of the two nodes are routed through the nodes (ptp), not bridged;

then imports the images of `make image` and a pause image into each node's containerd, installs
the chart with helm, follows the seed how-to with kubectl, and checks what docs/install.md
promises: addresses from the right pools on each pod's eth0, pods reaching each other across
the nodes, refused pods with our message, the same address for a pod whose sandbox died,
releases on pod and node deletion, no address change across a controller restart and a helm
upgrade, and what helm uninstall leaves (and that pods can still be deleted then).

Everything it starts is stopped and removed at the end, also when a check fails or it is
interrupted; what a run killed outright (SIGKILL, a lost machine) left behind is swept by the next
run before it starts, under a lock that keeps two runs apart (the control plane runs in a cgroup
of its own for this; work folders kept with KEEP=1 are not swept): processes (by their ids: what it started, and what is left in its nodes' cgroups),
mounts, network namespaces, interfaces, cgroups and files. iptables rules live in the nodes'
network namespaces and go with them.

Environment: RANGEPOOL_K8S_BIN (control plane and node binaries), RANGEPOOL_ENVTEST (the
rangepool-envtest binary), RANGEPOOL_IMAGES (controller.oci.tar and cni-installer.oci.tar),
KEEP=1 keeps the work folder (logs) after the run.
"""

import fcntl
import glob
import ipaddress
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
HERE = os.path.join(REPO, "tests", "e2e")
K8S_BIN = os.environ["RANGEPOOL_K8S_BIN"]
ENVTEST = os.environ["RANGEPOOL_ENVTEST"]
IMAGES = os.environ["RANGEPOOL_IMAGES"]
TOOLS = os.path.join(REPO, ".tools", "bin")
VERSION = "0.1.0"

BRIDGE = "rpe2e0"
HOST_IP = "192.168.233.1"
NODES = [("rp-node-1", "192.168.233.11"), ("rp-node-2", "192.168.233.12")]
POD_CIDR = ipaddress.ip_network("10.244.0.0/16")
SERVICE_CIDR = "10.96.0.0/16"
PAUSE_IMAGE = "rangepool.test/e2e/pause:1"
POOLS = {
    "general": ipaddress.ip_network("10.244.128.0/17"),
    "pool-1": ipaddress.ip_network("10.244.8.0/24"),
    "pool-2": ipaddress.ip_network("10.244.9.0/24"),
}
# Every pod the test expects to run, and the pool its address must come from.
EXPECTED = {
    ("e2e-a", "pinned"): "pool-1",
    ("e2e-b", "from-namespace"): "pool-2",
    ("e2e-b", "override"): "pool-1",
}

# run.sh's builds count in the timeline: it says how long ago it started.
START = time.monotonic() - float(os.environ.get("E2E_STARTED_AGO", "0"))
passed = 0
failed = []


def mark(message):
    """One line of the timeline."""
    print(f"[{time.monotonic() - START:7.1f}s] {message}", flush=True)


def check(ok, what, detail=""):
    global passed
    if ok:
        passed += 1
        print(f"    ok    {what}", flush=True)
    else:
        failed.append(what)
        print(f"    FAIL  {what}" + (f": {detail}" if detail else ""), flush=True)
    return ok


class Fatal(Exception):
    """A failure after which the rest of the test means nothing."""


def require(ok, what, detail=""):
    if not check(ok, what, detail):
        raise Fatal(what)


def run(cmd, check_rc=True, input=None, timeout=120, env=None):
    """Runs cmd and returns its stdout; raises on a non-zero exit unless check_rc is False."""
    p = subprocess.run(cmd, input=input, capture_output=True, text=True, timeout=timeout, env=env)
    if check_rc and p.returncode != 0:
        raise Fatal(f"{' '.join(cmd)} exited {p.returncode}: {p.stderr.strip() or p.stdout.strip()}")
    return p.stdout if check_rc else p


def wait_for(what, probe, timeout, interval=1.0):
    """Calls probe until it returns something true; returns it, or None after timeout."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = probe()
        except (Fatal, subprocess.TimeoutExpired) as e:
            last = None
            print(f"    (waiting for {what}: {e})", flush=True)
        if last:
            return last
        time.sleep(interval)
    return None


class Cleanup:
    """What to undo, undone in reverse order, each step on its own."""

    def __init__(self):
        self.steps = []

    def push(self, what, fn):
        self.steps.append((what, fn))

    def run(self):
        while self.steps:
            what, fn = self.steps.pop()
            try:
                fn()
            except Exception as e:  # noqa: BLE001 - every step must get its chance
                print(f"    cleanup: {what}: {e}", flush=True)


cleanup = Cleanup()


def on_signal(signum, _frame):
    raise KeyboardInterrupt(f"signal {signum}")


# --- the cluster ---------------------------------------------------------------------------


class Cluster:
    def __init__(self, work):
        self.work = work
        self.kubeconfig = os.path.join(work, "kc", "admin")
        self.env = dict(os.environ, KUBECONFIG=self.kubeconfig, PATH=f"{TOOLS}:{os.environ['PATH']}")
        self.procs = []

    # kubectl and helm as the admin
    def kubectl(self, *args, check_rc=True, input=None, timeout=120):
        return run([os.path.join(TOOLS, "kubectl"), *args], check_rc, input, timeout, self.env)

    def helm(self, *args, timeout=300):
        return run([os.path.join(TOOLS, "helm"), *args], True, None, timeout, self.env)

    def json(self, *args):
        return json.loads(self.kubectl("get", *args, "-o", "json"))

    def spawn(self, name, cmd, log):
        out = open(os.path.join(self.work, "logs", log), "ab")
        p = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self.procs.append((name, p))
        cleanup.push(f"stop {name} (pid {p.pid})", lambda: stop(p))
        return p


def stop(p, grace=10):
    if p.poll() is not None:
        return
    p.terminate()
    try:
        p.wait(grace)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait(5)


def network():
    run(["ip", "link", "add", BRIDGE, "type", "bridge"])
    cleanup.push(f"delete bridge {BRIDGE}", lambda: run(["ip", "link", "del", BRIDGE], check_rc=False))
    run(["ip", "addr", "add", f"{HOST_IP}/24", "dev", BRIDGE])
    run(["ip", "link", "set", BRIDGE, "up"])


def control_plane(c):
    os.makedirs(os.path.dirname(c.kubeconfig), exist_ok=True)
    cmd = [ENVTEST, "--kubeconfig-out", c.kubeconfig, "--address", HOST_IP, "--all-controllers", "--scheduler"]
    for name, _ in NODES:
        cmd += ["--node", name]
    # In a cgroup of its own, so that the sweep after a killed run finds it and what it started
    # (etcd, kube-apiserver, kube-controller-manager, kube-scheduler).
    cgroup = "/sys/fs/cgroup/pids/rpe2e-control-plane"
    os.makedirs(cgroup, exist_ok=True)
    cleanup.push(f"remove cgroup {cgroup}", lambda: remove_cgroup(cgroup))
    cleanup.push("stop what is left of the control plane", lambda: kill_cgroup(cgroup))
    cmd = ["sh", "-c", 'echo $$ > "$0/cgroup.procs" && exec "$@"', cgroup, *cmd]
    log = open(os.path.join(c.work, "logs", "envtest.log"), "ab")
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL, text=True)
    c.procs.append(("control plane", p))
    cleanup.push(f"stop the control plane (pid {p.pid})", lambda: stop(p, 30))
    line = p.stdout.readline()
    require(line.startswith("ready "), "the control plane starts", line or "no output: see logs/envtest.log")
    return line.split()[1]


# --- the nodes -----------------------------------------------------------------------------

# Host paths each node has its own of, mounted over the host's in the node's mount namespace.
NODE_DIRS = {
    "etc-cni": "/etc/cni/net.d",
    "cni-bin": "/opt/cni/bin",
    "rangepool": "/run/rangepool",
    "kubelet": "/var/lib/kubelet",
    "containerd": "/var/lib/containerd",
    "containerd-run": "/run/containerd",
    "pod-logs": "/var/log/pods",
    "container-logs": "/var/log/containers",
    # containerd names its pods' network namespaces here: the node's own, so that none shows on
    # the host (the namespaces themselves live in the node's mount namespace).
    "netns": "/run/netns",
}


def cgroup_hierarchies():
    """The cgroup v1 hierarchies mounted under /sys/fs/cgroup (this machine has no v2 only)."""
    out = []
    for name in sorted(os.listdir("/sys/fs/cgroup")):
        path = os.path.join("/sys/fs/cgroup", name)
        if os.path.isfile(os.path.join(path, "cgroup.procs")) and name != "unified":
            out.append(path)
    return out


def cgroup_roots():
    """Every hierarchy the test's cgroups can be in: the v1 ones, and the v2 `unified` one in
    which runc and the kubelet also make a cgroup per container and pod."""
    unified = "/sys/fs/cgroup/unified"
    return cgroup_hierarchies() + ([unified] if os.path.isfile(os.path.join(unified, "cgroup.procs")) else [])


def test_cgroups():
    """The cgroups of the test (named rpe2e-*) that exist now, in every hierarchy."""
    return [os.path.join(h, d) for h in cgroup_roots() for d in sorted(os.listdir(h)) if d.startswith("rpe2e-")]


def cgroup_pids(root):
    pids = set()
    for here, _dirs, files in os.walk(root):
        if "cgroup.procs" in files:
            with open(os.path.join(here, "cgroup.procs")) as f:
                pids.update(int(x) for x in f.read().split())
    return pids


def kill_cgroup(root):
    """Kills every process in a cgroup subtree until none is left (or 10 s have passed)."""
    for _ in range(50):
        pids = cgroup_pids(root) if os.path.isdir(root) else set()
        if not pids:
            return
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.2)


def remove_cgroup(root):
    """Removes a cgroup subtree, deepest first (only empty cgroups can go)."""
    if not os.path.isdir(root):
        return
    for here, _dirs, _files in sorted(os.walk(root), key=lambda w: -w[0].count("/")):
        try:
            os.rmdir(here)
        except OSError as e:
            print(f"    cleanup: rmdir {here}: {e}", flush=True)


LOCK = "/run/rangepool-e2e.lock"
# In a work folder: the host paths its run created (for the sweep after a killed run), and the
# mark of a folder kept with KEEP=1 (never swept).
CREATED = "created-on-host.json"
KEPT = "kept"


def sweep_stale():
    """Removes what an earlier run that was killed outright left behind: the processes in its
    nodes' cgroups, its cgroups, mounts, network namespaces, interfaces and work folders. Runs
    under LOCK, so nothing of a live run is touched."""
    for h in cgroup_hierarchies():
        for d in sorted(os.listdir(h)):
            if d.startswith("rpe2e-") and os.path.basename(h) == "pids":
                kill_cgroup(os.path.join(h, d))
    found = test_cgroups()
    for root in found:
        remove_cgroup(root)
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4] for line in f]
    stale = [m for m in points if m.startswith("/var/tmp/rangepool-e2e-")]
    for m in sorted(stale, key=lambda m: -m.count("/")):
        run(["umount", "-l", m], check_rc=False)
    netns = [line.split()[0] for line in run(["ip", "netns", "list"], check_rc=False).stdout.splitlines() if line.startswith("rpe2e-")]
    for ns in netns:
        run(["ip", "netns", "del", ns], check_rc=False)
    links = [line.split(":")[1].strip().split("@")[0] for line in run(["ip", "-o", "link", "show"], check_rc=False).stdout.splitlines()
             if line.split(":")[1].strip().startswith("rpe2e")]
    for link in links:
        run(["ip", "link", "del", link], check_rc=False)
    # Folders kept on purpose (KEEP=1) stay; the others go, with what their run made on the host.
    folders = [d for d in glob.glob("/var/tmp/rangepool-e2e-*") if not os.path.exists(os.path.join(d, KEPT))]
    for d in folders:
        try:
            with open(os.path.join(d, CREATED)) as f:
                remove_created(set(json.load(f)))
        except (OSError, ValueError):
            pass
        shutil.rmtree(d, ignore_errors=True)
    if found or stale or netns or links or folders:
        print(f"e2e: removed what an earlier, killed run left: {len(netns)} network namespaces, {len(links)} interfaces, "
              f"{len(found)} cgroups, {len(stale)} mounts, {len(folders)} work folders", flush=True)
    return what_is_left(None, set())


class Node:
    def __init__(self, cluster, index, name, ip):
        self.c = cluster
        self.name = name
        self.ip = ip
        self.netns = f"rpe2e-{index}"
        self.veth = f"rpe2e-n{index}"
        self.dir = os.path.join(cluster.work, name)
        self.mntns = os.path.join(cluster.work, "ns", name)
        self.cgroup = f"rpe2e-{name}"
        self.socket = os.path.join(self.dir, "containerd-run", "containerd.sock")
        self.procs = []
        self.alive = False

    def path(self, key, *rest):
        """The host path of one of the node's own folders."""
        return os.path.join(self.dir, key, *rest)

    def ns_exec(self, *cmd):
        """cmd in the node's network and mount namespaces."""
        return ["nsenter", f"--net=/run/netns/{self.netns}", f"--mount={self.mntns}", "--", *cmd]

    def sh(self, *cmd, check_rc=True):
        return run(self.ns_exec(*cmd), check_rc)

    def setup(self):
        # Network: a veth from the test bridge into the node's network namespace. Only the node
        # network and the Service range are routed (the latter so that kube-proxy's DNAT of
        # 10.96.0.1 has a route to start from): nothing a pod sends leaves the machine.
        run(["ip", "netns", "add", self.netns])
        cleanup.push(f"delete netns {self.netns}", lambda: run(["ip", "netns", "del", self.netns], check_rc=False))
        run(["ip", "link", "add", self.veth, "type", "veth", "peer", "name", "eth0", "netns", self.netns])
        cleanup.push(f"delete link {self.veth}", lambda: run(["ip", "link", "del", self.veth], check_rc=False))
        run(["ip", "link", "set", self.veth, "master", BRIDGE, "up"])
        ns = ["ip", "netns", "exec", self.netns]
        run(ns + ["ip", "addr", "add", f"{self.ip}/24", "dev", "eth0"])
        run(ns + ["ip", "link", "set", "eth0", "up"])
        run(ns + ["ip", "link", "set", "lo", "up"])
        run(ns + ["ip", "route", "add", SERVICE_CIDR, "dev", "eth0"])

        # Files: the node's own folders; Debian's CNI plugins in its /opt/cni/bin.
        for key in NODE_DIRS:
            os.makedirs(self.path(key), exist_ok=True)
        for plugin in os.listdir("/usr/lib/cni"):
            shutil.copy2(os.path.join("/usr/lib/cni", plugin), self.path("cni-bin", plugin))

        # Mounts: a mount namespace kept by a bind mount of it, with the node's folders over the
        # host's. The bind mounts go with the namespace once nothing uses it.
        open(self.mntns, "w").close()
        run(["unshare", f"--mount={self.mntns}", "--propagation", "slave", "true"])
        cleanup.push(f"release mount namespace {self.mntns}", lambda: run(["umount", self.mntns], check_rc=False))
        for key, target in NODE_DIRS.items():
            run(["nsenter", f"--mount={self.mntns}", "mkdir", "-p", target])
            run(["nsenter", f"--mount={self.mntns}", "mount", "--bind", self.path(key), target])

        # cgroups: the kubelet's cgroupRoot in every hierarchy, and a `runtime` cgroup that
        # containerd, its shims, the kubelet and kube-proxy run in, so that every process of the
        # node can be found and stopped.
        for h in cgroup_hierarchies():
            root = os.path.join(h, self.cgroup)
            os.makedirs(root, exist_ok=True)
            cleanup.push(f"remove cgroup {root}", lambda root=root: remove_cgroup(root))
            if os.path.basename(h) == "cpuset":
                for f in ("cpuset.cpus", "cpuset.mems"):
                    with open(os.path.join(h, f)) as src, open(os.path.join(root, f), "w") as dst:
                        dst.write(src.read())
        # runc and the kubelet also make the node's cgroups in the v2 hierarchy, if mounted.
        for root in cgroup_roots():
            if root not in cgroup_hierarchies():
                unified = os.path.join(root, self.cgroup)
                cleanup.push(f"remove cgroup {unified}", lambda unified=unified: remove_cgroup(unified))
        os.makedirs(self.runtime_cgroup(), exist_ok=True)
        cleanup.push(f"stop every process of {self.name}", self.kill_all)

    def runtime_cgroup(self):
        return os.path.join("/sys/fs/cgroup/pids", self.cgroup, "runtime")

    def spawn(self, what, cmd):
        """Starts cmd in the node's namespaces and its runtime cgroup."""
        wrapped = ["sh", "-c", 'echo $$ > "$0/cgroup.procs" && exec "$@"', self.runtime_cgroup(), *self.ns_exec(*cmd)]
        p = self.c.spawn(f"{what} of {self.name}", wrapped, f"{self.name}-{what}.log")
        self.procs.append(p)
        return p

    def kill_all(self):
        """Every process of the node, by pid: those started here and whatever is left in its
        cgroups (container processes, containerd's shims)."""
        for p in self.procs:
            if p.poll() is None:
                p.kill()
        kill_cgroup(os.path.join("/sys/fs/cgroup/pids", self.cgroup))
        for p in self.procs:
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                pass

    def start_containerd(self):
        conf = os.path.join(self.dir, "containerd.toml")
        with open(conf, "w") as f:
            f.write(f"""version = 2
root = "/var/lib/containerd"
state = "/run/containerd"
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs"]
[grpc]
  address = "/run/containerd/containerd.sock"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{PAUSE_IMAGE}"
  # root here lacks CAP_SYS_RESOURCE: runc could not lower a container's oom_score_adj.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/opt/cni/bin"
    conf_dir = "/etc/cni/net.d"
""")
        self.spawn("containerd", ["containerd", "--config", conf])
        require(wait_for("containerd", lambda: os.path.exists(self.socket), 30), f"containerd of {self.name} starts")

    def ctr(self, *args, timeout=120):
        return run(["ctr", "--address", self.socket, "-n", "k8s.io", *args], timeout=timeout)

    def start_kubelet(self):
        conf = os.path.join(self.dir, "kubelet.yaml")
        with open(conf, "w") as f:
            f.write(f"""apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
# This machine has cgroup v1 only, which a kubelet of 1.35 and later refuses unless told.
failCgroupV1: false
cgroupDriver: cgroupfs
cgroupRoot: /{self.cgroup}
containerRuntimeEndpoint: unix:///run/containerd/containerd.sock
address: {self.ip}
healthzBindAddress: 127.0.0.1
readOnlyPort: 0
# Only the test's API server reaches this address: kubectl exec needs no client certificate.
authentication:
  anonymous: {{enabled: true}}
  webhook: {{enabled: false}}
authorization: {{mode: AlwaysAllow}}
failSwapOn: false
# The images cannot be pulled again: never collect them, never evict for a full disk.
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {{memory.available: 100Mi, nodefs.available: 1%, imagefs.available: 1%, nodefs.inodesFree: 1%}}
nodeStatusUpdateFrequency: 5s
""")
        kubeconfig = f"{self.c.kubeconfig}.node-{self.name}"
        self.spawn("kubelet", [os.path.join(K8S_BIN, "kubelet"), f"--config={conf}", f"--kubeconfig={kubeconfig}",
                               f"--hostname-override={self.name}", f"--node-ip={self.ip}", "--v=1"])

    def start_kube_proxy(self):
        conf = os.path.join(self.dir, "kube-proxy.yaml")
        with open(conf, "w") as f:
            f.write(f"""apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection:
  kubeconfig: {self.c.kubeconfig}.kube-proxy
hostnameOverride: {self.name}
mode: iptables
clusterCIDR: {POD_CIDR}
metricsBindAddress: 127.0.0.1:10249
healthzBindAddress: 127.0.0.1:10256
# conntrack's table size is the machine's, not the namespace's: leave it alone.
conntrack:
  maxPerCore: 0
  min: 0
  tcpEstablishedTimeout: 0s
  tcpCloseWaitTimeout: 0s
""")
        self.spawn("kube-proxy", [os.path.join(K8S_BIN, "kube-proxy"), f"--config={conf}", "--v=1"])

    def sandbox(self, namespace, name):
        """The id of the pod's running sandbox in containerd, or None."""
        running_tasks = {line.split()[0] for line in self.ctr("tasks", "ls").splitlines()[1:]
                         if line.split()[-1] == "RUNNING"}
        for cid in self.ctr("containers", "ls", "-q").split():
            if cid not in running_tasks:
                continue
            labels = json.loads(self.ctr("containers", "info", cid)).get("Labels") or {}
            if (labels.get("io.cri-containerd.kind") == "sandbox" and labels.get("io.kubernetes.pod.namespace") == namespace
                    and labels.get("io.kubernetes.pod.name") == name):
                return cid
        return None

    def route_to(self, cidr, via):
        run(["ip", "netns", "exec", self.netns, "ip", "route", "replace", str(cidr), "via", via])


# --- the images ----------------------------------------------------------------------------


def pause_image(work):
    root = os.path.join(work, "pause-root")
    os.makedirs(root, exist_ok=True)
    shutil.copy2(os.path.join(K8S_BIN, "pause"), os.path.join(root, "pause"))
    out = os.path.join(work, "pause.oci.tar")
    run([sys.executable, os.path.join(REPO, "images", "oci.py"), "--root", root, "--out", out, "--name", PAUSE_IMAGE,
         "--arch", "amd64" if os.uname().machine == "x86_64" else "arm64", "--epoch", "0", "--user", "65535:65535",
         "--entrypoint", '["/pause"]'])
    return out


# --- what the test reads -------------------------------------------------------------------


def pods(c):
    """(namespace, name) -> pod, for the test's namespaces."""
    out = {}
    for p in c.json("pods", "-A", "-l", "e2e")["items"]:
        out[(p["metadata"]["namespace"], p["metadata"]["name"])] = p
    return out


def pod_ip(p):
    ips = [x["ip"] for x in p.get("status", {}).get("podIPs", [])]
    return ips[0] if ips else None


def running(p):
    return p.get("status", {}).get("phase") == "Running" and pod_ip(p) is not None and not p["metadata"].get("deletionTimestamp")


def pool_of(ip):
    for name, cidr in POOLS.items():
        if ipaddress.ip_address(ip) in cidr:
            return name
    return None


def blocks(c):
    return c.json("ipamblocks")["items"]


def holders(c):
    """address -> holder record ("ns/pod uid seq") over every block."""
    out = {}
    for b in blocks(c):
        net = ipaddress.ip_network(b["spec"]["cidr"])
        for offset, record in (b["spec"].get("holders") or {}).items():
            out[str(net.network_address + int(offset))] = record
        for offset, record in (b["spec"].get("allocations") or {}).items():
            out[str(net.network_address + int(offset))] = f"{record.get('namespace')}/{record.get('pod')} {record.get('handle')}"
    return out


def events(c, namespace, name):
    return c.json("events", "-n", namespace, "--field-selector", f"involvedObject.name={name}")["items"]


def route_blocks(c, nodes):
    """What a routing daemon would do: each node's blocks routed to it from the other nodes."""
    by_name = {n.name: n for n in nodes}
    for b in blocks(c):
        owner = by_name.get(b["spec"].get("affinity") or "")
        if owner is None:
            continue
        for n in nodes:
            if n is not owner and n.alive:
                n.route_to(b["spec"]["cidr"], owner.ip)


def eth0_has(c, ns, name, ip):
    out = c.kubectl("exec", "-n", ns, name, "--", "ip", "-4", "addr", "show", "dev", "eth0", check_rc=False)
    return out.returncode == 0 and f"inet {ip}/16 " in out.stdout, (out.stdout + out.stderr).strip()


def ping(c, ns, name, ip):
    out = c.kubectl("exec", "-n", ns, name, "--", "ping", "-c", "2", "-W", "2", ip, check_rc=False, timeout=30)
    return out.returncode == 0, (out.stdout + out.stderr).strip()[-300:]


def addresses(c):
    """(namespace, name) -> (status.podIPs[0], rangepool.dev/ipv4) of every running test pod."""
    return {k: (pod_ip(p), p["metadata"].get("annotations", {}).get("rangepool.dev/ipv4"))
            for k, p in pods(c).items() if running(p)}


def wait_running(c, keys, timeout):
    def all_running():
        current = pods(c)
        return all(k in current and running(current[k]) for k in keys) and current
    return wait_for("pods running", all_running, timeout, 2)


def why_not_running(c):
    """Each test pod that does not run, with its phase and the kubelet's last sandbox error."""
    out = {}
    for k, p in pods(c).items():
        if running(p) or p["metadata"]["labels"].get("e2e") == "refused":
            continue
        sandbox = [e.get("message", "") for e in events(c, *k) if e["reason"] == "FailedCreatePodSandBox"]
        out[f"{k[0]}/{k[1]}"] = [p.get("status", {}).get("phase"), sandbox[-1][-300:] if sandbox else None]
    return json.dumps(out)


def web_pods(current):
    return {k: p for k, p in current.items() if k[0] == "e2e-a" and k[1].startswith("web-")}


# --- the test ------------------------------------------------------------------------------


def test(c, nodes):
    mark("cluster: control plane")
    network()
    url = control_plane(c)
    mark(f"cluster: API server at {url}")
    images = [pause_image(c.work), os.path.join(IMAGES, "controller.oci.tar"), os.path.join(IMAGES, "cni-installer.oci.tar")]
    for n in nodes:
        n.setup()
        n.start_containerd()
        for image in images:
            n.ctr("images", "import", image, timeout=300)
        n.start_kubelet()
        n.start_kube_proxy()
        n.alive = True
    imported = nodes[0].ctr("images", "ls", "-q")
    check(f"docker.io/rangepool/controller:{VERSION}" in imported and f"docker.io/rangepool/cni-installer:{VERSION}" in imported,
          "the images of make image import under the chart's default names", imported)
    registered = wait_for("nodes", lambda: len(c.json("nodes")["items"]) == len(nodes), 90, 2)
    require(registered, "both kubelets register their nodes")
    mark("cluster: nodes registered (NotReady until the chart writes their CNI configuration)")

    # --- install, as docs/install.md says ---
    c.helm("install", "rangepool", os.path.join(REPO, "charts", "rangepool"), "--namespace", "kube-system",
           "-f", os.path.join(HERE, "values.yaml"))
    mark("chart: helm install done")
    for kind in ("daemonset/rangepool-node", "deployment/rangepool-controller"):
        out = c.kubectl("-n", "kube-system", "rollout", "status", kind, "--timeout=300s", check_rc=False, timeout=320)
        require(out.returncode == 0, f"{kind} rolls out", out.stderr.strip())
    mark("chart: controller and node DaemonSet ready")
    ready = wait_for("nodes Ready", lambda: all(
        any(cond["type"] == "Ready" and cond["status"] == "True" for cond in n["status"].get("conditions", []))
        for n in c.json("nodes")["items"]), 120, 2)
    require(ready, "both nodes become Ready once the DaemonSet wrote the plugin, its kubeconfig and the conflist")
    mark("chart: nodes Ready")
    for n in nodes:
        conflist = json.load(open(n.path("etc-cni", "10-rangepool.conflist")))
        ipam = conflist["plugins"][0]["ipam"]
        check(conflist["plugins"][0]["type"] == "ptp" and ipam["type"] == "rangepool-ipam"
              and ipam.get("agentSocket") == "/run/rangepool/agent.sock" and ipam.get("nodeName") == n.name,
              f"{n.name}: the conflist names ptp, rangepool-ipam, the agent socket and the node", json.dumps(conflist))
        check(os.access(n.path("cni-bin", "rangepool-ipam"), os.X_OK), f"{n.name}: rangepool-ipam installed in /opt/cni/bin")
        st = os.stat(n.path("etc-cni", "rangepool", "kubeconfig"))
        check(st.st_mode & 0o777 == 0o600 and os.stat(n.path("etc-cni", "rangepool")).st_mode & 0o777 == 0o700,
              f"{n.name}: the plugin's kubeconfig is 0600 in a 0700 folder")
        check(os.path.exists(n.path("rangepool", "agent.sock")), f"{n.name}: the node agent's socket is there")

    # --- the seed how-to ---
    c.kubectl("apply", "-f", os.path.join(HERE, "pools.yaml"))
    for pool in ("pool-1", "pool-2"):
        out = c.kubectl("wait", f"ippool/{pool}", "--for=condition=Allocatable", "--timeout=60s", check_rc=False, timeout=70)
        check(out.returncode == 0, f"{pool} is Allocatable", out.stderr.strip())
    c.kubectl("apply", "-f", os.path.join(HERE, "workloads.yaml"))
    mark("seed: pools, namespaces, pods and the Deployment applied")
    keys = list(EXPECTED)
    current = wait_for("pods", lambda: (lambda cur: len([k for k in web_pods(cur) if running(cur[k])]) == 4
                                        and all(k in cur and running(cur[k]) for k in keys) and cur)(pods(c)), 240, 2)
    require(current, "every pod the seed admits runs", why_not_running(c))
    for k, p in sorted(current.items()):
        if running(p):
            mark(f"pod {k[0]}/{k[1]} Running on {p['spec']['nodeName']} with {pod_ip(p)}")
    for k, pool in EXPECTED.items():
        ip = pod_ip(current[k])
        check(pool_of(ip) == pool, f"{k[0]}/{k[1]} has an address of {pool}", ip)
        check(current[k]["metadata"]["annotations"].get("rangepool.dev/pools", "").find(pool) >= 0,
              f"{k[0]}/{k[1]}: rangepool.dev/pools names {pool}", str(current[k]["metadata"]["annotations"]))
    webs = web_pods(current)
    check(all(pool_of(pod_ip(p)) == "general" for p in webs.values()), "the Deployment's pods have addresses of the general pool",
          str({k[1]: pod_ip(p) for k, p in webs.items()}))
    check({p["spec"]["nodeName"] for p in webs.values()} == {n.name for n in nodes}, "the Deployment's pods run on both nodes")
    held = holders(c)
    for k, p in current.items():
        if running(p):
            check(held.get(pod_ip(p), "").startswith(f"{k[0]}/{k[1]} {p['metadata']['uid']}"),
                  f"{k[0]}/{k[1]}: a block records {pod_ip(p)} for this pod", held.get(pod_ip(p), "no record"))
    ips = [pod_ip(p) for p in current.values() if running(p)]
    check(len(ips) == len(set(ips)), "no address is given twice", str(ips))
    for k, p in sorted(current.items()):
        if running(p):
            ok, out = eth0_has(c, k[0], k[1], pod_ip(p))
            check(ok, f"{k[0]}/{k[1]}: {pod_ip(p)}/16 is on eth0 in the pod's network namespace", out)

    # Across the nodes: each node's blocks routed to it, as a routing daemon would.
    route_blocks(c, nodes)
    by_node = {}
    for k, p in current.items():
        if running(p):
            by_node.setdefault(p["spec"]["nodeName"], []).append((k, pod_ip(p)))
    for src_node, dst_node in ((nodes[0].name, nodes[1].name), (nodes[1].name, nodes[0].name)):
        (src, _), (_dst, dst_ip) = sorted(by_node[src_node])[0], sorted(by_node[dst_node])[0]
        ok, out = ping(c, src[0], src[1], dst_ip)
        check(ok, f"{src[0]}/{src[1]} on {src_node} reaches {dst_ip} on {dst_node}", out)
    mark("seed: addresses, eth0 and cross-node reachability checked")

    # The refused pods: no address, a Warning Event with our message, sandboxes failing with it.
    refused = {("e2e-a", "unknown-pool"): "pool-9", ("e2e-c", "intruder"): "namespaceSelector"}
    for (ns, name), words in refused.items():
        def refusal(ns=ns, name=name, words=words):
            evs = events(c, ns, name)
            ours = [e for e in evs if e["type"] == "Warning" and words in e.get("message", "") and e["reason"] != "FailedCreatePodSandBox"]
            sandbox = [e for e in evs if e["reason"] == "FailedCreatePodSandBox" and words in e.get("message", "")]
            return (ours, sandbox) if ours and sandbox else None
        got = wait_for(f"events of {ns}/{name}", refusal, 90, 3)
        evs = events(c, ns, name)
        check(got is not None, f"{ns}/{name}: a Warning Event names {words}, and its sandbox fails with rangepool-ipam's message",
              json.dumps([(e["type"], e["reason"], e.get("message", "")[:300]) for e in evs]))
        if got:
            mark(f"refused {ns}/{name}: {got[0][0]['message'][:160]}")
        p = c.json("pod", "-n", ns, name)
        check(not p["status"].get("podIPs") and "rangepool.dev/ipv4" not in p["metadata"].get("annotations", {}),
              f"{ns}/{name} has no address", str(p["status"].get("podIPs")))

    # --- a pod whose sandbox dies gets a new sandbox with the same address ---
    k = ("e2e-b", "override")
    node = next(n for n in nodes if n.name == current[k]["spec"]["nodeName"])
    sandbox = node.sandbox(*k)
    require(sandbox is not None, f"{k[0]}/{k[1]}: its sandbox is found in containerd")
    node.ctr("tasks", "kill", "--signal", "SIGKILL", sandbox)
    def restarted():
        p = pods(c).get(k)
        return p and running(p) and node.sandbox(*k) not in (None, sandbox) and p
    again = wait_for("a new sandbox", restarted, 90, 2)
    check(again and pod_ip(again) == pod_ip(current[k]), f"{k[0]}/{k[1]}: after its sandbox was killed, the new sandbox has the same address",
          pod_ip(again) if again else "no new sandbox")
    if again:
        ok, out = eth0_has(c, k[0], k[1], pod_ip(again))
        check(ok, f"{k[0]}/{k[1]}: the new sandbox's eth0 has {pod_ip(again)}", out)
    mark("sandbox restart: same address")

    # --- a controller restart changes no running pod's address ---
    before = addresses(c)
    c.kubectl("-n", "kube-system", "rollout", "restart", "deployment/rangepool-controller")
    out = c.kubectl("-n", "kube-system", "rollout", "status", "deployment/rangepool-controller", "--timeout=180s", check_rc=False, timeout=200)
    check(out.returncode == 0, "the controller restarts", out.stderr.strip())
    mark("controller restarted")
    check(addresses(c) == before, "a controller restart changes no running pod's address", f"{before} -> {addresses(c)}")
    c.kubectl("-n", "e2e-a", "scale", "deployment/web", "--replicas=5")
    grown = wait_for("a fifth web pod", lambda: (lambda w: len([p for p in w.values() if running(p)]) == 5)(web_pods(pods(c))), 120, 2)
    check(grown, "after the restart a new pod gets an address")

    # --- a pod created while no controller runs waits, and starts once one runs again ---
    c.kubectl("-n", "kube-system", "scale", "deployment/rangepool-controller", "--replicas=0")
    wait_for("no controller", lambda: not [p for p in c.json("pods", "-n", "kube-system")["items"]
                                            if p["metadata"]["name"].startswith("rangepool-controller-")], 60, 2)
    c.kubectl("-n", "e2e-a", "run", "waiter", "--image", f"rangepool/cni-installer:{VERSION}", "--labels", "e2e=yes",
              "--command", "--", "sh", "-c", "trap 'exit 0' TERM; while :; do sleep 1; done")
    mark("controller scaled to 0; e2e-a/waiter created")
    waited = wait_for("waiter's ADD to time out", lambda: [e for e in events(c, "e2e-a", "waiter")
                                                           if e["reason"] == "FailedCreatePodSandBox"], 90, 3)
    check(waited and any("try again later" in e.get("message", "") for e in waited),
          "without a controller, a new pod's ADD waits and then asks the kubelet to try again",
          json.dumps([e.get("message", "")[:300] for e in (waited or [])]))
    c.kubectl("-n", "kube-system", "scale", "deployment/rangepool-controller", "--replicas=2")
    started = wait_for("waiter running", lambda: (lambda p: p and running(p) and p)(pods(c).get(("e2e-a", "waiter"))), 120, 2)
    check(started and pool_of(pod_ip(started)) == "general", "once a controller runs again, the waiting pod starts with an address",
          pod_ip(started) if started else "not running")
    mark(f"e2e-a/waiter Running with {pod_ip(started) if started else None}")
    out = c.kubectl("-n", "kube-system", "rollout", "status", "deployment/rangepool-controller", "--timeout=120s", check_rc=False, timeout=130)
    check(out.returncode == 0, "the controller is back to 2 replicas", out.stderr.strip())

    # --- a helm upgrade changes no running pod's address ---
    before = addresses(c)
    c.kubectl("apply", "--server-side", "--force-conflicts", "-f", os.path.join(REPO, "charts", "rangepool", "crds"))
    c.helm("upgrade", "rangepool", os.path.join(REPO, "charts", "rangepool"), "--namespace", "kube-system",
           "-f", os.path.join(HERE, "values.yaml"), "--set", "logFormat=json")
    for kind in ("daemonset/rangepool-node", "deployment/rangepool-controller"):
        out = c.kubectl("-n", "kube-system", "rollout", "status", kind, "--timeout=300s", check_rc=False, timeout=320)
        check(out.returncode == 0, f"helm upgrade: {kind} rolls out", out.stderr.strip())
    mark("chart: helm upgrade rolled out")
    check(addresses(c) == before, "a helm upgrade changes no running pod's address", f"{before} -> {addresses(c)}")
    c.kubectl("-n", "e2e-a", "scale", "deployment/web", "--replicas=6")
    grown = wait_for("a sixth web pod", lambda: (lambda w: len([p for p in w.values() if running(p)]) == 6)(web_pods(pods(c))), 120, 2)
    check(grown, "after the upgrade a new pod gets an address")

    # --- deleting a pod releases its address ---
    gone = pods(c)[("e2e-a", "pinned")]
    gone_ip = pod_ip(gone)
    c.kubectl("-n", "e2e-a", "delete", "pod", "pinned", "--wait=true", "--timeout=60s", timeout=70)
    released = wait_for("pinned's address released", lambda: gone_ip not in holders(c), 30)
    check(released, f"deleting e2e-a/pinned releases {gone_ip}")
    mark(f"pod deleted: {gone_ip} released")

    # --- deleting a node releases its pods' addresses and its blocks ---
    dead = nodes[1]
    on_dead = {k: pod_ip(p) for k, p in pods(c).items() if running(p) and p["spec"]["nodeName"] == dead.name}
    dead.kill_all()
    dead.alive = False
    c.kubectl("delete", "node", dead.name)
    mark(f"node {dead.name} stopped and deleted, with {len(on_dead)} pods")

    def node_gone():
        cur = pods(c)
        if any(p["spec"].get("nodeName") == dead.name for p in cur.values()):
            return None
        held = holders(c)
        if any(ip in held for ip in on_dead.values()):
            return None
        return all(b["spec"].get("affinity") != dead.name for b in blocks(c))
    released = wait_for("the dead node's pods and blocks", node_gone, 180, 3)
    check(released, f"deleting {dead.name}: its pods are collected, their addresses released, its blocks lose their affinity",
          f"held: {[ip for ip in on_dead.values() if ip in holders(c)]}, blocks: {[(b['spec']['cidr'], b['spec'].get('affinity')) for b in blocks(c)]}")
    mark("node deletion: addresses and blocks released")
    webs = wait_for("web pods back", lambda: (lambda w: len([p for p in w.values() if running(p)]) == 6 and w)(web_pods(pods(c))), 120, 2)
    check(webs and all(p["spec"]["nodeName"] == nodes[0].name and pool_of(pod_ip(p)) == "general" for p in webs.values()),
          "the Deployment's pods come back on the remaining node with general addresses")

    # --- helm uninstall leaves what docs/install.md says ---
    before = addresses(c)
    c.helm("uninstall", "rangepool", "--namespace", "kube-system", "--wait", "--timeout", "120s")
    mark("chart: helm uninstall done")
    left = c.kubectl("-n", "kube-system", "get", "deployment,daemonset,configmap,service,serviceaccount",
                     "-l", "app.kubernetes.io/name=rangepool", "-o", "name").split()
    check(left == [], "uninstall removes the controller, the DaemonSet, the ConfigMap, the Service and the ServiceAccounts", str(left))
    roles = [r for r in c.kubectl("get", "clusterrole,clusterrolebinding", "-o", "name").split() if "rangepool" in r]
    check(roles == [], "uninstall removes the ClusterRoles and their bindings", str(roles))
    crds = c.kubectl("get", "crd", "-o", "name").split()
    check("customresourcedefinition.apiextensions.k8s.io/ippools.rangepool.dev" in crds
          and "customresourcedefinition.apiextensions.k8s.io/ipamblocks.rangepool.dev" in crds, "the CRDs stay", str(crds))
    pools_left = {p["metadata"]["name"] for p in c.json("ippools")["items"]}
    check(pools_left == {"general", "pool-1", "pool-2"}, "the pools stay (keepPoolsOnUninstall)", str(pools_left))
    held = holders(c)
    check(all(ip in held for ip, _ in before.values()), "the blocks keep every running pod's record", f"{before} vs {held}")
    check(addresses(c) == before, "running pods keep their addresses", f"{before} -> {addresses(c)}")
    k = sorted(before)[0]
    ok, out = eth0_has(c, k[0], k[1], before[k][0])
    check(ok, f"{k[0]}/{k[1]} still has {before[k][0]} on eth0", out)
    n = nodes[0]
    check(os.path.exists(n.path("cni-bin", "rangepool-ipam")) and os.path.exists(n.path("etc-cni", "10-rangepool.conflist"))
          and os.path.exists(n.path("etc-cni", "rangepool", "kubeconfig")),
          "the plugin, its kubeconfig and the conflist the chart wrote stay on the node")
    # A new pod cannot start (the node agent is gone: code 11), as docs/install.md says.
    c.kubectl("-n", "e2e-a", "run", "after-uninstall", "--image", f"rangepool/cni-installer:{VERSION}", "--labels", "e2e=late",
              "--overrides", json.dumps({"spec": {"nodeSelector": {"kubernetes.io/hostname": n.name}}}), "--command", "--", "sleep", "1000")
    agent_gone = wait_for("after-uninstall's event", lambda: [e for e in events(c, "e2e-a", "after-uninstall")
                                                               if e["reason"] == "FailedCreatePodSandBox" and "node agent is not answering" in e.get("message", "")], 90, 3)
    check(agent_gone, "after uninstall a new pod's sandbox fails with 'the rangepool node agent is not answering'",
          json.dumps([(e["reason"], e.get("message", "")[:300]) for e in events(c, "e2e-a", "after-uninstall")]))
    # Deleting a pod that has one of our addresses still works: DEL needs neither the API server
    # nor the agent.
    victim = sorted(k for k in before if k[1].startswith("web-"))[0]
    out = c.kubectl("-n", victim[0], "delete", "pod", victim[1], "--wait=true", "--timeout=60s", check_rc=False, timeout=70)
    check(out.returncode == 0, f"after uninstall, deleting {victim[0]}/{victim[1]} completes (its DEL succeeds)", out.stderr.strip())
    mark("chart: uninstall checked")


def what_is_left(work, created):
    """(check, what is left) for everything of the test that must be gone: network namespaces,
    interfaces, cgroups, mounts (of `work`, or of any run when None) and the host paths in
    `created`."""
    netns = run(["ip", "netns", "list"], check_rc=False).stdout
    links = run(["ip", "-o", "link", "show"], check_rc=False).stdout
    with open("/proc/self/mountinfo") as f:
        mounts = [line for line in f if (work or "/var/tmp/rangepool-e2e-") in line]
    left = [p for p in created if os.path.exists(p)]
    return [
        ("no network namespace of the test is left", [line for line in netns.splitlines() if line.startswith("rpe2e-")]),
        ("no interface of the test is left", [line.split(":")[1].strip() for line in links.splitlines() if "rpe2e" in line]),
        ("no cgroup of the test is left", test_cgroups()),
        ("no mount of the test is left", mounts),
        ("nothing the nodes made on the host is left", left),
    ]


def leftovers(work, created):
    """Checks that the cleanup left nothing of the test behind."""
    for what, left in what_is_left(work, created):
        check(left == [], f"cleanup: {what}", str(left[:20]))


def remove_created(paths):
    for p in sorted(paths, key=lambda p: -p.count("/")):
        if p == "/run/netns" and os.path.isdir(p):
            run(["umount", p], check_rc=False)
        if os.path.isdir(p):
            try:
                os.rmdir(p)
            except OSError as e:
                print(f"    cleanup: rmdir {p}: {e}", flush=True)
        elif os.path.exists(p):
            os.remove(p)


def main():
    if os.geteuid() != 0:
        print("e2e: skipped: needs root (network namespaces, mounts, cgroups, containerd)")
        return 0
    if not os.path.isfile("/sys/fs/cgroup/pids/cgroup.procs"):
        print("e2e: skipped: needs the cgroup v1 hierarchies (or the hybrid layout with /sys/fs/cgroup/pids); this machine has cgroup v2 only")
        return 0
    signal.signal(signal.SIGTERM, on_signal)
    lock = open(LOCK, "w")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        print(f"e2e: another end-to-end run holds {LOCK}; wait for it to end", flush=True)
        return 1
    left = [f"{what.replace('no ', '', 1).replace(' is left', '')}: {items[:5]}" for what, items in sweep_stale() if items]
    if left:
        print(f"e2e: stopped: what an earlier run left could not all be removed; remove it by hand: {left}", flush=True)
        return 1
    work = tempfile.mkdtemp(prefix="rangepool-e2e-", dir="/var/tmp")
    os.makedirs(os.path.join(work, "logs"))
    os.makedirs(os.path.join(work, "ns"))
    keep = os.environ.get("KEEP") == "1"
    created = set()
    cleanup.push(f"remove {work}", lambda: None if keep else shutil.rmtree(work, ignore_errors=True))
    # The mount namespaces' files must be on a private mount.
    run(["mount", "--bind", os.path.join(work, "ns"), os.path.join(work, "ns")])
    run(["mount", "--make-private", os.path.join(work, "ns")])
    cleanup.push("unmount the namespaces' folder", lambda: run(["umount", os.path.join(work, "ns")], check_rc=False))
    # Folders and files the nodes create on the host (mount points, iptables' lock) that were not
    # there before go at the end, once the mounts over them are gone.
    for p in [*NODE_DIRS.values(), "/run/xtables.lock", "/run/netns"]:
        while p != "/" and not os.path.exists(p):
            created.add(p)
            p = os.path.dirname(p)
    cleanup.push("remove what the nodes created on the host", lambda: remove_created(created))
    with open(os.path.join(work, CREATED), "w") as f:
        json.dump(sorted(created), f)
    if keep:
        open(os.path.join(work, KEPT), "w").close()
    c = Cluster(work)
    nodes = [Node(c, i + 1, name, ip) for i, (name, ip) in enumerate(NODES)]
    print(f"e2e: work folder {work} (logs in {work}/logs)", flush=True)
    try:
        test(c, nodes)
    except Fatal as e:
        print(f"e2e: stopped: {e}", flush=True)
    except KeyboardInterrupt as e:
        failed.append(f"interrupted ({e})")
    except Exception:  # noqa: BLE001 - a bug of the test itself: report it, then clean up
        traceback.print_exc()
        failed.append("the test raised an exception")
    finally:
        mark("cleanup")
        if failed and not keep:
            # Keep the logs of a failed run where CI's output can point at them.
            dest = os.path.join(REPO, "target", "e2e-logs")
            shutil.rmtree(dest, ignore_errors=True)
            shutil.copytree(os.path.join(work, "logs"), dest, ignore_dangling_symlinks=True)
            print(f"e2e: logs kept in {dest}", flush=True)
        cleanup.run()
        leftovers(work, created)
        mark("done")
    print(f"e2e: {passed} passed, {len(failed)} failed")
    for f in failed:
        print(f"    failed: {f}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
