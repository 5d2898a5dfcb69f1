//! Defaulting as kube-apiserver does it for custom resources: nulls of non-nullable
//! fields without a default are dropped, then every absent (or non-nullable null)
//! property of a present object gets a deep copy of its `default`, recursively, so a
//! default that is itself an object receives the defaults of its own properties.

use serde_json::Value;

use crate::node::Node;

/// Drop nulls the schema does not allow and that no default will replace.
pub(crate) fn drop_disallowed_nulls(value: &mut Value, node: &Node) {
    match value {
        Value::Object(map) => {
            map.retain(|key, child| {
                let schema = node.properties.get(key).or_else(|| node.additional_schema());
                !matches!((child, schema), (Value::Null, Some(s)) if !s.nullable && s.default.is_none())
            });
            for (key, child) in map.iter_mut() {
                if let Some(schema) = node
                    .properties
                    .get(key)
                    .or_else(|| node.additional_schema())
                {
                    drop_disallowed_nulls(child, schema);
                }
            }
        }
        Value::Array(list) => {
            if let Some(items) = node.items.as_deref() {
                list.iter_mut()
                    .for_each(|item| drop_disallowed_nulls(item, items));
            }
        }
        _ => {}
    }
}

/// Fill defaults below `value`.
pub(crate) fn apply(value: &mut Value, node: &Node) {
    match value {
        Value::Object(map) => {
            for (key, schema) in &node.properties {
                let Some(default) = &schema.default else {
                    continue;
                };
                let missing = match map.get(key) {
                    None => true,
                    Some(Value::Null) => !schema.nullable,
                    Some(_) => false,
                };
                if missing {
                    map.insert(key.clone(), default.clone());
                }
            }
            let values = node.additional_schema();
            for (key, child) in map.iter_mut() {
                if let Some(schema) = node.properties.get(key) {
                    apply(child, schema);
                } else if let Some(schema) = values {
                    replace_null_with_default(child, schema);
                    apply(child, schema);
                }
            }
        }
        Value::Array(list) => {
            if let Some(items) = node.items.as_deref() {
                for item in list.iter_mut() {
                    replace_null_with_default(item, items);
                    apply(item, items);
                }
            }
        }
        _ => {}
    }
}

fn replace_null_with_default(value: &mut Value, schema: &Node) {
    if value.is_null()
        && !schema.nullable
        && let Some(default) = &schema.default
    {
        *value = default.clone();
    }
}
