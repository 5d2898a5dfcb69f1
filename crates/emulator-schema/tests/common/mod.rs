//! Helpers shared by the integration tests: wrap a `spec` schema into a custom
//! resource schema, build objects, and print errors as kube-apiserver joins them.

#![allow(dead_code)]

use emulator_schema::{FieldError, StructuralSchema};
use serde_json::{Value, json};

/// A resource schema whose `spec` is `spec`.
pub fn schema_with_spec(spec: Value) -> StructuralSchema {
    StructuralSchema::new(&json!({
        "type": "object",
        "properties": {"spec": spec}
    }))
    .expect("test schema compiles")
}

/// A custom resource named `sample` with this `spec`.
pub fn object_with_spec(spec: Value) -> Value {
    json!({
        "apiVersion": "example.com/v1",
        "kind": "Sample",
        "metadata": {"name": "sample", "namespace": "default"},
        "spec": spec
    })
}

/// Prune, default and validate `obj` as the emulator does on create.
pub fn admit(schema: &StructuralSchema, mut obj: Value) -> (Value, Vec<FieldError>) {
    schema.prune(&mut obj);
    schema.apply_defaults(&mut obj);
    let errors = schema.validate(&obj, None);
    (obj, errors)
}

/// Errors as `field: message` lines.
pub fn lines(errors: &[FieldError]) -> Vec<String> {
    errors
        .iter()
        .map(FieldError::to_string_with_field)
        .collect()
}

/// The `field: message` lines of validating `spec` against `spec_schema` on create.
pub fn spec_errors(spec_schema: Value, spec: Value) -> Vec<String> {
    let schema = schema_with_spec(spec_schema);
    lines(&admit(&schema, object_with_spec(spec)).1)
}
