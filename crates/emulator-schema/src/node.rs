//! The compiled form of an `openAPIV3Schema`: one [`Node`] per schema node, with its
//! keywords parsed once (regexes compiled, CEL rules compiled by [`crate::cel`]).

use std::collections::BTreeMap;

use regex::Regex;
use serde_json::{Map, Value};

use crate::{cel::NodeRules, error::SchemaError};

/// What a node says about keys it does not declare in `properties`.
#[derive(Debug)]
pub(crate) enum Additional {
    /// No `additionalProperties` keyword.
    Absent,
    /// `additionalProperties: true|false`.
    Allowed(bool),
    /// `additionalProperties: {schema}`: the node is a map with values of this schema.
    Schema(Box<Node>),
}

/// A compiled `pattern`, keeping its source for messages.
#[derive(Debug)]
pub(crate) struct Pattern {
    pub source: String,
    pub regex: Regex,
}

/// One compiled schema node.
#[derive(Debug)]
pub(crate) struct Node {
    /// `type`, or empty when absent (int-or-string, preserve-unknown-only nodes).
    pub type_name: String,
    pub nullable: bool,
    pub format: Option<String>,
    pub int_or_string: bool,
    pub preserve_unknown: bool,
    pub embedded_resource: bool,
    pub properties: BTreeMap<String, Node>,
    pub required: Vec<String>,
    pub additional: Additional,
    pub items: Option<Box<Node>>,
    pub enum_values: Option<Vec<Value>>,
    pub pattern: Option<Pattern>,
    pub min_length: Option<u64>,
    pub max_length: Option<u64>,
    pub minimum: Option<f64>,
    pub maximum: Option<f64>,
    pub exclusive_minimum: bool,
    pub exclusive_maximum: bool,
    pub multiple_of: Option<f64>,
    pub min_items: Option<u64>,
    pub max_items: Option<u64>,
    pub unique_items: bool,
    pub min_properties: Option<u64>,
    pub max_properties: Option<u64>,
    pub all_of: Vec<Node>,
    pub any_of: Vec<Node>,
    pub one_of: Vec<Node>,
    pub not: Option<Box<Node>>,
    pub default: Option<Value>,
    pub list_type: Option<String>,
    pub list_map_keys: Vec<String>,
    pub map_type: Option<String>,
    /// `x-kubernetes-validations` of this node, compiled; `None` when it has none.
    pub rules: Option<NodeRules>,
    /// Whether this node or any node below it (properties, items, map values) has rules.
    pub rules_below: bool,
}

/// Where the root of a CRD version's schema is, as schema error paths name it.
pub(crate) const ROOT_AT: &str = "openAPIV3Schema";

const KNOWN_TYPES: [&str; 6] = ["array", "boolean", "integer", "number", "object", "string"];

impl Node {
    /// Compile `raw`, found at `at` (a path inside the CRD version's `schema`).
    pub(crate) fn compile(raw: &Value, at: &str) -> Result<Node, SchemaError> {
        let obj = raw.as_object().ok_or_else(|| SchemaError::NotAnObject {
            field: at.to_string(),
        })?;
        let type_name = str_of(obj, "type").unwrap_or_default();
        if !type_name.is_empty() && !KNOWN_TYPES.contains(&type_name.as_str()) {
            return Err(SchemaError::UnknownType {
                field: format!("{at}.type"),
                type_name,
            });
        }
        let pattern = match str_of(obj, "pattern") {
            Some(source) => {
                let regex = Regex::new(&source).map_err(|e| SchemaError::InvalidPattern {
                    field: format!("{at}.pattern"),
                    pattern: source.clone(),
                    detail: e.to_string(),
                })?;
                Some(Pattern { source, regex })
            }
            None => None,
        };
        let mut properties = BTreeMap::new();
        if let Some(props) = obj.get("properties").and_then(Value::as_object) {
            for (name, schema) in props {
                let child = Node::compile(schema, &format!("{at}.properties[{name}]"))?;
                properties.insert(name.clone(), child);
            }
        }
        let additional = match obj.get("additionalProperties") {
            None => Additional::Absent,
            Some(Value::Bool(b)) => Additional::Allowed(*b),
            Some(schema) => Additional::Schema(Box::new(Node::compile(
                schema,
                &format!("{at}.additionalProperties"),
            )?)),
        };
        let items = match obj.get("items") {
            Some(schema) => Some(Box::new(Node::compile(schema, &format!("{at}.items"))?)),
            None => None,
        };
        let not = match obj.get("not") {
            Some(schema) => Some(Box::new(Node::compile(schema, &format!("{at}.not"))?)),
            None => None,
        };
        let mut node = Node {
            type_name,
            nullable: bool_of(obj, "nullable"),
            format: str_of(obj, "format"),
            int_or_string: bool_of(obj, "x-kubernetes-int-or-string"),
            preserve_unknown: bool_of(obj, "x-kubernetes-preserve-unknown-fields"),
            embedded_resource: bool_of(obj, "x-kubernetes-embedded-resource"),
            properties,
            required: obj
                .get("required")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default(),
            additional,
            items,
            enum_values: obj.get("enum").and_then(Value::as_array).cloned(),
            pattern,
            min_length: obj.get("minLength").and_then(Value::as_u64),
            max_length: obj.get("maxLength").and_then(Value::as_u64),
            minimum: obj.get("minimum").and_then(Value::as_f64),
            maximum: obj.get("maximum").and_then(Value::as_f64),
            exclusive_minimum: bool_of(obj, "exclusiveMinimum"),
            exclusive_maximum: bool_of(obj, "exclusiveMaximum"),
            multiple_of: obj.get("multipleOf").and_then(Value::as_f64),
            min_items: obj.get("minItems").and_then(Value::as_u64),
            max_items: obj.get("maxItems").and_then(Value::as_u64),
            unique_items: bool_of(obj, "uniqueItems"),
            min_properties: obj.get("minProperties").and_then(Value::as_u64),
            max_properties: obj.get("maxProperties").and_then(Value::as_u64),
            all_of: compile_all(obj, "allOf", at)?,
            any_of: compile_all(obj, "anyOf", at)?,
            one_of: compile_all(obj, "oneOf", at)?,
            not,
            default: obj.get("default").cloned(),
            list_type: str_of(obj, "x-kubernetes-list-type"),
            list_map_keys: obj
                .get("x-kubernetes-list-map-keys")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default(),
            map_type: str_of(obj, "x-kubernetes-map-type"),
            rules: None,
            rules_below: false,
        };
        node.rules = NodeRules::compile(raw, &node, at)?;
        // apiserver refuses a default its own schema would prune (it never stores one)
        if let Some(default) = &node.default {
            let mut pruned = default.clone();
            crate::prune::prune(&mut pruned, &node, node.embedded_resource);
            if &pruned != default {
                return Err(SchemaError::UnprunedDefault {
                    field: format!("{at}.default"),
                    value: default.clone(),
                });
            }
        }
        node.rules_below = node.rules.is_some()
            || node.all_of.iter().any(|b| b.rules.is_some())
            || node.properties.values().any(|p| p.rules_below)
            || node.items.as_deref().is_some_and(|i| i.rules_below)
            || node.additional_schema().is_some_and(|a| a.rules_below);
        Ok(node)
    }

    /// The type word kube-apiserver prints as the bad value of a CEL failure
    /// of a CEL rule that could not be evaluated (`Invalid value: "object": ...`).
    pub(crate) fn type_word(&self) -> &str {
        &self.type_name
    }

    /// Whether the node is a map with arbitrary keys (`additionalProperties` schema).
    pub(crate) fn additional_schema(&self) -> Option<&Node> {
        match &self.additional {
            Additional::Schema(node) => Some(node),
            _ => None,
        }
    }
}

fn compile_all(obj: &Map<String, Value>, key: &str, at: &str) -> Result<Vec<Node>, SchemaError> {
    match obj.get(key).and_then(Value::as_array) {
        Some(list) => list
            .iter()
            .enumerate()
            .map(|(i, schema)| Node::compile(schema, &format!("{at}.{key}[{i}]")))
            .collect(),
        None => Ok(Vec::new()),
    }
}

fn str_of(obj: &Map<String, Value>, key: &str) -> Option<String> {
    obj.get(key).and_then(Value::as_str).map(str::to_string)
}

fn bool_of(obj: &Map<String, Value>, key: &str) -> bool {
    obj.get(key).and_then(Value::as_bool).unwrap_or(false)
}
