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
    collections::{HashMap, HashSet},
    sync::{Mutex, MutexGuard, PoisonError},
};

use futures::channel::mpsc::UnboundedSender;
use k8s_openapi::api::core::v1::Secret;
use kube::{
    ResourceExt,
    core::PartialObjectMeta,
    runtime::{reflector::ObjectRef, watcher},
};

use crate::resource::ClearApiClient;

/// A resource or a Secret, as "namespace/name" (neither may contain a slash). NB: one
/// allocation per key instead of two: these maps have an entry per resource and per Secret
/// in the cluster (heaptrack at 10,000 resources: 12 MiB for the three before).
pub type Key = Box<str>;

/// A resourceVersion, held compactly. NB: resourceVersions are opaque and only compared for
/// equality here. The real server's are decimal etcd revisions: one that is exactly a
/// number's canonical text is kept as that number (no allocation), any other as its text,
/// so two are equal exactly when their texts are.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Rv {
    Revision(u64),
    Text(Box<str>),
}

impl Rv {
    fn new(rv: &str) -> Self {
        Self::revision(rv).map_or_else(|| Self::Text(rv.into()), Self::Revision)
    }

    /// The number whose canonical text `rv` is (no sign, no leading zero).
    fn revision(rv: &str) -> Option<u64> {
        let canonical = !rv.is_empty()
            && rv.bytes().all(|b| b.is_ascii_digit())
            && (rv == "0" || !rv.starts_with('0'));
        canonical.then(|| rv.parse().ok()).flatten()
    }

    fn is(&self, rv: &str) -> bool {
        match self {
            Self::Revision(n) => Self::revision(rv) == Some(*n),
            Self::Text(text) => **text == *rv,
        }
    }
}

impl std::fmt::Display for Rv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Revision(n) => write!(f, "{n}"),
            Self::Text(text) => f.write_str(text),
        }
    }
}

/// How many of the latest own writes are remembered per object: a reconcile that mints
/// writes status three times (the call's mark, the record, the pending restarts), and
/// their watch events may arrive after all three landed.
const RECENT_WRITES: usize = 4;

/// The resourceVersions this process's writes of one object returned.
#[derive(Clone, Debug, Default)]
struct Written {
    /// The latest; `None` while a write is in flight or after one whose outcome is unknown
    /// (failed, timed out): then only a fresh read can say where the object is.
    last: Option<Rv>,
    /// The last [`RECENT_WRITES`], oldest replaced first (a ring, so no allocation).
    recent: [Option<Rv>; RECENT_WRITES],
    next: usize,
    /// A write is in flight: its answer (and so its resourceVersion) is not known yet.
    writing: bool,
    /// Watch events that arrived while a write was in flight (the watch can deliver a write
    /// before its answer is read), held until the answer says whether they are its own.
    deferred: Vec<(String, ObjectRef<ClearApiClient>)>,
}

impl Written {
    fn push(&mut self, rv: &str) {
        let rv = Rv::new(rv);
        self.recent[self.next] = Some(rv.clone());
        self.next = (self.next + 1) % RECENT_WRITES;
        self.last = Some(rv);
    }

    fn wrote(&self, rv: &str) -> bool {
        self.recent.iter().flatten().any(|r| r.is(rv))
    }

    fn wrote_nothing(&self) -> bool {
        self.recent.iter().all(Option::is_none)
    }
}

/// What this process's own writes returned (see the module documentation).
#[derive(Debug, Default)]
pub struct OwnWrites {
    statuses: Mutex<HashMap<Key, Written>>,
    secrets: Mutex<HashMap<Key, Written>>,
    /// Where a held-back event that turned out not to be ours is sent: the controller of
    /// the namespace's scope (key `None`: the one watching all namespaces).
    triggers: Mutex<HashMap<Option<String>, UnboundedSender<ObjectRef<ClearApiClient>>>>,
}

/// What a watch event is, as far as this process's writes go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventOrigin {
    /// At a resourceVersion one of this process's writes returned.
    Own,
    /// A write of the object is in flight: held until its answer says (then skipped if it
    /// is that write, else sent to the controller as a trigger).
    Held,
    /// Someone else's (or unknown): passed on.
    Other,
}

/// Which map a write or an event concerns.
#[derive(Clone, Copy, Debug)]
pub enum Object {
    /// A ClearApiClient's status.
    Status,
    /// A token Secret.
    Secret,
}

/// A write in flight; see [`OwnWrites::writing`]. Dropped without [`Self::done`] (failed,
/// timed out, cancelled), the object's version is unknown and every held event is passed
/// on.
pub struct WriteInFlight<'a> {
    own: &'a OwnWrites,
    object: Object,
    key: Key,
    /// What was known before, restored when nothing was sent.
    before: Option<Option<Rv>>,
    finished: bool,
}

impl WriteInFlight<'_> {
    /// The write returned `rv` (`None`: nothing was sent, the object is where it was).
    pub fn done(mut self, rv: Option<String>) {
        self.finished = true;
        self.own
            .finish(self.object, &self.key, rv, self.before.take());
    }
}

impl Drop for WriteInFlight<'_> {
    fn drop(&mut self) {
        if !self.finished {
            self.own.finish(self.object, &self.key, None, Some(None));
        }
    }
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
    fn map(&self, object: Object) -> MutexGuard<'_, HashMap<Key, Written>> {
        match object {
            Object::Status => lock(&self.statuses),
            Object::Secret => lock(&self.secrets),
        }
    }

    /// A write of `object` `namespace/name` starts: until it returns, the cache cannot be
    /// compared with it, and watch events of the object are held (see [`EventOrigin`]).
    pub fn writing(&self, object: Object, namespace: &str, name: &str) -> WriteInFlight<'_> {
        let k = key(namespace, name);
        let mut map = self.map(object);
        let before = map.get(&k).map(|w| w.last.clone());
        let entry = map.entry(k.clone()).or_default();
        entry.last = None;
        entry.writing = true;
        WriteInFlight {
            own: self,
            object,
            key: k,
            before,
            finished: false,
        }
    }

    /// A write ended: with `rv`; or with nothing sent, so that `before` holds again
    /// (`None`: there was no record; `Some(None)`: unknown, as after a failed write). Held
    /// events that are not this process's own are passed on.
    fn finish(&self, object: Object, k: &Key, rv: Option<String>, before: Option<Option<Rv>>) {
        let released: Vec<ObjectRef<ClearApiClient>> = {
            let mut map = self.map(object);
            let entry = map.entry(k.clone()).or_default();
            entry.writing = false;
            let never_written = rv.is_none() && before.is_none() && entry.wrote_nothing();
            match (rv, before) {
                (Some(rv), _) => entry.push(&rv),
                (None, Some(last)) => entry.last = last,
                (None, None) => {}
            }
            let deferred = std::mem::take(&mut entry.deferred);
            let released = deferred
                .into_iter()
                .filter(|(rv, _)| !entry.wrote(rv))
                .map(|(_, target)| target)
                .collect();
            // NB: nothing was sent and nothing was recorded before: still never written.
            if never_written {
                map.remove(k);
            }
            released
        };
        for target in released {
            self.trigger(target);
        }
    }

    /// A write of the resource that is not recorded (the finalizer): its version is
    /// unknown until the next recorded write, so the cache is read fresh.
    pub fn status_unknown(&self, namespace: &str, name: &str) {
        self.map(Object::Status)
            .entry(key(namespace, name))
            .or_default()
            .last = None;
    }

    /// What a watch event of `object` `namespace/name` at `rv` is; one that is held is
    /// sent to `target`'s controller if the write in flight turns out not to be it.
    pub fn origin(
        &self,
        object: Object,
        namespace: &str,
        name: &str,
        rv: &str,
        target: ObjectRef<ClearApiClient>,
    ) -> EventOrigin {
        let mut map = self.map(object);
        let Some(written) = map.get_mut(&key(namespace, name)) else {
            return EventOrigin::Other;
        };
        if written.wrote(rv) {
            return EventOrigin::Own;
        }
        if written.writing {
            written.deferred.push((rv.to_string(), target));
            return EventOrigin::Held;
        }
        EventOrigin::Other
    }

    /// Where held events that turn out not to be ours go: the controller watching
    /// `scope` (`None`: all namespaces), for this leadership term.
    pub fn set_trigger(
        &self,
        scope: Option<String>,
        sender: UnboundedSender<ObjectRef<ClearApiClient>>,
    ) {
        lock(&self.triggers).insert(scope, sender);
    }

    fn trigger(&self, target: ObjectRef<ClearApiClient>) {
        let triggers = lock(&self.triggers);
        let sender = target
            .namespace
            .clone()
            .and_then(|ns| triggers.get(&Some(ns)))
            .or_else(|| triggers.get(&None));
        if let Some(sender) = sender {
            let _ = sender.unbounded_send(target);
        }
    }

    /// Whether `cached` (the controller's store) is as fresh as a GET would be, as far as
    /// this process's own writes go.
    pub fn freshness(
        &self,
        namespace: &str,
        name: &str,
        cached_rv: Option<&str>,
    ) -> CacheFreshness {
        match lock(&self.statuses).get(&key(namespace, name)) {
            None => CacheFreshness::NeverWritten,
            Some(Written {
                last: Some(last), ..
            }) if cached_rv.is_some_and(|rv| last.is(rv)) => CacheFreshness::AtOwnWrite,
            Some(_) => CacheFreshness::Unknown,
        }
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
    versions: HashMap<Key, (Rv, u64)>,
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
                let rv = Rv::new(
                    meta.metadata
                        .resource_version
                        .as_deref()
                        .unwrap_or_default(),
                );
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
            Some((rv, _)) => SecretSeen::At(rv.to_string()),
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
    rv: Rv,
    fingerprint: String,
}

/// The fingerprint of each client secret read, by the resourceVersion it was read at.
#[derive(Debug, Default)]
pub struct Fingerprints {
    entries: Mutex<HashMap<Key, Fingerprint>>,
}

impl Fingerprints {
    /// Remembers the fingerprint of key `data_key` of Secret `name` read at `rv`.
    pub fn remember(
        &self,
        namespace: &str,
        name: &str,
        data_key: &str,
        rv: &str,
        fingerprint: String,
    ) {
        lock(&self.entries).insert(
            key(namespace, name),
            Fingerprint {
                data_key: data_key.to_string(),
                rv: Rv::new(rv),
                fingerprint,
            },
        );
    }

    /// The fingerprint of key `data_key` of Secret `name` if it was read at `rv`.
    pub fn get(&self, namespace: &str, name: &str, data_key: &str, rv: &str) -> Option<String> {
        lock(&self.entries)
            .get(&key(namespace, name))
            .filter(|f| f.data_key == data_key && f.rv.is(rv))
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

pub fn key(namespace: &str, name: &str) -> Key {
    format!("{namespace}/{name}").into_boxed_str()
}

fn meta_key(meta: &PartialObjectMeta<Secret>) -> Option<Key> {
    Some(key(meta.metadata.namespace.as_deref()?, &meta.name_any()))
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

    fn target(name: &str) -> ObjectRef<ClearApiClient> {
        ObjectRef::new(name).within("ns")
    }

    #[test]
    fn a_resource_version_equals_another_exactly_when_their_texts_do() {
        for (a, b, same) in [
            ("7", "7", true),
            ("7", "07", false),
            ("07", "07", true),
            ("7", "+7", false),
            ("0", "0", true),
            ("0", "00", false),
            ("18446744073709551615", "18446744073709551615", true),
            ("18446744073709551616", "18446744073709551616", true),
            ("18446744073709551616", "0", false),
            ("abc", "abc", true),
            ("abc", "abd", false),
            ("", "", true),
            ("", "0", false),
        ] {
            assert_eq!(Rv::new(a).is(b), same, "{a:?} vs {b:?}");
            assert_eq!(Rv::new(b).is(a), same, "{b:?} vs {a:?}");
            assert_eq!(Rv::new(a).to_string(), a, "the text comes back");
        }
        assert_eq!(Rv::new("123"), Rv::Revision(123), "held as a number");
    }

    #[test]
    fn a_cached_object_is_fresh_only_at_the_version_this_process_last_wrote() {
        let own = OwnWrites::default();
        assert_eq!(
            own.freshness("ns", "a", Some("5")),
            CacheFreshness::NeverWritten
        );
        let write = own.writing(Object::Status, "ns", "a");
        assert_eq!(own.freshness("ns", "a", Some("5")), CacheFreshness::Unknown);
        write.done(Some("7".into()));
        assert_eq!(own.freshness("ns", "a", Some("5")), CacheFreshness::Unknown);
        assert_eq!(
            own.freshness("ns", "a", Some("7")),
            CacheFreshness::AtOwnWrite
        );
        assert_eq!(own.freshness("ns", "a", Some("9")), CacheFreshness::Unknown);
        // A write that sends nothing leaves what was known.
        own.writing(Object::Status, "ns", "a").done(None);
        assert_eq!(
            own.freshness("ns", "a", Some("7")),
            CacheFreshness::AtOwnWrite
        );
        // A write that fails (or is dropped midway) makes the cache unknown, even at the
        // old version.
        drop(own.writing(Object::Status, "ns", "a"));
        assert_eq!(own.freshness("ns", "a", Some("7")), CacheFreshness::Unknown);
        // The finalizer's writes are not recorded: unknown too.
        own.writing(Object::Status, "ns", "b")
            .done(Some("3".into()));
        own.status_unknown("ns", "b");
        assert_eq!(own.freshness("ns", "b", Some("3")), CacheFreshness::Unknown);
        // Nothing sent for a resource never written: still never written.
        own.writing(Object::Status, "ns", "c").done(None);
        assert_eq!(
            own.freshness("ns", "c", Some("1")),
            CacheFreshness::NeverWritten
        );
    }

    #[test]
    fn only_the_versions_this_process_wrote_are_its_own() {
        let own = OwnWrites::default();
        for rv in ["1", "2", "3", "4", "5"] {
            own.writing(Object::Status, "ns", "a").done(Some(rv.into()));
        }
        let origin =
            |object, name: &str, rv: &str| own.origin(object, "ns", name, rv, target(name));
        assert_eq!(origin(Object::Status, "a", "5"), EventOrigin::Own);
        assert_eq!(origin(Object::Status, "a", "2"), EventOrigin::Own);
        assert_eq!(
            origin(Object::Status, "a", "1"),
            EventOrigin::Other,
            "only the last few are kept"
        );
        assert_eq!(origin(Object::Status, "a", "6"), EventOrigin::Other);
        assert_eq!(origin(Object::Status, "b", "5"), EventOrigin::Other);
        own.writing(Object::Secret, "ns", "tok")
            .done(Some("8".into()));
        assert_eq!(origin(Object::Secret, "tok", "8"), EventOrigin::Own);
        assert_eq!(origin(Object::Secret, "tok", "9"), EventOrigin::Other);
        assert_eq!(origin(Object::Status, "tok", "8"), EventOrigin::Other);
    }

    #[test]
    fn an_event_that_arrives_before_its_write_answers_is_held_then_skipped_or_passed_on() {
        use futures::StreamExt;
        let own = OwnWrites::default();
        let (tx, mut rx) = futures::channel::mpsc::unbounded();
        own.set_trigger(None, tx);

        // The watch delivers our write before its answer is read: held, then skipped.
        let write = own.writing(Object::Status, "ns", "a");
        assert_eq!(
            own.origin(Object::Status, "ns", "a", "7", target("a")),
            EventOrigin::Held
        );
        write.done(Some("7".into()));
        assert!(rx.try_recv().is_err(), "nothing passed on");

        // Someone else's change lands while our write is in flight: held, then passed on.
        let write = own.writing(Object::Status, "ns", "a");
        assert_eq!(
            own.origin(Object::Status, "ns", "a", "8", target("a")),
            EventOrigin::Held
        );
        write.done(Some("9".into()));
        let passed = futures::executor::block_on(rx.next()).unwrap();
        assert_eq!(passed, target("a"));

        // A write that fails passes on whatever was held.
        let write = own.writing(Object::Secret, "ns", "tok");
        assert_eq!(
            own.origin(Object::Secret, "ns", "tok", "4", target("a")),
            EventOrigin::Held
        );
        drop(write);
        assert_eq!(futures::executor::block_on(rx.next()).unwrap(), target("a"));
        assert_eq!(
            own.origin(Object::Status, "ns", "a", "10", target("a")),
            EventOrigin::Other
        );
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
        assert_eq!(
            prints.get("ns", "cs", "clientSecret", "3").as_deref(),
            Some("f1")
        );
        assert_eq!(prints.get("ns", "cs", "clientSecret", "4"), None);
        assert_eq!(prints.get("ns", "cs", "other", "3"), None);
    }
}
