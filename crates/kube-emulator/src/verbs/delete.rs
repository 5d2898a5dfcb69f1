//! DELETE of one object and of a collection: DeleteOptions, preconditions, finalizers,
//! orphaning of dependents, and what apiserver answers.

use serde_json::{Value, json};

use super::crd_cleanup::{CRD_CLEANUP_FINALIZER, delete_custom_objects};
use super::update::same_object;
use super::{Selection, Target, get, now, present, require_namespace};
use crate::gc;
use crate::registry::ResourceType;
use crate::status::ApiError;
use crate::store::{ObjKey, State};

/// Options of a DELETE, from the body (DeleteOptions) and the query.
#[derive(Default, Clone)]
pub struct DeleteParams {
    pub dry_run: bool,
    pub propagation: Option<String>,
    pub precondition_uid: Option<String>,
    pub precondition_rv: Option<String>,
}

impl DeleteParams {
    pub fn from_body(body: &[u8], base: DeleteParams) -> Result<DeleteParams, ApiError> {
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(base);
        }
        #[cfg(feature = "kubectl")]
        if body.starts_with(b"k8s\0") {
            let v = crate::kubectl::protobuf::decode_delete_options(body)?;
            return Ok(Self::from_json(&v, base));
        }
        let v: Value = serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("failed to decode DeleteOptions: {e}")))?;
        Ok(Self::from_json(&v, base))
    }

    fn from_json(v: &Value, mut base: DeleteParams) -> DeleteParams {
        if let Some(p) = v["propagationPolicy"].as_str() {
            base.propagation = Some(p.to_string());
        }
        if v["orphanDependents"].as_bool() == Some(true) {
            base.propagation = Some("Orphan".into());
        }
        if v["dryRun"]
            .as_array()
            .is_some_and(|a| a.iter().any(|x| x == "All"))
        {
            base.dry_run = true;
        }
        if let Some(u) = v["preconditions"]["uid"].as_str() {
            base.precondition_uid = Some(u.to_string());
        }
        if let Some(r) = v["preconditions"]["resourceVersion"].as_str() {
            base.precondition_rv = Some(r.to_string());
        }
        base
    }
}

/// DELETE of one object: finalizers first, then removal and garbage collection.
pub fn delete(state: &mut State, t: &Target, d: &DeleteParams) -> Result<Value, ApiError> {
    let rt = t.rt.clone();
    let name = t.name().to_string();
    if t.subresource.is_some() {
        return Err(ApiError::method_not_allowed(
            "the server does not allow this method on the requested resource",
        ));
    }
    let old = get(state, t)?;
    if rt.resource == "namespaces"
        && rt.group.is_empty()
        && matches!(name.as_str(), "default" | "kube-system" | "kube-public")
    {
        return Err(ApiError {
            code: 403,
            reason: "Forbidden",
            message: format!(
                "namespaces \"{name}\" is forbidden: this namespace may not be deleted"
            ),
            details: Some(json!({"name": name, "kind": "namespaces"})),
        });
    }
    if let Some(uid) = &d.precondition_uid {
        let actual = old["metadata"]["uid"].as_str().unwrap_or("");
        if uid != actual {
            return Err(ApiError::conflict_with(
                &rt,
                &name,
                format!(
                    "Precondition failed: UID in precondition: {uid}, UID in object meta: {actual}"
                ),
                &[],
            ));
        }
    }
    if let Some(rv) = &d.precondition_rv {
        let actual = old["metadata"]["resourceVersion"].as_str().unwrap_or("");
        if rv != actual {
            return Err(ApiError::conflict_with(
                &rt,
                &name,
                format!(
                    "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {actual}"
                ),
                &[],
            ));
        }
    }
    if d.dry_run {
        return Ok(present(&rt, &t.version, &old));
    }
    let now = now();
    let uid = old["metadata"]["uid"].as_str().unwrap_or("").to_string();
    let propagation = d.propagation.clone().unwrap_or_else(|| "Background".into());
    if propagation == "Orphan" {
        orphan_dependents(state, &uid);
    }
    let is_crd = rt.group == "apiextensions.k8s.io" && rt.resource == "customresourcedefinitions";
    let mut finalizers: Vec<Value> = old["metadata"]["finalizers"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if is_crd {
        // As apiserver: the CRD stays (terminating) until its objects are gone, which
        // waits for their own finalizers; the collector then stops serving the type.
        delete_custom_objects(state, &old, &now);
        if !finalizers.iter().any(|f| f == CRD_CLEANUP_FINALIZER) {
            finalizers.push(json!(CRD_CLEANUP_FINALIZER));
        }
    }
    if propagation == "Foreground" && !finalizers.iter().any(|f| f == "foregroundDeletion") {
        finalizers.push(json!("foregroundDeletion"));
    }
    let is_namespace = rt.resource == "namespaces" && rt.group.is_empty();
    if finalizers.is_empty() && !is_namespace {
        let last = state
            .remove(&rt.key(), &t.okey())
            .expect("object present under lock");
        gc::collect(state, &now);
        return Ok(deleted_answer(&rt, &t.version, &last));
    }
    let mut obj = (*old).clone();
    let already = obj["metadata"].get("deletionTimestamp").is_some();
    if !already {
        obj["metadata"]["deletionTimestamp"] = json!(now);
        obj["metadata"]["deletionGracePeriodSeconds"] = json!(0);
    }
    if finalizers.is_empty() {
        obj["metadata"]
            .as_object_mut()
            .map(|m| m.remove("finalizers"));
    } else {
        obj["metadata"]["finalizers"] = Value::Array(finalizers);
    }
    if is_namespace {
        obj["status"]["phase"] = json!("Terminating");
    }
    let stored = if same_object(&old, &obj) {
        old
    } else {
        state.put(&rt, obj)
    };
    state.gc_pending = true;
    gc::collect(state, &now);
    let current = state.get(&rt.key(), &t.okey()).cloned().unwrap_or(stored);
    Ok(present(&rt, &t.version, &current))
}

/// What an immediate delete answers: the deleted object for custom resources and Pods
/// (apiserver's ReturnDeletedObject), a Success Status for other built-ins. kube-rs reads
/// the Status as "gone now" and an object as "deletion in progress or done".
fn deleted_answer(rt: &ResourceType, version: &str, last: &Value) -> Value {
    if rt.is_custom() || (rt.group.is_empty() && rt.resource == "pods") {
        return present(rt, version, last);
    }
    let mut details = json!({
        "name": last["metadata"]["name"],
        "kind": rt.resource,
        "uid": last["metadata"]["uid"],
    });
    if !rt.group.is_empty() {
        details["group"] = json!(rt.group);
    }
    json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "details": details,
    })
}

fn orphan_dependents(state: &mut State, uid: &str) {
    let mut changes = Vec::new();
    for (key, coll) in &state.collections {
        for obj in coll.objects.values() {
            if let Some(refs) = obj["metadata"]["ownerReferences"].as_array()
                && refs.iter().any(|r| r["uid"] == json!(uid))
            {
                let mut o = (**obj).clone();
                let kept: Vec<Value> = refs
                    .iter()
                    .filter(|r| r["uid"] != json!(uid))
                    .cloned()
                    .collect();
                if kept.is_empty() {
                    o["metadata"]
                        .as_object_mut()
                        .map(|m| m.remove("ownerReferences"));
                } else {
                    o["metadata"]["ownerReferences"] = Value::Array(kept);
                }
                changes.push((key.clone(), o));
            }
        }
    }
    for (key, o) in changes {
        if let Some(rt) = state.registry.get(&key.0, &key.1).cloned() {
            state.put(&rt, o);
        }
    }
}

/// DELETE on a collection: each selected object as a single delete would.
pub fn delete_collection(
    state: &mut State,
    t: &Target,
    sel: &Selection,
    d: &DeleteParams,
) -> Result<Value, ApiError> {
    if t.rt.namespaced && t.namespace.is_some() {
        require_namespace(state, t, false)?;
    }
    let keys: Vec<ObjKey> = state
        .collection(&t.rt.key())
        .map(|c| {
            c.range(t.namespace.as_deref(), None)
                .filter(|(_, o)| sel.matches(o))
                .map(|(k, _)| k.clone())
                .collect()
        })
        .unwrap_or_default();
    let mut items = Vec::new();
    for (ns, name) in keys {
        let mut one = t.clone();
        one.namespace = (!ns.is_empty()).then_some(ns);
        one.name = Some(name);
        let before = state
            .get(&one.rt.key(), &one.okey())
            .map(|o| present(&one.rt, &one.version, o));
        match delete(state, &one, d) {
            // The list names what was deleted, even when a single delete answers a Status.
            Ok(o) if o["kind"] == "Status" => items.extend(before),
            Ok(o) => items.push(o),
            Err(e) if e.code == 404 => {}
            Err(e) => return Err(e),
        }
    }
    Ok(json!({
        "kind": format!("{}List", t.rt.kind),
        "apiVersion": t.rt.api_version(&t.version),
        "metadata": {"resourceVersion": state.rv.to_string()},
        "items": items,
    }))
}
