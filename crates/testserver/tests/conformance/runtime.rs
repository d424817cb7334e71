//! kube-runtime against the server, unchanged: watcher (list-watch and streaming list), relist
//! after 410, reflector, and a small Controller.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher::{self, Event};
use kube::runtime::{WatchStreamExt, reflector};
use serde_json::json;

use crate::common::*;

fn cm_labeled(name: &str, watched: &str) -> ConfigMap {
    serde_json::from_value(json!({"metadata": {"name": name, "labels": {"watched": watched}}}))
        .unwrap()
}

fn cm(name: &str) -> ConfigMap {
    serde_json::from_value(json!({"metadata": {"name": name}})).unwrap()
}

async fn wait_for<F: Fn() -> bool>(what: &str, f: F) {
    for _ in 0..800 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test]
async fn watcher_relists_after_410_and_reflector_stays_consistent() {
    let (server, client) = server().await;
    let cms: Api<ConfigMap> = Api::default_namespaced(client.clone());
    cms.create(&PostParams::default(), &cm_labeled("a", "yes"))
        .await
        .unwrap();
    let (reader, writer) = reflector::store::<ConfigMap>();
    let inits = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = inits.clone();
    let stream = watcher::watcher(
        cms.clone(),
        watcher::Config::default().labels("watched=yes"),
    )
    .map(move |e| {
        if matches!(e, Ok(Event::Init)) {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
        e
    })
    .reflect(writer)
    .boxed();
    let task = tokio::spawn(stream.for_each(|_| async {}));
    reader.wait_until_ready().await.unwrap();
    assert_eq!(reader.state().len(), 1);
    // writes the watcher does not select move the resourceVersion on; once history is gone its
    // resume point is too old: 410 Gone, and it relists
    cms.create(&PostParams::default(), &cm_labeled("b", "yes"))
        .await
        .unwrap();
    wait_for("b seen", || reader.state().len() == 2).await;
    cms.create(&PostParams::default(), &cm_labeled("unrelated", "no"))
        .await
        .unwrap();
    server.faults().compact();
    server.faults().drop_watches();
    wait_for("relist", || {
        inits.load(std::sync::atomic::Ordering::SeqCst) >= 2
    })
    .await;
    cms.create(&PostParams::default(), &cm_labeled("c", "yes"))
        .await
        .unwrap();
    cms.delete("a", &Default::default()).await.unwrap();
    wait_for("reflector catches up", || {
        let mut names: Vec<String> = reader
            .state()
            .iter()
            .map(|c| c.metadata.name.clone().unwrap())
            .collect();
        names.sort();
        names == ["b", "c"]
    })
    .await;
    task.abort();
}

#[tokio::test]
async fn streaming_list_watcher_gets_init_done() {
    let (_server, client) = server().await;
    let cms: Api<ConfigMap> = Api::default_namespaced(client.clone());
    cms.create(&PostParams::default(), &cm("a")).await.unwrap();
    let mut s = watcher::watcher(cms.clone(), watcher::Config::default().streaming_lists()).boxed();
    let mut seen = Vec::new();
    while let Some(e) = tokio::time::timeout(Duration::from_secs(10), s.next())
        .await
        .unwrap()
    {
        match e.unwrap() {
            Event::Init => seen.push("init".to_string()),
            Event::InitApply(c) => seen.push(c.metadata.name.unwrap()),
            Event::InitDone => {
                seen.push("done".into());
                break;
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(seen, ["init", "a", "done"]);
    cms.create(&PostParams::default(), &cm("b")).await.unwrap();
    match tokio::time::timeout(Duration::from_secs(10), s.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap()
    {
        Event::Apply(c) => assert_eq!(c.metadata.name.as_deref(), Some("b")),
        other => panic!("{other:?}"),
    }
}

#[derive(Debug, thiserror::Error)]
#[error("kube: {0}")]
struct ReconcileError(#[from] kube::Error);

#[tokio::test]
async fn a_controller_reconciles_through_the_server() {
    let (_server, client) = server().await;
    let cms: Api<ConfigMap> = Api::default_namespaced(client.clone());
    cms.create(&PostParams::default(), &cm("one"))
        .await
        .unwrap();
    let ctx = Arc::new(cms.clone());
    let reconcile = |obj: Arc<ConfigMap>, api: Arc<Api<ConfigMap>>| async move {
        let name = obj.metadata.name.clone().unwrap_or_default();
        let patch = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "annotations": {"seen-by": "controller"}}});
        api.patch(
            &name,
            &PatchParams::apply("test-controller").force(),
            &Patch::Apply(&patch),
        )
        .await?;
        Ok::<_, ReconcileError>(Action::await_change())
    };
    let error_policy = |_: Arc<ConfigMap>, _: &ReconcileError, _: Arc<Api<ConfigMap>>| {
        Action::requeue(Duration::from_millis(100))
    };
    let task = tokio::spawn(
        Controller::new(cms.clone(), watcher::Config::default())
            .run(reconcile, error_policy, ctx)
            .for_each(|_| async {}),
    );
    cms.create(&PostParams::default(), &cm("two"))
        .await
        .unwrap();
    for name in ["one", "two"] {
        let mut ok = false;
        for _ in 0..800 {
            let c = cms.get(name).await.unwrap();
            if c.metadata
                .annotations
                .unwrap_or_default()
                .get("seen-by")
                .map(String::as_str)
                == Some("controller")
            {
                ok = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        assert!(ok, "{name} reconciled");
    }
    task.abort();
}

#[tokio::test]
async fn event_recorder_events_show_on_the_core_api() {
    use k8s_openapi::api::core::v1::Event as CoreEvent;
    use kube::Resource;
    use kube::runtime::events::{Event as REvent, EventType, Recorder, Reporter};
    let (_server, client) = server().await;
    let p = create_pod(&client, pod("web").build()).await;
    let reporter = Reporter {
        controller: "rangepool.dev/controller".into(),
        instance: Some("c-0".into()),
    };
    let recorder = Recorder::new(client.clone(), reporter);
    let ev = REvent {
        type_: EventType::Warning,
        reason: "NoPool".into(),
        note: Some("no pool matches".into()),
        action: "Allocate".into(),
        secondary: None,
    };
    let reference = p.object_ref(&());
    recorder.publish(&ev, &reference).await.unwrap();
    recorder.publish(&ev, &reference).await.unwrap();
    let events: Api<CoreEvent> = Api::default_namespaced(client);
    let lp = kube::api::ListParams::default().fields(&format!(
        "involvedObject.uid={}",
        p.metadata.uid.clone().unwrap()
    ));
    let list = events.list(&lp).await.unwrap();
    assert_eq!(
        list.items.len(),
        1,
        "the second publish updates the same event (series)"
    );
    let e = &list.items[0];
    assert_eq!(e.reason.as_deref(), Some("NoPool"));
    assert_eq!(e.message.as_deref(), Some("no pool matches"));
    assert_eq!(e.type_.as_deref(), Some("Warning"));
    assert_eq!(e.series.as_ref().and_then(|s| s.count), Some(2), "{e:?}");
}

#[tokio::test]
async fn metadata_watcher_gets_partial_objects() {
    let (_server, client) = server().await;
    let cms: Api<ConfigMap> = Api::default_namespaced(client.clone());
    cms.create(&PostParams::default(), &cm("a")).await.unwrap();
    let metas: Api<kube::core::PartialObjectMeta<ConfigMap>> =
        Api::default_namespaced(client.clone());
    let mut s = watcher::watcher(metas, watcher::Config::default()).boxed();
    let mut names = Vec::new();
    while let Some(e) = tokio::time::timeout(Duration::from_secs(10), s.next())
        .await
        .unwrap()
    {
        match e.unwrap() {
            Event::InitApply(m) => names.push(m.metadata.name.unwrap()),
            Event::InitDone => break,
            _ => {}
        }
    }
    assert_eq!(names, ["a"]);
    cms.create(&PostParams::default(), &cm("b")).await.unwrap();
    match tokio::time::timeout(Duration::from_secs(10), s.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap()
    {
        Event::Apply(m) => {
            assert_eq!(m.metadata.name.as_deref(), Some("b"));
            assert_eq!(
                m.types.map(|t| t.kind).as_deref(),
                Some("PartialObjectMetadata")
            );
        }
        other => panic!("{other:?}"),
    }
}
