//! Blocks are not lost: a block that records addresses survives a hand deletion until they are
//! released; a block lost anyway, or unreadable, is quarantined and rebuilt from the pods using
//! its addresses, whose addresses go to no other pod; a pod that already runs with an address
//! keeps it; a block an earlier version wrote is read and moved to the current format.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::IpAddr;

use api::{IPAMBlock, keys::FINALIZER};
use common::*;
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::{Api, ResourceExt};
use serde_json::json;

fn blocks(c: &Cluster) -> Api<IPAMBlock> {
    Api::all(c.client.clone())
}

async fn block_of(c: &Cluster, address: IpAddr) -> IPAMBlock {
    c.blocks()
        .await
        .into_iter()
        .find(|b| in_net(address, &b.spec.cidr))
        .expect("a block records the address")
}

async fn setup() -> Cluster {
    let c = Cluster::new().await;
    c.node("node-1", &[]).await;
    c.namespace("shop", &[], &[]).await;
    c.pool("general", spec("10.244.0.0/24")).await;
    c
}

#[tokio::test]
async fn a_block_holding_addresses_outlives_its_deletion_until_they_are_released() {
    let c = setup().await;
    let _controller = c.controller(settings()).await;
    c.create(pod("web").in_ns("shop").on_node("node-1")).await;
    let first = c.wait_assigned("shop", "web").await.ipv4.unwrap();
    let block = block_of(&c, first.address).await;
    assert!(block.finalizers().iter().any(|f| f == FINALIZER));

    blocks(&c)
        .delete(&block.name_any(), &DeleteParams::default())
        .await
        .unwrap();
    // Still there, marked; no new pod gets an address from it.
    let marked = blocks(&c).get(&block.name_any()).await.unwrap();
    assert!(marked.metadata.deletion_timestamp.is_some());
    c.create(pod("api").in_ns("shop").on_node("node-1")).await;
    let second = c.wait_assigned("shop", "api").await.ipv4.unwrap();
    assert!(!in_net(second.address, &block.spec.cidr), "{second:?}");

    // Its last address released, it goes.
    c.delete_pod_and_wait_gone("shop", "web").await;
    eventually("the deleted block to go", || async {
        blocks(&c)
            .get_opt(&block.name_any())
            .await
            .unwrap()
            .is_none()
            .then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_block_forced_away_while_the_controller_runs_is_created_again_quarantined() {
    let c = setup().await;
    let _controller = c.controller(settings()).await;
    c.create(pod("web").in_ns("shop").on_node("node-1")).await;
    let first = c.wait_assigned("shop", "web").await.ipv4.unwrap();
    let name = block_of(&c, first.address).await.name_any();
    c.force_delete_block(&name).await;

    let again = eventually("the block to be created again", || async {
        blocks(&c).get_opt(&name).await.unwrap()
    })
    .await;
    let quarantine = again.spec.quarantine.clone().expect("quarantined");
    assert!(quarantine.contains(&name), "{quarantine}");
    let uid = c.get_pod("shop", "web").await.unwrap().uid().unwrap();
    assert!(c.recorded().await.contains(&(first.address, uid)));
    // Nothing new comes from it.
    c.create(pod("api").in_ns("shop").on_node("node-1")).await;
    let second = c.wait_assigned("shop", "api").await.ipv4.unwrap();
    assert!(!in_net(second.address, &again.spec.cidr), "{second:?}");
}

#[tokio::test]
async fn a_block_lost_while_no_controller_runs_is_rebuilt_from_the_pods_using_it() {
    let c = setup().await;
    let controller = c.controller(settings()).await;
    for name in ["web-1", "web-2"] {
        c.create(pod(name).in_ns("shop").on_node("node-1")).await;
    }
    let web1 = c.wait_assigned("shop", "web-1").await.ipv4.unwrap();
    let web2 = c.wait_assigned("shop", "web-2").await.ipv4.unwrap();
    controller.stop().await;
    let name = block_of(&c, web1.address).await.name_any();
    c.force_delete_block(&name).await;

    let _controller = c.controller(settings()).await;
    // New pods on the node never get the running pods' addresses.
    let mut fresh = Vec::new();
    for i in 0..3 {
        let name = format!("new-{i}");
        c.create(pod(&name).in_ns("shop").on_node("node-1")).await;
        fresh.push(c.wait_assigned("shop", &name).await.ipv4.unwrap().address);
    }
    assert!(
        !fresh.contains(&web1.address) && !fresh.contains(&web2.address),
        "{fresh:?}"
    );
    // The running pods keep their addresses, recorded again.
    for (pod, got) in [("web-1", &web1), ("web-2", &web2)] {
        let now = c.wait_assigned("shop", pod).await.ipv4.unwrap();
        assert_eq!(now.address, got.address, "{pod}");
        let uid = c.get_pod("shop", pod).await.unwrap().uid().unwrap();
        eventually("the address to be recorded again", || async {
            c.recorded()
                .await
                .contains(&(got.address, uid.clone()))
                .then_some(())
        })
        .await;
    }
}

#[tokio::test]
async fn an_unreadable_block_is_quarantined_and_rebuilt_from_the_pods_using_it() {
    let c = setup().await;
    let controller = c.controller(settings()).await;
    c.create(pod("web").in_ns("shop").on_node("node-1")).await;
    let web = c.wait_assigned("shop", "web").await.ipv4.unwrap();
    controller.stop().await;
    // A record no controller writes: allocated at a sequence the block never reached.
    let name = block_of(&c, web.address).await.name_any();
    blocks(&c)
        .patch(
            &name,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"holders": {"9": "shop/ghost forged 999"}}})),
        )
        .await
        .unwrap();

    let _controller = c.controller(settings()).await;
    c.create(pod("api").in_ns("shop").on_node("node-1")).await;
    let api = c.wait_assigned("shop", "api").await.ipv4.unwrap();
    let block = block_of(&c, web.address).await;
    assert!(!in_net(api.address, &block.spec.cidr), "{api:?}");
    let rebuilt = eventually("the block to be rebuilt", || async {
        let b = blocks(&c).get(&name).await.unwrap();
        (b.spec.quarantine.is_some() && !b.spec.holders.contains_key("9")).then_some(b)
    })
    .await;
    let uid = c.get_pod("shop", "web").await.unwrap().uid().unwrap();
    let record = rebuilt.spec.to_record().unwrap();
    assert!(record.allocations.iter().any(|a| a.handle == uid));
    assert_eq!(
        c.wait_assigned("shop", "web").await.ipv4.unwrap().address,
        web.address
    );
}

#[tokio::test]
async fn a_pod_already_running_with_an_address_keeps_it_and_gets_no_second() {
    let c = setup().await;
    c.namespace("web", &[], &[]).await;
    let mut payments = manual("10.244.8.0/24");
    payments.namespace_selector = Some("team == 'payments'".into());
    c.pool("payments", payments).await;
    // Started before rangepool managed the cluster (installed over another IPAM).
    c.create(pod("old").in_ns("shop").on_node("node-1")).await;
    c.set_running("shop", "old", "10.244.0.10").await;
    c.create(pod("intruder").in_ns("web").on_node("node-1"))
        .await;
    c.set_running("web", "intruder", "10.244.8.5").await;

    let _controller = c.controller(settings()).await;
    let kept = c.wait_assigned("shop", "old").await.ipv4.unwrap();
    assert_eq!(kept.address.to_string(), "10.244.0.10");
    assert_eq!(kept.pool, "general");
    let error = c.wait_error("web", "intruder").await;
    assert!(
        error.contains("AddressNotAdmitted") || error.contains("10.244.8.5"),
        "{error}"
    );
    let note = eventually("a Warning Event", || async {
        c.events_about("web", "intruder")
            .await
            .into_iter()
            .find(|(reason, _)| reason == "AddressNotAdmitted")
            .map(|(_, note)| note)
    })
    .await;
    assert!(
        note.contains("pod web/intruder") && note.contains("payments"),
        "{note}"
    );
    // Nobody else gets either address, and the trusted one is recorded for no one.
    for i in 0..12 {
        let name = format!("p{i}");
        c.create(pod(&name).in_ns("shop").on_node("node-1")).await;
        let got = c.wait_assigned("shop", &name).await.ipv4.unwrap();
        assert_ne!(got.address.to_string(), "10.244.0.10");
    }
    assert!(
        !c.recorded()
            .await
            .iter()
            .any(|(a, _)| a.to_string() == "10.244.8.5")
    );
}

#[tokio::test]
async fn the_api_server_refuses_an_allocation_key_outside_the_block() {
    let c = setup().await;
    let _controller = c.controller(settings()).await;
    c.create(pod("web").in_ns("shop").on_node("node-1")).await;
    let web = c.wait_assigned("shop", "web").await.ipv4.unwrap();
    let name = block_of(&c, web.address).await.name_any();
    let records = |key: &str| {
        [
            json!({"spec": {"holders": {key: "shop/ghost forged 1"}}}),
            json!({"spec": {"allocations": {key: {
                "handle": "forged", "namespace": "shop", "pod": "ghost", "sequence": 1
            }}}}),
        ]
    };
    for (key, record) in ["999", "64", "007", "-1", "x"]
        .into_iter()
        .flat_map(|key| records(key).map(|r| (key, r)))
    {
        let refused = blocks(&c)
            .patch(&name, &PatchParams::default(), &Patch::Merge(record))
            .await
            .unwrap_err();
        let kube::Error::Api(status) = refused else {
            panic!("{key}: {refused}")
        };
        assert_eq!(status.code, 422, "{key}: {status:?}");
        assert!(
            status
                .message
                .contains("ordinal of an address in the block"),
            "{key}: {}",
            status.message
        );
    }
    // The highest ordinal of a /26 is fine.
    for record in records("63") {
        blocks(&c)
            .patch(&name, &PatchParams::default(), &Patch::Merge(record))
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn a_block_written_by_the_controller_keeps_no_managed_fields() {
    let c = setup().await;
    let _controller = c.controller(settings()).await;
    let mut last = None;
    for name in ["a", "b", "c"] {
        c.create(pod(name).in_ns("shop").on_node("node-1")).await;
        last = c.wait_assigned("shop", name).await.ipv4;
    }
    let block = block_of(&c, last.unwrap().address).await;
    assert_eq!(block.spec.allocated(), 3);
    // The create recorded the creator's fields; every later write cleared them.
    assert!(
        block
            .metadata
            .managed_fields
            .as_ref()
            .is_none_or(|m| m.is_empty()),
        "{:?}",
        block.metadata.managed_fields
    );
}

/// A block as rangepool 0.1 wrote it, records in `allocations` (one with the container an
/// earlier plugin claimed it with), keeps working after the upgrade: its pod keeps its address,
/// and the controller's first write of the block moves every record to `holders`.
#[tokio::test]
async fn a_block_of_an_earlier_version_moves_to_holders_on_its_first_write() {
    let c = setup().await;
    let old = c.create(pod("old").in_ns("shop").on_node("node-1")).await;
    let uid = old.uid().unwrap();
    c.plane
        .apply(&json!({
            "apiVersion": "rangepool.dev/v1", "kind": "IPAMBlock",
            "metadata": {"name": "10-244-0-0-26"},
            "spec": {
                "cidr": "10.244.0.0/26", "pool": "general", "affinity": "node-1",
                "sequenceNumber": 1,
                "allocations": {"3": {
                    "handle": uid, "namespace": "shop", "pod": "old",
                    "container": "sandbox-1", "sequence": 1
                }}
            }
        }))
        .await
        .unwrap();
    let address: IpAddr = "10.244.0.3".parse().unwrap();
    let assignment = api::Assignment {
        ipv4: Some(api::FamilyAssignment {
            address,
            pool: "general".into(),
            block: "10-244-0-0-26".into(),
        }),
        ..Default::default()
    };
    for (key, value) in assignment.to_annotations() {
        c.annotate_pod("shop", "old", key, &value.unwrap_or_default())
            .await;
    }

    let _controller = c.controller(settings()).await;
    c.create(pod("new").in_ns("shop").on_node("node-1")).await;
    let new = c.wait_assigned("shop", "new").await.ipv4.unwrap();
    assert!(in_net(new.address, "10.244.0.0/26"), "{new:?}");
    assert_ne!(new.address, address);
    let block = blocks(&c).get("10-244-0-0-26").await.unwrap();
    assert!(block.spec.allocations.is_empty(), "{:?}", block.spec);
    assert_eq!(block.spec.holders.len(), 2, "{:?}", block.spec.holders);
    assert_eq!(block.spec.holders["3"], format!("shop/old {uid} 1"));
    assert_eq!(
        c.wait_assigned("shop", "old").await.ipv4.unwrap().address,
        address
    );
    assert!(block.finalizers().iter().any(|f| f == FINALIZER));
}
