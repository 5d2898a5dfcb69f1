//! kube-rs watches against the emulator: event order, resuming after dropped watches,
//! relisting after 410 Gone, bookmarks.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use kube::runtime::{WatchStreamExt, reflector, watcher};
use kube_emulator::EmulatorOptions;
use serde_json::json;

mod common;
use common::{Cluster, not_on_real_server};

fn cm(name: &str, value: &str) -> ConfigMap {
    serde_json::from_value(json!({"metadata": {"name": name}, "data": {"v": value}})).unwrap()
}

async fn set(api: &Api<ConfigMap>, name: &str, value: &str) {
    api.patch(
        name,
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"v": value}})),
    )
    .await
    .unwrap();
}

/// Wait (bounded) until `cond` holds, polling.
async fn eventually(mut cond: impl FnMut() -> bool) {
    for _ in 0..500 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("condition not reached in 5s");
}

#[tokio::test]
async fn raw_watch_sees_create_update_delete_in_order() {
    let c = Cluster::start().await;
    let api: Api<ConfigMap> = Api::namespaced(c.client.clone(), &c.ns);
    let list = api.list(&Default::default()).await.unwrap();
    let rv = list.metadata.resource_version.unwrap();
    let mut stream = api
        .watch(&WatchParams::default(), &rv)
        .await
        .unwrap()
        .boxed();
    api.create(&PostParams::default(), &cm("a", "1"))
        .await
        .unwrap();
    set(&api, "a", "2").await;
    api.delete("a", &DeleteParams::default()).await.unwrap();
    let mut seen = Vec::new();
    while seen.len() < 3 {
        let ev = tokio::time::timeout(Duration::from_secs(5), stream.try_next())
            .await
            .expect("event in time")
            .unwrap()
            .expect("stream open");
        match ev {
            WatchEvent::Added(c) => seen.push(format!("added {}", c.data.unwrap()["v"])),
            WatchEvent::Modified(c) => seen.push(format!("modified {}", c.data.unwrap()["v"])),
            WatchEvent::Deleted(c) => seen.push(format!("deleted {}", c.data.unwrap()["v"])),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(seen, ["added 1", "modified 2", "deleted 2"]);
    c.stop().await;
}

#[tokio::test]
async fn watch_from_a_compacted_resource_version_gets_410_gone() {
    // NB: watching a real server from resourceVersion 1 gave this 410 in 20 of 21 runs (the
    // other answer was not captured): whether a version is gone there depends on etcd
    // compaction and the watch cache's window, which a test cannot force.
    if not_on_real_server(
        "watch_from_a_compacted_resource_version_gets_410_gone",
        "forces the emulator to forget its history; a real server's depends on etcd compaction",
    ) {
        return;
    }
    let c = Cluster::start().await;
    let api: Api<ConfigMap> = Api::namespaced(c.client.clone(), &c.ns);
    let rv = api
        .list(&Default::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    api.create(&PostParams::default(), &cm("a", "1"))
        .await
        .unwrap();
    c.emu().faults().compact_history();
    let mut stream = api
        .watch(&WatchParams::default(), &rv)
        .await
        .unwrap()
        .boxed();
    match stream.try_next().await.unwrap() {
        Some(WatchEvent::Error(e)) => {
            assert_eq!(e.code, 410);
            assert_eq!(e.reason, "Expired");
            assert!(
                e.message.starts_with("too old resource version"),
                "{}",
                e.message
            );
        }
        other => panic!("expected a 410 error event, got {other:?}"),
    }
    c.stop().await;
}

#[tokio::test]
async fn bookmarks_arrive_when_allowed() {
    if not_on_real_server(
        "bookmarks_arrive_when_allowed",
        "sets the emulator's bookmark interval; apiserver sends bookmarks about once a minute",
    ) {
        return;
    }
    let opts = EmulatorOptions {
        bookmark_interval: Duration::from_millis(50),
        ..EmulatorOptions::default()
    };
    let c = Cluster::start_with(opts).await;
    let api: Api<ConfigMap> = Api::namespaced(c.client.clone(), &c.ns);
    let rv = api
        .list(&Default::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    let wp = WatchParams::default();
    assert!(wp.bookmarks);
    let mut stream = api.watch(&wp, &rv).await.unwrap().boxed();
    let ev = tokio::time::timeout(Duration::from_secs(5), stream.try_next())
        .await
        .unwrap()
        .unwrap();
    assert!(matches!(ev, Some(WatchEvent::Bookmark(_))), "got {ev:?}");
    c.stop().await;
}

#[tokio::test]
async fn reflector_follows_changes_and_survives_dropped_watches_and_410() {
    let c = Cluster::start().await;
    let api: Api<ConfigMap> = Api::namespaced(c.client.clone(), &c.ns);
    let (reader, writer) = reflector::store::<ConfigMap>();
    let stream = reflector(writer, watcher(api.clone(), watcher::Config::default()))
        .default_backoff()
        .applied_objects();
    let task = tokio::spawn(async move {
        futures::pin_mut!(stream);
        while stream.next().await.is_some() {}
    });
    let value_of = |name: &str| -> Option<String> {
        reader
            .state()
            .into_iter()
            .find(|c| c.metadata.name.as_deref() == Some(name))
            .and_then(|c| c.data.clone())
            .map(|d: BTreeMap<String, String>| d["v"].clone())
    };
    api.create(&PostParams::default(), &cm("a", "1"))
        .await
        .unwrap();
    eventually(|| value_of("a").as_deref() == Some("1")).await;

    // A dropped watch (emulator only: fault injection): changes made while the client
    // reconnects are not lost.
    if let Some(emu) = &c.emu {
        emu.faults().close_watches();
    }
    set(&api, "a", "2").await;
    api.create(&PostParams::default(), &cm("b", "1"))
        .await
        .unwrap();
    eventually(|| value_of("a").as_deref() == Some("2") && value_of("b").is_some()).await;

    // History compacted while disconnected (emulator only): the watcher gets 410 and relists.
    if let Some(emu) = &c.emu {
        emu.faults().compact_history();
        emu.faults().close_watches();
    }
    api.delete("b", &DeleteParams::default()).await.unwrap();
    set(&api, "a", "3").await;
    eventually(|| value_of("a").as_deref() == Some("3") && value_of("b").is_none()).await;
    task.abort();
    c.stop().await;
}

#[tokio::test]
async fn metadata_watcher_sees_secrets_without_their_data() {
    use k8s_openapi::api::core::v1::Secret;
    use kube::api::ListParams;
    use kube::core::PartialObjectMeta;
    let c = Cluster::start().await;
    let client = c.client.clone();
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &c.ns);
    let s: Secret = serde_json::from_value(json!({"metadata": {"name": "cs", "labels": {"k": "v"}}, "stringData": {"clientSecret": "x"}})).unwrap();
    secrets.create(&PostParams::default(), &s).await.unwrap();
    let listed = secrets.list_metadata(&ListParams::default()).await.unwrap();
    assert_eq!(listed.items.len(), 1);
    assert_eq!(listed.items[0].metadata.name.as_deref(), Some("cs"));
    let meta: Api<PartialObjectMeta<Secret>> = Api::namespaced(client, &c.ns);
    let mut stream = watcher(meta, watcher::Config::default())
        .applied_objects()
        .boxed();
    let first = tokio::time::timeout(Duration::from_secs(5), stream.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(first.metadata.name.as_deref(), Some("cs"));
    secrets
        .patch(
            "cs",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"k": "w"}}})),
        )
        .await
        .unwrap();
    let second = tokio::time::timeout(Duration::from_secs(5), stream.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(second.metadata.labels.unwrap()["k"], "w");
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_watchers_each_receive_every_event_in_order() {
    let c = Cluster::start().await;
    let api: Api<ConfigMap> = Api::namespaced(c.client.clone(), &c.ns);
    let rv = api
        .list(&Default::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    let mut watchers = Vec::new();
    for _ in 0..50 {
        let stream = api
            .watch(&WatchParams::default().disable_bookmarks(), &rv)
            .await
            .unwrap()
            .boxed();
        watchers.push(stream);
    }
    if let Some(emu) = &c.emu {
        assert_eq!(emu.faults().open_watches(), 50);
    }
    for i in 0..40 {
        api.create(&PostParams::default(), &cm(&format!("c{i:02}"), "x"))
            .await
            .unwrap();
    }
    let tasks: Vec<_> = watchers
        .into_iter()
        .map(|mut s| {
            tokio::spawn(async move {
                let mut names = Vec::new();
                while names.len() < 40 {
                    match tokio::time::timeout(Duration::from_secs(10), s.try_next()).await {
                        Ok(Ok(Some(WatchEvent::Added(c)))) => names.push(c.metadata.name.unwrap()),
                        other => panic!("unexpected {other:?}"),
                    }
                }
                names
            })
        })
        .collect();
    let want: Vec<String> = (0..40).map(|i| format!("c{i:02}")).collect();
    for t in tasks {
        assert_eq!(t.await.unwrap(), want);
    }
    c.stop().await;
}

#[tokio::test]
async fn bounded_history_expires_resource_versions_older_than_it_keeps() {
    if not_on_real_server(
        "bounded_history_expires_resource_versions_older_than_it_keeps",
        "sets the emulator's per-type history length",
    ) {
        return;
    }
    let opts = EmulatorOptions {
        watch_history: 5,
        ..EmulatorOptions::default()
    };
    let c = Cluster::start_with(opts).await;
    let api: Api<ConfigMap> = Api::namespaced(c.client.clone(), &c.ns);
    let start_rv = api
        .list(&Default::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    api.create(&PostParams::default(), &cm("a", "0"))
        .await
        .unwrap();
    let mut rvs = Vec::new();
    for i in 1..10 {
        set(&api, "a", &i.to_string()).await;
        rvs.push(
            api.get("a")
                .await
                .unwrap()
                .metadata
                .resource_version
                .unwrap(),
        );
    }
    // The last five events are kept: resuming just before them works, earlier fails.
    let recent = &rvs[rvs.len() - 6];
    let mut ok = api
        .watch(&WatchParams::default().disable_bookmarks(), recent)
        .await
        .unwrap()
        .boxed();
    match ok.try_next().await.unwrap() {
        Some(WatchEvent::Modified(c)) => assert_eq!(c.data.unwrap()["v"], "5"),
        other => panic!("expected the retained event, got {other:?}"),
    }
    let mut old = api
        .watch(&WatchParams::default().disable_bookmarks(), &start_rv)
        .await
        .unwrap()
        .boxed();
    match old.try_next().await.unwrap() {
        Some(WatchEvent::Error(e)) => assert_eq!(e.code, 410),
        other => panic!("expected 410, got {other:?}"),
    }
    c.stop().await;
}
