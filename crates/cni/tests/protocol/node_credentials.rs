//! A stolen node credential against IPAMBlocks: with exactly the RBAC the chart grants the node
//! (envtest's `chart_identity(ChartIdentity::Node)`), it can read blocks but every kind of write
//! is refused, so it cannot add a record for a foreign pod, move one or erase one; and the
//! plugin refuses the address such a record would have backed.

use api::{IPAMBlock, keys};
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;

use crate::common::{Call, Cluster, netconf, pod};

const BLOCK: &str = "10.99.0.128/26";
const BLOCK_NAME: &str = "10-99-0-128-26";

#[tokio::test]
async fn the_nodes_credential_can_read_blocks_but_not_write_them() {
    let cluster = Cluster::start().await;
    let victim = pod("victim").create(&cluster).await;
    cluster
        .controller()
        .assign(&victim, "payments", BLOCK, "10.99.0.130")
        .await;
    // The attacker's pod, annotated with an address of the trusted pool that no block records
    // for it: a pod creator can write any annotation.
    let thief = pod("thief")
        .annotated(keys::ASSIGNED_IPV4, "10.99.0.135")
        .annotated(keys::ASSIGNED_POOLS, r#"{"ipv4":"payments"}"#)
        .annotated(
            keys::ASSIGNED_BLOCKS,
            &format!(r#"{{"ipv4":"{BLOCK_NAME}"}}"#),
        )
        .create(&cluster)
        .await;
    let thief_uid = thief.uid().unwrap();

    let node: Api<IPAMBlock> = Api::all(cluster.node.client.clone());
    // Reads work: the credential is a real one.
    let block = node.get(BLOCK_NAME).await.unwrap();
    let before = block.resource_version().unwrap();
    assert_eq!(
        node.list(&ListParams::default()).await.unwrap().items.len(),
        1
    );

    let forged = format!("shop/thief {thief_uid} 1");
    let forbidden = |what: &str, code: Option<u16>| {
        assert_eq!(code, Some(403), "{what} was not refused with 403");
    };
    let params = PatchParams::default();

    // patch: a merge patch adding the thief's record at the address's ordinal (7) ...
    let merge = json!({"spec": {"holders": {"7": forged}}});
    let r = node.patch(BLOCK_NAME, &params, &Patch::Merge(&merge)).await;
    forbidden("merge patch", envtest::status_code(&r));
    // ... a server-side apply, and a patch that moves the victim's record to the thief.
    let apply = PatchParams::apply("attacker").force();
    let doc = json!({
        "apiVersion": "rangepool.dev/v1", "kind": "IPAMBlock",
        "metadata": {"name": BLOCK_NAME},
        "spec": {"cidr": BLOCK, "pool": "payments", "holders": {"7": forged}}
    });
    let r = node.patch(BLOCK_NAME, &apply, &Patch::Apply(&doc)).await;
    forbidden("server-side apply", envtest::status_code(&r));
    let steal = json!({"spec": {"allocations": {"2": {"handle": thief_uid}}}});
    let r = node.patch(BLOCK_NAME, &params, &Patch::Merge(&steal)).await;
    forbidden(
        "moving a record of the earlier format",
        envtest::status_code(&r),
    );
    let steal = json!({"spec": {"holders": {"2": forged}}});
    let r = node.patch(BLOCK_NAME, &params, &Patch::Merge(&steal)).await;
    forbidden("moving a record", envtest::status_code(&r));

    // update: the whole block written back with the forged record.
    let mut replaced = block.clone();
    replaced.spec.holders.insert("7".into(), forged.clone());
    let r = node
        .replace(BLOCK_NAME, &PostParams::default(), &replaced)
        .await;
    forbidden("update", envtest::status_code(&r));

    // create: a new block of the trusted pool recording the thief.
    let mut spec = block.spec.clone();
    spec.cidr = "10.99.0.64/26".into();
    spec.holders = [("7".to_owned(), forged.clone())].into();
    let r = node
        .create(
            &PostParams::default(),
            &IPAMBlock::new("10-99-0-64-26", spec),
        )
        .await;
    forbidden("create", envtest::status_code(&r));

    // delete: erasing every record of a block, one or all.
    let r = node.delete(BLOCK_NAME, &DeleteParams::default()).await;
    forbidden("delete", envtest::status_code(&r));
    let r = node
        .delete_collection(&DeleteParams::default(), &ListParams::default())
        .await;
    forbidden("deletecollection", envtest::status_code(&r));

    // Nothing changed, and the plugin refuses the thief's forged annotation.
    let after = cluster.block(BLOCK).await;
    assert_eq!(after.resource_version().unwrap(), before);
    assert_eq!(after.spec.allocated(), 1);
    assert_eq!(cluster.holder(BLOCK, "10.99.0.130").await, victim.uid());
    let msg = Call::new("ADD", &thief, "t1", &netconf("1.1.0", cluster.kubeconfig()))
        .run()
        .await
        .failed(101);
    assert!(
        msg.contains("pod shop/thief") && msg.contains("no allocation for the address"),
        "{msg}"
    );
}
