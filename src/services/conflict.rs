//! Two ClearApiClients sharing one client secret would revoke each other's tokens forever
//! (each mint revokes the previous token), so one keeps the secret and the others mint
//! nothing. The one that keeps it is the **holder**, whose stored token was minted from that
//! secret and is in use; with no holder, the oldest resource. Minting is never what settles
//! it: taking over from a holder would revoke the token its consumers use.
//!
//! Who uses which secret is kept in an index updated from watch events (each resource's
//! status) and from this process's own fresher claims (every fetch that reads a client
//! secret); a lookup costs the number of resources sharing that one fingerprint, never a
//! scan of all resources. The same index maps a Secret to the resources that read it as
//! their client secret or write it as their target. A per-fingerprint async lock serializes
//! "check, then mint".

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, Mutex, RwLock},
};

use jiff::Timestamp;
use kube::{
    ResourceExt,
    runtime::{reflector::ObjectRef, watcher},
};

use crate::reason::Reason;

/// How often a resource in Conflict looks again (the older one may have gone away).
pub const CONFLICT_RECHECK: jiff::SignedDuration = jiff::SignedDuration::from_mins(5);
use crate::resource::ClearApiClient;

/// A resource as far as the conflict rule cares: who it is and how old.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claimant {
    pub namespace: String,
    pub name: String,
    pub created: Option<Timestamp>,
}

/// (namespace, name) of a resource. NB: shared (`Arc`) by the entry and every reverse map
/// that lists the resource, so each resource's names are held once: at 10,000 resources
/// the index with a copy per map was 17 MiB of the operator's heap (heaptrack).
type Key = Arc<(String, String)>;

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

    /// How `viewer` may see this resource named: by name within its own namespace; from
    /// another namespace not at all, since names across a tenant boundary are not ours to
    /// reveal.
    pub fn display_to(&self, viewer: &Claimant) -> String {
        if self.namespace == viewer.namespace {
            format!("ClearApiClient {}", self.name)
        } else {
            "another ClearApiClient (in another namespace)".to_string()
        }
    }
}

/// The resource `me` must yield to, if any, among `others` using the same client secret,
/// each with whether it holds a token minted from it. `i_hold`: whether `me` does.
///
/// A holder never yields to a non-holder; a non-holder yields to any holder; among equals
/// (both holding after a race, or nobody holding yet), the older wins.
pub fn yield_to(
    me: &Claimant,
    i_hold: bool,
    others: impl IntoIterator<Item = (Claimant, bool)>,
) -> Option<Claimant> {
    others
        .into_iter()
        .filter(|(other, _)| other.key() != me.key())
        .filter(|(other, holds)| match (i_hold, *holds) {
            (false, true) => true,
            (true, false) => false,
            _ => other.is_older_than(me),
        })
        .min_by(|(a, a_holds), (b, b_holds)| {
            // Holders first, then the oldest.
            (!a_holds, a.age_key()).cmp(&(!b_holds, b.age_key()))
        })
        .map(|(other, _)| other)
}

/// What one source says a resource does with a client secret.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Use {
    fingerprint: String,
    holds: bool,
}

#[derive(Clone, Debug)]
struct Entry {
    /// The resource's creation time (its names are the entry's key).
    created: Option<Timestamp>,
    /// Which watch stream reported it (streams watch disjoint namespaces).
    scope: u64,
    client_secret: String,
    target: String,
    /// From the resource's status as last seen in a watch event.
    from_status: Option<Use>,
    /// From this process's own last fetch or mint (fresher than the cache).
    from_process: Option<Use>,
}

impl Entry {
    /// What the reverse maps hold for this entry: the fingerprints it uses (from status and
    /// from this process) and the Secrets it reads or writes.
    fn links(&self) -> (Vec<String>, [String; 2]) {
        let fingerprints = [&self.from_status, &self.from_process]
            .into_iter()
            .flatten()
            .map(|u| u.fingerprint.clone())
            .collect();
        (
            fingerprints,
            [self.client_secret.clone(), self.target.clone()],
        )
    }

    /// This process's own view wins: within a leadership term it is the only writer.
    fn current(&self) -> Option<&Use> {
        self.from_process.as_ref().or(self.from_status.as_ref())
    }
}

/// Removes `key` from the list under `at` and drops the list once empty, so the reverse
/// maps never keep empty entries. NB: a list, not a set: almost every list holds one
/// resource (a set costs a table per Secret and per fingerprint), and a lookup already
/// walks every resource sharing a fingerprint.
fn remove_from<K: std::hash::Hash + Eq>(map: &mut HashMap<K, Vec<Key>>, at: K, key: &Key) {
    let Some(keys) = map.get_mut(&at) else {
        return;
    };
    if let Some(i) = keys.iter().position(|k| k == key) {
        keys.swap_remove(i);
    }
    if keys.is_empty() {
        map.remove(&at);
    }
}

fn add_to<K: std::hash::Hash + Eq>(map: &mut HashMap<K, Vec<Key>>, at: K, key: &Key) {
    let keys = map.entry(at).or_default();
    if !keys.contains(key) {
        keys.push(key.clone());
    }
}

#[derive(Default)]
struct State {
    entries: HashMap<Key, Entry>,
    by_fingerprint: HashMap<String, Vec<Key>>,
    /// (namespace, Secret name) → resources reading or writing it.
    by_secret: HashMap<(String, String), Vec<Key>>,
    /// Keys seen since the last `Init` of each scope (to drop what a relist no longer has).
    relisting: HashMap<u64, HashSet<Key>>,
    /// Scopes whose first list is complete, and how many scopes there are (0: not known,
    /// e.g. an index fed by a test).
    synced: HashSet<u64>,
    expected_scopes: usize,
}

impl State {
    fn unlink(&mut self, key: &Key) {
        let Some((fingerprints, secrets)) = self.entries.get(key).map(Entry::links) else {
            return;
        };
        for fp in fingerprints {
            remove_from(&mut self.by_fingerprint, fp, key);
        }
        for secret in secrets {
            remove_from(&mut self.by_secret, (key.0.clone(), secret), key);
        }
    }

    fn link(&mut self, key: &Key) {
        let Some((fingerprints, secrets)) = self.entries.get(key).map(Entry::links) else {
            return;
        };
        for fp in fingerprints {
            add_to(&mut self.by_fingerprint, fp, key);
        }
        for secret in secrets {
            add_to(&mut self.by_secret, (key.0.clone(), secret), key);
        }
    }

    /// The index's own `Arc` of a known resource's key (see [`Key`]).
    fn known_key(&self, key: &(String, String)) -> Option<Key> {
        self.entries
            .get_key_value(key)
            .map(|(shared, _)| shared.clone())
    }

    /// [`Self::known_key`], or a new one for a resource not known yet.
    fn shared_key(&self, key: (String, String)) -> Key {
        self.known_key(&key).unwrap_or_else(|| Arc::new(key))
    }

    /// Replaces the entry of `key` with what `update` makes of it (None removes it).
    fn update(&mut self, key: &Key, update: impl FnOnce(Option<Entry>) -> Option<Entry>) {
        self.unlink(key);
        let next = update(self.entries.remove(key));
        if let Some(entry) = next {
            self.entries.insert(key.clone(), entry);
            self.link(key);
        }
    }

    fn upsert(&mut self, scope: u64, cac: &ClearApiClient) {
        let claimant = Claimant::of(cac);
        let from_status = status_use(cac);
        let client_secret = cac.spec.client_secret_ref.name.clone();
        let target = cac.target_secret_name();
        let key = self.shared_key(claimant.key());
        self.update(&key, |previous| {
            Some(Entry {
                created: claimant.created,
                scope,
                client_secret,
                target,
                from_status,
                from_process: previous.and_then(|p| p.from_process),
            })
        });
        if let Some(seen) = self.relisting.get_mut(&scope) {
            seen.insert(key);
        }
    }
}

/// What a resource's status says about its client secret: the fingerprint of the secret
/// it last minted with, and whether it holds a token from it (not while it is itself in
/// Conflict, which a race between replicas can leave behind).
fn status_use(cac: &ClearApiClient) -> Option<Use> {
    let status = cac.status.as_ref()?;
    // NB: the secret of the stored token; a resource whose first call is under way has
    // only the call's.
    let fingerprint = status
        .client_secret_fingerprint
        .clone()
        .or_else(|| status.call_client_secret_fingerprint.clone())?;
    let in_conflict = status
        .conditions
        .iter()
        .any(|c| c.type_ == "Ready" && c.reason == Reason::Conflict.as_str());
    Some(Use {
        fingerprint,
        holds: status.token_fingerprint.is_some() && !in_conflict,
    })
}

/// The index of ClearApiClients the controller knows. Cheap to share (`Arc` inside);
/// every lock is held for a few map operations, never across an await.
#[derive(Clone, Default)]
pub struct ResourceIndex {
    state: Arc<RwLock<State>>,
    locks: Arc<Mutex<Locks>>,
}

/// The check-and-mint locks, one per client secret fingerprint in use.
#[derive(Default)]
struct Locks {
    by_fingerprint: HashMap<String, Arc<tokio::sync::Mutex<()>>>,
    /// Size at which the next sweep runs.
    sweep_at: usize,
}

impl Locks {
    /// Drops the locks nobody holds or waits for (only the map has them). NB: without it
    /// the map kept a lock for every fingerprint ever seen, one more per rotated client
    /// secret for the life of the process; sweeping when the map has doubled since the
    /// last sweep keeps the cost per call constant.
    fn sweep(&mut self) {
        if self.by_fingerprint.len() < self.sweep_at {
            return;
        }
        self.by_fingerprint
            .retain(|_, lock| Arc::strong_count(lock) > 1);
        self.sweep_at = (self.by_fingerprint.len() * 2).max(64);
    }
}

impl ResourceIndex {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.state
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Applies one event of the watch stream `scope` (one per watched namespace set).
    pub fn apply_event(&self, scope: u64, event: &watcher::Event<ClearApiClient>) {
        let mut state = self.write();
        match event {
            watcher::Event::Apply(cac) | watcher::Event::InitApply(cac) => {
                state.upsert(scope, cac);
            }
            watcher::Event::Delete(cac) => {
                let key = state.shared_key(Claimant::of(cac).key());
                state.update(&key, |_| None);
            }
            watcher::Event::Init => {
                state.relisting.insert(scope, HashSet::new());
            }
            watcher::Event::InitDone => {
                state.synced.insert(scope);
                let seen = state.relisting.remove(&scope).unwrap_or_default();
                let gone: Vec<Key> = state
                    .entries
                    .iter()
                    .filter(|(key, entry)| entry.scope == scope && !seen.contains(*key))
                    .map(|(key, _)| key.clone())
                    .collect();
                for key in gone {
                    state.update(&key, |_| None);
                }
            }
        }
    }

    /// A new set of `scopes` watches starts (a leadership term): none has listed yet.
    pub fn expect_scopes(&self, scopes: usize) {
        let mut state = self.write();
        state.synced.clear();
        state.expected_scopes = scopes;
    }

    /// Whether every scope's first list is in the index. NB: until then a resource in a
    /// scope not listed yet may hold a client secret that a resource here is about to mint
    /// with, and the shared-secret rule could not see it: nothing mints before.
    pub fn all_scopes_synced(&self) -> bool {
        let state = self.read();
        state.synced.len() >= state.expected_scopes
    }

    /// Whether the resource is known (tests wait for the watch to deliver it).
    pub fn contains(&self, namespace: &str, name: &str) -> bool {
        self.read()
            .entries
            .contains_key(&(namespace.to_string(), name.to_string()))
    }

    /// Number of resources known.
    pub fn len(&self) -> usize {
        self.read().entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Records what this process just learnt: `me` uses `fingerprint`, holding a token
    /// from it or not. Ignored for resources the watch does not know (deleted ones).
    pub fn claim(&self, me: &Claimant, fingerprint: &str, holds: bool) {
        let mut state = self.write();
        let Some(key) = state.known_key(&me.key()) else {
            return;
        };
        state.update(&key, |entry| {
            entry.map(|mut e| {
                e.from_process = Some(Use {
                    fingerprint: fingerprint.to_string(),
                    holds,
                });
                e
            })
        });
    }

    /// Forgets this process's claim of a resource (deleted, or leadership lost).
    pub fn forget(&self, namespace: &str, name: &str) {
        let mut state = self.write();
        let Some(key) = state.known_key(&(namespace.to_string(), name.to_string())) else {
            return;
        };
        state.update(&key, |entry| {
            entry.map(|mut e| {
                e.from_process = None;
                e
            })
        });
    }

    /// Forgets every claim this process made (leadership lost: the next term starts from
    /// what the cluster says).
    pub fn forget_all_claims(&self) {
        let mut state = self.write();
        let keys: Vec<Key> = state.entries.keys().cloned().collect();
        for key in keys {
            state.update(&key, |entry| {
                entry.map(|mut e| {
                    e.from_process = None;
                    e
                })
            });
        }
    }

    /// The resource `me` must yield the client secret to, if any.
    pub fn find_conflict(
        &self,
        me: &Claimant,
        fingerprint: &str,
        i_hold: bool,
    ) -> Option<Claimant> {
        let state = self.read();
        let keys = state.by_fingerprint.get(fingerprint)?;
        let others = keys
            .iter()
            .filter_map(|key| state.entries.get(key).map(|entry| (key, entry)))
            .filter_map(|(key, entry)| {
                let current = entry.current()?;
                (current.fingerprint == fingerprint).then(|| {
                    let claimant = Claimant {
                        namespace: key.0.clone(),
                        name: key.1.clone(),
                        created: entry.created,
                    };
                    (claimant, current.holds)
                })
            });
        yield_to(me, i_hold, others)
    }

    /// The resources in the Secret's namespace that read it as their client secret or
    /// write it as their target.
    pub fn resources_for_secret(
        &self,
        namespace: &str,
        name: &str,
    ) -> Vec<ObjectRef<ClearApiClient>> {
        self.read()
            .by_secret
            .get(&(namespace.to_string(), name.to_string()))
            .map(|keys| {
                let mut names: Vec<&str> = keys.iter().map(|key| key.1.as_str()).collect();
                names.sort_unstable();
                names
                    .into_iter()
                    .map(|n| ObjectRef::new(n).within(namespace))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Every known resource, as (namespace, name).
    pub fn keys(&self) -> Vec<(String, String)> {
        self.read()
            .entries
            .keys()
            .map(|key| key.as_ref().clone())
            .collect()
    }

    /// The lock serializing check-and-mint for one client secret fingerprint.
    pub fn lock_for(&self, fingerprint: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self
            .locks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        locks.sweep();
        locks
            .by_fingerprint
            .entry(fingerprint.to_string())
            .or_default()
            .clone()
    }

    /// Number of check-and-mint locks kept (tests).
    #[cfg(test)]
    fn locks_kept(&self) -> usize {
        self.locks.lock().unwrap().by_fingerprint.len()
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
    fn yield_rule_table() {
        let older = claimant("a", "older", "2026-11-25T00:00:00Z");
        let newer = claimant("a", "newer", "2026-11-25T00:00:01Z");
        // (case, me, i_hold, other, other_holds, expected winner)
        let cases = [
            (
                "nobody holds: the newer yields to the older",
                &newer,
                false,
                &older,
                false,
                true,
            ),
            (
                "nobody holds: the older keeps it",
                &older,
                false,
                &newer,
                false,
                false,
            ),
            (
                "the newer holds: the older yields",
                &older,
                false,
                &newer,
                true,
                true,
            ),
            (
                "the newer holds: it keeps it",
                &newer,
                true,
                &older,
                false,
                false,
            ),
            (
                "both hold after a race: the older wins",
                &newer,
                true,
                &older,
                true,
                true,
            ),
            (
                "both hold after a race: the older keeps it",
                &older,
                true,
                &newer,
                true,
                false,
            ),
        ];
        for (case, me, i_hold, other, other_holds, yields) in cases {
            let got = yield_to(me, i_hold, [((*other).clone(), other_holds)]);
            assert_eq!(got.is_some(), yields, "{case}");
        }
    }

    #[test]
    fn holders_are_preferred_over_older_non_holders() {
        let me = claimant("a", "me", "2026-11-25T00:00:05Z");
        let oldest = claimant("a", "oldest", "2026-11-25T00:00:00Z");
        let holder = claimant("a", "holder", "2026-11-25T00:00:09Z");
        let got = yield_to(&me, false, [(oldest, false), (holder.clone(), true)]);
        assert_eq!(got, Some(holder));
    }

    #[test]
    fn same_creation_time_breaks_ties_by_namespace_then_name() {
        let a = claimant("a", "zeta", "2026-11-25T00:00:00Z");
        let b = claimant("b", "alpha", "2026-11-25T00:00:00Z");
        assert_eq!(yield_to(&b, false, [(a.clone(), false)]), Some(a.clone()));
        assert_eq!(yield_to(&a, false, [(b, false)]), None);
    }

    #[test]
    fn a_resource_in_another_namespace_is_never_named() {
        let me = claimant("billing", "me", "2026-11-25T00:00:00Z");
        let other = claimant("payroll", "secret-project", "2026-11-25T00:00:00Z");
        let shown = other.display_to(&me);
        assert!(!shown.contains("payroll") && !shown.contains("secret-project"));
        assert!(shown.contains("another ClearApiClient"));
        let neighbour = claimant("billing", "gst", "2026-11-25T00:00:00Z");
        assert_eq!(neighbour.display_to(&me), "ClearApiClient gst");
    }

    fn cac(name: &str, created: &str, fingerprint: Option<&str>, holds: bool) -> ClearApiClient {
        let mut cac = client(name);
        cac.metadata.creation_timestamp = Some(
            k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(ts(created)),
        );
        cac.status = Some(crate::resource::ClearApiClientStatus {
            client_secret_fingerprint: fingerprint.map(str::to_string),
            token_fingerprint: holds.then(|| "tttttttttttt".to_string()),
            ..Default::default()
        });
        cac
    }

    #[test]
    fn conflicts_come_from_watched_statuses_and_fresher_claims() {
        let index = ResourceIndex::default();
        index.apply_event(
            0,
            &watcher::Event::Apply(cac("first", "2026-11-25T00:00:00Z", None, false)),
        );
        index.apply_event(
            0,
            &watcher::Event::Apply(cac("second", "2026-11-25T00:00:05Z", Some("fp"), true)),
        );
        let first = claimant("default", "first", "2026-11-25T00:00:00Z");
        let second = claimant("default", "second", "2026-11-25T00:00:05Z");
        assert_eq!(
            index.find_conflict(&first, "fp", false).map(|c| c.name),
            Some("second".into()),
            "the newer one holds a token from the secret"
        );
        assert_eq!(index.find_conflict(&second, "fp", true), None);
        // A claim made in process counts before any status says so.
        index.claim(&first, "fp2", false);
        let third = cac("third", "2026-11-25T00:00:09Z", None, false);
        index.apply_event(0, &watcher::Event::Apply(third));
        let third = claimant("default", "third", "2026-11-25T00:00:09Z");
        assert_eq!(
            index.find_conflict(&third, "fp2", false).map(|c| c.name),
            Some("first".into())
        );
        index.forget("default", "first");
        assert_eq!(index.find_conflict(&third, "fp2", false), None);
    }

    #[test]
    fn deleted_resources_and_relisted_away_resources_drop_out() {
        let index = ResourceIndex::default();
        let holder = cac("holder", "2026-11-25T00:00:00Z", Some("fp"), true);
        index.apply_event(0, &watcher::Event::Apply(holder.clone()));
        let me = claimant("default", "me", "2026-11-25T00:00:09Z");
        assert!(index.find_conflict(&me, "fp", false).is_some());
        index.apply_event(0, &watcher::Event::Delete(holder.clone()));
        assert!(index.find_conflict(&me, "fp", false).is_none());
        assert!(!index.contains("default", "holder"));

        index.apply_event(0, &watcher::Event::Apply(holder));
        index.apply_event(0, &watcher::Event::Init);
        index.apply_event(0, &watcher::Event::InitDone);
        assert!(
            !index.contains("default", "holder"),
            "a relist without it means it is gone"
        );
        assert!(index.find_conflict(&me, "fp", false).is_none());
    }

    #[test]
    fn claims_of_unknown_resources_are_ignored() {
        let index = ResourceIndex::default();
        let ghost = claimant("default", "ghost", "2026-11-25T00:00:00Z");
        index.claim(&ghost, "fp", true);
        let me = claimant("default", "me", "2026-11-25T00:00:09Z");
        assert_eq!(index.find_conflict(&me, "fp", false), None);
    }

    #[test]
    fn secrets_map_back_to_the_resources_reading_or_writing_them() {
        let index = ResourceIndex::default();
        let mut billing = client("billing");
        billing.spec.client_secret_ref.name = "shared-secret".into();
        let mut payroll = client("payroll");
        payroll.spec.client_secret_ref.name = "shared-secret".into();
        let mut other_ns = client("elsewhere");
        other_ns.metadata.namespace = Some("other".into());
        other_ns.spec.client_secret_ref.name = "shared-secret".into();
        for cac in [billing, payroll, other_ns] {
            index.apply_event(0, &watcher::Event::Apply(cac));
        }
        let names = |ns: &str, secret: &str| -> Vec<String> {
            index
                .resources_for_secret(ns, secret)
                .into_iter()
                .map(|r| r.name)
                .collect()
        };
        assert_eq!(
            names("default", "shared-secret"),
            vec!["billing", "payroll"]
        );
        assert_eq!(
            names("default", "billing"),
            vec!["billing"],
            "the target maps to its writer"
        );
        assert!(names("default", "unrelated").is_empty());

        let mut moved = client("billing");
        moved.spec.client_secret_ref.name = "new-secret".into();
        index.apply_event(0, &watcher::Event::Apply(moved));
        assert_eq!(
            names("default", "shared-secret"),
            vec!["payroll"],
            "a changed reference moves"
        );
        assert_eq!(names("default", "new-secret"), vec!["billing"]);
    }

    #[test]
    fn locks_nobody_holds_are_dropped_and_held_ones_kept() {
        let index = ResourceIndex::default();
        let held = index.lock_for("fp-held");
        let guard = held.try_lock().expect("free");
        // A rotation per client secret for a long time: one fingerprint after another.
        for n in 0..1_000 {
            drop(index.lock_for(&format!("fp-{n}")));
        }
        assert!(
            index.locks_kept() <= 130,
            "unused locks are swept: {} kept",
            index.locks_kept()
        );
        let again = index.lock_for("fp-held");
        assert!(
            Arc::ptr_eq(&held, &again),
            "a lock someone holds is never replaced (two mints would run at once)"
        );
        assert!(again.try_lock().is_err(), "still held");
        drop(guard);
    }
}
