//! Server-side apply as kubectl --server-side, helm 4 and kube-rs controllers use it:
//! ownership, pruning, conflicts, force and idempotence.

use emulator_patch::{ApplyOptions, PatchError, record_update, server_side_apply};
use serde_json::{Value, json};

const T1: &str = "2026-11-25T10:00:00Z";
const T2: &str = "2026-11-25T11:00:00Z";
const T3: &str = "2026-11-25T12:00:00Z";

fn opts<'a>(manager: &'a str, now: &'a str) -> ApplyOptions<'a> {
    ApplyOptions {
        manager,
        force: false,
        subresource: None,
        now,
    }
}

fn forced<'a>(manager: &'a str, now: &'a str) -> ApplyOptions<'a> {
    ApplyOptions {
        force: true,
        ..opts(manager, now)
    }
}

/// What the emulator adds on create.
fn stored(mut object: Value) -> Value {
    let meta = object["metadata"].as_object_mut().expect("metadata");
    meta.insert("uid".into(), json!("uid-1"));
    meta.insert("resourceVersion".into(), json!("1"));
    meta.insert("creationTimestamp".into(), json!(T1));
    object
}

fn deployment_config(replicas: u32, image: &str) -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "app", "image": image}]}
            }
        }
    })
}

fn entries(object: &Value) -> &Vec<Value> {
    object["metadata"]["managedFields"]
        .as_array()
        .expect("managedFields")
}

fn entry<'a>(object: &'a Value, manager: &str, operation: &str) -> &'a Value {
    entries(object)
        .iter()
        .find(|e| e["manager"] == manager && e["operation"] == operation)
        .unwrap_or_else(|| panic!("no {operation} entry of {manager} in {object}"))
}

fn has_entry(object: &Value, manager: &str) -> bool {
    entries(object).iter().any(|e| e["manager"] == manager)
}

#[test]
fn apply_creates_the_object_and_records_an_apply_entry_in_fields_v1_format() {
    let created = server_side_apply(
        None,
        &deployment_config(2, "nginx:1.27"),
        &opts("kubectl", T1),
    )
    .expect("create");
    assert_eq!(created["spec"]["replicas"], 2);
    let managed = entries(&created);
    assert_eq!(managed.len(), 1);
    assert_eq!(
        managed[0],
        json!({
            "manager": "kubectl",
            "operation": "Apply",
            "apiVersion": "apps/v1",
            "time": T1,
            "fieldsType": "FieldsV1",
            "fieldsV1": {
                "f:metadata": {"f:labels": {"f:app": {}}},
                "f:spec": {
                    "f:replicas": {},
                    "f:selector": {},
                    "f:template": {
                        "f:metadata": {"f:labels": {"f:app": {}}},
                        "f:spec": {"f:containers": {
                            "k:{\"name\":\"app\"}": {".": {}, "f:image": {}, "f:name": {}}
                        }}
                    }
                }
            }
        })
    );
}

#[test]
fn applying_an_identical_configuration_again_returns_the_identical_object() {
    let config = deployment_config(2, "nginx:1.27");
    let live = stored(server_side_apply(None, &config, &opts("kubectl", T1)).expect("create"));
    let again = server_side_apply(Some(&live), &config, &forced("kubectl", T2)).expect("re-apply");
    assert_eq!(
        again, live,
        "no timestamp or content change on a no-op apply"
    );
}

#[test]
fn kube_rs_status_apply_twice_is_a_no_op_the_second_time() {
    let live = stored(json!({
        "apiVersion": "example.com/v1", "kind": "Widget",
        "metadata": {"name": "w", "namespace": "default"},
        "spec": {"size": 1}
    }));
    let status = json!({
        "apiVersion": "example.com/v1", "kind": "Widget",
        "metadata": {"name": "w"},
        "status": {"phase": "Ready", "conditions": [{"type": "Ready", "status": "True"}]}
    });
    let status_opts = |now| ApplyOptions {
        manager: "widget-controller",
        force: true,
        subresource: Some("status"),
        now,
    };
    let first = server_side_apply(Some(&live), &status, &status_opts(T2)).expect("first");
    let second = server_side_apply(Some(&first), &status, &status_opts(T3)).expect("second");
    assert_eq!(second, first);
    assert_eq!(first["status"]["phase"], "Ready");
}

#[test]
fn fields_the_manager_stops_applying_are_removed() {
    let mut config = deployment_config(2, "nginx:1.27");
    config["metadata"]["labels"]["tier"] = json!("front");
    config["metadata"]["annotations"] = json!({"note": "x"});
    let live = stored(server_side_apply(None, &config, &opts("helm", T1)).expect("create"));

    let shrunk = deployment_config(2, "nginx:1.27");
    let next = server_side_apply(Some(&live), &shrunk, &forced("helm", T2)).expect("apply");
    assert_eq!(next["metadata"]["labels"], json!({"app": "web"}));
    assert!(next["metadata"].get("annotations").is_none(), "{next}");
    let owned = &entry(&next, "helm", "Apply")["fieldsV1"]["f:metadata"];
    assert_eq!(owned, &json!({"f:labels": {"f:app": {}}}));
    assert_eq!(next["metadata"]["uid"], "uid-1");
    assert_eq!(next["metadata"]["creationTimestamp"], T1);
}

#[test]
fn a_container_dropped_from_the_chart_is_removed_but_another_managers_container_stays() {
    let live = stored(
        server_side_apply(None, &deployment_config(1, "a"), &opts("helm", T1)).expect("create"),
    );
    let sidecar = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"template": {"spec": {"containers": [{"name": "sidecar", "image": "s"}]}}}
    });
    let live = server_side_apply(Some(&live), &sidecar, &opts("injector", T2)).expect("sidecar");
    let containers: Vec<&str> = live["spec"]["template"]["spec"]["containers"]
        .as_array()
        .expect("list")
        .iter()
        .map(|c| c["name"].as_str().expect("name"))
        .collect();
    assert_eq!(containers, ["app", "sidecar"]);

    let mut without_app = deployment_config(1, "a");
    without_app["spec"]["template"]["spec"]["containers"] = json!([]);
    let next = server_side_apply(Some(&live), &without_app, &forced("helm", T3)).expect("apply");
    assert_eq!(
        next["spec"]["template"]["spec"]["containers"],
        json!([{"name": "sidecar", "image": "s"}])
    );
}

#[test]
fn a_dropped_field_another_manager_also_owns_stays() {
    let config = |data: Value| json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": data});
    let live = stored(
        server_side_apply(
            None,
            &config(json!({"shared": "1", "mine": "2"})),
            &opts("a", T1),
        )
        .expect("create"),
    );
    let live = server_side_apply(Some(&live), &config(json!({"shared": "1"})), &opts("b", T2))
        .expect("same value is no conflict");
    assert_eq!(
        entry(&live, "b", "Apply")["fieldsV1"],
        json!({"f:data": {"f:shared": {}}})
    );
    let next = server_side_apply(Some(&live), &config(json!({})), &opts("a", T3)).expect("drop");
    assert_eq!(next["data"], json!({"shared": "1"}));
}

#[test]
fn two_managers_applying_the_same_value_share_the_field_without_conflict() {
    let live = stored(
        server_side_apply(None, &deployment_config(2, "x"), &opts("kubectl", T1)).expect("create"),
    );
    let next = server_side_apply(Some(&live), &deployment_config(2, "x"), &opts("helm", T2))
        .expect("no conflict");
    for manager in ["kubectl", "helm"] {
        assert_eq!(
            entry(&next, manager, "Apply")["fieldsV1"]["f:spec"]["f:replicas"],
            json!({})
        );
    }
    assert_eq!(next["spec"], live["spec"]);
}

#[test]
fn changing_a_field_owned_by_an_update_manager_is_a_conflict_worded_like_kube_apiserver() {
    let mut created = deployment_config(1, "nginx");
    record_update(None, &mut created, "kubectl-client-side-apply", None, T1);
    let live = stored(created);
    let err = server_side_apply(
        Some(&live),
        &deployment_config(3, "nginx"),
        &opts("kubectl", T2),
    )
    .expect_err("conflict");
    assert_eq!(err.status_code(), 409);
    let PatchError::Conflict { message, causes } = err else {
        panic!("not a conflict");
    };
    assert_eq!(
        message,
        r#"Apply failed with 1 conflict: conflict with "kubectl-client-side-apply" using apps/v1: .spec.replicas"#
    );
    assert_eq!(causes.len(), 1);
    assert_eq!(causes[0].manager, "kubectl-client-side-apply");
    assert_eq!(causes[0].field, ".spec.replicas");
}

#[test]
fn several_conflicts_are_listed_per_manager() {
    let live = stored(
        server_side_apply(None, &deployment_config(1, "one"), &opts("helm", T1)).expect("create"),
    );
    let err = server_side_apply(
        Some(&live),
        &deployment_config(5, "two"),
        &opts("kubectl", T2),
    )
    .expect_err("conflicts");
    let PatchError::Conflict { message, causes } = err else {
        panic!("not a conflict");
    };
    assert_eq!(
        message,
        "Apply failed with 2 conflicts: conflicts with \"helm\":\n- .spec.replicas\n- .spec.template.spec.containers[name=\"app\"].image"
    );
    let fields: Vec<&str> = causes.iter().map(|c| c.field.as_str()).collect();
    assert_eq!(
        fields,
        [
            ".spec.replicas",
            ".spec.template.spec.containers[name=\"app\"].image"
        ]
    );
}

#[test]
fn force_takes_ownership_of_conflicting_fields() {
    let live = stored(
        server_side_apply(None, &deployment_config(1, "one"), &opts("helm", T1)).expect("create"),
    );
    let scale = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"replicas": 4}
    });
    let next = server_side_apply(Some(&live), &scale, &forced("autoscaler", T2)).expect("forced");
    assert_eq!(next["spec"]["replicas"], 4);
    assert_eq!(
        entry(&next, "autoscaler", "Apply")["fieldsV1"],
        json!({"f:spec": {"f:replicas": {}}})
    );
    let helm = &entry(&next, "helm", "Apply")["fieldsV1"]["f:spec"];
    assert!(
        helm.get("f:replicas").is_none(),
        "helm lost replicas: {helm}"
    );
    assert!(helm.get("f:template").is_some());

    // helm no longer owns replicas, so dropping it from the chart does not remove it.
    let mut chart = deployment_config(1, "one");
    chart["spec"]
        .as_object_mut()
        .expect("spec")
        .remove("replicas");
    let after = server_side_apply(Some(&next), &chart, &opts("helm", T3)).expect("no conflict");
    assert_eq!(after["spec"]["replicas"], 4);
}

#[test]
fn a_manager_whose_fields_are_all_taken_disappears_from_managed_fields() {
    let small = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"k": "1"}});
    let live = stored(server_side_apply(None, &small, &opts("first", T1)).expect("create"));
    let mut taken = small.clone();
    taken["data"]["k"] = json!("2");
    let next = server_side_apply(Some(&live), &taken, &forced("second", T2)).expect("forced");
    assert!(!has_entry(&next, "first"));
    assert!(has_entry(&next, "second"));
}

#[test]
fn identity_fields_are_not_ownership_conflicts() {
    let live = stored(
        server_side_apply(None, &deployment_config(1, "x"), &opts("a", T1)).expect("create"),
    );
    let mut other = deployment_config(1, "x");
    other["apiVersion"] = json!("apps/v1");
    let next = server_side_apply(Some(&live), &other, &opts("b", T2)).expect("no conflict");
    let owned = &entry(&next, "b", "Apply")["fieldsV1"];
    assert!(owned.get("f:apiVersion").is_none());
    assert!(owned["f:metadata"].get("f:name").is_none());
}

#[test]
fn applied_configuration_with_managed_fields_is_invalid() {
    let mut config = deployment_config(1, "x");
    config["metadata"]["managedFields"] =
        json!([{"manager": "x", "operation": "Apply", "fieldsType": "FieldsV1", "fieldsV1": {}}]);
    let err = server_side_apply(None, &config, &opts("a", T1)).expect_err("invalid");
    assert!(matches!(err, PatchError::Invalid(_)));
    assert_eq!(err.status_code(), 400);
}

#[test]
fn status_subresource_apply_owns_and_changes_only_status() {
    let live = stored(
        server_side_apply(None, &deployment_config(1, "x"), &opts("helm", T1)).expect("create"),
    );
    let mut config = deployment_config(9, "ignored");
    config["status"] =
        json!({"readyReplicas": 1, "conditions": [{"type": "Available", "status": "True"}]});
    let status_opts = ApplyOptions {
        manager: "controller",
        force: true,
        subresource: Some("status"),
        now: T2,
    };
    let next = server_side_apply(Some(&live), &config, &status_opts).expect("status apply");
    assert_eq!(next["spec"], live["spec"]);
    assert_eq!(next["status"]["readyReplicas"], 1);
    let mine = entry(&next, "controller", "Apply");
    assert_eq!(mine["subresource"], "status");
    assert_eq!(
        mine["fieldsV1"],
        json!({"f:status": {
            "f:conditions": {"k:{\"type\":\"Available\"}": {".": {}, "f:status": {}, "f:type": {}}},
            "f:readyReplicas": {}
        }})
    );
}

#[test]
fn custom_resource_lists_are_atomic_and_maps_granular() {
    let config = json!({
        "apiVersion": "example.com/v1", "kind": "Widget",
        "metadata": {"name": "w"},
        "spec": {"items": ["a", "b"], "settings": {"x": 1}}
    });
    let created = server_side_apply(None, &config, &opts("me", T1)).expect("create");
    assert_eq!(
        entry(&created, "me", "Apply")["fieldsV1"],
        json!({"f:spec": {"f:items": {}, "f:settings": {"f:x": {}}}})
    );
    let live = stored(created);
    let mut other = config.clone();
    other["spec"] = json!({"items": ["c"]});
    let err = server_side_apply(Some(&live), &other, &opts("you", T2)).expect_err("conflict");
    assert!(err.to_string().ends_with(".spec.items"), "{err}");
}

#[test]
fn finalizers_are_owned_per_value() {
    let config = |finalizers: Value| json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "finalizers": finalizers}});
    let live =
        stored(server_side_apply(None, &config(json!(["a/x"])), &opts("a", T1)).expect("create"));
    let live = server_side_apply(Some(&live), &config(json!(["b/y"])), &opts("b", T2)).expect("b");
    assert_eq!(live["metadata"]["finalizers"], json!(["a/x", "b/y"]));
    assert_eq!(
        entry(&live, "b", "Apply")["fieldsV1"],
        json!({"f:metadata": {"f:finalizers": {"v:\"b/y\"": {}}}})
    );
    let live = server_side_apply(Some(&live), &config(json!([])), &opts("a", T3)).expect("drop");
    assert_eq!(live["metadata"]["finalizers"], json!(["b/y"]));
}

#[test]
fn apply_keeps_server_set_metadata_and_a_given_resource_version() {
    let live = stored(
        server_side_apply(None, &deployment_config(1, "x"), &opts("a", T1)).expect("create"),
    );
    let mut config = deployment_config(1, "x");
    config["metadata"]["uid"] = json!("forged");
    config["metadata"]["creationTimestamp"] = json!(T3);
    config["metadata"]["resourceVersion"] = json!("0");
    let next = server_side_apply(Some(&live), &config, &opts("a", T2)).expect("apply");
    assert_eq!(next["metadata"]["uid"], "uid-1");
    assert_eq!(next["metadata"]["creationTimestamp"], T1);
    assert_eq!(
        next["metadata"]["resourceVersion"], "0",
        "the emulator checks it as a precondition"
    );
    let plain =
        server_side_apply(Some(&live), &deployment_config(1, "x"), &opts("a", T2)).expect("apply");
    assert_eq!(plain["metadata"]["resourceVersion"], "1");
}

#[test]
fn nulls_in_the_applied_configuration_are_ignored() {
    let mut config = deployment_config(1, "x");
    config["spec"]["paused"] = Value::Null;
    config["spec"]["template"]["metadata"]["creationTimestamp"] = Value::Null;
    let created = server_side_apply(None, &config, &opts("kubectl", T1)).expect("create");
    assert!(created["spec"].get("paused").is_none());
    assert!(
        created["spec"]["template"]["metadata"]
            .get("creationTimestamp")
            .is_none()
    );
}

#[test]
fn keyed_lists_merge_items_from_different_managers_and_order_new_items_last() {
    let base = json!({
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"},
        "spec": {"ports": [{"port": 80, "protocol": "TCP", "targetPort": 8080}]}
    });
    let live = stored(server_side_apply(None, &base, &opts("a", T1)).expect("create"));
    assert_eq!(
        entry(&live, "a", "Apply")["fieldsV1"],
        json!({"f:spec": {"f:ports": {"k:{\"port\":80,\"protocol\":\"TCP\"}": {
            ".": {}, "f:port": {}, "f:protocol": {}, "f:targetPort": {}
        }}}})
    );
    let extra = json!({
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"},
        "spec": {"ports": [{"port": 9090, "protocol": "TCP"}]}
    });
    let next = server_side_apply(Some(&live), &extra, &opts("b", T2)).expect("merge");
    assert_eq!(
        next["spec"]["ports"],
        json!([{"port": 80, "protocol": "TCP", "targetPort": 8080}, {"port": 9090, "protocol": "TCP"}])
    );
}

#[test]
fn ports_applied_without_protocol_match_the_stored_defaulted_ports() {
    let chart = json!({
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"},
        "spec": {"ports": [{"port": 80, "targetPort": "http"}]}
    });
    let mut live = stored(server_side_apply(None, &chart, &opts("helm", T1)).expect("create"));
    // The emulator defaults protocol on write, as kube-apiserver does.
    live["spec"]["ports"][0]["protocol"] = json!("TCP");
    let again = server_side_apply(Some(&live), &chart, &forced("helm", T2)).expect("upgrade");
    assert_eq!(again, live, "same item, no duplicate port");
    assert_eq!(
        entry(&again, "helm", "Apply")["fieldsV1"]["f:spec"]["f:ports"],
        json!({"k:{\"port\":80,\"protocol\":\"TCP\"}": {".": {}, "f:port": {}, "f:targetPort": {}}})
    );
}

#[test]
fn status_in_a_main_endpoint_apply_of_a_built_in_kind_is_ignored() {
    let mut config = deployment_config(1, "x");
    config["status"] = json!({"replicas": 5});
    let created = server_side_apply(None, &config, &opts("kubectl", T1)).expect("create");
    assert!(created.get("status").is_none(), "{created}");
    assert!(
        entry(&created, "kubectl", "Apply")["fieldsV1"]
            .get("f:status")
            .is_none()
    );
}

#[test]
fn a_label_dropped_from_the_configuration_goes_even_if_someone_else_created_the_labels_map() {
    let mut created = json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "c", "labels": {"x": "1"}}
    });
    record_update(None, &mut created, "creator", None, T1);
    let live = stored(created);
    let with_label = json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "c", "labels": {"mine": "2"}}
    });
    let live = server_side_apply(Some(&live), &with_label, &opts("me", T2)).expect("apply");
    assert_eq!(live["metadata"]["labels"], json!({"x": "1", "mine": "2"}));
    let without = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}});
    let next = server_side_apply(Some(&live), &without, &opts("me", T3)).expect("apply");
    assert_eq!(next["metadata"]["labels"], json!({"x": "1"}));
}

#[test]
fn an_env_var_dropped_from_a_container_is_removed_and_the_container_kept() {
    let mut config = deployment_config(1, "x");
    config["spec"]["template"]["spec"]["containers"][0]["env"] =
        json!([{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]);
    let live = stored(server_side_apply(None, &config, &opts("helm", T1)).expect("create"));
    config["spec"]["template"]["spec"]["containers"][0]["env"] =
        json!([{"name": "A", "value": "1"}]);
    let next = server_side_apply(Some(&live), &config, &opts("helm", T2)).expect("apply");
    assert_eq!(
        next["spec"]["template"]["spec"]["containers"],
        json!([{"name": "app", "image": "x", "env": [{"name": "A", "value": "1"}]}])
    );
    config["spec"]["template"]["spec"]["containers"][0]
        .as_object_mut()
        .expect("container")
        .remove("env");
    let last = server_side_apply(Some(&next), &config, &opts("helm", T3)).expect("apply");
    assert_eq!(
        last["spec"]["template"]["spec"]["containers"],
        json!([{"name": "app", "image": "x"}])
    );
}

#[test]
fn reordering_env_in_the_configuration_reorders_the_live_list() {
    let mut config = deployment_config(1, "x");
    config["spec"]["template"]["spec"]["containers"][0]["env"] =
        json!([{"name": "A", "value": "1"}, {"name": "B", "value": "$(A)"}]);
    let live = stored(server_side_apply(None, &config, &opts("helm", T1)).expect("create"));
    config["spec"]["template"]["spec"]["containers"][0]["env"] =
        json!([{"name": "B", "value": "2"}, {"name": "A", "value": "1"}]);
    let next = server_side_apply(Some(&live), &config, &opts("helm", T2)).expect("apply");
    assert_eq!(
        next["spec"]["template"]["spec"]["containers"][0]["env"],
        json!([{"name": "B", "value": "2"}, {"name": "A", "value": "1"}])
    );
}
