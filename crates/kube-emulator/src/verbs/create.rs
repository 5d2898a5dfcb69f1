//! POST: creating an object, also the path server-side apply takes for a missing one.

use rand::Rng;
use serde_json::{Value, json};

use super::crd_cleanup::crd_terminating;
use super::validate::{
    builtin_fields, check_kind, custom_schema, invalid_value, required, validate_metadata,
};
use super::{
    Target, WriteParams, check_namespace, metadata_mut, new_uid, now, present, require_namespace,
    storage_form, tidy_metadata,
};
use crate::status::ApiError;
use crate::store::State;
use crate::{crds, gc, kinds};

fn random_suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut rng = rand::thread_rng();
    (0..5)
        .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
        .collect()
}

/// POST: create a new object.
pub fn create(
    state: &mut State,
    t: &Target,
    body: Value,
    p: &WriteParams,
) -> Result<Value, ApiError> {
    if t.subresource.is_some() {
        return Err(ApiError::method_not_allowed(
            "the server does not allow this method on the requested resource".to_string(),
        ));
    }
    create_object(state, t, body, p, false)
}

pub(super) fn create_object(
    state: &mut State,
    t: &Target,
    mut obj: Value,
    p: &WriteParams,
    managed_done: bool,
) -> Result<Value, ApiError> {
    let rt = t.rt.clone();
    check_kind(t, &mut obj)?;
    storage_form(&rt, &mut obj);
    check_namespace(t, &mut obj)?;
    let md = metadata_mut(&mut obj)?;
    let mut name = md
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    if name.is_empty() {
        match md.get("generateName").and_then(Value::as_str) {
            Some(prefix) if !prefix.is_empty() => {
                name = format!("{prefix}{}", random_suffix());
                md.insert("name".into(), json!(name));
            }
            _ => {
                return Err(ApiError::invalid(
                    &rt,
                    "",
                    &[required(
                        "metadata.name",
                        "name or generateName is required",
                    )],
                ));
            }
        }
    }
    let mut t = t.clone();
    t.name = Some(name.clone());
    require_namespace(state, &t, true)?;
    if rt.is_custom() && crd_terminating(state, &rt) {
        // apiserver's CRD admission answers NewForbidden (1.35; older releases had 405)
        return Err(ApiError {
            code: 403,
            reason: "Forbidden",
            message: format!(
                "{} \"{}\" is forbidden: create not allowed while custom resource definition is terminating",
                rt.qualified_resource(),
                name
            ),
            details: Some(json!({"name": name, "group": rt.group, "kind": rt.resource})),
        });
    }
    if state.get(&rt.key(), &t.okey()).is_some() {
        return Err(ApiError::already_exists(&rt, &name));
    }
    let now = now();
    let md = metadata_mut(&mut obj)?;
    md.remove("resourceVersion");
    md.remove("deletionTimestamp");
    md.remove("deletionGracePeriodSeconds");
    md.insert("uid".into(), json!(new_uid()));
    md.insert("creationTimestamp".into(), json!(now));
    if rt.tracks_generation {
        md.insert("generation".into(), json!(1));
    } else {
        md.remove("generation");
    }
    if rt.has_status
        && rt.resource != "pods"
        && let Some(m) = obj.as_object_mut()
    {
        m.remove("status");
    }
    tidy_metadata(&mut obj);
    let causes = validate_metadata(&rt, &obj);
    if !causes.is_empty() {
        return Err(ApiError::invalid(&rt, &name, &causes));
    }
    if rt.is_custom() {
        custom_schema(&t, &mut obj, None, p.strict)?;
    } else {
        builtin_fields(&t, &mut obj, p.strict)?;
        kinds::normalize(&rt, &mut obj, None, state)?;
    }
    let crd_type =
        if rt.group == "apiextensions.k8s.io" && rt.resource == "customresourcedefinitions" {
            let new_rt = crds::resource_type(&rt, &obj)?;
            if let Some(existing) = state.registry.get(&new_rt.group, &new_rt.resource)
                && !existing.is_custom()
            {
                return Err(ApiError::invalid(
                    &rt,
                    &name,
                    &[invalid_value(
                        "spec.names.plural",
                        &new_rt.resource,
                        "resource is already served by a built-in type",
                    )],
                ));
            }
            obj["status"] = crds::accepted_status(&obj, &now);
            Some(new_rt)
        } else {
            None
        };
    if !managed_done {
        emulator_patch::record_update(None, &mut obj, &p.manager, None, &now);
    }
    if p.dry_run {
        obj["metadata"]["resourceVersion"] = json!("");
        return Ok(present(&rt, &t.version, &obj));
    }
    let stored = state.put(&rt, obj);
    if let Some(new_rt) = crd_type {
        state.registry.insert(new_rt);
    }
    gc::collect(state, &now);
    Ok(present(&rt, &t.version, &stored))
}
