//! The two error types of the crate: [`FieldError`] (one rejected field of a custom
//! resource, worded as kube-apiserver's `field.Error`) and [`SchemaError`] (the CRD's
//! schema itself cannot be used), plus the constructors that word field errors.

use serde_json::Value;

use crate::render::{quote, render_value};

/// metav1.StatusCause reasons, as kube-apiserver names them.
pub mod reasons {
    /// A required value is missing.
    pub const REQUIRED: &str = "FieldValueRequired";
    /// The value is malformed (pattern, bounds, CEL rule...).
    pub const INVALID: &str = "FieldValueInvalid";
    /// The value is not one of the enumerated values.
    pub const NOT_SUPPORTED: &str = "FieldValueNotSupported";
    /// The string is longer than `maxLength`.
    pub const TOO_LONG: &str = "FieldValueTooLong";
    /// The list or map has more entries than allowed.
    pub const TOO_MANY: &str = "FieldValueTooMany";
    /// The value repeats an earlier one in a set or map list.
    pub const DUPLICATE: &str = "FieldValueDuplicate";
    /// The value has the wrong JSON type.
    pub const TYPE_INVALID: &str = "FieldValueTypeInvalid";
    /// The value is not allowed here.
    pub const FORBIDDEN: &str = "FieldValueForbidden";
}

/// One field-level validation failure, worded as kube-apiserver words it.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldError {
    /// metav1.StatusCause reason: `FieldValueRequired`, `FieldValueInvalid`, ...
    pub reason: &'static str,
    /// Path as kube-apiserver prints it: `spec.products[1]`, `spec`, or `<nil>` for the
    /// object root.
    pub field: String,
    /// The detail exactly as kube-apiserver words it, e.g. `Required value`.
    pub message: String,
}

impl FieldError {
    /// `"spec.workspace: Required value"`, the form the emulator joins into Status.message.
    pub fn to_string_with_field(&self) -> String {
        format!("{}: {}", self.field, self.message)
    }

    /// Whether kube-apiserver would skip CEL rules because of this error
    /// (its `hasBlockingErr`: wrong type, missing, unsupported, too long, too many).
    pub(crate) fn blocks_cel(&self) -> bool {
        matches!(
            self.reason,
            reasons::NOT_SUPPORTED
                | reasons::REQUIRED
                | reasons::TOO_LONG
                | reasons::TOO_MANY
                | reasons::TYPE_INVALID
        )
    }
}

/// The CRD's `openAPIV3Schema` cannot be used; the emulator rejects the CRD with 422 and
/// this message. `field` paths are relative to the CRD version's `schema`, e.g.
/// `openAPIV3Schema.properties[spec].x-kubernetes-validations[0].rule`.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    /// A schema node is not a JSON object.
    #[error("{field}: Invalid value: must be an object")]
    NotAnObject {
        /// Where in the schema.
        field: String,
    },
    /// `type` names no OpenAPI type.
    #[error(
        "{field}: Unsupported value: {}: supported values: \"array\", \"boolean\", \"integer\", \"number\", \"object\", \"string\"",
        quote(type_name)
    )]
    UnknownType {
        /// Where in the schema.
        field: String,
        /// The rejected type name.
        type_name: String,
    },
    /// `pattern` is not a valid regular expression.
    #[error(
        "{field}: Invalid value: {}: must be a valid regular expression, but isn't: {detail}",
        quote(pattern)
    )]
    InvalidPattern {
        /// Where in the schema.
        field: String,
        /// The rejected pattern.
        pattern: String,
        /// Why the regex engine refused it.
        detail: String,
    },
    /// An `x-kubernetes-validations` entry is malformed or its `rule` does not compile.
    #[error("{field}: Invalid value: {rule}: compilation failed: {detail}")]
    InvalidRule {
        /// Where in the schema.
        field: String,
        /// The whole entry as apiserver shows it (its `ValidationRule` struct as Go JSON:
        /// `{"Rule":"self.a \u003e","Message":"",...}`).
        rule: String,
        /// The CEL parser's complaint.
        detail: String,
    },
    /// A rule's `messageExpression` does not compile.
    #[error("{field}: Invalid value: {expression}: messageExpression compilation failed: {detail}")]
    InvalidMessageExpression {
        /// Where in the schema.
        field: String,
        /// The whole entry as apiserver shows it (see `InvalidRule`).
        expression: String,
        /// The CEL parser's complaint.
        detail: String,
    },
    /// A `default` holds fields its own schema would prune.
    #[error(
        "{field}: Invalid value: {}: must not have unknown fields",
        render_value(value)
    )]
    UnprunedDefault {
        /// Where in the schema (ends in `.default`).
        field: String,
        /// The default as written.
        value: Value,
    },
    /// A rule's `fieldPath` does not name a field of the schema.
    #[error("{field}: Invalid value: {}: {detail}", quote(path))]
    InvalidFieldPath {
        /// Where in the schema.
        field: String,
        /// The rejected JSON path.
        path: String,
        /// Why it is rejected.
        detail: String,
    },
}

impl SchemaError {
    /// Where in the CRD version's `schema` the problem is, e.g.
    /// `openAPIV3Schema.properties[spec].x-kubernetes-validations[0].rule`; prefix it with
    /// `spec.versions[i].schema.` for a StatusCause field.
    pub fn field(&self) -> &str {
        match self {
            SchemaError::NotAnObject { field }
            | SchemaError::UnknownType { field, .. }
            | SchemaError::InvalidPattern { field, .. }
            | SchemaError::InvalidRule { field, .. }
            | SchemaError::InvalidMessageExpression { field, .. }
            | SchemaError::InvalidFieldPath { field, .. }
            | SchemaError::UnprunedDefault { field, .. } => field,
        }
    }

    /// The message without its field, e.g. `Invalid value: "self.a >": compilation
    /// failed: ...` (a StatusCause message).
    pub fn detail(&self) -> String {
        let full = self.to_string();
        match full
            .strip_prefix(self.field())
            .and_then(|rest| rest.strip_prefix(": "))
        {
            Some(detail) => detail.to_string(),
            None => full,
        }
    }
}

/// `Required value[: detail]`.
pub(crate) fn required(field: String, detail: &str) -> FieldError {
    FieldError {
        reason: reasons::REQUIRED,
        field,
        message: with_detail("Required value".to_string(), detail),
    }
}

/// `Forbidden[: detail]`.
pub(crate) fn forbidden(field: String, detail: &str) -> FieldError {
    FieldError {
        reason: reasons::FORBIDDEN,
        field,
        message: with_detail("Forbidden".to_string(), detail),
    }
}

/// `Invalid value: <shown>[: detail]`, `shown` already rendered as Go's `%v`/`%q` would.
pub(crate) fn invalid_shown(field: String, shown: &str, detail: &str) -> FieldError {
    FieldError {
        reason: reasons::INVALID,
        field,
        message: with_detail(format!("Invalid value: {shown}"), detail),
    }
}

/// `Invalid value[: <shown>][: detail]`: without `shown` as Go's `field.OmitValueType`.
pub(crate) fn invalid_omitting(field: String, shown: Option<&str>, detail: &str) -> FieldError {
    match shown {
        Some(shown) => invalid_shown(field, shown, detail),
        None => FieldError {
            reason: reasons::INVALID,
            field,
            message: with_detail("Invalid value".to_string(), detail),
        },
    }
}

/// `Duplicate value[: <shown>]`: without `shown` as Go's `field.OmitValueType`.
pub(crate) fn duplicate_omitting(field: String, shown: Option<&str>) -> FieldError {
    match shown {
        Some(shown) => duplicate_shown(field, shown),
        None => FieldError {
            reason: reasons::DUPLICATE,
            field,
            message: "Duplicate value".to_string(),
        },
    }
}

/// `Invalid value: <value>[: detail]`.
pub(crate) fn invalid(field: String, value: &Value, detail: &str) -> FieldError {
    invalid_shown(field, &render_value(value), detail)
}

/// `Invalid value: "<type>": <detail>` with reason FieldValueTypeInvalid.
pub(crate) fn type_invalid(field: String, found: &str, detail: &str) -> FieldError {
    FieldError {
        reason: reasons::TYPE_INVALID,
        field,
        message: with_detail(format!("Invalid value: {}", quote(found)), detail),
    }
}

/// `Unsupported value: <value>: supported values: "a", "b"`.
pub(crate) fn not_supported(field: String, value: &Value, supported: &[String]) -> FieldError {
    let detail = if supported.is_empty() {
        String::new()
    } else {
        let quoted: Vec<String> = supported.iter().map(|s| quote(s)).collect();
        format!("supported values: {}", quoted.join(", "))
    };
    FieldError {
        reason: reasons::NOT_SUPPORTED,
        field,
        message: with_detail(
            format!("Unsupported value: {}", render_value(value)),
            &detail,
        ),
    }
}

/// `Too long: may not be more than <max> bytes` (the apiserver says bytes, counts characters).
pub(crate) fn too_long(field: String, max: u64) -> FieldError {
    FieldError {
        reason: reasons::TOO_LONG,
        field,
        message: format!("Too long: may not be more than {max} bytes"),
    }
}

/// `Too many: <actual>: must have at most <max> items`.
pub(crate) fn too_many(field: String, actual: usize, max: u64) -> FieldError {
    FieldError {
        reason: reasons::TOO_MANY,
        field,
        message: format!("Too many: {actual}: must have at most {max} items"),
    }
}

/// `Duplicate value: <shown>`.
pub(crate) fn duplicate_shown(field: String, shown: &str) -> FieldError {
    FieldError {
        reason: reasons::DUPLICATE,
        field,
        message: format!("Duplicate value: {shown}"),
    }
}

fn with_detail(head: String, detail: &str) -> String {
    if detail.is_empty() {
        head
    } else {
        format!("{head}: {detail}")
    }
}
