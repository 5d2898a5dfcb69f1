//! Schema-directed walks over objects: the field set an applied configuration claims, the
//! added/modified/removed field sets between two versions of an object, and the set of
//! server-managed identity fields that ownership never covers. `null` counts as absent, as
//! it does once kube-apiserver has decoded an object into its typed form.

use serde_json::{Map, Value};

use crate::fieldset::{FieldSet, field_element, key_element, value_element};
use crate::schema::{Field, List, Ty};

/// The field of the object root itself.
pub(crate) fn root_field(ty: Ty) -> Field {
    Field {
        ty,
        list: List::Atomic,
    }
}

fn present(value: Option<&Value>) -> Option<&Value> {
    value.filter(|v| !v.is_null())
}

/// Key elements of every item, or None when some item cannot be keyed (then the list is
/// handled as atomic, which is what kube-apiserver effectively does with such a list).
pub(crate) fn keyed_items<'a>(
    items: &'a [Value],
    keys: &[&str],
) -> Option<Vec<(String, &'a Value)>> {
    items
        .iter()
        .map(|item| key_element(item, keys).map(|k| (k, item)))
        .collect()
}

/// The fields an applied configuration sets (structured-merge-diff's `ToFieldSet`).
pub(crate) fn applied_set(value: &Value, field: Field) -> FieldSet {
    match value {
        Value::Object(map) if !field.ty.is_atomic() && !map.is_empty() => FieldSet {
            member: false,
            children: map_children(map, field.ty),
        },
        Value::Array(items) if !items.is_empty() => match field.list {
            List::Map { keys, .. } => match keyed_items(items, keys) {
                Some(keyed) => {
                    let mut set = FieldSet::default();
                    for (element, item) in keyed {
                        let mut child = FieldSet::leaf();
                        if let Value::Object(map) = item
                            && !field.ty.is_atomic()
                        {
                            child.children = map_children(map, field.ty);
                        }
                        set.children.insert(element, child);
                    }
                    set
                }
                None => FieldSet::leaf(),
            },
            List::Set => {
                let mut set = FieldSet::default();
                for item in items {
                    set.children.insert(value_element(item), FieldSet::leaf());
                }
                set
            }
            List::Atomic => FieldSet::leaf(),
        },
        _ => FieldSet::leaf(),
    }
}

fn map_children(map: &Map<String, Value>, ty: Ty) -> std::collections::BTreeMap<String, FieldSet> {
    map.iter()
        .filter(|(_, v)| !v.is_null())
        .map(|(k, v)| (field_element(k), applied_set(v, ty.field(k))))
        .collect()
}

/// Everything under a value that appears or disappears as a whole; containers that are
/// not always-present structs count as members themselves (the `.` kube-apiserver records).
fn whole(value: &Value, field: Field) -> FieldSet {
    match value {
        Value::Object(map) if !field.ty.is_atomic() && !map.is_empty() => FieldSet {
            member: !field.ty.is_value_struct(),
            children: map
                .iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (field_element(k), whole(v, field.ty.field(k))))
                .collect(),
        },
        Value::Array(items) if !items.is_empty() => match field.list {
            List::Map { keys, .. } => match keyed_items(items, keys) {
                Some(keyed) => FieldSet {
                    member: true,
                    children: keyed
                        .into_iter()
                        .map(|(element, item)| (element, item_whole(item, field)))
                        .collect(),
                },
                None => FieldSet::leaf(),
            },
            List::Set => FieldSet {
                member: true,
                children: items
                    .iter()
                    .map(|item| (value_element(item), FieldSet::leaf()))
                    .collect(),
            },
            List::Atomic => FieldSet::leaf(),
        },
        _ => FieldSet::leaf(),
    }
}

/// Field-level differences between two versions of a value.
#[derive(Clone, Debug, Default)]
pub(crate) struct Comparison {
    pub added: FieldSet,
    pub modified: FieldSet,
    pub removed: FieldSet,
}

impl Comparison {
    fn attach(&mut self, element: String, child: Comparison) {
        if !child.added.is_empty() {
            self.added.children.insert(element.clone(), child.added);
        }
        if !child.modified.is_empty() {
            self.modified
                .children
                .insert(element.clone(), child.modified);
        }
        if !child.removed.is_empty() {
            self.removed.children.insert(element, child.removed);
        }
    }

    /// Added and modified fields: what a writer takes ownership of.
    pub(crate) fn changed(&self) -> FieldSet {
        let mut set = self.added.clone();
        set.union_with(&self.modified);
        set
    }
}

/// Compares `old` with `new` (structured-merge-diff's `Compare`).
pub(crate) fn compare(old: Option<&Value>, new: Option<&Value>, field: Field) -> Comparison {
    match (present(old), present(new)) {
        (None, None) => Comparison::default(),
        (None, Some(new)) => Comparison {
            added: whole(new, field),
            ..Comparison::default()
        },
        (Some(old), None) => Comparison {
            removed: whole(old, field),
            ..Comparison::default()
        },
        (Some(Value::Object(old)), Some(Value::Object(new)))
            if !(field.ty.is_atomic() || old.is_empty() && new.is_empty()) =>
        {
            let mut out = Comparison::default();
            for (name, old_value) in old {
                let child = compare(Some(old_value), new.get(name), field.ty.field(name));
                out.attach(field_element(name), child);
            }
            for (name, new_value) in new.iter().filter(|(k, _)| !old.contains_key(*k)) {
                let child = compare(None, Some(new_value), field.ty.field(name));
                out.attach(field_element(name), child);
            }
            out
        }
        (Some(Value::Array(old)), Some(Value::Array(new))) => compare_lists(old, new, field),
        (Some(old), Some(new)) => {
            if old == new {
                Comparison::default()
            } else {
                Comparison {
                    modified: FieldSet::leaf(),
                    ..Comparison::default()
                }
            }
        }
    }
}

fn compare_lists(old: &[Value], new: &[Value], field: Field) -> Comparison {
    let modified = || Comparison {
        modified: FieldSet::leaf(),
        ..Comparison::default()
    };
    match field.list {
        List::Map { keys, .. } => {
            let (Some(old_items), Some(new_items)) =
                (keyed_items(old, keys), keyed_items(new, keys))
            else {
                return if old == new {
                    Comparison::default()
                } else {
                    modified()
                };
            };
            let item_field = Field {
                ty: field.ty,
                list: List::Atomic,
            };
            let mut out = Comparison::default();
            for (element, old_item) in &old_items {
                let new_item = new_items
                    .iter()
                    .find(|(e, _)| e == element)
                    .map(|(_, v)| *v);
                let child = match new_item {
                    Some(new_item) if field.ty.is_atomic() => {
                        if *old_item == new_item {
                            Comparison::default()
                        } else {
                            Comparison {
                                modified: FieldSet::leaf(),
                                ..Comparison::default()
                            }
                        }
                    }
                    Some(new_item) => compare(Some(old_item), Some(new_item), item_field),
                    None => Comparison {
                        removed: item_whole(old_item, field),
                        ..Comparison::default()
                    },
                };
                out.attach(element.clone(), child);
            }
            for (element, new_item) in &new_items {
                if !old_items.iter().any(|(e, _)| e == element) {
                    out.attach(
                        element.clone(),
                        Comparison {
                            added: item_whole(new_item, field),
                            ..Comparison::default()
                        },
                    );
                }
            }
            out
        }
        List::Set => {
            let mut out = Comparison::default();
            for item in old.iter().filter(|item| !new.contains(item)) {
                out.removed
                    .children
                    .insert(value_element(item), FieldSet::leaf());
            }
            for item in new.iter().filter(|item| !old.contains(item)) {
                out.added
                    .children
                    .insert(value_element(item), FieldSet::leaf());
            }
            out
        }
        List::Atomic => {
            if old == new {
                Comparison::default()
            } else {
                modified()
            }
        }
    }
}

/// A keyed list item that appears or disappears: the item and all its fields.
fn item_whole(item: &Value, list_field: Field) -> FieldSet {
    let mut set = FieldSet::leaf();
    if let Value::Object(map) = item
        && !list_field.ty.is_atomic()
    {
        for (name, v) in map.iter().filter(|(_, v)| !v.is_null()) {
            set.children
                .insert(field_element(name), whole(v, list_field.ty.field(name)));
        }
    }
    set
}

/// Fields kube-apiserver manages itself; they never appear in managedFields.
const SERVER_METADATA: [&str; 10] = [
    "name",
    "namespace",
    "creationTimestamp",
    "selfLink",
    "uid",
    "generation",
    "managedFields",
    "resourceVersion",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
];

/// Removes identity and server-managed fields from a field set (kube-apiserver's stripMeta).
pub(crate) fn strip_identity(set: &mut FieldSet) {
    set.children.remove("f:apiVersion");
    set.children.remove("f:kind");
    if let Some(meta) = set.children.get_mut("f:metadata") {
        meta.member = false;
        for name in SERVER_METADATA {
            meta.children.remove(&field_element(name));
        }
    }
    set.compact();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::root;
    use serde_json::json;

    fn deployment_field() -> Field {
        root_field(root("apps/v1", "Deployment").expect("known"))
    }

    #[test]
    fn applied_set_keys_containers_by_name_and_keeps_selector_atomic() {
        let config = json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "labels": {"app": "web"}},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {"spec": {"containers": [{"name": "app", "image": "nginx"}]}}
            }
        });
        let mut set = applied_set(&config, deployment_field());
        strip_identity(&mut set);
        assert_eq!(
            set.to_json(),
            json!({
                "f:metadata": {"f:labels": {"f:app": {}}},
                "f:spec": {
                    "f:replicas": {},
                    "f:selector": {},
                    "f:template": {"f:spec": {"f:containers": {
                        "k:{\"name\":\"app\"}": {".": {}, "f:image": {}, "f:name": {}}
                    }}}
                }
            })
        );
    }

    #[test]
    fn comparison_reports_new_maps_with_a_dot_and_changed_scalars_as_modified() {
        let old = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "1"}});
        let new = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "labels": {"x": "y"}}, "data": {"a": "2"}});
        let field = root_field(root("v1", "ConfigMap").expect("known"));
        let cmp = compare(Some(&old), Some(&new), field);
        assert_eq!(
            cmp.added.to_json(),
            json!({"f:metadata": {"f:labels": {".": {}, "f:x": {}}}})
        );
        assert_eq!(cmp.modified.to_json(), json!({"f:data": {"f:a": {}}}));
        assert!(cmp.removed.is_empty());
    }

    #[test]
    fn comparison_of_keyed_lists_reports_items_not_positions() {
        let field = deployment_field();
        let old = json!({"spec": {"template": {"spec": {"containers": [
            {"name": "a", "image": "1"}, {"name": "b", "image": "1"}
        ]}}}});
        let new = json!({"spec": {"template": {"spec": {"containers": [
            {"name": "b", "image": "2"}
        ]}}}});
        let cmp = compare(Some(&old), Some(&new), field);
        let containers = |set: &FieldSet| {
            set.child("f:spec")
                .and_then(|s| s.child("f:template"))
                .and_then(|s| s.child("f:spec"))
                .and_then(|s| s.child("f:containers"))
                .cloned()
                .unwrap_or_default()
        };
        assert_eq!(
            containers(&cmp.removed).to_json(),
            json!({"k:{\"name\":\"a\"}": {".": {}, "f:image": {}, "f:name": {}}})
        );
        assert_eq!(
            containers(&cmp.modified).to_json(),
            json!({"k:{\"name\":\"b\"}": {"f:image": {}}})
        );
    }

    #[test]
    fn identity_fields_are_never_owned() {
        let config = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "namespace": "d", "uid": "u"}});
        let mut set = applied_set(&config, root_field(root("v1", "Secret").expect("known")));
        strip_identity(&mut set);
        assert!(set.is_empty());
    }
}
