//! Structural-schema handling for custom resources, as kube-apiserver does it:
//! pruning, defaulting, OpenAPI v3 validation and `x-kubernetes-validations` CEL rules,
//! with the apiserver's field paths and messages, so an emulator can answer an invalid
//! custom resource with the same 422 a real cluster gives.
//!
//! Call order on create/update, as apiserver: [`StructuralSchema::prune`],
//! [`StructuralSchema::apply_defaults`], then [`StructuralSchema::validate`].
#![forbid(unsafe_code)]

mod cel;
mod celcheck;
mod celvalue;
mod defaults;
mod error;
mod formats;
mod listtype;
mod metadata;
mod node;
mod openapi;
mod prune;
mod render;

use serde_json::Value;

pub use error::{FieldError, SchemaError, reasons};

use crate::{node::Node, render::FieldPath};

/// The detail apiserver adds when schema errors keep it from running CEL rules.
const CEL_SKIPPED: &str = "some validation rules were not checked because the object was invalid; correct the existing errors to complete validation";

/// One CRD version's `schema.openAPIV3Schema`, compiled once (regexes and CEL programs
/// parsed once). Cheap to share: wrap it in an `Arc`.
#[derive(Debug)]
pub struct StructuralSchema {
    root: Node,
}

impl StructuralSchema {
    /// Compile a CRD version's `openAPIV3Schema`. Fails when the schema itself is
    /// unusable: a node that is not an object, an unknown `type`, a bad `pattern`, a
    /// CEL `rule` or `messageExpression` that does not compile, a `fieldPath` that names
    /// no field.
    pub fn new(open_api_v3_schema: &Value) -> Result<Self, SchemaError> {
        Ok(Self {
            root: Node::compile(open_api_v3_schema, node::ROOT_AT)?,
        })
    }

    /// Apply `default`s (recursively, as apiserver: defaults for absent properties of
    /// present objects; a defaulted object gets its own properties' defaults). Nulls in
    /// non-nullable fields without a default are dropped first, as apiserver does.
    pub fn apply_defaults(&self, obj: &mut Value) {
        defaults::drop_disallowed_nulls(obj, &self.root);
        defaults::apply(obj, &self.root);
    }

    /// Drop fields not in the schema, except under x-kubernetes-preserve-unknown-fields
    /// and x-kubernetes-embedded-resource's apiVersion/kind/metadata; never drop
    /// apiVersion/kind/metadata at the root.
    pub fn prune(&self, obj: &mut Value) {
        prune::prune(obj, &self.root, true);
    }

    /// Validate the whole object (root = the custom resource). `old` is the stored
    /// object on update (for CEL transition rules using oldSelf, and for ratcheting:
    /// values equal to their stored counterpart are not re-validated). Empty vec = valid.
    ///
    /// Order as apiserver: metadata.name, OpenAPI schema errors, list-type duplicates,
    /// then CEL rules, which are skipped (with apiserver's `<nil>` notice) when an
    /// earlier error makes the object's shape unreliable.
    pub fn validate(&self, obj: &Value, old: Option<&Value>) -> Vec<FieldError> {
        let root = FieldPath::root();
        let mut errors = Vec::new();
        metadata::validate_name(obj, &mut errors);
        openapi::validate(&self.root, obj, old, &root, &mut errors);
        listtype::validate(&self.root, obj, &root, &mut errors);
        if self.root.rules_below {
            if errors.iter().any(FieldError::blocks_cel) {
                errors.push(error::invalid(root.to_field(), &Value::Null, CEL_SKIPPED));
            } else {
                cel::walk(&self.root, true, obj, old, &root, &mut errors);
            }
        }
        errors
    }
}
