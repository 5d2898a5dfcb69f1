//! Server-side apply: merge the applied configuration into the live object, prune what the
//! manager stopped applying, detect conflicts with other managers and record ownership.

use serde_json::{Map, Value};

use crate::fieldset::{FieldSet, display_path, value_element};
use crate::managed::{self, APPLY, Entry};
use crate::schema::{self, Field, List, Ty};
use crate::typed::{self, keyed_items, root_field};
use crate::{ApplyConflict, ApplyOptions, PatchError};

/// Metadata kube-apiserver owns; an applied configuration cannot change it.
const PROTECTED: [&str; 5] = [
    "uid",
    "creationTimestamp",
    "generation",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
];

pub(crate) fn server_side_apply(
    live: Option<&Value>,
    applied: &Value,
    opts: &ApplyOptions,
) -> Result<Value, PatchError> {
    let Value::Object(_) = applied else {
        return Err(PatchError::Invalid(
            "failed to apply: the applied configuration must be an object".into(),
        ));
    };
    if managed::has_entries(applied) {
        return Err(PatchError::Invalid(
            "metadata.managedFields must be nil".into(),
        ));
    }
    let mut config = without_nulls(applied);
    managed::take(&mut config);
    if opts.subresource == Some("status") {
        config = status_only(config);
    }

    let mut live_object = live.cloned().unwrap_or_else(|| Value::Object(Map::new()));
    // Unreadable entries are dropped rather than failing every later apply.
    let mut entries = managed::read(&live_object).unwrap_or_default();
    managed::take(&mut live_object);

    let ty = match schema::root_or_unknown(&config) {
        Ty::Unknown => schema::root_or_unknown(&live_object),
        known => known,
    };
    if opts.subresource.is_none()
        && ty.field("status").ty == Ty::Status
        && let Some(map) = config.as_object_mut()
    {
        // Built-in kinds with a status subresource ignore status on the main endpoint.
        map.remove("status");
    }
    let field = root_field(ty);

    let mut merged = live_object.clone();
    merge(&mut merged, &config, field);

    let mut set = typed::applied_set(&config, field);
    typed::strip_identity(&mut set);
    let me = Entry {
        manager: opts.manager.to_string(),
        operation: APPLY.to_string(),
        api_version: text(&config, "apiVersion")
            .or_else(|| text(&live_object, "apiVersion"))
            .unwrap_or_default(),
        time: Some(opts.now.to_string()),
        subresource: opts.subresource.map(str::to_string),
        fields: set,
    };

    let previous = entries.iter().position(|e| e.same_owner(&me));
    if let Some(at) = previous {
        let last = entries[at].fields.clone();
        let mut keep = me.fields.clone();
        for (i, other) in entries.iter().enumerate() {
            if i != at {
                keep.union_with(&other.fields);
            }
        }
        prune(&mut merged, &last, &keep, field, &[]);
    }
    protect(&live_object, &mut merged, &config, live.is_some());

    let mut changed = typed::compare(Some(&live_object), Some(&merged), field).changed();
    typed::strip_identity(&mut changed);
    let mut conflicts: Vec<(usize, FieldSet)> = Vec::new();
    for (i, other) in entries.iter().enumerate() {
        if Some(i) == previous {
            continue;
        }
        let clash = other.fields.intersection(&changed);
        if !clash.is_empty() {
            conflicts.push((i, clash));
        }
    }
    if !conflicts.is_empty() && !opts.force {
        return Err(conflict_error(&entries, &conflicts));
    }
    for (i, clash) in &conflicts {
        entries[*i].fields.subtract(clash);
    }

    match previous {
        Some(at) => entries[at] = me,
        None => entries.push(me),
    }
    if merged.get("metadata").is_none_or(|m| !m.is_object()) {
        merged
            .as_object_mut()
            .map(|o| o.insert("metadata".into(), Value::Object(Map::new())));
    }
    managed::write(&mut merged, entries);
    Ok(match live {
        Some(live) => managed::keep_if_noop(live, merged),
        None => merged,
    })
}

fn text(object: &Value, key: &str) -> Option<String> {
    object.get(key).and_then(Value::as_str).map(str::to_string)
}

/// Applied nulls mean "not set": kube-apiserver decodes them away before merging.
fn without_nulls(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), without_nulls(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(without_nulls).collect()),
        other => other.clone(),
    }
}

/// What a status-subresource apply may touch: identity and `status`. A `resourceVersion` in
/// the configuration stays: as on the main endpoint, apiserver treats it as a precondition.
fn status_only(config: Value) -> Value {
    let Value::Object(mut map) = config else {
        return config;
    };
    let mut out = Map::new();
    for key in ["apiVersion", "kind", "status"] {
        if let Some(v) = map.remove(key) {
            out.insert(key.into(), v);
        }
    }
    if let Some(Value::Object(meta)) = map.remove("metadata") {
        let identity: Map<String, Value> = meta
            .into_iter()
            .filter(|(k, _)| k == "name" || k == "namespace" || k == "resourceVersion")
            .collect();
        out.insert("metadata".into(), Value::Object(identity));
    }
    Value::Object(out)
}

/// Server-managed metadata keeps its live value; a resourceVersion in the configuration is
/// kept (the emulator treats it as a precondition).
fn protect(live: &Value, merged: &mut Value, config: &Value, exists: bool) {
    let Some(meta) = merged.get_mut("metadata").and_then(Value::as_object_mut) else {
        return;
    };
    let live_meta = live.get("metadata");
    let mut keys: Vec<&str> = PROTECTED.to_vec();
    if config.pointer("/metadata/resourceVersion").is_none() {
        keys.push("resourceVersion");
    }
    for key in keys {
        match live_meta.and_then(|m| m.get(key)) {
            Some(value) if exists => {
                meta.insert(key.into(), value.clone());
            }
            _ => {
                if key != "resourceVersion" || exists {
                    meta.remove(key);
                }
            }
        }
    }
}

/// Merges `config` into `live` (structured-merge-diff's `Merge`).
fn merge(live: &mut Value, config: &Value, field: Field) {
    match (live, config) {
        (Value::Object(live), Value::Object(config)) if !field.ty.is_atomic() => {
            for (name, value) in config {
                let child = field.ty.field(name);
                match live.get_mut(name) {
                    Some(existing) if !existing.is_null() => merge(existing, value, child),
                    _ => {
                        live.insert(name.clone(), value.clone());
                    }
                }
            }
        }
        (Value::Array(live), Value::Array(config)) => match field.list {
            List::Map { keys, .. } => {
                let (Some(live_keys), Some(config_keys)) =
                    (keyed_items(live, keys), keyed_items(config, keys))
                else {
                    *live = config.clone();
                    return;
                };
                let lhs: Vec<String> = live_keys.into_iter().map(|(k, _)| k).collect();
                let rhs: Vec<String> = config_keys.into_iter().map(|(k, _)| k).collect();
                let item_field = Field {
                    ty: field.ty,
                    list: List::Atomic,
                };
                let mut old = std::mem::take(live)
                    .into_iter()
                    .map(Some)
                    .collect::<Vec<_>>();
                for step in merge_order(&lhs, &rhs) {
                    match step {
                        Step::Live(i) => live.extend(old[i].take()),
                        Step::Config(j) => {
                            let mut item = match lhs.iter().position(|k| *k == rhs[j]) {
                                Some(i) => old[i].take().unwrap_or(Value::Null),
                                None => Value::Null,
                            };
                            if item.is_null() {
                                item = config[j].clone();
                            } else {
                                merge(&mut item, &config[j], item_field);
                            }
                            live.push(item);
                        }
                    }
                }
            }
            List::Set => {
                let lhs: Vec<String> = live.iter().map(value_element).collect();
                let rhs: Vec<String> = config.iter().map(value_element).collect();
                let old = std::mem::take(live);
                for step in merge_order(&lhs, &rhs) {
                    live.push(match step {
                        Step::Live(i) => old[i].clone(),
                        Step::Config(j) => config[j].clone(),
                    });
                }
            }
            List::Atomic => *live = config.clone(),
        },
        (live, config) => *live = config.clone(),
    }
}

/// Where one item of a merged list comes from.
#[derive(Debug, PartialEq, Eq)]
enum Step {
    /// A live item the configuration does not mention.
    Live(usize),
    /// A configured item, merged with its live counterpart if there is one.
    Config(usize),
}

/// The order of a merged associative list (structured-merge-diff's): configured items in
/// configuration order, live-only items kept where they stood relative to them.
fn merge_order(lhs: &[String], rhs: &[String]) -> Vec<Step> {
    let mut shared = rhs.iter().filter(|k| lhs.contains(k)).peekable();
    let mut done_rhs = vec![false; rhs.len()];
    let mut out = Vec::with_capacity(lhs.len() + rhs.len());
    let (mut l, mut r) = (0, 0);
    while l < lhs.len() || r < rhs.len() {
        if l < lhs.len() && r < rhs.len() {
            if lhs[l] == rhs[r] {
                out.push(Step::Config(r));
                done_rhs[r] = true;
                shared.next();
                l += 1;
                r += 1;
                continue;
            }
            let in_rhs = rhs.contains(&lhs[l]);
            if in_rhs && shared.peek().is_some_and(|next| **next != lhs[l]) {
                l += 1;
                continue;
            }
        }
        if l < lhs.len() {
            match rhs.iter().position(|k| *k == lhs[l]) {
                None => {
                    out.push(Step::Live(l));
                    l += 1;
                    continue;
                }
                Some(j) if done_rhs[j] => {
                    l += 1;
                    continue;
                }
                Some(_) => {}
            }
        }
        if r < rhs.len() {
            out.push(Step::Config(r));
            done_rhs[r] = true;
            if shared.peek().is_some_and(|next| **next == rhs[r]) {
                shared.next();
            }
            r += 1;
        }
    }
    out
}

/// Removes from `value` what `last` owned and nothing in `keep` still claims. Returns true
/// when `value` became empty through pruning (the caller then drops it too). `keys` are the
/// fields of a keyed list item that identify it and must stay while the item does.
fn prune(value: &mut Value, last: &FieldSet, keep: &FieldSet, field: Field, keys: &[&str]) -> bool {
    let empty = FieldSet::default();
    match value {
        Value::Object(map) if !field.ty.is_atomic() && !map.is_empty() => {
            for (element, owned) in &last.children {
                let Some(name) = element.strip_prefix("f:") else {
                    continue;
                };
                if keys.contains(&name) {
                    continue;
                }
                let kept = keep.child(element).unwrap_or(&empty);
                if kept.is_empty() {
                    map.remove(name);
                } else if !owned.children.is_empty()
                    && let Some(child) = map.get_mut(name)
                    && prune(child, owned, kept, field.ty.field(name), &[])
                    && !kept.member
                {
                    map.remove(name);
                }
            }
            map.is_empty()
        }
        Value::Array(items) if !items.is_empty() => {
            match field.list {
                List::Map {
                    keys: item_keys, ..
                } => {
                    let Some(elements) = keyed_items(items, item_keys)
                        .map(|k| k.into_iter().map(|(e, _)| e).collect::<Vec<_>>())
                    else {
                        return false;
                    };
                    let item_field = Field {
                        ty: field.ty,
                        list: List::Atomic,
                    };
                    let mut drop = vec![false; items.len()];
                    for (i, element) in elements.iter().enumerate() {
                        let Some(owned) = last.child(element) else {
                            continue;
                        };
                        let kept = keep.child(element).unwrap_or(&empty);
                        if kept.is_empty() {
                            drop[i] = true;
                        } else if !owned.children.is_empty() {
                            prune(&mut items[i], owned, kept, item_field, item_keys);
                        }
                    }
                    let mut flags = drop.into_iter();
                    items.retain(|_| !flags.next().unwrap_or(false));
                }
                List::Set => items.retain(|item| {
                    let element = value_element(item);
                    last.child(&element).is_none() || keep.touches(&element)
                }),
                List::Atomic => {}
            }
            items.is_empty()
        }
        _ => false,
    }
}

fn conflict_error(entries: &[Entry], conflicts: &[(usize, FieldSet)]) -> PatchError {
    let mut by_manager: Vec<(String, String, Vec<String>)> = conflicts
        .iter()
        .map(|(i, set)| {
            let paths = set.paths().iter().map(|p| display_path(p)).collect();
            (entries[*i].describe(), entries[*i].manager.clone(), paths)
        })
        .collect();
    by_manager.sort();
    let causes: Vec<ApplyConflict> = by_manager
        .iter()
        .flat_map(|(_, manager, paths)| {
            paths.iter().map(|p| ApplyConflict {
                manager: manager.clone(),
                field: p.clone(),
            })
        })
        .collect();
    let message = if causes.len() == 1 {
        format!(
            "Apply failed with 1 conflict: conflict with {}: {}",
            by_manager[0].0, causes[0].field
        )
    } else {
        let mut lines = Vec::new();
        for (described, _, paths) in &by_manager {
            lines.push(format!("conflicts with {described}:"));
            lines.extend(paths.iter().map(|p| format!("- {p}")));
        }
        format!(
            "Apply failed with {} conflicts: {}",
            causes.len(),
            lines.join("\n")
        )
    };
    PatchError::Conflict { message, causes }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    fn order(lhs: &[&str], rhs: &[&str]) -> Vec<String> {
        let (l, r) = (keys(lhs), keys(rhs));
        merge_order(&l, &r)
            .into_iter()
            .map(|step| match step {
                Step::Live(i) => l[i].clone(),
                Step::Config(j) => r[j].clone(),
            })
            .collect()
    }

    #[test]
    fn merged_lists_follow_the_configuration_order_and_keep_live_only_items_in_place() {
        assert_eq!(
            order(&["a", "s", "b"], &["a", "b", "c"]),
            ["a", "s", "b", "c"]
        );
        assert_eq!(order(&["a", "b"], &["b", "a"]), ["b", "a"]);
        assert_eq!(order(&["x", "a", "b"], &["b", "a"]), ["x", "b", "a"]);
        assert_eq!(order(&[], &["a", "b"]), ["a", "b"]);
        assert_eq!(order(&["a", "b"], &[]), ["a", "b"]);
        assert_eq!(
            order(&["a", "b", "c"], &["c", "new", "a"]),
            ["b", "c", "new", "a"]
        );
    }
}
