//! The chart's Grafana dashboard (`charts/rangepool/files/grafana-dashboard.json`) and
//! PrometheusRule (`charts/rangepool/templates/prometheusrule.yaml`) query only metrics the
//! controller exports: every `rangepool_*` name in them is a series of the real controller's
//! `/metrics`, scraped over HTTP after it assigned, refused and released addresses.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;
use std::net::SocketAddr;

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const CHART: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../charts/rangepool");

/// `GET /metrics` over HTTP/1.0 (the whole body, no chunks); `None` until the server answers.
async fn scrape(addr: SocketAddr) -> Option<String> {
    let mut stream = tokio::net::TcpStream::connect(addr).await.ok()?;
    stream
        .write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .await
        .ok()?;
    let mut raw = String::new();
    stream.read_to_string(&mut raw).await.ok()?;
    let (head, body) = raw.split_once("\r\n\r\n")?;
    assert!(head.contains(" 200 "), "GET /metrics: {head}");
    Some(body.to_owned())
}

/// The sample names the exposition can hold, from its `# TYPE` lines (a counter's samples end
/// in `_total`, a histogram's in `_bucket`, `_sum` and `_count`).
fn exported_names(exposition: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in exposition.lines() {
        let Some(rest) = line.strip_prefix("# TYPE ") else {
            continue;
        };
        let (name, kind) = rest.split_once(' ').unwrap();
        let suffixes: &[&str] = match kind {
            "counter" => &["_total"],
            "histogram" => &["_bucket", "_sum", "_count"],
            _ => &[""],
        };
        names.extend(suffixes.iter().map(|s| format!("{name}{s}")));
    }
    names
}

/// Every `rangepool_...` word in `text`: the metric names its queries use.
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("rangepool_") {
        let word: String = rest[at..]
            .chars()
            .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
            .collect();
        rest = &rest[at + word.len()..];
        names.insert(word);
    }
    names
}

/// The queries of the dashboard's panels, and of its variables.
fn dashboard_queries() -> Vec<String> {
    let text = std::fs::read_to_string(format!("{CHART}/files/grafana-dashboard.json")).unwrap();
    let dashboard: serde_json::Value = serde_json::from_str(&text).unwrap();
    let mut queries: Vec<String> = dashboard["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["targets"].as_array().unwrap())
        .map(|t| t["expr"].as_str().unwrap().to_owned())
        .collect();
    queries.extend(
        dashboard["templating"]["list"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|v| v["definition"].as_str().map(str::to_owned)),
    );
    queries
}

/// The `expr:` blocks of the PrometheusRule template.
fn rule_queries() -> Vec<String> {
    let text = std::fs::read_to_string(format!("{CHART}/templates/prometheusrule.yaml")).unwrap();
    let mut queries = Vec::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        if line.trim_start() != "expr: |-" {
            continue;
        }
        let indent = line.len() - line.trim_start().len();
        let mut expr = String::new();
        while let Some(next) = lines.next_if(|l| l.len() - l.trim_start().len() > indent) {
            expr.push_str(next.trim());
            expr.push(' ');
        }
        queries.push(expr);
    }
    queries
}

#[tokio::test]
async fn the_dashboard_and_the_alerts_use_only_metrics_the_controller_exports() {
    let c = Cluster::new().await;
    c.node("node-1", &[]).await;
    c.namespace("web", &[], &[]).await;
    c.pool("general", spec("10.244.0.0/24")).await;
    let addr = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let controller = c.controller_serving(settings(), addr).await;
    c.create(pod("a").in_ns("web").on_node("node-1")).await;
    c.create(
        pod("b")
            .in_ns("web")
            .on_node("node-1")
            .annotated("cni.projectcalico.org/ipv4pools", r#"["nope"]"#),
    )
    .await;
    c.wait_assigned("web", "a").await;
    c.wait_error("web", "b").await;
    c.delete_pod_and_wait_gone("web", "a").await;
    // The leader has counted the assignment, the refusal and the release.
    let exposition = eventually("/metrics to count a release", || async {
        let text = scrape(addr).await?;
        text.contains("rangepool_releases_total{").then_some(text)
    })
    .await;
    for sample in [
        "rangepool_leader 1",
        "rangepool_pool_capacity_addresses{pool=\"general\"} 256",
        "rangepool_pool_allocated_addresses{pool=\"general\"}",
        "rangepool_pool_not_admitted_addresses{pool=\"general\"} 0",
        "rangepool_write_conflicts_total{resource=\"pod\"}",
        "rangepool_block_troubles_total{reason=\"BlockUnreadable\"} 0",
        "rangepool_assignment_failures_total{reason=\"UnknownPool\"}",
        "rangepool_allocations_total 1",
        "rangepool_assignment_latency_seconds_bucket{le=",
    ] {
        assert!(
            exposition.contains(sample),
            "no {sample:?} in\n{exposition}"
        );
    }
    let exported = exported_names(&exposition);

    let dashboard = dashboard_queries();
    let rules = rule_queries();
    assert_eq!(rules.len(), 3, "the three alerts' expressions: {rules:?}");
    assert!(
        dashboard.len() >= 10,
        "the dashboard's queries: {dashboard:?}"
    );
    for (what, queries) in [("dashboard", &dashboard), ("PrometheusRule", &rules)] {
        let used: BTreeSet<String> = queries.iter().flat_map(|q| metric_names(q)).collect();
        assert!(
            used.contains("rangepool_pool_allocated_addresses")
                && used.contains("rangepool_leader"),
            "{what} reads the pools' usage and the leader: {used:?}"
        );
        let unknown: Vec<_> = used.difference(&exported).collect();
        assert!(
            unknown.is_empty(),
            "the {what} uses {unknown:?}, which the controller does not export; it exports {exported:?}"
        );
    }
    let rule_metrics: BTreeSet<String> = rules.iter().flat_map(|q| metric_names(q)).collect();
    assert!(
        rule_metrics.contains("rangepool_assignment_failures_total")
            && rule_metrics.contains("rangepool_pool_capacity_addresses"),
        "the alerts watch failures and pool capacity: {rule_metrics:?}"
    );
    // The check can fail: a misspelt name is not exported.
    assert!(!exported.contains("rangepool_pool_allocated"));
    assert!(!exported.contains("rangepool_assignment_failures"));
    controller.stop().await;
}
