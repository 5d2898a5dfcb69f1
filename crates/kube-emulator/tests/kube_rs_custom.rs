//! kube-rs against the emulator: CRD registration, custom resources with schema
//! validation and defaulting, the status subresource via server-side apply, finalizers,
//! owner-reference garbage collection, a Controller that owns children, and faults.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use serde_json::{Value, json};

mod common;
use common::{Cluster, not_on_real_server};

const CRD_YAML: &str = include_str!("fixtures/clearapiclient-crd.yaml");

fn resource(c: &Cluster) -> ApiResource {
    ApiResource {
        group: c.group.clone(),
        version: "v1alpha1".into(),
        api_version: c.sub("clear-operator.io/v1alpha1"),
        kind: "ClearApiClient".into(),
        plural: "clearapiclients".into(),
    }
}

async fn start_with_crd() -> (Cluster, kube::Client, Api<DynamicObject>) {
    let c = Cluster::start().await;
    let client = c.client.clone();
    c.install_crd(&c.crd(CRD_YAML)).await;
    let api = Api::namespaced_with(client.clone(), &c.ns, &resource(&c));
    (c, client, api)
}

fn cac(c: &Cluster, name: &str, spec: Value) -> DynamicObject {
    serde_json::from_value(json!({
        "apiVersion": c.sub("clear-operator.io/v1alpha1"),
        "kind": "ClearApiClient",
        "metadata": {"name": name},
        "spec": spec,
    }))
    .unwrap()
}

fn valid_spec() -> Value {
    json!({"environment": "sandbox", "workspace": "ws-1", "products": ["GST"]})
}

fn status_of(e: kube::Error) -> kube::core::Status {
    match e {
        kube::Error::Api(s) => *s,
        other => panic!("expected an API error, got {other:?}"),
    }
}

#[tokio::test]
async fn crd_registration_serves_custom_resources_with_defaults() {
    let (c, _client, api) = start_with_crd().await;
    let created = api
        .create(&PostParams::default(), &cac(&c, "a", valid_spec()))
        .await
        .unwrap();
    assert_eq!(
        created.data["spec"]["region"],
        json!("india"),
        "schema default applied"
    );
    assert_eq!(created.metadata.generation, Some(1));
    let listed = api.list(&Default::default()).await.unwrap();
    assert_eq!(listed.items.len(), 1);
    api.delete("a", &DeleteParams::default()).await.unwrap();
    assert!(api.get_opt("a").await.unwrap().is_none());
    c.stop().await;
}

#[tokio::test]
async fn invalid_custom_resource_gets_422_with_field_causes() {
    let (c, _client, api) = start_with_crd().await;
    let err = status_of(
        api.create(
            &PostParams::default(),
            &cac(
                &c,
                "bad",
                json!({"environment": "sandbox", "products": ["GST"]}),
            ),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(err.code, 422);
    assert_eq!(err.reason, "Invalid");
    // Like apiserver, CEL rules are skipped when the schema already failed, and it says so.
    assert!(
        err.message.starts_with(&c.sub(
            "ClearApiClient.clear-operator.io \"bad\" is invalid: [spec.workspace: Required value, "
        )),
        "{}",
        err.message
    );
    let details = err.details.unwrap();
    assert_eq!(details.causes[0].field, "spec.workspace");

    let err = status_of(
        api.create(
            &PostParams::default(),
            &cac(
                &c,
                "bad",
                json!({"environment": "staging", "workspace": "w", "products": ["GST", "gst"]}),
            ),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(err.code, 422);
    assert!(
        err.message
            .starts_with(&c.sub("ClearApiClient.clear-operator.io \"bad\" is invalid: [")),
        "{}",
        err.message
    );
    assert!(
        err.message
            .contains("spec.environment: Unsupported value: \"staging\""),
        "{}",
        err.message
    );
    assert!(
        err.message
            .contains("spec.products[1]: Invalid value: \"gst\""),
        "{}",
        err.message
    );

    // A schema-valid object breaking only the CEL rule gets the rule's message.
    let err = status_of(
        api.create(
            &PostParams::default(),
            &cac(&c, "bad", json!({"environment": "sandbox", "workspace": "w", "products": ["GST"], "region": "eu"})),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(err.code, 422);
    assert_eq!(
        err.message,
        c.sub("ClearApiClient.clear-operator.io \"bad\" is invalid: spec: Invalid value: baseUrl is required outside the india region")
    );
    c.stop().await;
}

#[tokio::test]
async fn status_subresource_takes_server_side_apply_and_main_endpoint_ignores_status() {
    let (c, _client, api) = start_with_crd().await;
    let created = api
        .create(&PostParams::default(), &cac(&c, "a", valid_spec()))
        .await
        .unwrap();
    let status = json!({
        "apiVersion": c.sub("clear-operator.io/v1alpha1"),
        "kind": "ClearApiClient",
        "metadata": {"name": "a"},
        "status": {"secretName": "a", "conditions": [{"type": "Ready", "status": "True", "reason": "Issued"}]},
    });
    let pp = PatchParams::apply("clear-operator").force();
    let after = api
        .patch_status("a", &pp, &Patch::Apply(&status))
        .await
        .unwrap();
    assert_eq!(after.data["status"]["secretName"], json!("a"));
    assert_eq!(
        after.metadata.generation, created.metadata.generation,
        "status does not bump generation"
    );
    let managers: Vec<String> = after
        .metadata
        .managed_fields
        .unwrap_or_default()
        .into_iter()
        .filter_map(|m| m.manager)
        .collect();
    assert!(
        managers.contains(&"clear-operator".to_string()),
        "{managers:?}"
    );

    // Applying the same status again changes nothing.
    let again = api
        .patch_status("a", &pp, &Patch::Apply(&status))
        .await
        .unwrap();
    assert_eq!(
        again.metadata.resource_version,
        after.metadata.resource_version
    );

    // The main endpoint ignores status; a spec change bumps generation.
    let patched = api
        .patch(
            "a",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"spec": {"workspace": "ws-2"}, "status": {"secretName": "other"}}),
            ),
        )
        .await
        .unwrap();
    assert_eq!(patched.data["status"]["secretName"], json!("a"));
    assert_eq!(patched.metadata.generation, Some(2));

    // The status endpoint ignores spec.
    let via_status = api
        .patch_status(
            "a",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"workspace": "x"}, "status": {"secretName": "b"}})),
        )
        .await
        .unwrap();
    assert_eq!(via_status.data["spec"]["workspace"], json!("ws-2"));
    assert_eq!(via_status.data["status"]["secretName"], json!("b"));
    c.stop().await;
}

#[tokio::test]
async fn strategic_merge_patch_on_a_custom_resource_is_415() {
    let (c, _client, api) = start_with_crd().await;
    api.create(&PostParams::default(), &cac(&c, "a", valid_spec()))
        .await
        .unwrap();
    let err = status_of(
        api.patch(
            "a",
            &PatchParams::default(),
            &Patch::Strategic(json!({"spec": {"workspace": "x"}})),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(err.code, 415);
    c.stop().await;
}

#[tokio::test]
async fn finalizers_hold_deletion_until_removed() {
    let (c, _client, api) = start_with_crd().await;
    let mut obj = cac(&c, "a", valid_spec());
    obj.metadata.finalizers = Some(vec!["clear-operator.io/revoke".into()]);
    api.create(&PostParams::default(), &obj).await.unwrap();
    api.delete("a", &DeleteParams::default()).await.unwrap();
    let held = api.get("a").await.unwrap();
    assert!(held.metadata.deletion_timestamp.is_some());
    api.patch(
        "a",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .unwrap();
    assert!(api.get_opt("a").await.unwrap().is_none());
    c.stop().await;
}

#[tokio::test]
async fn owner_reference_garbage_collection_deletes_dependents() {
    let (c, client, api) = start_with_crd().await;
    let owner = api
        .create(&PostParams::default(), &cac(&c, "a", valid_spec()))
        .await
        .unwrap();
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &c.ns);
    let child: Secret = serde_json::from_value(json!({
        "metadata": {"name": "a-token", "ownerReferences": [{
            "apiVersion": c.sub("clear-operator.io/v1alpha1"), "kind": "ClearApiClient",
            "name": "a", "uid": owner.metadata.uid.clone().unwrap(), "controller": true,
        }]},
        "data": {},
    }))
    .unwrap();
    secrets
        .create(&PostParams::default(), &child)
        .await
        .unwrap();
    let orphaned: Secret = serde_json::from_value(json!({"metadata": {"name": "keep"}})).unwrap();
    secrets
        .create(&PostParams::default(), &orphaned)
        .await
        .unwrap();
    api.delete("a", &DeleteParams::background()).await.unwrap();
    // apiserver's garbage collector is a controller: the dependent goes a moment later
    c.eventually("the dependent is collected", || async {
        secrets.get_opt("a-token").await.unwrap().is_none()
    })
    .await;
    assert!(secrets.get_opt("keep").await.unwrap().is_some());

    // Orphan propagation keeps the dependent and drops the reference.
    let owner = api
        .create(&PostParams::default(), &cac(&c, "b", valid_spec()))
        .await
        .unwrap();
    let mut child2 = child.clone();
    child2.metadata.name = Some("b-token".into());
    child2.metadata.owner_references.as_mut().unwrap()[0].name = "b".into();
    child2.metadata.owner_references.as_mut().unwrap()[0].uid = owner.metadata.uid.clone().unwrap();
    secrets
        .create(&PostParams::default(), &child2)
        .await
        .unwrap();
    api.delete("b", &DeleteParams::orphan()).await.unwrap();
    c.eventually("the owner is gone and the dependent orphaned", || async {
        api.get_opt("b").await.unwrap().is_none()
            && secrets
                .get("b-token")
                .await
                .unwrap()
                .metadata
                .owner_references
                .unwrap_or_default()
                .is_empty()
    })
    .await;

    // A reference naming another object than its uid's is dangling: the dependent goes.
    let owner = api
        .create(&PostParams::default(), &cac(&c, "c", valid_spec()))
        .await
        .unwrap();
    let mut misnamed = child.clone();
    misnamed.metadata.name = Some("c-token".into());
    misnamed.metadata.owner_references.as_mut().unwrap()[0].name = "not-c".into();
    misnamed.metadata.owner_references.as_mut().unwrap()[0].uid =
        owner.metadata.uid.clone().unwrap();
    secrets
        .create(&PostParams::default(), &misnamed)
        .await
        .unwrap();
    c.eventually("the misnamed dependent is collected", || async {
        secrets.get_opt("c-token").await.unwrap().is_none()
    })
    .await;
    c.stop().await;
}

#[tokio::test]
async fn deleting_the_crd_removes_its_objects_and_stops_serving() {
    let (c, client, api) = start_with_crd().await;
    api.create(&PostParams::default(), &cac(&c, "a", valid_spec()))
        .await
        .unwrap();
    let crds: Api<CustomResourceDefinition> = Api::all(client);
    crds.delete(
        &c.sub("clearapiclients.clear-operator.io"),
        &DeleteParams::default(),
    )
    .await
    .unwrap();
    c.eventually(
        "the CRD's objects are gone and it is no longer served",
        || async {
            matches!(api.list(&Default::default()).await, Err(kube::Error::Api(s)) if s.code == 404)
        },
    )
    .await;
    c.stop().await;
}

#[tokio::test]
async fn injected_faults_fail_then_recover_and_the_log_counts_writes() {
    if not_on_real_server(
        "injected_faults_fail_then_recover_and_the_log_counts_writes",
        "fault injection and the request log are the emulator's",
    ) {
        return;
    }
    let (c, client, _api) = start_with_crd().await;
    let secrets: Api<Secret> = Api::namespaced(client, &c.ns);
    let emu = c.emu();
    emu.requests().reset();
    // 500, not 503: kube-rs retries 503s by itself.
    emu.faults().fail_next("get", "secrets", 2, 500);
    for _ in 0..2 {
        let err = status_of(secrets.get("x").await.unwrap_err());
        assert_eq!(err.code, 500);
        assert_eq!(err.reason, "InternalError");
    }
    let err = status_of(secrets.get("x").await.unwrap_err());
    assert_eq!(err.code, 404, "faults are used up");
    assert_eq!(emu.requests().count("get", "secrets"), 3);
    assert!(emu.requests().writes().is_empty(), "nothing was written");

    emu.faults()
        .delay_next("list", "secrets", 1, Duration::from_millis(200));
    let started = std::time::Instant::now();
    secrets.list(&Default::default()).await.unwrap();
    assert!(started.elapsed() >= Duration::from_millis(200));
    c.stop().await;
}

#[tokio::test]
async fn controller_owning_secrets_reconciles_on_child_changes() {
    let c = Cluster::start().await;
    let client = c.client.clone();
    let parents: Api<ConfigMap> = Api::namespaced(client.clone(), &c.ns);
    let children: Api<Secret> = Api::namespaced(client.clone(), &c.ns);
    let reconciles = Arc::new(AtomicUsize::new(0));

    struct Ctx {
        secrets: Api<Secret>,
        reconciles: Arc<AtomicUsize>,
    }
    #[derive(Debug, thiserror::Error)]
    #[error("failed to reconcile: {0}")]
    struct ReconcileError(#[from] kube::Error);

    async fn reconcile(cm: Arc<ConfigMap>, ctx: Arc<Ctx>) -> Result<Action, ReconcileError> {
        ctx.reconciles.fetch_add(1, Ordering::SeqCst);
        let name = cm.metadata.name.clone().unwrap();
        let owner = json!({
            "apiVersion": "v1", "kind": "ConfigMap", "name": name,
            "uid": cm.metadata.uid.clone().unwrap(), "controller": true,
        });
        let child = json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": format!("{name}-child"), "ownerReferences": [owner]},
            "stringData": {"k": "v"},
        });
        ctx.secrets
            .patch(
                &format!("{name}-child"),
                &PatchParams::apply("test-controller").force(),
                &Patch::Apply(&child),
            )
            .await?;
        Ok(Action::await_change())
    }
    fn error_policy(_: Arc<ConfigMap>, _: &ReconcileError, _: Arc<Ctx>) -> Action {
        Action::requeue(Duration::from_millis(100))
    }

    let ctx = Arc::new(Ctx {
        secrets: children.clone(),
        reconciles: reconciles.clone(),
    });
    let controller = Controller::new(parents.clone(), watcher::Config::default())
        .owns(children.clone(), watcher::Config::default())
        .run(reconcile, error_policy, ctx)
        .for_each(|_| async {});
    let task = tokio::spawn(controller);

    let parent: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "p"}})).unwrap();
    parents
        .create(&PostParams::default(), &parent)
        .await
        .unwrap();
    let mut child = None;
    for _ in 0..500 {
        child = children.get_opt("p-child").await.unwrap();
        if child.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(child.is_some(), "controller created the child");
    // Let the controller settle, then touch the child: it must reconcile the parent again.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let settled = reconciles.load(Ordering::SeqCst);
    children
        .patch(
            "p-child",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"touched": "yes"}}})),
        )
        .await
        .unwrap();
    let mut grew = false;
    for _ in 0..500 {
        if reconciles.load(Ordering::SeqCst) > settled {
            grew = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(grew, "a child change reconciles the owner");
    task.abort();
    c.stop().await;
}

#[tokio::test]
async fn crd_deletion_waits_for_finalizers_of_its_objects() {
    let (c, client, api) = start_with_crd().await;
    let mut held = cac(&c, "held", valid_spec());
    held.metadata.finalizers = Some(vec!["clear-operator.io/revoke".into()]);
    api.create(&PostParams::default(), &held).await.unwrap();
    api.create(&PostParams::default(), &cac(&c, "free", valid_spec()))
        .await
        .unwrap();
    let crds: Api<CustomResourceDefinition> = Api::all(client);
    crds.delete(
        &c.sub("clearapiclients.clear-operator.io"),
        &DeleteParams::default(),
    )
    .await
    .unwrap();

    let crd = crds
        .get(&c.sub("clearapiclients.clear-operator.io"))
        .await
        .unwrap();
    assert!(crd.metadata.deletion_timestamp.is_some());
    // apiserver's CRD finalizer controller deletes the objects a moment later
    c.eventually(
        "the free object is gone, the held one is marked",
        || async {
            api.get_opt("free").await.unwrap().is_none()
                && api
                    .get("held")
                    .await
                    .unwrap()
                    .metadata
                    .deletion_timestamp
                    .is_some()
        },
    )
    .await;
    let err = status_of(
        api.create(&PostParams::default(), &cac(&c, "new", valid_spec()))
            .await
            .unwrap_err(),
    );
    assert_eq!(err.code, 403);
    assert_eq!(
        err.message,
        c.sub("clearapiclients.clear-operator.io \"new\" is forbidden: create not allowed while custom resource definition is terminating")
    );

    api.patch(
        "held",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .unwrap();
    c.eventually("the CRD is gone", || async {
        crds.get_opt(&c.sub("clearapiclients.clear-operator.io"))
            .await
            .unwrap()
            .is_none()
    })
    .await;
    c.eventually("the resource is no longer served", || async {
        matches!(api.list(&Default::default()).await, Err(kube::Error::Api(s)) if s.code == 404)
    })
    .await;
    c.stop().await;
}

#[tokio::test]
async fn crd_with_a_rule_that_does_not_compile_names_the_rule_once_in_its_cause() {
    let c = Cluster::start().await;
    // refused on both servers; registered for deletion in case a server accepted it
    c.cleanup_later("/apis/apiextensions.k8s.io/v1/customresourcedefinitions/widgets.example.com");
    let crds: Api<CustomResourceDefinition> = Api::all(c.client.clone());
    let crd: CustomResourceDefinition = serde_json::from_value(json!({
        "metadata": {"name": "widgets.example.com"},
        "spec": {
            "group": "example.com",
            "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
            "versions": [{"name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                    "spec": {"type": "object", "x-kubernetes-validations": [{"rule": "self.a >"}]}
                }}}}]
        }
    }))
    .unwrap();
    let err = status_of(crds.create(&PostParams::default(), &crd).await.unwrap_err());
    assert_eq!(err.code, 422);
    let cause = &err.details.unwrap().causes[0];
    assert_eq!(
        cause.field,
        "spec.validation.openAPIV3Schema.properties[spec].x-kubernetes-validations[0].rule"
    );
    assert_eq!(cause.reason, "FieldValueInvalid");
    assert!(
        cause
            .message
            .starts_with(r#"Invalid value: {"Rule":"self.a \u003e","Message":"","MessageExpression":"","Reason":null,"FieldPath":"","OptionalOldSelf":null}: compilation failed: ERROR: <input>:1:9: Syntax error: "#),
        "{}",
        cause.message
    );
    assert!(
        err.message.starts_with(
            r#"CustomResourceDefinition.apiextensions.k8s.io "widgets.example.com" is invalid: spec.validation.openAPIV3Schema.properties[spec].x-kubernetes-validations[0].rule: Invalid value: {"Rule":"self.a \u003e","Message":"","MessageExpression":"","Reason":null,"FieldPath":"","OptionalOldSelf":null}: compilation failed: ERROR: <input>:1:9: Syntax error: "#
        ),
        "{}",
        err.message
    );
    c.stop().await;
}

#[tokio::test]
async fn kube_runtime_finalizer_helper_adds_its_first_finalizer_and_cleans_up() {
    use kube::runtime::finalizer::{Event, finalizer};
    const NAME: &str = "clear-operator.io/revoke";
    let (c, _client, api) = start_with_crd().await;
    let created = api
        .create(&PostParams::default(), &cac(&c, "f", valid_spec()))
        .await
        .unwrap();
    assert!(created.metadata.finalizers.is_none());
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let run = |obj: DynamicObject| {
        let seen = seen.clone();
        let api = api.clone();
        async move {
            finalizer(&api, NAME, Arc::new(obj), |event| async move {
                seen.lock().unwrap().push(match event {
                    Event::Apply(_) => "apply",
                    Event::Cleanup(_) => "cleanup",
                });
                Ok::<_, std::io::Error>(Action::await_change())
            })
            .await
        }
    };
    // First call: the test-null-then-add patch, no reconcile yet.
    run(created).await.unwrap();
    let held = api.get("f").await.unwrap();
    assert_eq!(held.metadata.finalizers, Some(vec![NAME.to_string()]));
    run(held).await.unwrap();
    api.delete("f", &DeleteParams::default()).await.unwrap();
    let deleting = api.get("f").await.unwrap();
    assert!(deleting.metadata.deletion_timestamp.is_some());
    run(deleting).await.unwrap();
    assert!(api.get_opt("f").await.unwrap().is_none());
    assert_eq!(*seen.lock().unwrap(), ["apply", "cleanup"]);
    c.stop().await;
}

#[tokio::test]
async fn crd_defaults_must_survive_pruning_and_strict_validation_judges_only_the_request() {
    let c = Cluster::start().await;
    let client = c.client.clone();
    let gadgets = |limits_default: Value| {
        c.crd(
            &serde_json::to_string(&json!({
                "metadata": {"name": "gadgets.clear-operator.io"},
                "spec": {
                    "group": "clear-operator.io",
                    "scope": "Namespaced",
                    "names": {"plural": "gadgets", "singular": "gadget", "kind": "Gadget"},
                    "versions": [{"name": "v1", "served": true, "storage": true,
                        "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                            "spec": {"type": "object", "properties": {
                                "size": {"type": "integer"},
                                "limits": {"type": "object", "default": limits_default,
                                    "properties": {"rate": {"type": "integer"}}}
                            }}
                        }}}}]
                }
            }))
            .unwrap(),
        )
    };
    // A default its own schema would prune is refused (apiserver never stores one).
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let err = status_of(
        crds.create(
            &PostParams::default(),
            &gadgets(json!({"rate": 5, "burst": 10})),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(err.code, 422);
    assert_eq!(
        err.message,
        c.sub(r#"CustomResourceDefinition.apiextensions.k8s.io "gadgets.clear-operator.io" is invalid: spec.validation.openAPIV3Schema.properties[spec].properties[limits].default: Invalid value: {"burst":10,"rate":5}: must not have unknown fields"#)
    );
    c.install_crd(&gadgets(json!({"rate": 5}))).await;
    let api: Api<DynamicObject> = Api::namespaced_with(
        client,
        &c.ns,
        &ApiResource {
            group: c.group.clone(),
            version: "v1".into(),
            api_version: c.sub("clear-operator.io/v1"),
            kind: "Gadget".into(),
            plural: "gadgets".into(),
        },
    );
    let strict = PatchParams {
        field_validation: Some(kube::api::ValidationDirective::Strict),
        ..PatchParams::apply("tester")
    };
    let applied = json!({"apiVersion": c.sub("clear-operator.io/v1"), "kind": "Gadget",
        "metadata": {"name": "g"}, "spec": {"size": 1}});
    let stored = api
        .patch("g", &strict, &Patch::Apply(&applied))
        .await
        .unwrap();
    assert_eq!(stored.data["spec"]["limits"]["rate"], 5, "defaulted");
    let typo = json!({"apiVersion": c.sub("clear-operator.io/v1"), "kind": "Gadget",
        "metadata": {"name": "h"}, "spec": {"size": 1, "colour": "red"}});
    // Created under strict validation, the misspelt field is a 400 naming it...
    let create = http::Request::post(format!(
        "/apis/{}/v1/namespaces/{}/gadgets?fieldValidation=Strict",
        c.group, c.ns
    ))
    .header("content-type", "application/json")
    .body(serde_json::to_vec(&typo).unwrap())
    .unwrap();
    let err = status_of(c.client.request::<Value>(create).await.unwrap_err());
    assert_eq!(err.code, 400);
    assert!(
        err.message
            .ends_with(r#"strict decoding error: unknown field "spec.colour""#),
        "{}",
        err.message
    );
    // ...while server-side apply fails earlier, turning the configuration into a typed
    // object, with structured-merge-diff's 500 (whatever the directive).
    for pp in [strict, PatchParams::apply("tester")] {
        let err = status_of(api.patch("h", &pp, &Patch::Apply(&typo)).await.unwrap_err());
        assert_eq!(err.code, 500);
        assert_eq!(err.reason, "");
        assert_eq!(
            err.message,
            c.sub("failed to create typed patch object (/h; clear-operator.io/v1, Kind=Gadget): .spec.colour: field not declared in schema")
        );
    }
    assert!(api.get_opt("h").await.unwrap().is_none());
    c.stop().await;
}

#[tokio::test]
async fn a_defaulted_field_the_applier_stops_applying_is_defaulted_again() {
    let (c, _client, api) = start_with_crd().await;
    let pp = PatchParams::apply("tester");
    let with_region = json!({"apiVersion": c.sub("clear-operator.io/v1alpha1"), "kind": "ClearApiClient",
        "metadata": {"name": "r"},
        "spec": {"environment": "sandbox", "workspace": "w", "products": ["GST"],
                 "region": "eu", "baseUrl": "https://eu.example"}});
    let first = api
        .patch("r", &pp, &Patch::Apply(&with_region))
        .await
        .unwrap();
    assert_eq!(first.data["spec"]["region"], "eu");
    let without = json!({"apiVersion": c.sub("clear-operator.io/v1alpha1"), "kind": "ClearApiClient",
        "metadata": {"name": "r"},
        "spec": {"environment": "sandbox", "workspace": "w", "products": ["GST"]}});
    let second = api.patch("r", &pp, &Patch::Apply(&without)).await.unwrap();
    assert_eq!(second.data["spec"]["region"], "india", "{:?}", second.data);
    assert!(second.data["spec"].get("baseUrl").is_none());
    let third = api.patch("r", &pp, &Patch::Apply(&without)).await.unwrap();
    assert_eq!(
        third.metadata.resource_version, second.metadata.resource_version,
        "re-applying the same configuration over a defaulted field writes nothing"
    );
    c.stop().await;
}

#[tokio::test]
async fn main_endpoint_apply_of_a_custom_resource_neither_sets_nor_claims_status() {
    let (c, _client, api) = start_with_crd().await;
    let with_status = |secret: &str| {
        json!({"apiVersion": c.sub("clear-operator.io/v1alpha1"), "kind": "ClearApiClient",
            "metadata": {"name": "s"}, "spec": valid_spec(),
            "status": {"secretName": secret}})
    };
    let owns_status = |obj: &DynamicObject, manager: &str| {
        obj.metadata
            .managed_fields
            .clone()
            .unwrap_or_default()
            .into_iter()
            .any(|m| {
                m.manager.as_deref() == Some(manager)
                    && m.fields_v1.is_some_and(|f| f.0.get("f:status").is_some())
            })
    };
    let created = api
        .patch(
            "s",
            &PatchParams::apply("tester"),
            &Patch::Apply(&with_status("mine")),
        )
        .await
        .unwrap();
    assert!(created.data.get("status").is_none(), "{:?}", created.data);
    assert!(!owns_status(&created, "tester"));

    let status = json!({"apiVersion": c.sub("clear-operator.io/v1alpha1"), "kind": "ClearApiClient",
        "metadata": {"name": "s"}, "status": {"secretName": "operator"}});
    api.patch_status("s", &PatchParams::apply("operator"), &Patch::Apply(&status))
        .await
        .unwrap();
    // Another value for a status field the operator owns is no conflict: it is ignored.
    let updated = api
        .patch(
            "s",
            &PatchParams::apply("tester"),
            &Patch::Apply(&with_status("mine")),
        )
        .await
        .unwrap();
    assert_eq!(updated.data["status"]["secretName"], "operator");
    assert!(!owns_status(&updated, "tester"));
    c.stop().await;
}
