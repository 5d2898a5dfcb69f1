//! The `/scale` subresource of Deployments, StatefulSets and ReplicaSets (autoscaling/v1
//! Scale), which `kubectl scale` uses.

use serde_json::{Value, json};

use crate::status::ApiError;
use crate::store::State;
use crate::verbs::{self, PatchType, Target, WriteParams};

/// The Scale view of a workload.
pub fn view(obj: &Value) -> Value {
    let md = &obj["metadata"];
    let selector = obj["spec"]["selector"]["matchLabels"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default();
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": md["name"], "namespace": md["namespace"], "uid": md["uid"],
            "resourceVersion": md["resourceVersion"], "creationTimestamp": md["creationTimestamp"],
        },
        "spec": { "replicas": obj["spec"]["replicas"].as_i64().unwrap_or(1) },
        "status": { "replicas": obj["status"]["replicas"].as_i64().unwrap_or(0), "selector": selector },
    })
}

fn main_target(t: &Target) -> Target {
    let mut main = t.clone();
    main.subresource = None;
    main
}

pub fn get(state: &State, t: &Target) -> Result<Value, ApiError> {
    let obj = verbs::get(state, &main_target(t))?;
    Ok(view(&obj))
}

/// PUT or PATCH of the Scale: only `spec.replicas` reaches the workload.
pub fn write(
    state: &mut State,
    t: &Target,
    body: &[u8],
    patch: Option<PatchType>,
    p: &WriteParams,
) -> Result<Value, ApiError> {
    let main = main_target(t);
    let old = verbs::get(state, &main)?;
    let current = view(&old);
    let desired: Value = match patch {
        None => serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("failed to decode Scale: {e}")))?,
        Some(PatchType::Json) => {
            let doc: Value = serde_json::from_slice(body)
                .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?;
            let mut s = current.clone();
            emulator_patch::apply_json_patch(&mut s, &doc)
                .map_err(|e| ApiError::bad_request(e.to_string()))?;
            s
        }
        Some(PatchType::Merge) | Some(PatchType::Strategic) => {
            let doc: Value = serde_json::from_slice(body)
                .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?;
            let mut s = current.clone();
            emulator_patch::apply_merge_patch(&mut s, &doc);
            s
        }
        Some(PatchType::Apply) => {
            return Err(ApiError::unsupported_media_type(
                "application/apply-patch+yaml",
            ));
        }
    };
    let rv = desired["metadata"]["resourceVersion"]
        .as_str()
        .unwrap_or("");
    if !rv.is_empty() && Some(rv) != old["metadata"]["resourceVersion"].as_str() {
        return Err(ApiError::conflict(&t.rt, t.name.as_deref().unwrap_or("")));
    }
    let replicas = desired["spec"]["replicas"]
        .as_i64()
        .ok_or_else(|| ApiError::bad_request("spec.replicas must be an integer"))?;
    let mut new = (*old).clone();
    new["spec"]["replicas"] = json!(replicas);
    let out = verbs::replace(state, &main, old, new, p)?;
    Ok(view(&out))
}
