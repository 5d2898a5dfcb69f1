//! Defaulting and pruning as kube-apiserver applies them before validation.

mod common;

use common::{admit, object_with_spec, schema_with_spec};
use emulator_schema::StructuralSchema;
use serde_json::json;

#[test]
fn absent_properties_of_present_objects_get_their_defaults() {
    let schema = schema_with_spec(json!({"type": "object", "properties": {
        "region": {"type": "string", "default": "india"},
        "replicas": {"type": "integer", "default": 1}
    }}));
    let (obj, _) = admit(&schema, object_with_spec(json!({"replicas": 3})));
    assert_eq!(obj["spec"], json!({"region": "india", "replicas": 3}));
}

#[test]
fn absent_objects_get_no_defaults_unless_they_have_one() {
    let schema = schema_with_spec(json!({"type": "object", "properties": {
        "tls": {"type": "object", "properties": {"enabled": {"type": "boolean", "default": true}}}
    }}));
    let (obj, _) = admit(&schema, object_with_spec(json!({})));
    assert_eq!(obj["spec"], json!({}));
    let (obj, _) = admit(&schema, object_with_spec(json!({"tls": {}})));
    assert_eq!(obj["spec"], json!({"tls": {"enabled": true}}));
}

#[test]
fn object_defaults_receive_their_own_nested_defaults() {
    let schema = schema_with_spec(json!({"type": "object", "properties": {
        "refresh": {
            "type": "object",
            "default": {"before": "10m"},
            "properties": {
                "before": {"type": "string"},
                "jitter": {"type": "string", "default": "30s"},
                "retry": {"type": "object", "default": {}, "properties": {"max": {"type": "integer", "default": 5}}}
            }
        }
    }}));
    let (obj, _) = admit(&schema, object_with_spec(json!({})));
    assert_eq!(
        obj["spec"]["refresh"],
        json!({"before": "10m", "jitter": "30s", "retry": {"max": 5}})
    );
}

#[test]
fn defaults_apply_inside_list_items_and_map_values() {
    let schema = schema_with_spec(json!({"type": "object", "properties": {
        "targets": {"type": "array", "items": {"type": "object", "properties": {
            "name": {"type": "string"}, "weight": {"type": "integer", "default": 1}
        }}},
        "byName": {"type": "object", "additionalProperties": {"type": "object", "properties": {
            "enabled": {"type": "boolean", "default": false}
        }}}
    }}));
    let (obj, _) = admit(
        &schema,
        object_with_spec(
            json!({"targets": [{"name": "a"}, {"name": "b", "weight": 3}], "byName": {"x": {}}}),
        ),
    );
    assert_eq!(
        obj["spec"]["targets"],
        json!([{"name": "a", "weight": 1}, {"name": "b", "weight": 3}])
    );
    assert_eq!(obj["spec"]["byName"], json!({"x": {"enabled": false}}));
}

#[test]
fn null_of_a_defaulted_non_nullable_field_becomes_the_default() {
    let schema = schema_with_spec(json!({"type": "object", "properties": {
        "region": {"type": "string", "default": "india"},
        "note": {"type": "string", "nullable": true, "default": "n/a"}
    }}));
    let (obj, errors) = admit(
        &schema,
        object_with_spec(json!({"region": null, "note": null})),
    );
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(obj["spec"], json!({"region": "india", "note": null}));
}

#[test]
fn defaults_satisfy_required_and_feed_validation() {
    let schema = schema_with_spec(
        json!({"type": "object", "required": ["region"], "properties": {
            "region": {"type": "string", "default": "india", "enum": ["india", "eu"]}
        }}),
    );
    let (_, errors) = admit(&schema, object_with_spec(json!({})));
    assert!(errors.is_empty(), "{errors:?}");
}

#[test]
fn unknown_fields_are_pruned_at_every_level() {
    let schema = schema_with_spec(json!({"type": "object", "properties": {
        "keep": {"type": "string"},
        "nested": {"type": "object", "properties": {"a": {"type": "integer"}}},
        "list": {"type": "array", "items": {"type": "object", "properties": {"b": {"type": "integer"}}}},
        "opaque": {"type": "object"}
    }}));
    let mut obj = object_with_spec(json!({
        "keep": "x", "drop": 1,
        "nested": {"a": 1, "z": 2},
        "list": [{"b": 1, "y": 2}],
        "opaque": {"anything": true}
    }));
    obj["status"] = json!({"phase": "Ready"});
    schema.prune(&mut obj);
    assert_eq!(
        obj,
        json!({
            "apiVersion": "example.com/v1",
            "kind": "Sample",
            "metadata": {"name": "sample", "namespace": "default"},
            "spec": {"keep": "x", "nested": {"a": 1}, "list": [{"b": 1}], "opaque": {}}
        })
    );
}

#[test]
fn preserve_unknown_fields_keeps_everything_below_it() {
    let schema = schema_with_spec(json!({"type": "object", "properties": {
        "raw": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
        "mixed": {"type": "object", "x-kubernetes-preserve-unknown-fields": true, "properties": {
            "typed": {"type": "object", "properties": {"a": {"type": "integer"}}}
        }}
    }}));
    let mut obj = object_with_spec(json!({
        "raw": {"x": {"y": [1, {"z": 2}]}},
        "mixed": {"free": 1, "typed": {"a": 1, "pruned": true}}
    }));
    schema.prune(&mut obj);
    assert_eq!(
        obj["spec"],
        json!({"raw": {"x": {"y": [1, {"z": 2}]}}, "mixed": {"free": 1, "typed": {"a": 1}}})
    );
}

#[test]
fn embedded_resources_keep_type_and_metadata() {
    let schema = schema_with_spec(json!({"type": "object", "properties": {
        "template": {"type": "object", "x-kubernetes-embedded-resource": true, "properties": {
            "spec": {"type": "object", "properties": {"image": {"type": "string"}}}
        }}
    }}));
    let mut obj = object_with_spec(json!({"template": {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"labels": {"a": "b"}},
        "spec": {"image": "x", "junk": 1}, "extra": 2
    }}));
    schema.prune(&mut obj);
    assert_eq!(
        obj["spec"]["template"],
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"labels": {"a": "b"}}, "spec": {"image": "x"}})
    );
}

#[test]
fn root_metadata_is_never_pruned_even_when_the_schema_declares_it() {
    let schema = StructuralSchema::new(&json!({"type": "object", "properties": {
        "metadata": {"type": "object"},
        "spec": {"type": "object"}
    }}))
    .unwrap();
    let mut obj = json!({"apiVersion": "a/v1", "kind": "K", "metadata": {"name": "n", "labels": {"x": "y"}}, "spec": {}});
    schema.prune(&mut obj);
    assert_eq!(obj["metadata"], json!({"name": "n", "labels": {"x": "y"}}));
}
