//! `metadata.managedFields` entries: reading them from an object, writing them back in
//! kube-apiserver's order, and telling managers apart the way it does (Apply entries by
//! manager and subresource, Update entries also by apiVersion).

use serde_json::{Map, Value};

use crate::fieldset::FieldSet;

pub(crate) const APPLY: &str = "Apply";
pub(crate) const UPDATE: &str = "Update";

/// One managedFields entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Entry {
    pub manager: String,
    pub operation: String,
    pub api_version: String,
    pub time: Option<String>,
    pub subresource: Option<String>,
    pub fields: FieldSet,
}

impl Entry {
    /// Whether two entries belong to the same manager identity.
    pub(crate) fn same_owner(&self, other: &Entry) -> bool {
        self.manager == other.manager
            && self.operation == other.operation
            && self.subresource == other.subresource
            && (self.operation == APPLY || self.api_version == other.api_version)
    }

    /// The manager as kube-apiserver names it in conflict messages.
    pub(crate) fn describe(&self) -> String {
        let mut out = format!("{:?}", self.manager);
        if let Some(sub) = &self.subresource {
            out.push_str(&format!(" with subresource {sub:?}"));
        }
        if self.operation == UPDATE {
            out.push_str(&format!(" using {}", self.api_version));
        }
        out
    }

    fn to_json(&self) -> Value {
        let mut map = Map::new();
        map.insert("manager".into(), Value::String(self.manager.clone()));
        map.insert("operation".into(), Value::String(self.operation.clone()));
        map.insert("apiVersion".into(), Value::String(self.api_version.clone()));
        if let Some(time) = &self.time {
            map.insert("time".into(), Value::String(time.clone()));
        }
        map.insert("fieldsType".into(), Value::String("FieldsV1".into()));
        map.insert("fieldsV1".into(), self.fields.to_json());
        if let Some(sub) = &self.subresource {
            map.insert("subresource".into(), Value::String(sub.clone()));
        }
        Value::Object(map)
    }

    fn from_json(value: &Value) -> Result<Entry, String> {
        let text = |key: &str| value.get(key).and_then(Value::as_str).map(str::to_string);
        let operation = text("operation").unwrap_or_default();
        if operation != APPLY && operation != UPDATE {
            return Err(format!("unknown operation {operation:?}"));
        }
        if text("fieldsType").as_deref() != Some("FieldsV1") {
            return Err("fieldsType must be FieldsV1".into());
        }
        let fields = match value.get("fieldsV1") {
            None | Some(Value::Null) => FieldSet::default(),
            Some(fields) => FieldSet::from_json(fields).ok_or("fieldsV1 is not a field set")?,
        };
        Ok(Entry {
            manager: text("manager").unwrap_or_default(),
            operation,
            api_version: text("apiVersion").unwrap_or_default(),
            time: text("time"),
            subresource: text("subresource").filter(|s| !s.is_empty()),
            fields,
        })
    }
}

fn managed_of(object: &Value) -> Option<&Value> {
    object
        .get("metadata")?
        .get("managedFields")
        .filter(|v| !v.is_null())
}

/// Entries of `object`; Err when they are malformed.
pub(crate) fn read(object: &Value) -> Result<Vec<Entry>, String> {
    match managed_of(object) {
        None => Ok(Vec::new()),
        Some(Value::Array(items)) => items.iter().map(Entry::from_json).collect(),
        Some(_) => Err("managedFields must be a list".into()),
    }
}

/// `managedFields: [{}]` is how clients ask kube-apiserver to drop all entries.
pub(crate) fn is_reset(object: &Value) -> bool {
    match managed_of(object) {
        Some(Value::Array(items)) if !items.is_empty() => items.iter().all(|item| {
            item.as_object()
                .is_some_and(|m| m.values().all(Value::is_null))
        }),
        _ => false,
    }
}

/// Whether `object` carries a non-empty managedFields list.
pub(crate) fn has_entries(object: &Value) -> bool {
    matches!(managed_of(object), Some(Value::Array(items)) if !items.is_empty())
}

/// Takes managedFields out of an object (compare and merge ignore them).
pub(crate) fn take(object: &mut Value) -> Option<Value> {
    object
        .get_mut("metadata")?
        .as_object_mut()?
        .remove("managedFields")
}

/// kube-apiserver keeps at most this many Update entries.
const MAX_UPDATE_MANAGERS: usize = 10;
/// The manager the oldest Update entries are folded into past the cap.
const ANCIENT: &str = "ancient-changes";

/// Folds the oldest Update entries into per-apiVersion "ancient-changes" entries until at
/// most [`MAX_UPDATE_MANAGERS`] remain, as kube-apiserver does to bound managedFields.
fn cap_updates(entries: &mut Vec<Entry>) {
    let mut updates: Vec<usize> = (0..entries.len())
        .filter(|&i| entries[i].operation == UPDATE)
        .collect();
    if updates.len() <= MAX_UPDATE_MANAGERS {
        return;
    }
    updates.sort_by(|&a, &b| entries[a].time.cmp(&entries[b].time));
    let mut remaining = updates.len();
    let mut first_of_version: Vec<(String, usize)> = Vec::new();
    let mut gone = vec![false; entries.len()];
    for i in updates {
        if remaining <= MAX_UPDATE_MANAGERS {
            break;
        }
        let version = entries[i].api_version.clone();
        match first_of_version.iter().find(|(v, _)| *v == version) {
            Some(&(_, bucket)) => {
                let merged = entries[i].fields.clone();
                let time = entries[i].time.clone();
                let target = &mut entries[bucket];
                target.manager = ANCIENT.to_string();
                target.subresource = None;
                target.fields.union_with(&merged);
                target.time = time;
                gone[i] = true;
                remaining -= 1;
            }
            None => first_of_version.push((version, i)),
        }
    }
    let mut flags = gone.into_iter();
    entries.retain(|_| !flags.next().unwrap_or(false));
}

/// Writes `entries` into `object` in kube-apiserver's order, dropping empty ones.
pub(crate) fn write(object: &mut Value, mut entries: Vec<Entry>) {
    entries.retain(|e| !e.fields.is_empty());
    cap_updates(&mut entries);
    entries.sort_by(|a, b| {
        (
            &a.operation,
            &a.time,
            &a.manager,
            &a.api_version,
            &a.subresource,
        )
            .cmp(&(
                &b.operation,
                &b.time,
                &b.manager,
                &b.api_version,
                &b.subresource,
            ))
    });
    let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) else {
        return;
    };
    if entries.is_empty() {
        meta.remove("managedFields");
    } else {
        meta.insert(
            "managedFields".into(),
            Value::Array(entries.iter().map(Entry::to_json).collect()),
        );
    }
}

/// When a write changed nothing but timestamps, kube-apiserver keeps the old timestamps so
/// the write stays a no-op; this does the same by returning the previous object.
pub(crate) fn keep_if_noop(previous: &Value, mut next: Value) -> Value {
    let mut a = previous.clone();
    let managed_a = take(&mut a);
    let managed_b = take(&mut next);
    if a != next {
        restore(&mut next, managed_b);
        return next;
    }
    let strip = |v: &Option<Value>| -> Vec<Value> {
        let mut items = match v {
            Some(Value::Array(items)) => items.clone(),
            _ => Vec::new(),
        };
        for item in &mut items {
            if let Some(map) = item.as_object_mut() {
                map.remove("time");
            }
        }
        items
    };
    let (mut old_entries, mut new_entries) = (strip(&managed_a), strip(&managed_b));
    let key = |v: &Value| v.to_string();
    old_entries.sort_by_key(key);
    new_entries.sort_by_key(key);
    if old_entries == new_entries {
        previous.clone()
    } else {
        restore(&mut next, managed_b);
        next
    }
}

fn restore(object: &mut Value, managed: Option<Value>) {
    if let (Some(managed), Some(meta)) = (
        managed,
        object.get_mut("metadata").and_then(Value::as_object_mut),
    ) {
        meta.insert("managedFields".into(), managed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn entries_round_trip_and_sort_apply_before_update_then_by_time() {
        let mut object = json!({"metadata": {"managedFields": [
            {"manager": "b", "operation": "Update", "apiVersion": "v1", "time": "2026-01-01T00:00:01Z",
             "fieldsType": "FieldsV1", "fieldsV1": {"f:data": {"f:x": {}}}},
            {"manager": "z", "operation": "Apply", "apiVersion": "v1", "time": "2026-01-01T00:00:05Z",
             "fieldsType": "FieldsV1", "fieldsV1": {"f:data": {"f:y": {}}}},
            {"manager": "a", "operation": "Update", "apiVersion": "v1", "time": "2026-01-01T00:00:00Z",
             "fieldsType": "FieldsV1", "fieldsV1": {"f:data": {"f:z": {}}}, "subresource": "status"}
        ]}});
        let entries = read(&object).expect("valid entries");
        write(&mut object, entries);
        let managers: Vec<&str> = object["metadata"]["managedFields"]
            .as_array()
            .expect("list")
            .iter()
            .map(|e| e["manager"].as_str().expect("manager"))
            .collect();
        assert_eq!(managers, ["z", "a", "b"]);
        assert_eq!(
            object["metadata"]["managedFields"][1]["subresource"],
            "status"
        );
    }

    #[test]
    fn update_managers_are_told_apart_by_api_version_but_apply_managers_are_not() {
        let entry = |op: &str, version: &str| Entry {
            manager: "m".into(),
            operation: op.into(),
            api_version: version.into(),
            time: None,
            subresource: None,
            fields: FieldSet::leaf(),
        };
        assert!(entry(APPLY, "v1").same_owner(&entry(APPLY, "v2")));
        assert!(!entry(UPDATE, "v1").same_owner(&entry(UPDATE, "v2")));
        assert!(!entry(UPDATE, "v1").same_owner(&entry(APPLY, "v1")));
        assert_eq!(entry(UPDATE, "apps/v1").describe(), r#""m" using apps/v1"#);
        assert_eq!(entry(APPLY, "apps/v1").describe(), r#""m""#);
    }

    #[test]
    fn more_than_ten_update_managers_fold_the_oldest_into_ancient_changes() {
        let mut entries: Vec<Entry> = (0..12)
            .map(|i| Entry {
                manager: format!("m{i:02}"),
                operation: UPDATE.into(),
                api_version: "v1".into(),
                time: Some(format!("2026-01-01T00:00:{i:02}Z")),
                subresource: None,
                fields: FieldSet::from_json(&json!({"f:data": {format!("f:k{i}"): {}}}))
                    .expect("valid"),
            })
            .collect();
        entries.push(Entry {
            manager: "applier".into(),
            operation: APPLY.into(),
            api_version: "v1".into(),
            time: Some("2026-01-01T00:00:00Z".into()),
            subresource: None,
            fields: FieldSet::leaf(),
        });
        let mut object = json!({"metadata": {}});
        write(&mut object, entries);
        let written = read(&object).expect("valid");
        let updates: Vec<&Entry> = written.iter().filter(|e| e.operation == UPDATE).collect();
        assert_eq!(updates.len(), 10);
        let ancient = written
            .iter()
            .find(|e| e.manager == ANCIENT)
            .expect("bucket entry");
        assert_eq!(
            ancient.fields.to_json(),
            json!({"f:data": {"f:k0": {}, "f:k1": {}, "f:k2": {}}})
        );
        assert_eq!(ancient.time.as_deref(), Some("2026-01-01T00:00:02Z"));
        assert!(written.iter().any(|e| e.manager == "applier"));
        assert!(written.iter().any(|e| e.manager == "m11"));
    }

    #[test]
    fn malformed_entries_and_the_reset_marker_are_recognised() {
        let bad = json!({"metadata": {"managedFields": [{"manager": "m", "operation": "Patch", "fieldsType": "FieldsV1"}]}});
        assert!(read(&bad).is_err());
        let reset = json!({"metadata": {"managedFields": [{}]}});
        assert!(is_reset(&reset));
        assert!(!is_reset(&json!({"metadata": {"managedFields": []}})));
    }
}
