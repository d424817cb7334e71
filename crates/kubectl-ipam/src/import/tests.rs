#![allow(clippy::unwrap_used)]

use super::*;

fn pools_of(c: &Conversion) -> Vec<&str> {
    c.pools
        .iter()
        .map(|p| p.metadata.name.as_deref().unwrap())
        .collect()
}

fn remarks(c: &Conversion) -> Vec<String> {
    c.remarks.iter().map(ToString::to_string).collect()
}

#[test]
fn effective_fields_are_kept_inert_ones_listed_and_unknown_ones_dropped() {
    let c = convert(
        "apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: p, labels: {a: b}}\nspec:\n  cidr: 10.1.0.0/24\n  blockSize: 28\n  natOutgoing: true\n  awsSubnetID: subnet-1\n  futureField: 3\n",
        "f.yaml",
    )
    .unwrap();
    assert_eq!(pools_of(&c), ["p"]);
    let p = &c.pools[0];
    assert_eq!(p.spec.cidr, "10.1.0.0/24");
    assert_eq!(p.spec.block_size, Some(28));
    assert_eq!(p.spec.nat_outgoing, Some(true));
    assert_eq!(
        p.metadata
            .labels
            .as_ref()
            .unwrap()
            .get("a")
            .map(String::as_str),
        Some("b")
    );
    let r = remarks(&c);
    assert_eq!(r.len(), 3, "{r:#?}");
    assert!(
        r[0].starts_with("pool p: awsSubnetID (subnet-1): dropped"),
        "{r:#?}"
    );
    assert!(
        r[1].starts_with("pool p: futureField (3): dropped"),
        "{r:#?}"
    );
    assert!(
        r[2].starts_with("pool p: natOutgoing (true): kept, no effect here"),
        "{r:#?}"
    );
}

#[test]
fn a_pool_the_core_refuses_is_reported_with_its_reason() {
    let c = convert(
        "apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: v6}\nspec: {cidr: 'fd00::/64', ipipMode: Always}\n---\napiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: ok}\nspec: {cidr: 10.0.0.0/24}\n",
        "f.yaml",
    )
    .unwrap();
    assert_eq!(pools_of(&c), ["ok"]);
    assert_eq!(c.refused.len(), 1);
    assert_eq!(c.refused[0].pool, "v6");
    assert_eq!(c.refused[0].reason, "InvalidField");
    assert!(c.refused[0].message.contains("IPv6"), "{:?}", c.refused);
}

#[test]
fn pools_without_workload_or_overlapping_get_warnings() {
    let c = convert(
        "apiVersion: crd.projectcalico.org/v1\nkind: IPPoolList\nitems:\n- apiVersion: crd.projectcalico.org/v1\n  kind: IPPool\n  metadata: {name: a}\n  spec: {cidr: 10.0.0.0/16}\n- apiVersion: crd.projectcalico.org/v1\n  kind: IPPool\n  metadata: {name: b}\n  spec: {cidr: 10.0.8.0/24, allowedUses: [Tunnel]}\n",
        "f.yaml",
    )
    .unwrap();
    assert_eq!(pools_of(&c), ["a", "b"]);
    let r = remarks(&c);
    assert!(
        r.iter()
            .any(|x| x.contains("allowedUses Tunnel: kept, no effect")),
        "{r:#?}"
    );
    assert!(r.iter().any(|x| x.contains("lacks Workload")), "{r:#?}");
    assert!(
        r.iter()
            .any(|x| x.starts_with("pool b: warning: its range 10.0.8.0/24 overlaps pool a")),
        "{r:#?}"
    );
}

#[test]
fn a_file_without_calico_pools_is_an_input_error() {
    let err = convert(
        "apiVersion: rangepool.dev/v1\nkind: IPPool\nmetadata: {name: mine}\nspec: {cidr: 10.0.0.0/24}\n",
        "f.yaml",
    )
    .unwrap_err();
    assert!(matches!(err, InputError::Empty(..)), "{err}");
    assert!(matches!(
        convert("a: [", "f.yaml").unwrap_err(),
        InputError::Syntax(..)
    ));
}

#[test]
fn the_output_is_rangepool_yaml_that_reads_back_as_the_same_pools() {
    let c = convert(
        "apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: p, resourceVersion: '9'}\nspec: {cidr: 10.1.0.0/24, assignmentMode: Manual, namespaceSelector: \"team == 'pay'\"}\n",
        "f.yaml",
    )
    .unwrap();
    let text = render(&c.pools, "f.yaml").unwrap();
    assert!(text.contains("apiVersion: rangepool.dev/v1"), "{text}");
    assert!(!text.contains("resourceVersion"), "{text}");
    let back: Vec<IPPool> = serde_saphyr::from_multiple(&text).unwrap();
    assert_eq!(back, c.pools);
}

#[test]
fn every_field_the_core_knows_is_kept() {
    let value = |field: SpecField| match field {
        SpecField::Cidr => "10.1.0.0/24",
        SpecField::BlockSize => "28",
        SpecField::NodeSelector => "\"zone == 'a'\"",
        SpecField::NamespaceSelector => "\"team == 'pay'\"",
        SpecField::Disabled => "true",
        SpecField::AssignmentMode => "Manual",
        SpecField::AllowedUses => "[Workload]",
        SpecField::NatOutgoing => "true",
        SpecField::IpipMode => "CrossSubnet",
        SpecField::VxlanMode => "Never",
        SpecField::DisableBgpExport => "true",
        SpecField::ReserveEdgeAddresses => "Pool",
        SpecField::StickyStatefulSets => "true",
    };
    let spec: Vec<String> = SpecField::ALL
        .iter()
        .map(|&f| format!("  {}: {}\n", f.name(), value(f)))
        .collect();
    let c = convert(
        &format!(
            "apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {{name: p}}\nspec:\n{}",
            spec.concat()
        ),
        "f.yaml",
    )
    .unwrap();
    assert!(c.refused.is_empty(), "{:?}", c.refused);
    assert_eq!(pools_of(&c), ["p"]);
    let out = serde_json::to_value(&c.pools[0].spec).unwrap();
    for field in SpecField::ALL {
        assert!(out.get(field.name()).is_some(), "{}: {out}", field.name());
    }
    let r = remarks(&c);
    assert!(!r.iter().any(|x| x.contains("dropped")), "{r:#?}");
}

const RESERVATION: &str = "apiVersion: projectcalico.org/v3\nkind: IPReservation\nmetadata: {name: appliances, uid: 0a1b, labels: {site: dc1}}\nspec:\n  reservedCIDRs: [10.244.8.1, 10.244.8.240/28, 'fd00:10:244::/120']\n  futureField: 1\n";

#[test]
fn a_calico_reservation_keeps_its_ranges_and_reads_back_as_ours() {
    let c = convert(RESERVATION, "f.yaml").unwrap();
    assert!(c.pools.is_empty() && c.refused.is_empty(), "{c:?}");
    assert_eq!(c.reservations.len(), 1);
    let r = &c.reservations[0];
    assert_eq!(r.metadata.name.as_deref(), Some("appliances"));
    assert_eq!(
        r.spec.reserved_cidrs,
        ["10.244.8.1", "10.244.8.240/28", "fd00:10:244::/120"]
    );
    let remarks = remarks(&c);
    assert_eq!(
        remarks,
        [
            "IPReservation appliances: futureField (1): dropped: not an IPReservation field rangepool knows",
            "IPReservation appliances: metadata uid: dropped: set by the API server for the old object",
        ]
    );
    let text = render_all(&c, "f.yaml").unwrap();
    assert!(
        text.contains("apiVersion: rangepool.dev/v1") && text.contains("kind: IPReservation"),
        "{text}"
    );
    assert!(
        !text.contains("uid") && !text.contains("futureField"),
        "{text}"
    );
    let back: Vec<api::IPReservation> = serde_saphyr::from_multiple(&text).unwrap();
    assert_eq!(back, c.reservations);

    // With pools: the pools first, then the reservations, one document each.
    let both = convert(
        &format!(
            "{RESERVATION}---\napiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {{name: p}}\nspec: {{cidr: 10.244.8.0/24}}\n"
        ),
        "f.yaml",
    )
    .unwrap();
    let text = render_all(&both, "f.yaml").unwrap();
    let kinds: Vec<serde_json::Value> = serde_saphyr::from_multiple(&text).unwrap();
    let kinds: Vec<&str> = kinds.iter().map(|d| d["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["IPPool", "IPReservation"]);
}

#[test]
fn a_reservation_entry_the_controller_would_ignore_refuses_the_reservation() {
    let c = convert(
        "apiVersion: crd.projectcalico.org/v1\nkind: IPReservation\nmetadata: {name: sloppy}\nspec: {reservedCIDRs: [10.244.8.1/24, appliance, 10.244.8.7]}\n",
        "f.yaml",
    )
    .unwrap();
    assert!(c.reservations.is_empty());
    assert_eq!(c.refused.len(), 1);
    let r = &c.refused[0];
    assert_eq!(
        (r.pool.as_str(), r.reason),
        ("sloppy", "InvalidReservedCIDR")
    );
    assert!(
        r.message.starts_with("IPReservation sloppy: ")
            && r.message.contains("\"10.244.8.1/24\"")
            && r.message.contains("\"appliance\"")
            && !r.message.contains("10.244.8.7"),
        "{}",
        r.message
    );
}

#[test]
fn pods_and_pod_templates_with_unhonoured_calico_keys_are_warned_about() {
    let text = "
apiVersion: v1
kind: Pod
metadata:
  name: legacy
  namespace: shop
  annotations: {cni.projectcalico.org/ipAddrsNoIpam: '[\"10.9.9.9\"]'}
---
apiVersion: v1
kind: Pod
metadata:
  name: fixed
  namespace: shop
  annotations: {cni.projectcalico.org/ipAddrs: '[\"10.244.8.9\"]'}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: nat, namespace: shop}
spec:
  template:
    metadata:
      annotations: {cni.projectcalico.org/floatingIPs: '[\"1.2.3.4\"]'}
---
apiVersion: batch/v1
kind: CronJob
metadata: {name: nightly}
spec:
  jobTemplate:
    spec:
      template:
        metadata:
          annotations: {cni.projectcalico.org/ipAddrsNoIpam: '[\"10.9.9.8\"]'}
";
    let with_pool = format!(
        "{text}---\napiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {{name: p}}\nspec: {{cidr: 10.244.8.0/24}}\n"
    );
    let c = convert(&with_pool, "f.yaml").unwrap();
    assert_eq!(c.unhonoured.len(), 3, "{:#?}", c.unhonoured);
    assert!(
        c.unhonoured[0].starts_with(
            "pod shop/legacy: annotation cni.projectcalico.org/ipAddrsNoIpam is not supported"
        ),
        "{:#?}",
        c.unhonoured
    );
    assert!(
        c.unhonoured[1].starts_with(
            "Deployment shop/nat: its pod template: annotation cni.projectcalico.org/floatingIPs is not honoured"
        ),
        "{:#?}",
        c.unhonoured
    );
    assert!(
        c.unhonoured[2].starts_with(
            "CronJob default/nightly: its pod template: annotation cni.projectcalico.org/ipAddrsNoIpam is not supported"
        ),
        "{:#?}",
        c.unhonoured
    );

    // Without a pool or reservation the file is refused, and the warnings still come along.
    let Err(InputError::Empty(_, unhonoured)) = convert(text, "f.yaml") else {
        panic!("a file of pods only is not a Calico IPAM export");
    };
    assert_eq!(unhonoured, c.unhonoured);
}
