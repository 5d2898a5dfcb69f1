//! The decision whether to call Clear: a pure function of what is stored in the cluster (the
//! resource's spec and status, the target Secret's metadata, the client secret's
//! fingerprint) and the clock. Nothing here remembers anything between reconciles, which is
//! why a restart, a relist or a second replica decides exactly the same thing.

use jiff::{SignedDuration, Timestamp};

use super::{
    schedule,
    secret::TokenRecord,
    view,
    windows::{self, Planned, Window},
};
use crate::{reason::Reason, resource::ClearApiClientStatus};

/// The spec, once it passed the checks the schema cannot make.
#[derive(Clone, Debug, PartialEq)]
pub struct ValidSpec {
    pub base_url: String,
    pub config_hash: String,
    /// Hashes meaning the same configuration (earlier versions, equivalent spellings).
    pub equivalent_config_hashes: Vec<String>,
    pub renew_before: Option<SignedDuration>,
    /// `spec.renewalWindows`, parsed. NB: not part of `config_hash`: windows only move a
    /// renewal in time, so changing them must never mint.
    pub renewal_windows: Vec<Window>,
    /// The share of the token's lifetime this resource's renewals are brought forward by:
    /// its [`schedule::renewal_jitter`] times [`Policy::renewal_jitter_percent`].
    pub renewal_jitter: f64,
}

#[derive(Clone, Debug, PartialEq)]
pub enum ClientSecretState {
    /// The referenced Secret or key is missing or empty.
    Missing {
        detail: String,
    },
    /// The key's value cannot be a client secret (too large, not UTF-8 text): reported,
    /// never sent.
    Invalid {
        detail: String,
    },
    Present {
        fingerprint: String,
    },
    /// Not read: the base URL is not on the operator's allow-list (`detail` says so).
    Withheld {
        detail: String,
    },
}

#[derive(Clone, Debug, PartialEq)]
pub enum TargetState {
    Absent,
    /// Exists and is not ours: never modified.
    Foreign {
        detail: String,
    },
    /// Ours; `token` is status's record of the token it holds (or, for the answer to the
    /// call status marks as in flight, the record written with it), `None` when the token
    /// key is gone; `drifted` whether its metadata differs from what status and the spec say.
    Ours {
        token: Option<TokenRecord>,
        drifted: bool,
    },
    /// Ours, but holding a token that status does not name and no call of ours wrote (a
    /// backup restore, a secret-sync tool, an edit): never served as Ready, replaced.
    Unknown,
}

/// Everything the decision looks at.
#[derive(Clone, Debug, PartialEq)]
pub struct Observed {
    pub name: String,
    pub target_name: String,
    pub spec: Result<ValidSpec, String>,
    pub client_secret: ClientSecretState,
    pub target: TargetState,
    /// The ClearApiClient this one yields its client secret to (see `conflict`), as it may
    /// be shown to this resource's owner.
    pub conflict_with: Option<String>,
    pub regenerate_request: Option<String>,
    pub status: ClearApiClientStatus,
    /// After `target.name` changed: the Secret status names, if it is ours and still holds
    /// the token status records (it can be moved without a call).
    pub previous_target: Option<PreviousTarget>,
    /// When Clear (this resource's host) last answered again after failing for every
    /// resource (see `circuit`): a "Clear unavailable" backoff recorded before then is over.
    pub clear_recovered_at: Option<Timestamp>,
    /// Calls made today with this client secret, by every resource (see `ledger`).
    pub client_secret_calls_today: u32,
    /// Whether nothing may be asked of Clear for this resource, and why.
    pub suspended: Option<Suspension>,
    /// The token in use that `spec.adoptFrom` hands over, read only while the resource
    /// holds no token.
    pub adoption: Option<Adoption>,
}

/// What `spec.adoptFrom` holds, for a resource with no token yet.
#[derive(Clone, Debug, PartialEq)]
pub enum Adoption {
    /// A live token and its expiry: taken over with no call.
    Ready { record: TokenRecord, from: String },
    /// Not adoptable as it is (Secret or key missing, an expiry that cannot be read): the
    /// resource waits rather than mint, which would revoke the token in use.
    Invalid { detail: String },
}

/// Why the operator calls Clear for nothing on a resource.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Suspension {
    /// `spec.suspend: true`.
    Resource,
    /// The operator runs in standby (`--standby`): a disaster-recovery cluster.
    Install,
}

/// The token Secret of before a `target.name` change.
#[derive(Clone, Debug, PartialEq)]
pub struct PreviousTarget {
    pub name: String,
    pub record: TokenRecord,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Policy {
    /// Calls to Clear allowed per client secret per UTC day.
    pub mint_budget: u32,
    /// How long after `mintStartedAt` a call made by another replica may still be in flight
    /// (its Clear timeout plus a margin): until then nothing is minted, since that call's
    /// answer may still be written, and a second mint would revoke it.
    pub in_flight_grace: SignedDuration,
    /// Renewals are spread over this share of the token's lifetime, in percent (see
    /// [`schedule::renewal_jitter`]); 0 renews exactly at `renewBefore`.
    pub renewal_jitter_percent: u8,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            mint_budget: 250,
            in_flight_grace: SignedDuration::from_secs(30),
            renewal_jitter_percent: schedule::DEFAULT_RENEWAL_JITTER_PERCENT,
        }
    }
}

/// Why a new token is needed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MintReason {
    /// A previous call's outcome was lost: Clear may have minted, revoking the stored token.
    Interrupted,
    NoToken,
    /// The target Secret, and the only copy of the token with it, was deleted.
    SecretDeleted,
    /// The target Secret holds a token status does not name (written back by a restore or
    /// another tool): it may be revoked, so it is replaced.
    TokenReplaced,
    /// The target Secret is there but no longer holds the token (its `accessToken` key was
    /// removed or replaced): the only copy of the token is gone.
    TokenRemoved,
    ClientSecretChanged,
    ConfigChanged,
    RegenerateRequested {
        value: String,
    },
    Expired,
    RenewalDue,
}

/// Whether the token in the Secret can be used by consumers right now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TokenHealth {
    Usable {
        valid_till: Option<Timestamp>,
    },
    /// The stored token's `validTill` (`at`) has passed: consumers hold a dead token.
    Expired {
        at: Timestamp,
    },
    Unusable {
        why: &'static str,
    },
}

impl TokenHealth {
    pub fn is_usable(&self) -> bool {
        matches!(self, Self::Usable { .. })
    }

    /// When the usable token expires: the latest moment any wait may last, since at that
    /// instant Ready must turn False (`None`: no usable token, or it never expires).
    pub fn expires_at(&self) -> Option<Timestamp> {
        match self {
            Self::Usable { valid_till } => *valid_till,
            Self::Expired { .. } | Self::Unusable { .. } => None,
        }
    }
}

/// What stops a needed (or any) mint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Blocker {
    InvalidSpec {
        detail: String,
    },
    /// The base URL is not on the allow-list: the client secret was not even read.
    BaseUrlNotAllowed {
        detail: String,
    },
    ClientSecretMissing {
        detail: String,
    },
    ClientSecretInvalid {
        detail: String,
    },
    TargetConflict {
        detail: String,
    },
    Conflict {
        with: String,
    },
    /// A previous failure asked to wait until `until`; `reason` is that failure's reason.
    Backoff {
        reason: Reason,
        until: Timestamp,
    },
    /// Clear rejected this client secret; nothing is tried until it changes.
    Rejected,
    /// Nothing is asked of Clear for this resource (see [`Suspension`]).
    Suspended {
        by: Suspension,
    },
    BudgetExhausted {
        until: Timestamp,
    },
    /// Clear failed for every resource lately (the shared circuit is open): only trial calls
    /// go; this resource waits to be released when Clear answers, at the latest `retry_at`.
    ClearDown {
        retry_at: Timestamp,
    },
    /// `mintStartedAt` is recent and no token from that call reached the Secret: the call
    /// may still be running in a replica that lost the Lease; wait for its deadline.
    CallInFlight {
        until: Timestamp,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Call Clear now.
    Mint {
        reason: MintReason,
        health: TokenHealth,
    },
    /// Take over the token in use from `spec.adoptFrom`: no call.
    Adopt { record: TokenRecord, from: String },
    /// The stored token stays; re-apply the Secret without minting if its metadata drifted.
    Keep {
        refresh_secret: bool,
        record: TokenRecord,
        /// When the token will be renewed (inside a renewal window, if the spec has any).
        renewal_time: Option<Timestamp>,
        /// How the renewal windows were honoured; `None` without windows or expiry.
        windows: Option<WindowOutcome>,
        /// The token is in this (previous) Secret: move it to the target, then delete it.
        move_from: Option<String>,
    },
    /// Nothing can be done now.
    Wait {
        blocker: Blocker,
        health: TokenHealth,
        /// When the situation may have changed by itself (None: only a change of the
        /// resource or a Secret can help).
        retry_at: Option<Timestamp>,
        /// The mint that would have happened, if the guards had allowed it.
        pending: Option<MintReason>,
    },
}

/// How `spec.renewalWindows` shaped the planned renewal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WindowOutcome {
    /// The renewal is planned inside a window.
    Scheduled,
    /// No window opens before the last safe moment: the renewal happens outside them.
    NoWindowFits { why: String },
}

/// The renewal time a plan stands for, and how it honoured the windows.
pub fn split_plan(planned: Option<Planned>) -> (Option<Timestamp>, Option<WindowOutcome>) {
    match planned {
        None => (None, None),
        Some(Planned::Unconstrained(at)) => (Some(at), None),
        Some(Planned::InWindow(at) | Planned::EarlyInWindow(at)) => {
            (Some(at), Some(WindowOutcome::Scheduled))
        }
        Some(Planned::NoWindowFits { at, why }) => {
            (Some(at), Some(WindowOutcome::NoWindowFits { why }))
        }
    }
}

/// When the token described by `record` is to be renewed, given the spec's windows.
pub fn plan_renewal(record: &TokenRecord, spec: &ValidSpec, now: Timestamp) -> Option<Planned> {
    windows::plan(
        record.issued_at,
        record.valid_till,
        spec.renew_before,
        &spec.renewal_windows,
        spec.renewal_jitter,
        now,
    )
}

pub fn decide(obs: &Observed, now: Timestamp, policy: &Policy) -> Decision {
    let health = token_health(obs, now);
    let wait = |blocker, retry_at, pending| Decision::Wait {
        blocker,
        health: health.clone(),
        retry_at,
        pending,
    };
    // NB: first: a suspended resource calls Clear for nothing, whatever else is wrong; its
    // Ready still follows the stored token (Suspended while it lives, TokenExpired after).
    if let Some(by) = obs.suspended {
        return wait(Blocker::Suspended { by }, None, None);
    }
    let spec = match &obs.spec {
        Ok(spec) => spec,
        Err(detail) => {
            return wait(
                Blocker::InvalidSpec {
                    detail: detail.clone(),
                },
                None,
                None,
            );
        }
    };
    let fingerprint = match &obs.client_secret {
        ClientSecretState::Present { fingerprint } => fingerprint,
        ClientSecretState::Missing { detail } => {
            return wait(
                Blocker::ClientSecretMissing {
                    detail: detail.clone(),
                },
                None,
                None,
            );
        }
        ClientSecretState::Invalid { detail } => {
            return wait(
                Blocker::ClientSecretInvalid {
                    detail: detail.clone(),
                },
                None,
                None,
            );
        }
        ClientSecretState::Withheld { detail } => {
            // NB: Ready=False even while an earlier token is valid: nothing will renew it.
            return Decision::Wait {
                blocker: Blocker::BaseUrlNotAllowed {
                    detail: detail.clone(),
                },
                health: TokenHealth::Unusable {
                    why: "no token is minted or renewed for a base URL that is not allowed",
                },
                retry_at: None,
                pending: None,
            };
        }
    };
    if let TargetState::Foreign { detail } = &obs.target {
        return wait(
            Blocker::TargetConflict {
                detail: detail.clone(),
            },
            None,
            None,
        );
    }
    if let Some(with) = &obs.conflict_with {
        return wait(Blocker::Conflict { with: with.clone() }, None, None);
    }
    // NB: only read while no token is held (see observe): the one moment a first mint
    // would revoke a token somebody else is using.
    match &obs.adoption {
        Some(Adoption::Ready { record, from }) => {
            return Decision::Adopt {
                record: record.clone(),
                from: from.clone(),
            };
        }
        Some(Adoption::Invalid { detail }) => {
            return wait(
                Blocker::InvalidSpec {
                    detail: detail.clone(),
                },
                None,
                Some(MintReason::NoToken),
            );
        }
        None => {}
    }

    let reason = match need(obs, spec, fingerprint, now) {
        Need::Mint(reason) => reason,
        Need::Keep {
            record,
            drifted,
            move_from,
            planned,
        } => {
            let (renewal_time, windows) = split_plan(planned);
            // NB: a token minted for an equivalent configuration (an earlier spelling, or
            // another workspace, which Clear is never told) is recorded under the current
            // one, so that the next edit compares against it.
            let mut record = record.clone();
            let migrated = record.config_hash != spec.config_hash;
            record.config_hash.clone_from(&spec.config_hash);
            return Decision::Keep {
                refresh_secret: drifted || migrated || move_from.is_some(),
                move_from,
                record,
                renewal_time,
                windows,
            };
        }
    };

    // NB: a failure recorded after the call started means that call ended here (its answer
    // was lost or may have minted): nothing is in flight, only its backoff applies.
    if reason == MintReason::Interrupted
        && let Some(call) = view::call_in_flight(&obs.status)
        && !call.ended_in_failure
        && now < call.started_at + policy.in_flight_grace
    {
        let until = call.started_at + policy.in_flight_grace;
        return wait(Blocker::CallInFlight { until }, Some(until), Some(reason));
    }
    if let Some(blocker) = backoff(&obs.status, fingerprint, spec, obs.clear_recovered_at, now) {
        let retry_at = match &blocker {
            Blocker::Backoff { until, .. } => Some(*until),
            _ => Some(now + schedule::REJECTED_RECHECK),
        };
        return wait(blocker, retry_at, Some(reason));
    }
    // NB: Clear's limit is per client secret: the calls of other (or deleted) resources
    // with it count, and so do this resource's own, which status keeps across restarts.
    let spent = view::mints_today(&obs.status, now).max(i64::from(obs.client_secret_calls_today));
    if spent >= i64::from(policy.mint_budget) {
        let until = schedule::next_utc_midnight(now);
        return wait(
            Blocker::BudgetExhausted { until },
            Some(until),
            Some(reason),
        );
    }
    Decision::Mint { reason, health }
}

/// Whether the stored token can stay, or the first reason (in order of urgency) to replace it.
enum Need<'a> {
    Keep {
        record: &'a TokenRecord,
        drifted: bool,
        move_from: Option<String>,
        planned: Option<Planned>,
    },
    Mint(MintReason),
}

fn need<'a>(obs: &'a Observed, spec: &ValidSpec, fingerprint: &str, now: Timestamp) -> Need<'a> {
    if call_outcome_lost(obs) {
        return Need::Mint(MintReason::Interrupted);
    }
    let (record, drifted, move_from) = match (&obs.target, &obs.previous_target) {
        (
            TargetState::Ours {
                token: Some(record),
                drifted,
            },
            _,
        ) => (record, *drifted, None),
        // NB: a renamed target: the live token moves with no call (a new one would revoke it).
        (TargetState::Absent, Some(previous)) => {
            (&previous.record, true, Some(previous.name.clone()))
        }
        (TargetState::Absent, None) if had_token_in(obs) => {
            return Need::Mint(MintReason::SecretDeleted);
        }
        (TargetState::Ours { token: None, .. }, _) if had_token_in(obs) => {
            return Need::Mint(MintReason::TokenRemoved);
        }
        (TargetState::Unknown, _) if had_token_in(obs) => {
            return Need::Mint(MintReason::TokenReplaced);
        }
        _ => return Need::Mint(MintReason::NoToken),
    };
    if record.client_secret_fingerprint != fingerprint {
        return Need::Mint(MintReason::ClientSecretChanged);
    }
    if record.config_hash != spec.config_hash
        && !spec.equivalent_config_hashes.contains(&record.config_hash)
    {
        return Need::Mint(MintReason::ConfigChanged);
    }
    if let Some(value) = &obs.regenerate_request {
        // NB: any value honoured recently counts: a GitOps revert to an earlier value is
        // not a new request.
        let honoured = record.regenerate.as_ref() == Some(value)
            || obs.status.last_regenerate_request.as_ref() == Some(value)
            || obs.status.regenerate_history.contains(value);
        if !honoured {
            return Need::Mint(MintReason::RegenerateRequested {
                value: value.clone(),
            });
        }
    }
    if record.valid_till.is_some_and(|till| now >= till) {
        return Need::Mint(MintReason::Expired);
    }
    // NB: windows only move this one renewal; every reason above mints at once.
    let planned = plan_renewal(record, spec, now);
    if planned.as_ref().is_some_and(|p| now >= p.at()) {
        return Need::Mint(MintReason::RenewalDue);
    }
    Need::Keep {
        record,
        drifted,
        move_from,
        planned,
    }
}

/// A call to Clear whose outcome was never recorded: `mintStartedAt` is set and the Secret
/// does not hold that call's answer (told by its call id, see [`super::secret::held_token`]): it
/// still holds the token status names, another one, or none.
fn call_outcome_lost(obs: &Observed) -> bool {
    if view::call_in_flight(&obs.status).is_none() {
        return false;
    }
    match &obs.target {
        TargetState::Ours {
            token: Some(record),
            ..
        } => obs.status.token_fingerprint.as_deref() == Some(record.token_fingerprint.as_str()),
        _ => true,
    }
}

/// Whether status says a token was written to this same target Secret before.
fn had_token_in(obs: &Observed) -> bool {
    obs.status.token_fingerprint.is_some()
        && obs.status.secret_name.as_deref() == Some(obs.target_name.as_str())
}

fn token_health(obs: &Observed, now: Timestamp) -> TokenHealth {
    let record = match &obs.target {
        TargetState::Ours {
            token: Some(record),
            ..
        } => record,
        TargetState::Unknown => {
            return TokenHealth::Unusable {
                why: "the Secret holds a token the operator did not write (restored from a backup or written by another tool), which may be revoked",
            };
        }
        _ => {
            return TokenHealth::Unusable {
                why: "no token is stored",
            };
        }
    };
    if call_outcome_lost(obs) {
        return TokenHealth::Unusable {
            why: "a call to Clear may have revoked the stored token",
        };
    }
    match record.valid_till {
        Some(till) if now >= till => TokenHealth::Expired { at: till },
        valid_till => TokenHealth::Usable { valid_till },
    }
}

/// The backoff a previous failure asked for, if it still applies.
///
/// NB: a new client secret lifts the waits that were about the old one (rejected, or its
/// daily quota spent); transient failures are about Clear and keep their backoff. A
/// rejection is also lifted by a new configuration (a production secret sent to the
/// sandbox host is rejected there, and fine once `environment` is corrected).
fn backoff(
    status: &ClearApiClientStatus,
    fingerprint: &str,
    spec: &ValidSpec,
    clear_recovered_at: Option<Timestamp>,
    now: Timestamp,
) -> Option<Blocker> {
    let failure = view::last_failure(status)?;
    let reason = failure.reason;
    let same_config = failure.config_hash.as_ref().is_none_or(|rejected| {
        *rejected == spec.config_hash || spec.equivalent_config_hashes.contains(rejected)
    });
    if reason == Reason::ClientSecretRejected && !same_config {
        return None;
    }
    let same_secret = failure.client_secret_fingerprint.as_deref() == Some(fingerprint);
    let about_secret = matches!(reason, Reason::ClientSecretRejected | Reason::RateLimited);
    if about_secret && !same_secret {
        return None;
    }
    if reason == Reason::ClientSecretRejected {
        return Some(Blocker::Rejected);
    }
    // NB: Clear answered again since this failure, which said it was unavailable: the
    // backoff was about an outage that is over.
    if reason == Reason::ClearUnavailable
        && let (Some(recovered), Some(failed)) = (clear_recovered_at, failure.at)
        && failed <= recovered
    {
        return None;
    }
    let until = failure.next_retry?;
    (now < until).then_some(Blocker::Backoff { reason, until })
}

/// How long past its planned renewal a resource managed by another install waits before
/// this install takes it over (that install evidently stopped).
pub const TAKEOVER_AFTER_OVERDUE: SignedDuration = SignedDuration::from_mins(10);
/// How long a resource of another install may go without a token before this one takes it.
pub const TAKEOVER_WITHOUT_TOKEN: SignedDuration = SignedDuration::from_hours(1);

/// The other install this one must yield the resource to, if any: the one status names,
/// unless it evidently stopped (its renewal overdue by [`TAKEOVER_AFTER_OVERDUE`], its token
/// expired, or no token and no change of the Ready condition for [`TAKEOVER_WITHOUT_TOKEN`]).
pub fn yield_to<'a>(status: &'a ClearApiClientStatus, me: &str, now: Timestamp) -> Option<&'a str> {
    let other = status.operator_instance.as_deref().filter(|o| *o != me)?;
    let overdue = status
        .renewal_time
        .as_ref()
        .is_some_and(|t| now > t.0 + TAKEOVER_AFTER_OVERDUE);
    let expired = status.valid_till.as_ref().is_some_and(|t| now >= t.0);
    let tokenless_for_long = status.token_fingerprint.is_none()
        && view::ready_condition(Some(status))
            .is_none_or(|c| now > c.last_transition_time.0 + TAKEOVER_WITHOUT_TOKEN);
    (!overdue && !expired && !tokenless_for_long).then_some(other)
}

pub use super::view::mints_today;

#[cfg(test)]
pub(crate) mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    use super::*;
    use crate::{reconcile::test_support::ts, resource::RenewalWindow};

    const FP: &str = "aaaaaaaaaaaa";
    const HASH: &str = "cccccccccccc";

    fn record() -> TokenRecord {
        TokenRecord {
            issued_at: ts("2026-11-25T00:00:00Z"),
            valid_till: Some(ts("2026-11-25T12:00:00Z")),
            client_secret_fingerprint: FP.into(),
            config_hash: HASH.into(),
            regenerate: None,
            token_fingerprint: "tttttttttttt".into(),
        }
    }

    /// A resource holding a fresh token: renewal at 08:00 (a third of 12h before expiry).
    pub(crate) fn healthy() -> Observed {
        Observed {
            name: "billing".into(),
            target_name: "billing".into(),
            spec: Ok(ValidSpec {
                base_url: "https://api-sandbox.clear.in".into(),
                config_hash: HASH.into(),
                equivalent_config_hashes: Vec::new(),
                renew_before: None,
                renewal_windows: Vec::new(),
                renewal_jitter: 0.0,
            }),
            client_secret: ClientSecretState::Present {
                fingerprint: FP.into(),
            },
            target: TargetState::Ours {
                token: Some(record()),
                drifted: false,
            },
            conflict_with: None,
            regenerate_request: None,
            previous_target: None,
            clear_recovered_at: None,
            client_secret_calls_today: 0,
            suspended: None,
            adoption: None,
            status: ClearApiClientStatus {
                secret_name: Some("billing".into()),
                token_fingerprint: Some("tttttttttttt".into()),
                client_secret_fingerprint: Some(FP.into()),
                mint_day: Some("2026-11-25".into()),
                mints_today: 1,
                ..Default::default()
            },
        }
    }

    const NOW: &str = "2026-11-25T06:00:00Z";

    fn run(obs: &Observed) -> Decision {
        decide(obs, ts(NOW), &Policy::default())
    }

    fn run_at(obs: &Observed, now: &str) -> Decision {
        decide(obs, ts(now), &Policy::default())
    }

    fn mint_reason_of(decision: &Decision) -> Option<MintReason> {
        match decision {
            Decision::Mint { reason, .. } => Some(reason.clone()),
            _ => None,
        }
    }

    fn blocker_of(decision: &Decision) -> Option<Blocker> {
        match decision {
            Decision::Wait { blocker, .. } => Some(blocker.clone()),
            _ => None,
        }
    }

    fn time(s: &str) -> Option<Time> {
        Some(Time(ts(s)))
    }

    #[test]
    fn healthy_token_is_kept_until_its_renewal_time() {
        let decision = run(&healthy());
        assert_eq!(
            decision,
            Decision::Keep {
                refresh_secret: false,
                record: record(),
                renewal_time: Some(ts("2026-11-25T08:00:00Z")),
                windows: None,
                move_from: None,
            }
        );
    }

    #[test]
    fn mint_rules_table() {
        // (case, change to the healthy observation, clock, expected mint reason or None)
        type Change = fn(&mut Observed);
        let cases: Vec<(&str, Change, &str, Option<MintReason>)> = vec![
            (
                "no Secret, never issued",
                |o| {
                    o.target = TargetState::Absent;
                    o.status = Default::default();
                },
                NOW,
                Some(MintReason::NoToken),
            ),
            (
                "no Secret, the earlier token was written to another target name",
                |o| {
                    o.target = TargetState::Absent;
                    o.status.secret_name = Some("old-target".into());
                },
                NOW,
                Some(MintReason::NoToken),
            ),
            (
                "Secret ours holding no token, none ever recorded",
                |o| {
                    o.target = TargetState::Ours {
                        token: None,
                        drifted: false,
                    };
                    o.status.token_fingerprint = None;
                },
                NOW,
                Some(MintReason::NoToken),
            ),
            (
                "renewal one second before renewal time: keep",
                |_| {},
                "2026-11-25T07:59:59Z",
                None,
            ),
            (
                "renewal exactly at renewal time",
                |_| {},
                "2026-11-25T08:00:00Z",
                Some(MintReason::RenewalDue),
            ),
            (
                "expired exactly at validTill",
                |_| {},
                "2026-11-25T12:00:00Z",
                Some(MintReason::Expired),
            ),
            (
                "explicit renewBefore 1h: one second before 11:00 keeps",
                |o| o.spec.as_mut().unwrap().renew_before = Some(SignedDuration::from_hours(1)),
                "2026-11-25T10:59:59Z",
                None,
            ),
            (
                "explicit renewBefore 1h: due at 11:00",
                |o| o.spec.as_mut().unwrap().renew_before = Some(SignedDuration::from_hours(1)),
                "2026-11-25T11:00:00Z",
                Some(MintReason::RenewalDue),
            ),
            (
                "never-expiring token is never renewed",
                |o| {
                    if let TargetState::Ours { token: Some(r), .. } = &mut o.target {
                        r.valid_till = None;
                    }
                },
                "2036-01-01T00:00:00Z",
                None,
            ),
            (
                "client secret changed",
                |o| {
                    o.client_secret = ClientSecretState::Present {
                        fingerprint: "bbbbbbbbbbbb".into(),
                    }
                },
                NOW,
                Some(MintReason::ClientSecretChanged),
            ),
            (
                "environment/region/baseUrl/workspace changed",
                |o| o.spec.as_mut().unwrap().config_hash = "dddddddddddd".into(),
                NOW,
                Some(MintReason::ConfigChanged),
            ),
            (
                "new regenerate value",
                |o| o.regenerate_request = Some("r1".into()),
                NOW,
                Some(MintReason::RegenerateRequested { value: "r1".into() }),
            ),
            (
                "regenerate value recorded on the Secret: honoured once",
                |o| {
                    o.regenerate_request = Some("r1".into());
                    if let TargetState::Ours { token: Some(r), .. } = &mut o.target {
                        r.regenerate = Some("r1".into());
                    }
                },
                NOW,
                None,
            ),
            (
                "regenerate value recorded in status: honoured once",
                |o| {
                    o.regenerate_request = Some("r1".into());
                    o.status.last_regenerate_request = Some("r1".into());
                },
                NOW,
                None,
            ),
            (
                "regenerate annotation removed: nothing to do",
                |o| {
                    o.status.last_regenerate_request = Some("r1".into());
                },
                NOW,
                None,
            ),
            (
                "target Secret deleted after a token was issued into it",
                |o| o.target = TargetState::Absent,
                NOW,
                Some(MintReason::SecretDeleted),
            ),
            (
                "target Secret no longer holds the token (accessToken removed or replaced)",
                |o| {
                    o.target = TargetState::Ours {
                        token: None,
                        drifted: false,
                    }
                },
                NOW,
                Some(MintReason::TokenRemoved),
            ),
            (
                "a token status does not name (written back by a restore) is replaced",
                |o| o.target = TargetState::Unknown,
                NOW,
                Some(MintReason::TokenReplaced),
            ),
            (
                "a foreign token with no token in status is a first mint",
                |o| {
                    o.target = TargetState::Unknown;
                    o.status.token_fingerprint = None;
                },
                NOW,
                Some(MintReason::NoToken),
            ),
            (
                "a regenerate value honoured before (a GitOps revert) is not a new request",
                |o| {
                    o.regenerate_request = Some("v1".into());
                    o.status.last_regenerate_request = Some("v2".into());
                    o.status.regenerate_history = vec!["v1".into(), "v2".into()];
                },
                NOW,
                None,
            ),
            (
                "an interrupted call presumes the stored token revoked",
                |o| o.status.mint_started_at = time("2026-11-25T05:59:00Z"),
                NOW,
                Some(MintReason::Interrupted),
            ),
            (
                "a call whose token reached the Secret only lost its status update",
                |o| {
                    o.status.mint_started_at = time("2026-11-25T00:00:00Z");
                    o.status.token_fingerprint = Some("oldoldoldold".into());
                },
                NOW,
                None,
            ),
            (
                "metadata drift alone re-applies without minting",
                |o| {
                    o.target = TargetState::Ours {
                        token: Some(record()),
                        drifted: true,
                    }
                },
                NOW,
                None,
            ),
        ];
        for (case, change, now, expected) in cases {
            let mut obs = healthy();
            change(&mut obs);
            let decision = run_at(&obs, now);
            assert_eq!(
                mint_reason_of(&decision),
                expected,
                "case: {case}: {decision:?}"
            );
            if expected.is_none() {
                assert!(
                    matches!(decision, Decision::Keep { .. }),
                    "case: {case}: {decision:?}"
                );
            }
        }
    }

    #[test]
    fn a_base_url_off_the_allow_list_waits_with_its_own_reason_and_an_unusable_token() {
        // A healthy token in the Secret and a renewal due: still nothing is called.
        let mut obs = healthy();
        obs.client_secret = ClientSecretState::Withheld {
            detail: "not allowed".into(),
        };
        obs.target = TargetState::Foreign { detail: "x".into() };
        for now in [NOW, "2026-11-25T09:00:00Z"] {
            let decision = decide(&obs, ts(now), &Policy::default());
            let Decision::Wait {
                blocker, health, ..
            } = decision
            else {
                panic!("{now}: {decision:?}");
            };
            assert_eq!(
                blocker,
                Blocker::BaseUrlNotAllowed {
                    detail: "not allowed".into()
                }
            );
            assert!(!health.is_usable());
        }
    }

    #[test]
    fn drifted_metadata_is_refreshed_and_kept() {
        let mut obs = healthy();
        obs.target = TargetState::Ours {
            token: Some(record()),
            drifted: true,
        };
        assert!(matches!(
            run(&obs),
            Decision::Keep {
                refresh_secret: true,
                ..
            }
        ));
    }

    #[test]
    fn guards_table_in_order() {
        type Change = fn(&mut Observed);
        let renewal_due = "2026-11-25T09:00:00Z";
        let cases: Vec<(&str, Change, &str, Blocker)> = vec![
            (
                "invalid spec wins over every other guard",
                |o| {
                    o.spec = Err("plain http".into());
                    o.client_secret = ClientSecretState::Missing {
                        detail: "gone".into(),
                    };
                    o.target = TargetState::Foreign { detail: "x".into() };
                },
                NOW,
                Blocker::InvalidSpec {
                    detail: "plain http".into(),
                },
            ),
            (
                "client secret missing comes before a target conflict",
                |o| {
                    o.client_secret = ClientSecretState::Missing {
                        detail: "gone".into(),
                    };
                    o.target = TargetState::Foreign { detail: "x".into() };
                },
                NOW,
                Blocker::ClientSecretMissing {
                    detail: "gone".into(),
                },
            ),
            (
                "target conflict comes before a client conflict",
                |o| {
                    o.target = TargetState::Foreign { detail: "x".into() };
                    o.conflict_with = Some("ns/older".into());
                },
                NOW,
                Blocker::TargetConflict { detail: "x".into() },
            ),
            (
                "older resource with the same client secret",
                |o| {
                    o.target = TargetState::Absent;
                    o.status = Default::default();
                    o.conflict_with = Some("ns/older".into());
                },
                NOW,
                Blocker::Conflict {
                    with: "ns/older".into(),
                },
            ),
            (
                "transient backoff: one second before nextRetryTime waits",
                |o| {
                    o.status.last_failure_reason = Some("ClearUnavailable".into());
                    o.status.next_retry_time = time("2026-11-25T09:00:30Z");
                },
                "2026-11-25T09:00:29Z",
                Blocker::Backoff {
                    reason: Reason::ClearUnavailable,
                    until: ts("2026-11-25T09:00:30Z"),
                },
            ),
            (
                "rate limited: waits for next midnight even with budget left",
                |o| {
                    o.status.last_failure_reason = Some("RateLimited".into());
                    o.status.next_retry_time = time("2026-11-26T00:00:00Z");
                },
                "2026-11-25T23:59:59Z",
                Blocker::Backoff {
                    reason: Reason::RateLimited,
                    until: ts("2026-11-26T00:00:00Z"),
                },
            ),
            (
                "rejected client secret: no retry with the same secret",
                |o| {
                    o.status.last_failure_reason = Some("ClientSecretRejected".into());
                },
                "2026-11-26T09:00:00Z",
                Blocker::Rejected,
            ),
            (
                "budget exhausted today",
                |o| o.status.mints_today = 250,
                renewal_due,
                Blocker::BudgetExhausted {
                    until: ts("2026-11-26T00:00:00Z"),
                },
            ),
        ];
        for (case, change, now, expected) in cases {
            let mut obs = healthy();
            change(&mut obs);
            let decision = run_at(&obs, now);
            assert_eq!(
                blocker_of(&decision),
                Some(expected),
                "case: {case}: {decision:?}"
            );
        }
    }

    #[test]
    fn guards_release_at_their_boundaries() {
        type Change = fn(&mut Observed);
        let cases: Vec<(&str, Change, &str, MintReason)> = vec![
            (
                "transient backoff over exactly at nextRetryTime",
                |o| {
                    o.status.last_failure_reason = Some("ClearUnavailable".into());
                    o.status.next_retry_time = time("2026-11-25T09:00:30Z");
                },
                "2026-11-25T09:00:30Z",
                MintReason::RenewalDue,
            ),
            (
                "rate limit over at 00:00 UTC",
                |o| {
                    o.status.last_failure_reason = Some("RateLimited".into());
                    o.status.next_retry_time = time("2026-11-26T00:00:00Z");
                    o.status.mints_today = 250;
                },
                "2026-11-26T00:00:00Z",
                MintReason::Expired,
            ),
            (
                "a new client secret lifts a rejection",
                |o| {
                    o.status.last_failure_reason = Some("ClientSecretRejected".into());
                    o.client_secret = ClientSecretState::Present {
                        fingerprint: "bbbbbbbbbbbb".into(),
                    };
                },
                NOW,
                MintReason::ClientSecretChanged,
            ),
            (
                "a new client secret lifts a rate limit of the old one",
                |o| {
                    o.status.last_failure_reason = Some("RateLimited".into());
                    o.status.next_retry_time = time("2026-11-26T00:00:00Z");
                    o.client_secret = ClientSecretState::Present {
                        fingerprint: "bbbbbbbbbbbb".into(),
                    };
                },
                NOW,
                MintReason::ClientSecretChanged,
            ),
            (
                "budget one below the limit still mints",
                |o| o.status.mints_today = 249,
                "2026-11-25T09:00:00Z",
                MintReason::RenewalDue,
            ),
            (
                "budget counted on an earlier UTC day rolls over",
                |o| {
                    o.status.mints_today = 250;
                    o.status.mint_day = Some("2026-11-25".into());
                },
                "2026-11-26T00:00:00Z",
                MintReason::Expired,
            ),
        ];
        for (case, change, now, expected) in cases {
            let mut obs = healthy();
            change(&mut obs);
            let decision = run_at(&obs, now);
            assert_eq!(
                mint_reason_of(&decision),
                Some(expected),
                "case: {case}: {decision:?}"
            );
        }
    }

    #[test]
    fn guards_do_not_matter_when_no_mint_is_needed() {
        let mut obs = healthy();
        obs.status.mints_today = 250;
        obs.status.last_failure_reason = Some("ClearUnavailable".into());
        obs.status.next_retry_time = time("2026-11-25T23:00:00Z");
        assert!(matches!(run(&obs), Decision::Keep { .. }));
    }

    #[test]
    fn budget_exhausted_keeps_a_still_valid_token_usable() {
        let mut obs = healthy();
        obs.status.mints_today = 250;
        let decision = run_at(&obs, "2026-11-25T09:00:00Z");
        let Decision::Wait {
            health,
            retry_at,
            pending,
            ..
        } = decision
        else {
            panic!("expected a wait, got {decision:?}")
        };
        assert!(health.is_usable());
        assert_eq!(retry_at, Some(ts("2026-11-26T00:00:00Z")));
        assert_eq!(pending, Some(MintReason::RenewalDue));
    }

    #[test]
    fn clear_answering_again_lifts_the_backoff_of_failures_that_said_it_was_down() {
        // now is 06:00; a renewal is wanted, and a 503 at 05:50 asked to wait till 06:50.
        let mut obs = healthy();
        obs.regenerate_request = Some("r9".into());
        obs.status.last_failure_reason = Some("ClearUnavailable".into());
        obs.status.last_failure_time = time("2026-11-25T05:50:00Z");
        obs.status.next_retry_time = time("2026-11-25T06:50:00Z");
        obs.status.failed_attempts = 7;
        assert!(matches!(
            blocker_of(&run(&obs)),
            Some(Blocker::Backoff { .. })
        ));
        // Clear answered (another resource's trial) at 05:55: the backoff was about an
        // outage that is over.
        obs.clear_recovered_at = Some(ts("2026-11-25T05:55:00Z"));
        assert!(mint_reason_of(&run(&obs)).is_some());
        // ...but not a recovery before the failure, nor for a failure of another kind.
        obs.clear_recovered_at = Some(ts("2026-11-25T05:49:59Z"));
        assert!(blocker_of(&run(&obs)).is_some());
        obs.clear_recovered_at = Some(ts("2026-11-25T05:55:00Z"));
        obs.status.last_failure_reason = Some("SecretApplyFailed".into());
        assert!(blocker_of(&run(&obs)).is_some());
    }

    #[test]
    fn rejected_client_secret_is_rechecked_after_ten_minutes() {
        let mut obs = healthy();
        obs.status.last_failure_reason = Some("ClientSecretRejected".into());
        obs.regenerate_request = Some("r9".into());
        let Decision::Wait { retry_at, .. } = run(&obs) else {
            panic!()
        };
        assert_eq!(retry_at, Some(ts("2026-11-25T06:10:00Z")));
    }

    #[test]
    fn interrupted_call_makes_the_token_unusable_and_mints_when_allowed() {
        let mut obs = healthy();
        obs.status.mint_started_at = time("2026-11-25T05:00:00Z");
        let decision = run(&obs);
        assert_eq!(
            decision,
            Decision::Mint {
                reason: MintReason::Interrupted,
                health: TokenHealth::Unusable {
                    why: "a call to Clear may have revoked the stored token"
                },
            }
        );
    }

    #[test]
    fn a_call_that_may_still_be_in_flight_elsewhere_is_waited_out_then_replaced_once() {
        let mut obs = healthy();
        // Default grace: 30 s after mintStartedAt.
        obs.status.mint_started_at = time("2026-11-25T05:59:40Z");
        let until = ts("2026-11-25T06:00:10Z");
        let waiting = run(&obs);
        assert_eq!(
            waiting,
            Decision::Wait {
                blocker: Blocker::CallInFlight { until },
                health: TokenHealth::Unusable {
                    why: "a call to Clear may have revoked the stored token"
                },
                retry_at: Some(until),
                pending: Some(MintReason::Interrupted),
            }
        );
        assert_eq!(
            blocker_of(&run_at(&obs, "2026-11-25T06:00:09Z")),
            Some(Blocker::CallInFlight { until }),
            "one second before the deadline it still waits"
        );
        assert_eq!(
            mint_reason_of(&run_at(&obs, "2026-11-25T06:00:10Z")),
            Some(MintReason::Interrupted),
            "at the deadline the token is replaced"
        );
        let longer = Policy {
            in_flight_grace: SignedDuration::from_secs(120),
            ..Policy::default()
        };
        assert!(matches!(
            decide(&obs, ts("2026-11-25T06:00:10Z"), &longer),
            Decision::Wait {
                blocker: Blocker::CallInFlight { .. },
                ..
            }
        ));
    }

    #[test]
    fn a_recent_call_whose_failure_was_recorded_is_not_in_flight() {
        let mut obs = healthy();
        obs.status.mint_started_at = time("2026-11-25T05:59:40Z");
        obs.status.last_failure_time = time("2026-11-25T05:59:45Z");
        obs.status.last_failure_reason = Some(Reason::ClearUnavailable.to_string());
        obs.status.next_retry_time = time("2026-11-25T05:59:50Z");
        assert_eq!(mint_reason_of(&run(&obs)), Some(MintReason::Interrupted));
    }

    #[test]
    fn a_token_status_does_not_name_is_never_usable() {
        let mut obs = healthy();
        obs.target = TargetState::Unknown;
        let Decision::Mint { health, .. } = run(&obs) else {
            panic!("replaced at once");
        };
        assert!(!health.is_usable());
        // While a guard holds the replacement back, the resource is not Ready on it either.
        obs.status.last_failure_reason = Some(Reason::ClearUnavailable.to_string());
        obs.status.next_retry_time = time("2026-11-25T06:05:00Z");
        let Decision::Wait { health, .. } = run(&obs) else {
            panic!("waits for the backoff");
        };
        assert!(!health.is_usable());
    }

    #[test]
    fn a_lost_call_is_told_apart_by_token_even_within_the_same_second() {
        let mut obs = healthy();
        // The stored token was issued at 00:00:00 and the next call started that second.
        obs.status.mint_started_at = time("2026-11-25T00:00:00Z");
        assert!(matches!(
            run_at(&obs, "2026-11-25T00:10:00Z"),
            Decision::Mint {
                reason: MintReason::Interrupted,
                ..
            }
        ));
    }

    #[test]
    fn a_recent_call_whose_token_reached_the_secret_is_not_waited_for() {
        let mut obs = healthy();
        obs.status.mint_started_at = time("2026-11-25T00:00:00Z");
        obs.status.token_fingerprint = Some("oldoldoldold".into());
        assert!(matches!(
            run_at(&obs, "2026-11-25T00:00:05Z"),
            Decision::Keep { .. }
        ));
    }

    #[test]
    fn a_rejection_is_lifted_by_a_new_configuration_but_not_by_an_equivalent_one() {
        let mut obs = healthy();
        obs.target = TargetState::Absent;
        obs.status.token_fingerprint = None;
        obs.status.last_failure_reason = Some(Reason::ClientSecretRejected.to_string());
        obs.status.config_hash = Some("oldconfighash".into());
        assert_eq!(
            mint_reason_of(&run(&obs)),
            Some(MintReason::NoToken),
            "config changed"
        );
        obs.status.config_hash = Some(HASH.into());
        assert_eq!(
            blocker_of(&run(&obs)),
            Some(Blocker::Rejected),
            "same config"
        );
        obs.status.config_hash = Some("equivalenthash".into());
        obs.spec.as_mut().unwrap().equivalent_config_hashes = vec!["equivalenthash".into()];
        assert_eq!(
            blocker_of(&run(&obs)),
            Some(Blocker::Rejected),
            "same meaning"
        );
    }

    #[test]
    fn a_renamed_target_moves_the_live_token_without_a_call() {
        let mut obs = healthy();
        obs.target_name = "billing-v2".into();
        obs.target = TargetState::Absent;
        obs.previous_target = Some(PreviousTarget {
            name: "billing".into(),
            record: record(),
        });
        assert_eq!(
            run(&obs),
            Decision::Keep {
                refresh_secret: true,
                record: record(),
                renewal_time: Some(ts("2026-11-25T08:00:00Z")),
                windows: None,
                move_from: Some("billing".into()),
            }
        );
        // Due for renewal anyway: one mint, no move.
        assert_eq!(
            mint_reason_of(&run_at(&obs, "2026-11-25T08:00:00Z")),
            Some(MintReason::RenewalDue)
        );
        // Without the previous Secret the token is gone: one mint.
        obs.previous_target = None;
        assert_eq!(mint_reason_of(&run(&obs)), Some(MintReason::NoToken));
    }

    /// The healthy resource with a window from 10:00 to 11:00 UTC: closed at NOW (06:00),
    /// opening after the due time (08:00) and before the last safe moment (11:00).
    fn windowed() -> Observed {
        let mut obs = healthy();
        obs.spec.as_mut().unwrap().renewal_windows = windows::parse(&[RenewalWindow {
            schedule: "0 10 * * *".into(),
            time_zone: None,
            duration: "1h".into(),
        }])
        .unwrap();
        obs
    }

    #[test]
    fn a_due_renewal_waits_for_the_window_and_keeps_the_token_till_then() {
        let obs = windowed();
        for now in [NOW, "2026-11-25T08:00:00Z", "2026-11-25T09:59:59Z"] {
            assert_eq!(
                run_at(&obs, now),
                Decision::Keep {
                    refresh_secret: false,
                    record: record(),
                    renewal_time: Some(ts("2026-11-25T10:00:00Z")),
                    windows: Some(WindowOutcome::Scheduled),
                    move_from: None,
                },
                "at {now}"
            );
        }
        assert_eq!(
            mint_reason_of(&run_at(&obs, "2026-11-25T10:00:00Z")),
            Some(MintReason::RenewalDue),
            "the window opened"
        );
    }

    #[test]
    fn without_a_fitting_window_the_renewal_is_at_the_last_safe_moment_and_reported() {
        let mut obs = healthy();
        obs.spec.as_mut().unwrap().renewal_windows = windows::parse(&[RenewalWindow {
            schedule: "0 3 15 6 *".into(),
            time_zone: Some("Europe/Berlin".into()),
            duration: "1h".into(),
        }])
        .unwrap();
        let Decision::Keep {
            renewal_time,
            windows: Some(WindowOutcome::NoWindowFits { why }),
            ..
        } = run_at(&obs, "2026-11-25T09:00:00Z")
        else {
            panic!("expected a kept token with no window fitting");
        };
        assert_eq!(renewal_time, Some(ts("2026-11-25T11:00:00Z")));
        assert!(why.contains("no renewal window opens"), "{why}");
        assert_eq!(
            mint_reason_of(&run_at(&obs, "2026-11-25T11:00:00Z")),
            Some(MintReason::RenewalDue)
        );
    }

    #[test]
    fn windows_never_delay_anything_but_a_due_renewal() {
        // Each case happens while the window is closed (NOW, 06:00; it opens at 10:00).
        type Change = fn(&mut Observed);
        let cases: Vec<(&str, Change, &str, MintReason)> = vec![
            (
                "regenerate request",
                |o| o.regenerate_request = Some("r1".into()),
                NOW,
                MintReason::RegenerateRequested { value: "r1".into() },
            ),
            (
                "client secret changed",
                |o| {
                    o.client_secret = ClientSecretState::Present {
                        fingerprint: "bbbbbbbbbbbb".into(),
                    }
                },
                NOW,
                MintReason::ClientSecretChanged,
            ),
            (
                "configuration changed (config hash, resolved base URL)",
                |o| o.spec.as_mut().unwrap().config_hash = "dddddddddddd".into(),
                NOW,
                MintReason::ConfigChanged,
            ),
            (
                "target Secret deleted",
                |o| o.target = TargetState::Absent,
                NOW,
                MintReason::SecretDeleted,
            ),
            (
                "the token's annotations were removed from our Secret",
                |o| {
                    o.target = TargetState::Ours {
                        token: None,
                        drifted: false,
                    }
                },
                NOW,
                MintReason::TokenRemoved,
            ),
            (
                "no token yet",
                |o| {
                    o.target = TargetState::Absent;
                    o.status = Default::default();
                },
                NOW,
                MintReason::NoToken,
            ),
            (
                "a lost call presumed to have revoked the token",
                |o| o.status.mint_started_at = time("2026-11-25T05:00:00Z"),
                NOW,
                MintReason::Interrupted,
            ),
            (
                "expired token (a window at 13:00 is closed at 12:30 too)",
                |o| {
                    o.spec.as_mut().unwrap().renewal_windows = windows::parse(&[RenewalWindow {
                        schedule: "0 13 * * *".into(),
                        time_zone: None,
                        duration: "1h".into(),
                    }])
                    .unwrap();
                },
                "2026-11-25T12:30:00Z",
                MintReason::Expired,
            ),
        ];
        for (case, change, now, expected) in cases {
            let mut obs = windowed();
            change(&mut obs);
            assert_eq!(
                mint_reason_of(&run_at(&obs, now)),
                Some(expected),
                "case: {case}"
            );
        }
    }

    #[test]
    fn same_observation_always_gives_the_same_decision() {
        let obs = healthy();
        let first = run(&obs);
        for _ in 0..10 {
            assert_eq!(run(&obs), first);
        }
    }
}
