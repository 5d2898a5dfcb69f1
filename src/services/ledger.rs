//! The budget ledger: calls to Clear per client secret (by fingerprint) in the current UTC
//! day, across every resource that used it: resources deleted and created again, the holder
//! role passing to another resource, and revoke-on-delete calls. Clear's limit (288 a day)
//! is per client secret; a count per resource (`status.mintsToday`) forgets all of these.
//!
//! Kept in memory, where each call is counted before it is made, and written to a ConfigMap
//! in the operator's namespace (its Lease's, named after it: `<lease>-budget`) at most every
//! [`FLUSH_EVERY`], so that it survives restarts and failover: a new leader reads it before
//! its first call. NB: written in the background, not before each call: one more write per
//! call to one shared object would serialise the whole fleet on it. A process killed between
//! two flushes loses the counts of those seconds for resources other than the ones it
//! called for (each of which still counts its own calls in status, and the decision takes
//! the larger of the two).

use std::{
    collections::BTreeMap,
    sync::{Mutex, MutexGuard, PoisonError},
    time::Duration,
};

use jiff::Timestamp;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::{
    Api, Client,
    api::{Patch, PatchParams},
};
use tracing::{debug, warn};

use crate::{clock::utc_day, kube_client::FIELD_MANAGER};
use crate::{fence::Fence, metrics::Metrics};

/// How often the counts are written to the ConfigMap (when they changed).
pub const FLUSH_EVERY: Duration = Duration::from_secs(5);
/// The ConfigMap key holding the UTC day the counts are for.
const DAY_KEY: &str = "day";

/// Where the ledger is kept: the ConfigMap `name` in `namespace`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LedgerLocation {
    pub namespace: String,
    pub name: String,
}

#[derive(Default)]
struct Counts {
    /// The UTC day of `calls`.
    day: String,
    calls: BTreeMap<String, u32>,
    /// Changed since the last write.
    dirty: bool,
    /// The ConfigMap was read this term (found, absent, or of another day): writing it
    /// cannot wipe counts this process never saw.
    loaded: bool,
}

/// Client secrets the ConfigMap keeps at most: the ones with the most calls today. Keys
/// come from calls, so a tenant trying one client secret value after another adds one a
/// call; this bounds the object (about 20 bytes a key) far below the 1 MiB a ConfigMap may
/// hold, and each resource's own count in status still holds for the ones left out.
pub const MAX_LEDGER_KEYS: usize = 10_000;

/// Calls per client secret today (see the module docs).
#[derive(Default)]
pub struct Ledger {
    counts: Mutex<Counts>,
    location: Option<LedgerLocation>,
}

impl Ledger {
    /// A ledger written to `location`, or kept in memory only (`None`: no leader election,
    /// so no namespace of its own; `dev`, tests).
    pub fn new(location: Option<LedgerLocation>) -> Self {
        Self {
            counts: Mutex::default(),
            location,
        }
    }

    /// Counts one call with the client secret `fingerprint` at `now`; returns the calls of
    /// that secret today, this one included.
    pub fn count(&self, fingerprint: &str, now: Timestamp, metrics: &Metrics) -> u32 {
        let mut counts = self.lock();
        roll_over(&mut counts, now, metrics);
        let calls = counts.calls.entry(fingerprint.to_string()).or_insert(0);
        *calls = calls.saturating_add(1);
        let calls = *calls;
        counts.dirty = true;
        metrics.set_client_secret_calls(fingerprint, calls);
        calls
    }

    /// The calls with the client secret `fingerprint` on the UTC day of `now`.
    pub fn calls_today(&self, fingerprint: &str, now: Timestamp) -> u32 {
        let counts = self.lock();
        if counts.day != utc_day(now) {
            return 0;
        }
        counts.calls.get(fingerprint).copied().unwrap_or(0)
    }

    /// Reads the ConfigMap and takes, per client secret, the larger of its count and the
    /// one in memory (a new leader learns what the previous one counted). A ledger of
    /// another day is ignored.
    pub async fn load(&self, client: &Client, now: Timestamp, metrics: &Metrics) {
        let Some(location) = &self.location else {
            return;
        };
        let api: Api<ConfigMap> = Api::namespaced(client.clone(), &location.namespace);
        let stored = match api.get_opt(&location.name).await {
            Ok(stored) => stored.and_then(|cm| cm.data).unwrap_or_default(),
            Err(error) => {
                // NB: the decision still has each resource's own count in status; the ledger
                // is not written before it could be read (see `flush`).
                warn!(%error, ledger = %location.name, "could not read the budget ledger; counting from each resource's status only until it can be read");
                return;
            }
        };
        self.merge(stored, now, Some(metrics));
    }

    /// Takes, per client secret, the larger of the stored count and the one in memory.
    fn merge(&self, stored: BTreeMap<String, String>, now: Timestamp, metrics: Option<&Metrics>) {
        let today = utc_day(now);
        let mut counts = self.lock();
        counts.loaded = true;
        if stored.get(DAY_KEY) != Some(&today) {
            return;
        }
        match metrics {
            Some(metrics) => roll_over(&mut counts, now, metrics),
            // NB: counts of an earlier day must not absorb today's stored ones.
            None if counts.day != today => {
                counts.calls.clear();
                counts.day = today;
            }
            None => {}
        }
        for (fingerprint, value) in stored.into_iter().filter(|(k, _)| k != DAY_KEY) {
            let Ok(stored_calls) = value.parse::<u32>() else {
                continue;
            };
            let calls = counts.calls.entry(fingerprint.clone()).or_insert(0);
            *calls = (*calls).max(stored_calls);
            if let Some(metrics) = metrics {
                metrics.set_client_secret_calls(&fingerprint, *calls);
            }
        }
        debug!(client_secrets = counts.calls.len(), "budget ledger loaded");
    }

    /// Writes the counts to the ConfigMap if they changed (fenced: only the leader writes).
    /// A ledger this term could not read yet is read (and merged) first: written blind, it
    /// would wipe the counts of client secrets this process has not called.
    pub async fn flush(&self, client: &Client, fence: &Fence, now: Timestamp) {
        let Some(location) = &self.location else {
            return;
        };
        let api: Api<ConfigMap> = Api::namespaced(client.clone(), &location.namespace);
        if !self.lock().loaded {
            match api.get_opt(&location.name).await {
                Ok(stored) => {
                    self.merge(stored.and_then(|cm| cm.data).unwrap_or_default(), now, None);
                }
                Err(error) => {
                    warn!(%error, ledger = %location.name, "could not read the budget ledger; not writing it before it can be read");
                    return;
                }
            }
        }
        let (day, calls) = {
            let mut counts = self.lock();
            if !counts.dirty {
                return;
            }
            counts.dirty = false;
            (counts.day.clone(), counts.calls.clone())
        };
        if fence.check().is_err() {
            self.lock().dirty = true;
            return;
        }
        let mut data: BTreeMap<String, String> = keep_busiest(calls)
            .into_iter()
            .map(|(fingerprint, calls)| (fingerprint, calls.to_string()))
            .collect();
        data.insert(DAY_KEY.to_string(), day);
        let config_map = serde_json::json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": location.name,
                "labels": {"app.kubernetes.io/managed-by": "clear-operator"},
                "annotations": {
                    "clear-operator.io/about": "calls to Clear per client secret (by fingerprint) in the current UTC day; written by the leader, read by the next one"
                },
            },
            "data": data,
        });
        let params = PatchParams::apply(FIELD_MANAGER).force();
        if let Err(error) = api
            .patch(&location.name, &params, &Patch::Apply(&config_map))
            .await
        {
            warn!(%error, ledger = %location.name, "could not write the budget ledger; trying again");
            self.lock().dirty = true;
        }
    }

    /// Forgets the counts' series (leadership lost: another replica counts now).
    pub fn forget_series(&self, metrics: &Metrics) {
        for fingerprint in self.lock().calls.keys() {
            metrics.forget_client_secret(fingerprint);
        }
    }

    fn lock(&self) -> MutexGuard<'_, Counts> {
        self.counts.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The [`MAX_LEDGER_KEYS`] client secrets with the most calls.
fn keep_busiest(calls: BTreeMap<String, u32>) -> BTreeMap<String, u32> {
    if calls.len() <= MAX_LEDGER_KEYS {
        return calls;
    }
    warn!(
        client_secrets = calls.len(),
        kept = MAX_LEDGER_KEYS,
        "more client secrets called today than the ledger keeps; the ones with the fewest calls are left out of it (each resource's own count in status still holds)"
    );
    let mut by_calls: Vec<(String, u32)> = calls.into_iter().collect();
    by_calls.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    by_calls.truncate(MAX_LEDGER_KEYS);
    by_calls.into_iter().collect()
}

/// Starts a new day's counts when `now` is on another UTC day than them.
fn roll_over(counts: &mut Counts, now: Timestamp, metrics: &Metrics) {
    let today = utc_day(now);
    if counts.day == today {
        return;
    }
    for fingerprint in counts.calls.keys() {
        metrics.forget_client_secret(fingerprint);
    }
    // NB: only a day that had calls needs writing over; a process that has counted nothing
    // yet (a new term after a restart) writes nothing until it makes a call.
    if !counts.calls.is_empty() {
        counts.dirty = true;
    }
    counts.calls.clear();
    counts.day = today;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reconcile::test_support::ts;

    fn metrics() -> (prometheus_client::registry::Registry, Metrics) {
        let mut registry = prometheus_client::registry::Registry::default();
        let metrics = Metrics::register(&mut registry);
        (registry, metrics)
    }

    #[test]
    fn counts_per_client_secret_and_starts_again_each_utc_day() {
        let (registry, metrics) = metrics();
        let ledger = Ledger::new(None);
        let now = ts("2026-12-02T23:59:00Z");
        assert_eq!(ledger.count("aaaa", now, &metrics), 1);
        assert_eq!(ledger.count("aaaa", now, &metrics), 2);
        assert_eq!(ledger.count("bbbb", now, &metrics), 1);
        assert_eq!(ledger.calls_today("aaaa", now), 2);
        assert_eq!(ledger.calls_today("cccc", now), 0);
        let text = crate::metrics::render(&registry).unwrap();
        assert!(
            text.contains(
                "clear_operator_client_secret_calls_today{client_secret_fingerprint=\"aaaa\"} 2"
            ),
            "{text}"
        );

        // Nothing counted, nothing to write: a fresh process does not write the ledger.
        let fresh = Ledger::new(None);
        assert_eq!(fresh.calls_today("aaaa", now), 0);
        roll_over(&mut fresh.lock(), now, &metrics);
        assert!(!fresh.lock().dirty);
        // A day with calls is written over when the next begins.
        ledger.lock().dirty = false;
        roll_over(&mut ledger.lock(), ts("2026-12-03T00:00:00Z"), &metrics);
        assert!(ledger.lock().dirty);

        let tomorrow = ts("2026-12-03T00:00:00Z");
        assert_eq!(ledger.calls_today("aaaa", tomorrow), 0);
        assert_eq!(ledger.count("bbbb", tomorrow, &metrics), 1);
        let text = crate::metrics::render(&registry).unwrap();
        assert!(
            !text.contains("\"aaaa\""),
            "yesterday's series is gone: {text}"
        );
    }

    #[test]
    fn a_ledger_read_late_is_merged_before_it_is_written() {
        let (_registry, metrics) = metrics();
        let ledger = Ledger::new(None);
        let now = ts("2026-12-02T10:00:00Z");
        ledger.count("aaaa", now, &metrics);
        let stored: BTreeMap<String, String> = [
            (DAY_KEY.to_string(), "2026-12-02".to_string()),
            ("aaaa".to_string(), "5".to_string()),
            ("bbbb".to_string(), "7".to_string()),
        ]
        .into();
        assert!(!ledger.lock().loaded);
        ledger.merge(stored.clone(), now, None);
        assert!(ledger.lock().loaded);
        assert_eq!(ledger.calls_today("aaaa", now), 5, "the larger count");
        assert_eq!(
            ledger.calls_today("bbbb", now),
            7,
            "another client secret's count is kept, not wiped"
        );
        // Another day's ledger is read (so writing is safe) but not taken.
        let other = Ledger::new(None);
        other.merge(stored, ts("2026-12-03T10:00:00Z"), None);
        assert!(other.lock().loaded);
        assert_eq!(other.calls_today("bbbb", ts("2026-12-03T10:00:00Z")), 0);
    }

    #[test]
    fn the_ledger_keeps_the_busiest_client_secrets_within_its_bound() {
        let mut calls: BTreeMap<String, u32> = (0..MAX_LEDGER_KEYS + 5)
            .map(|i| (format!("fp-{i:06}"), 1))
            .collect();
        calls.insert("busy".into(), 200);
        let kept = keep_busiest(calls);
        assert_eq!(kept.len(), MAX_LEDGER_KEYS);
        assert_eq!(kept.get("busy"), Some(&200));
    }
}
