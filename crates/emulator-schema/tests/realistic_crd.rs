//! A schema shaped like the operator's ClearToken CRD, admitted end to end.

mod common;

use common::{admit, lines};
use emulator_schema::StructuralSchema;
use serde_json::{Value, json};

fn clear_token_schema() -> StructuralSchema {
    StructuralSchema::new(&json!({
        "type": "object",
        "properties": {
            "spec": {
                "type": "object",
                "required": ["workspace", "environment", "products"],
                "properties": {
                    "environment": {"type": "string", "enum": ["sandbox", "production"]},
                    "region": {"type": "string", "enum": ["india", "eu"], "default": "india"},
                    "workspace": {"type": "string", "minLength": 1},
                    "products": {
                        "type": "array", "minItems": 1, "x-kubernetes-list-type": "set",
                        "items": {"type": "string", "pattern": "^[A-Z][A-Z0-9_]*$"}
                    },
                    "baseUrl": {"type": "string", "pattern": "^https?://"},
                    "clientSecretRef": {
                        "type": "object", "required": ["name"],
                        "properties": {"name": {"type": "string"}, "key": {"type": "string", "default": "clientSecret"}}
                    }
                },
                "x-kubernetes-validations": [{
                    "rule": "!(self.region == 'eu' && self.environment == 'sandbox') || has(self.baseUrl)",
                    "message": "baseUrl is required when region is eu and environment is sandbox",
                    "fieldPath": ".baseUrl"
                }]
            },
            "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}
        }
    }))
    .expect("the ClearToken schema compiles")
}

fn token(spec: Value) -> Value {
    json!({"apiVersion": "clear.example.com/v1alpha1", "kind": "ClearToken",
        "metadata": {"name": "gst-token", "namespace": "default"}, "spec": spec})
}

#[test]
fn valid_token_is_defaulted_and_accepted() {
    let schema = clear_token_schema();
    let (obj, errors) = admit(
        &schema,
        token(
            json!({"environment": "sandbox", "workspace": "acme", "products": ["GST", "E_INVOICE"],
            "clientSecretRef": {"name": "clear-credentials"}}),
        ),
    );
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(obj["spec"]["region"], "india");
    assert_eq!(obj["spec"]["clientSecretRef"]["key"], "clientSecret");
}

#[test]
fn missing_workspace_and_bad_enum_are_rejected_and_cel_is_skipped() {
    let schema = clear_token_schema();
    let (_, errors) = admit(
        &schema,
        token(json!({"environment": "staging", "products": ["GST"]})),
    );
    assert_eq!(
        lines(&errors),
        [
            r#"spec.environment: Unsupported value: "staging": supported values: "sandbox", "production""#,
            "spec.workspace: Required value",
            r#"<nil>: Invalid value: "null": some validation rules were not checked because the object was invalid; correct the existing errors to complete validation"#
        ]
    );
}

#[test]
fn bad_products_are_rejected_by_pattern_min_items_and_set() {
    let schema = clear_token_schema();
    let (_, errors) = admit(
        &schema,
        token(
            json!({"environment": "production", "workspace": "acme", "products": ["GST", "gst", "GST"]}),
        ),
    );
    assert_eq!(
        lines(&errors),
        [
            r#"spec.products[1]: Invalid value: "gst": spec.products[1] in body should match '^[A-Z][A-Z0-9_]*$'"#,
            r#"spec.products[2]: Duplicate value: "GST""#
        ]
    );
    let (_, errors) = admit(
        &schema,
        token(json!({"environment": "production", "workspace": "acme", "products": []})),
    );
    assert_eq!(
        lines(&errors),
        ["spec.products: Invalid value: 0: spec.products in body should have at least 1 items"]
    );
}

#[test]
fn base_url_must_be_http() {
    let schema = clear_token_schema();
    let (_, errors) = admit(
        &schema,
        token(
            json!({"environment": "production", "workspace": "acme", "products": ["GST"], "baseUrl": "ftp://x"}),
        ),
    );
    assert_eq!(
        lines(&errors),
        [
            r#"spec.baseUrl: Invalid value: "ftp://x": spec.baseUrl in body should match '^https?://'"#
        ]
    );
}

#[test]
fn eu_sandbox_without_base_url_fails_the_cel_rule() {
    let schema = clear_token_schema();
    let spec =
        json!({"environment": "sandbox", "region": "eu", "workspace": "acme", "products": ["GST"]});
    let (_, errors) = admit(&schema, token(spec.clone()));
    assert_eq!(
        lines(&errors),
        [
            r#"spec.baseUrl: Invalid value: baseUrl is required when region is eu and environment is sandbox"#
        ]
    );
    let mut with_url = spec;
    with_url["baseUrl"] = json!("https://eu.sandbox.example.com");
    assert!(admit(&schema, token(with_url)).1.is_empty());
}

#[test]
fn status_keeps_unknown_fields_and_spec_drops_them() {
    let schema = clear_token_schema();
    let mut obj = token(
        json!({"environment": "sandbox", "workspace": "acme", "products": ["GST"], "typo": 1}),
    );
    obj["status"] = json!({"conditions": [{"type": "Ready", "status": "True"}], "validTill": "x"});
    let (obj, errors) = admit(&schema, obj);
    assert!(errors.is_empty(), "{errors:?}");
    assert!(obj["spec"].get("typo").is_none());
    assert_eq!(obj["status"]["validTill"], "x");
}
