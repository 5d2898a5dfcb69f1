//! Whole kubectl 1.32 flows replayed with the request bodies kubectl really sent (captured
//! with `-v=9` into tests/fixtures/kubectl-1.32): client-side apply of an edited manifest,
//! then `kubectl apply --server-side` taking over, including kubectl's migration of
//! client-side-apply ownership through a JSON patch of managedFields.

use emulator_patch::{
    ApplyOptions, apply_json_patch, apply_strategic_merge_patch, record_update, server_side_apply,
};
use serde_json::{Value, json};

const CSA: &str = "kubectl-client-side-apply";

fn fixture(name: &str) -> Value {
    let path = format!(
        "{}/tests/fixtures/kubectl-1.32/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The Deployment as stored after `kubectl apply -f` created it.
fn created() -> Value {
    let mut live = fixture("deployment-live.json");
    record_update(None, &mut live, CSA, None, "2026-11-25T10:00:00Z");
    live
}

/// The Deployment after `kubectl apply -f` of the edited manifest.
fn edited() -> Value {
    let live = created();
    let mut next = live.clone();
    apply_strategic_merge_patch(
        &mut next,
        &fixture("apply-edited-manifest.strategic.json"),
        "apps/v1",
        "Deployment",
    )
    .expect("kubectl's patch applies");
    record_update(Some(&live), &mut next, CSA, None, "2026-11-25T10:01:00Z");
    next
}

fn apply(live: &Value, body: &Value, manager: &str, now: &str) -> Value {
    server_side_apply(
        Some(live),
        body,
        &ApplyOptions {
            manager,
            force: false,
            subresource: None,
            now,
        },
    )
    .unwrap_or_else(|e| panic!("apply by {manager} failed: {e}"))
}

fn managers(object: &Value) -> Vec<String> {
    object["metadata"]["managedFields"]
        .as_array()
        .map(|entries| {
            entries
                .iter()
                .map(|e| {
                    format!(
                        "{}/{}",
                        e["manager"].as_str().unwrap_or(""),
                        e["operation"].as_str().unwrap_or("")
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn client_side_apply_of_the_edited_manifest_gives_the_manifest_state() {
    let next = edited();
    assert_eq!(next["metadata"]["labels"], json!({"app": "web"}));
    assert_eq!(next["metadata"]["finalizers"], json!(["example.com/x"]));
    let spec = &next["spec"];
    assert_eq!(spec["replicas"], 3);
    assert_eq!(spec["strategy"], json!({"type": "Recreate"}));
    assert_eq!(
        spec["progressDeadlineSeconds"], 600,
        "server defaults survive"
    );
    assert_eq!(
        spec["template"]["spec"],
        json!({
            "containers": [
                {
                    "env": [{"name": "A", "value": "1"}],
                    "image": "nginx:1.27",
                    "name": "app",
                    "ports": [{"containerPort": 80}, {"containerPort": 9090, "name": "metrics"}]
                },
                {"image": "busybox", "name": "sidecar"}
            ],
            "volumes": [{"name": "cfg", "secret": {"secretName": "s"}}]
        })
    );
    let last_applied =
        next["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"]
            .as_str()
            .expect("annotation");
    assert!(last_applied.contains("Recreate"));
    assert_eq!(managers(&next), [format!("{CSA}/Update")]);
    let owned = &next["metadata"]["managedFields"][0]["fieldsV1"]["f:spec"]["f:strategy"];
    assert_eq!(
        owned,
        &json!({"f:type": {}}),
        "rollingUpdate ownership went with the field"
    );
}

#[test]
fn server_side_apply_of_the_same_manifest_shares_fields_with_client_side_apply() {
    let live = edited();
    let after = apply(
        &live,
        &fixture("apply-server-side.apply.json"),
        "kubectl",
        "2026-11-25T10:02:00Z",
    );
    assert_eq!(after["spec"], live["spec"]);
    assert_eq!(after["metadata"]["labels"], live["metadata"]["labels"]);
    assert_eq!(
        managers(&after),
        ["kubectl/Apply".to_string(), format!("{CSA}/Update")]
    );
    let last = apply(
        &after,
        &fixture("apply-server-side-last-applied.apply.json"),
        "kubectl-last-applied",
        "2026-11-25T10:02:01Z",
    );
    assert_eq!(
        last["metadata"]["annotations"],
        live["metadata"]["annotations"]
    );
}

#[test]
fn kubectl_migration_patch_hands_client_side_ownership_to_the_server_side_manager() {
    let live = edited();
    let body = fixture("apply-server-side.apply.json");
    let applied = apply(&live, &body, "kubectl", "2026-11-25T10:02:00Z");
    let applied = apply(
        &applied,
        &fixture("apply-server-side-last-applied.apply.json"),
        "kubectl-last-applied",
        "2026-11-25T10:02:01Z",
    );

    // What kubectl's csaupgrade computes: the client-side-apply set merged into the
    // kubectl Apply entry, the client-side-apply entry dropped.
    let entries = applied["metadata"]["managedFields"]
        .as_array()
        .expect("entries")
        .clone();
    let csa_fields = entries.iter().find(|e| e["manager"] == CSA).expect("csa")["fieldsV1"].clone();
    let migrated: Vec<Value> = entries
        .iter()
        .filter(|e| e["manager"] != CSA)
        .map(|e| {
            let mut e = e.clone();
            if e["manager"] == "kubectl" {
                let mut fields = csa_fields.clone();
                emulator_patch::apply_merge_patch(&mut fields, &e["fieldsV1"]);
                e["fieldsV1"] = fields;
            }
            e
        })
        .collect();
    let patch = json!([
        {"op": "replace", "path": "/metadata/managedFields", "value": migrated},
        {"op": "replace", "path": "/metadata/resourceVersion", "value": "11"}
    ]);
    let mut patched = applied.clone();
    apply_json_patch(&mut patched, &patch).expect("migration patch applies");
    record_update(
        Some(&applied),
        &mut patched,
        "kubectl",
        None,
        "2026-11-25T10:02:02Z",
    );
    assert_eq!(
        managers(&patched),
        [
            "kubectl/Apply".to_string(),
            "kubectl-last-applied/Apply".to_string()
        ]
    );
    assert_eq!(patched["spec"], applied["spec"]);

    // Now a field dropped from the manifest is pruned: kubectl alone owned it.
    let mut without_replicas = body.clone();
    without_replicas["spec"]
        .as_object_mut()
        .expect("spec")
        .remove("replicas");
    let pruned = apply(
        &patched,
        &without_replicas,
        "kubectl",
        "2026-11-25T10:03:00Z",
    );
    assert!(
        pruned["spec"].get("replicas").is_none(),
        "{}",
        pruned["spec"]
    );

    // And applying the same manifest again is a no-op.
    let again = apply(
        &pruned,
        &without_replicas,
        "kubectl",
        "2026-11-25T10:04:00Z",
    );
    assert_eq!(again, pruned);
}
