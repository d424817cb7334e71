//! Crash safety: the controller is killed at random points during a burst of pods, with some of
//! its writes answered with 409 and 500 by the fault proxy, and restarted; at the end nothing is
//! lost and nothing is held twice.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use common::*;
use envtest::faults::FailWrites;
use futures::StreamExt;
use kube::ResourceExt;

const PODS: usize = 200;
const NODES: usize = 10;
const ROUNDS: usize = 20;

/// A small deterministic generator; the seed is printed so a failure can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_controller_at_random_points_loses_nothing_and_duplicates_nothing() {
    let seed = std::env::var("CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    println!("CRASH_SEED={seed}");
    let mut rng = Rng(seed);

    let c = Cluster::with_faults().await;
    for n in 0..NODES {
        c.node(&format!("node-{n}"), &[]).await;
    }
    c.namespace("burst", &[], &[]).await;
    c.pool("general", spec("10.244.0.0/20")).await;

    // The burst arrives in waves, one per round, each while a controller is working on it, so
    // that every kill lands in the middle of assignments.
    let mut deleted = HashSet::new();
    let mut progress = Vec::new();
    let per_round = PODS / ROUNDS;
    for round in 0..ROUNDS {
        let controller = c.controller(settings()).await;
        let wave = (round * per_round..(round + 1) * per_round).map(|i| {
            let c = &c;
            async move {
                c.create(
                    pod(&format!("p{i}"))
                        .in_ns("burst")
                        .on_node(&format!("node-{}", i % NODES)),
                )
                .await;
            }
        });
        futures::stream::iter(wave)
            .buffer_unordered(per_round)
            .collect::<Vec<_>>()
            .await;
        // Now and then an earlier pod goes away mid-flight.
        if round % 4 == 1 {
            let victim = format!("p{}", rng.below((round * per_round) as u64));
            if deleted.insert(victim.clone()) {
                c.delete_pod("burst", &victim).await;
            }
        }
        // Only the controller's client goes through the proxy: the faults hit its next writes.
        if round % 3 == 0 {
            c.faults()
                .fail_writes(FailWrites::new("rangepool.dev", "ipamblocks", 409, 2));
            c.faults().fail_writes(FailWrites::new("", "pods", 500, 2));
        }
        // The kill comes at a random moment once the controller commits this wave: between its
        // block writes and its pod patches, or among them.
        let wave: Vec<String> = (round * per_round..(round + 1) * per_round)
            .map(|i| format!("p{i}"))
            .collect();
        first_commit_of(&c, &wave).await;
        tokio::time::sleep(Duration::from_millis(rng.below(120))).await;
        controller.kill();
        let assigned = count_assigned(&c).await;
        println!(
            "round {round}: killed with {assigned} of {} pods annotated",
            (round + 1) * per_round
        );
        progress.push((assigned, (round + 1) * per_round));
        c.faults().clear();
    }
    // The kills must have hit pods still being assigned, or this test shows nothing.
    assert!(
        progress
            .iter()
            .filter(|(assigned, created)| assigned < created)
            .count()
            >= ROUNDS / 4,
        "too few kills came while pods were waiting: {progress:?}"
    );
    // ... and after the killed controllers had annotated some, or it shows one clean run only.
    let grew = progress.windows(2).filter(|w| w[1].0 > w[0].0).count();
    assert!(
        grew >= ROUNDS / 4,
        "too few controllers got anywhere before they were killed: {progress:?}"
    );
    c.faults().clear();

    let _controller = c.controller(settings()).await;
    let live: Vec<String> = (0..PODS)
        .map(|i| format!("p{i}"))
        .filter(|p| !deleted.contains(p))
        .collect();
    let mut uids = HashMap::new();
    for name in &live {
        c.wait_assigned("burst", name).await;
        uids.insert(
            c.get_pod("burst", name)
                .await
                .unwrap()
                .metadata
                .uid
                .unwrap(),
            name.clone(),
        );
    }

    // Leaks of the deleted pods go after the grace period; then the blocks hold exactly the
    // live pods, each once, each matching its annotation.
    let recorded = eventually("blocks to hold exactly the live pods", || async {
        let recorded = c.recorded().await;
        (recorded.len() == live.len()).then_some(recorded)
    })
    .await;
    let addresses: HashSet<_> = recorded.iter().map(|(a, _)| *a).collect();
    assert_eq!(
        addresses.len(),
        recorded.len(),
        "an address is held twice (seed {seed})"
    );
    let handles: HashSet<_> = recorded.iter().map(|(_, h)| h.clone()).collect();
    assert_eq!(
        handles.len(),
        recorded.len(),
        "a pod holds two addresses (seed {seed})"
    );
    for (address, handle) in &recorded {
        let name = uids.get(handle).unwrap_or_else(|| {
            panic!("allocation of {address} for {handle} lacks its pod (seed {seed})")
        });
        let pod = c.get_pod("burst", name).await.unwrap();
        let a = api::Assignment::from_annotations(pod.annotations())
            .unwrap()
            .ipv4
            .unwrap();
        assert_eq!(
            &a.address, address,
            "pod {name}'s annotation differs from its block (seed {seed})"
        );
        assert!(in_net(a.address, "10.244.0.0/20"));
    }
}

async fn count_assigned(c: &Cluster) -> usize {
    let pods: kube::Api<k8s_openapi::api::core::v1::Pod> =
        kube::Api::namespaced(c.client.clone(), "burst");
    let list = pods.list(&Default::default()).await.unwrap();
    list.items
        .iter()
        .filter(|p| p.annotations().contains_key(api::keys::ASSIGNED_IPV4))
        .count()
}

/// Waits until a block records an address for one of `pods`, polling faster than
/// [`eventually`] so that the kill that follows can still land before the pod patches.
async fn first_commit_of(c: &Cluster, pods: &[String]) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let committed = c.blocks().await.iter().any(|b| {
            b.spec.to_record().is_ok_and(|r| {
                r.allocations
                    .iter()
                    .any(|a| a.namespace == "burst" && pods.contains(&a.pod))
            })
        });
        if committed {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no controller wrote a block for {pods:?}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
