//! Printing values and paths the way kube-apiserver's Go code prints them: `%q` for
//! strings, `%v` for numbers, `map[string]interface {}{...}` for map-list keys, and
//! `field.Path` strings (`spec.items[0]`, `<nil>` for the root).

use serde_json::Value;

/// The string kube-apiserver prints for an empty (root) `field.Path`.
pub(crate) const NIL_PATH: &str = "<nil>";

/// Go's `%q`: double-quoted, with `"`, `\` and control characters escaped.
/// A JSON value as Go's `json.Marshal` writes it: compact, keys sorted, and `<`, `>`, `&`,
/// U+2028, U+2029 escaped (they only occur inside strings, so replacing is safe).
pub(crate) fn go_json(value: &Value) -> String {
    value
        .to_string()
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
        .replace('\u{2028}', "\\u2028")
        .replace('\u{2029}', "\\u2029")
}

/// An `x-kubernetes-validations` entry as apiserver shows it in a CRD error: its internal
/// `ValidationRule` struct through `json.Marshal` (Go field names, in declaration order).
pub(crate) fn go_rule(entry: &Value) -> String {
    let text = |key: &str| {
        go_json(&Value::String(
            entry[key].as_str().unwrap_or("").to_string(),
        ))
    };
    let or_null = |key: &str| match &entry[key] {
        Value::Null => "null".to_string(),
        v => go_json(v),
    };
    format!(
        r#"{{"Rule":{},"Message":{},"MessageExpression":{},"Reason":{},"FieldPath":{},"OptionalOldSelf":{}}}"#,
        text("rule"),
        text("message"),
        text("messageExpression"),
        or_null("reason"),
        text("fieldPath"),
        or_null("optionalOldSelf"),
    )
}

pub(crate) fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{07}' => out.push_str("\\a"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            '\u{0b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Go's `%v` of a float64 (`strconv.FormatFloat(f, 'g', -1, 64)` with `%v`'s exponent
/// switch at 1e21): `1.5`, `10`, `1e+21`, `1e-05`.
pub(crate) fn go_float(f: f64) -> String {
    if f.is_nan() {
        return "NaN".to_string();
    }
    if f.is_infinite() {
        return if f > 0.0 { "+Inf" } else { "-Inf" }.to_string();
    }
    if f == 0.0 {
        return "0".to_string();
    }
    let exponent = f.abs().log10().floor() as i32;
    if !(-4..21).contains(&exponent) {
        let s = format!("{f:e}");
        let (mantissa, exp) = s.split_once('e').unwrap_or((&s, "0"));
        let exp: i32 = exp.parse().unwrap_or(0);
        let sign = if exp < 0 { '-' } else { '+' };
        return format!("{mantissa}e{sign}{:02}", exp.abs());
    }
    format!("{f}")
}

/// How a value decoded into Go's `interface{}` prints as a `field.Error` bad value:
/// strings quoted, numbers and booleans bare, JSON for anything else. Go's `ErrorBody`
/// turns a nil value into the string "null" and then prints it with `%q`, hence `"null"`.
pub(crate) fn render_value(value: &Value) -> String {
    match value {
        Value::Null => quote("null"),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => render_number(n),
        Value::String(s) => quote(s),
        Value::Array(_) | Value::Object(_) => value.to_string(),
    }
}

/// JSON integers print as Go int64, others as float64.
pub(crate) fn render_number(n: &serde_json::Number) -> String {
    if let Some(i) = n.as_i64() {
        i.to_string()
    } else if let Some(u) = n.as_u64() {
        u.to_string()
    } else {
        go_float(n.as_f64().unwrap_or(0.0))
    }
}

/// Go's `%#v` of a `map[string]interface{}` holding scalars, as used for duplicate keys
/// of `x-kubernetes-list-type: map` lists: `map[string]interface {}{"name":"a"}`.
pub(crate) fn render_go_map(entries: &[(&str, &Value)]) -> String {
    let mut sorted: Vec<&(&str, &Value)> = entries.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(b.0));
    let body: Vec<String> = sorted
        .iter()
        .map(|(k, v)| format!("{}:{}", quote(k), render_go_scalar(v)))
        .collect();
    format!("map[string]interface {{}}{{{}}}", body.join(", "))
}

fn render_go_scalar(value: &Value) -> String {
    match value {
        Value::Null => "interface {}(nil)".to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => render_number(n),
        Value::String(s) => quote(s),
        other => other.to_string(),
    }
}

/// A `field.Path` under construction: empty means the object root.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct FieldPath(String);

impl FieldPath {
    /// The object root.
    pub(crate) fn root() -> Self {
        Self(String::new())
    }

    /// `parent.name` (or `name` at the root).
    pub(crate) fn child(&self, name: &str) -> Self {
        if self.0.is_empty() {
            Self(name.to_string())
        } else {
            Self(format!("{}.{name}", self.0))
        }
    }

    /// `parent[index]`.
    pub(crate) fn index(&self, index: usize) -> Self {
        Self(format!("{}[{index}]", self.0))
    }

    /// `parent[key]`, as `field.Path.Key` prints map keys.
    pub(crate) fn key(&self, key: &str) -> Self {
        Self(format!("{}[{key}]", self.0))
    }

    /// The path as it appears inside kube-openapi messages (`spec.x in body ...`).
    pub(crate) fn as_name(&self) -> &str {
        &self.0
    }

    /// The path as it appears in a `field.Error`: `<nil>` for the root.
    pub(crate) fn to_field(&self) -> String {
        if self.0.is_empty() {
            NIL_PATH.to_string()
        } else {
            self.0.clone()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn go_float_matches_go_percent_v() {
        assert_eq!(go_float(1.5), "1.5");
        assert_eq!(go_float(10.0), "10");
        assert_eq!(go_float(1e21), "1e+21");
        assert_eq!(go_float(0.00001), "1e-05");
        assert_eq!(go_float(0.0001), "0.0001");
    }

    #[test]
    fn quote_escapes_like_go() {
        assert_eq!(quote("a\"b\\c\n"), "\"a\\\"b\\\\c\\n\"");
        assert_eq!(quote("ünï"), "\"ünï\"");
    }

    #[test]
    fn map_list_keys_render_as_go_map_literal() {
        let a = json!("a");
        let p = json!(80);
        assert_eq!(
            render_go_map(&[("port", &p), ("name", &a)]),
            "map[string]interface {}{\"name\":\"a\", \"port\":80}"
        );
    }

    #[test]
    fn nil_bad_values_print_as_quoted_null_like_go_error_body() {
        assert_eq!(render_value(&Value::Null), "\"null\"");
    }

    #[test]
    fn root_path_prints_as_nil() {
        assert_eq!(FieldPath::root().to_field(), "<nil>");
        assert_eq!(
            FieldPath::root().child("spec").index(2).to_field(),
            "spec[2]"
        );
        assert_eq!(FieldPath::root().child("m").key("k").to_field(), "m[k]");
    }
}
