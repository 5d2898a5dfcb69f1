//! The write and read verbs on single objects (get, create, update, patch, delete,
//! deletecollection), all running under the store lock so each is atomic.
//!
//! This module holds what every verb shares: the addressed [`Target`], the write
//! parameters, the read verb, presentation and storage form, and the namespace checks.
//! Each verb lives in its own module; the re-exports keep callers on `verbs::*`.

mod crd_cleanup;
mod create;
mod delete;
mod patch;
mod update;
mod validate;

pub use crd_cleanup::{CRD_CLEANUP_FINALIZER, crd_type_key};
pub use create::create;
pub use delete::{DeleteParams, delete, delete_collection};
pub use patch::{PatchType, patch};
#[cfg(feature = "kubectl")]
pub use update::replace;
pub use update::update;

use std::sync::Arc;

use rand::Rng;
use serde_json::{Map, Value, json};

use crate::registry::ResourceType;
use crate::selectors::{FieldSelector, LabelSelector};
use crate::status::ApiError;
use crate::store::{ObjKey, State};

/// The object (or collection) a request addresses.
#[derive(Clone)]
pub struct Target {
    pub rt: Arc<ResourceType>,
    pub version: String,
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub subresource: Option<String>,
}

impl Target {
    fn okey(&self) -> ObjKey {
        (
            self.namespace.clone().unwrap_or_default(),
            self.name.clone().unwrap_or_default(),
        )
    }

    fn name(&self) -> &str {
        self.name.as_deref().unwrap_or("")
    }

    fn is_status(&self) -> bool {
        self.subresource.as_deref() == Some("status")
    }
}

/// Query parameters of a write.
#[derive(Default, Clone)]
pub struct WriteParams {
    pub dry_run: bool,
    /// `fieldManager`, or the manager apiserver derives from the User-Agent.
    pub manager: String,
    pub explicit_manager: bool,
    pub force: bool,
    /// `fieldValidation=Strict` (kubectl's default): unknown fields are an error instead
    /// of being pruned silently.
    pub strict: bool,
}

pub fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

pub fn new_uid() -> String {
    let mut b: [u8; 16] = rand::thread_rng().r#gen();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// The stored object as the requested version presents it.
pub fn present(rt: &ResourceType, version: &str, obj: &Value) -> Value {
    if rt.is_alias() {
        return crate::events::from_core(obj);
    }
    let mut out = obj.clone();
    out["apiVersion"] = json!(rt.api_version(version));
    out
}

fn metadata_mut(obj: &mut Value) -> Result<&mut Map<String, Value>, ApiError> {
    let map = obj
        .as_object_mut()
        .ok_or_else(|| ApiError::bad_request("the body of the request must be a JSON object"))?;
    let md = map.entry("metadata").or_insert_with(|| json!({}));
    if md.is_null() {
        *md = json!({});
    }
    md.as_object_mut()
        .ok_or_else(|| ApiError::bad_request("metadata must be an object"))
}

/// Empty metadata lists and maps are absent in apiserver's answers (Go's omitempty).
fn tidy_metadata(obj: &mut Value) {
    if let Some(md) = obj["metadata"].as_object_mut() {
        for k in [
            "finalizers",
            "ownerReferences",
            "labels",
            "annotations",
            "managedFields",
        ] {
            let empty = match md.get(k) {
                Some(Value::Array(a)) => a.is_empty(),
                Some(Value::Object(m)) => m.is_empty(),
                Some(Value::Null) => true,
                _ => false,
            };
            if empty {
                md.remove(k);
            }
        }
    }
}

/// The form objects are stored in: the storage version, or core/v1 for events.k8s.io Events.
fn storage_form(rt: &ResourceType, obj: &mut Value) {
    if rt.is_alias() {
        crate::events::to_core(obj);
    } else {
        obj["apiVersion"] = json!(rt.api_version(rt.storage_version()));
        obj["kind"] = json!(rt.kind);
    }
}

fn check_namespace(t: &Target, obj: &mut Value) -> Result<(), ApiError> {
    let md = metadata_mut(obj)?;
    if t.rt.namespaced {
        let ns = t.namespace.clone().unwrap_or_default();
        match md.get("namespace").and_then(Value::as_str) {
            Some(body_ns) if !body_ns.is_empty() && body_ns != ns => {
                return Err(ApiError::bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                ));
            }
            _ => {
                md.insert("namespace".into(), json!(ns));
            }
        }
    } else {
        md.remove("namespace");
    }
    Ok(())
}

fn require_namespace(state: &State, t: &Target, verb_creates: bool) -> Result<(), ApiError> {
    if !t.rt.namespaced {
        return Ok(());
    }
    let ns = t.namespace.as_deref().unwrap_or("");
    match state.namespace_exists(ns) {
        None => Err(ApiError::namespace_not_found(ns)),
        Some(n) if verb_creates && n["metadata"].get("deletionTimestamp").is_some() => {
            let name = t.name();
            Err(ApiError {
                code: 403,
                reason: "Forbidden",
                message: format!(
                    "{} \"{}\" is forbidden: unable to create new content in namespace {} because it is being terminated",
                    t.rt.qualified_resource(),
                    name,
                    ns
                ),
                details: Some(
                    json!({"name": name, "kind": t.rt.resource, "causes": [{"reason": "NamespaceTerminating", "message": format!("namespace {ns} is being terminated"), "field": "metadata.namespace"}]}),
                ),
            })
        }
        Some(_) => Ok(()),
    }
}

pub fn get(state: &State, t: &Target) -> Result<Arc<Value>, ApiError> {
    state
        .get(&t.rt.key(), &t.okey())
        .cloned()
        .ok_or_else(|| ApiError::not_found(&t.rt, t.name()))
}

/// Selection of a list, watch or deletecollection.
#[derive(Default, Clone)]
pub struct Selection {
    pub labels: LabelSelector,
    pub fields: FieldSelector,
}

impl Selection {
    pub fn matches(&self, obj: &Value) -> bool {
        self.labels.matches(obj) && self.fields.matches(obj)
    }
}
