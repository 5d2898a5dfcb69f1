//! Kubernetes patch semantics over `serde_json::Value`: JSON merge patch (RFC 7386), JSON
//! patch (RFC 6902), strategic merge patch for built-in kinds, server-side apply and the
//! `metadata.managedFields` bookkeeping of ordinary writes. Pure functions, no I/O, so the
//! API emulator can call them under its store lock.
#![forbid(unsafe_code)]

mod apply;
mod fieldset;
mod managed;
mod schema;
mod strategic;
mod typed;
mod update;

use serde_json::Value;

/// Why a patch could not be applied; each variant maps to the HTTP answer kube-apiserver gives.
#[derive(Debug, thiserror::Error)]
pub enum PatchError {
    /// malformed patch document → emulator answers 400 BadRequest (or 422 for json-patch test op failure)
    #[error("{0}")]
    Invalid(String),
    /// strategic merge on a kind with no known schema (custom resources) → 415 UnsupportedMediaType
    #[error("{0}")]
    Unsupported(String),
    /// server-side apply conflicts → 409 Conflict; message as kube-apiserver words it:
    /// `Apply failed with 1 conflict: conflict with "kubectl" using v1: .spec.replicas`
    #[error("{message}")]
    Conflict {
        message: String,
        causes: Vec<ApplyConflict>,
    },
}

/// One field another manager owns with a different value than the applied configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplyConflict {
    pub manager: String,
    /// e.g. ".spec.replicas"
    pub field: String,
}

/// Prefix of the message of JSON patches that were well-formed but failed to apply
/// (kube-apiserver answers those 422 rather than 400).
pub const JSON_PATCH_APPLY_FAILED: &str = "failed to apply json patch";

impl PatchError {
    /// The HTTP status kube-apiserver answers with for this error.
    pub fn status_code(&self) -> u16 {
        match self {
            PatchError::Invalid(message) if message.starts_with(JSON_PATCH_APPLY_FAILED) => 422,
            PatchError::Invalid(_) => 400,
            PatchError::Unsupported(_) => 415,
            PatchError::Conflict { .. } => 409,
        }
    }
}

/// Metadata only kube-apiserver sets; no patch body can change it.
const SERVER_SET: [&str; 2] = ["uid", "creationTimestamp"];

/// Runs `patch_fn` on `target` and puts server-set metadata back as it was.
fn keeping_server_metadata<T>(target: &mut Value, patch_fn: impl FnOnce(&mut Value) -> T) -> T {
    let saved: Vec<(&str, Option<Value>)> = SERVER_SET
        .iter()
        .map(|key| {
            (
                *key,
                target.get("metadata").and_then(|m| m.get(key)).cloned(),
            )
        })
        .collect();
    let had_metadata = target.get("metadata").is_some_and(Value::is_object);
    let result = patch_fn(target);
    if had_metadata && let Some(object) = target.as_object_mut() {
        let meta = object
            .entry("metadata")
            .or_insert_with(|| Value::Object(Default::default()));
        if !meta.is_object() {
            *meta = Value::Object(Default::default());
        }
        if let Some(meta) = meta.as_object_mut() {
            for (key, value) in saved {
                match value {
                    Some(value) => meta.insert(key.to_string(), value),
                    None => meta.remove(key),
                };
            }
        }
    }
    result
}

/// RFC 7386 JSON merge patch: null deletes, objects merge recursively, arrays replace.
/// `metadata.uid` and `metadata.creationTimestamp` keep their values.
pub fn apply_merge_patch(target: &mut Value, patch: &Value) {
    keeping_server_metadata(target, |t| json_patch::merge(t, patch));
}

/// RFC 6902 JSON patch. A document that is not a patch is `Invalid` (400); a patch that
/// fails to apply (failed `test`, missing path) is `Invalid` with a message starting with
/// [`JSON_PATCH_APPLY_FAILED`] (422, see [`PatchError::status_code`]). On error `target` is
/// left unchanged. As in kube-apiserver, `test` with value `null` passes for a missing
/// member (kube-rs' finalizer helper relies on it).
pub fn apply_json_patch(target: &mut Value, patch: &Value) -> Result<(), PatchError> {
    let ops: json_patch::Patch = serde_json::from_value(patch.clone())
        .map_err(|e| PatchError::Invalid(format!("failed to decode json patch: {e}")))?;
    let mut patched = target.clone();
    keeping_server_metadata(&mut patched, |t| {
        for (index, op) in ops.0.iter().enumerate() {
            if let json_patch::PatchOperation::Test(test) = op
                && test.value.is_null()
                && missing_member(t, test.path.as_str())
            {
                continue;
            }
            json_patch::patch(t, std::slice::from_ref(op)).map_err(|e| {
                PatchError::Invalid(format!(
                    "{JSON_PATCH_APPLY_FAILED}: operation {index}: {}",
                    e.kind
                ))
            })?;
        }
        Ok(())
    })?;
    *target = patched;
    Ok(())
}

/// Whether `pointer` names an absent member of an existing object.
fn missing_member(doc: &Value, pointer: &str) -> bool {
    let Some((parent, last)) = pointer.rsplit_once('/') else {
        return false;
    };
    let key = last.replace("~1", "/").replace("~0", "~");
    matches!(doc.pointer(parent), Some(Value::Object(map)) if !map.contains_key(&key))
}

/// Strategic merge patch. `api_version` like "apps/v1", `kind` like "Deployment"; kinds
/// without a known schema (custom resources) get `Unsupported`, as kube-apiserver answers.
pub fn apply_strategic_merge_patch(
    target: &mut Value,
    patch: &Value,
    api_version: &str,
    kind: &str,
) -> Result<(), PatchError> {
    let Some(root) = schema::root(api_version, kind) else {
        return Err(PatchError::Unsupported(
            "the body of the request was in an unknown format - accepted media types include: \
             application/json-patch+json, application/merge-patch+json, \
             application/apply-patch+yaml"
                .to_string(),
        ));
    };
    let mut patched = target.clone();
    keeping_server_metadata(&mut patched, |t| strategic::apply(t, patch, root))?;
    *target = patched;
    Ok(())
}

/// Options of one server-side apply request.
#[derive(Clone, Copy, Debug)]
pub struct ApplyOptions<'a> {
    /// The fieldManager query parameter.
    pub manager: &'a str,
    /// The force query parameter: take conflicting fields instead of failing.
    pub force: bool,
    /// "status" for applies to the status subresource: only `status` is applied and owned.
    pub subresource: Option<&'a str>,
    /// RFC3339 timestamp recorded in the manager's entry.
    pub now: &'a str,
}

/// Server-side apply. `live` is the stored object (None: create). `applied` is the user's
/// configuration. Returns the merged object with metadata.managedFields updated. Applying
/// the same configuration again returns an object equal to `live`.
pub fn server_side_apply(
    live: Option<&Value>,
    applied: &Value,
    opts: &ApplyOptions,
) -> Result<Value, PatchError> {
    apply::server_side_apply(live, applied, opts)
}

/// Record an "Update" operation by `manager` (for create/update/merge/json/strategic writes)
/// in metadata.managedFields of `new`, comparing with `old`, taking ownership of changed
/// fields away from other managers, as kube-apiserver does.
pub fn record_update(
    old: Option<&Value>,
    new: &mut Value,
    manager: &str,
    subresource: Option<&str>,
    now: &str,
) {
    update::record_update(old, new, manager, subresource, now);
}
