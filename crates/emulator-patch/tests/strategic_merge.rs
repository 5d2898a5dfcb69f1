//! Strategic merge patch on built-in kinds, driven by the patches kubectl 1.32's client-side
//! `kubectl apply` computes (three-way: last-applied, new manifest, live object).

use emulator_patch::{PatchError, apply_strategic_merge_patch};
use serde_json::{Value, json};

fn deployment() -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "web",
            "namespace": "default",
            "uid": "uid-1",
            "creationTimestamp": "2026-01-01T00:00:00Z",
            "labels": {"app": "web", "tier": "front"},
            "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}"}
        },
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "web"}},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "containers": [{
                        "name": "app",
                        "image": "nginx:1.26",
                        "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
                        "ports": [{"containerPort": 80, "protocol": "TCP"}],
                        "volumeMounts": [{"name": "cfg", "mountPath": "/etc/cfg"}]
                    }, {
                        "name": "sidecar",
                        "image": "busybox"
                    }],
                    "volumes": [{"name": "cfg", "configMap": {"name": "settings"}}],
                    "tolerations": [{"key": "a", "operator": "Exists"}]
                }
            }
        },
        "status": {"replicas": 1}
    })
}

fn smp(target: &mut Value, patch: Value) {
    let (api_version, kind) = (
        target["apiVersion"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        target["kind"].as_str().unwrap_or_default().to_string(),
    );
    apply_strategic_merge_patch(target, &patch, &api_version, &kind).expect("patch applies");
}

fn names(list: &Value) -> Vec<&str> {
    list.as_array()
        .expect("a list")
        .iter()
        .map(|item| item["name"].as_str().expect("named"))
        .collect()
}

#[test]
fn kubectl_apply_after_editing_the_manifest_merges_containers_by_name_and_deletes_env_by_name() {
    let mut target = deployment();
    smp(
        &mut target,
        json!({
            "metadata": {
                "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{\"new\":1}\n"},
                "labels": {"tier": null}
            },
            "spec": {
                "replicas": 3,
                "template": {"spec": {
                    "$setElementOrder/containers": [{"name": "app"}, {"name": "sidecar"}],
                    "containers": [{
                        "$setElementOrder/env": [{"name": "A"}],
                        "env": [{"$patch": "delete", "name": "B"}],
                        "image": "nginx:1.27",
                        "name": "app"
                    }]
                }}
            }
        }),
    );
    assert_eq!(target["metadata"]["labels"], json!({"app": "web"}));
    assert_eq!(target["spec"]["replicas"], 3);
    let containers = &target["spec"]["template"]["spec"]["containers"];
    assert_eq!(names(containers), ["app", "sidecar"]);
    assert_eq!(containers[0]["image"], "nginx:1.27");
    assert_eq!(containers[0]["env"], json!([{"name": "A", "value": "1"}]));
    assert_eq!(
        containers[0]["ports"],
        json!([{"containerPort": 80, "protocol": "TCP"}])
    );
    assert_eq!(
        containers[1],
        json!({"name": "sidecar", "image": "busybox"})
    );
    assert_eq!(
        target["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"],
        "{\"new\":1}\n"
    );
    assert_eq!(target["status"], json!({"replicas": 1}), "status untouched");
}

#[test]
fn an_empty_patch_from_a_repeated_kubectl_apply_changes_nothing() {
    let mut target = deployment();
    smp(&mut target, json!({}));
    assert_eq!(target, deployment());
}

#[test]
fn retain_keys_drops_the_rolling_update_block_when_switching_to_recreate() {
    let mut target = deployment();
    smp(
        &mut target,
        json!({"spec": {"strategy": {"$retainKeys": ["type"], "rollingUpdate": null, "type": "Recreate"}}}),
    );
    assert_eq!(target["spec"]["strategy"], json!({"type": "Recreate"}));
}

#[test]
fn retain_keys_on_a_volume_switches_its_source() {
    let mut target = deployment();
    smp(
        &mut target,
        json!({"spec": {"template": {"spec": {
            "$setElementOrder/volumes": [{"name": "cfg"}],
            "volumes": [{"$retainKeys": ["name", "secret"], "configMap": null, "name": "cfg", "secret": {"secretName": "s"}}]
        }}}}),
    );
    assert_eq!(
        target["spec"]["template"]["spec"]["volumes"],
        json!([{"name": "cfg", "secret": {"secretName": "s"}}])
    );
}

#[test]
fn set_element_order_places_a_new_container_where_the_manifest_has_it() {
    let mut target = deployment();
    smp(
        &mut target,
        json!({"spec": {"template": {"spec": {
            "$setElementOrder/containers": [{"name": "app"}, {"name": "init-like"}, {"name": "sidecar"}],
            "containers": [{"name": "init-like", "image": "alpine"}]
        }}}}),
    );
    assert_eq!(
        names(&target["spec"]["template"]["spec"]["containers"]),
        ["app", "init-like", "sidecar"]
    );
}

#[test]
fn set_element_order_keeps_server_only_items_at_their_original_position() {
    let mut target = deployment();
    // "sidecar" was injected by someone else and is not in the manifest.
    smp(
        &mut target,
        json!({"spec": {"template": {"spec": {
            "$setElementOrder/containers": [{"name": "extra"}, {"name": "app"}],
            "containers": [{"name": "extra", "image": "alpine"}]
        }}}}),
    );
    assert_eq!(
        names(&target["spec"]["template"]["spec"]["containers"]),
        ["extra", "app", "sidecar"]
    );
}

#[test]
fn list_replace_directive_replaces_the_whole_container_list() {
    let mut target = deployment();
    smp(
        &mut target,
        json!({"spec": {"template": {"spec": {"containers": [
            {"name": "only", "image": "x"},
            {"$patch": "replace"}
        ]}}}}),
    );
    assert_eq!(
        target["spec"]["template"]["spec"]["containers"],
        json!([{"name": "only", "image": "x"}])
    );
}

#[test]
fn map_replace_directive_replaces_labels_and_map_delete_directive_empties_a_map() {
    let mut target = deployment();
    smp(
        &mut target,
        json!({
            "metadata": {"labels": {"$patch": "replace", "only": "this"}},
            "spec": {"strategy": {"$patch": "delete"}}
        }),
    );
    assert_eq!(target["metadata"]["labels"], json!({"only": "this"}));
    assert_eq!(target["spec"]["strategy"], json!({}));
}

#[test]
fn non_merging_lists_like_tolerations_are_replaced() {
    let mut target = deployment();
    smp(
        &mut target,
        json!({"spec": {"template": {"spec": {"tolerations": [{"key": "b", "operator": "Exists"}]}}}}),
    );
    assert_eq!(
        target["spec"]["template"]["spec"]["tolerations"],
        json!([{"key": "b", "operator": "Exists"}])
    );
}

#[test]
fn container_ports_merge_by_container_port_and_mounts_by_mount_path() {
    let mut target = deployment();
    smp(
        &mut target,
        json!({"spec": {"template": {"spec": {"containers": [{
            "name": "app",
            "ports": [{"containerPort": 80, "name": "http"}, {"containerPort": 9090, "name": "metrics"}],
            "volumeMounts": [{"mountPath": "/etc/cfg", "readOnly": true}]
        }]}}}}),
    );
    let app = &target["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(
        app["ports"],
        json!([
            {"containerPort": 80, "protocol": "TCP", "name": "http"},
            {"containerPort": 9090, "name": "metrics"}
        ])
    );
    assert_eq!(
        app["volumeMounts"],
        json!([{"name": "cfg", "mountPath": "/etc/cfg", "readOnly": true}])
    );
}

#[test]
fn finalizers_merge_as_a_set_and_delete_from_primitive_list_removes_one() {
    let mut target = json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "c", "finalizers": ["a", "b"]}
    });
    smp(
        &mut target,
        json!({"metadata": {"$setElementOrder/finalizers": ["a", "c"], "finalizers": ["c", "a"]}}),
    );
    // "b" is server-only: it cannot be ranked against "c" (absent from the original list), so
    // apimachinery's ordering puts the listed items first.
    assert_eq!(target["metadata"]["finalizers"], json!(["a", "c", "b"]));
    smp(
        &mut target,
        json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["b"], "$setElementOrder/finalizers": ["a", "c"]}}),
    );
    assert_eq!(target["metadata"]["finalizers"], json!(["a", "c"]));
}

#[test]
fn service_ports_merge_by_port() {
    let mut target = json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "web"},
        "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080, "protocol": "TCP"}]}
    });
    smp(
        &mut target,
        json!({"spec": {
            "$setElementOrder/ports": [{"port": 80}, {"port": 443}],
            "ports": [{"port": 80, "targetPort": 8081}, {"port": 443, "targetPort": 8443, "name": "https"}]
        }}),
    );
    assert_eq!(
        target["spec"]["ports"],
        json!([
            {"port": 80, "targetPort": 8081, "protocol": "TCP"},
            {"port": 443, "targetPort": 8443, "name": "https"}
        ])
    );
}

#[test]
fn owner_references_merge_by_uid() {
    let mut target = json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "s", "ownerReferences": [{"uid": "1", "name": "a", "kind": "X", "apiVersion": "v1"}]},
        "data": {"k": "dg=="}
    });
    smp(
        &mut target,
        json!({"metadata": {"ownerReferences": [{"uid": "2", "name": "b", "kind": "X", "apiVersion": "v1"}]}}),
    );
    let uids: Vec<&str> = target["metadata"]["ownerReferences"]
        .as_array()
        .expect("list")
        .iter()
        .map(|o| o["uid"].as_str().expect("uid"))
        .collect();
    assert_eq!(uids, ["1", "2"]);
    smp(
        &mut target,
        json!({"metadata": {"ownerReferences": [{"$patch": "delete", "uid": "1"}]}, "data": {"k": null, "n": "bg=="}}),
    );
    assert_eq!(target["metadata"]["ownerReferences"][0]["uid"], "2");
    assert_eq!(target["data"], json!({"n": "bg=="}));
}

#[test]
fn role_rules_are_atomic() {
    let mut target = json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
        "metadata": {"name": "r"},
        "rules": [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}]
    });
    smp(
        &mut target,
        json!({"rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["list"]}]}),
    );
    assert_eq!(
        target["rules"],
        json!([{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["list"]}])
    );
}

#[test]
fn pod_spec_merges_containers_like_a_template() {
    let mut target = json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
        "spec": {"containers": [{"name": "a", "image": "1"}, {"name": "b", "image": "1"}]}
    });
    smp(
        &mut target,
        json!({"spec": {"containers": [{"name": "b", "image": "2"}]}}),
    );
    assert_eq!(
        target["spec"]["containers"],
        json!([{"name": "a", "image": "1"}, {"name": "b", "image": "2"}])
    );
}

#[test]
fn strategic_merge_on_a_custom_resource_is_unsupported_with_415() {
    let mut target =
        json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}});
    let err = apply_strategic_merge_patch(
        &mut target,
        &json!({"spec": {}}),
        "example.com/v1",
        "Widget",
    )
    .expect_err("no schema");
    assert!(matches!(err, PatchError::Unsupported(_)));
    assert_eq!(err.status_code(), 415);
    assert!(err.to_string().contains("application/merge-patch+json"));
}

#[test]
fn list_items_without_their_merge_key_are_rejected_and_the_target_is_unchanged() {
    let mut target = deployment();
    let err = apply_strategic_merge_patch(
        &mut target,
        &json!({"spec": {"replicas": 9, "template": {"spec": {"containers": [{"image": "x"}]}}}}),
        "apps/v1",
        "Deployment",
    )
    .expect_err("container without name");
    assert_eq!(err.status_code(), 400);
    assert!(err.to_string().contains("merge key"), "{err}");
    assert_eq!(target, deployment());
}

#[test]
fn unknown_patch_directives_are_rejected() {
    let mut target = deployment();
    for patch in [
        json!({"metadata": {"labels": {"$patch": "explode"}}}),
        json!({"$bogus": 1}),
        json!([1]),
    ] {
        let err = apply_strategic_merge_patch(&mut target, &patch, "apps/v1", "Deployment")
            .expect_err("bad directive");
        assert_eq!(err.status_code(), 400, "{patch}");
    }
}

#[test]
fn strategic_merge_cannot_change_uid_or_creation_timestamp() {
    let mut target = deployment();
    smp(
        &mut target,
        json!({"metadata": {"uid": "x", "creationTimestamp": "2030-01-01T00:00:00Z"}}),
    );
    assert_eq!(target["metadata"]["uid"], "uid-1");
    assert_eq!(
        target["metadata"]["creationTimestamp"],
        "2026-01-01T00:00:00Z"
    );
}

#[test]
fn new_fields_from_a_patch_have_their_directives_processed() {
    let mut target =
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"}});
    smp(
        &mut target,
        json!({"spec": {"template": {"spec": {
            "$setElementOrder/containers": [{"name": "a"}],
            "containers": [{"name": "a", "image": "x", "env": [{"name": "E", "value": "1"}]}]
        }}}}),
    );
    assert_eq!(
        target["spec"],
        json!({"template": {"spec": {"containers": [{"name": "a", "image": "x", "env": [{"name": "E", "value": "1"}]}]}}})
    );
}
