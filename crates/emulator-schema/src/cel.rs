//! `x-kubernetes-validations` CEL rules of one schema node: compiled once with
//! `kube-cel` (which binds `self`/`oldSelf` with Kubernetes' value conversion and
//! function library), evaluated per object, and their failures worded as
//! kube-apiserver's CEL validator words them.

use kube_cel::{CompilationError, CompiledSchema, ErrorKind, Rule};
use serde_json::Value;

use crate::{
    error::{self, FieldError, SchemaError},
    node::Node,
    render::{FieldPath, quote},
};

/// The apiserver's cap on an evaluated `messageExpression`.
const MAX_MESSAGE_EXPRESSION_BYTES: usize = 5 * 1024;

/// Keys under which a schema node nests other nodes.
const NESTING_KEYS: [&str; 4] = ["properties", "allOf", "anyOf", "oneOf"];

/// The rules of one node.
pub(crate) struct NodeRules {
    /// This node's schema with every nested `x-kubernetes-validations` removed, so
    /// kube-cel evaluates exactly this node's rules while still seeing the nested
    /// properties it needs to convert values (escaping, formats, maps).
    compiled: CompiledSchema,
    metas: Vec<RuleMeta>,
}

impl std::fmt::Debug for NodeRules {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeRules")
            .field("rules", &self.metas)
            .finish()
    }
}

/// What the apiserver needs besides the program to word a failure.
#[derive(Debug)]
struct RuleMeta {
    rule: String,
    message: String,
    has_message_expression: bool,
    reason: Option<String>,
    field_path: Vec<PathStep>,
    uses_old_self: bool,
}

/// One step of a normalised rule `fieldPath`.
#[derive(Debug, Clone)]
enum PathStep {
    Child(String),
    Key(String),
}

impl NodeRules {
    /// Compile the rules of the node `raw` (already compiled as `node`), found at `at`.
    pub(crate) fn compile(raw: &Value, node: &Node, at: &str) -> Result<Option<Self>, SchemaError> {
        let Some(list) = raw
            .get("x-kubernetes-validations")
            .and_then(Value::as_array)
        else {
            return Ok(None);
        };
        if list.is_empty() {
            return Ok(None);
        }
        let mut metas = Vec::with_capacity(list.len());
        for (i, entry) in list.iter().enumerate() {
            let field = format!("{at}.x-kubernetes-validations[{i}]");
            let rule: Rule =
                serde_json::from_value(entry.clone()).map_err(|e| SchemaError::InvalidRule {
                    field: field.clone(),
                    rule: entry.to_string(),
                    detail: e.to_string(),
                })?;
            let field_path = match rule.field_path.as_deref().filter(|p| !p.is_empty()) {
                Some(path) => parse_field_path(path, node).map_err(|detail| {
                    SchemaError::InvalidFieldPath {
                        field: format!("{field}.fieldPath"),
                        path: path.to_string(),
                        detail,
                    }
                })?,
                None => Vec::new(),
            };
            metas.push(RuleMeta {
                message: rule.message.clone().unwrap_or_default(),
                has_message_expression: rule
                    .message_expression
                    .as_deref()
                    .is_some_and(|m| !m.is_empty()),
                reason: rule.reason.clone(),
                field_path,
                uses_old_self: false,
                rule: rule.rule,
            });
        }
        let mut stripped = raw.clone();
        strip_nested_rules(&mut stripped);
        let compiled = kube_cel::compile_schema(&stripped);
        for (i, result) in compiled.validations.iter().enumerate() {
            let field = format!("{at}.x-kubernetes-validations[{i}]");
            match result {
                Ok(program) => metas[i].uses_old_self = program.is_transition_rule,
                Err(CompilationError::MessageExpressionParse {
                    message_expression,
                    source,
                    ..
                }) => {
                    return Err(SchemaError::InvalidMessageExpression {
                        field: format!("{field}.messageExpression"),
                        expression: message_expression.clone(),
                        detail: source.to_string(),
                    });
                }
                Err(CompilationError::Parse { rule, source }) => {
                    return Err(SchemaError::InvalidRule {
                        field: format!("{field}.rule"),
                        rule: rule.clone(),
                        detail: source.to_string(),
                    });
                }
                Err(other) => {
                    return Err(SchemaError::InvalidRule {
                        field,
                        rule: metas[i].rule.clone(),
                        detail: other.to_string(),
                    });
                }
            }
        }
        Ok(Some(Self { compiled, metas }))
    }

    /// Evaluate this node's rules on `value` (never null), `old` being the correlated
    /// stored value on update. `unchanged` ratchets errors of rules that do not use
    /// `oldSelf`, as apiserver does for values equal to their stored value.
    pub(crate) fn evaluate(
        &self,
        node: &Node,
        value: &Value,
        old: Option<&Value>,
        path: &FieldPath,
        unchanged: bool,
        out: &mut Vec<FieldError>,
    ) {
        let Err(failures) = kube_cel::validate_compiled(&self.compiled, value, old) else {
            return;
        };
        let type_word = quote(node.type_word());
        for failure in failures.iter() {
            let Some(meta) = self.metas.iter().find(|m| m.rule == failure.rule) else {
                out.push(error::invalid_shown(
                    path.to_field(),
                    &type_word,
                    &failure.message,
                ));
                continue;
            };
            if unchanged && !meta.uses_old_self {
                continue;
            }
            match failure.kind {
                ErrorKind::ValidationFailure => {
                    let detail = meta.detail(&failure.message);
                    let field = meta.apply_field_path(path).to_field();
                    out.push(error_for_reason(
                        meta.reason.as_deref(),
                        field,
                        &type_word,
                        &detail,
                    ));
                }
                ErrorKind::EvaluationError => {
                    let cause = failure
                        .message
                        .strip_prefix("rule evaluation error: ")
                        .unwrap_or(&failure.message);
                    // NB: cel-go words runtime errors in lower case ("no such key: a").
                    let mut chars = cause.chars();
                    let cause: String = chars
                        .next()
                        .map(|c| c.to_lowercase().chain(chars).collect())
                        .unwrap_or_default();
                    let detail = format!("{cause} evaluating rule: {}", meta.error_string());
                    out.push(error::invalid_shown(path.to_field(), &type_word, &detail));
                }
                _ => out.push(error::invalid_shown(
                    path.to_field(),
                    &type_word,
                    &failure.message,
                )),
            }
        }
    }
}

impl RuleMeta {
    /// apiserver's `ruleMessageOrDefault`.
    fn message_or_default(&self) -> String {
        let message = self.message.trim();
        if message.is_empty() {
            format!("failed rule: {}", self.error_string())
        } else {
            message.to_string()
        }
    }

    /// apiserver's `ruleErrorString`.
    fn error_string(&self) -> String {
        let message = self.message.trim();
        if message.is_empty() {
            self.rule.trim().to_string()
        } else {
            message.to_string()
        }
    }

    /// The failure detail: the evaluated `messageExpression` when it gave a usable
    /// one-line string, else the static message.
    fn detail(&self, evaluated: &str) -> String {
        if self.has_message_expression {
            let evaluated = evaluated.trim();
            if !evaluated.is_empty()
                && !evaluated.contains('\n')
                && evaluated.len() <= MAX_MESSAGE_EXPRESSION_BYTES
            {
                return evaluated.to_string();
            }
        }
        self.message_or_default()
    }

    fn apply_field_path(&self, base: &FieldPath) -> FieldPath {
        self.field_path
            .iter()
            .fold(base.clone(), |path, step| match step {
                PathStep::Child(name) => path.child(name),
                PathStep::Key(key) => path.key(key),
            })
    }
}

/// apiserver's `fieldErrorForReason`.
fn error_for_reason(
    reason: Option<&str>,
    field: String,
    type_word: &str,
    detail: &str,
) -> FieldError {
    match reason {
        Some(crate::error::reasons::FORBIDDEN) => error::forbidden(field, detail),
        Some(crate::error::reasons::REQUIRED) => error::required(field, detail),
        Some(crate::error::reasons::DUPLICATE) => error::duplicate_shown(field, type_word),
        _ => error::invalid_shown(field, type_word, detail),
    }
}

/// Remove `x-kubernetes-validations` below the top of `schema`.
fn strip_nested_rules(schema: &mut Value) {
    fn strip_all(value: &mut Value) {
        if let Some(obj) = value.as_object_mut() {
            obj.remove("x-kubernetes-validations");
        }
        descend(value);
    }
    fn descend(value: &mut Value) {
        let Some(obj) = value.as_object_mut() else {
            return;
        };
        for key in NESTING_KEYS {
            match obj.get_mut(key) {
                Some(Value::Object(props)) => props.values_mut().for_each(strip_all),
                Some(Value::Array(list)) => list.iter_mut().for_each(strip_all),
                _ => {}
            }
        }
        for key in ["items", "additionalProperties", "not"] {
            if let Some(child) = obj.get_mut(key).filter(|c| c.is_object()) {
                strip_all(child);
            }
        }
    }
    descend(schema);
}

/// Normalise a rule `fieldPath` (`.spec.x`, `.m['key.with.dots']`) against the schema,
/// as apiserver's `ValidFieldPath` does: named properties become children, map keys
/// become `[key]`.
fn parse_field_path(path: &str, node: &Node) -> Result<Vec<PathStep>, String> {
    let mut steps = Vec::new();
    let mut current = node;
    let mut rest = path;
    while !rest.is_empty() {
        let name = if let Some(after) = rest.strip_prefix("['") {
            let end = after
                .find("']")
                .ok_or_else(|| "unexpected end of JSON path".to_string())?;
            rest = &after[end + 2..];
            after[..end].replace("\\'", "'").replace("\\\\", "\\")
        } else if let Some(after) = rest.strip_prefix('.') {
            let end = after.find(['.', '[']).unwrap_or(after.len());
            if end == 0 {
                return Err("unexpected end of JSON path".to_string());
            }
            rest = &after[end..];
            after[..end].to_string()
        } else {
            return Err(format!("expected [ or . but got: {rest}"));
        };
        if !current.properties.is_empty() {
            current = current
                .properties
                .get(&name)
                .ok_or_else(|| "does not refer to a valid field".to_string())?;
            steps.push(PathStep::Child(name));
        } else if let Some(values) = current.additional_schema() {
            current = values;
            steps.push(PathStep::Key(name));
        } else {
            return Err("does not refer to a valid field".to_string());
        }
    }
    Ok(steps)
}

/// Evaluate every rule at and below `node` on `value`, as apiserver's CEL validator
/// walks the object: a node's own rules, then list items, then map values and
/// properties (in key order here, where Go's map order is random). Null values are not
/// evaluated; `old` follows only correlatable paths (object fields and map-list items
/// by key), so transition rules run only where a stored counterpart exists.
pub(crate) fn walk(
    node: &Node,
    value: &Value,
    old: Option<&Value>,
    path: &FieldPath,
    out: &mut Vec<FieldError>,
) {
    if !node.rules_below || value.is_null() {
        return;
    }
    let old = old.filter(|o| !o.is_null());
    let unchanged = old == Some(value);
    if let Some(rules) = &node.rules {
        rules.evaluate(node, value, old, path, unchanged, out);
    }
    // NB: rules inside allOf branches judge the same value, worded with this node's type.
    for branch in &node.all_of {
        if let Some(rules) = &branch.rules {
            rules.evaluate(node, value, old, path, unchanged, out);
        }
    }
    match value {
        Value::Array(items) => {
            let Some(item_schema) = node.items.as_deref() else {
                return;
            };
            let old_items = old
                .and_then(Value::as_array)
                .filter(|_| node.list_type.as_deref() == Some("map"));
            for (i, item) in items.iter().enumerate() {
                let old_item =
                    old_items.and_then(|o| crate::listtype::correlate_item(node, item, o));
                walk(item_schema, item, old_item, &path.index(i), out);
            }
        }
        Value::Object(map) => {
            let correlatable = matches!(
                node.map_type.as_deref(),
                None | Some("granular") | Some("atomic")
            );
            let old_map = old.and_then(Value::as_object).filter(|_| correlatable);
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            for key in keys {
                let schema = match node.additional_schema() {
                    Some(values) => values,
                    None => match node.properties.get(key) {
                        Some(schema) => schema,
                        None => continue,
                    },
                };
                let child_path = if node.additional_schema().is_some() {
                    path.key(key)
                } else {
                    path.child(key)
                };
                walk(
                    schema,
                    &map[key],
                    old_map.and_then(|o| o.get(key)),
                    &child_path,
                    out,
                );
            }
        }
        _ => {}
    }
}
