//! Fixed, reserved, cooling and sticky addresses on the real control plane: a pod gets the
//! address it asks for (`cni.projectcalico.org/ipAddrs`) only under the trust rules; an
//! IPReservation keeps addresses from every pod and is counted on the pool; a released address
//! cools down, also across a controller restart; a StatefulSet's pod gets its address back when
//! it is deleted and re-created, and loses it when the StatefulSet shrinks below it or goes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::IpAddr;
use std::time::Duration;

use api::{IPReservation, IPReservationSpec, keys};
use common::*;
use ipam::fixed::{FLOATING_IPS, IP_ADDRS, IP_ADDRS_NO_IPAM};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{Binding, ObjectReference, Pod};
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt};
use serde_json::json;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

async fn setup() -> Cluster {
    let c = Cluster::new().await;
    c.node("node-1", &[]).await;
    c.node("node-2", &[]).await;
    c.namespace("pay", &[("team", "payments")], &[]).await;
    c.namespace("web", &[("team", "web")], &[]).await;
    let mut payments = manual("10.244.8.0/24");
    payments.namespace_selector = Some("team == 'payments'".into());
    c.pool("payments", payments).await;
    c.pool("general", spec("10.244.0.0/24")).await;
    c
}

#[tokio::test]
async fn a_pod_gets_the_address_it_asks_for_only_from_a_pool_that_admits_it() {
    let c = setup().await;
    let _controller = c.controller(settings()).await;
    c.create(
        pod("db")
            .in_ns("pay")
            .on_node("node-1")
            .annotated(keys::IPV4_POOLS, r#"["payments"]"#)
            .annotated(IP_ADDRS, r#"["10.244.8.10"]"#),
    )
    .await;
    // The firewall allows exactly this host.
    assert_eq!(
        c.wait_assigned("pay", "db").await.ipv4.unwrap().address,
        ip("10.244.8.10")
    );
    // Another node's block may hold the address asked for.
    c.create(pod("a").in_ns("web").on_node("node-1")).await;
    c.wait_assigned("web", "a").await;
    c.create(
        pod("b")
            .in_ns("web")
            .on_node("node-2")
            .annotated(IP_ADDRS, r#"["10.244.0.5"]"#),
    )
    .await;
    let b = c.wait_assigned("web", "b").await.ipv4.unwrap();
    assert_eq!(b.address, ip("10.244.0.5"));

    // Refused, each with its reason in the Event and the error annotation.
    let refused = [
        (
            pod("reach")
                .in_ns("web")
                .annotated(keys::IPV4_POOLS, r#"["payments"]"#)
                .annotated(IP_ADDRS, r#"["10.244.8.11"]"#),
            "AddressNotAllowed",
            "namespaceSelector",
        ),
        (
            pod("taken")
                .in_ns("web")
                .annotated(IP_ADDRS, r#"["10.244.0.5"]"#),
            "AddressTaken",
            "web/b",
        ),
        (
            pod("outside")
                .in_ns("web")
                .annotated(IP_ADDRS, r#"["10.250.0.1"]"#),
            "AddressOutsidePools",
            "no IP pool",
        ),
        (
            pod("noipam")
                .in_ns("web")
                .annotated(IP_ADDRS_NO_IPAM, r#"["10.244.0.9"]"#),
            "IpAddrsNoIpamNotSupported",
            "not supported",
        ),
    ];
    for (p, reason, detail) in refused {
        let name = p.build().name_any();
        c.create(p.on_node("node-1")).await;
        let error = c.wait_error("web", &name).await;
        assert!(
            error.contains(&format!("pod web/{name}")) && error.contains(detail),
            "{error}"
        );
        let events = eventually("the Warning Event", || async {
            let events = c.events_about("web", &name).await;
            events.iter().any(|(r, _)| r == reason).then_some(events)
        })
        .await;
        assert!(
            events.iter().any(|(_, note)| note.contains(detail)),
            "{events:?}"
        );
    }
    // floatingIPs: reported, and the pod gets an address as usual.
    c.create(
        pod("floating")
            .in_ns("web")
            .on_node("node-1")
            .annotated(FLOATING_IPS, r#"["1.2.3.4"]"#),
    )
    .await;
    c.wait_assigned("web", "floating").await;
    eventually("the floatingIPs Event", || async {
        c.events_about("web", "floating")
            .await
            .iter()
            .any(|(r, _)| r == "FloatingIPsNotHonoured")
            .then_some(())
    })
    .await;
}

#[tokio::test]
async fn reserved_addresses_go_to_no_pod_and_are_counted_on_the_pool() {
    let c = setup().await;
    let reservations: Api<IPReservation> = Api::all(c.client.clone());
    reservations
        .create(
            &PostParams::default(),
            &IPReservation::new(
                "appliances",
                IPReservationSpec {
                    reserved_cidrs: vec!["10.244.0.0/30".into(), "10.244.0.5".into()],
                },
            ),
        )
        .await
        .unwrap();
    let _controller = c.controller(settings()).await;
    let mut got = Vec::new();
    for i in 0..3 {
        let name = format!("p{i}");
        c.create(pod(&name).in_ns("web").on_node("node-1")).await;
        got.push(c.wait_assigned("web", &name).await.ipv4.unwrap().address);
    }
    assert_eq!(got, [ip("10.244.0.4"), ip("10.244.0.6"), ip("10.244.0.7")]);
    eventually(
        "the pool's status to count the reserved addresses",
        || async {
            let pool = c.get_pool("general").await?;
            (pool.status?.reserved == Some(5)).then_some(())
        },
    )
    .await;
    // A pod asking for a reserved address is refused.
    c.create(
        pod("asks")
            .in_ns("web")
            .on_node("node-1")
            .annotated(IP_ADDRS, r#"["10.244.0.1"]"#),
    )
    .await;
    assert!(c.wait_error("web", "asks").await.contains("reserved"));
    // A reservation made later leaves the holder its address, and is reported on the pod.
    reservations
        .create(
            &PostParams::default(),
            &IPReservation::new(
                "later",
                IPReservationSpec {
                    reserved_cidrs: vec!["10.244.0.6".into()],
                },
            ),
        )
        .await
        .unwrap();
    eventually("the holder to be reported", || async {
        c.events_about("web", "p1")
            .await
            .iter()
            .any(|(r, _)| r == "ReservedAddressHeld")
            .then_some(())
    })
    .await;
    assert_eq!(
        c.wait_assigned("web", "p1").await.ipv4.unwrap().address,
        ip("10.244.0.6")
    );
}

#[tokio::test]
async fn a_released_address_cools_down_also_across_a_restart() {
    let c = setup().await;
    let mut s = settings();
    s.ip_cooldown = Duration::from_secs(3600);
    let controller = c.controller(s.clone()).await;
    c.create(pod("a").in_ns("web").on_node("node-1")).await;
    let a = c.wait_assigned("web", "a").await.ipv4.unwrap().address;
    c.delete_pod_and_wait_gone("web", "a").await;
    // The release time is in the block.
    eventually("the release to be recorded in the block", || async {
        let released = c
            .blocks()
            .await
            .into_iter()
            .any(|b| b.spec.released.contains_key(&ordinal(&b.spec.cidr, a)));
        released.then_some(())
    })
    .await;
    controller.stop().await;
    let _controller = c.controller(s).await;
    for i in 0..3 {
        let name = format!("n{i}");
        c.create(pod(&name).in_ns("web").on_node("node-1")).await;
        let got = c.wait_assigned("web", &name).await.ipv4.unwrap().address;
        assert_ne!(got, a, "{name} got {a} within the cooldown");
    }
}

fn ordinal(cidr: &str, address: IpAddr) -> String {
    ipam::cidr::ordinal_of(&cidr.parse().unwrap(), address)
        .map(|o| o.to_string())
        .unwrap_or_default()
}

/// A StatefulSet `db` in namespace `web` with `replicas`, its pods created in parallel by the
/// real StatefulSet controller.
async fn statefulset(c: &Cluster, replicas: i32) -> StatefulSet {
    let sts: StatefulSet = serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": {"name": "db", "namespace": "web"},
        "spec": {
            "replicas": replicas,
            "serviceName": "db",
            "podManagementPolicy": "Parallel",
            "selector": {"matchLabels": {"app": "db"}},
            "template": {
                "metadata": {
                    "labels": {"app": "db"},
                    "annotations": {keys::IPV4_POOLS: "[\"db\"]"}
                },
                "spec": {"containers": [{"name": "db", "image": "db:1"}]}
            }
        }
    }))
    .unwrap();
    Api::<StatefulSet>::namespaced(c.client.clone(), "web")
        .create(&PostParams::default(), &sts)
        .await
        .unwrap()
}

/// Binds every pod of namespace `web` that no node runs yet to `node-1`, as a scheduler would.
async fn bind_all(c: &Cluster) {
    let pods: Api<Pod> = Api::namespaced(c.client.clone(), "web");
    for p in pods.list(&ListParams::default()).await.unwrap() {
        if p.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_some() {
            continue;
        }
        let binding = Binding {
            metadata: kube::api::ObjectMeta {
                name: Some(p.name_any()),
                namespace: Some("web".into()),
                ..Default::default()
            },
            target: ObjectReference {
                kind: Some("Node".into()),
                name: Some("node-1".into()),
                ..Default::default()
            },
        };
        let _ = pods
            .create_subresource::<Binding, serde_json::Value>(
                "binding",
                &p.name_any(),
                &PostParams::default(),
                &binding,
            )
            .await;
    }
}

/// Waits until the StatefulSet's pod `name` exists with another UID than `old`, is bound and
/// has an address; returns the address.
async fn member(c: &Cluster, name: &str, old: Option<&str>) -> IpAddr {
    eventually(&format!("{name} to run with an address"), || async {
        bind_all(c).await;
        let p = c.get_pod("web", name).await?;
        if old.is_some_and(|o| p.uid().as_deref() == Some(o)) {
            return None;
        }
        let a = api::Assignment::from_annotations(p.annotations()).ok()?;
        a.ipv4.map(|v4| v4.address)
    })
    .await
}

#[tokio::test]
async fn a_statefulset_pod_gets_its_address_back_until_the_statefulset_shrinks_below_it() {
    let c = Cluster::with(envtest::Options {
        controller_manager: true,
        all_controllers: true,
        ..Default::default()
    })
    .await;
    c.node("node-1", &[]).await;
    c.namespace("web", &[], &[]).await;
    let mut db = spec("10.244.4.0/24");
    db.sticky_stateful_sets = true;
    c.pool("db", db).await;
    c.pool("general", spec("10.244.0.0/24")).await;
    let _controller = c.controller(settings()).await;
    statefulset(&c, 3).await;
    let mut addresses = Vec::new();
    for i in 0..3 {
        addresses.push(member(&c, &format!("db-{i}"), None).await);
    }

    // db-1 deleted: the StatefulSet controller creates it again, with its address.
    let old = c.get_pod("web", "db-1").await.unwrap().uid().unwrap();
    c.delete_pod("web", "db-1").await;
    assert_eq!(member(&c, "db-1", Some(&old)).await, addresses[1]);
    // A pod of another name never gets a parked address.
    c.create(
        pod("other")
            .in_ns("web")
            .on_node("node-1")
            .annotated(keys::IPV4_POOLS, r#"["db"]"#),
    )
    .await;
    let other = c.wait_assigned("web", "other").await.ipv4.unwrap().address;
    assert!(!addresses.contains(&other), "{other}");

    // Scaled to 1: db-1 and db-2 go, their addresses are released at the next sweeps.
    let sts: Api<StatefulSet> = Api::namespaced(c.client.clone(), "web");
    sts.patch(
        "db",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"replicas": 1}})),
    )
    .await
    .unwrap();
    eventually("the addresses of db-1 and db-2 to be released", || async {
        let held: Vec<IpAddr> = c.recorded().await.into_iter().map(|(a, _)| a).collect();
        (!held.contains(&addresses[1]) && !held.contains(&addresses[2])).then_some(())
    })
    .await;
    assert!(c.recorded().await.iter().any(|(a, _)| *a == addresses[0]));

    // The StatefulSet deleted: db-0's address goes too once its pod does.
    sts.delete("db", &DeleteParams::default()).await.unwrap();
    eventually("db-0's address to be released", || async {
        let held: Vec<IpAddr> = c.recorded().await.into_iter().map(|(a, _)| a).collect();
        (!held.contains(&addresses[0])).then_some(())
    })
    .await;
}
