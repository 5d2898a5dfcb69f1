//! PUT, and the tail every update shares (update, `/scale`'s replace, patch): subresource
//! handling, validation, managedFields, generation, no-op detection and storing.

use std::sync::Arc;

use serde_json::{Value, json};

use super::validate::{builtin_fields, check_kind, custom_schema, validate_metadata};
use super::{
    Target, WriteParams, check_namespace, get, metadata_mut, now, present, require_namespace,
    storage_form, tidy_metadata,
};
use crate::status::{ApiError, Cause};
use crate::store::State;
use crate::{crds, gc, kinds};

/// PUT: replace an object (or its status).
pub fn update(
    state: &mut State,
    t: &Target,
    mut body: Value,
    p: &WriteParams,
) -> Result<Value, ApiError> {
    let name = t.name();
    check_kind(t, &mut body)?;
    check_namespace(t, &mut body)?;
    let body_name = body["metadata"]["name"].as_str().unwrap_or("").to_string();
    if body_name.is_empty() {
        body["metadata"]["name"] = json!(name);
    } else if body_name != name {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({body_name}) does not match the name on the URL ({name})"
        )));
    }
    require_namespace(state, t, false)?;
    let old = get(state, t)?;
    let rv = body["metadata"]["resourceVersion"].as_str().unwrap_or("");
    if rv.is_empty() && t.rt.is_custom() {
        return Err(ApiError::invalid(
            &t.rt,
            name,
            &[Cause {
                reason: "FieldValueInvalid".into(),
                message: "Invalid value: 0x0: must be specified for an update".into(),
                field: "metadata.resourceVersion".into(),
            }],
        ));
    }
    commit_update(state, t, old, body, p, false)
}

/// Store `new` in place of `old` through the ordinary update path (used by `/scale`).
#[cfg(feature = "kubectl")]
pub fn replace(
    state: &mut State,
    t: &Target,
    old: Arc<Value>,
    new: Value,
    p: &WriteParams,
) -> Result<Value, ApiError> {
    commit_update(state, t, old, new, p, false)
}

/// The shared tail of update and patch: subresource handling, defaulting, validation,
/// managedFields, generation, no-op detection, finalization, storing.
pub(super) fn commit_update(
    state: &mut State,
    t: &Target,
    old: Arc<Value>,
    mut new: Value,
    p: &WriteParams,
    managed_done: bool,
) -> Result<Value, ApiError> {
    let rt = t.rt.clone();
    let name = t.name().to_string();
    let old_rv = old["metadata"]["resourceVersion"].as_str().unwrap_or("");
    let new_rv = new["metadata"]["resourceVersion"].as_str().unwrap_or("");
    if !new_rv.is_empty() && new_rv != old_rv {
        return Err(ApiError::conflict(&rt, &name));
    }
    metadata_mut(&mut new)?;
    storage_form(&rt, &mut new);
    if t.is_status() {
        let mut merged = (*old).clone();
        match new.get("status") {
            Some(s) => merged["status"] = s.clone(),
            None => {
                merged.as_object_mut().map(|m| m.remove("status"));
            }
        }
        if managed_done {
            merged["metadata"]["managedFields"] = new["metadata"]["managedFields"].clone();
        }
        new = merged;
    } else if rt.has_status {
        match old.get("status") {
            Some(s) => new["status"] = s.clone(),
            None => {
                new.as_object_mut().map(|m| m.remove("status"));
            }
        }
    }
    {
        let md = metadata_mut(&mut new)?;
        for k in [
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generation",
        ] {
            match old["metadata"].get(k) {
                Some(v) => {
                    md.insert(k.into(), v.clone());
                }
                None => {
                    md.remove(k);
                }
            }
        }
        md.insert("name".into(), json!(name));
        md.insert("resourceVersion".into(), json!(old_rv));
        if md.get("managedFields").is_some_and(Value::is_null) {
            md.remove("managedFields");
        }
    }
    tidy_metadata(&mut new);
    let causes = validate_metadata(&rt, &new);
    if !causes.is_empty() {
        return Err(ApiError::invalid(&rt, &name, &causes));
    }
    if rt.is_custom() {
        custom_schema(t, &mut new, Some(&old), p.strict)?;
    } else {
        builtin_fields(t, &mut new, p.strict)?;
        kinds::normalize(&rt, &mut new, Some(&old), state)?;
    }
    let now = now();
    let is_crd = rt.group == "apiextensions.k8s.io" && rt.resource == "customresourcedefinitions";
    let crd_type = if is_crd {
        let new_rt = crds::resource_type(&rt, &new)?;
        new["status"] = crds::accepted_status(&new, &now);
        Some(new_rt)
    } else {
        None
    };
    if !managed_done {
        emulator_patch::record_update(
            Some(&old),
            &mut new,
            &p.manager,
            t.subresource.as_deref(),
            &now,
        );
    }
    if rt.tracks_generation && spec_changed(&old, &new) {
        let g = old["metadata"]["generation"].as_i64().unwrap_or(0);
        new["metadata"]["generation"] = json!(g + 1);
    }
    if same_object(&old, &new) {
        return Ok(present(&rt, &t.version, &old));
    }
    let deleting = new["metadata"].get("deletionTimestamp").is_some();
    let no_finalizers = new["metadata"]["finalizers"]
        .as_array()
        .is_none_or(Vec::is_empty);
    if p.dry_run {
        return Ok(present(&rt, &t.version, &new));
    }
    if deleting && no_finalizers && rt.resource != "namespaces" {
        // The last finalizer went away: the object is gone, apiserver answers with
        // its final state.
        state.put(&rt, new);
        let last = state
            .remove(&rt.key(), &t.okey())
            .expect("object present under lock");
        gc::collect(state, &now);
        return Ok(present(&rt, &t.version, &last));
    }
    let stored = state.put(&rt, new);
    if let Some(new_rt) = crd_type {
        state.registry.insert(new_rt);
    }
    gc::collect(state, &now);
    Ok(present(&rt, &t.version, &stored))
}

fn without(obj: &Value, keys: &[&str]) -> Value {
    let mut o = obj.clone();
    if let Some(m) = o.as_object_mut() {
        for k in keys {
            m.remove(*k);
        }
    }
    o
}

fn spec_changed(old: &Value, new: &Value) -> bool {
    without(old, &["metadata", "status"]) != without(new, &["metadata", "status"])
}

/// Whether a write changes nothing: the same object, and the same field ownership (a new
/// manager taking over fields is a change; a refreshed timestamp alone is not).
pub(super) fn same_object(old: &Value, new: &Value) -> bool {
    let strip = |v: &Value| {
        let mut o = v.clone();
        if let Some(md) = o["metadata"].as_object_mut() {
            md.remove("resourceVersion");
            if let Some(Value::Array(entries)) = md.get_mut("managedFields") {
                for e in entries.iter_mut() {
                    if let Some(m) = e.as_object_mut() {
                        m.remove("time");
                    }
                }
                entries.sort_by_key(|e| e.to_string());
            }
        }
        o
    };
    strip(old) == strip(new)
}
