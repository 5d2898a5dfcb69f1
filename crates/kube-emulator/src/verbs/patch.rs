//! PATCH in its four types (merge, JSON, strategic merge, server-side apply), and how a
//! patch that does not apply is answered.

use emulator_patch::{ApplyOptions, PatchError};
use serde_json::{Value, json};

use super::create::create_object;
use super::update::commit_update;
use super::validate::{applied_fields, check_kind};
use super::{Target, WriteParams, now, present, require_namespace};
use crate::status::{ApiError, Cause};
use crate::store::State;

/// How a PATCH body is to be read, from its Content-Type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchType {
    Merge,
    Json,
    Strategic,
    Apply,
}

impl PatchType {
    pub fn from_content_type(ct: &str) -> Option<PatchType> {
        let base = ct.split(';').next().unwrap_or("").trim();
        match base {
            "application/merge-patch+json" => Some(PatchType::Merge),
            "application/json-patch+json" => Some(PatchType::Json),
            "application/strategic-merge-patch+json" => Some(PatchType::Strategic),
            "application/apply-patch+yaml" | "application/apply-patch+cbor" => {
                Some(PatchType::Apply)
            }
            _ => None,
        }
    }
}

/// What apiserver says when a well-formed JSON patch does not apply (its generic 422).
const JSON_PATCH_REFUSED: &str = "the server rejected our request due to an error in our request";

fn patch_error(t: &Target, e: PatchError) -> ApiError {
    let code = e.status_code();
    match e {
        // apiserver answers a patch that does not apply with a bare generic 422, without
        // the json-patch library's reason; the log keeps it for whoever debugs a test.
        PatchError::Invalid(m) if code == 422 => {
            tracing::debug!(reason = %m, "json patch did not apply");
            let mut refused = ApiError::new(422, "Invalid", JSON_PATCH_REFUSED);
            refused.details = Some(json!({}));
            refused
        }
        PatchError::Invalid(m) => ApiError::bad_request(m),
        PatchError::Unsupported(m) => ApiError::new(415, "UnsupportedMediaType", m),
        PatchError::Conflict { message, causes } => {
            let causes: Vec<Cause> = causes
                .into_iter()
                .map(|c| Cause {
                    reason: "FieldManagerConflict".into(),
                    message: format!("conflict with \"{}\"", c.manager),
                    field: c.field,
                })
                .collect();
            ApiError::conflict_with(&t.rt, t.name(), message, &causes)
        }
    }
}

/// As apiserver, an apply to the main endpoint of a custom resource with a status
/// subresource neither sets nor claims `status` (emulator-patch knows this only for
/// built-in kinds).
fn drop_status_of_main_apply(t: &Target, applied: &mut Value) {
    if t.subresource.is_none()
        && t.rt.is_custom()
        && t.rt
            .crd_version(&t.version)
            .is_some_and(|v| v.status_subresource)
        && let Some(obj) = applied.as_object_mut()
    {
        obj.remove("status");
    }
}

/// PATCH in any of the four patch types; apply creates a missing object.
pub fn patch(
    state: &mut State,
    t: &Target,
    ptype: PatchType,
    body: &[u8],
    p: &WriteParams,
) -> Result<Value, ApiError> {
    let patch_doc: Value = match ptype {
        PatchType::Apply => serde_yaml::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))?,
        _ => serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?,
    };
    if ptype == PatchType::Apply && !p.explicit_manager {
        return Err(ApiError::bad_request(
            "PATCH, application/apply-patch+yaml requires fieldManager parameter",
        ));
    }
    if ptype == PatchType::Strategic && t.rt.is_custom() {
        return Err(ApiError::unsupported_media_type(
            "application/strategic-merge-patch+json",
        ));
    }
    let existing = state.get(&t.rt.key(), &t.okey()).cloned();
    let old = match existing {
        Some(o) => o,
        None if ptype == PatchType::Apply && !t.is_status() => {
            require_namespace(state, t, true)?;
            let mut applied = patch_doc;
            check_kind(t, &mut applied)?;
            applied_fields(t, &applied)?;
            let applied_name = applied["metadata"]["name"].as_str().unwrap_or("");
            if !applied_name.is_empty() && applied_name != t.name() {
                return Err(ApiError::bad_request(format!(
                    "the name of the object ({applied_name}) does not match the name on the URL ({})",
                    t.name()
                )));
            }
            applied["metadata"]["name"] = json!(t.name());
            drop_status_of_main_apply(t, &mut applied);
            let now = now();
            let opts = ApplyOptions {
                manager: &p.manager,
                force: p.force,
                subresource: None,
                now: &now,
            };
            let merged = emulator_patch::server_side_apply(None, &applied, &opts)
                .map_err(|e| patch_error(t, e))?;
            return create_object(state, t, merged, p, true);
        }
        None => return Err(ApiError::not_found(&t.rt, t.name())),
    };
    let mut base = present(&t.rt, &t.version, &old);
    let managed_done = match ptype {
        PatchType::Merge => {
            emulator_patch::apply_merge_patch(&mut base, &patch_doc);
            false
        }
        PatchType::Json => {
            emulator_patch::apply_json_patch(&mut base, &patch_doc)
                .map_err(|e| patch_error(t, e))?;
            false
        }
        PatchType::Strategic => {
            let api_version = t.rt.api_version(&t.version);
            match emulator_patch::apply_strategic_merge_patch(
                &mut base,
                &patch_doc,
                &api_version,
                &t.rt.kind,
            ) {
                Ok(()) => {}
                // Until strategic merge knows this kind, a merge patch is the closest answer.
                Err(PatchError::Unsupported(_)) => {
                    emulator_patch::apply_merge_patch(&mut base, &patch_doc)
                }
                Err(e) => return Err(patch_error(t, e)),
            }
            false
        }
        PatchType::Apply => {
            let mut applied = patch_doc;
            check_kind(t, &mut applied)?;
            applied_fields(t, &applied)?;
            applied["apiVersion"] = json!(t.rt.api_version(&t.version));
            drop_status_of_main_apply(t, &mut applied);
            let now = now();
            let opts = ApplyOptions {
                manager: &p.manager,
                force: p.force,
                subresource: t.subresource.as_deref(),
                now: &now,
            };
            base = emulator_patch::server_side_apply(Some(&base), &applied, &opts)
                .map_err(|e| patch_error(t, e))?;
            true
        }
    };
    if !base.is_object() {
        return Err(ApiError::bad_request("the patch did not produce an object"));
    }
    commit_update(state, t, old, base, p, managed_done)
}
