//! What this process remembers per resource between reconciles, and the code that forgets
//! it. None of it feeds the decision to call Clear (that stays a function of the cluster):
//! it paces retries of Kubernetes errors, says things once, and keeps a minted token whose
//! write failed.

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::{Mutex, MutexGuard, PoisonError},
};

/// A resource, by namespace and name.
pub type Key = (String, String);

/// A token this process minted and could not write yet (the API server failed, timed out,
/// restarted, or this replica could not prove it leads at that moment). It is written on
/// the next reconciles, never minted again, for as long as status still marks its call as
/// the one in flight: a minted token is never thrown away while it can still be served.
// NB: in memory only, on purpose: a token is never written anywhere but its Secret. A
// process that dies holding one costs one replacement (the next leader sees the call in
// flight, waits for its deadline, and mints).
pub struct PendingToken {
    /// The `status.callId` of the call that minted it.
    pub call_id: String,
    /// When Clear's answer arrived: the rotation window (consumers hold a revoked token)
    /// runs from here to the Secret write.
    pub answered_at: std::time::Instant,
    pub token: crate::clear::AccessToken,
    pub record: super::secret::TokenRecord,
    pub reason: super::decide::MintReason,
    /// Why the token's expiry was assumed (Clear's answer had no readable `valid_till`).
    pub expiry_assumed: Option<&'static str>,
    /// Failed writes so far (paces the next one).
    pub attempts: u32,
}

/// See the module documentation.
#[derive(Default)]
pub struct Memory {
    /// Resources this process exported per-resource metrics for.
    exported: Mutex<BTreeSet<Key>>,
    /// Consecutive failed reconciles per resource.
    failures: Mutex<BTreeMap<Key, u32>>,
    /// Tokens minted by this process whose Secret write has not landed yet.
    pending: Mutex<BTreeMap<Key, PendingToken>>,
    /// Resources another install manages that this process already warned about.
    yielded: Mutex<BTreeSet<Key>>,
}

fn key(namespace: &str, name: &str) -> Key {
    (namespace.to_string(), name.to_string())
}

// NB: std mutexes, held for a map operation only and never across an await.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Memory {
    /// Notes that this process exports per-resource series for the resource.
    pub fn exported(&self, namespace: String, name: String) {
        lock(&self.exported).insert((namespace, name));
    }

    /// The resources with exported series that are not in `present`.
    pub fn exported_not_in(&self, present: &BTreeSet<Key>) -> Vec<Key> {
        lock(&self.exported).difference(present).cloned().collect()
    }

    /// Records the outcome of a reconcile; returns the failure streak (0 after a success).
    pub fn record_outcome(&self, namespace: String, name: String, ok: bool) -> u32 {
        let mut failures = lock(&self.failures);
        let key = (namespace, name);
        if ok {
            failures.remove(&key);
            return 0;
        }
        let streak = failures.entry(key).or_insert(0);
        *streak = streak.saturating_add(1);
        *streak
    }

    /// Consecutive failed reconciles of this resource (0 after a success).
    pub fn failure_streak(&self, namespace: &str, name: &str) -> u32 {
        lock(&self.failures)
            .get(&key(namespace, name))
            .copied()
            .unwrap_or(0)
    }

    /// Keeps a minted token whose Secret write failed, to be written by a later reconcile.
    pub fn keep_pending(&self, namespace: &str, name: &str, token: PendingToken) {
        lock(&self.pending).insert(key(namespace, name), token);
    }

    /// Takes the token kept for this resource, if any.
    pub fn take_pending(&self, namespace: &str, name: &str) -> Option<PendingToken> {
        lock(&self.pending).remove(&key(namespace, name))
    }

    /// Notes that this process yields the resource to another install; true the first time
    /// (when the Warning is due).
    pub fn first_yield(&self, namespace: &str, name: &str) -> bool {
        lock(&self.yielded).insert(key(namespace, name))
    }

    /// Forgets everything about one resource.
    pub fn forget(&self, namespace: &str, name: &str) {
        let key = key(namespace, name);
        lock(&self.exported).remove(&key);
        lock(&self.failures).remove(&key);
        lock(&self.pending).remove(&key);
    }

    /// Forgets everything but the pending tokens (leadership lost); returns the resources
    /// whose series were exported.
    // NB: not the pending tokens: leadership that flickered (one late Lease renewal) comes
    // back with the Lease still ours, and the token minted meanwhile is still the live one.
    // A new leader's call replaces `status.callId`, and a pending token whose call is no
    // longer the one in flight is dropped unwritten.
    pub fn forget_all(&self) -> Vec<Key> {
        let exported = std::mem::take(&mut *lock(&self.exported));
        lock(&self.failures).clear();
        exported.into_iter().collect()
    }
}
