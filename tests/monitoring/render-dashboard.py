"""Renders the chart's Grafana dashboard from a real run, without Grafana: tests/monitoring/render-dashboard.sh.

A real control plane (rangepool-envtest), two rangepool-controller replicas, and Debian's
Prometheus scraping both every 2 s with the chart's PrometheusRule loaded (its "for" durations
shortened). A workload of a few minutes fills a small pool past 90 %, assigns and releases
addresses, has pods refused (unknown pool, pool exhausted), finishes pods, and kills the leader so
that the standby takes over. Then every panel's queries are evaluated by that Prometheus over the
run (query_range, with Grafana's variables given values) and drawn with matplotlib in the
dashboard's grid into OUT.png, with the alerts that fired underneath.

    render-dashboard.py BIN_DIR PROMETHEUS KUBECTL RULES OUT.png
"""

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.parse
import urllib.request

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DASHBOARD = os.path.join(ROOT, "charts/rangepool/files/grafana-dashboard.json")
SCRAPE = 2  # seconds
RATE_INTERVAL = f"{4 * SCRAPE}s"  # Grafana's $__rate_interval: four scrape intervals


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


class Run:
    def __init__(self, bin_dir, prometheus, kubectl, rules):
        self.bin_dir, self.prometheus_bin, self.kubectl_bin, self.rules = bin_dir, prometheus, kubectl, rules
        self.dir = tempfile.mkdtemp(prefix="rangepool-dashboard-")
        self.procs = {}

    def spawn(self, name, args):
        out = open(os.path.join(self.dir, f"{name}.log"), "w")
        self.procs[name] = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)

    def stop(self, name, sig=signal.SIGTERM):
        p = self.procs.pop(name, None)
        if p and p.poll() is None:
            p.send_signal(sig)
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()

    def kubectl(self, *args, stdin=None):
        r = subprocess.run([self.kubectl_bin, "--kubeconfig", self.kubeconfig, *args], input=stdin,
                           capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"kubectl {' '.join(args)}: {r.stderr}")
        return r.stdout

    def start(self):
        kc = os.path.join(self.dir, "kc", "config")
        self.spawn("envtest", [os.path.join(self.bin_dir, "rangepool-envtest"), "--kubeconfig-out", kc,
                               "--controller-manager"])
        for _ in range(900):
            if "ready " in open(os.path.join(self.dir, "envtest.log")).read():
                break
            if self.procs["envtest"].poll() is not None:
                sys.exit(f"rangepool-envtest ended: {open(os.path.join(self.dir, 'envtest.log')).read()}")
            time.sleep(0.2)
        self.kubeconfig = kc
        log(f"control plane ready (logs in {self.dir})")
        self.kubectl("apply", "-f", os.path.join(ROOT, "crds"))
        self.kubectl("wait", "--for=condition=Established", "crd", "--all", "--timeout=60s")
        objects = [
            {"apiVersion": "v1", "kind": "Node", "metadata": {"name": f"node-{i}"}} for i in (1, 2, 3)
        ] + [
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns, "labels": {"team": ns}}}
            for ns in ("web", "batch", "payments")
        ] + [
            pool("general", "10.244.128.0/24", 28),
            pool("batch", "10.244.1.0/27", 29, mode="Manual"),
            pool("payments", "10.244.8.0/26", 28, mode="Manual", ns_selector="team == 'payments'"),
        ]
        self.kubectl("create", "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": objects}))
        for ns in ("web", "batch", "payments"):
            for _ in range(100):
                if subprocess.run([self.kubectl_bin, "--kubeconfig", kc, "-n", ns, "get", "serviceaccount", "default"],
                                  capture_output=True).returncode == 0:
                    break
                time.sleep(0.2)
        self.metrics = {}
        for name in ("controller-a", "controller-b"):
            port = free_port()
            self.metrics[name] = port
            self.spawn(name, [os.path.join(self.bin_dir, "rangepool-controller"), "--kubeconfig", kc,
                              "--pod-cidr", "10.244.0.0/16", "--metrics-addr", f"127.0.0.1:{port}",
                              "--identity", name, "--lease-namespace", "kube-system", "--lease-duration", "6",
                              "--sweep-interval", "5s"])
            time.sleep(3)  # a becomes the leader, b the standby
        self.prom_port = free_port()
        config = os.path.join(self.dir, "prometheus.yml")
        with open(config, "w") as f:
            json.dump({
                "global": {"scrape_interval": f"{SCRAPE}s", "evaluation_interval": f"{SCRAPE}s"},
                "rule_files": [self.rules],
                "scrape_configs": [{"job_name": "rangepool-controller", "static_configs": [
                    {"targets": [f"127.0.0.1:{p}" for p in self.metrics.values()]}]}],
            }, f)
        self.spawn("prometheus", [self.prometheus_bin, f"--config.file={config}",
                                  f"--storage.tsdb.path={os.path.join(self.dir, 'prometheus')}",
                                  f"--web.listen-address=127.0.0.1:{self.prom_port}"])
        for _ in range(100):
            try:
                self.query("up")
                break
            except OSError:
                time.sleep(0.3)
        log(f"controllers on {sorted(self.metrics.values())}, Prometheus on {self.prom_port}")

    def pods(self, ns, names, node, pools=None):
        """Creates the pods unbound, then binds each to `node` as the scheduler does (a Binding,
        which sets the PodScheduled condition the assignment latency is measured from)."""
        items = []
        for name in names:
            meta = {"name": name, "namespace": ns}
            if pools:
                meta["annotations"] = {"cni.projectcalico.org/ipv4pools": json.dumps(pools)}
            items.append({"apiVersion": "v1", "kind": "Pod", "metadata": meta,
                          "spec": {"containers": [{"name": "c", "image": "busybox"}]}})
        self.kubectl("create", "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": items}))
        for name in names:
            binding = {"apiVersion": "v1", "kind": "Binding", "metadata": {"name": name, "namespace": ns},
                       "target": {"apiVersion": "v1", "kind": "Node", "name": node}}
            self.kubectl("create", "--raw", f"/api/v1/namespaces/{ns}/pods/{name}/binding", "-f", "-",
                         stdin=json.dumps(binding))

    def workload(self):
        t0 = time.time()

        def at(seconds):
            time.sleep(max(0.0, t0 + seconds - time.time()))

        log("workload: web pods join the general pool, batch pods fill the small batch pool")
        for i in range(12):
            at(5 * i)
            self.pods("web", [f"web-{i}-{j}" for j in range(3)], f"node-{1 + i % 3}")
            if i < 9:
                self.pods("batch", [f"batch-{i}-{j}" for j in range(3)], f"node-{1 + i % 2}", ["batch"])
            if i in (4, 5, 8):
                self.pods("web", [f"typo-{i}"], "node-1", ["paymnts"])  # UnknownPool, retried
            if i == 6:
                self.pods("web", ["sneaky"], "node-2", ["payments"])  # NamespaceSelectorMismatch
        # batch now holds 27 of 32 (84 %): three more push it past 90 %, then it is full
        at(65)
        self.pods("batch", ["batch-x-0", "batch-x-1", "batch-x-2"], "node-1", ["batch"])
        at(80)
        self.pods("batch", ["batch-y-0", "batch-y-1", "batch-y-2", "batch-y-3"], "node-2", ["batch"])
        log("workload: pods finish and are deleted; the leader is killed at 130 s")
        for i in range(6):
            at(95 + 5 * i)
            self.kubectl("-n", "web", "delete", "pod", "--wait=false", *[f"web-{i}-{j}" for j in range(3)])
            self.kubectl("-n", "batch", "patch", "pod", f"batch-{i}-0", "--subresource=status", "--type=merge",
                         "-p", '{"status":{"phase":"Succeeded"}}')
        at(130)
        self.stop("controller-a", signal.SIGKILL)
        log("workload: controller-a killed; controller-b takes over")
        at(150)
        for i in range(12, 20):
            at(150 + 5 * (i - 12))
            self.pods("web", [f"web-{i}-{j}" for j in range(4)], f"node-{1 + i % 3}")
        at(200)
        self.kubectl("-n", "web", "delete", "pod", "--wait=false", "typo-4", "typo-5", "typo-8", "sneaky")
        at(230)
        self.end = time.time()
        self.start_time = t0 - 10
        log("workload done")

    def query(self, expr, start=None, end=None):
        if start is None:
            url = f"http://127.0.0.1:{self.prom_port}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        else:
            url = f"http://127.0.0.1:{self.prom_port}/api/v1/query_range?" + urllib.parse.urlencode(
                {"query": expr, "start": start, "end": end, "step": SCRAPE})
        with urllib.request.urlopen(url, timeout=30) as r:
            body = json.load(r)
        if body["status"] != "success":
            raise RuntimeError(f"{expr}: {body}")
        return body["data"]["result"]

    def close(self):
        for name in list(self.procs):
            self.stop(name)


def pool(name, cidr, block, mode="Automatic", ns_selector=None):
    spec = {"cidr": cidr, "blockSize": block, "assignmentMode": mode}
    if ns_selector:
        spec["namespaceSelector"] = ns_selector
    return {"apiVersion": "rangepool.dev/v1", "kind": "IPPool", "metadata": {"name": name}, "spec": spec}


def legend(fmt, metric):
    out = fmt
    for k, v in metric.items():
        out = out.replace("{{" + k + "}}", v)
    return out or "value"


def render(run, out):
    with open(DASHBOARD) as f:
        dash = json.load(f)
    panels = dash["panels"]
    rows = max(p["gridPos"]["y"] + p["gridPos"]["h"] for p in panels)
    unit_w, unit_h = 0.75, 0.42  # inches per grid column / row
    header, footer = 0.8, 0.6  # inches
    height = rows * unit_h + header + footer
    alerts = run.query("ALERTS{alertstate=\"firing\"}", run.start_time, run.end)
    fig = plt.figure(figsize=(24 * unit_w, height))
    fig.suptitle(f"{dash['title']} (rendered from a real run, Prometheus queries over "
                 f"{int(run.end - run.start_time)} s; $__rate_interval = {RATE_INTERVAL})", fontsize=14)
    problems = []
    for p in panels:
        g = p["gridPos"]
        # The panel's cell in figure fractions, with room inside for the title and the axes' labels.
        left, width = g["x"] / 24, g["w"] / 24
        top = 1 - (header + g["y"] * unit_h) / height
        cell = g["h"] * unit_h / height
        pad_x, pad_top, pad_bottom = 0.03, 0.35 / height, 0.55 / height
        ax = fig.add_axes([left + pad_x, top - cell + pad_bottom, width - 1.5 * pad_x, cell - pad_top - pad_bottom])
        ax.set_title(p["title"], fontsize=10, loc="left")
        defaults = p["fieldConfig"]["defaults"]
        unit = defaults.get("unit", "")
        series = []
        for t in p["targets"]:
            expr = t["expr"].replace("$__rate_interval", RATE_INTERVAL).replace("$pool", ".*")
            if p["type"] == "stat":
                result = run.query(expr)
            else:
                result = run.query(expr, run.start_time, run.end)
            if not result:
                problems.append(f"{p['title']}: no data for {expr}")
            series += [(legend(t.get("legendFormat", ""), r["metric"]), r) for r in result]
        if p["type"] == "stat":
            ax.axis("off")
            value = float(series[0][1]["value"][1]) if series else None
            text = "no data" if value is None else fmt(value, unit, defaults.get("decimals"))
            ax.text(0.5, 0.4, text, ha="center", va="center", fontsize=26, color=stat_color(defaults, value))
            continue
        bars = defaults.get("custom", {}).get("drawStyle") == "bars"
        stacked = {}  # x -> height so far: Grafana stacks the bars
        for name, r in sorted(series, key=lambda s: s[0]):
            xs = [float(v[0]) - run.start_time for v in r["values"]]
            ys = [float(v[1]) for v in r["values"]]
            dashed = any(o["matcher"]["id"] == "byRegexp" and name.endswith("capacity") for o in p["fieldConfig"]["overrides"])
            if bars:
                bottoms = [stacked.get(x, 0.0) for x in xs]
                ax.bar(xs, ys, width=SCRAPE, bottom=bottoms, label=name, alpha=0.8)
                for x, y, b in zip(xs, ys, bottoms):
                    stacked[x] = b + y
            else:
                ax.plot(xs, ys, label=name, linestyle="--" if dashed else "-", linewidth=1.6,
                        drawstyle="steps-post" if defaults.get("custom", {}).get("lineInterpolation") == "stepAfter" else "default")
        if unit == "percentunit":
            ax.axhline(0.9, color="red", linewidth=1, linestyle=":")
            ax.yaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0))
        if "min" in defaults:
            ax.set_ylim(bottom=defaults["min"])
        if "max" in defaults:
            ax.set_ylim(top=defaults["max"] * 1.05)
        ax.set_xlim(0, run.end - run.start_time)
        ax.set_xlabel("seconds into the run", fontsize=8)
        ax.set_ylabel({"s": "seconds", "ops": "per second", "percentunit": ""}.get(unit, ""), fontsize=8)
        ax.tick_params(labelsize=8)
        ax.grid(alpha=0.3)
        if series:
            ax.legend(fontsize=7, loc="upper left", ncol=3 if len(series) > 4 else 1)
        else:
            ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes, color="grey")
    names = sorted({(a["metric"]["alertname"], a["metric"].get("pool") or a["metric"].get("reason") or "")
                    for a in alerts})
    fired = ", ".join(f"{n} ({lbl})" if lbl else n for n, lbl in names) or "none"
    fig.text(0.01, 0.1 / height, textwrap.fill("Alerts that fired during the run (the rules' 'for' durations "
                                               f"shortened): {fired}", 200), fontsize=10)
    fig.savefig(out, dpi=70)
    return problems, names


def fmt(value, unit, decimals=None):
    if unit == "percentunit":
        return f"{value:.0%}"
    if decimals is not None:
        return f"{value:.{decimals}f}"
    return f"{value:g}"


def stat_color(defaults, value):
    steps = defaults.get("thresholds", {}).get("steps", [])
    color = "black"
    for s in steps:
        if s["value"] is None or (value is not None and value >= s["value"]):
            color = s["color"]
    return {"green": "green", "red": "red", "orange": "darkorange", "blue": "royalblue"}.get(color, color)


def main(argv):
    bin_dir, prometheus, kubectl, rules, out = argv[1:6]
    run = Run(bin_dir, prometheus, kubectl, rules)
    try:
        run.start()
        run.workload()
        time.sleep(2 * SCRAPE)
        problems, alerts = render(run, out)
    finally:
        run.close()
    log(f"wrote {out}")
    for a in alerts:
        log(f"alert fired: {a[0]} {a[1]}")
    for p in problems:
        log(f"NOTE: {p}")
    log(f"logs of the run: {run.dir}")


if __name__ == "__main__":
    main(sys.argv)
