//! API conventions beyond plain CRUD: generateName, dryRun, deletecollection, foreground
//! deletion, JSON and strategic merge patches, selector-filtered watches, streaming
//! lists, watch timeouts, Leases and events.k8s.io Events, aggregated discovery, Tables
//! (with the `kubectl` feature), and the binary's first line and kubeconfig.

use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::api::events::v1::Event;
use kube::api::{
    Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams,
};
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::{Value, json};

mod common;
use common::{Cluster, not_on_real_server};

async fn start() -> (Cluster, kube::Client) {
    let c = Cluster::start().await;
    let client = c.client.clone();
    (c, client)
}

fn cm(name: &str, labels: Value) -> ConfigMap {
    serde_json::from_value(
        json!({"metadata": {"name": name, "labels": labels}, "data": {"a": "b"}}),
    )
    .unwrap()
}

async fn raw(client: &kube::Client, method: &str, path: &str, accept: &str) -> (Value, String) {
    let req = http::Request::builder()
        .method(method)
        .uri(path)
        .header("Accept", accept)
        .body(Vec::new())
        .unwrap();
    let text = client.request_text(req).await.unwrap();
    (serde_json::from_str(&text).unwrap(), text)
}

#[tokio::test]
async fn generate_name_gets_a_random_suffix() {
    let (c, client) = start().await;
    let api: Api<ConfigMap> = Api::namespaced(client, &c.ns);
    let obj: ConfigMap =
        serde_json::from_value(json!({"metadata": {"generateName": "tok-"}})).unwrap();
    let a = api.create(&PostParams::default(), &obj).await.unwrap();
    let b = api.create(&PostParams::default(), &obj).await.unwrap();
    let (na, nb) = (a.metadata.name.unwrap(), b.metadata.name.unwrap());
    assert!(na.starts_with("tok-") && na.len() == 9, "{na}");
    assert_ne!(na, nb);
    c.stop().await;
}

#[tokio::test]
async fn dry_run_create_and_delete_store_nothing() {
    let (c, client) = start().await;
    let api: Api<ConfigMap> = Api::namespaced(client, &c.ns);
    let pp = PostParams {
        dry_run: true,
        ..PostParams::default()
    };
    let out = api.create(&pp, &cm("d", json!({}))).await.unwrap();
    assert_eq!(out.metadata.name.as_deref(), Some("d"));
    assert!(api.get_opt("d").await.unwrap().is_none());
    api.create(&PostParams::default(), &cm("d", json!({})))
        .await
        .unwrap();
    let dp = DeleteParams {
        dry_run: true,
        ..DeleteParams::default()
    };
    api.delete("d", &dp).await.unwrap();
    assert!(api.get_opt("d").await.unwrap().is_some());
    c.stop().await;
}

#[tokio::test]
async fn delete_collection_removes_only_selected_objects() {
    let (c, client) = start().await;
    let api: Api<ConfigMap> = Api::namespaced(client, &c.ns);
    for (n, app) in [("a", "x"), ("b", "x"), ("c", "y")] {
        api.create(&PostParams::default(), &cm(n, json!({"app": app})))
            .await
            .unwrap();
    }
    api.delete_collection(
        &DeleteParams::default(),
        &ListParams::default().labels("app=x"),
    )
    .await
    .unwrap();
    let left: Vec<String> = api
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|c| c.metadata.name.unwrap())
        .collect();
    assert_eq!(left, ["c"]);
    c.stop().await;
}

#[tokio::test]
async fn foreground_deletion_waits_for_dependents() {
    let (c, client) = start().await;
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), &c.ns);
    let owner = api
        .create(&PostParams::default(), &cm("owner", json!({})))
        .await
        .unwrap();
    let secrets: Api<Secret> = Api::namespaced(client, &c.ns);
    let dep: Secret = serde_json::from_value(json!({"metadata": {
        "name": "dep", "finalizers": ["test/hold"],
        "ownerReferences": [{"apiVersion": "v1", "kind": "ConfigMap", "name": "owner",
                             "uid": owner.metadata.uid.unwrap(), "blockOwnerDeletion": true}]}}))
    .unwrap();
    secrets.create(&PostParams::default(), &dep).await.unwrap();
    api.delete("owner", &DeleteParams::foreground())
        .await
        .unwrap();
    let held = api.get("owner").await.unwrap();
    assert!(held.metadata.deletion_timestamp.is_some());
    assert_eq!(held.metadata.finalizers.unwrap(), ["foregroundDeletion"]);
    // apiserver's garbage collector marks the dependent a moment later
    c.eventually("the dependent is being deleted", || async {
        secrets
            .get("dep")
            .await
            .unwrap()
            .metadata
            .deletion_timestamp
            .is_some()
    })
    .await;
    secrets
        .patch(
            "dep",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"finalizers": null}})),
        )
        .await
        .unwrap();
    c.eventually("the dependent and then its owner are gone", || async {
        secrets.get_opt("dep").await.unwrap().is_none()
            && api.get_opt("owner").await.unwrap().is_none()
    })
    .await;
    c.stop().await;
}

#[tokio::test]
async fn json_patch_applies_and_a_failed_test_op_changes_nothing() {
    let (c, client) = start().await;
    let api: Api<ConfigMap> = Api::namespaced(client, &c.ns);
    api.create(&PostParams::default(), &cm("j", json!({})))
        .await
        .unwrap();
    let ops: json_patch::Patch = serde_json::from_value(json!([
        {"op": "add", "path": "/data/c", "value": "d"},
        {"op": "remove", "path": "/data/a"},
    ]))
    .unwrap();
    let out = api
        .patch("j", &PatchParams::default(), &Patch::<()>::Json(ops))
        .await
        .unwrap();
    assert_eq!(
        out.data.unwrap(),
        [("c".to_string(), "d".to_string())].into()
    );
    let failing: json_patch::Patch = serde_json::from_value(json!([
        {"op": "test", "path": "/data/c", "value": "nope"},
        {"op": "add", "path": "/data/e", "value": "f"},
    ]))
    .unwrap();
    assert!(
        api.patch("j", &PatchParams::default(), &Patch::<()>::Json(failing))
            .await
            .is_err()
    );
    assert!(!api.get("j").await.unwrap().data.unwrap().contains_key("e"));
    c.stop().await;
}

#[tokio::test]
async fn strategic_merge_patch_merges_containers_by_name_and_deployments_default_replicas() {
    let (c, client) = start().await;
    let api: Api<Deployment> = Api::namespaced(client, &c.ns);
    let d: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {"selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [{"name": "a", "image": "a:1"}, {"name": "b", "image": "b:1"}]}}},
    }))
    .unwrap();
    let created = api.create(&PostParams::default(), &d).await.unwrap();
    assert_eq!(created.spec.as_ref().unwrap().replicas, Some(1));
    assert_eq!(created.metadata.generation, Some(1));
    let patch =
        json!({"spec": {"template": {"spec": {"containers": [{"name": "b", "image": "b:2"}]}}}});
    let out = api
        .patch("web", &PatchParams::default(), &Patch::Strategic(patch))
        .await
        .unwrap();
    let containers = out.spec.unwrap().template.spec.unwrap().containers;
    let images: Vec<(String, String)> = containers
        .into_iter()
        .map(|c| (c.name, c.image.unwrap()))
        .collect();
    assert_eq!(
        images,
        [("a".into(), "a:1".into()), ("b".into(), "b:2".into())]
    );
    assert_eq!(out.metadata.generation, Some(2));
    // without a deployment controller status stays empty, apiserver's `status: {}`
    assert_eq!(out.status, Some(Default::default()), "status is left alone");
    c.stop().await;
}

#[tokio::test]
async fn selector_watch_turns_label_changes_into_added_and_deleted() {
    let (c, client) = start().await;
    let api: Api<ConfigMap> = Api::namespaced(client, &c.ns);
    api.create(&PostParams::default(), &cm("x", json!({"app": "no"})))
        .await
        .unwrap();
    let rv = api
        .list(&ListParams::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    let wp = WatchParams::default().labels("app=yes").disable_bookmarks();
    let mut stream = api.watch(&wp, &rv).await.unwrap().boxed();
    for v in ["yes", "no"] {
        api.patch(
            "x",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"app": v}}})),
        )
        .await
        .unwrap();
    }
    let mut kinds = Vec::new();
    while kinds.len() < 2 {
        let ev = tokio::time::timeout(Duration::from_secs(5), stream.try_next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        kinds.push(match ev {
            WatchEvent::Added(_) => "ADDED",
            WatchEvent::Deleted(_) => "DELETED",
            WatchEvent::Modified(_) => "MODIFIED",
            _ => "OTHER",
        });
    }
    assert_eq!(kinds, ["ADDED", "DELETED"]);
    c.stop().await;
}

#[tokio::test]
async fn streaming_list_watcher_gets_initial_events_then_changes() {
    let (c, client) = start().await;
    let api: Api<ConfigMap> = Api::namespaced(client, &c.ns);
    api.create(&PostParams::default(), &cm("before", json!({})))
        .await
        .unwrap();
    let cfg = watcher::Config::default().streaming_lists();
    let mut stream = watcher(api.clone(), cfg).applied_objects().boxed();
    let first = tokio::time::timeout(Duration::from_secs(5), stream.try_next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(first.metadata.name.as_deref(), Some("before"));
    api.create(&PostParams::default(), &cm("after", json!({})))
        .await
        .unwrap();
    let second = tokio::time::timeout(Duration::from_secs(5), stream.try_next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(second.metadata.name.as_deref(), Some("after"));
    c.stop().await;
}

#[tokio::test]
async fn watch_ends_at_the_requested_timeout() {
    let (c, client) = start().await;
    let api: Api<ConfigMap> = Api::namespaced(client, &c.ns);
    let rv = api
        .list(&ListParams::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    let wp = WatchParams::default().timeout(1).disable_bookmarks();
    let mut stream = api.watch(&wp, &rv).await.unwrap().boxed();
    let end = tokio::time::timeout(Duration::from_secs(10), stream.try_next())
        .await
        .unwrap()
        .unwrap();
    assert!(end.is_none(), "the server closed the watch");
    c.stop().await;
}

#[tokio::test]
async fn leases_and_events_k8s_io_are_served() {
    let (c, client) = start().await;
    let leases: Api<Lease> = Api::namespaced(client.clone(), &c.ns);
    let lease: Lease = serde_json::from_value(json!({"metadata": {"name": "leader"},
        "spec": {"holderIdentity": "a", "leaseDurationSeconds": 15}}))
    .unwrap();
    let created = leases.create(&PostParams::default(), &lease).await.unwrap();
    let mut taken = created.clone();
    taken.spec.as_mut().unwrap().holder_identity = Some("b".into());
    leases
        .replace("leader", &PostParams::default(), &taken)
        .await
        .unwrap();
    let mut stale = created;
    stale.spec.as_mut().unwrap().holder_identity = Some("c".into());
    let err = leases
        .replace("leader", &PostParams::default(), &stale)
        .await
        .unwrap_err();
    assert!(
        matches!(err, kube::Error::Api(ref s) if s.code == 409),
        "{err:?}"
    );

    let events: Api<Event> = Api::namespaced(client, &c.ns);
    let ev: Event = serde_json::from_value(json!({"metadata": {"generateName": "x-"},
        "eventTime": "2026-01-01T00:00:00.000000Z", "reason": "Issued", "note": "token issued",
        "type": "Normal", "action": "Mint", "reportingController": "clear-operator",
        "reportingInstance": "clear-operator-1",
        "regarding": {"kind": "ClearApiClient", "name": "demo", "namespace": c.ns}}))
    .unwrap();
    events.create(&PostParams::default(), &ev).await.unwrap();
    assert_eq!(c.objects("events.k8s.io/v1/events").await.len(), 1);
    c.stop().await;
}

#[cfg(feature = "kubectl")]
#[tokio::test]
async fn tables_answer_with_apiserver_columns() {
    let (c, client) = start().await;
    let api: Api<Secret> = Api::namespaced(client.clone(), &c.ns);
    let s: Secret = serde_json::from_value(
        json!({"metadata": {"name": "t"}, "stringData": {"a": "b", "c": "d"}}),
    )
    .unwrap();
    api.create(&PostParams::default(), &s).await.unwrap();
    let (table, _) = raw(
        &client,
        "GET",
        &format!("/api/v1/namespaces/{}/secrets", c.ns),
        "application/json;as=Table;v=v1;g=meta.k8s.io,application/json",
    )
    .await;
    assert_eq!(table["kind"], "Table");
    let cols: Vec<&str> = table["columnDefinitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(cols, ["Name", "Type", "Data", "Age"]);
    assert_eq!(table["rows"][0]["cells"][0], "t");
    assert_eq!(table["rows"][0]["cells"][2], 2);
    assert_eq!(table["rows"][0]["object"]["kind"], "PartialObjectMetadata");
    c.stop().await;
}

#[tokio::test]
async fn aggregated_discovery_lists_groups_resources_and_subresources() {
    let (c, client) = start().await;
    let (disc, _) = raw(
        &client,
        "GET",
        "/apis",
        "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json",
    )
    .await;
    assert_eq!(disc["kind"], "APIGroupDiscoveryList");
    let apps = disc["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["metadata"]["name"] == "apps")
        .unwrap();
    let deploy = apps["versions"][0]["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["resource"] == "deployments")
        .unwrap();
    assert_eq!(deploy["scope"], "Namespaced");
    let subresources: Vec<&str> = deploy["subresources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["subresource"].as_str().unwrap())
        .collect();
    // `/scale` is served with the `kubectl` feature only (`kubectl scale`; kube-rs has no
    // use for it); a real server always serves it.
    if c.is_real() || cfg!(feature = "kubectl") {
        assert_eq!(subresources, ["scale", "status"]);
    } else {
        assert_eq!(subresources, ["status"]);
    }
    c.stop().await;
}

#[tokio::test]
async fn binary_prints_its_url_first_and_writes_a_working_kubeconfig() {
    if not_on_real_server(
        "binary_prints_its_url_first_and_writes_a_working_kubeconfig",
        "tests the emulator's own binary",
    ) {
        return;
    }
    use tokio::io::AsyncBufReadExt;
    let dir = std::env::temp_dir().join(format!("kube-emulator-bin-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let kubeconfig = dir.join("kubeconfig");
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_kube-emulator"))
        .args(["--listen", "127.0.0.1:0", "--kubeconfig-out"])
        .arg(&kubeconfig)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let url = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    let yaml = std::fs::read_to_string(&kubeconfig).unwrap();
    let kc = kube::config::Kubeconfig::from_yaml(&yaml).unwrap();
    assert_eq!(kc.current_context.as_deref(), Some("kube-emulator"));
    let config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .unwrap();
    let client = kube::Client::try_from(config).unwrap();
    let nss: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client);
    let names: Vec<String> = nss
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|n| n.metadata.name.unwrap())
        .collect();
    assert!(names.contains(&"default".to_string()) && names.contains(&"kube-system".to_string()));
    child.kill().await.unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn kube_rs_recorder_publishes_and_updates_event_series() {
    use k8s_openapi::api::core::v1::ObjectReference;
    use kube::runtime::events::{Event as RecorderEvent, EventType, Recorder, Reporter};
    let (c, client) = start().await;
    let reporter = Reporter {
        controller: "clear-operator".into(),
        instance: Some("clear-operator-0".into()),
    };
    let recorder = Recorder::new(client, reporter);
    let reference = ObjectReference {
        api_version: Some("clear-operator.io/v1alpha1".into()),
        kind: Some("ClearApiClient".into()),
        name: Some("demo".into()),
        namespace: Some(c.ns.clone()),
        uid: Some("0f6a1c2e-0000-4000-8000-000000000001".into()),
        ..ObjectReference::default()
    };
    let ev = RecorderEvent {
        type_: EventType::Normal,
        reason: "Issued".into(),
        note: Some("token issued".into()),
        action: "Mint".into(),
        secondary: None,
    };
    recorder.publish(&ev, &reference).await.unwrap();
    recorder.publish(&ev, &reference).await.unwrap();
    let stored = c.objects("events.k8s.io/v1/events").await;
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0]["reason"], "Issued");
    assert_eq!(stored[0]["series"]["count"], 2);
    c.stop().await;
}

#[tokio::test]
async fn dependent_created_with_only_missing_owners_is_collected() {
    let (c, client) = start().await;
    let api: Api<ConfigMap> = Api::namespaced(client, &c.ns);
    let orphan: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "dangling",
        "ownerReferences": [{"apiVersion": "v1", "kind": "ConfigMap", "name": "gone",
                             "uid": "7d5b3e0a-0000-4000-8000-00000000dead"}]}}))
    .unwrap();
    api.create(&PostParams::default(), &orphan).await.unwrap();
    c.eventually("the dangling dependent is collected", || async {
        api.get_opt("dangling").await.unwrap().is_none()
    })
    .await;
    c.stop().await;
}

#[tokio::test]
async fn server_side_apply_conflicts_between_managers_unless_forced() {
    let (c, client) = start().await;
    let api: Api<ConfigMap> = Api::namespaced(client, &c.ns);
    let cfg = |v: &str| json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "shared"}, "data": {"k": v}});
    api.patch(
        "shared",
        &PatchParams::apply("alice"),
        &Patch::Apply(cfg("a")),
    )
    .await
    .unwrap();
    let err = api
        .patch(
            "shared",
            &PatchParams::apply("bob"),
            &Patch::Apply(cfg("b")),
        )
        .await
        .unwrap_err();
    match err {
        kube::Error::Api(s) => {
            assert_eq!(s.code, 409);
            assert_eq!(s.reason, "Conflict");
            assert!(
                s.message.contains("conflict with \"alice\""),
                "{}",
                s.message
            );
            assert!(s.message.contains(".data.k"), "{}", s.message);
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    let forced = api
        .patch(
            "shared",
            &PatchParams::apply("bob").force(),
            &Patch::Apply(cfg("b")),
        )
        .await
        .unwrap();
    assert_eq!(forced.data.unwrap()["k"], "b");
    c.stop().await;
}

#[tokio::test]
async fn a_second_manager_applying_the_same_values_is_recorded_once() {
    let (c, client) = start().await;
    let api: Api<ConfigMap> = Api::namespaced(client, &c.ns);
    let cfg = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "shared"}, "data": {"k": "v"}});
    let first = api
        .patch("shared", &PatchParams::apply("alice"), &Patch::Apply(&cfg))
        .await
        .unwrap();
    let shared = api
        .patch("shared", &PatchParams::apply("bob"), &Patch::Apply(&cfg))
        .await
        .unwrap();
    let managers: Vec<String> = shared
        .metadata
        .managed_fields
        .clone()
        .unwrap_or_default()
        .into_iter()
        .filter_map(|m| m.manager)
        .collect();
    assert!(
        managers.contains(&"alice".into()) && managers.contains(&"bob".into()),
        "{managers:?}"
    );
    assert_ne!(
        shared.metadata.resource_version, first.metadata.resource_version,
        "ownership changed"
    );
    let again = api
        .patch("shared", &PatchParams::apply("bob"), &Patch::Apply(&cfg))
        .await
        .unwrap();
    assert_eq!(
        again.metadata.resource_version, shared.metadata.resource_version,
        "nothing changed"
    );
    c.stop().await;
}

fn api_status(e: kube::Error) -> kube::core::Status {
    match e {
        kube::Error::Api(s) => *s,
        other => panic!("expected an API error, got {other:?}"),
    }
}

#[tokio::test]
async fn json_patch_that_does_not_apply_is_422_invalid_and_a_malformed_one_400() {
    let (c, client) = start().await;
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), &c.ns);
    api.create(&PostParams::default(), &cm("j", json!({})))
        .await
        .unwrap();
    for ops in [
        json!([{"op": "test", "path": "/data/a", "value": "nope"}]),
        json!([{"op": "remove", "path": "/data/missing"}]),
        json!([{"op": "replace", "path": "/spec/x", "value": 1}]),
    ] {
        let ops: json_patch::Patch = serde_json::from_value(ops).unwrap();
        let err = api_status(
            api.patch("j", &PatchParams::default(), &Patch::<()>::Json(ops))
                .await
                .unwrap_err(),
        );
        assert_eq!(err.code, 422, "{err:?}");
        assert_eq!(err.reason, "Invalid");
        assert_eq!(
            err.message,
            "the server rejected our request due to an error in our request"
        );
    }
    let req = http::Request::builder()
        .method("PATCH")
        .uri(format!("/api/v1/namespaces/{}/configmaps/j", c.ns))
        .header("Content-Type", "application/json-patch+json")
        .body(br#"{"op": "add"}"#.to_vec())
        .unwrap();
    let err = api_status(client.request_text(req).await.unwrap_err());
    assert_eq!(err.code, 400, "{err:?}");
    assert_eq!(err.reason, "BadRequest");
    c.stop().await;
}

#[tokio::test]
async fn a_resource_version_in_an_apply_is_a_precondition_on_the_main_and_status_endpoints() {
    let (c, client) = start().await;
    let api: Api<Deployment> = Api::namespaced(client, &c.ns);
    let d: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "rv"},
        "spec": {"selector": {"matchLabels": {"app": "rv"}},
                 "template": {"metadata": {"labels": {"app": "rv"}},
                              "spec": {"containers": [{"name": "a", "image": "a:1"}]}}},
    }))
    .unwrap();
    let created = api.create(&PostParams::default(), &d).await.unwrap();
    let current = created.metadata.resource_version.clone().unwrap();
    // A write made on an older read (here: before a label was added) must fail, not land.
    let relabelled = api
        .patch(
            "rv",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"x": "y"}}})),
        )
        .await
        .unwrap();
    let stale = |body: Value| {
        let mut body = body;
        body["apiVersion"] = json!("apps/v1");
        body["kind"] = json!("Deployment");
        body["metadata"] = json!({"name": "rv", "resourceVersion": current});
        body
    };
    let params = PatchParams::apply("precondition-test").force();
    let main = api
        .patch(
            "rv",
            &params,
            &Patch::Apply(stale(json!({"metadata": {}, "spec": {"replicas": 3}}))),
        )
        .await
        .unwrap_err();
    assert_eq!(api_status(main).code, 409);
    let status = api
        .patch_status(
            "rv",
            &params,
            &Patch::Apply(stale(json!({"status": {"observedGeneration": 7}}))),
        )
        .await
        .unwrap_err();
    assert_eq!(api_status(status).code, 409, "the status endpoint too");
    // With the current resourceVersion both land.
    let fresh = relabelled.metadata.resource_version.unwrap();
    let ok = api
        .patch_status(
            "rv",
            &params,
            &Patch::Apply(json!({"apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": "rv", "resourceVersion": fresh},
                "status": {"observedGeneration": 7}})),
        )
        .await
        .unwrap();
    assert_eq!(ok.status.unwrap().observed_generation, Some(7));
    c.stop().await;
}
