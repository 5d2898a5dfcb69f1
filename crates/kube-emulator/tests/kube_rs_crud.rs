//! kube-rs against the emulator: typed CRUD, selectors, paging, conflicts and the Status
//! errors kube-rs decodes.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;

mod common;
use common::Cluster;

async fn start() -> (Cluster, kube::Client) {
    let c = Cluster::start().await;
    let client = c.client.clone();
    (c, client)
}

fn secret(name: &str, labels: &[(&str, &str)]) -> Secret {
    serde_json::from_value(json!({
        "metadata": {
            "name": name,
            "labels": labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<BTreeMap<_, _>>(),
        },
        "stringData": {"token": "value"},
    }))
    .expect("valid secret")
}

fn api_error(e: kube::Error) -> kube::core::Status {
    match e {
        kube::Error::Api(s) => *s,
        other => panic!("expected an API error, got {other:?}"),
    }
}

#[tokio::test]
async fn typed_secret_crud_round_trips_and_folds_string_data() {
    let (c, client) = start().await;
    let api: Api<Secret> = Api::namespaced(client, &c.ns);
    let created = api
        .create(&PostParams::default(), &secret("s1", &[("app", "x")]))
        .await
        .unwrap();
    let md = &created.metadata;
    assert!(md.uid.is_some());
    assert!(md.creation_timestamp.is_some());
    assert!(md.resource_version.is_some());
    let data = created.data.clone().unwrap();
    assert_eq!(data["token"].0, b"value");
    assert!(created.string_data.is_none());

    let got = api.get("s1").await.unwrap();
    assert_eq!(got.metadata.uid, md.uid);

    let mut changed = got.clone();
    changed
        .metadata
        .labels
        .as_mut()
        .unwrap()
        .insert("tier".into(), "b".into());
    let updated = api
        .replace("s1", &PostParams::default(), &changed)
        .await
        .unwrap();
    assert_ne!(
        updated.metadata.resource_version,
        got.metadata.resource_version
    );

    api.delete("s1", &DeleteParams::default()).await.unwrap();
    let err = api_error(api.get("s1").await.unwrap_err());
    assert_eq!(err.code, 404);
    assert_eq!(err.reason, "NotFound");
    assert_eq!(err.message, "secrets \"s1\" not found");
    c.stop().await;
}

#[tokio::test]
async fn creating_twice_gets_409_already_exists() {
    let (c, client) = start().await;
    let api: Api<ConfigMap> = Api::namespaced(client, &c.ns);
    let cm: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": "c"}, "data": {"a": "b"}})).unwrap();
    api.create(&PostParams::default(), &cm).await.unwrap();
    let err = api_error(api.create(&PostParams::default(), &cm).await.unwrap_err());
    assert_eq!(err.code, 409);
    assert_eq!(err.reason, "AlreadyExists");
    assert_eq!(err.message, "configmaps \"c\" already exists");
    c.stop().await;
}

#[tokio::test]
async fn stale_update_gets_409_conflict() {
    let (c, client) = start().await;
    let api: Api<Secret> = Api::namespaced(client, &c.ns);
    let first = api
        .create(&PostParams::default(), &secret("s", &[]))
        .await
        .unwrap();
    let mut a = first.clone();
    a.metadata.labels = Some(BTreeMap::from([("a".to_string(), "1".to_string())]));
    api.replace("s", &PostParams::default(), &a).await.unwrap();
    let mut stale = first.clone();
    stale.metadata.labels = Some(BTreeMap::from([("b".to_string(), "2".to_string())]));
    let err = api_error(
        api.replace("s", &PostParams::default(), &stale)
            .await
            .unwrap_err(),
    );
    assert_eq!(err.code, 409);
    assert_eq!(err.reason, "Conflict");
    assert_eq!(
        err.message,
        "Operation cannot be fulfilled on secrets \"s\": the object has been modified; please apply your changes to the latest version and try again"
    );
    c.stop().await;
}

#[tokio::test]
async fn creating_in_a_missing_namespace_is_not_found() {
    let (c, client) = start().await;
    let api: Api<Secret> = Api::namespaced(client, "nowhere");
    let err = api_error(
        api.create(&PostParams::default(), &secret("s", &[]))
            .await
            .unwrap_err(),
    );
    assert_eq!(err.code, 404);
    assert_eq!(err.message, "namespaces \"nowhere\" not found");
    c.stop().await;
}

#[tokio::test]
async fn label_selectors_filter_lists() {
    let (c, client) = start().await;
    let api: Api<Secret> = Api::namespaced(client, &c.ns);
    for (name, app, tier) in [("a", "web", "fe"), ("b", "web", "db"), ("c", "batch", "fe")] {
        api.create(
            &PostParams::default(),
            &secret(name, &[("app", app), ("tier", tier)]),
        )
        .await
        .unwrap();
    }
    let names = |l: kube::core::ObjectList<Secret>| -> Vec<String> {
        l.items
            .into_iter()
            .map(|s| s.metadata.name.unwrap())
            .collect()
    };
    let cases = [
        ("app=web", vec!["a", "b"]),
        ("app==web,tier!=db", vec!["a"]),
        ("app in (web,batch),tier=fe", vec!["a", "c"]),
        ("app notin (web)", vec!["c"]),
        ("tier", vec!["a", "b", "c"]),
        ("!tier", vec![]),
    ];
    for (sel, want) in cases {
        let got = names(api.list(&ListParams::default().labels(sel)).await.unwrap());
        assert_eq!(got, want, "selector {sel}");
    }
    let by_name = names(
        api.list(&ListParams::default().fields("metadata.name=b"))
            .await
            .unwrap(),
    );
    assert_eq!(by_name, vec!["b"]);
    c.stop().await;
}

#[tokio::test]
async fn limit_and_continue_page_through_a_list() {
    let (c, client) = start().await;
    let api: Api<Secret> = Api::namespaced(client, &c.ns);
    for i in 0..7 {
        api.create(&PostParams::default(), &secret(&format!("s{i}"), &[]))
            .await
            .unwrap();
    }
    let mut seen = Vec::new();
    let mut lp = ListParams::default().limit(3);
    let mut pages = 0;
    loop {
        let page = api.list(&lp).await.unwrap();
        pages += 1;
        seen.extend(page.items.into_iter().map(|s| s.metadata.name.unwrap()));
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(c) => lp = lp.continue_token(&c),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, (0..7).map(|i| format!("s{i}")).collect::<Vec<_>>());
    c.stop().await;
}

#[tokio::test]
async fn identical_apply_does_not_bump_resource_version() {
    let (c, client) = start().await;
    let api: Api<ConfigMap> = Api::namespaced(client, &c.ns);
    let pp = PatchParams::apply("test-manager");
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "1"}});
    let first = api.patch("c", &pp, &Patch::Apply(&cm)).await.unwrap();
    let second = api.patch("c", &pp, &Patch::Apply(&cm)).await.unwrap();
    assert_eq!(
        first.metadata.resource_version,
        second.metadata.resource_version
    );
    let merge = api
        .patch(
            "c",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"a": "1"}})),
        )
        .await
        .unwrap();
    assert_eq!(
        merge.metadata.resource_version,
        first.metadata.resource_version
    );
    let stored = api.get("c").await.unwrap();
    assert_eq!(
        stored.metadata.resource_version,
        first.metadata.resource_version
    );
    c.stop().await;
}

#[tokio::test]
async fn namespace_deletion_removes_its_contents() {
    let (c, client) = start().await;
    let nss: Api<Namespace> = Api::all(client.clone());
    let team = c.unique("team");
    c.cleanup_later(&format!("/api/v1/namespaces/{team}"));
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": team}})).unwrap();
    let created = nss.create(&PostParams::default(), &ns).await.unwrap();
    assert_eq!(created.status.unwrap().phase.as_deref(), Some("Active"));
    let secrets: Api<Secret> = Api::namespaced(client, &team);
    secrets
        .create(&PostParams::default(), &secret("s", &[]))
        .await
        .unwrap();
    nss.delete(&team, &DeleteParams::default()).await.unwrap();
    // apiserver's namespace controller empties and removes it a moment later; the
    // emulator has done so by the time DELETE answers
    c.eventually("the namespace and its secret are gone", || async {
        nss.get_opt(&team).await.unwrap().is_none()
    })
    .await;
    assert!(
        secrets
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
    c.stop().await;
}

#[tokio::test]
async fn emptied_metadata_lists_are_dropped_like_apiserver_omitempty() {
    let (c, client) = start().await;
    let api: Api<ConfigMap> = Api::namespaced(client, &c.ns);
    let cm: ConfigMap = serde_json::from_value(
        json!({"metadata": {"name": "f", "finalizers": ["a/b"], "labels": {"x": "y"}}}),
    )
    .unwrap();
    api.create(&PostParams::default(), &cm).await.unwrap();
    let ops: json_patch::Patch = serde_json::from_value(json!([
        {"op": "remove", "path": "/metadata/finalizers/0"},
        {"op": "remove", "path": "/metadata/labels/x"},
    ]))
    .unwrap();
    api.patch("f", &PatchParams::default(), &Patch::<()>::Json(ops))
        .await
        .unwrap();
    let stored = c.object("configmaps", "f").await.unwrap();
    assert!(stored["metadata"].get("finalizers").is_none(), "{stored}");
    assert!(stored["metadata"].get("labels").is_none(), "{stored}");
    c.stop().await;
}

#[tokio::test]
async fn terminating_namespace_refuses_new_content_and_goes_when_finalizers_clear() {
    let (c, client) = start().await;
    let nss: Api<Namespace> = Api::all(client.clone());
    let held = c.unique("held");
    c.cleanup_later(&format!("/api/v1/namespaces/{held}"));
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": held}})).unwrap();
    nss.create(&PostParams::default(), &ns).await.unwrap();
    let secrets: Api<Secret> = Api::namespaced(client, &held);
    let mut s = secret("blocker", &[]);
    s.metadata.finalizers = Some(vec!["test/hold".into()]);
    secrets.create(&PostParams::default(), &s).await.unwrap();
    nss.delete(&held, &DeleteParams::default()).await.unwrap();
    let terminating = nss.get(&held).await.unwrap();
    assert_eq!(
        terminating.status.unwrap().phase.as_deref(),
        Some("Terminating")
    );
    c.eventually("the namespace's secret is being deleted", || async {
        secrets
            .get("blocker")
            .await
            .unwrap()
            .metadata
            .deletion_timestamp
            .is_some()
    })
    .await;

    let err = api_error(
        secrets
            .create(&PostParams::default(), &secret("late", &[]))
            .await
            .unwrap_err(),
    );
    assert_eq!(err.code, 403);
    assert_eq!(err.reason, "Forbidden");
    assert!(
        err.message.contains("because it is being terminated"),
        "{}",
        err.message
    );

    secrets
        .patch(
            "blocker",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"finalizers": null}})),
        )
        .await
        .unwrap();
    c.eventually("the namespace is gone", || async {
        nss.get_opt(&held).await.unwrap().is_none()
    })
    .await;
    c.stop().await;
}

#[tokio::test]
async fn delete_answers_a_status_when_gone_and_the_object_while_finalizers_hold_it() {
    let (c, client) = start().await;
    let api: Api<Secret> = Api::namespaced(client, &c.ns);
    api.create(&PostParams::default(), &secret("now", &[]))
        .await
        .unwrap();
    let gone = api.delete("now", &DeleteParams::default()).await.unwrap();
    let status = gone.right().expect("immediate deletion answers a Status");
    assert_eq!(
        status.status,
        Some(kube::core::response::StatusSummary::Success)
    );
    let mut held = secret("held", &[]);
    held.metadata.finalizers = Some(vec!["test/hold".into()]);
    api.create(&PostParams::default(), &held).await.unwrap();
    let pending = api.delete("held", &DeleteParams::default()).await.unwrap();
    let obj = pending.left().expect("a held object comes back");
    assert!(obj.metadata.deletion_timestamp.is_some());
    api.patch(
        "held",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .unwrap();
    c.stop().await;
}

#[tokio::test]
async fn seeded_namespaces_each_have_their_own_uid() {
    let (c, client) = start().await;
    let nss: Api<Namespace> = Api::all(client);
    // the four every apiserver makes at start (a real server also holds other tests'
    // namespaces)
    let seeded = ["default", "kube-node-lease", "kube-public", "kube-system"];
    let uids: Vec<String> = nss
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|ns| seeded.contains(&ns.metadata.name.as_deref().unwrap()))
        .map(|ns| ns.metadata.uid.unwrap())
        .collect();
    assert_eq!(uids.len(), 4, "{uids:?}");
    let distinct: std::collections::BTreeSet<&String> = uids.iter().collect();
    assert_eq!(distinct.len(), uids.len(), "{uids:?}");
    c.stop().await;
}
