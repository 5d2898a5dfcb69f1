//! One test per OpenAPI keyword: the error kube-apiserver gives, word for word.

mod common;

use common::{admit, lines, object_with_spec, schema_with_spec, spec_errors};
use emulator_schema::{StructuralSchema, reasons};
use serde_json::json;

#[test]
fn wrong_type_is_reported_with_the_found_type() {
    let errors = spec_errors(
        json!({"type": "object", "properties": {"x": {"type": "string"}}}),
        json!({"x": 5}),
    );
    assert_eq!(
        errors,
        [r#"spec.x: Invalid value: "integer": spec.x in body must be of type string: "integer""#]
    );
}

#[test]
fn integer_type_refuses_fractions_but_accepts_integral_floats() {
    let schema = json!({"type": "object", "properties": {"n": {"type": "integer"}}});
    assert_eq!(
        spec_errors(schema.clone(), json!({"n": 1.5})),
        [r#"spec.n: Invalid value: "number": spec.n in body must be of type integer: "number""#]
    );
    assert!(spec_errors(schema, json!({"n": 2.0})).is_empty());
}

#[test]
fn each_json_type_is_named_as_kube_openapi_names_it() {
    let schema = json!({"type": "object", "properties": {"s": {"type": "string"}}});
    for (value, found) in [
        (json!(true), "boolean"),
        (json!(1.5), "number"),
        (json!([1]), "array"),
        (json!({"a": 1}), "object"),
    ] {
        let errors = spec_errors(schema.clone(), json!({ "s": value }));
        assert_eq!(
            errors,
            [format!(
                r#"spec.s: Invalid value: "{found}": spec.s in body must be of type string: "{found}""#
            )]
        );
    }
}

#[test]
fn type_errors_carry_the_type_invalid_reason() {
    let schema =
        schema_with_spec(json!({"type": "object", "properties": {"x": {"type": "boolean"}}}));
    let (_, errors) = admit(&schema, object_with_spec(json!({"x": "yes"})));
    assert_eq!(errors[0].reason, reasons::TYPE_INVALID);
    assert_eq!(errors[0].field, "spec.x");
}

#[test]
fn nullable_allows_null_and_non_nullable_null_is_dropped() {
    let schema = json!({"type": "object", "properties": {
        "a": {"type": "string", "nullable": true},
        "b": {"type": "string"}
    }});
    let schema = schema_with_spec(schema);
    let (obj, errors) = admit(&schema, object_with_spec(json!({"a": null, "b": null})));
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(obj["spec"], json!({"a": null}));
}

#[test]
fn null_list_items_of_a_non_nullable_type_are_type_errors() {
    let errors = spec_errors(
        json!({"type": "object", "properties": {"l": {"type": "array", "items": {"type": "string"}}}}),
        json!({"l": ["a", null]}),
    );
    assert_eq!(
        errors,
        [r#"spec.l[1]: Invalid value: "null": spec.l[1] in body must be of type string: "null""#]
    );
}

#[test]
fn missing_required_fields_are_reported_after_property_errors() {
    let errors = spec_errors(
        json!({"type": "object", "required": ["b", "a"], "properties": {
            "a": {"type": "string"}, "b": {"type": "string"}, "c": {"type": "string", "maxLength": 1}
        }}),
        json!({"c": "long"}),
    );
    assert_eq!(
        errors,
        [
            "spec.c: Too long: may not be more than 1 bytes",
            "spec.b: Required value",
            "spec.a: Required value"
        ]
    );
}

#[test]
fn required_spec_at_the_root_is_named_spec() {
    let schema = StructuralSchema::new(&json!({
        "type": "object", "required": ["spec"], "properties": {"spec": {"type": "object"}}
    }))
    .unwrap();
    let (_, errors) = admit(
        &schema,
        json!({"apiVersion": "a/v1", "kind": "K", "metadata": {"name": "n"}}),
    );
    assert_eq!(lines(&errors), ["spec: Required value"]);
}

#[test]
fn enum_lists_supported_values_in_schema_order() {
    let schema = json!({"type": "object", "properties": {
        "env": {"type": "string", "enum": ["sandbox", "production"]},
        "n": {"type": "integer", "enum": [1, 2]}
    }});
    assert_eq!(
        spec_errors(schema, json!({"env": "staging", "n": 3})),
        [
            r#"spec.env: Unsupported value: "staging": supported values: "sandbox", "production""#,
            r#"spec.n: Unsupported value: 3: supported values: "1", "2""#
        ]
    );
}

#[test]
fn pattern_failure_quotes_the_pattern() {
    let errors = spec_errors(
        json!({"type": "object", "properties": {"baseUrl": {"type": "string", "pattern": "^https?://"}}}),
        json!({"baseUrl": "ftp://x"}),
    );
    assert_eq!(
        errors,
        [
            r#"spec.baseUrl: Invalid value: "ftp://x": spec.baseUrl in body should match '^https?://'"#
        ]
    );
}

#[test]
fn string_checks_stop_at_the_first_failure() {
    let schema = json!({"type": "object", "properties": {
        "s": {"type": "string", "minLength": 3, "maxLength": 5, "pattern": "^[a-z]+$"}
    }});
    assert_eq!(
        spec_errors(schema.clone(), json!({"s": "AB"})),
        [r#"spec.s: Invalid value: "AB": spec.s in body should be at least 3 chars long"#]
    );
    assert_eq!(
        spec_errors(schema.clone(), json!({"s": "ABCDEFG"})),
        ["spec.s: Too long: may not be more than 5 bytes"]
    );
    assert_eq!(
        spec_errors(schema, json!({"s": "ABCD"})),
        [r#"spec.s: Invalid value: "ABCD": spec.s in body should match '^[a-z]+$'"#]
    );
}

#[test]
fn lengths_count_characters_not_bytes() {
    let schema = json!({"type": "object", "properties": {"s": {"type": "string", "maxLength": 3}}});
    assert!(spec_errors(schema, json!({"s": "äöü"})).is_empty());
}

#[test]
fn numeric_bounds_report_every_failure() {
    let schema = json!({"type": "object", "properties": {
        "a": {"type": "integer", "minimum": 1, "maximum": 10},
        "b": {"type": "number", "minimum": 0, "exclusiveMinimum": true},
        "c": {"type": "number", "maximum": 2.5, "exclusiveMaximum": true},
        "d": {"type": "integer", "multipleOf": 5, "maximum": 100}
    }});
    assert_eq!(
        spec_errors(schema, json!({"a": 0, "b": 0, "c": 2.5, "d": 101})),
        [
            "spec.a: Invalid value: 0: spec.a in body should be greater than or equal to 1",
            "spec.b: Invalid value: 0: spec.b in body should be greater than 0",
            "spec.c: Invalid value: 2.5: spec.c in body should be less than 2.5",
            "spec.d: Invalid value: 101: spec.d in body should be a multiple of 5",
            "spec.d: Invalid value: 101: spec.d in body should be less than or equal to 100"
        ]
    );
}

#[test]
fn item_counts_are_checked_after_the_items() {
    let schema = json!({"type": "object", "properties": {
        "few": {"type": "array", "minItems": 2, "items": {"type": "integer"}},
        "many": {"type": "array", "maxItems": 1, "items": {"type": "integer"}}
    }});
    assert_eq!(
        spec_errors(schema, json!({"few": ["x"], "many": [1, 2, 3]})),
        [
            r#"spec.few[0]: Invalid value: "string": spec.few[0] in body must be of type integer: "string""#,
            "spec.few: Invalid value: 1: spec.few in body should have at least 2 items",
            "spec.many: Too many: 3: must have at most 1 items"
        ]
    );
}

#[test]
fn set_lists_reject_each_repeated_value() {
    let schema = json!({"type": "object", "properties": {
        "products": {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}}
    }});
    let spec_schema = schema_with_spec(schema);
    let (_, errors) = admit(
        &spec_schema,
        object_with_spec(json!({"products": ["GST", "EWB", "GST", "GST"]})),
    );
    assert_eq!(
        lines(&errors),
        [
            r#"spec.products[2]: Duplicate value: "GST""#,
            r#"spec.products[3]: Duplicate value: "GST""#
        ]
    );
    assert_eq!(errors[0].reason, reasons::DUPLICATE);
}

#[test]
fn a_repeated_null_in_a_set_list_prints_as_quoted_null() {
    let errors = spec_errors(
        json!({"type": "object", "properties": {
            "tags": {"type": "array", "x-kubernetes-list-type": "set",
                "items": {"type": "string", "nullable": true}}
        }}),
        json!({"tags": [null, "a", null]}),
    );
    assert_eq!(errors, [r#"spec.tags[2]: Duplicate value: "null""#]);
}

#[test]
fn map_lists_reject_repeated_keys() {
    let schema = json!({"type": "object", "properties": {
        "ports": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name", "port"],
            "items": {"type": "object", "properties": {"name": {"type": "string"}, "port": {"type": "integer"}, "note": {"type": "string"}}}}
    }});
    assert_eq!(
        spec_errors(
            schema,
            json!({"ports": [
                {"name": "a", "port": 80, "note": "x"},
                {"name": "a", "port": 81},
                {"name": "a", "port": 80, "note": "y"}
            ]})
        ),
        [r#"spec.ports[2]: Duplicate value: map[string]interface {}{"name":"a", "port":80}"#]
    );
}

#[test]
fn property_counts_stop_object_validation() {
    let schema = json!({"type": "object", "properties": {
        "few": {"type": "object", "minProperties": 2, "additionalProperties": {"type": "integer"}},
        "many": {"type": "object", "maxProperties": 1, "additionalProperties": {"type": "integer"}}
    }});
    assert_eq!(
        spec_errors(
            schema,
            json!({"few": {"a": "not checked"}, "many": {"a": 1, "b": 2}})
        ),
        [
            "spec.few: Invalid value: 1: spec.few in body should have at least 2 properties",
            "spec.many: Too many: 2: must have at most 1 items"
        ]
    );
}

#[test]
fn additional_properties_schema_validates_every_map_value() {
    let schema = json!({"type": "object", "properties": {
        "labels": {"type": "object", "additionalProperties": {"type": "string", "maxLength": 3}}
    }});
    assert_eq!(
        spec_errors(schema, json!({"labels": {"b": "long", "a": 1, "c": "ok"}})),
        [
            r#"spec.labels.a: Invalid value: "integer": spec.labels.a in body must be of type string: "integer""#,
            "spec.labels.b: Too long: may not be more than 3 bytes"
        ]
    );
}

#[test]
fn formats_are_checked_on_strings() {
    let schema = json!({"type": "object", "properties": {
        "at": {"type": "string", "format": "date-time"},
        "blob": {"type": "string", "format": "byte"},
        "id": {"type": "string", "format": "uuid"}
    }});
    assert_eq!(
        spec_errors(
            schema.clone(),
            json!({"at": "soon", "blob": "%%%", "id": "x"})
        ),
        [
            r#"spec.at: Invalid value: "soon": spec.at in body must be of type date-time: "soon""#,
            r#"spec.blob: Invalid value: "%%%": spec.blob in body must be of type byte: "%%%""#,
            r#"spec.id: Invalid value: "x": spec.id in body must be of type uuid: "x""#
        ]
    );
    assert!(
        spec_errors(
            schema,
            json!({"at": "2026-11-25T16:00:00Z", "blob": "aGk=", "id": "550e8400-e29b-41d4-a716-446655440000"})
        )
        .is_empty()
    );
}

#[test]
fn int32_format_accepts_integers() {
    let schema =
        json!({"type": "object", "properties": {"n": {"type": "integer", "format": "int32"}}});
    assert!(spec_errors(schema.clone(), json!({"n": 7})).is_empty());
    assert_eq!(
        spec_errors(schema, json!({"n": "7"})),
        [r#"spec.n: Invalid value: "string": spec.n in body must be of type integer: "string""#]
    );
}

#[test]
fn int_or_string_accepts_both_and_nothing_else() {
    let schema =
        json!({"type": "object", "properties": {"port": {"x-kubernetes-int-or-string": true}}});
    assert!(spec_errors(schema.clone(), json!({"port": 8080})).is_empty());
    assert!(spec_errors(schema.clone(), json!({"port": "http"})).is_empty());
    assert_eq!(
        spec_errors(schema, json!({"port": true})),
        [
            r#"spec.port: Invalid value: "boolean": spec.port in body must be of type integer,string: "boolean""#
        ]
    );
}

#[test]
fn any_of_reports_the_closest_branch_and_a_nil_path_summary() {
    let schema = json!({"type": "object", "properties": {
        "v": {"anyOf": [{"type": "integer"}, {"type": "string", "pattern": "^[0-9]+%$"}]}
    }});
    assert!(spec_errors(schema.clone(), json!({"v": 5})).is_empty());
    assert!(spec_errors(schema.clone(), json!({"v": "50%"})).is_empty());
    assert_eq!(
        spec_errors(schema, json!({"v": "half"})),
        [
            r#"<nil>: Invalid value: "": spec.v must validate at least one schema (anyOf)"#,
            r#"spec.v: Invalid value: "string": spec.v in body must be of type integer: "string""#
        ]
    );
}

#[test]
fn one_of_rejects_none_and_several_matches() {
    let schema = json!({"type": "object", "properties": {
        "v": {"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
              "oneOf": [{"required": ["a"]}, {"required": ["b"]}]}
    }});
    assert!(spec_errors(schema.clone(), json!({"v": {"a": 1}})).is_empty());
    assert_eq!(
        spec_errors(schema.clone(), json!({"v": {"a": 1, "b": 2}})),
        [
            r#"<nil>: Invalid value: "": spec.v must validate one and only one schema (oneOf). Found 2 valid alternatives"#
        ]
    );
    assert_eq!(
        spec_errors(schema, json!({"v": {}}))[0],
        r#"<nil>: Invalid value: "": spec.v must validate one and only one schema (oneOf). Found none valid"#
    );
}

#[test]
fn all_of_reports_branch_errors_then_the_summary() {
    let schema = json!({"type": "object", "properties": {
        "s": {"type": "string", "allOf": [{"minLength": 2}, {"maxLength": 3}]}
    }});
    assert_eq!(
        spec_errors(schema, json!({"s": "x"})),
        [
            r#"spec.s: Invalid value: "x": spec.s in body should be at least 2 chars long"#,
            r#"<nil>: Invalid value: "": spec.s must validate all the schemas (allOf)"#
        ]
    );
}

#[test]
fn not_rejects_values_matching_its_schema() {
    let schema = json!({"type": "object", "properties": {
        "s": {"type": "string", "not": {"enum": ["admin"]}}
    }});
    assert!(spec_errors(schema.clone(), json!({"s": "user"})).is_empty());
    assert_eq!(
        spec_errors(schema, json!({"s": "admin"})),
        [r#"<nil>: Invalid value: "": spec.s must not validate the schema (not)"#]
    );
}

#[test]
fn metadata_name_must_be_a_dns_subdomain() {
    let schema = schema_with_spec(json!({"type": "object"}));
    let mut obj = object_with_spec(json!({}));
    obj["metadata"]["name"] = json!("Bad_Name");
    let (_, errors) = admit(&schema, obj);
    assert_eq!(
        lines(&errors),
        [concat!(
            r#"metadata.name: Invalid value: "Bad_Name": a lowercase RFC 1123 subdomain must consist of lower case "#,
            r#"alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character "#,
            r#"(e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"#
        )]
    );
}

#[test]
fn metadata_name_is_required_without_generate_name() {
    let schema = schema_with_spec(json!({"type": "object"}));
    let mut obj = object_with_spec(json!({}));
    obj["metadata"] = json!({"namespace": "default"});
    let (_, errors) = admit(&schema, obj);
    assert_eq!(
        lines(&errors),
        ["metadata.name: Required value: name or generateName is required"]
    );
}

#[test]
fn preserve_unknown_fields_skips_validation_of_undeclared_fields() {
    let schema = json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true, "properties": {
        "known": {"type": "integer"}
    }});
    assert_eq!(
        spec_errors(schema, json!({"known": "x", "other": {"deep": [1, "two"]}})),
        [
            r#"spec.known: Invalid value: "string": spec.known in body must be of type integer: "string""#
        ]
    );
}

#[test]
fn unchanged_values_are_not_revalidated_on_update() {
    let schema = schema_with_spec(json!({"type": "object", "properties": {
        "legacy": {"type": "string", "maxLength": 2},
        "fresh": {"type": "string", "maxLength": 2}
    }}));
    let old = object_with_spec(json!({"legacy": "too long already", "fresh": "ok"}));
    let new = object_with_spec(json!({"legacy": "too long already", "fresh": "now too long"}));
    assert_eq!(
        lines(&schema.validate(&new, Some(&old))),
        ["spec.fresh: Too long: may not be more than 2 bytes"]
    );
}
