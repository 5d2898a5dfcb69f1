//! JSON merge patch (RFC 7386) and JSON patch (RFC 6902) as kubectl annotate/label and
//! kube-rs `Patch::Merge`/`Patch::Json` use them.

use emulator_patch::{PatchError, apply_json_patch, apply_merge_patch};
use serde_json::json;

fn config_map() -> serde_json::Value {
    json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": "settings",
            "namespace": "default",
            "uid": "0b6f0c3e-1",
            "resourceVersion": "7",
            "creationTimestamp": "2026-01-01T00:00:00Z",
            "labels": {"app": "web", "tier": "front"}
        },
        "data": {"a": "1", "b": "2"},
        "binaryData": null
    })
}

#[test]
fn merge_patch_null_deletes_objects_merge_and_arrays_replace() {
    let mut target =
        json!({"spec": {"list": [1, 2, 3], "keep": true, "drop": "x", "nested": {"a": 1}}});
    apply_merge_patch(
        &mut target,
        &json!({"spec": {"list": [9], "drop": null, "nested": {"b": 2}}}),
    );
    assert_eq!(
        target,
        json!({"spec": {"list": [9], "keep": true, "nested": {"a": 1, "b": 2}}})
    );
}

#[test]
fn kubectl_label_overwrite_and_label_removal_patches_apply() {
    let mut target = config_map();
    apply_merge_patch(
        &mut target,
        &json!({"metadata": {"labels": {"tier": null, "env": "prod"}}}),
    );
    assert_eq!(
        target["metadata"]["labels"],
        json!({"app": "web", "env": "prod"})
    );
}

#[test]
fn kubectl_annotate_overwrite_adds_the_annotations_map_when_missing() {
    let mut target = config_map();
    apply_merge_patch(
        &mut target,
        &json!({"metadata": {"annotations": {"note": "hello"}}}),
    );
    assert_eq!(target["metadata"]["annotations"], json!({"note": "hello"}));
}

#[test]
fn merge_patch_cannot_change_uid_or_creation_timestamp_but_may_carry_a_resource_version() {
    let mut target = config_map();
    apply_merge_patch(
        &mut target,
        &json!({"metadata": {"uid": "other", "creationTimestamp": null, "resourceVersion": "3"}}),
    );
    assert_eq!(target["metadata"]["uid"], "0b6f0c3e-1");
    assert_eq!(
        target["metadata"]["creationTimestamp"],
        "2026-01-01T00:00:00Z"
    );
    assert_eq!(target["metadata"]["resourceVersion"], "3");
}

#[test]
fn merge_patch_deleting_all_metadata_still_keeps_server_set_fields() {
    let mut target = config_map();
    apply_merge_patch(&mut target, &json!({"metadata": null}));
    assert_eq!(
        target["metadata"],
        json!({"uid": "0b6f0c3e-1", "creationTimestamp": "2026-01-01T00:00:00Z"})
    );
}

#[test]
fn json_patch_adds_replaces_and_removes() {
    let mut target = config_map();
    apply_json_patch(
        &mut target,
        &json!([
            {"op": "add", "path": "/data/c", "value": "3"},
            {"op": "replace", "path": "/data/a", "value": "one"},
            {"op": "remove", "path": "/data/b"},
            {"op": "add", "path": "/metadata/labels/x~1y", "value": "z"}
        ]),
    )
    .expect("patch applies");
    assert_eq!(target["data"], json!({"a": "one", "c": "3"}));
    assert_eq!(target["metadata"]["labels"]["x/y"], "z");
}

#[test]
fn json_patch_failed_test_op_is_invalid_with_422_and_leaves_the_target_unchanged() {
    let mut target = config_map();
    let before = target.clone();
    let err = apply_json_patch(
        &mut target,
        &json!([
            {"op": "replace", "path": "/data/a", "value": "changed"},
            {"op": "test", "path": "/metadata/resourceVersion", "value": "6"}
        ]),
    )
    .expect_err("test op fails");
    assert!(matches!(err, PatchError::Invalid(_)), "{err:?}");
    assert_eq!(err.status_code(), 422);
    assert_eq!(target, before);
}

#[test]
fn json_patch_on_a_missing_path_is_422() {
    let mut target = config_map();
    let err = apply_json_patch(&mut target, &json!([{"op": "remove", "path": "/spec/x"}]))
        .expect_err("nothing to remove");
    assert_eq!(err.status_code(), 422);
}

#[test]
fn malformed_json_patch_documents_are_400() {
    let mut target = config_map();
    for bad in [
        json!({"op": "add"}),
        json!([{"op": "frobnicate", "path": "/a"}]),
        json!([{"op": "add", "value": 1}]),
    ] {
        let err = apply_json_patch(&mut target, &bad).expect_err("malformed");
        assert!(matches!(err, PatchError::Invalid(_)));
        assert_eq!(err.status_code(), 400, "{bad}");
    }
}

#[test]
fn json_patch_cannot_change_uid() {
    let mut target = config_map();
    apply_json_patch(
        &mut target,
        &json!([{"op": "replace", "path": "/metadata/uid", "value": "stolen"}]),
    )
    .expect("patch applies");
    assert_eq!(target["metadata"]["uid"], "0b6f0c3e-1");
}

#[test]
fn kube_rs_finalizer_patch_tests_null_for_absent_finalizers_then_adds_them() {
    let mut target = config_map();
    apply_json_patch(
        &mut target,
        &json!([
            {"op": "test", "path": "/metadata/finalizers", "value": null},
            {"op": "add", "path": "/metadata/finalizers", "value": ["example.com/cleanup"]}
        ]),
    )
    .expect("null test passes for a missing member");
    assert_eq!(
        target["metadata"]["finalizers"],
        json!(["example.com/cleanup"])
    );

    // The same patch again now fails its test: someone else added finalizers meanwhile.
    let err = apply_json_patch(
        &mut target,
        &json!([
            {"op": "test", "path": "/metadata/finalizers", "value": null},
            {"op": "add", "path": "/metadata/finalizers", "value": ["example.com/cleanup"]}
        ]),
    )
    .expect_err("finalizers exist now");
    assert_eq!(err.status_code(), 422);
}

#[test]
fn kube_rs_finalizer_removal_patch_tests_the_list_then_removes_by_index() {
    let mut target = config_map();
    target["metadata"]["finalizers"] = json!(["a", "example.com/cleanup"]);
    apply_json_patch(
        &mut target,
        &json!([
            {"op": "test", "path": "/metadata/finalizers/1", "value": "example.com/cleanup"},
            {"op": "remove", "path": "/metadata/finalizers/1"}
        ]),
    )
    .expect("patch applies");
    assert_eq!(target["metadata"]["finalizers"], json!(["a"]));
}
