//! managedFields bookkeeping of ordinary writes (create, update, non-apply patches).

use emulator_patch::{ApplyOptions, record_update, server_side_apply};
use serde_json::{Value, json};

const T1: &str = "2026-11-25T10:00:00Z";
const T2: &str = "2026-11-25T11:00:00Z";
const T3: &str = "2026-11-25T12:00:00Z";

fn secret() -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "token", "namespace": "default", "labels": {"app": "op"}},
        "type": "Opaque",
        "data": {"token": "c2VjcmV0"}
    })
}

fn managed(object: &Value) -> &Vec<Value> {
    object["metadata"]["managedFields"]
        .as_array()
        .expect("managedFields")
}

fn fields_of<'a>(object: &'a Value, manager: &str) -> &'a Value {
    &managed(object)
        .iter()
        .find(|e| e["manager"] == manager)
        .unwrap_or_else(|| panic!("no entry of {manager}"))["fieldsV1"]
}

#[test]
fn create_records_an_update_entry_for_every_field_the_writer_set() {
    let mut created = secret();
    record_update(None, &mut created, "clear-operator", None, T1);
    assert_eq!(
        managed(&created),
        &vec![json!({
            "manager": "clear-operator",
            "operation": "Update",
            "apiVersion": "v1",
            "time": T1,
            "fieldsType": "FieldsV1",
            "fieldsV1": {
                "f:data": {".": {}, "f:token": {}},
                "f:metadata": {"f:labels": {".": {}, "f:app": {}}},
                "f:type": {}
            }
        })]
    );
}

#[test]
fn an_update_that_changes_nothing_keeps_entries_and_timestamps() {
    let mut old = secret();
    record_update(None, &mut old, "a", None, T1);
    let mut new = old.clone();
    record_update(Some(&old), &mut new, "b", None, T2);
    assert_eq!(new, old);
}

#[test]
fn a_writer_takes_changed_fields_from_an_apply_manager_without_conflict() {
    let applied = server_side_apply(
        None,
        &secret(),
        &ApplyOptions {
            manager: "helm",
            force: false,
            subresource: None,
            now: T1,
        },
    )
    .expect("create");
    let mut edited = applied.clone();
    edited["data"]["token"] = json!("bmV3");
    record_update(Some(&applied), &mut edited, "kubectl-edit", None, T2);
    assert_eq!(
        fields_of(&edited, "kubectl-edit"),
        &json!({"f:data": {"f:token": {}}})
    );
    let helm = fields_of(&edited, "helm");
    assert_eq!(helm["f:data"], Value::Null, "helm lost data.token: {helm}");
    assert_eq!(helm["f:metadata"], json!({"f:labels": {"f:app": {}}}));
}

#[test]
fn repeated_updates_by_one_manager_accumulate_its_fields_and_move_its_timestamp() {
    let mut v1 = secret();
    record_update(None, &mut v1, "op", None, T1);
    let mut v2 = v1.clone();
    v2["metadata"]["annotations"] = json!({"renewed": "yes"});
    record_update(Some(&v1), &mut v2, "op", None, T2);
    let entries = managed(&v2);
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0]["time"], T2);
    assert_eq!(
        entries[0]["fieldsV1"]["f:metadata"],
        json!({"f:annotations": {".": {}, "f:renewed": {}}, "f:labels": {".": {}, "f:app": {}}})
    );
}

#[test]
fn removed_fields_leave_every_managers_set() {
    let mut v1 = secret();
    record_update(None, &mut v1, "a", None, T1);
    let mut v2 = v1.clone();
    v2["metadata"]
        .as_object_mut()
        .expect("meta")
        .remove("labels");
    record_update(Some(&v1), &mut v2, "b", None, T2);
    assert!(fields_of(&v2, "a")["f:metadata"].is_null(), "{v2}");
    assert!(
        managed(&v2).iter().all(|e| e["manager"] != "b"),
        "b changed nothing it keeps"
    );
}

#[test]
fn status_writes_are_recorded_with_their_subresource() {
    let mut v1 = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "d"}, "spec": {"replicas": 1}
    });
    record_update(None, &mut v1, "kubectl-client-side-apply", None, T1);
    let mut v2 = v1.clone();
    v2["status"] = json!({"replicas": 1, "conditions": [{"type": "Available", "status": "True"}]});
    // Subresource writes never take managedFields from the request body.
    v2["metadata"]["managedFields"] = json!([]);
    record_update(
        Some(&v1),
        &mut v2,
        "kube-controller-manager",
        Some("status"),
        T2,
    );
    let entry = managed(&v2)
        .iter()
        .find(|e| e["manager"] == "kube-controller-manager")
        .expect("status entry");
    assert_eq!(entry["subresource"], "status");
    assert_eq!(entry["operation"], "Update");
    assert_eq!(
        entry["fieldsV1"]["f:status"]["f:conditions"],
        json!({".": {}, "k:{\"type\":\"Available\"}": {".": {}, "f:status": {}, "f:type": {}}})
    );
    assert!(
        managed(&v2)
            .iter()
            .any(|e| e["manager"] == "kubectl-client-side-apply")
    );
}

#[test]
fn managed_fields_set_by_the_writer_are_kept_as_kubectl_migration_needs() {
    let mut v1 = secret();
    record_update(None, &mut v1, "kubectl-client-side-apply", None, T1);
    let mut migrated = v1.clone();
    let mut entry = managed(&v1)[0].clone();
    entry["manager"] = json!("kubectl");
    entry["operation"] = json!("Apply");
    migrated["metadata"]["managedFields"] = json!([entry]);
    record_update(Some(&v1), &mut migrated, "kubectl", None, T2);
    assert_eq!(managed(&migrated).len(), 1);
    assert_eq!(managed(&migrated)[0]["manager"], "kubectl");
    assert_eq!(managed(&migrated)[0]["operation"], "Apply");
}

#[test]
fn a_single_empty_entry_resets_managed_fields() {
    let mut v1 = secret();
    record_update(None, &mut v1, "a", None, T1);
    let mut v2 = v1.clone();
    v2["metadata"]["managedFields"] = json!([{}]);
    record_update(Some(&v1), &mut v2, "b", None, T2);
    assert!(v2["metadata"].get("managedFields").is_none(), "{v2}");
}

#[test]
fn garbage_or_empty_managed_fields_in_a_write_fall_back_to_the_stored_ones() {
    let mut v1 = secret();
    record_update(None, &mut v1, "a", None, T1);
    for body in [
        json!([]),
        json!("nonsense"),
        json!([{"manager": "x", "operation": "Nope"}]),
    ] {
        let mut v2 = v1.clone();
        v2["metadata"]["managedFields"] = body;
        record_update(Some(&v1), &mut v2, "b", None, T3);
        assert_eq!(v2, v1);
    }
}

#[test]
fn objects_without_metadata_are_left_alone() {
    let mut value = json!({"kind": "Status"});
    record_update(None, &mut value, "a", None, T1);
    assert_eq!(value, json!({"kind": "Status"}));
}

#[test]
fn custom_resources_record_new_maps_with_a_dot_and_lists_as_leaves() {
    let mut created = json!({
        "apiVersion": "example.com/v1", "kind": "Widget",
        "metadata": {"name": "w"},
        "spec": {"items": [1, 2], "nested": {"a": true}}
    });
    record_update(None, &mut created, "client", None, T1);
    assert_eq!(
        fields_of(&created, "client"),
        &json!({"f:spec": {".": {}, "f:items": {}, "f:nested": {".": {}, "f:a": {}}}})
    );
}
