//! OpenAPI v3 value validation of a custom resource, following kube-openapi's
//! `SchemaValidator` (the validator kube-apiserver runs on custom resources) keyword by
//! keyword, in its order, with its messages, converted to field errors as
//! apiextensions-apiserver's `ValidateCustomResource` converts them.
//!
//! On update, a value equal to its correlated stored value is not validated again
//! (apiserver's validation ratcheting, on by default since 1.30), so objects stored
//! under an older schema can still be updated elsewhere.

use serde_json::Value;

use crate::{
    error::{self, FieldError},
    formats,
    listtype::correlate_item,
    node::{Additional, Node},
    render::{FieldPath, go_float, render_number},
};

/// The `in` of kube-openapi messages: custom resources are always validated as a body.
const IN: &str = "in body";

/// Validate `value` (found at `path`) against `node`; `old` is the correlated stored
/// value on update.
pub(crate) fn validate(
    node: &Node,
    value: &Value,
    old: Option<&Value>,
    path: &FieldPath,
    out: &mut Vec<FieldError>,
) {
    if old == Some(value) {
        return;
    }
    let name = path.as_name();
    if value.is_null() {
        if let Some(expected) = expected_types(node)
            && !node.nullable
        {
            out.push(error::type_invalid(
                path.to_field(),
                "null",
                &format!("{name} {IN} must be of type {expected}: \"null\""),
            ));
        }
        check_enum(node, value, path, out);
        return;
    }
    check_type(node, value, path, out);
    check_composition(node, value, path, out);
    if let Value::String(s) = value {
        check_string(node, s, value, path, out);
        check_format(node, s, path, out);
    }
    if let Value::Number(n) = value {
        check_number(node, n, value, path, out);
    }
    if let Value::Array(items) = value {
        check_array(node, items, old.and_then(Value::as_array), path, out);
    }
    check_enum(node, value, path, out);
    if let Value::Object(map) = value {
        check_object(node, map, old.and_then(Value::as_object), path, out);
    }
}

/// The JSON type kube-openapi infers for a decoded value.
pub(crate) fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_f64() => "number",
        Value::Number(_) => "integer",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// The `type` list the type validator checks (`integer,string` for int-or-string).
fn expected_types(node: &Node) -> Option<String> {
    if node.int_or_string {
        Some("integer,string".to_string())
    } else if node.type_name.is_empty() {
        None
    } else {
        Some(node.type_name.clone())
    }
}

fn check_type(node: &Node, value: &Value, path: &FieldPath, out: &mut Vec<FieldError>) {
    let format = node.format.as_deref().unwrap_or("");
    let Some(expected) = expected_types(node) else {
        return;
    };
    let found = json_type(value);
    let contains = |t: &str| expected.split(',').any(|e| e == t);
    let is_numeric_type = contains("integer") || contains("number");
    // NB: Go decodes 1.0 as float64; kube-openapi accepts it where an integer is due.
    let float_is_integer = found == "number"
        && value.as_f64().is_some_and(|f| f.fract() == 0.0)
        && contains("integer");
    let int_is_number = found == "integer" && contains("number");
    let is_string_or_array = matches!(value, Value::String(_) | Value::Array(_));
    let name = path.as_name();
    if !is_string_or_array && !format.is_empty() {
        let found_format = match found {
            "integer" => "int64",
            "number" => "float64",
            _ => "",
        };
        let lower_int = format == "int64" && found_format == "int32";
        let lower_float = format == "float64" && found_format == "float32";
        if !(contains(found)
            || found_format == format
            || float_is_integer
            || int_is_number
            || lower_int
            || lower_float)
        {
            out.push(error::type_invalid(
                path.to_field(),
                found_format,
                &format!("{name} {IN} must be of type {format}: \"{found_format}\""),
            ));
            return;
        }
    }
    if !is_numeric_type && !format.is_empty() && is_string_or_array {
        return;
    }
    if !(contains(found) || float_is_integer || int_is_number) {
        out.push(error::type_invalid(
            path.to_field(),
            found,
            &format!("{name} {IN} must be of type {expected}: \"{found}\""),
        ));
    }
}

/// allOf/anyOf/oneOf/not, as kube-openapi's `schemaPropsValidator`. Their own summary
/// errors are not `Validation` errors, so apiextensions reports them with a nil path.
fn check_composition(node: &Node, value: &Value, path: &FieldPath, out: &mut Vec<FieldError>) {
    let name = path.as_name();
    let composite =
        |detail: String| error::invalid_shown(FieldPath::root().to_field(), "\"\"", &detail);
    let run = |branch: &Node| {
        let mut errs = Vec::new();
        validate(branch, value, None, path, &mut errs);
        errs
    };
    if !node.any_of.is_empty() {
        let mut best: Option<Vec<FieldError>> = None;
        let mut passed = false;
        for branch in &node.any_of {
            let errs = run(branch);
            if errs.is_empty() {
                passed = true;
                best = None;
                break;
            }
            if best.as_ref().is_none_or(|b| errs.len() < b.len()) {
                best = Some(errs);
            }
        }
        if !passed {
            out.push(composite(format!(
                "{name} must validate at least one schema (anyOf)"
            )));
        }
        out.extend(best.unwrap_or_default());
    }
    if !node.one_of.is_empty() {
        let mut best: Option<Vec<FieldError>> = None;
        let mut valid = 0;
        for branch in &node.one_of {
            let errs = run(branch);
            if errs.is_empty() {
                valid += 1;
                best = None;
            } else if valid == 0 && best.as_ref().is_none_or(|b| errs.len() < b.len()) {
                best = Some(errs);
            }
        }
        if valid != 1 {
            let found = if valid == 0 {
                "Found none valid".to_string()
            } else {
                format!("Found {valid} valid alternatives")
            };
            out.push(composite(format!(
                "{name} must validate one and only one schema (oneOf). {found}"
            )));
            out.extend(best.unwrap_or_default());
        }
    }
    if !node.all_of.is_empty() {
        let mut valid = 0;
        for branch in &node.all_of {
            let errs = run(branch);
            if errs.is_empty() {
                valid += 1;
            }
            out.extend(errs);
        }
        if valid != node.all_of.len() {
            let none = if valid == 0 { ". None validated" } else { "" };
            out.push(composite(format!(
                "{name} must validate all the schemas (allOf){none}"
            )));
        }
    }
    if let Some(not) = node.not.as_deref()
        && run(not).is_empty()
    {
        out.push(composite(format!(
            "{name} must not validate the schema (not)"
        )));
    }
}

/// maxLength, then minLength, then pattern; kube-openapi stops at the first failure.
fn check_string(node: &Node, s: &str, value: &Value, path: &FieldPath, out: &mut Vec<FieldError>) {
    let name = path.as_name();
    let chars = s.chars().count() as u64;
    if let Some(max) = node.max_length
        && chars > max
    {
        out.push(error::too_long(path.to_field(), max));
    } else if let Some(min) = node.min_length
        && chars < min
    {
        let detail = format!("{name} {IN} should be at least {min} chars long");
        out.push(error::invalid(path.to_field(), value, &detail));
    } else if let Some(pattern) = &node.pattern
        && !pattern.regex.is_match(s)
    {
        let detail = format!("{name} {IN} should match '{}'", pattern.source);
        out.push(error::invalid(path.to_field(), value, &detail));
    }
}

fn check_format(node: &Node, s: &str, path: &FieldPath, out: &mut Vec<FieldError>) {
    let Some(format) = node.format.as_deref() else {
        return;
    };
    if formats::is_valid(format, s) == Some(false) {
        out.push(error::type_invalid(
            path.to_field(),
            s,
            &format!(
                "{} {IN} must be of type {format}: {}",
                path.as_name(),
                crate::render::quote(s)
            ),
        ));
    }
}

fn check_number(
    node: &Node,
    n: &serde_json::Number,
    value: &Value,
    path: &FieldPath,
    out: &mut Vec<FieldError>,
) {
    let name = path.as_name();
    let data = n.as_f64().unwrap_or(0.0);
    let shown = render_number(n);
    if let Some(factor) = node.multiple_of
        && factor != 0.0
        && (data / factor).fract() != 0.0
    {
        let detail = format!("{name} {IN} should be a multiple of {}", go_float(factor));
        out.push(error::invalid_shown(path.to_field(), &shown, &detail));
    }
    if let Some(max) = node.maximum {
        let over = if node.exclusive_maximum {
            data >= max
        } else {
            data > max
        };
        if over {
            let relation = if node.exclusive_maximum {
                "less than"
            } else {
                "less than or equal to"
            };
            let detail = format!("{name} {IN} should be {relation} {}", go_float(max));
            out.push(error::invalid(path.to_field(), value, &detail));
        }
    }
    if let Some(min) = node.minimum {
        let under = if node.exclusive_minimum {
            data <= min
        } else {
            data < min
        };
        if under {
            let relation = if node.exclusive_minimum {
                "greater than"
            } else {
                "greater than or equal to"
            };
            let detail = format!("{name} {IN} should be {relation} {}", go_float(min));
            out.push(error::invalid(path.to_field(), value, &detail));
        }
    }
}

/// Items first, then minItems, maxItems, uniqueItems (kube-openapi's order).
fn check_array(
    node: &Node,
    items: &[Value],
    old: Option<&Vec<Value>>,
    path: &FieldPath,
    out: &mut Vec<FieldError>,
) {
    let name = path.as_name();
    if let Some(item_schema) = node.items.as_deref() {
        for (i, item) in items.iter().enumerate() {
            let old_item = old.and_then(|old| correlate_item(node, item, old));
            validate(item_schema, item, old_item, &path.index(i), out);
        }
    }
    let size = items.len();
    if let Some(min) = node.min_items
        && (size as u64) < min
    {
        let detail = format!("{name} {IN} should have at least {min} items");
        out.push(error::invalid_shown(
            path.to_field(),
            &size.to_string(),
            &detail,
        ));
    }
    if let Some(max) = node.max_items
        && size as u64 > max
    {
        out.push(error::too_many(path.to_field(), size, max));
    }
    if node.unique_items
        && items
            .iter()
            .enumerate()
            .any(|(i, a)| items[..i].contains(a))
    {
        let detail = format!("{name} {IN} shouldn't contain duplicates");
        out.push(error::invalid_shown(path.to_field(), "\"\"", &detail));
    }
}

fn check_enum(node: &Node, value: &Value, path: &FieldPath, out: &mut Vec<FieldError>) {
    let Some(allowed) = &node.enum_values else {
        return;
    };
    if allowed.is_empty() || allowed.iter().any(|a| json_equal(a, value)) {
        return;
    }
    let supported: Vec<String> = allowed
        .iter()
        .map(|a| match a {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
        .collect();
    out.push(error::not_supported(path.to_field(), value, &supported));
}

/// min/maxProperties (stopping there, as kube-openapi does), then undeclared keys,
/// then declared properties, then `required`.
fn check_object(
    node: &Node,
    map: &serde_json::Map<String, Value>,
    old: Option<&serde_json::Map<String, Value>>,
    path: &FieldPath,
    out: &mut Vec<FieldError>,
) {
    let name = path.as_name();
    let count = map.len();
    if let Some(min) = node.min_properties
        && (count as u64) < min
    {
        let detail = format!("{name} {IN} should have at least {min} properties");
        out.push(error::invalid_shown(
            path.to_field(),
            &count.to_string(),
            &detail,
        ));
        return;
    }
    if let Some(max) = node.max_properties
        && count as u64 > max
    {
        out.push(error::too_many(path.to_field(), count, max));
        return;
    }
    let mut undeclared: Vec<&String> = map
        .keys()
        .filter(|k| !node.properties.contains_key(*k))
        .collect();
    undeclared.sort();
    match &node.additional {
        Additional::Allowed(false) => {
            for key in undeclared {
                let detail = format!("{name}.{key} {IN} is a forbidden property");
                out.push(error::invalid_shown(
                    path.to_field(),
                    &crate::render::quote(key),
                    &detail,
                ));
            }
        }
        Additional::Schema(values) => {
            for key in undeclared {
                let old_value = old.and_then(|o| o.get(key));
                validate(values, &map[key], old_value, &path.child(key), out);
            }
        }
        _ => {}
    }
    for (key, schema) in &node.properties {
        if let Some(child) = map.get(key) {
            validate(
                schema,
                child,
                old.and_then(|o| o.get(key)),
                &path.child(key),
                out,
            );
        }
    }
    for key in &node.required {
        if !map.contains_key(key) {
            out.push(error::required(path.child(key).to_field(), ""));
        }
    }
}

/// Equality as Go's enum check sees it: numbers compare by value whatever their JSON form.
fn json_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}
