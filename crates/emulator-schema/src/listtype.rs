//! `x-kubernetes-list-type` semantics: duplicates in `set` and `map` lists are rejected
//! (apiserver's `ValidateListSetsAndMaps`), and list items are correlated with their
//! stored counterparts (map lists by key, sets by value) for transition rules and
//! ratcheting.

use serde_json::Value;

use crate::{
    error::{self, FieldError},
    node::Node,
    render::{FieldPath, render_go_map, render_value},
};

/// The stored item that `item` continues, if the list type lets items be correlated.
pub(crate) fn correlate_item<'a>(list: &Node, item: &Value, old: &'a [Value]) -> Option<&'a Value> {
    match list.list_type.as_deref() {
        Some("map") => {
            let keys = map_keys(list, item)?;
            old.iter()
                .find(|o| map_keys(list, o).as_ref() == Some(&keys))
        }
        Some("set") => old.iter().find(|o| *o == item),
        _ => None,
    }
}

/// Report duplicates in every set and map list below `value`.
pub(crate) fn validate(node: &Node, value: &Value, path: &FieldPath, out: &mut Vec<FieldError>) {
    match value {
        Value::Array(items) => {
            match node.list_type.as_deref() {
                Some("set") => {
                    for (i, item) in items.iter().enumerate() {
                        if items[..i].contains(item) {
                            out.push(error::duplicate_shown(
                                path.index(i).to_field(),
                                &render_value(item),
                            ));
                        }
                    }
                }
                Some("map") => {
                    let keys: Vec<Option<MapKey>> =
                        items.iter().map(|item| map_keys(node, item)).collect();
                    for (i, key) in keys.iter().enumerate() {
                        if let Some(key) = key
                            && keys[..i].iter().any(|k| k.as_ref() == Some(key))
                        {
                            let entries: Vec<(&str, &Value)> =
                                key.iter().map(|(k, v)| (k.as_str(), v)).collect();
                            out.push(error::duplicate_shown(
                                path.index(i).to_field(),
                                &render_go_map(&entries),
                            ));
                        }
                    }
                }
                _ => {}
            }
            if let Some(item_schema) = node.items.as_deref() {
                for (i, item) in items.iter().enumerate() {
                    validate(item_schema, item, &path.index(i), out);
                }
            }
        }
        Value::Object(map) => {
            for (key, child) in map {
                if let Some(schema) = node.properties.get(key) {
                    validate(schema, child, &path.child(key), out);
                } else if let Some(schema) = node.additional_schema() {
                    validate(schema, child, &path.child(key), out);
                }
            }
        }
        _ => {}
    }
}

/// The key fields of a map-list item, in `x-kubernetes-list-map-keys` order.
type MapKey = Vec<(String, Value)>;

/// The key of a map-list item, `None` when it is not an object.
fn map_keys(list: &Node, item: &Value) -> Option<MapKey> {
    let obj = item.as_object()?;
    Some(
        list.list_map_keys
            .iter()
            .map(|k| (k.clone(), obj.get(k).cloned().unwrap_or(Value::Null)))
            .collect(),
    )
}
