//! `x-kubernetes-validations` CEL rules of one schema node: compiled once with the
//! `cel` crate, evaluated with `kube-cel`'s Kubernetes function library and `self` /
//! `oldSelf` bound as apiserver binds them ([`crate::celvalue`]), and their failures
//! worded as kube-apiserver's CEL validator words them.

use std::sync::Arc;

use kube_cel::{
    KubeCelExt, Rule,
    cel::{Context, Program, Value as Cel, objects::OptionalValue},
};
use serde_json::Value;

use crate::{
    celcheck::undefined_field,
    celvalue::to_cel,
    error::{self, FieldError, SchemaError},
    node::{Node, ROOT_AT},
    render::{FieldPath, go_rule, quote},
};

/// The apiserver's cap on an evaluated `messageExpression`.
const MAX_MESSAGE_EXPRESSION_BYTES: usize = 5 * 1024;

thread_local! {
    /// Registering the Kubernetes function library is costly; each thread does it once
    /// and every evaluation opens a child scope of it.
    static BASE_CONTEXT: Context<'static> = Context::default().with_all();
}

/// The rules of one node.
pub(crate) struct NodeRules {
    rules: Vec<CompiledRule>,
}

impl std::fmt::Debug for NodeRules {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let metas: Vec<&RuleMeta> = self.rules.iter().map(|r| &r.meta).collect();
        f.debug_struct("NodeRules").field("rules", &metas).finish()
    }
}

struct CompiledRule {
    program: Program,
    message_program: Option<Program>,
    meta: RuleMeta,
}

/// What the apiserver needs besides the program to word a failure.
#[derive(Debug)]
struct RuleMeta {
    rule: String,
    message: String,
    reason: Option<String>,
    field_path: Vec<PathStep>,
    uses_old_self: bool,
    optional_old_self: bool,
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
        let mut rules = Vec::with_capacity(list.len());
        for (i, entry) in list.iter().enumerate() {
            let field = format!("{at}.x-kubernetes-validations[{i}]");
            let rule: Rule =
                serde_json::from_value(entry.clone()).map_err(|e| SchemaError::InvalidRule {
                    field: field.clone(),
                    rule: entry.to_string(),
                    detail: e.to_string(),
                })?;
            let program = Program::compile(&rule.rule).map_err(|e| SchemaError::InvalidRule {
                field: format!("{field}.rule"),
                rule: go_rule(entry),
                detail: e.to_string(),
            })?;
            let message_program = match rule
                .message_expression
                .as_deref()
                .filter(|m| !m.trim().is_empty())
            {
                Some(expression) => Some(Program::compile(expression).map_err(|e| {
                    SchemaError::InvalidMessageExpression {
                        field: format!("{field}.messageExpression"),
                        expression: go_rule(entry),
                        detail: e.to_string(),
                    }
                })?),
                None => None,
            };
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
            let optional_old_self = rule.optional_old_self == Some(true);
            let is_resource = node.embedded_resource || at == ROOT_AT;
            if let Some(undefined) =
                undefined_field(program.expression(), node, is_resource, optional_old_self)
            {
                return Err(SchemaError::InvalidRule {
                    field: format!("{field}.rule"),
                    rule: go_rule(entry),
                    detail: format!("ERROR: <input>: undefined field '{undefined}'"),
                });
            }
            let uses_old_self = program.references().has_variable("oldSelf");
            rules.push(CompiledRule {
                program,
                message_program,
                meta: RuleMeta {
                    message: rule.message.unwrap_or_default(),
                    reason: rule.reason,
                    field_path,
                    uses_old_self,
                    optional_old_self,
                    rule: rule.rule,
                },
            });
        }
        Ok(Some(Self { rules }))
    }

    /// Evaluate this node's rules on `value` (never null), found at `path`; `old` is the
    /// correlated stored value on update. `unchanged` ratchets failures of rules that do
    /// not use `oldSelf`, as apiserver does for values equal to their stored value.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn evaluate(
        &self,
        node: &Node,
        is_resource: bool,
        value: &Value,
        old: Option<&Value>,
        path: &FieldPath,
        unchanged: bool,
        out: &mut Vec<FieldError>,
    ) {
        let type_word = quote(node.type_word());
        // A failed rule shows the value itself, except for objects and arrays, where
        // apiserver (1.35) omits it (`field.OmitValueType`); other errors show the type word.
        let failed_value = match node.type_word() {
            "object" | "array" => None,
            _ => Some(crate::render::render_value(value)),
        };
        let self_value = to_cel(value, node, is_resource);
        let old_value = old.map(|o| to_cel(o, node, is_resource));
        BASE_CONTEXT.with(|base| {
            for compiled in &self.rules {
                let meta = &compiled.meta;
                if meta.uses_old_self && old_value.is_none() && !meta.optional_old_self {
                    continue;
                }
                let mut scope = base.new_inner_scope();
                scope.add_variable_from_value("self", self_value.clone());
                if meta.uses_old_self {
                    let bound = match (&old_value, meta.optional_old_self) {
                        (Some(old), false) => old.clone(),
                        (Some(old), true) => Cel::Opaque(Arc::new(OptionalValue::of(old.clone()))),
                        (None, _) => Cel::Opaque(Arc::new(OptionalValue::none())),
                    };
                    scope.add_variable_from_value("oldSelf", bound);
                }
                match compiled.program.execute(&scope) {
                    Ok(Cel::Bool(true)) => {}
                    Ok(Cel::Bool(false)) => {
                        if unchanged && !meta.uses_old_self {
                            continue;
                        }
                        let evaluated =
                            compiled.message_program.as_ref().map(|p| p.execute(&scope));
                        let detail = meta.detail(evaluated);
                        let field = meta.apply_field_path(path).to_field();
                        out.push(error_for_reason(
                            meta.reason.as_deref(),
                            field,
                            failed_value.as_deref(),
                            &detail,
                        ));
                    }
                    Ok(other) => {
                        let detail = format!(
                            "rule evaluated to {} instead of bool evaluating rule: {}",
                            other.type_of(),
                            meta.error_string()
                        );
                        out.push(error::invalid_shown(path.to_field(), &type_word, &detail));
                    }
                    Err(e) => {
                        // NB: cel-go words runtime errors in lower case ("no such key: a").
                        let cause = e.to_string();
                        let mut chars = cause.chars();
                        let cause: String = chars
                            .next()
                            .map(|c| c.to_lowercase().chain(chars).collect())
                            .unwrap_or_default();
                        let detail = format!("{cause} evaluating rule: {}", meta.error_string());
                        out.push(error::invalid_shown(path.to_field(), &type_word, &detail));
                    }
                }
            }
        });
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
    /// one-line string, else the static message (apiserver's fallbacks).
    fn detail(&self, evaluated: Option<kube_cel::cel::ResolveResult>) -> String {
        if let Some(Ok(Cel::String(message))) = evaluated {
            let message = message.trim();
            if !message.is_empty()
                && !message.contains('\n')
                && message.len() <= MAX_MESSAGE_EXPRESSION_BYTES
            {
                return message.to_string();
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
    shown: Option<&str>,
    detail: &str,
) -> FieldError {
    match reason {
        Some(crate::error::reasons::FORBIDDEN) => error::forbidden(field, detail),
        Some(crate::error::reasons::REQUIRED) => error::required(field, detail),
        Some(crate::error::reasons::DUPLICATE) => error::duplicate_omitting(field, shown),
        _ => error::invalid_omitting(field, shown, detail),
    }
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
    is_resource: bool,
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
        rules.evaluate(node, is_resource, value, old, path, unchanged, out);
    }
    // NB: rules inside allOf branches judge the same value, worded with this node's type.
    for branch in &node.all_of {
        if let Some(rules) = &branch.rules {
            rules.evaluate(node, is_resource, value, old, path, unchanged, out);
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
                walk(
                    item_schema,
                    item_schema.embedded_resource,
                    item,
                    old_item,
                    &path.index(i),
                    out,
                );
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
                let old_value = old_map.and_then(|o| o.get(key));
                walk(
                    schema,
                    schema.embedded_resource,
                    &map[key],
                    old_value,
                    &child_path,
                    out,
                );
            }
        }
        _ => {}
    }
}
