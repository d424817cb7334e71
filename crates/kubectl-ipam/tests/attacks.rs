//! The trust boundary, tried in one run as attackers would, on a real control plane with the
//! chart's RBAC: the real controller runs in-process as the chart's controller ServiceAccount;
//! the attackers are the chart's node ServiceAccount (what a compromised node holds) and a
//! namespace's editor (what any pod creator holds); then an admin tampers by hand. Afterwards
//! the API shows that no address is held twice, every assigned pod's address is recorded for it,
//! and no pod holds an address its pool does not admit but the one the admin's relabelling left
//! behind, and `kubectl ipam check -o json` reports exactly what was tampered with.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../../controller/tests/common/mod.rs"]
mod common;
mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use api::{Assignment, BlockAllocation, IPAMBlock, IPPool, keys};
use common::*;
use envtest::{ChartIdentity, status_code};
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};
use serde_json::{Value, json};

/// The namespace editor's ServiceAccount: `edit` in `web` only, as a team's CI would have.
const EDITOR: (&str, &str) = ("web", "dev");

/// A ServiceAccount bound to the built-in `edit` ClusterRole in its namespace, and a client
/// with its token once the authorizer lets it list pods there.
async fn namespace_editor(c: &Cluster) -> Client {
    let (namespace, name) = EDITOR;
    c.plane
        .apply(&json!({
            "apiVersion": "v1", "kind": "ServiceAccount",
            "metadata": {"name": name, "namespace": namespace}
        }))
        .await
        .unwrap();
    c.plane
        .apply(&json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": {"name": name, "namespace": namespace},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "edit"},
            "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": namespace}]
        }))
        .await
        .unwrap();
    let editor = c.plane.service_account(namespace, name).await.unwrap();
    let pods: Api<Pod> = Api::namespaced(editor.client.clone(), namespace);
    eventually("the editor's binding to take effect", || async {
        pods.list(&ListParams::default().limit(1)).await.ok()
    })
    .await;
    editor.client
}

fn refused(what: &str, code: Option<u16>, want: u16) {
    assert_eq!(code, Some(want), "{what}: expected {want}");
}

/// The block recording `address`.
async fn block_of(c: &Cluster, address: IpAddr) -> IPAMBlock {
    c.blocks()
        .await
        .into_iter()
        .find(|b| in_net(address, &b.spec.cidr))
        .expect("a block records the address")
}

/// A block record giving an address to `pod`, as the controller would write it.
fn record_for(pod: &Pod) -> String {
    format!(
        "{}/{} {} 1",
        pod.namespace().unwrap(),
        pod.name_any(),
        pod.uid().unwrap()
    )
}

/// The same record in the format of rangepool 0.1, which the controller still reads.
fn legacy_record_for(pod: &Pod) -> BlockAllocation {
    BlockAllocation {
        handle: pod.uid().unwrap(),
        namespace: pod.namespace().unwrap(),
        pod: pod.name_any(),
        container: None,
        sequence: 1,
    }
}

async fn uid(c: &Cluster, namespace: &str, name: &str) -> String {
    c.get_pod(namespace, name).await.unwrap().uid().unwrap()
}

/// Waits until the pod has an address and marks it running with that address, as the kubelet
/// does after the CNI ADD.
async fn started(c: &Cluster, namespace: &str, name: &str) -> IpAddr {
    let address = c.wait_assigned(namespace, name).await.ipv4.unwrap().address;
    c.set_running(namespace, name, &address.to_string()).await;
    address
}

/// Runs `kubectl ipam check -o json` as the admin.
async fn check(c: &Cluster) -> (i32, Value) {
    let kubeconfig = c.plane.kubeconfig_path().to_str().unwrap().to_owned();
    let run = tokio::task::spawn_blocking(move || {
        support::kubectl_ipam(&["check", "-o", "json", "--kubeconfig", &kubeconfig])
    })
    .await
    .unwrap();
    (run.status, run.json())
}

#[tokio::test]
async fn no_credential_short_of_the_controllers_moves_forges_or_erases_an_address() {
    // The controller-manager fills the built-in `edit` role the namespace editor is bound to.
    let c = Cluster::with(envtest::Options {
        controller_manager: true,
        ..Default::default()
    })
    .await;
    c.node("node-1", &[]).await;
    c.node("node-2", &[]).await;
    c.namespace("pay", &[("team", "payments")], &[]).await;
    c.namespace("ledger", &[("team", "payments")], &[]).await;
    c.namespace("web", &[("team", "web")], &[]).await;
    let mut payments = manual("10.244.8.0/24");
    payments.namespace_selector = Some("team == 'payments'".into());
    c.pool("payments", payments).await;
    c.pool("general", spec("10.244.0.0/24")).await;
    let _controller = c.controller(settings()).await;

    let trusted = r#"["payments"]"#;
    c.create(
        pod("db")
            .in_ns("pay")
            .on_node("node-1")
            .annotated(keys::IPV4_POOLS, trusted),
    )
    .await;
    let db = started(&c, "pay", "db").await;
    c.create(
        pod("report")
            .in_ns("ledger")
            .on_node("node-1")
            .annotated(keys::IPV4_POOLS, trusted),
    )
    .await;
    let report = started(&c, "ledger", "report").await;
    c.create(pod("app").in_ns("web").on_node("node-2")).await;
    let app = started(&c, "web", "app").await;
    assert!(in_net(db, "10.244.8.0/24") && in_net(report, "10.244.8.0/24"));
    assert!(in_net(app, "10.244.0.0/24"));
    let trusted_block = block_of(&c, db).await;
    let trusted_name = trusted_block.name_any();

    // ---- The node's credential: it reads, and every write is refused. ----
    let node = c.plane.chart_identity(ChartIdentity::Node).await.unwrap();
    let node_blocks: Api<IPAMBlock> = Api::all(node.client.clone());
    node_blocks.get(&trusted_name).await.unwrap();
    // The node's target: web/evil, a pod the trusted pool does not admit.
    let editor = namespace_editor(&c).await;
    let web_pods: Api<Pod> = Api::namespaced(editor.clone(), "web");
    let evil = web_pods
        .create(
            &PostParams::default(),
            &pod("evil")
                .in_ns("web")
                .on_node("node-1")
                .annotated(keys::IPV4_POOLS, trusted)
                .build(),
        )
        .await
        .unwrap();
    let forged = json!({"spec": {"holders": {"7": record_for(&evil)}}});
    let r = node_blocks
        .patch(
            &trusted_name,
            &PatchParams::default(),
            &Patch::Merge(&forged),
        )
        .await;
    refused("node: forging a record", status_code(&r), 403);
    let steal = json!({"spec": {"allocations": {"0": {"handle": evil.uid().unwrap()}}}});
    let r = node_blocks
        .patch(
            &trusted_name,
            &PatchParams::default(),
            &Patch::Merge(&steal),
        )
        .await;
    refused("node: moving a record", status_code(&r), 403);
    let mut copy = trusted_block.spec.clone();
    copy.cidr = "10.244.8.192/26".into();
    copy.holders = [("7".to_owned(), record_for(&evil))].into();
    let r = node_blocks
        .create(
            &PostParams::default(),
            &IPAMBlock::new("10-244-8-192-26", copy),
        )
        .await;
    refused("node: creating a block", status_code(&r), 403);
    let r = node_blocks
        .delete(&trusted_name, &DeleteParams::default())
        .await;
    refused("node: erasing a block", status_code(&r), 403);
    let node_pods: Api<Pod> = Api::namespaced(node.client.clone(), "web");
    let annotate = json!({"metadata": {"annotations": {keys::ASSIGNED_IPV4: db.to_string()}}});
    let r = node_pods
        .patch("evil", &PatchParams::default(), &Patch::Merge(&annotate))
        .await;
    refused("node: annotating a pod", status_code(&r), 403);
    let squat = json!({"status": {"podIPs": [{"ip": db.to_string()}]}});
    let r = node_pods
        .patch_status("evil", &PatchParams::default(), &Patch::Merge(&squat))
        .await;
    refused("node: a pod's status", status_code(&r), 403);
    let open = json!({"spec": {"assignmentMode": "Automatic", "namespaceSelector": "all()"}});
    let r = Api::<IPPool>::all(node.client.clone())
        .patch("payments", &PatchParams::default(), &Patch::Merge(&open))
        .await;
    refused("node: opening the pool", status_code(&r), 403);

    // ---- A pod creator: naming the trusted pool, forging the controller's annotations. ----
    let error = c.wait_error("web", "evil").await;
    assert!(
        error.contains("pod web/evil") && error.contains("payments"),
        "{error}"
    );
    // A new pod announcing the trusted address as its own ...
    let forger = pod("forger")
        .in_ns("web")
        .on_node("node-1")
        .annotated(keys::ASSIGNED_IPV4, &db.to_string())
        .annotated(keys::ASSIGNED_POOLS, r#"{"ipv4":"payments"}"#)
        .annotated(
            keys::ASSIGNED_BLOCKS,
            &format!(r#"{{"ipv4":"{trusted_name}"}}"#),
        );
    web_pods
        .create(&PostParams::default(), &forger.build())
        .await
        .unwrap();
    // ... and a running pod rewriting its own assignment to the trusted address.
    let moved = json!({"metadata": {"annotations": {
        keys::ASSIGNED_IPV4: report.to_string(),
        keys::ASSIGNED_POOLS: r#"{"ipv4":"payments"}"#,
    }}});
    web_pods
        .patch("app", &PatchParams::default(), &Patch::Merge(&moved))
        .await
        .unwrap();
    // Our resources are not the editor's to write.
    let r = Api::<IPAMBlock>::all(editor.clone())
        .patch(
            &trusted_name,
            &PatchParams::default(),
            &Patch::Merge(&forged),
        )
        .await;
    refused("editor: forging a record", status_code(&r), 403);
    let r = Api::<IPPool>::all(editor.clone())
        .patch("payments", &PatchParams::default(), &Patch::Merge(&open))
        .await;
    refused("editor: opening the pool", status_code(&r), 403);

    let forger_uid = uid(&c, "web", "forger").await;
    let forger_got = eventually("the forger to get an address of its own", || async {
        let pod = c.get_pod("web", "forger").await?;
        let a = Assignment::from_annotations(pod.annotations()).ok()?;
        let address = a.ipv4?.address;
        let recorded = c.recorded().await;
        recorded
            .contains(&(address, forger_uid.clone()))
            .then_some(address)
    })
    .await;
    assert!(in_net(forger_got, "10.244.0.0/24"), "{forger_got}");
    c.set_running("web", "forger", &forger_got.to_string())
        .await;
    eventually(
        "app's annotation to be its recorded address again",
        || async {
            let pod = c.get_pod("web", "app").await?;
            let a = Assignment::from_annotations(pod.annotations()).ok()?;
            (a.ipv4?.address == app).then_some(())
        },
    )
    .await;

    // ---- An admin tampering by hand. ----
    let admin_blocks: Api<IPAMBlock> = Api::all(c.client.clone());
    // A malformed record is refused at apply time, in either format.
    let bad = json!({"spec": {"holders": {"999": record_for(&evil)}}});
    let r = admin_blocks
        .patch(&trusted_name, &PatchParams::default(), &Patch::Merge(&bad))
        .await;
    refused("admin: an ordinal outside the block", status_code(&r), 422);
    let bad = json!({"spec": {"allocations": {"999": legacy_record_for(&evil)}}});
    let r = admin_blocks
        .patch(&trusted_name, &PatchParams::default(), &Patch::Merge(&bad))
        .await;
    refused(
        "admin: an ordinal outside the block, earlier format",
        status_code(&r),
        422,
    );
    // A record for the foreign pod is not adopted, and goes.
    let r = admin_blocks
        .patch(
            &trusted_name,
            &PatchParams::default(),
            &Patch::Merge(&forged),
        )
        .await;
    assert!(r.is_ok(), "{r:?}");
    let forged_address: IpAddr = "10.244.8.7".parse().unwrap();
    let evil_uid = evil.uid().unwrap();
    eventually("the forged record to be released", || async {
        let recorded = c.recorded().await;
        (!recorded.contains(&(forged_address, evil_uid.clone()))).then_some(())
    })
    .await;
    // app's block taken away by force: it comes back, quarantined, still recording app.
    let general_block = block_of(&c, app).await.name_any();
    c.force_delete_block(&general_block).await;
    let app_uid = uid(&c, "web", "app").await;
    eventually("app's block to come back quarantined", || async {
        let block = admin_blocks.get_opt(&general_block).await.unwrap()?;
        let back =
            block.spec.quarantine.is_some() && c.recorded().await.contains(&(app, app_uid.clone()));
        back.then_some(())
    })
    .await;
    // The ledger namespace relabelled: its pod keeps its trusted address, reported as drift.
    Api::<Namespace>::all(c.client.clone())
        .patch(
            "ledger",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"team": "reports"}}})),
        )
        .await
        .unwrap();
    eventually("the pool's status to count the drift", || async {
        let pool = c.get_pool("payments").await?;
        (pool.status?.not_admitted == Some(1)).then_some(())
    })
    .await;
    // A new pod on app's node gets nothing of the quarantined block.
    c.create(pod("late").in_ns("web").on_node("node-2")).await;
    let late = started(&c, "web", "late").await;
    let quarantined = block_of(&c, app).await.spec.cidr;
    assert!(!in_net(late, &quarantined), "{late} is in {quarantined}");

    // ---- The invariants, from the API. ----
    let recorded = c.recorded().await;
    let mut seen = BTreeSet::new();
    for (address, _) in &recorded {
        assert!(
            seen.insert(*address),
            "{address} recorded twice: {recorded:?}"
        );
    }
    let holder: BTreeMap<IpAddr, String> = recorded.into_iter().collect();
    let pods = Api::<Pod>::all(c.client.clone())
        .list(&ListParams::default())
        .await
        .unwrap()
        .items;
    for pod in &pods {
        let a = Assignment::from_annotations(pod.annotations()).unwrap();
        let Some(v4) = a.ipv4 else { continue };
        let who = format!("{}/{}", pod.namespace().unwrap(), pod.name_any());
        assert_eq!(
            holder.get(&v4.address),
            pod.uid().as_ref(),
            "{who} is annotated with {} which no block records for it",
            v4.address
        );
        let trusted_holder = in_net(v4.address, "10.244.8.0/24");
        let admitted = ["pay/db", "ledger/report"].contains(&who.as_str());
        assert!(!trusted_holder || admitted, "{who} holds {}", v4.address);
    }
    assert_eq!(holder.get(&db), Some(&uid(&c, "pay", "db").await));
    assert_eq!(
        holder.get(&report),
        Some(&uid(&c, "ledger", "report").await)
    );

    // ---- check reports exactly the tampering. ----
    let (status, found) = check(&c).await;
    assert_eq!(status, 1, "{found:#}");
    let problems: BTreeSet<(String, String)> = found["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let pod = format!(
                "{}/{}",
                p["namespace"].as_str().unwrap_or(""),
                p["pod"].as_str().unwrap_or("")
            );
            (p["kind"].as_str().unwrap().to_owned(), pod)
        })
        .collect();
    let expected: BTreeSet<(String, String)> = [
        ("AddressNotAdmitted", "ledger/report"),
        ("PodWithoutAddress", "web/evil"),
    ]
    .into_iter()
    .map(|(k, p)| (k.to_owned(), p.to_owned()))
    .collect();
    assert_eq!(problems, expected, "{found:#}");
    let drift = found["problems"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["kind"] == "AddressNotAdmitted")
        .unwrap();
    assert_eq!(drift["address"], report.to_string());
    assert_eq!(drift["pool"], "payments");
    let notes: Vec<(&str, &str)> = found["notes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            (
                n["kind"].as_str().unwrap(),
                n["block"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        notes,
        vec![("BlockQuarantined", general_block.as_str())],
        "{found:#}"
    );
}
