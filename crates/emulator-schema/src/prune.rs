//! Pruning as kube-apiserver does it for custom resources: fields the structural schema
//! does not declare are dropped, except below `x-kubernetes-preserve-unknown-fields`,
//! and `apiVersion`, `kind` and `metadata` survive untouched at the root and in embedded
//! resources.

use serde_json::Value;

use crate::node::{Additional, Node};

/// Fields every Kubernetes object keeps whatever its schema says.
const OBJECT_TYPE_AND_META: [&str; 3] = ["apiVersion", "kind", "metadata"];

/// Prune `value`, an object at the root (`is_resource_root`) or below it.
pub(crate) fn prune(value: &mut Value, node: &Node, is_resource_root: bool) {
    match value {
        Value::Object(map) => {
            // NB: ObjectMeta is pruned by its own codec in apiserver, never by the schema.
            let keeps_type_and_meta = is_resource_root || node.embedded_resource;
            let is_type_or_meta =
                |key: &str| keeps_type_and_meta && OBJECT_TYPE_AND_META.contains(&key);
            let keeps_unknown = node.preserve_unknown
                || matches!(
                    node.additional,
                    Additional::Schema(_) | Additional::Allowed(true)
                );
            map.retain(|key, _| {
                keeps_unknown || node.properties.contains_key(key) || is_type_or_meta(key)
            });
            for (key, child) in map.iter_mut() {
                if is_type_or_meta(key) {
                    continue;
                }
                if let Some(schema) = node
                    .properties
                    .get(key)
                    .or_else(|| node.additional_schema())
                {
                    prune(child, schema, false);
                }
            }
        }
        Value::Array(list) => {
            if let Some(items) = node.items.as_deref() {
                list.iter_mut().for_each(|item| prune(item, items, false));
            }
        }
        _ => {}
    }
}
