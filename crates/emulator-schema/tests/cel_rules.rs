//! `x-kubernetes-validations` CEL rules: evaluation, wording and placement of failures.

mod common;

use common::{admit, lines, object_with_spec, schema_with_spec, spec_errors};
use emulator_schema::{StructuralSchema, reasons};
use serde_json::json;

#[test]
fn failing_object_rule_reports_the_object_type_and_message() {
    let errors = spec_errors(
        json!({"type": "object", "properties": {"min": {"type": "integer"}, "max": {"type": "integer"}},
            "x-kubernetes-validations": [{"rule": "self.min <= self.max", "message": "min must not exceed max"}]}),
        json!({"min": 5, "max": 1}),
    );
    assert_eq!(errors, [r#"spec: Invalid value: min must not exceed max"#]);
}

#[test]
fn rule_without_message_reports_failed_rule() {
    let errors = spec_errors(
        json!({"type": "object", "properties": {"n": {"type": "integer",
            "x-kubernetes-validations": [{"rule": " self > 0 "}]}}}),
        json!({"n": 0}),
    );
    assert_eq!(
        errors,
        [r#"spec.n: Invalid value: 0: failed rule: self > 0"#]
    );
}

#[test]
fn all_macro_checks_every_list_item() {
    let schema = json!({"type": "object", "properties": {
        "products": {"type": "array", "items": {"type": "string"},
            "x-kubernetes-validations": [{"rule": "self.all(p, p.size() <= 4)", "message": "product codes have at most 4 letters"}]}
    }});
    assert!(spec_errors(schema.clone(), json!({"products": ["GST", "EWB"]})).is_empty());
    assert_eq!(
        spec_errors(schema, json!({"products": ["GST", "EINVOICE"]})),
        [r#"spec.products: Invalid value: product codes have at most 4 letters"#]
    );
}

#[test]
fn has_distinguishes_absent_fields() {
    let schema = json!({"type": "object", "properties": {"a": {"type": "string"}, "b": {"type": "string"}},
        "x-kubernetes-validations": [{"rule": "has(self.a) == has(self.b)", "message": "set a and b together"}]});
    assert!(spec_errors(schema.clone(), json!({})).is_empty());
    assert!(spec_errors(schema.clone(), json!({"a": "x", "b": "y"})).is_empty());
    assert_eq!(
        spec_errors(schema, json!({"a": "x"})),
        [r#"spec: Invalid value: set a and b together"#]
    );
}

#[test]
fn matches_uses_regular_expressions() {
    let schema = json!({"type": "object", "properties": {"workspace": {"type": "string",
        "x-kubernetes-validations": [{"rule": "self.matches('^[a-z0-9-]+$')", "message": "workspace is a lowercase slug"}]}}});
    assert!(spec_errors(schema.clone(), json!({"workspace": "acme-1"})).is_empty());
    assert_eq!(
        spec_errors(schema, json!({"workspace": "Acme!"})),
        [r#"spec.workspace: Invalid value: "Acme!": workspace is a lowercase slug"#]
    );
}

#[test]
fn kubernetes_url_functions_are_available() {
    let schema = json!({"type": "object", "properties": {"baseUrl": {"type": "string",
    "x-kubernetes-validations": [
        {"rule": "isURL(self)", "message": "baseUrl must be a URL"},
        {"rule": "!isURL(self) || url(self).getScheme() == 'https'", "message": "baseUrl must use https"}
    ]}}});
    assert!(
        spec_errors(
            schema.clone(),
            json!({"baseUrl": "https://api.example.com/v1"})
        )
        .is_empty()
    );
    assert_eq!(
        spec_errors(schema.clone(), json!({"baseUrl": "http://api.example.com"})),
        [r#"spec.baseUrl: Invalid value: "http://api.example.com": baseUrl must use https"#]
    );
    assert_eq!(
        spec_errors(schema, json!({"baseUrl": "not a url"})),
        [r#"spec.baseUrl: Invalid value: "not a url": baseUrl must be a URL"#]
    );
}

#[test]
fn message_expression_words_the_failure_from_the_value() {
    let errors = spec_errors(
        json!({"type": "object", "properties": {"replicas": {"type": "integer"}},
            "x-kubernetes-validations": [{"rule": "self.replicas <= 5", "message": "too many",
                "messageExpression": "'replicas is ' + string(self.replicas) + ', at most 5 allowed'"}]}),
        json!({"replicas": 8}),
    );
    assert_eq!(
        errors,
        [r#"spec: Invalid value: replicas is 8, at most 5 allowed"#]
    );
}

#[test]
fn empty_message_expression_falls_back_to_the_message() {
    let errors = spec_errors(
        json!({"type": "object", "properties": {"replicas": {"type": "integer"}},
            "x-kubernetes-validations": [{"rule": "self.replicas <= 5", "message": "too many", "messageExpression": "'  '"}]}),
        json!({"replicas": 8}),
    );
    assert_eq!(errors, [r#"spec: Invalid value: too many"#]);
}

#[test]
fn reason_and_field_path_shape_the_error() {
    let schema = schema_with_spec(json!({"type": "object",
    "properties": {"target": {"type": "object", "properties": {"name": {"type": "string"}}},
                   "labels": {"type": "object", "additionalProperties": {"type": "string"}}},
    "x-kubernetes-validations": [
        {"rule": "has(self.target.name)", "message": "target needs a name", "reason": "FieldValueRequired", "fieldPath": ".target.name"},
        {"rule": "!('owner' in self.labels)", "message": "owner is reserved", "reason": "FieldValueForbidden", "fieldPath": ".labels['owner']"},
        {"rule": "size(self.labels) < 1", "reason": "FieldValueDuplicate"}
    ]}));
    let (_, errors) = admit(
        &schema,
        object_with_spec(json!({"target": {}, "labels": {"owner": "me"}})),
    );
    assert_eq!(
        lines(&errors),
        [
            "spec.target.name: Required value: target needs a name",
            "spec.labels[owner]: Forbidden: owner is reserved",
            r#"spec: Duplicate value"#
        ]
    );
    assert_eq!(errors[0].reason, reasons::REQUIRED);
    assert_eq!(errors[1].reason, reasons::FORBIDDEN);
    assert_eq!(errors[2].reason, reasons::DUPLICATE);
}

#[test]
fn rules_on_list_items_and_map_values_name_the_entry() {
    let schema = json!({"type": "object", "properties": {
        "targets": {"type": "array", "items": {"type": "object", "properties": {"weight": {"type": "integer"}},
            "x-kubernetes-validations": [{"rule": "self.weight > 0", "message": "weight must be positive"}]}},
        "quotas": {"type": "object", "additionalProperties": {"type": "integer",
            "x-kubernetes-validations": [{"rule": "self <= 288", "message": "at most 288 a day"}]}}
    }});
    assert_eq!(
        spec_errors(
            schema,
            json!({"targets": [{"weight": 1}, {"weight": 0}], "quotas": {"gst": 300, "ewb": 10}})
        ),
        [
            r#"spec.quotas[gst]: Invalid value: 300: at most 288 a day"#,
            r#"spec.targets[1]: Invalid value: weight must be positive"#
        ]
    );
}

#[test]
fn root_rules_see_metadata_and_report_a_nil_path() {
    let schema = StructuralSchema::new(&json!({"type": "object",
        "properties": {"spec": {"type": "object", "properties": {"workspace": {"type": "string"}}}},
        "x-kubernetes-validations": [{"rule": "self.metadata.name.startsWith(self.spec.workspace)", "message": "name must start with the workspace"}]
    }))
    .unwrap();
    let (_, errors) = admit(&schema, object_with_spec(json!({"workspace": "acme"})));
    assert_eq!(
        lines(&errors),
        [r#"<nil>: Invalid value: name must start with the workspace"#]
    );
}

#[test]
fn transition_rules_run_on_update_only() {
    let schema = schema_with_spec(json!({"type": "object", "properties": {
        "workspace": {"type": "string",
            "x-kubernetes-validations": [{"rule": "self == oldSelf", "message": "workspace is immutable"}]}
    }}));
    let old = object_with_spec(json!({"workspace": "acme"}));
    let (_, create_errors) = admit(&schema, old.clone());
    assert!(
        create_errors.is_empty(),
        "transition rules are skipped on create: {create_errors:?}"
    );
    let same = object_with_spec(json!({"workspace": "acme"}));
    assert!(schema.validate(&same, Some(&old)).is_empty());
    let changed = object_with_spec(json!({"workspace": "other"}));
    assert_eq!(
        lines(&schema.validate(&changed, Some(&old))),
        [r#"spec.workspace: Invalid value: "other": workspace is immutable"#]
    );
}

#[test]
fn transition_rules_skip_fields_absent_from_the_stored_object() {
    let schema = schema_with_spec(json!({"type": "object", "properties": {
        "workspace": {"type": "string",
            "x-kubernetes-validations": [{"rule": "self == oldSelf", "message": "workspace is immutable"}]}
    }}));
    let old = object_with_spec(json!({}));
    let new = object_with_spec(json!({"workspace": "acme"}));
    assert!(schema.validate(&new, Some(&old)).is_empty());
}

#[test]
fn map_list_items_correlate_with_their_stored_item_by_key() {
    let schema = schema_with_spec(json!({"type": "object", "properties": {
        "secrets": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"],
            "items": {"type": "object", "required": ["name"], "properties": {"name": {"type": "string"}, "key": {"type": "string"}},
                "x-kubernetes-validations": [{"rule": "self.key == oldSelf.key", "message": "key is immutable"}]}}
    }}));
    let old = object_with_spec(
        json!({"secrets": [{"name": "a", "key": "1"}, {"name": "b", "key": "2"}]}),
    );
    let reordered = object_with_spec(
        json!({"secrets": [{"name": "b", "key": "2"}, {"name": "a", "key": "1"}, {"name": "c", "key": "3"}]}),
    );
    assert!(schema.validate(&reordered, Some(&old)).is_empty());
    let changed = object_with_spec(json!({"secrets": [{"name": "b", "key": "9"}]}));
    assert_eq!(
        lines(&schema.validate(&changed, Some(&old))),
        [r#"spec.secrets[0]: Invalid value: key is immutable"#]
    );
}

#[test]
fn schema_errors_that_block_cel_add_the_apiserver_notice() {
    let errors = spec_errors(
        json!({"type": "object", "required": ["workspace"], "properties": {"workspace": {"type": "string"}},
            "x-kubernetes-validations": [{"rule": "false", "message": "never reached"}]}),
        json!({}),
    );
    assert_eq!(
        errors,
        [
            "spec.workspace: Required value",
            r#"<nil>: Invalid value: "null": some validation rules were not checked because the object was invalid; correct the existing errors to complete validation"#
        ]
    );
}

#[test]
fn non_blocking_schema_errors_still_run_cel() {
    let errors = spec_errors(
        json!({"type": "object", "properties": {"s": {"type": "string", "pattern": "^a"}},
            "x-kubernetes-validations": [{"rule": "false", "message": "rule ran"}]}),
        json!({"s": "b"}),
    );
    assert_eq!(
        errors,
        [
            r#"spec.s: Invalid value: "b": spec.s in body should match '^a'"#,
            r#"spec: Invalid value: rule ran"#
        ]
    );
}

#[test]
fn rules_see_defaulted_values() {
    let errors = spec_errors(
        json!({"type": "object", "properties": {"region": {"type": "string", "default": "india"}},
            "x-kubernetes-validations": [{"rule": "self.region == 'india'", "message": "defaults come first"}]}),
        json!({}),
    );
    assert!(errors.is_empty(), "{errors:?}");
}

#[test]
fn escaped_property_names_are_reachable_from_rules() {
    let errors = spec_errors(
        json!({"type": "object", "properties": {"max-size": {"type": "integer"}},
            "x-kubernetes-validations": [{"rule": "self.max__dash__size < 10", "message": "max-size below 10"}]}),
        json!({"max-size": 12}),
    );
    assert_eq!(errors, [r#"spec: Invalid value: max-size below 10"#]);
}

#[test]
fn runtime_errors_name_the_rule() {
    let errors = spec_errors(
        json!({"type": "object", "properties": {"a": {"type": "string"}},
            "x-kubernetes-validations": [{"rule": "self.a == 'x'"}]}),
        json!({}),
    );
    assert_eq!(
        errors,
        [r#"spec: Invalid value: "object": no such key: a evaluating rule: self.a == 'x'"#]
    );
}

#[test]
fn rules_inside_all_of_branches_are_evaluated() {
    let errors = spec_errors(
        json!({"type": "object", "properties": {"n": {"type": "integer"}},
            "allOf": [{"x-kubernetes-validations": [{"rule": "self.n % 2 == 0", "message": "n must be even"}]}]}),
        json!({"n": 3}),
    );
    assert_eq!(errors, [r#"spec: Invalid value: n must be even"#]);
}

#[test]
fn underscores_in_names_bind_as_apiserver_escapes_them() {
    let schema = json!({"type": "object", "properties": {
        "client_id": {"type": "string"},
        "__internal": {"type": "string"},
        "namespace": {"type": "string"}
    },
    "x-kubernetes-validations": [{
        "rule": "self.client_id == 'a' && self.__underscores__internal == 'b' && self.__namespace__ == 'c'",
        "message": "escaped names are reachable"
    }]});
    assert!(
        spec_errors(
            schema.clone(),
            json!({"client_id": "a", "__internal": "b", "namespace": "c"})
        )
        .is_empty()
    );
    assert_eq!(
        spec_errors(
            schema,
            json!({"client_id": "x", "__internal": "b", "namespace": "c"})
        ),
        [r#"spec: Invalid value: escaped names are reachable"#]
    );
}

#[test]
fn optional_old_self_is_an_optional_on_create_and_update() {
    let schema = schema_with_spec(json!({"type": "object", "properties": {
        "tier": {"type": "string",
            "x-kubernetes-validations": [{
                "rule": "!oldSelf.hasValue() || self == oldSelf.value() || self == 'gold'",
                "optionalOldSelf": true,
                "message": "tier only moves to gold"
            }]}
    }}));
    let old = object_with_spec(json!({"tier": "silver"}));
    assert!(admit(&schema, old.clone()).1.is_empty());
    assert!(
        schema
            .validate(&object_with_spec(json!({"tier": "gold"})), Some(&old))
            .is_empty()
    );
    assert_eq!(
        lines(&schema.validate(&object_with_spec(json!({"tier": "bronze"})), Some(&old))),
        [r#"spec.tier: Invalid value: "bronze": tier only moves to gold"#]
    );
}

#[test]
fn number_fields_are_doubles_and_date_times_are_timestamps() {
    let schema = json!({"type": "object", "properties": {
        "ratio": {"type": "number"},
        "notBefore": {"type": "string", "format": "date-time"},
        "notAfter": {"type": "string", "format": "date-time"}
    },
    "x-kubernetes-validations": [
        {"rule": "self.ratio / 2.0 < 1.0", "message": "ratio below 2"},
        {"rule": "self.notBefore < self.notAfter", "message": "notBefore must precede notAfter"}
    ]});
    assert!(
        spec_errors(
            schema.clone(),
            json!({"ratio": 1, "notBefore": "2026-01-01T00:00:00Z", "notAfter": "2026-01-01T01:00:00+00:30"})
        )
        .is_empty()
    );
    assert_eq!(
        spec_errors(
            schema,
            json!({"ratio": 3, "notBefore": "2026-01-02T00:00:00Z", "notAfter": "2026-01-01T00:00:00Z"})
        ),
        [
            r#"spec: Invalid value: ratio below 2"#,
            r#"spec: Invalid value: notBefore must precede notAfter"#
        ]
    );
}

#[test]
fn fields_preserved_without_a_schema_are_invisible_to_rules() {
    let errors = spec_errors(
        json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true, "properties": {"known": {"type": "string"}},
            "x-kubernetes-validations": [{"rule": "!has(self.extra)", "message": "only declared fields are visible"}]}),
        json!({"known": "a", "extra": 1}),
    );
    assert!(errors.is_empty(), "{errors:?}");
}

#[test]
fn root_rules_see_only_name_and_generate_name_of_metadata() {
    let schema = StructuralSchema::new(&json!({"type": "object",
        "properties": {"spec": {"type": "object"}},
        "x-kubernetes-validations": [{"rule": "!has(self.metadata.namespace) && self.metadata.name == 'sample' && self.kind == 'Sample'",
            "message": "metadata is trimmed"}]
    }))
    .unwrap();
    let (_, errors) = admit(&schema, object_with_spec(json!({})));
    assert!(errors.is_empty(), "{errors:?}");
}
