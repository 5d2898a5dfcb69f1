//! Strategic merge patch as kube-apiserver applies it to built-in kinds: keyed list merging,
//! scalar-set union and the directives kubectl's three-way patch emits (`$patch`,
//! `$retainKeys`, `$setElementOrder/…`, `$deleteFromPrimitiveList/…`).

use serde_json::{Map, Value};

use crate::PatchError;
use crate::schema::{Field, List, Ty};

const PATCH: &str = "$patch";
const RETAIN_KEYS: &str = "$retainKeys";
const SET_ORDER: &str = "$setElementOrder/";
const DELETE_FROM: &str = "$deleteFromPrimitiveList/";

fn invalid(why: impl std::fmt::Display) -> PatchError {
    PatchError::Invalid(format!("failed to apply strategic merge patch: {why}"))
}

/// Applies `patch` to `target`, whose root type is `root`.
pub(crate) fn apply(target: &mut Value, patch: &Value, root: Ty) -> Result<(), PatchError> {
    let Value::Object(patch) = patch else {
        return Err(invalid("the patch must be a JSON object"));
    };
    let original = match target.take() {
        Value::Object(map) => map,
        _ => Map::new(),
    };
    *target = Value::Object(merge_map(original, patch, root)?);
    Ok(())
}

fn merge_map(
    mut original: Map<String, Value>,
    patch: &Map<String, Value>,
    ty: Ty,
) -> Result<Map<String, Value>, PatchError> {
    if let Some(directive) = patch.get(PATCH) {
        match directive.as_str() {
            Some("replace") => {
                // The map becomes the patch content; nested directives still need processing.
                let mut rest = patch.clone();
                rest.remove(PATCH);
                return merge_map(Map::new(), &rest, ty);
            }
            Some("delete") => return Ok(Map::new()),
            Some("merge") => {}
            _ => return Err(invalid(format!("unknown patch type {directive} in map"))),
        }
    }
    if let Some(retain) = patch.get(RETAIN_KEYS) {
        let Value::Array(keys) = retain else {
            return Err(invalid("$retainKeys must be a list of field names"));
        };
        let keys: Vec<&str> = keys.iter().filter_map(Value::as_str).collect();
        original.retain(|k, _| keys.contains(&k.as_str()));
    }
    for (key, values) in patch {
        if let Some(field) = key.strip_prefix(DELETE_FROM) {
            let Value::Array(values) = values else {
                return Err(invalid(format!("{key} must be a list")));
            };
            if let Some(Value::Array(list)) = original.get_mut(field) {
                list.retain(|item| !values.contains(item));
            }
        }
    }
    // Orders are relative to the list as it was before this patch.
    let mut before: Vec<(String, Vec<Value>, Field, Vec<Value>)> = Vec::new();
    for (key, order) in patch {
        if let Some(name) = key.strip_prefix(SET_ORDER) {
            let Value::Array(order) = order else {
                return Err(invalid(format!("{key} must be a list")));
            };
            let previous = match original.get(name) {
                Some(Value::Array(list)) => list.clone(),
                _ => Vec::new(),
            };
            before.push((name.to_string(), previous, ty.field(name), order.clone()));
        }
    }
    for (key, value) in patch {
        if key.starts_with('$') {
            if key == PATCH
                || key == RETAIN_KEYS
                || key.starts_with(SET_ORDER)
                || key.starts_with(DELETE_FROM)
            {
                continue;
            }
            return Err(invalid(format!("unknown directive {key}")));
        }
        if value.is_null() {
            original.remove(key);
            continue;
        }
        let merged = merge_value(original.remove(key), value, ty.field(key))?;
        original.insert(key.clone(), merged);
    }
    for (name, previous, field, order) in before {
        if let Some(Value::Array(list)) = original.get_mut(&name) {
            let merged = std::mem::take(list);
            *list = apply_order(&previous, merged, &order, field.list);
        }
    }
    Ok(original)
}

fn merge_value(original: Option<Value>, patch: &Value, field: Field) -> Result<Value, PatchError> {
    match patch {
        Value::Object(patch) => {
            let original = match original {
                Some(Value::Object(map)) => map,
                _ => Map::new(),
            };
            Ok(Value::Object(merge_map(original, patch, field.ty)?))
        }
        Value::Array(patch) => {
            let original = match original {
                Some(Value::Array(list)) => list,
                _ => Vec::new(),
            };
            match field.list {
                List::Atomic => Ok(Value::Array(patch.clone())),
                List::Set => merge_set(original, patch).map(Value::Array),
                List::Map { merge_key, .. } => {
                    merge_keyed(original, patch, merge_key, field.ty).map(Value::Array)
                }
            }
        }
        scalar => Ok(scalar.clone()),
    }
}

fn directive_of(item: &Value) -> Option<&str> {
    item.as_object()?.get(PATCH)?.as_str()
}

/// `[{"$patch": "replace"}, a, b]` means "the list is exactly a, b".
fn replacement(patch: &[Value]) -> Option<Vec<&Value>> {
    if patch
        .iter()
        .any(|item| directive_of(item) == Some("replace"))
    {
        Some(
            patch
                .iter()
                .filter(|item| directive_of(item) != Some("replace"))
                .collect(),
        )
    } else {
        None
    }
}

fn merge_set(mut original: Vec<Value>, patch: &[Value]) -> Result<Vec<Value>, PatchError> {
    if let Some(items) = replacement(patch) {
        original = Vec::new();
        return merge_set(original, &items.into_iter().cloned().collect::<Vec<_>>());
    }
    for item in patch {
        if item.is_object() {
            return Err(invalid("a list of scalars cannot hold an object"));
        }
        if !original.contains(item) {
            original.push(item.clone());
        }
    }
    Ok(original)
}

fn merge_keyed(
    mut original: Vec<Value>,
    patch: &[Value],
    key: &str,
    ty: Ty,
) -> Result<Vec<Value>, PatchError> {
    if let Some(items) = replacement(patch) {
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            let Value::Object(item) = item else {
                return Err(invalid(format!("list merged by {key} holds a non-object")));
            };
            out.push(Value::Object(merge_map(Map::new(), item, ty)?));
        }
        return Ok(out);
    }
    for item in patch {
        let Value::Object(item) = item else {
            return Err(invalid(format!("list merged by {key} holds a non-object")));
        };
        let Some(wanted) = item.get(key) else {
            return Err(invalid(format!(
                "map {} does not contain declared merge key: {key}",
                Value::Object(item.clone())
            )));
        };
        let position = original.iter().position(|o| o.get(key) == Some(wanted));
        match item.get(PATCH).and_then(Value::as_str) {
            Some("delete") => {
                original.retain(|o| o.get(key) != Some(wanted));
                continue;
            }
            Some("merge") | None => {}
            Some(other) => {
                return Err(invalid(format!("unknown patch type {other} in list")));
            }
        }
        match position {
            Some(at) => {
                let existing = match original[at].take() {
                    Value::Object(map) => map,
                    _ => Map::new(),
                };
                original[at] = Value::Object(merge_map(existing, item, ty)?);
            }
            None => original.push(Value::Object(merge_map(Map::new(), item, ty)?)),
        }
    }
    Ok(original)
}

/// Reorders `merged` as `$setElementOrder` asks: listed items follow the order list, items
/// only the server had keep their place relative to the original list (the algorithm of
/// apimachinery's normalizeElementOrder).
fn apply_order(previous: &[Value], merged: Vec<Value>, order: &[Value], list: List) -> Vec<Value> {
    let identity = |item: &Value| -> Option<Value> {
        match list {
            List::Map { merge_key, .. } => item.get(merge_key).cloned(),
            List::Set => Some(item.clone()),
            List::Atomic => None,
        }
    };
    if list == List::Atomic {
        return merged;
    }
    let order_ids: Vec<Value> = order.iter().filter_map(&identity).collect();
    let previous_ids: Vec<Option<Value>> = previous.iter().map(&identity).collect();
    let rank = |ids: &[Option<Value>], item: &Value| -> Option<usize> {
        let id = identity(item)?;
        ids.iter().position(|x| x.as_ref() == Some(&id))
    };
    let (mut listed, mut server_only): (Vec<Value>, Vec<Value>) = merged
        .into_iter()
        .partition(|item| matches!(identity(item), Some(id) if order_ids.contains(&id)));
    let order_opts: Vec<Option<Value>> = order_ids.iter().cloned().map(Some).collect();
    listed.sort_by_key(|item| rank(&order_opts, item).unwrap_or(usize::MAX));
    server_only.sort_by_key(|item| rank(&previous_ids, item).unwrap_or(usize::MAX));

    let total = listed.len() + server_only.len();
    let mut out = Vec::with_capacity(total);
    let mut left = server_only.into_iter().peekable();
    let mut right = listed.into_iter().peekable();
    while out.len() < total {
        let take_left = match (left.peek(), right.peek()) {
            (Some(_), None) => true,
            (None, _) => false,
            (Some(l), Some(r)) => match (rank(&previous_ids, l), rank(&previous_ids, r)) {
                (Some(li), Some(ri)) => li < ri,
                _ => false,
            },
        };
        let next = if take_left { left.next() } else { right.next() };
        out.extend(next);
    }
    out
}
