//! The Clear circuit: one per Clear host, shared by every resource, so that an outage of Clear
//! costs a few trial calls instead of one failed call per resource per backoff, and so that
//! Clear's return is noticed at once and every waiting resource served within minutes.
//!
//! The rule (also in docs/minting-and-failures.md, "When Clear fails for everyone"):
//! - **Closed** (normal): every call goes through. [`OPEN_AFTER`] failures in a row that say
//!   Clear is unavailable (5xx, timeout, connection refused or reset), across resources of the
//!   host with no answer in between, **open** it.
//! - **Open**: one trial call per [`TRIAL_INTERVAL`] goes through (whichever resource asks
//!   first); every other resource that needs a token waits, is remembered, and is requeued by
//!   its own backoff (capped by its token's remaining life, see
//!   [`crate::reconcile::schedule::backoff_cap`]). Nothing is written to Clear meanwhile. Since waiting
//!   resources look again only minutes later, the circuit asks for its own trial: once a
//!   trial is due, one waiting resource a second is woken ([`Circuits::wake_for_trial`])
//!   until one of them makes the call.
//! - Any answer from Clear (a token, a 401, a 429) **closes** it: the resources that waited,
//!   or failed, while it was open (and the failures that opened it) are released for a
//!   reconcile at [`RELEASE_PER_SECOND`], and the backoff those failures asked for is lifted
//!   (a failure recorded before the recovery is about the outage that ended).
//! - An answer before the circuit opened releases nothing and lifts nothing: a resource for
//!   which Clear keeps failing while it answers others keeps its own backoff.
//!
//! In memory and per process, on purpose: it only paces calls, it never decides that a token
//! is needed. A restarted (or new) leader starts closed and finds out again in
//! [`OPEN_AFTER`] calls.

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::{Mutex, MutexGuard, PoisonError},
    time::Duration,
};

use futures::Stream;
use jiff::{SignedDuration, Timestamp};
use tokio::sync::mpsc;

use crate::clear::ClearError;

/// Consecutive "Clear unavailable" failures that open the circuit.
pub const OPEN_AFTER: u32 = 5;
/// While open, one trial call per this interval.
pub const TRIAL_INTERVAL: SignedDuration = SignedDuration::from_secs(30);
/// How often [`Circuits::wake_for_trial`] runs.
pub const TRIAL_WAKE_EVERY: Duration = Duration::from_secs(1);
/// Resources released per second once Clear answers again: 10,000 waiting resources are all
/// reconciled within 200 s, and Clear sees at most this many calls a second from them.
pub const RELEASE_PER_SECOND: u32 = 50;

/// A resource, by namespace and name.
pub type Key = (String, String);

/// What a resource that needs a token may do now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Admission {
    /// Call Clear.
    Call,
    /// Call Clear: the circuit is open and this is its trial.
    Trial,
    /// Do not call: Clear failed for everyone lately; the next trial is at `next_trial`.
    Wait {
        next_trial: Timestamp,
        failures: u32,
    },
}

/// What a call to Clear told about its availability.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Clear answered (a token, a rejection, a rate limit): it is up.
    Answered,
    /// 5xx, timeout, connection failure: it may be down.
    Unavailable,
    /// Neither (a refusal by something in front of Clear, a malformed answer): not counted.
    Neutral,
}

impl Outcome {
    /// What a call's result says about Clear's availability.
    pub fn of<T>(result: &Result<T, ClearError>) -> Self {
        match result {
            Ok(_) => Self::Answered,
            Err(ClearError::Unauthorized { .. } | ClearError::RateLimited { .. }) => {
                Self::Answered
            }
            Err(
                ClearError::Server { .. }
                | ClearError::Timeout
                | ClearError::Connect { .. }
                | ClearError::Transport { .. },
            ) => Self::Unavailable,
            Err(
                ClearError::Refused { .. }
                | ClearError::Malformed { .. }
                | ClearError::UnexpectedStatus { .. }
                // NB: never sent: a tenant's unsendable client secret says nothing of Clear.
                | ClearError::InvalidClientSecret { .. }
                | ClearError::Config { .. },
            ) => Self::Neutral,
        }
    }
}

#[derive(Default)]
struct Host {
    /// "Unavailable" outcomes in a row.
    failures: u32,
    /// The resources of those failures, while the circuit is still closed.
    suspects: BTreeSet<Key>,
    /// Set while open: when the next trial may go.
    next_trial: Option<Timestamp>,
    /// Resources that waited while open, released when it closes.
    waiting: BTreeSet<Key>,
    /// When Clear last answered after an outage.
    recovered_at: Option<Timestamp>,
    /// The waiting resource last woken for a trial (the next one is the one after it).
    last_woken: Option<Key>,
}

/// The circuits of every Clear host, and the channel waiting resources are released on.
#[derive(Default)]
pub struct Circuits {
    hosts: Mutex<BTreeMap<String, Host>>,
    /// One per controller of the current leadership term (one per watched scope).
    release: Mutex<Vec<mpsc::UnboundedSender<Key>>>,
}

impl Circuits {
    /// Whether the resource `key` may call the Clear host `host` at `now`.
    pub fn admit(&self, host: &str, key: &Key, now: Timestamp) -> Admission {
        let mut hosts = self.lock();
        let state = hosts.entry(host.to_string()).or_default();
        let Some(next_trial) = state.next_trial else {
            return Admission::Call;
        };
        if now >= next_trial {
            state.next_trial = Some(now + TRIAL_INTERVAL);
            return Admission::Trial;
        }
        state.waiting.insert(key.clone());
        Admission::Wait {
            next_trial,
            failures: state.failures,
        }
    }

    /// Records what the call of resource `key` to `host` told; true when it opened the
    /// circuit.
    pub fn record(&self, host: &str, key: &Key, outcome: Outcome, now: Timestamp) -> bool {
        let released = {
            let mut hosts = self.lock();
            let state = hosts.entry(host.to_string()).or_default();
            match outcome {
                Outcome::Neutral => return false,
                Outcome::Unavailable => {
                    state.failures = state.failures.saturating_add(1);
                    if state.next_trial.is_some() {
                        state.waiting.insert(key.clone());
                        return false;
                    }
                    state.suspects.insert(key.clone());
                    if state.failures < OPEN_AFTER {
                        return false;
                    }
                    state.next_trial = Some(now + TRIAL_INTERVAL);
                    let suspects = std::mem::take(&mut state.suspects);
                    state.waiting.extend(suspects);
                    return true;
                }
                Outcome::Answered => {
                    state.failures = 0;
                    state.suspects.clear();
                    if state.next_trial.take().is_none() {
                        return false;
                    }
                    state.recovered_at = Some(now);
                    std::mem::take(&mut state.waiting)
                }
            }
        };
        self.send(released);
        false
    }

    /// Sends `keys` to every release stream.
    fn send(&self, keys: impl IntoIterator<Item = Key>) {
        let mut subscribers = self.release_lock();
        // NB: the controllers of an ended term dropped their streams.
        subscribers.retain(|release| !release.is_closed());
        for key in keys {
            for release in subscribers.iter() {
                let _ = release.send(key.clone());
            }
        }
    }

    /// Wakes, through the release streams, one waiting resource of each open circuit whose
    /// trial is due (called every second, see [`TRIAL_WAKE_EVERY`]): that resource needs a
    /// token, so its reconcile makes the trial call. Woken in turn, so that one that does not
    /// ask (deleted, or served meanwhile) does not stall the trials.
    pub fn wake_for_trial(&self, now: Timestamp) {
        let woken: Vec<Key> = {
            let mut hosts = self.lock();
            hosts
                .values_mut()
                .filter(|state| state.next_trial.is_some_and(|at| now >= at))
                .filter_map(|state| {
                    let next = match &state.last_woken {
                        Some(last) => state
                            .waiting
                            .range::<Key, _>((
                                std::ops::Bound::Excluded(last),
                                std::ops::Bound::Unbounded,
                            ))
                            .next()
                            .or_else(|| state.waiting.iter().next()),
                        None => state.waiting.iter().next(),
                    }
                    .cloned()?;
                    state.last_woken = Some(next.clone());
                    Some(next)
                })
                .collect()
        };
        self.send(woken);
    }

    /// When Clear last answered again after failing for everyone (`None`: not since this
    /// process started): a backoff asked for by a failure before then is over.
    pub fn recovered_at(&self, host: &str) -> Option<Timestamp> {
        self.lock().get(host).and_then(|state| state.recovered_at)
    }

    /// Whether the circuit of `host` is open.
    pub fn is_open(&self, host: &str) -> bool {
        self.lock()
            .get(host)
            .is_some_and(|state| state.next_trial.is_some())
    }

    /// The resources released when a circuit closes, at most [`RELEASE_PER_SECOND`] a
    /// second. Each subscriber (a controller of the current leadership term) gets every
    /// released resource; the stream ends when the subscriber drops it.
    pub fn releases(&self) -> impl Stream<Item = Key> + Send + 'static {
        let (tx, rx) = mpsc::unbounded_channel();
        self.release_lock().push(tx);
        let mut pace = tokio::time::interval(Duration::from_secs(1) / RELEASE_PER_SECOND);
        // NB: after a quiet spell the first releases go at the pace too, not in a burst.
        pace.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        futures::stream::unfold((rx, pace), |(mut rx, mut pace)| async move {
            let key = rx.recv().await?;
            pace.tick().await;
            Some((key, (rx, pace)))
        })
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, Host>> {
        self.hosts.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn release_lock(&self) -> MutexGuard<'_, Vec<mpsc::UnboundedSender<Key>>> {
        self.release.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use futures::StreamExt;

    use super::*;
    use crate::reconcile::test_support::ts;

    const HOST: &str = "https://api.clear.in/";

    fn key(i: usize) -> Key {
        ("ns".into(), format!("r{i}"))
    }

    #[test]
    fn opens_after_five_unavailable_in_a_row_and_lets_one_trial_through_per_interval() {
        let circuits = Circuits::default();
        let now = ts("2026-12-02T10:00:00Z");
        for i in 0..4 {
            assert_eq!(circuits.admit(HOST, &key(i), now), Admission::Call);
            assert!(!circuits.record(HOST, &key(99), Outcome::Unavailable, now));
        }
        // An answer in between starts the count again.
        circuits.record(HOST, &key(99), Outcome::Answered, now);
        for _ in 0..4 {
            assert!(!circuits.record(HOST, &key(99), Outcome::Unavailable, now));
        }
        // Refusals by something in front of Clear say nothing either way.
        circuits.record(HOST, &key(99), Outcome::Neutral, now);
        assert!(
            circuits.record(HOST, &key(99), Outcome::Unavailable, now),
            "the fifth opens it"
        );
        assert!(circuits.is_open(HOST));
        assert!(
            !circuits.is_open("https://api-sandbox.clear.in/"),
            "per host"
        );

        let next = now + TRIAL_INTERVAL;
        assert_eq!(
            circuits.admit(HOST, &key(7), now),
            Admission::Wait {
                next_trial: next,
                failures: 5
            }
        );
        assert_eq!(circuits.admit(HOST, &key(8), next), Admission::Trial);
        assert!(matches!(
            circuits.admit(HOST, &key(9), next),
            Admission::Wait { .. }
        ));
        circuits.record(HOST, &key(99), Outcome::Unavailable, next);
        assert_eq!(
            circuits.admit(HOST, &key(9), next + TRIAL_INTERVAL),
            Admission::Trial
        );
        assert_eq!(circuits.recovered_at(HOST), None);
    }

    #[tokio::test(start_paused = true)]
    async fn an_answer_closes_it_and_releases_the_waiting_resources_at_a_bounded_rate() {
        let circuits = Circuits::default();
        let releases = circuits.releases();
        let now = ts("2026-12-02T10:00:00Z");
        // The failures that open it are released too (their resources need a token as well).
        for i in 0..OPEN_AFTER as usize {
            circuits.record(HOST, &key(1000 + i), Outcome::Unavailable, now);
        }
        for i in 0..115 {
            circuits.admit(HOST, &key(i), now);
        }
        // The same resource asking twice is released once.
        circuits.admit(HOST, &key(0), now);
        let back = now + SignedDuration::from_mins(10);
        assert_eq!(circuits.admit(HOST, &key(500), back), Admission::Trial);
        circuits.record(HOST, &key(500), Outcome::Answered, back);
        assert!(!circuits.is_open(HOST));
        assert_eq!(circuits.recovered_at(HOST), Some(back));
        assert_eq!(circuits.admit(HOST, &key(501), back), Admission::Call);

        let started = tokio::time::Instant::now();
        let released: Vec<Key> = releases.take(120).collect().await;
        let took = started.elapsed();
        assert_eq!(released.iter().collect::<BTreeSet<_>>().len(), 120);
        // 120 at 50 a second: 2.4 s of paused time, give or take a tick.
        assert!(
            took >= Duration::from_millis(2300) && took <= Duration::from_millis(2500),
            "{took:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn an_answer_before_it_opened_releases_nothing_and_lifts_no_backoff() {
        let circuits = Circuits::default();
        let mut releases = Box::pin(circuits.releases());
        let now = ts("2026-12-02T10:00:00Z");
        for i in 0..(OPEN_AFTER as usize - 1) {
            circuits.record(HOST, &key(i), Outcome::Unavailable, now);
        }
        circuits.record(HOST, &key(50), Outcome::Answered, now);
        assert_eq!(circuits.recovered_at(HOST), None);
        // The count starts again: four more do not open it.
        for i in 0..(OPEN_AFTER as usize - 1) {
            circuits.record(HOST, &key(i), Outcome::Unavailable, now);
        }
        assert!(!circuits.is_open(HOST));
        let nothing = tokio::time::timeout(Duration::from_secs(5), releases.as_mut().next()).await;
        assert!(nothing.is_err(), "{nothing:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_due_trial_wakes_the_waiting_resources_one_a_second_in_turn() {
        let circuits = Circuits::default();
        let mut releases = Box::pin(circuits.releases());
        let now = ts("2026-12-02T10:00:00Z");
        for i in 0..OPEN_AFTER as usize {
            circuits.record(HOST, &key(100 + i), Outcome::Unavailable, now);
        }
        for i in 0..2 {
            circuits.admit(HOST, &key(i), now);
        }
        // Not due yet: nobody is woken.
        circuits.wake_for_trial(now + SignedDuration::from_secs(29));
        let early = tokio::time::timeout(Duration::from_secs(1), releases.as_mut().next()).await;
        assert!(early.is_err(), "{early:?}");
        // Due: one a second, in turn (7 waiting: the 5 failures and 2 held back).
        let due = now + TRIAL_INTERVAL;
        let mut woken = Vec::new();
        for second in 0..8 {
            circuits.wake_for_trial(due + SignedDuration::from_secs(second));
            woken.push(releases.as_mut().next().await.unwrap());
        }
        assert_eq!(woken[0], key(0));
        assert_eq!(woken[1], key(1));
        assert_eq!(woken[7], key(0), "round and round until one asks");
        assert_eq!(woken.iter().collect::<BTreeSet<_>>().len(), 7);
        // One asked: the trial is taken, nobody is woken until the next is due.
        assert_eq!(
            circuits.admit(HOST, &key(1), due + SignedDuration::from_secs(8)),
            Admission::Trial
        );
        circuits.wake_for_trial(due + SignedDuration::from_secs(9));
        let quiet = tokio::time::timeout(Duration::from_secs(1), releases.as_mut().next()).await;
        assert!(quiet.is_err(), "{quiet:?}");
    }
}
