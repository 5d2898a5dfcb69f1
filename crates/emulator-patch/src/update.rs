//! Ownership bookkeeping of ordinary writes (create, update, merge/JSON/strategic patches):
//! the writer takes every field it added or changed, as kube-apiserver's "Update" operation.

use serde_json::Value;

use crate::managed::{self, Entry, UPDATE};
use crate::schema;
use crate::typed::{self, root_field};

pub(crate) fn record_update(
    old: Option<&Value>,
    new: &mut Value,
    manager: &str,
    subresource: Option<&str>,
    now: &str,
) {
    if !new.get("metadata").is_some_and(Value::is_object) {
        return;
    }
    let old_entries = || old.and_then(|o| managed::read(o).ok()).unwrap_or_default();
    // A writer may set managedFields itself (kubectl migrating client-side-apply ownership
    // does); subresource writes and unreadable or empty lists keep the stored entries.
    let mut entries = if subresource.is_some() {
        old_entries()
    } else if managed::is_reset(new) {
        Vec::new()
    } else {
        match managed::read(new) {
            Ok(entries) if !entries.is_empty() => entries,
            _ => old_entries(),
        }
    };
    managed::take(new);

    let ty = schema::root_or_unknown(new);
    let comparison = match old {
        Some(old) => {
            let mut old = old.clone();
            managed::take(&mut old);
            typed::compare(Some(&old), Some(new), root_field(ty))
        }
        None => typed::compare(
            Some(&Value::Object(Default::default())),
            Some(new),
            root_field(ty),
        ),
    };
    let mut changed = comparison.changed();
    typed::strip_identity(&mut changed);
    let mut removed = comparison.removed;
    typed::strip_identity(&mut removed);

    for entry in &mut entries {
        entry.fields.subtract(&changed);
        entry.fields.subtract(&removed);
    }
    let me = Entry {
        manager: manager.to_string(),
        operation: UPDATE.to_string(),
        api_version: new
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
        time: Some(now.to_string()),
        subresource: subresource.map(str::to_string),
        fields: changed,
    };
    if !me.fields.is_empty() {
        match entries.iter_mut().find(|e| e.same_owner(&me)) {
            Some(previous) => {
                previous.fields.union_with(&me.fields);
                previous.time = me.time;
            }
            None => entries.push(me),
        }
    }
    managed::write(new, entries);
}
