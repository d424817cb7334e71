//! What the API server says about itself: its request counters (`apiserver_request_total` on
//! its `/metrics`, which count every request it answered, by resource, verb and status code),
//! and the CPU its process and etcd's have used.

use std::collections::BTreeMap;

use envtest::ControlPlane;
use kube::Client;

use crate::procfs::{cpu_seconds, find_process, rss_kib};

/// The verbs of `apiserver_request_total` that write (`APPLY` is a server-side apply patch).
const WRITE_VERBS: [&str; 5] = ["POST", "PUT", "PATCH", "APPLY", "DELETE"];

/// One series of `apiserver_request_total`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Series {
    /// `pods`, `ipamblocks.rangepool.dev`, `ippools.rangepool.dev/status`, `leases.coordination.k8s.io`.
    pub resource: String,
    pub verb: String,
    pub code: String,
}

impl Series {
    pub fn is_write(&self) -> bool {
        WRITE_VERBS.contains(&self.verb.as_str())
    }

    pub fn succeeded(&self) -> bool {
        self.code.starts_with('2')
    }
}

/// The API server's request counters at one moment, or the difference of two readings.
#[derive(Debug, Clone, Default)]
pub struct Requests {
    counts: BTreeMap<Series, u64>,
    /// Priority level -> (seconds requests waited in its queues, requests), from
    /// `apiserver_flowcontrol_request_wait_duration_seconds`. API Priority and Fairness may queue
    /// the controller (a ServiceAccount of kube-system: `workload-high`), never the admin, whose
    /// requests (the scheduler's creates) are `exempt` and not counted here.
    waits: BTreeMap<String, (f64, f64)>,
}

impl Requests {
    /// Reads the counters (with the admin's client: `/metrics` is not a resource, and the chart's
    /// identities may not read it).
    pub async fn read(admin: &Client) -> Requests {
        let request = hyper::Request::get("/metrics")
            .body(Vec::new())
            .expect("GET /metrics");
        let text = admin
            .request_text(request)
            .await
            .expect("the API server serves /metrics");
        Requests::parse(&text)
    }

    /// The samples of a Prometheus text exposition that [`Requests`] keeps.
    pub fn parse(text: &str) -> Requests {
        let mut out = Requests::default();
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let Some((name, rest)) = line.split_once('{') else {
                continue;
            };
            let Some((labels, value)) = rest.rsplit_once('}') else {
                continue;
            };
            let Some(value) = value
                .split_whitespace()
                .next()
                .and_then(|v| v.parse::<f64>().ok())
            else {
                continue;
            };
            match name {
                "apiserver_request_total" => out.add_request(&parse_labels(labels), value),
                "apiserver_flowcontrol_request_wait_duration_seconds_sum" => {
                    let level = parse_labels(labels).remove("priority_level");
                    out.waits.entry(level.unwrap_or_default()).or_default().0 += value;
                }
                "apiserver_flowcontrol_request_wait_duration_seconds_count" => {
                    let level = parse_labels(labels).remove("priority_level");
                    out.waits.entry(level.unwrap_or_default()).or_default().1 += value;
                }
                _ => {}
            }
        }
        out
    }

    fn add_request(&mut self, labels: &BTreeMap<String, String>, value: f64) {
        let label = |name: &str| labels.get(name).cloned().unwrap_or_default();
        let mut resource = label("resource");
        if resource.is_empty() {
            return;
        }
        let group = label("group");
        if !group.is_empty() {
            resource = format!("{resource}.{group}");
        }
        let subresource = label("subresource");
        if !subresource.is_empty() {
            resource = format!("{resource}/{subresource}");
        }
        let series = Series {
            resource,
            verb: label("verb"),
            code: label("code"),
        };
        // Series that differ only in labels dropped here (scope, version, ...) add up.
        *self.counts.entry(series).or_default() += value as u64;
    }

    /// What was counted after `before` was read.
    pub fn since(&self, before: &Requests) -> Requests {
        let counts = self
            .counts
            .iter()
            .filter_map(|(series, n)| {
                let delta = n.saturating_sub(before.counts.get(series).copied().unwrap_or(0));
                (delta > 0).then(|| (series.clone(), delta))
            })
            .collect();
        let waits = self
            .waits
            .iter()
            .filter_map(|(level, (seconds, n))| {
                let (s0, n0) = before.waits.get(level).copied().unwrap_or_default();
                (n - n0 > 0.0).then(|| (level.clone(), (seconds - s0, n - n0)))
            })
            .collect();
        Requests { counts, waits }
    }

    /// Prints, per priority level, how many requests API Priority and Fairness let through and
    /// how long they waited on average.
    pub fn print_waits(&self, prefix: &str) {
        for (level, (seconds, n)) in &self.waits {
            println!(
                "{prefix}_apf_{level}: {n:.0} requests, mean wait {:.1} ms",
                seconds / n * 1000.0
            );
        }
    }

    /// Write requests to `resource` with one of `verbs` (any verb when empty), answered with any
    /// code.
    pub fn writes_to(&self, resource: &str, verbs: &[&str]) -> u64 {
        self.counts
            .iter()
            .filter(|(s, _)| s.is_write() && s.resource == resource)
            .filter(|(s, _)| verbs.is_empty() || verbs.contains(&s.verb.as_str()))
            .map(|(_, n)| n)
            .sum()
    }

    /// Every write request, answered with any code.
    pub fn writes(&self) -> u64 {
        self.counts
            .iter()
            .filter(|(s, _)| s.is_write())
            .map(|(_, n)| n)
            .sum()
    }

    /// Write requests answered with anything but 2xx (conflicts, refusals).
    pub fn refused_writes(&self) -> u64 {
        self.counts
            .iter()
            .filter(|(s, _)| s.is_write() && !s.succeeded())
            .map(|(_, n)| n)
            .sum()
    }

    /// Prints `prefix_writes_<resource>_<verb>_<code>: n` for every write series.
    pub fn print_writes(&self, prefix: &str) {
        for (s, n) in self.counts.iter().filter(|(s, _)| s.is_write()) {
            println!("{prefix}_writes_{}_{}_{}: {n}", s.resource, s.verb, s.code);
        }
        println!("{prefix}_writes_total: {}", self.writes());
        println!("{prefix}_writes_refused: {}", self.refused_writes());
    }
}

/// `k="v",k2="v2"` with `\"`, `\\` and `\n` escapes in values.
fn parse_labels(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut rest = text;
    while let Some((name, after)) = rest.split_once("=\"") {
        let name = name.trim_start_matches(',').trim().to_owned();
        let mut value = String::new();
        let mut chars = after.char_indices();
        let mut end = after.len();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, other)) => value.push(other),
                    None => {}
                },
                '"' => {
                    end = i + 1;
                    break;
                }
                other => value.push(other),
            }
        }
        out.insert(name, value);
        rest = &after[end..];
    }
    out
}

/// The processes of a control plane, found by the flags envtest starts them with.
pub struct Processes {
    pub apiserver: Option<u32>,
    pub etcd: Option<u32>,
}

impl Processes {
    pub fn of(plane: &ControlPlane) -> Processes {
        let port = plane.url().rsplit(':').next().unwrap_or_default();
        let etcd_data = plane.dir().join("etcd");
        let processes = Processes {
            apiserver: find_process("kube-apiserver", &format!("--secure-port={port}")),
            etcd: find_process("etcd", &format!("--data-dir={}", etcd_data.display())),
        };
        if processes.apiserver.is_none() || processes.etcd.is_none() {
            eprintln!(
                "warning: did not find this control plane's processes (kube-apiserver {:?}, etcd {:?}); their CPU is not reported",
                processes.apiserver, processes.etcd
            );
        }
        processes
    }

    /// CPU seconds used so far: (API server, etcd).
    pub fn cpu(&self) -> (Option<f64>, Option<f64>) {
        (
            self.apiserver.and_then(cpu_seconds),
            self.etcd.and_then(cpu_seconds),
        )
    }

    /// Prints the resident set sizes of the API server and etcd.
    pub fn print_rss(&self, prefix: &str) {
        for (name, pid) in [("apiserver", self.apiserver), ("etcd", self.etcd)] {
            if let Some((rss, hwm)) = pid.and_then(rss_kib) {
                println!(
                    "{prefix}_{name}_vmrss_mib: {} (VmHWM {})",
                    crate::cluster::mib(rss),
                    crate::cluster::mib(hwm)
                );
            }
        }
    }
}
