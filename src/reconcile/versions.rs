//! What this process wrote, and what its watches have seen, by resourceVersion: the memory
//! that lets a reconcile skip reads the watch caches already answer, and lets the
//! controller skip the watch events of its own writes (issue 17).
//!
//! Three things, all keyed by namespace and name, none holding a Secret's data:
//! - [`OwnWrites`]: the resourceVersions this process's own writes returned (status of a
//!   ClearApiClient, its token Secret). A watch event carrying one of them shows nothing
//!   the reconcile that wrote it did not already act on (each write is conditional on the
//!   resourceVersion that reconcile read or last wrote, so no other change can sit between).
//!   The last status write also says when the controller's store has caught up with this
//!   process: a cached object at exactly that version is as fresh as a GET, as far as this
//!   process's own writes go.
//! - [`SecretVersions`]: every Secret the metadata watch has listed, by resourceVersion (the
//!   watch holds no data; this keeps only names and versions).
//! - [`Fingerprints`]: the fingerprint of each client secret this process read, with the
//!   resourceVersion it was read at; never the value.

use std::{
    collections::{HashMap, HashSet, VecDeque},
    sync::{Mutex, MutexGuard, PoisonError},
};

use k8s_openapi::api::core::v1::Secret;
use kube::{ResourceExt, core::PartialObjectMeta, runtime::watcher};

/// A resource or a Secret, by namespace and name.
type Key = (String, String);

/// How many of the latest own writes are remembered per object: a reconcile that mints
/// writes status three times (the call's mark, the record, the pending restarts), and
/// their watch events may arrive after all three landed.
const RECENT_WRITES: usize = 4;

/// The resourceVersions this process's writes of one object returned.
#[derive(Clone, Debug, Default)]
struct Written {
    /// The latest; `None` while a write is in flight or after one whose outcome is unknown
    /// (failed, timed out): then only a fresh read can say where the object is.
    last: Option<String>,
    recent: VecDeque<String>,
}

impl Written {
    fn push(&mut self, rv: String) {
        if self.recent.len() == RECENT_WRITES {
            self.recent.pop_front();
        }
        self.recent.push_back(rv.clone());
        self.last = Some(rv);
    }
}

/// What this process's own writes returned (see the module documentation).
#[derive(Debug, Default)]
pub struct OwnWrites {
    statuses: Mutex<HashMap<Key, Written>>,
    secrets: Mutex<HashMap<Key, Written>>,
}

/// Whether a cached ClearApiClient can stand in for a fresh read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CacheFreshness {
    /// This process never wrote the object: the cache comes from a consistent list and
    /// watch, and a write by another replica that it may lag is caught by the
    /// resourceVersion precondition of the status write that precedes every call to Clear.
    NeverWritten,
    /// The cache holds exactly the version this process last wrote.
    AtOwnWrite,
    /// The cache is behind (or past) this process's last write, or a write is in flight or
    /// was lost: read fresh.
    Unknown,
}

impl CacheFreshness {
    pub fn is_fresh(self) -> bool {
        !matches!(self, Self::Unknown)
    }
}

impl OwnWrites {
    /// A write of the resource's status (or metadata) starts: until it returns, the cache
    /// cannot be compared with it.
    /// Returns what was known before, for [`Self::status_unchanged`].
    pub fn status_writing(&self, namespace: &str, name: &str) -> Option<Option<String>> {
        let mut statuses = lock(&self.statuses);
        let before = statuses.get(&key(namespace, name)).map(|w| w.last.clone());
        statuses.entry(key(namespace, name)).or_default().last = None;
        before
    }

    /// A status write sent nothing after all (the status was unchanged): `before` (from
    /// [`Self::status_writing`]) still holds.
    pub fn status_unchanged(&self, namespace: &str, name: &str, before: Option<Option<String>>) {
        let mut statuses = lock(&self.statuses);
        match before {
            None => {
                statuses.remove(&key(namespace, name));
            }
            Some(last) => statuses.entry(key(namespace, name)).or_default().last = last,
        }
    }

    /// A status write returned `rv`.
    pub fn status_written(&self, namespace: &str, name: &str, rv: String) {
        lock(&self.statuses)
            .entry(key(namespace, name))
            .or_default()
            .push(rv);
    }

    /// Whether `cached` (the controller's store) is as fresh as a GET would be, as far as
    /// this process's own writes go.
    pub fn freshness(&self, namespace: &str, name: &str, cached_rv: Option<&str>) -> CacheFreshness {
        match lock(&self.statuses).get(&key(namespace, name)) {
            None => CacheFreshness::NeverWritten,
            Some(Written { last: Some(last), .. }) if Some(last.as_str()) == cached_rv => {
                CacheFreshness::AtOwnWrite
            }
            Some(_) => CacheFreshness::Unknown,
        }
    }

    /// Whether a watch event of the resource at `rv` is one of this process's own writes.
    pub fn is_own_status(&self, namespace: &str, name: &str, rv: &str) -> bool {
        lock(&self.statuses)
            .get(&key(namespace, name))
            .is_some_and(|w| w.recent.iter().any(|r| r == rv))
    }

    /// A write of a token Secret returned `rv`.
    pub fn secret_written(&self, namespace: &str, name: &str, rv: String) {
        lock(&self.secrets)
            .entry(key(namespace, name))
            .or_default()
            .push(rv);
    }

    /// Whether a watch event of the Secret at `rv` is one of this process's own writes.
    pub fn is_own_secret(&self, namespace: &str, name: &str, rv: &str) -> bool {
        lock(&self.secrets)
            .get(&key(namespace, name))
            .is_some_and(|w| w.recent.iter().any(|r| r == rv))
    }

    /// Forgets the status writes of resources no longer present (called by the sweep).
    /// NB: forgetting is never needed for correctness: a resource created again under the
    /// same name has other resourceVersions, so its cache is read fresh until written.
    pub fn forget_statuses_except(&self, present: &HashSet<Key>) {
        lock(&self.statuses).retain(|k, _| present.contains(k));
    }

    /// Forgets the Secret writes of objects no longer present (called by the sweep).
    pub fn forget_secrets_except(&self, present: &HashSet<Key>) {
        lock(&self.secrets).retain(|k, _| present.contains(k));
    }
}

/// The Secrets the metadata watch has seen, by resourceVersion.
#[derive(Debug, Default)]
pub struct SecretVersions {
    state: Mutex<SecretState>,
}

#[derive(Debug, Default)]
struct SecretState {
    /// (resourceVersion, scope) of each Secret seen.
    versions: HashMap<Key, (String, u64)>,
    /// Keys seen since the last `Init` of each scope.
    relisting: HashMap<u64, HashSet<Key>>,
    synced: HashSet<u64>,
    expected_scopes: usize,
}

impl SecretState {
    fn is_synced(&self) -> bool {
        self.expected_scopes > 0 && self.synced.len() >= self.expected_scopes
    }
}

/// Where the metadata watch says a Secret is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SecretSeen {
    /// The watches have not all listed yet (or the namespace is not watched): unknown.
    NotSynced,
    Absent,
    At(String),
}

impl SecretVersions {
    /// A new leadership term: new watches, none listed yet; nothing seen before counts.
    pub fn new_term(&self, scopes: usize) {
        let mut state = lock(&self.state);
        *state = SecretState {
            expected_scopes: scopes,
            ..SecretState::default()
        };
    }

    /// Applies one event of the Secret metadata watch `scope`.
    pub fn apply_event(&self, scope: u64, event: &watcher::Event<PartialObjectMeta<Secret>>) {
        let mut state = lock(&self.state);
        match event {
            watcher::Event::Apply(meta) | watcher::Event::InitApply(meta) => {
                let Some(k) = meta_key(meta) else { return };
                if let Some(seen) = state.relisting.get_mut(&scope) {
                    seen.insert(k.clone());
                }
                let rv = meta.metadata.resource_version.clone().unwrap_or_default();
                state.versions.insert(k, (rv, scope));
            }
            watcher::Event::Delete(meta) => {
                if let Some(k) = meta_key(meta) {
                    state.versions.remove(&k);
                }
            }
            watcher::Event::Init => {
                state.relisting.insert(scope, HashSet::new());
            }
            watcher::Event::InitDone => {
                let seen = state.relisting.remove(&scope).unwrap_or_default();
                state
                    .versions
                    .retain(|k, (_, s)| *s != scope || seen.contains(k));
                state.synced.insert(scope);
            }
        }
    }

    /// Whether every watch of this term has listed.
    pub fn is_synced(&self) -> bool {
        lock(&self.state).is_synced()
    }

    /// Where the watch says the Secret is.
    pub fn get(&self, namespace: &str, name: &str) -> SecretSeen {
        let state = lock(&self.state);
        if !state.is_synced() {
            return SecretSeen::NotSynced;
        }
        match state.versions.get(&key(namespace, name)) {
            Some((rv, _)) => SecretSeen::At(rv.clone()),
            None => SecretSeen::Absent,
        }
    }

    /// The Secrets seen, by key (for sweeping what refers to them).
    pub fn keys(&self) -> HashSet<Key> {
        lock(&self.state).versions.keys().cloned().collect()
    }
}

/// A client secret's fingerprint, with where it was read from.
#[derive(Clone, Debug)]
struct Fingerprint {
    data_key: String,
    rv: String,
    fingerprint: String,
}

/// The fingerprint of each client secret read, by the resourceVersion it was read at.
#[derive(Debug, Default)]
pub struct Fingerprints {
    entries: Mutex<HashMap<Key, Fingerprint>>,
}

impl Fingerprints {
    /// Remembers the fingerprint of key `data_key` of Secret `name` read at `rv`.
    pub fn remember(&self, namespace: &str, name: &str, data_key: &str, rv: &str, fingerprint: String) {
        lock(&self.entries).insert(
            key(namespace, name),
            Fingerprint {
                data_key: data_key.to_string(),
                rv: rv.to_string(),
                fingerprint,
            },
        );
    }

    /// The fingerprint of key `data_key` of Secret `name` if it was read at `rv`.
    pub fn get(&self, namespace: &str, name: &str, data_key: &str, rv: &str) -> Option<String> {
        lock(&self.entries)
            .get(&key(namespace, name))
            .filter(|f| f.data_key == data_key && f.rv == rv)
            .map(|f| f.fingerprint.clone())
    }

    pub fn forget(&self, namespace: &str, name: &str) {
        lock(&self.entries).remove(&key(namespace, name));
    }

    /// Forgets the Secrets no longer present (called by the sweep).
    pub fn forget_except(&self, present: &HashSet<Key>) {
        lock(&self.entries).retain(|k, _| present.contains(k));
    }
}

/// Everything above, shared by the controller and the reconciles.
#[derive(Debug, Default)]
pub struct Versions {
    pub own: OwnWrites,
    pub secrets: SecretVersions,
    pub fingerprints: Fingerprints,
}

impl Versions {
    /// Drops what refers to Secrets the watch no longer lists (memory stays bounded by
    /// the Secrets that exist). Only once the watches have listed.
    pub fn sweep(&self, resources: &HashSet<Key>) {
        self.own.forget_statuses_except(resources);
        if !self.secrets.is_synced() {
            return;
        }
        let present = self.secrets.keys();
        self.own.forget_secrets_except(&present);
        self.fingerprints.forget_except(&present);
    }
}

fn key(namespace: &str, name: &str) -> Key {
    (namespace.to_string(), name.to_string())
}

fn meta_key(meta: &PartialObjectMeta<Secret>) -> Option<Key> {
    Some((meta.namespace()?, meta.name_any()))
}

// NB: std mutexes, held for a map operation only and never across an await.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(namespace: &str, name: &str, rv: &str) -> PartialObjectMeta<Secret> {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadata",
            "metadata": {"name": name, "namespace": namespace, "resourceVersion": rv}
        }))
        .unwrap()
    }

    #[test]
    fn a_cached_object_is_fresh_only_at_the_version_this_process_last_wrote() {
        let own = OwnWrites::default();
        assert_eq!(own.freshness("ns", "a", Some("5")), CacheFreshness::NeverWritten);
        own.status_writing("ns", "a");
        assert_eq!(own.freshness("ns", "a", Some("5")), CacheFreshness::Unknown);
        own.status_written("ns", "a", "7".into());
        assert_eq!(own.freshness("ns", "a", Some("5")), CacheFreshness::Unknown);
        assert_eq!(own.freshness("ns", "a", Some("7")), CacheFreshness::AtOwnWrite);
        assert_eq!(own.freshness("ns", "a", Some("9")), CacheFreshness::Unknown);
        // A write in flight (or lost) makes the cache unknown again, even at the old version.
        own.status_writing("ns", "a");
        assert_eq!(own.freshness("ns", "a", Some("7")), CacheFreshness::Unknown);
    }

    #[test]
    fn only_the_versions_this_process_wrote_are_its_own() {
        let own = OwnWrites::default();
        for rv in ["1", "2", "3", "4", "5"] {
            own.status_written("ns", "a", rv.into());
        }
        assert!(own.is_own_status("ns", "a", "5"));
        assert!(own.is_own_status("ns", "a", "2"));
        assert!(!own.is_own_status("ns", "a", "1"), "only the last few are kept");
        assert!(!own.is_own_status("ns", "a", "6"));
        assert!(!own.is_own_status("ns", "b", "5"));
        own.secret_written("ns", "tok", "8".into());
        assert!(own.is_own_secret("ns", "tok", "8"));
        assert!(!own.is_own_secret("ns", "tok", "9"));
    }

    #[test]
    fn secret_versions_answer_only_once_every_scope_listed_and_a_relist_drops_the_gone() {
        let versions = SecretVersions::default();
        versions.new_term(1);
        versions.apply_event(0, &watcher::Event::Init);
        versions.apply_event(0, &watcher::Event::InitApply(meta("ns", "s", "3")));
        assert_eq!(versions.get("ns", "s"), SecretSeen::NotSynced);
        versions.apply_event(0, &watcher::Event::InitDone);
        assert_eq!(versions.get("ns", "s"), SecretSeen::At("3".into()));
        assert_eq!(versions.get("ns", "t"), SecretSeen::Absent);
        versions.apply_event(0, &watcher::Event::Apply(meta("ns", "t", "4")));
        assert_eq!(versions.get("ns", "t"), SecretSeen::At("4".into()));
        versions.apply_event(0, &watcher::Event::Delete(meta("ns", "t", "5")));
        assert_eq!(versions.get("ns", "t"), SecretSeen::Absent);
        // A relist that no longer has `s` drops it.
        versions.apply_event(0, &watcher::Event::Init);
        versions.apply_event(0, &watcher::Event::InitApply(meta("ns", "u", "6")));
        versions.apply_event(0, &watcher::Event::InitDone);
        assert_eq!(versions.get("ns", "s"), SecretSeen::Absent);
        assert_eq!(versions.get("ns", "u"), SecretSeen::At("6".into()));
        // A new term knows nothing until its watches list again.
        versions.new_term(1);
        assert_eq!(versions.get("ns", "u"), SecretSeen::NotSynced);
    }

    #[test]
    fn a_fingerprint_is_remembered_for_the_version_and_key_it_was_read_at() {
        let prints = Fingerprints::default();
        prints.remember("ns", "cs", "clientSecret", "3", "f1".into());
        assert_eq!(prints.get("ns", "cs", "clientSecret", "3").as_deref(), Some("f1"));
        assert_eq!(prints.get("ns", "cs", "clientSecret", "4"), None);
        assert_eq!(prints.get("ns", "cs", "other", "3"), None);
    }
}
