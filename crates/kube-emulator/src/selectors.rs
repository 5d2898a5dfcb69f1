//! Label and field selectors of list and watch requests.

use serde_json::Value;

use crate::status::ApiError;

#[derive(Debug, Clone, PartialEq)]
enum Requirement {
    Eq(String, String),
    NotEq(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    NotExists(String),
}

/// A parsed `labelSelector`; empty matches everything.
#[derive(Debug, Clone, Default)]
pub struct LabelSelector {
    reqs: Vec<Requirement>,
}

/// Split on commas that are not inside parentheses.
fn split_top(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut depth = 0;
    let mut start = 0;
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out
}

fn parse_set(s: &str) -> Option<Vec<String>> {
    let inner = s.trim().strip_prefix('(')?.strip_suffix(')')?;
    Some(
        inner
            .split(',')
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
            .collect(),
    )
}

fn invalid(sel: &str) -> ApiError {
    ApiError::bad_request(format!(
        "unable to parse requirement: found '{sel}', expected: valid label selector"
    ))
}

impl LabelSelector {
    pub fn parse(s: &str) -> Result<LabelSelector, ApiError> {
        let mut reqs = Vec::new();
        for part in split_top(s) {
            let p = part.trim();
            if p.is_empty() {
                continue;
            }
            if let Some(key) = p.strip_prefix('!') {
                reqs.push(Requirement::NotExists(key.trim().to_string()));
            } else if let Some((k, v)) = p.split_once("!=") {
                reqs.push(Requirement::NotEq(
                    k.trim().to_string(),
                    v.trim().to_string(),
                ));
            } else if let Some((k, v)) = p.split_once("==") {
                reqs.push(Requirement::Eq(k.trim().to_string(), v.trim().to_string()));
            } else if let Some((k, v)) = p.split_once('=') {
                reqs.push(Requirement::Eq(k.trim().to_string(), v.trim().to_string()));
            } else if let Some(idx) = p.find(" notin ") {
                let set = parse_set(&p[idx + 7..]).ok_or_else(|| invalid(p))?;
                reqs.push(Requirement::NotIn(p[..idx].trim().to_string(), set));
            } else if let Some(idx) = p.find(" in ") {
                let set = parse_set(&p[idx + 4..]).ok_or_else(|| invalid(p))?;
                reqs.push(Requirement::In(p[..idx].trim().to_string(), set));
            } else if p.contains(' ') || p.contains('(') {
                return Err(invalid(p));
            } else {
                reqs.push(Requirement::Exists(p.to_string()));
            }
        }
        Ok(LabelSelector { reqs })
    }

    pub fn matches(&self, obj: &Value) -> bool {
        if self.reqs.is_empty() {
            return true;
        }
        let labels = obj.pointer("/metadata/labels");
        let get = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
        self.reqs.iter().all(|r| match r {
            Requirement::Eq(k, v) => get(k) == Some(v.as_str()),
            Requirement::NotEq(k, v) => get(k) != Some(v.as_str()),
            Requirement::In(k, set) => get(k).is_some_and(|x| set.iter().any(|s| s == x)),
            Requirement::NotIn(k, set) => !get(k).is_some_and(|x| set.iter().any(|s| s == x)),
            Requirement::Exists(k) => get(k).is_some(),
            Requirement::NotExists(k) => get(k).is_none(),
        })
    }
}

/// A parsed `fieldSelector` over metadata.name / metadata.namespace (and a few others
/// by plain path lookup).
#[derive(Debug, Clone, Default)]
pub struct FieldSelector {
    reqs: Vec<(String, bool, String)>,
}

impl FieldSelector {
    pub fn parse(s: &str) -> Result<FieldSelector, ApiError> {
        let mut reqs = Vec::new();
        for part in s.split(',') {
            let p = part.trim();
            if p.is_empty() {
                continue;
            }
            let (k, eq, v) = if let Some((k, v)) = p.split_once("!=") {
                (k, false, v)
            } else if let Some((k, v)) = p.split_once("==") {
                (k, true, v)
            } else if let Some((k, v)) = p.split_once('=') {
                (k, true, v)
            } else {
                return Err(ApiError::bad_request(format!(
                    "invalid selector: '{s}'; can't understand '{p}'"
                )));
            };
            reqs.push((k.trim().to_string(), eq, v.trim().to_string()));
        }
        Ok(FieldSelector { reqs })
    }

    pub fn matches(&self, obj: &Value) -> bool {
        self.reqs.iter().all(|(k, eq, v)| {
            let pointer = format!("/{}", k.replace('.', "/"));
            let actual = match obj.pointer(&pointer) {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Null) | None => String::new(),
                Some(other) => other.to_string(),
            };
            (actual == *v) == *eq
        })
    }

    /// `metadata.name=x` as a single exact name, used by kubectl's wait and get -w.
    pub fn exact_name(&self) -> Option<&str> {
        self.reqs
            .iter()
            .find(|(k, eq, _)| k == "metadata.name" && *eq)
            .map(|(_, _, v)| v.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(labels: Value) -> Value {
        json!({ "metadata": { "name": "a", "namespace": "ns", "labels": labels } })
    }

    #[test]
    fn set_based_and_equality_requirements_combine() {
        let sel = LabelSelector::parse("app in (web, api),tier!=db,owner,!legacy").unwrap();
        assert!(sel.matches(&obj(json!({"app": "web", "tier": "fe", "owner": "x"}))));
        assert!(!sel.matches(&obj(json!({"app": "web", "tier": "db", "owner": "x"}))));
        assert!(!sel.matches(&obj(json!({"app": "web", "owner": "x", "legacy": "1"}))));
        assert!(!sel.matches(&obj(json!({"app": "batch", "owner": "x"}))));
        let notin = LabelSelector::parse("app notin (web)").unwrap();
        assert!(notin.matches(&obj(json!({}))));
        assert!(!notin.matches(&obj(json!({"app": "web"}))));
    }

    #[test]
    fn field_selector_matches_name_and_namespace() {
        let sel = FieldSelector::parse("metadata.name=a,metadata.namespace!=other").unwrap();
        assert!(sel.matches(&obj(json!({}))));
        assert_eq!(sel.exact_name(), Some("a"));
        assert!(
            !FieldSelector::parse("metadata.name==b")
                .unwrap()
                .matches(&obj(json!({})))
        );
    }
}
