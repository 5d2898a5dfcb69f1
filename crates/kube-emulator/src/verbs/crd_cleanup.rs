//! What deleting a CRD does to its type: the cleanup finalizer, the deletion of its
//! objects, and the check that refuses new objects while the CRD terminates.

use std::sync::Arc;

use serde_json::{Value, json};

use crate::registry::ResourceType;
use crate::store::{ObjKey, State};

/// A CRD is being deleted: its objects go (DELETED events), then the type stops being served.
/// Finalizer apiserver puts on a deleted CRD until its objects are gone.
pub const CRD_CLEANUP_FINALIZER: &str = "customresourcecleanup.apiextensions.k8s.io";

/// The (group, plural) a CRD serves.
pub fn crd_type_key(crd: &Value) -> (String, String) {
    (
        crd["spec"]["group"].as_str().unwrap_or("").to_string(),
        crd["spec"]["names"]["plural"]
            .as_str()
            .unwrap_or("")
            .to_string(),
    )
}

/// Delete every object of a CRD's type: at once when it has no finalizers, else mark it.
pub(super) fn delete_custom_objects(state: &mut State, crd: &Value, now: &str) {
    let key = crd_type_key(crd);
    let Some(rt) = state.registry.get(&key.0, &key.1).cloned() else {
        return;
    };
    let objects: Vec<(ObjKey, Arc<Value>)> = state
        .collection(&key)
        .map(|c| {
            c.objects
                .iter()
                .map(|(k, o)| (k.clone(), o.clone()))
                .collect()
        })
        .unwrap_or_default();
    for (k, o) in objects {
        if o["metadata"]["finalizers"]
            .as_array()
            .is_none_or(Vec::is_empty)
        {
            state.remove(&key, &k);
        } else if o["metadata"].get("deletionTimestamp").is_none() {
            let mut marked = (*o).clone();
            marked["metadata"]["deletionTimestamp"] = json!(now);
            marked["metadata"]["deletionGracePeriodSeconds"] = json!(0);
            state.put(&rt, marked);
        }
    }
}

/// Whether the CRD serving this custom type is being deleted.
pub(super) fn crd_terminating(state: &State, rt: &ResourceType) -> bool {
    let crd_key = (
        "apiextensions.k8s.io".to_string(),
        "customresourcedefinitions".to_string(),
    );
    state
        .get(
            &crd_key,
            &(String::new(), format!("{}.{}", rt.resource, rt.group)),
        )
        .is_some_and(|c| c["metadata"].get("deletionTimestamp").is_some())
}
