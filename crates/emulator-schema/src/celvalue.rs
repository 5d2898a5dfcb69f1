//! Binding a custom resource's JSON to CEL values the way kube-apiserver's
//! `UnstructuredToVal` does: only declared properties are visible, under escaped names
//! (`max-size` is `max__dash__size`, `__x` is `__underscores__x`, `namespace` is
//! `__namespace__`); map keys are not escaped; `number` fields are doubles; `date-time`,
//! `date`, `duration` and `byte` strings become timestamps, durations and bytes; the
//! resource root and embedded resources expose `apiVersion`, `kind` and
//! `metadata.name`/`metadata.generateName`.

use std::{collections::HashMap, sync::Arc};

use base64::Engine;
use kube_cel::cel::{
    Value as Cel,
    objects::{Key, Map},
};
use serde_json::Value;

use crate::node::Node;

/// CEL keywords a property name may not be used as; they bind as `__keyword__`.
const RESERVED: [&str; 21] = [
    "true",
    "false",
    "null",
    "in",
    "as",
    "break",
    "const",
    "continue",
    "else",
    "for",
    "function",
    "if",
    "import",
    "let",
    "loop",
    "package",
    "namespace",
    "return",
    "var",
    "void",
    "while",
];

/// The CEL identifier of a property name, `None` when CEL cannot name it.
pub(crate) fn escape(name: &str) -> Option<String> {
    let first = name.chars().next()?;
    if first.is_ascii_digit() {
        return None;
    }
    if RESERVED.contains(&name) {
        return Some(format!("__{name}__"));
    }
    let mut out = String::with_capacity(name.len());
    let mut chars = name.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '_' if chars.peek() == Some(&'_') => {
                chars.next();
                out.push_str("__underscores__");
            }
            '.' => out.push_str("__dot__"),
            '-' => out.push_str("__dash__"),
            '/' => out.push_str("__slash__"),
            c if c.is_ascii_alphanumeric() || c == '_' => out.push(c),
            _ => return None,
        }
    }
    Some(out)
}

/// Bind `value`, found at a node of schema `node`; `is_resource` for the object root and
/// embedded resources.
pub(crate) fn to_cel(value: &Value, node: &Node, is_resource: bool) -> Cel {
    match value {
        Value::Null => Cel::Null,
        Value::Bool(b) => Cel::Bool(*b),
        Value::Number(n) => {
            if node.type_name == "number" {
                Cel::Float(n.as_f64().unwrap_or_default())
            } else if let Some(i) = n.as_i64() {
                Cel::Int(i)
            } else if let Some(u) = n.as_u64() {
                Cel::UInt(u)
            } else {
                Cel::Float(n.as_f64().unwrap_or_default())
            }
        }
        Value::String(s) => string_to_cel(s, node),
        Value::Array(items) => match node.items.as_deref() {
            Some(item_schema) => Cel::List(Arc::new(
                items
                    .iter()
                    .map(|i| to_cel(i, item_schema, item_schema.embedded_resource))
                    .collect(),
            )),
            None => untyped_to_cel(value),
        },
        Value::Object(map) => {
            let mut out = HashMap::with_capacity(map.len());
            if let Some(values) = node.additional_schema() {
                for (key, child) in map {
                    out.insert(key_of(key), to_cel(child, values, values.embedded_resource));
                }
            } else {
                for (key, child) in map {
                    if let Some(schema) = node.properties.get(key) {
                        if let Some(name) = escape(key) {
                            out.insert(
                                key_of(&name),
                                to_cel(child, schema, schema.embedded_resource),
                            );
                        }
                    } else if is_resource {
                        match key.as_str() {
                            "apiVersion" | "kind" => {
                                out.insert(key_of(key), untyped_to_cel(child));
                            }
                            "metadata" => {
                                out.insert(key_of(key), visible_metadata(child));
                            }
                            _ => {}
                        }
                    }
                }
            }
            Cel::Map(Map { map: Arc::new(out) })
        }
    }
}

fn key_of(name: &str) -> Key {
    Key::String(Arc::new(name.to_string()))
}

/// Only `name` and `generateName` of an object's metadata are visible to rules.
fn visible_metadata(meta: &Value) -> Cel {
    let mut out = HashMap::new();
    for field in ["name", "generateName"] {
        if let Some(Value::String(s)) = meta.get(field) {
            out.insert(key_of(field), Cel::String(Arc::new(s.clone())));
        }
    }
    Cel::Map(Map { map: Arc::new(out) })
}

fn string_to_cel(s: &str, node: &Node) -> Cel {
    let plain = || Cel::String(Arc::new(s.to_string()));
    if node.int_or_string {
        return plain();
    }
    match node.format.as_deref() {
        Some("date-time") => {
            chrono::DateTime::parse_from_rfc3339(s).map_or_else(|_| plain(), Cel::Timestamp)
        }
        Some("date") => chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
            .ok()
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .map_or_else(plain, |dt| Cel::Timestamp(dt.and_utc().fixed_offset())),
        Some("duration") => parse_go_duration(s).map_or_else(plain, Cel::Duration),
        Some("byte") => base64::engine::general_purpose::STANDARD
            .decode(s)
            .map_or_else(|_| plain(), |b| Cel::Bytes(Arc::new(b))),
        _ => plain(),
    }
}

/// JSON below `x-kubernetes-preserve-unknown-fields` or in metadata: no schema, no
/// escaping.
fn untyped_to_cel(value: &Value) -> Cel {
    match value {
        Value::Null => Cel::Null,
        Value::Bool(b) => Cel::Bool(*b),
        Value::Number(n) => n
            .as_i64()
            .map_or_else(|| Cel::Float(n.as_f64().unwrap_or_default()), Cel::Int),
        Value::String(s) => Cel::String(Arc::new(s.clone())),
        Value::Array(items) => Cel::List(Arc::new(items.iter().map(untyped_to_cel).collect())),
        Value::Object(map) => Cel::Map(Map {
            map: Arc::new(
                map.iter()
                    .map(|(k, v)| (key_of(k), untyped_to_cel(v)))
                    .collect(),
            ),
        }),
    }
}

/// Go's `time.ParseDuration` syntax (`1h30m`, `1.5s`, `-2m`), which kube-openapi's
/// duration format also accepts.
fn parse_go_duration(s: &str) -> Option<chrono::Duration> {
    let (negative, mut rest) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    if rest == "0" {
        return Some(chrono::Duration::zero());
    }
    if rest.is_empty() {
        return None;
    }
    let mut nanos: f64 = 0.0;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number: f64 = rest[..number_len].parse().ok()?;
        rest = &rest[number_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        rest = &rest[unit_len..];
        nanos += number * scale;
    }
    let nanos = if negative { -nanos } else { nanos };
    Some(chrono::Duration::nanoseconds(nanos as i64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_escape_as_apiserver_escapes_them() {
        assert_eq!(escape("replicas").as_deref(), Some("replicas"));
        assert_eq!(escape("client_id").as_deref(), Some("client_id"));
        assert_eq!(
            escape("__internal").as_deref(),
            Some("__underscores__internal")
        );
        assert_eq!(escape("max-size").as_deref(), Some("max__dash__size"));
        assert_eq!(escape("a.b/c").as_deref(), Some("a__dot__b__slash__c"));
        assert_eq!(escape("namespace").as_deref(), Some("__namespace__"));
        assert_eq!(escape("1st"), None);
        assert_eq!(escape("a b"), None);
    }

    #[test]
    fn go_durations_parse() {
        assert_eq!(
            parse_go_duration("1h30m"),
            Some(chrono::Duration::minutes(90))
        );
        assert_eq!(
            parse_go_duration("1.5s"),
            Some(chrono::Duration::milliseconds(1500))
        );
        assert_eq!(
            parse_go_duration("-2m"),
            Some(chrono::Duration::minutes(-2))
        );
        assert_eq!(parse_go_duration("10"), None);
        assert_eq!(parse_go_duration("3 days"), None);
    }
}
