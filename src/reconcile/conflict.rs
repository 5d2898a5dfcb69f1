//! Two ClearApiClients sharing one client secret would revoke each other's tokens forever
//! (each mint revokes the previous token). The oldest resource keeps the secret; newer ones
//! mint nothing. Who uses which secret comes from the other resources' status (the
//! controller's cache) plus an in-process registry of claims, which is fresher than the
//! cache, and a per-fingerprint lock serializes "check, then mint".

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, RwLock},
};

use jiff::Timestamp;
use kube::{ResourceExt, runtime::reflector::Store};

use crate::resource::ClearApiClient;

/// A resource as far as the conflict rule cares: who it is and how old.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claimant {
    pub namespace: String,
    pub name: String,
    pub created: Option<Timestamp>,
}

impl Claimant {
    pub fn of(cac: &ClearApiClient) -> Self {
        Self {
            namespace: cac.namespace().unwrap_or_default(),
            name: cac.name_any(),
            created: cac.creation_timestamp().map(|t| t.0),
        }
    }

    fn key(&self) -> (String, String) {
        (self.namespace.clone(), self.name.clone())
    }

    /// Oldest first: creation time, then namespace/name so that ties break the same way
    /// on every replica. A resource without a creation time counts as newest.
    fn age_key(&self) -> (bool, Option<Timestamp>, &str, &str) {
        (
            self.created.is_none(),
            self.created,
            &self.namespace,
            &self.name,
        )
    }

    fn is_older_than(&self, other: &Claimant) -> bool {
        self.age_key() < other.age_key()
    }

    pub fn display(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

/// The oldest of `others` that uses `fingerprint` and is older than `me`, if any.
pub fn older_claimant<'a>(
    me: &Claimant,
    fingerprint: &str,
    others: impl IntoIterator<Item = (Claimant, Option<&'a str>)>,
) -> Option<Claimant> {
    others
        .into_iter()
        .filter(|(other, fp)| {
            *fp == Some(fingerprint) && other.key() != me.key() && other.is_older_than(me)
        })
        .map(|(other, _)| other)
        .min_by(|a, b| a.age_key().cmp(&b.age_key()))
}

/// The ClearApiClients the controller knows (one store per watched namespace set).
#[derive(Clone, Default)]
pub struct Directory {
    stores: Arc<RwLock<Vec<Store<ClearApiClient>>>>,
}

impl Directory {
    /// Replaces the stores (each controller start builds new ones).
    pub fn set_stores(&self, stores: Vec<Store<ClearApiClient>>) {
        *self
            .stores
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = stores;
    }

    pub fn all(&self) -> Vec<Arc<ClearApiClient>> {
        self.stores
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .flat_map(Store::state)
            .collect()
    }
}

/// Claims made in this process: resource → fingerprint it mints with. Only resources still
/// present in the directory count, so deleted ones drop out on their own.
#[derive(Default)]
pub struct Registry {
    claims: Mutex<HashMap<(String, String), (Claimant, String)>>,
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl Registry {
    /// The lock serializing check-and-mint for one client secret fingerprint.
    pub fn lock_for(&self, fingerprint: &str) -> Arc<tokio::sync::Mutex<()>> {
        self.locks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry(fingerprint.to_string())
            .or_default()
            .clone()
    }

    pub fn claim(&self, me: &Claimant, fingerprint: &str) {
        self.claims
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(me.key(), (me.clone(), fingerprint.to_string()));
    }

    pub fn forget(&self, namespace: &str, name: &str) {
        self.claims
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&(namespace.to_string(), name.to_string()));
    }

    /// The older resource `me` conflicts with, from the directory's statuses and this
    /// registry's claims.
    pub fn find_conflict(
        &self,
        directory: &Directory,
        me: &Claimant,
        fingerprint: &str,
    ) -> Option<Claimant> {
        let known = directory.all();
        let claims = self
            .claims
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let from_status = known.iter().map(|cac| {
            let fp = cac
                .status
                .as_ref()
                .and_then(|s| s.client_secret_fingerprint.as_deref());
            (Claimant::of(cac), fp)
        });
        let from_claims = claims
            .values()
            .filter(|(c, _)| {
                known.iter().any(|k| {
                    k.namespace().as_deref() == Some(c.namespace.as_str()) && k.name_any() == c.name
                })
            })
            .map(|(c, fp)| (c.clone(), Some(fp.as_str())));
        older_claimant(me, fingerprint, from_status.chain(from_claims))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reconcile::test_support::{client, ts};

    fn claimant(ns: &str, name: &str, created: &str) -> Claimant {
        Claimant {
            namespace: ns.into(),
            name: name.into(),
            created: Some(ts(created)),
        }
    }

    #[test]
    fn newer_resource_conflicts_with_the_older_one_using_the_same_secret() {
        let older = claimant("a", "first", "2026-11-25T00:00:00Z");
        let newer = claimant("b", "second", "2026-11-25T00:00:01Z");
        let others = vec![(older.clone(), Some("fp1")), (newer.clone(), Some("fp1"))];
        assert_eq!(
            older_claimant(&newer, "fp1", others.clone()),
            Some(older.clone())
        );
        assert_eq!(older_claimant(&older, "fp1", others), None);
    }

    #[test]
    fn different_secrets_never_conflict() {
        let older = claimant("a", "first", "2026-11-25T00:00:00Z");
        let newer = claimant("b", "second", "2026-11-25T00:00:01Z");
        assert_eq!(
            older_claimant(&newer, "fp2", vec![(older, Some("fp1"))]),
            None
        );
    }

    #[test]
    fn same_creation_time_breaks_ties_by_namespace_then_name() {
        let a = claimant("a", "zeta", "2026-11-25T00:00:00Z");
        let b = claimant("b", "alpha", "2026-11-25T00:00:00Z");
        assert_eq!(
            older_claimant(&b, "fp", vec![(a.clone(), Some("fp"))]),
            Some(a.clone())
        );
        assert_eq!(older_claimant(&a, "fp", vec![(b, Some("fp"))]), None);
    }

    fn directory_with(
        names: &[(&str, &str, Option<&str>)],
    ) -> (
        Directory,
        kube::runtime::reflector::store::Writer<ClearApiClient>,
    ) {
        let (reader, mut writer) = kube::runtime::reflector::store();
        for (name, created, fingerprint) in names {
            let mut cac = client(name);
            cac.metadata.creation_timestamp = Some(
                k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(ts(created)),
            );
            cac.status = Some(crate::resource::ClearApiClientStatus {
                client_secret_fingerprint: fingerprint.map(str::to_string),
                ..Default::default()
            });
            writer.apply_watcher_event(&kube::runtime::watcher::Event::Apply(cac));
        }
        let directory = Directory::default();
        directory.set_stores(vec![reader]);
        (directory, writer)
    }

    #[test]
    fn conflict_is_found_from_other_resources_status_in_the_directory() {
        let (directory, _writer) = directory_with(&[
            ("first", "2026-11-25T00:00:00Z", Some("fp")),
            ("second", "2026-11-25T00:00:05Z", None),
        ]);
        let registry = Registry::default();
        let second = claimant("default", "second", "2026-11-25T00:00:05Z");
        let first = claimant("default", "first", "2026-11-25T00:00:00Z");
        assert_eq!(
            registry
                .find_conflict(&directory, &second, "fp")
                .map(|c| c.name),
            Some("first".into())
        );
        assert_eq!(registry.find_conflict(&directory, &first, "fp"), None);
    }

    #[test]
    fn a_claim_made_in_process_counts_before_the_status_reaches_the_cache() {
        // Neither status names the secret yet (the first mint is still in flight).
        let (directory, _writer) = directory_with(&[
            ("first", "2026-11-25T00:00:00Z", None),
            ("second", "2026-11-25T00:00:05Z", None),
        ]);
        let registry = Registry::default();
        let first = claimant("default", "first", "2026-11-25T00:00:00Z");
        let second = claimant("default", "second", "2026-11-25T00:00:05Z");
        registry.claim(&first, "fp");
        assert_eq!(
            registry.find_conflict(&directory, &second, "fp"),
            Some(first.clone())
        );
        registry.forget("default", "first");
        assert_eq!(registry.find_conflict(&directory, &second, "fp"), None);
    }

    #[test]
    fn registry_claims_count_only_for_resources_still_known() {
        let registry = Registry::default();
        let directory = Directory::default();
        let older = claimant("a", "first", "2026-11-25T00:00:00Z");
        let newer = claimant("b", "second", "2026-11-25T00:00:01Z");
        registry.claim(&older, "fp");
        // Not in the directory (deleted, or never seen): its claim is ignored.
        assert_eq!(registry.find_conflict(&directory, &newer, "fp"), None);
    }
}
