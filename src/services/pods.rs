//! Which pods mount which Secret as files (a `secret` volume or a `projected` volume's
//! secret source, mounted by at least one container without `subPath`), fed by a watch of
//! pods: after a new token, the operator nudges exactly those pods' kubelets (see
//! `reconcile::nudge`), with no list per rotation.
//!
//! NB: only names are kept, never a pod's spec: a few dozen bytes a pod.

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::{PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard},
};

use k8s_openapi::api::core::v1::Pod;
use kube::{ResourceExt, runtime::watcher};

/// A pod, by namespace and name.
type PodKey = (String, String);

#[derive(Default)]
struct State {
    /// (namespace, Secret) → the pods that mount it as files.
    by_secret: BTreeMap<(String, String), BTreeSet<String>>,
    /// pod → the Secrets it mounts as files (to undo its entries on a change).
    by_pod: BTreeMap<PodKey, BTreeSet<String>>,
    /// The pods seen since the current relist began, per watch scope.
    relisting: BTreeMap<u64, BTreeSet<PodKey>>,
    /// The scope each pod was seen in.
    scope_of: BTreeMap<PodKey, u64>,
}

/// See the module documentation.
#[derive(Default)]
pub struct PodIndex {
    state: RwLock<State>,
}

impl PodIndex {
    /// Applies one event of the pod watch of `scope`.
    pub fn apply_event(&self, scope: u64, event: &watcher::Event<Pod>) {
        let mut state = self.write();
        match event {
            watcher::Event::Apply(pod) | watcher::Event::InitApply(pod) => {
                let key = key_of(pod);
                if let Some(seen) = state.relisting.get_mut(&scope) {
                    seen.insert(key.clone());
                }
                state.scope_of.insert(key.clone(), scope);
                let secrets = if pod.metadata.deletion_timestamp.is_some() {
                    BTreeSet::new()
                } else {
                    mounted_secrets(pod)
                };
                set(&mut state, key, secrets);
            }
            watcher::Event::Delete(pod) => {
                let key = key_of(pod);
                state.scope_of.remove(&key);
                set(&mut state, key, BTreeSet::new());
            }
            watcher::Event::Init => {
                state.relisting.insert(scope, BTreeSet::new());
            }
            watcher::Event::InitDone => {
                let seen = state.relisting.remove(&scope).unwrap_or_default();
                let gone: Vec<PodKey> = state
                    .scope_of
                    .iter()
                    .filter(|(key, s)| **s == scope && !seen.contains(*key))
                    .map(|(key, _)| key.clone())
                    .collect();
                for key in gone {
                    state.scope_of.remove(&key);
                    set(&mut state, key, BTreeSet::new());
                }
            }
        }
    }

    /// The pods of `namespace` that mount the Secret `secret` as files.
    pub fn mounting(&self, namespace: &str, secret: &str) -> Vec<String> {
        self.read()
            .by_secret
            .get(&(namespace.to_string(), secret.to_string()))
            .map(|pods| pods.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Pods known (for tests and metrics).
    pub fn len(&self) -> usize {
        self.read().by_pod.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn read(&self) -> RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(PoisonError::into_inner)
    }
}

fn key_of(pod: &Pod) -> PodKey {
    (pod.namespace().unwrap_or_default(), pod.name_any())
}

/// Records that `pod` mounts exactly `secrets` (none: forgets it).
fn set(state: &mut State, pod: PodKey, secrets: BTreeSet<String>) {
    let (namespace, name) = pod.clone();
    if let Some(before) = state.by_pod.remove(&pod) {
        for secret in before {
            let entry = (namespace.clone(), secret);
            if let Some(pods) = state.by_secret.get_mut(&entry) {
                pods.remove(&name);
                if pods.is_empty() {
                    state.by_secret.remove(&entry);
                }
            }
        }
    }
    if secrets.is_empty() {
        return;
    }
    for secret in &secrets {
        state
            .by_secret
            .entry((namespace.clone(), secret.clone()))
            .or_default()
            .insert(name.clone());
    }
    state.by_pod.insert(pod, secrets);
}

/// The Secrets `pod` mounts as files that its kubelet refreshes: a `secret` volume or a
/// `projected` volume's secret source, mounted by some container (or init container)
/// without `subPath` (a `subPath` mount never updates, so nudging it is pointless).
pub fn mounted_secrets(pod: &Pod) -> BTreeSet<String> {
    let Some(spec) = &pod.spec else {
        return BTreeSet::new();
    };
    let refreshed_volumes: BTreeSet<&str> = spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .flat_map(|c| c.volume_mounts.iter().flatten())
        .filter(|m| m.sub_path.is_none() && m.sub_path_expr.is_none())
        .map(|m| m.name.as_str())
        .collect();
    let mut secrets = BTreeSet::new();
    for volume in spec.volumes.iter().flatten() {
        if !refreshed_volumes.contains(volume.name.as_str()) {
            continue;
        }
        if let Some(name) = volume.secret.as_ref().and_then(|s| s.secret_name.clone()) {
            secrets.insert(name);
        }
        for source in volume
            .projected
            .as_ref()
            .and_then(|p| p.sources.as_ref())
            .into_iter()
            .flatten()
        {
            if let Some(secret) = &source.secret {
                secrets.insert(secret.name.clone());
            }
        }
    }
    secrets
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str, spec: serde_json::Value) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "namespace": "billing"},
            "spec": spec,
        }))
        .unwrap()
    }

    fn mounting(volume: serde_json::Value, sub_path: Option<&str>) -> serde_json::Value {
        let mut mount = serde_json::json!({"name": "token", "mountPath": "/var/run/clear"});
        if let Some(sub) = sub_path {
            mount["subPath"] = sub.into();
        }
        serde_json::json!({
            "containers": [{"name": "app", "image": "app", "volumeMounts": [mount]}],
            "volumes": [volume],
        })
    }

    #[test]
    fn secret_and_projected_volumes_count_and_sub_path_or_unmounted_ones_do_not() {
        let secret = serde_json::json!({"name": "token", "secret": {"secretName": "gst"}});
        let projected = serde_json::json!({"name": "token", "projected": {"sources": [
            {"secret": {"name": "gst"}}, {"configMap": {"name": "other"}}
        ]}});
        assert_eq!(
            mounted_secrets(&pod("a", mounting(secret.clone(), None))),
            BTreeSet::from(["gst".to_string()])
        );
        assert_eq!(
            mounted_secrets(&pod("b", mounting(projected, None))),
            BTreeSet::from(["gst".to_string()])
        );
        assert!(
            mounted_secrets(&pod("c", mounting(secret.clone(), Some("accessToken")))).is_empty()
        );
        let unmounted = serde_json::json!({
            "containers": [{"name": "app", "image": "app"}],
            "volumes": [secret],
        });
        assert!(mounted_secrets(&pod("d", unmounted)).is_empty());
    }

    #[test]
    fn the_index_follows_pods_through_changes_deletes_and_relists() {
        let index = PodIndex::default();
        let secret =
            |name: &str| serde_json::json!({"name": "token", "secret": {"secretName": name}});
        let a = pod("a", mounting(secret("gst"), None));
        index.apply_event(0, &watcher::Event::Apply(a.clone()));
        index.apply_event(
            0,
            &watcher::Event::Apply(pod("b", mounting(secret("gst"), None))),
        );
        assert_eq!(index.mounting("billing", "gst"), vec!["a", "b"]);
        // a now mounts another Secret.
        index.apply_event(
            0,
            &watcher::Event::Apply(pod("a", mounting(secret("tds"), None))),
        );
        assert_eq!(index.mounting("billing", "gst"), vec!["b"]);
        assert_eq!(index.mounting("billing", "tds"), vec!["a"]);
        index.apply_event(
            0,
            &watcher::Event::Delete(pod("b", mounting(secret("gst"), None))),
        );
        assert!(index.mounting("billing", "gst").is_empty());
        // A relist that no longer sees a drops it.
        index.apply_event(0, &watcher::Event::Init);
        index.apply_event(0, &watcher::Event::InitDone);
        assert!(index.mounting("billing", "tds").is_empty());
        assert!(index.is_empty());
    }
}
