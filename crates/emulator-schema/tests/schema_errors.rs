//! Schemas the emulator must refuse at CRD creation, and sharing a compiled schema.

use emulator_schema::{SchemaError, StructuralSchema};
use serde_json::json;

#[test]
fn rule_that_does_not_compile_rejects_the_schema_with_its_location() {
    let err = StructuralSchema::new(
        &json!({"type": "object", "properties": {"spec": {"type": "object",
        "x-kubernetes-validations": [{"rule": "self.a >"}]}}}),
    )
    .unwrap_err();
    assert!(matches!(err, SchemaError::InvalidRule { .. }), "{err:?}");
    let message = err.to_string();
    assert!(
        message.starts_with(
            r#"openAPIV3Schema.properties[spec].x-kubernetes-validations[0].rule: Invalid value: {"Rule":"self.a \u003e","Message":"","MessageExpression":"","Reason":null,"FieldPath":"","OptionalOldSelf":null}: compilation failed: ERROR: <input>:1:9: Syntax error: "#
        ),
        "{message}"
    );
    assert_eq!(
        err.field(),
        "openAPIV3Schema.properties[spec].x-kubernetes-validations[0].rule"
    );
    assert!(
        err.detail()
            .starts_with(r#"Invalid value: {"Rule":"self.a \u003e","Message":"","MessageExpression":"","Reason":null,"FieldPath":"","OptionalOldSelf":null}: compilation failed: "#),
        "{}",
        err.detail()
    );
}

#[test]
fn message_expression_that_does_not_compile_rejects_the_schema() {
    let err = StructuralSchema::new(&json!({"type": "object",
        "x-kubernetes-validations": [{"rule": "true", "messageExpression": "'a' +"}]}))
    .unwrap_err();
    assert!(
        matches!(err, SchemaError::InvalidMessageExpression { .. }),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .starts_with(r#"openAPIV3Schema.x-kubernetes-validations[0].messageExpression: Invalid value: {"Rule":"true","Message":"","MessageExpression":"'a' +","Reason":null,"FieldPath":"","OptionalOldSelf":null}: messageExpression compilation failed: "#),
        "{err}"
    );
}

#[test]
fn field_path_naming_no_field_rejects_the_schema() {
    let err = StructuralSchema::new(
        &json!({"type": "object", "properties": {"a": {"type": "string"}},
        "x-kubernetes-validations": [{"rule": "true", "fieldPath": ".b"}]}),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"openAPIV3Schema.x-kubernetes-validations[0].fieldPath: Invalid value: ".b": does not refer to a valid field"#
    );
}

#[test]
fn invalid_pattern_and_unknown_type_reject_the_schema() {
    let err = StructuralSchema::new(
        &json!({"type": "object", "properties": {"a": {"type": "string", "pattern": "("}}}),
    )
    .unwrap_err();
    assert!(matches!(err, SchemaError::InvalidPattern { .. }), "{err:?}");
    let err =
        StructuralSchema::new(&json!({"type": "object", "properties": {"a": {"type": "str"}}}))
            .unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"openAPIV3Schema.properties[a].type: Unsupported value: "str": supported values: "array", "boolean", "integer", "number", "object", "string""#
    );
}

#[test]
fn compiled_schema_can_be_shared_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<StructuralSchema>();
    let schema = std::sync::Arc::new(
        StructuralSchema::new(
            &json!({"type": "object", "properties": {"spec": {"type": "object",
            "properties": {"n": {"type": "integer"}},
            "x-kubernetes-validations": [{"rule": "self.n > 0", "message": "positive"}]}}}),
        )
        .unwrap(),
    );
    let handles: Vec<_> = (0..4)
        .map(|n| {
            let schema = schema.clone();
            std::thread::spawn(move || {
                let obj = json!({"apiVersion": "a/v1", "kind": "K", "metadata": {"name": "x"}, "spec": {"n": n}});
                schema.validate(&obj, None).len()
            })
        })
        .collect();
    let failures: Vec<usize> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(failures, [1, 0, 0, 0]);
}

#[test]
fn rule_selecting_an_undeclared_field_rejects_the_schema() {
    let err = StructuralSchema::new(&json!({"type": "object", "properties": {"spec": {"type": "object",
        "properties": {"replicas": {"type": "integer"}, "template": {"type": "object", "properties": {"image": {"type": "string"}}}},
        "x-kubernetes-validations": [{"rule": "has(self.template) && self.template.imag != ''"}]}}}))
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"openAPIV3Schema.properties[spec].x-kubernetes-validations[0].rule: Invalid value: {"Rule":"has(self.template) \u0026\u0026 self.template.imag != ''","Message":"","MessageExpression":"","Reason":null,"FieldPath":"","OptionalOldSelf":null}: compilation failed: ERROR: <input>: undefined field 'imag'"#
    );
}

#[test]
fn a_default_its_schema_would_prune_rejects_the_schema() {
    let err = StructuralSchema::new(
        &json!({"type": "object", "properties": {"spec": {"type": "object",
        "properties": {"limits": {"type": "object", "default": {"rate": 5, "burst": 10},
            "properties": {"rate": {"type": "integer"}}}}}}}),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"openAPIV3Schema.properties[spec].properties[limits].default: Invalid value: {"burst":10,"rate":5}: must not have unknown fields"#
    );
    // a default within its schema, or under preserve-unknown-fields, is fine
    StructuralSchema::new(&json!({"type": "object", "properties": {
        "a": {"type": "object", "default": {"rate": 5}, "properties": {"rate": {"type": "integer"}}},
        "b": {"type": "object", "default": {"any": 1}, "x-kubernetes-preserve-unknown-fields": true}}}))
    .unwrap();
}

#[test]
fn rules_on_maps_preserved_fields_and_resource_roots_are_not_refused() {
    let schema = StructuralSchema::new(&json!({"type": "object",
        "properties": {
            "spec": {"type": "object", "properties": {
                "labels": {"type": "object", "additionalProperties": {"type": "string"},
                    "x-kubernetes-validations": [{"rule": "!has(self.anything) || self.anything != ''"}]},
                "raw": {"type": "object", "x-kubernetes-preserve-unknown-fields": true,
                    "x-kubernetes-validations": [{"rule": "!has(self.whatever)"}]},
                "items": {"type": "array", "items": {"type": "object", "properties": {"n": {"type": "integer"}}},
                    "x-kubernetes-validations": [{"rule": "self.all(i, i.n > 0)"}]}
            }}
        },
        "x-kubernetes-validations": [{"rule": "self.metadata.name != '' && self.kind == 'K' && has(self.spec)"}]
    }));
    assert!(schema.is_ok(), "{:?}", schema.err());
}
