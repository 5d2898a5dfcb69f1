//! Garbage collection, run synchronously after writes that may have left work: objects
//! in terminating namespaces, dependents whose owners are all gone, foreground deletion,
//! and objects whose last finalizer went away.

use std::collections::HashSet;
use std::sync::Arc;

use serde_json::{Value, json};

use crate::registry::TypeKey;
use crate::store::{ObjKey, State};
use crate::verbs;

enum Action {
    Remove(TypeKey, ObjKey),
    /// A deleted CRD whose objects are all gone: stop serving the type, drop the CRD.
    RetireCrd(ObjKey),
    MarkDeleting(TypeKey, ObjKey),
    DropForegroundFinalizer(TypeKey, ObjKey),
}

fn finalizers(obj: &Value) -> usize {
    obj["metadata"]["finalizers"].as_array().map_or(0, Vec::len)
}

fn deleting(obj: &Value) -> bool {
    obj["metadata"]
        .get("deletionTimestamp")
        .is_some_and(|v| !v.is_null())
}

fn delete_action(key: &TypeKey, okey: &ObjKey, obj: &Value) -> Option<Action> {
    if finalizers(obj) == 0 {
        Some(Action::Remove(key.clone(), okey.clone()))
    } else if !deleting(obj) {
        Some(Action::MarkDeleting(key.clone(), okey.clone()))
    } else {
        None
    }
}

fn pass(state: &mut State, now: &str) -> bool {
    let ns_key: TypeKey = (String::new(), "namespaces".to_string());
    let terminating_ns: HashSet<String> = state
        .collection(&ns_key)
        .map(|c| {
            c.objects
                .values()
                .filter(|o| deleting(o))
                .filter_map(|o| o["metadata"]["name"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let mut occupied_ns: HashSet<String> = HashSet::new();
    // uids that still have dependents, for foreground deletion.
    let mut owners_with_dependents: HashSet<String> = HashSet::new();
    let mut actions = Vec::new();
    for (key, coll) in &state.collections {
        for (okey, obj) in &coll.objects {
            if !okey.0.is_empty() {
                occupied_ns.insert(okey.0.clone());
                if terminating_ns.contains(&okey.0) {
                    if let Some(a) = delete_action(key, okey, obj) {
                        actions.push(a);
                    }
                    continue;
                }
            }
            // Namespaces go only once empty (below), whatever their finalizers.
            if deleting(obj) && finalizers(obj) == 0 && *key != ns_key {
                actions.push(Action::Remove(key.clone(), okey.clone()));
                continue;
            }
            let Some(refs) = obj["metadata"]["ownerReferences"].as_array() else {
                continue;
            };
            if refs.is_empty() {
                continue;
            }
            let mut any_alive = false;
            let mut foreground_owner = false;
            for r in refs {
                let uid = r["uid"].as_str().unwrap_or("");
                owners_with_dependents.insert(uid.to_string());
                // As apiserver's garbage collector, an owner is looked up by name and must
                // carry the reference's uid: a reference naming another object is dangling.
                if let Some((okind, owner_key)) = state.owner_of(r) {
                    let owner = state.get(okind, owner_key);
                    let fg = owner.is_some_and(|o| {
                        deleting(o)
                            && o["metadata"]["finalizers"]
                                .as_array()
                                .is_some_and(|f| f.iter().any(|x| x == "foregroundDeletion"))
                    });
                    if fg {
                        foreground_owner = true;
                    } else {
                        any_alive = true;
                    }
                }
            }
            if (!any_alive || foreground_owner)
                && let Some(a) = delete_action(key, okey, obj)
            {
                actions.push(a);
            }
        }
    }
    // Foreground owners with no dependents left lose their finalizer.
    for (key, coll) in &state.collections {
        for (okey, obj) in &coll.objects {
            let fg = deleting(obj)
                && obj["metadata"]["finalizers"]
                    .as_array()
                    .is_some_and(|f| f.iter().any(|x| x == "foregroundDeletion"));
            let uid = obj["metadata"]["uid"].as_str().unwrap_or("");
            if fg && !owners_with_dependents.contains(uid) {
                actions.push(Action::DropForegroundFinalizer(key.clone(), okey.clone()));
            }
        }
    }
    // Deleted CRDs whose objects are all gone stop being served.
    let crd_key: TypeKey = (
        "apiextensions.k8s.io".to_string(),
        "customresourcedefinitions".to_string(),
    );
    if let Some(coll) = state.collection(&crd_key) {
        for (okey, crd) in &coll.objects {
            let cleaning = deleting(crd)
                && crd["metadata"]["finalizers"]
                    .as_array()
                    .is_some_and(|f| f.iter().any(|x| x == verbs::CRD_CLEANUP_FINALIZER));
            let type_key = verbs::crd_type_key(crd);
            if cleaning
                && state
                    .collection(&type_key)
                    .is_none_or(|c| c.objects.is_empty())
            {
                actions.push(Action::RetireCrd(okey.clone()));
            }
        }
    }
    // Terminating namespaces that are empty go away.
    if let Some(coll) = state.collection(&ns_key) {
        for name in &terminating_ns {
            let okey = (String::new(), name.clone());
            if !occupied_ns.contains(name)
                && coll.objects.get(&okey).is_some_and(|o| finalizers(o) == 0)
            {
                actions.push(Action::Remove(ns_key.clone(), okey));
            }
        }
    }
    let progressed = !actions.is_empty();
    for action in actions {
        apply(state, action, now);
    }
    progressed
}

fn apply(state: &mut State, action: Action, now: &str) {
    match action {
        Action::RetireCrd(okey) => {
            let crd_key: TypeKey = (
                "apiextensions.k8s.io".to_string(),
                "customresourcedefinitions".to_string(),
            );
            let Some(crd) = state.get(&crd_key, &okey).cloned() else {
                return;
            };
            let type_key = verbs::crd_type_key(&crd);
            state.drop_collection(&type_key);
            state.registry.remove(&type_key);
            let mut obj = (*crd).clone();
            if let Some(f) = obj["metadata"]["finalizers"].as_array_mut() {
                f.retain(|x| x != verbs::CRD_CLEANUP_FINALIZER);
            }
            if finalizers(&obj) == 0 {
                state.remove(&crd_key, &okey);
            } else if let Some(rt) = state.registry.get(&crd_key.0, &crd_key.1).cloned() {
                state.put(&rt, obj);
            }
        }
        Action::Remove(key, okey) => {
            state.remove(&key, &okey);
        }
        Action::MarkDeleting(key, okey) => {
            let Some(rt) = state.registry.get(&key.0, &key.1).cloned() else {
                return;
            };
            if let Some(obj) = state.get(&key, &okey) {
                let mut obj: Value = (**obj).clone();
                obj["metadata"]["deletionTimestamp"] = json!(now);
                obj["metadata"]["deletionGracePeriodSeconds"] = json!(0);
                state.put(&rt, obj);
            }
        }
        Action::DropForegroundFinalizer(key, okey) => {
            let Some(rt) = state.registry.get(&key.0, &key.1).cloned() else {
                return;
            };
            if let Some(obj) = state.get(&key, &okey).map(Arc::clone) {
                let mut obj: Value = (*obj).clone();
                if let Some(f) = obj["metadata"]["finalizers"].as_array_mut() {
                    f.retain(|x| x != "foregroundDeletion");
                }
                if finalizers(&obj) == 0 {
                    state.remove(&key, &okey);
                } else {
                    state.put(&rt, obj);
                }
            }
        }
    }
}

/// Run passes until nothing is left to do.
pub fn collect(state: &mut State, now: &str) {
    if !state.gc_pending {
        return;
    }
    // Bounded: each pass removes or marks at least one object, so this ends; the bound
    // only guards against a bug looping forever under the store lock.
    for _ in 0..10_000 {
        state.gc_pending = false;
        if !pass(state, now) {
            break;
        }
    }
    state.gc_pending = false;
}
