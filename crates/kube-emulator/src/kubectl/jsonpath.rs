//! The small JSONPath subset CRD `additionalPrinterColumns` use: `.a.b`, `.a[0]`, `.a[*]`,
//! escaped dots in keys (`.metadata.labels.app\.kubernetes\.io/name`) and filters such as
//! `.status.conditions[?(@.type=="Ready")].status`.

use serde_json::Value;

#[derive(Debug, Clone, PartialEq)]
enum Step {
    Key(String),
    Index(i64),
    All,
    Filter {
        path: Vec<String>,
        value: String,
        equal: bool,
    },
}

fn parse(path: &str) -> Option<Vec<Step>> {
    let p = path.trim();
    let p = p
        .strip_prefix('{')
        .and_then(|s| s.strip_suffix('}'))
        .unwrap_or(p);
    let chars: Vec<char> = p.chars().collect();
    let mut steps = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '.' => {
                i += 1;
                let mut key = String::new();
                while i < chars.len() && chars[i] != '.' && chars[i] != '[' {
                    if chars[i] == '\\' && i + 1 < chars.len() {
                        key.push(chars[i + 1]);
                        i += 2;
                    } else {
                        key.push(chars[i]);
                        i += 1;
                    }
                }
                if !key.is_empty() {
                    steps.push(Step::Key(key));
                }
            }
            '[' => {
                let end =
                    (i..chars.len()).find(|&j| chars[j] == ']' && !in_quotes(&chars[i..j]))?;
                let inner: String = chars[i + 1..end].iter().collect();
                i = end + 1;
                let inner = inner.trim();
                if inner == "*" {
                    steps.push(Step::All);
                } else if let Some(filter) =
                    inner.strip_prefix("?(").and_then(|s| s.strip_suffix(')'))
                {
                    let (lhs, rhs, equal) = if let Some((l, r)) = filter.split_once("==") {
                        (l, r, true)
                    } else if let Some((l, r)) = filter.split_once("!=") {
                        (l, r, false)
                    } else {
                        return None;
                    };
                    let lhs = lhs.trim().strip_prefix('@')?;
                    let path = lhs
                        .split('.')
                        .filter(|s| !s.is_empty())
                        .map(str::to_string)
                        .collect();
                    let value = rhs
                        .trim()
                        .trim_matches(|c| c == '"' || c == '\'')
                        .to_string();
                    steps.push(Step::Filter { path, value, equal });
                } else if let Ok(n) = inner.parse::<i64>() {
                    steps.push(Step::Index(n));
                } else {
                    let key = inner.trim_matches(|c| c == '"' || c == '\'');
                    steps.push(Step::Key(key.to_string()));
                }
            }
            _ => return None,
        }
    }
    Some(steps)
}

fn in_quotes(chars: &[char]) -> bool {
    chars.iter().filter(|&&c| c == '"').count() % 2 == 1
}

fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Evaluate `path` against `obj`; every match, in order.
pub fn evaluate<'a>(obj: &'a Value, path: &str) -> Vec<&'a Value> {
    let Some(steps) = parse(path) else {
        return Vec::new();
    };
    let mut current: Vec<&Value> = vec![obj];
    for step in &steps {
        let mut next = Vec::new();
        for v in current {
            match step {
                Step::Key(k) => {
                    if let Some(x) = v.get(k) {
                        next.push(x);
                    }
                }
                Step::Index(n) => {
                    if let Some(arr) = v.as_array() {
                        let idx = if *n < 0 { arr.len() as i64 + n } else { *n };
                        if let Some(x) = usize::try_from(idx).ok().and_then(|i| arr.get(i)) {
                            next.push(x);
                        }
                    }
                }
                Step::All => match v {
                    Value::Array(a) => next.extend(a.iter()),
                    Value::Object(m) => next.extend(m.values()),
                    _ => {}
                },
                Step::Filter { path, value, equal } => {
                    if let Some(arr) = v.as_array() {
                        for item in arr {
                            let mut field = Some(item);
                            for k in path {
                                field = field.and_then(|f| f.get(k));
                            }
                            let matched = field.is_some_and(|f| scalar(f) == *value);
                            if matched == *equal {
                                next.push(item);
                            }
                        }
                    }
                }
            }
        }
        current = next;
    }
    current
}

/// The first match as a table cell, or `None` when nothing matches.
pub fn cell(obj: &Value, path: &str) -> Option<Value> {
    evaluate(obj, path).first().map(|v| (*v).clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn filter_expression_selects_the_ready_condition_status() {
        let obj = json!({"status": {"conditions": [
            {"type": "Synced", "status": "False"},
            {"type": "Ready", "status": "True"}
        ]}});
        let got = cell(&obj, r#".status.conditions[?(@.type=="Ready")].status"#);
        assert_eq!(got, Some(json!("True")));
    }

    #[test]
    fn escaped_dots_index_and_plain_paths_resolve() {
        let obj = json!({"metadata": {"labels": {"app.kubernetes.io/name": "x"}},
                         "spec": {"items": [1, 2, 3], "n": 5}});
        assert_eq!(
            cell(&obj, r".metadata.labels.app\.kubernetes\.io/name"),
            Some(json!("x"))
        );
        assert_eq!(cell(&obj, ".spec.items[1]"), Some(json!(2)));
        assert_eq!(cell(&obj, ".spec.n"), Some(json!(5)));
        assert_eq!(cell(&obj, ".spec.missing"), None);
        assert_eq!(evaluate(&obj, ".spec.items[*]").len(), 3);
    }
}
