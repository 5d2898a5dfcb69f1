//! Validation of what a write carries: metadata (name, label and annotation keys), kind
//! and apiVersion against the URL, unknown fields under strict decoding, and the
//! built-in and custom-resource schemas.

use serde_json::Value;

use super::Target;
use crate::registry::ResourceType;
use crate::status::{ApiError, Cause};

pub(super) fn required(field: &str, detail: &str) -> Cause {
    Cause {
        reason: "FieldValueRequired".into(),
        message: if detail.is_empty() {
            "Required value".into()
        } else {
            format!("Required value: {detail}")
        },
        field: field.into(),
    }
}

pub(super) fn invalid_value(field: &str, value: &str, detail: &str) -> Cause {
    Cause {
        reason: "FieldValueInvalid".into(),
        message: format!("Invalid value: \"{value}\": {detail}"),
        field: field.into(),
    }
}

fn is_dns_subdomain(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|part| {
            !part.is_empty()
                && part
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                && !part.starts_with('-')
                && !part.ends_with('-')
        })
}

fn is_dns_label(s: &str) -> bool {
    is_dns_subdomain(s) && !s.contains('.') && s.len() <= 63
}

/// Light validation of metadata apiserver would reject: name format, label and
/// annotation keys, label values.
pub(super) fn validate_metadata(rt: &ResourceType, obj: &Value) -> Vec<Cause> {
    let md = &obj["metadata"];
    let name = md["name"].as_str().unwrap_or("");
    let mut causes = Vec::new();
    let name_ok = if rt.resource == "namespaces" {
        is_dns_label(name)
    } else if rt.group == "rbac.authorization.k8s.io" {
        !name.is_empty() && !name.contains('/') && !name.contains('%')
    } else {
        is_dns_subdomain(name)
    };
    if !name_ok && !name.is_empty() {
        causes.push(invalid_value(
            "metadata.name",
            name,
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')",
        ));
    }
    let key_ok = |k: &str| {
        let (prefix, n) = match k.rsplit_once('/') {
            Some((p, n)) => (Some(p), n),
            None => (None, k),
        };
        prefix.is_none_or(is_dns_subdomain)
            && !n.is_empty()
            && n.len() <= 63
            && n.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
            && n.starts_with(|c: char| c.is_ascii_alphanumeric())
            && n.ends_with(|c: char| c.is_ascii_alphanumeric())
    };
    for (field, map) in [
        ("metadata.labels", &md["labels"]),
        ("metadata.annotations", &md["annotations"]),
    ] {
        if let Some(m) = map.as_object() {
            for (k, v) in m {
                if !key_ok(k) {
                    causes.push(invalid_value(
                        field,
                        k,
                        "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character",
                    ));
                }
                if !v.is_string() {
                    causes.push(Cause {
                        reason: "FieldValueTypeInvalid".into(),
                        message: "Invalid value: must be a string".into(),
                        field: format!("{field}[{k}]"),
                    });
                } else if field == "metadata.labels" {
                    let s = v.as_str().unwrap_or("");
                    let ok = s.is_empty()
                        || (s.len() <= 63
                            && s.chars().all(|c| {
                                c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.'
                            })
                            && s.starts_with(|c: char| c.is_ascii_alphanumeric())
                            && s.ends_with(|c: char| c.is_ascii_alphanumeric()));
                    if !ok {
                        causes.push(invalid_value(
                            field,
                            s,
                            "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character",
                        ));
                    }
                }
            }
        }
    }
    causes
}

/// Paths present in `before` that pruning removed, as apiserver names them (`spec.foo`,
/// `spec.items[0].bar`).
fn unknown_fields(before: &Value, after: &Value, path: &str, out: &mut Vec<String>) {
    let join = |k: &str| {
        if path.is_empty() {
            k.to_string()
        } else {
            format!("{path}.{k}")
        }
    };
    match (before, after) {
        (Value::Object(b), Value::Object(a)) => {
            for (k, bv) in b {
                match a.get(k) {
                    Some(av) => unknown_fields(bv, av, &join(k), out),
                    None => out.push(join(k)),
                }
            }
        }
        (Value::Array(b), Value::Array(a)) if a.len() == b.len() => {
            for (i, (bv, av)) in b.iter().zip(a).enumerate() {
                unknown_fields(bv, av, &format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

fn strict_decoding_error(t: &Target, unknown: &[String]) -> ApiError {
    let list: Vec<String> = unknown
        .iter()
        .map(|f| format!("unknown field \"{f}\""))
        .collect();
    ApiError::bad_request(format!(
        "{kind} in version \"{version}\" cannot be handled as a {kind}: strict decoding error: {}",
        list.join(", "),
        kind = t.rt.kind,
        version = t.version,
    ))
}

/// Fields a built-in kind does not have: an error under strict field validation, else
/// dropped, as apiserver's typed decoding does.
pub(super) fn builtin_fields(t: &Target, obj: &mut Value, strict: bool) -> Result<(), ApiError> {
    // Stored objects are in storage form (core/v1 for events.k8s.io Events).
    let group = if t.rt.is_alias() {
        ""
    } else {
        t.rt.group.as_str()
    };
    let unknown = crate::builtin_schemas::unknown_fields(group, &t.rt.kind, obj, true);
    if strict && !unknown.is_empty() {
        return Err(strict_decoding_error(t, &unknown));
    }
    Ok(())
}

/// apiserver's field manager turns an applied configuration into a typed object before
/// anything else looks at it; a field the schema does not declare fails that conversion
/// with a 500 (whatever the fieldValidation directive), worded by structured-merge-diff.
/// NB: list items are named by index here, where structured-merge-diff names the items of
/// map lists by their keys (`[name="x"]`).
pub(super) fn applied_fields(t: &Target, applied: &Value) -> Result<(), ApiError> {
    let mut unknown = Vec::new();
    if t.rt.is_custom() {
        if let Some(schema) = t.rt.crd_version(&t.version).and_then(|v| v.schema.as_ref()) {
            let mut pruned = applied.clone();
            schema.prune(&mut pruned);
            unknown_fields(applied, &pruned, "", &mut unknown);
        }
    } else {
        let mut copy = applied.clone();
        unknown = crate::builtin_schemas::unknown_fields(&t.rt.group, &t.rt.kind, &mut copy, false);
    }
    if unknown.is_empty() {
        return Ok(());
    }
    unknown.sort();
    let errors: Vec<String> = unknown
        .iter()
        .map(|f| format!(".{f}: field not declared in schema"))
        .collect();
    let detail = match errors.as_slice() {
        [one] => one.clone(),
        many => format!("errors:\n  {}", many.join("\n  ")),
    };
    let md = &applied["metadata"];
    let text = |v: &Value| v.as_str().unwrap_or("").to_string();
    Err(ApiError::new(
        500,
        "",
        format!(
            "failed to create typed patch object ({}/{}; {}/{}, Kind={}): {detail}",
            text(&md["namespace"]),
            text(&md["name"]),
            t.rt.group,
            t.version,
            t.rt.kind
        ),
    ))
}

/// Pruning, defaulting and schema validation of a custom resource, in apiserver's order
/// (so strict field validation judges only what the request carried, never a default).
pub(super) fn custom_schema(
    t: &Target,
    obj: &mut Value,
    old: Option<&Value>,
    strict: bool,
) -> Result<(), ApiError> {
    let Some(v) = t.rt.crd_version(&t.version) else {
        return Ok(());
    };
    let Some(schema) = &v.schema else {
        return Ok(());
    };
    let before = strict.then(|| obj.clone());
    schema.prune(obj);
    if let Some(before) = before {
        let mut unknown = Vec::new();
        unknown_fields(&before, obj, "", &mut unknown);
        if !unknown.is_empty() {
            return Err(strict_decoding_error(t, &unknown));
        }
    }
    schema.apply_defaults(obj);
    let errors = schema.validate(obj, old);
    if errors.is_empty() {
        return Ok(());
    }
    let causes: Vec<Cause> = errors
        .iter()
        .map(|e| Cause {
            reason: e.reason.to_string(),
            message: e.message.clone(),
            field: e.field.clone(),
        })
        .collect();
    let name = obj["metadata"]["name"].as_str().unwrap_or("");
    Err(ApiError::invalid(&t.rt, name, &causes))
}

pub(super) fn check_kind(t: &Target, obj: &mut Value) -> Result<(), ApiError> {
    let expected_api = t.rt.api_version(&t.version);
    if let Some(api) = obj.get("apiVersion").and_then(Value::as_str)
        && api != expected_api
    {
        return Err(ApiError::bad_request(format!(
            "the API version in the data ({api}) does not match the expected API version ({expected_api})"
        )));
    }
    if let Some(kind) = obj.get("kind").and_then(Value::as_str)
        && kind != t.rt.kind
    {
        return Err(ApiError::bad_request(format!(
            "the kind in the data ({kind}) does not match the expected kind ({})",
            t.rt.kind
        )));
    }
    Ok(())
}
