//! The resource's status: the `Ready` condition built from named reasons, the status each
//! step leaves behind (pure functions of the previous status), and the server-side apply
//! that writes it to the status subresource.

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{
    Api,
    api::{Patch, PatchParams},
};

use crate::kube_client::FIELD_MANAGER;

use super::{
    decide::{Blocker, MintReason, TokenHealth, WindowOutcome},
    schedule,
    secret::TokenRecord,
};
use crate::{
    reason::Reason,
    resource::{ClearApiClient, ClearApiClientStatus},
};

pub mod condition_types {
    /// Whether the Secret holds a token consumers can use right now.
    pub const READY: &str = "Ready";
    /// Whether the planned renewal honours `spec.renewalWindows`; present only while the spec
    /// has windows and the token expires.
    pub const RENEWAL_WINDOWS: &str = "RenewalWindows";
}

/// Sets the `Ready` condition.
pub fn set_ready(
    status: &mut ClearApiClientStatus,
    ready: bool,
    reason: Reason,
    message: String,
    generation: Option<i64>,
    now: Timestamp,
) {
    let update = ConditionUpdate {
        type_: condition_types::READY,
        value: ready,
        reason,
        message,
    };
    set_condition(status, update, generation, now);
}

/// A condition to set: its type, status, reason and message.
pub struct ConditionUpdate<'a> {
    pub type_: &'a str,
    pub value: bool,
    pub reason: Reason,
    pub message: String,
}

/// Sets a condition. `lastTransitionTime` only moves when the condition's status flips:
/// rewriting it on every reconcile would change the object each time and trigger the
/// controller in a loop.
pub fn set_condition(
    status: &mut ClearApiClientStatus,
    update: ConditionUpdate<'_>,
    generation: Option<i64>,
    now: Timestamp,
) {
    let value = if update.value { "True" } else { "False" };
    let last_transition_time = match condition(status, update.type_) {
        Some(c) if c.status == value => c.last_transition_time.clone(),
        _ => Time(now),
    };
    let condition = Condition {
        type_: update.type_.to_string(),
        status: value.to_string(),
        reason: update.reason.to_string(),
        message: update.message,
        observed_generation: generation,
        last_transition_time,
    };
    status.conditions.retain(|c| c.type_ != update.type_);
    status.conditions.push(condition);
}

/// The condition of this type, if any.
pub fn condition<'a>(status: &'a ClearApiClientStatus, type_: &str) -> Option<&'a Condition> {
    status.conditions.iter().find(|c| c.type_ == type_)
}

pub use super::view::{call_secret, ready_condition};

/// Sets the `RenewalWindows` condition from how the planned renewal honours the windows, or
/// removes it when there are none (or the token never expires, so nothing is planned).
pub fn set_renewal_windows(
    status: &mut ClearApiClientStatus,
    outcome: Option<&WindowOutcome>,
    renewal: Option<Timestamp>,
    generation: Option<i64>,
    now: Timestamp,
) {
    let (value, reason, message) = match (outcome, renewal) {
        (Some(WindowOutcome::Scheduled), Some(at)) => (
            true,
            Reason::Scheduled,
            format!("the token will be renewed at {at}, inside a renewal window"),
        ),
        (Some(WindowOutcome::NoWindowFits { why }), _) => {
            (false, Reason::NoWindowFits, why.clone())
        }
        _ => {
            status
                .conditions
                .retain(|c| c.type_ != condition_types::RENEWAL_WINDOWS);
            return;
        }
    };
    let update = ConditionUpdate {
        type_: condition_types::RENEWAL_WINDOWS,
        value,
        reason,
        message,
    };
    set_condition(status, update, generation, now);
}

/// Whether the `RenewalWindows` condition turned False from `prev` to `next`: the moment to
/// warn the owner, once, not on every reconcile while it stays False.
pub fn renewal_windows_turned_false(
    prev: &ClearApiClientStatus,
    next: &ClearApiClientStatus,
) -> bool {
    let is_false =
        |s| condition(s, condition_types::RENEWAL_WINDOWS).is_some_and(|c| c.status == "False");
    is_false(next) && !is_false(prev)
}

fn describe_validity(valid_till: Option<Timestamp>, renewal: Option<Timestamp>) -> String {
    match (valid_till, renewal) {
        (Some(till), Some(renew)) => format!("the token is valid until {till}; renewal at {renew}"),
        (Some(till), None) => format!("the token is valid until {till}"),
        (None, _) => "the token never expires".to_string(),
    }
}

fn clear_failures(status: &mut ClearApiClientStatus) {
    status.failed_attempts = 0;
    status.last_failure_time = None;
    status.last_failure_reason = None;
    status.next_retry_time = None;
}

fn record_token(
    status: &mut ClearApiClientStatus,
    record: &TokenRecord,
    renewal: Option<Timestamp>,
    secret_name: &str,
) {
    status.secret_name = Some(secret_name.to_string());
    status.issued_at = Some(Time(record.issued_at));
    status.valid_till = record.valid_till.map(Time);
    status.renewal_time = renewal.map(Time);
    status.token_fingerprint = Some(record.token_fingerprint.clone());
    status.client_secret_fingerprint = Some(record.client_secret_fingerprint.clone());
    status.token_config_hash = Some(record.config_hash.clone());
    if let Some(value) = &record.regenerate {
        status.last_regenerate_request = Some(value.clone());
        remember_regenerate(status, value);
    }
}

/// How many honoured regenerate values status remembers.
pub const REGENERATE_HISTORY: usize = 16;

/// Adds `value` to the honoured regenerate values (newest last, oldest dropped).
fn remember_regenerate(status: &mut ClearApiClientStatus, value: &str) {
    status.regenerate_history.retain(|v| v != value);
    status.regenerate_history.push(value.to_string());
    let excess = status
        .regenerate_history
        .len()
        .saturating_sub(REGENERATE_HISTORY);
    status.regenerate_history.drain(..excess);
}

/// Status when the stored token is kept: Ready, describing it; failure bookkeeping cleared
/// since nothing is waiting to be retried.
pub fn kept(
    prev: &ClearApiClientStatus,
    record: &TokenRecord,
    renewal: Option<Timestamp>,
    secret_name: &str,
    generation: Option<i64>,
    now: Timestamp,
) -> ClearApiClientStatus {
    let mut status = prev.clone();
    record_token(&mut status, record, renewal, secret_name);
    clear_failures(&mut status);
    // NB: keeping a token means no call is in flight; a mark left by a call whose token did
    // reach the Secret is cleared here.
    status.mint_started_at = None;
    status.call_id = None;
    status.observed_generation = generation;
    let served = Readiness::Served {
        valid_till: record.valid_till,
        renewal,
        expiry_assumed: status.expiry_assumed.as_deref(),
        adopted_from: status.adopted_from.as_deref(),
    };
    let (ready, reason, message) = served.derive();
    set_ready(&mut status, ready, reason, message, generation, now);
    status
}

/// What the Ready condition is derived from: the stored token's health (as `decide` judged
/// it) and the cause the reconcile acted on. [`Readiness::derive`] is the one place that
/// turns them into the condition, so a token that expired is `TokenExpired` whatever
/// stood in the way, and a usable one is Ready whatever is retried.
pub enum Readiness<'a> {
    /// The stored token is served (kept, minted, or adopted).
    Served {
        valid_till: Option<Timestamp>,
        renewal: Option<Timestamp>,
        expiry_assumed: Option<&'a str>,
        adopted_from: Option<&'a str>,
    },
    /// A guard holds: `reason` and `what` describe it.
    Waiting {
        reason: Reason,
        what: String,
        health: &'a TokenHealth,
    },
    /// A call failed; `may_have_minted`: the stored token may be revoked by it.
    Failed {
        reason: Reason,
        message: &'a str,
        may_have_minted: bool,
        health: &'a TokenHealth,
    },
    /// A call minted a token (revoking the stored one) whose Secret write failed: it is
    /// kept and written again, never minted again.
    Unwritten {
        token_fingerprint: &'a str,
        detail: &'a str,
    },
    /// The token was revoked on delete.
    Revoked,
}

impl Readiness<'_> {
    /// `(Ready, reason, message)`.
    pub fn derive(self) -> (bool, Reason, String) {
        match self {
            Self::Served {
                valid_till,
                renewal,
                expiry_assumed,
                adopted_from,
            } => {
                let validity = describe_validity(valid_till, renewal);
                match (expiry_assumed, adopted_from) {
                    (Some(why), _) => (
                        true,
                        Reason::ExpiryAssumed,
                        format!("{}; {validity}", describe_assumed_expiry(why, valid_till)),
                    ),
                    (None, Some(from)) => (
                        true,
                        Reason::Adopted,
                        format!(
                            "the token in use was adopted from Secret {from} (not minted here; issuedAt is when it was adopted); {validity}"
                        ),
                    ),
                    (None, None) => (true, Reason::Issued, validity),
                }
            }
            Self::Waiting {
                reason,
                what,
                health,
            } => match health {
                TokenHealth::Usable { valid_till } => (
                    true,
                    reason,
                    format!("{what}; {}", describe_validity(*valid_till, None)),
                ),
                TokenHealth::Expired { at } => (
                    false,
                    Reason::TokenExpired,
                    describe_expired(*at, reason, &what),
                ),
                TokenHealth::Unusable { why } => (false, reason, format!("{what}; {why}")),
            },
            Self::Failed {
                reason,
                message,
                may_have_minted,
                health,
            } => match (may_have_minted, health) {
                (false, TokenHealth::Usable { valid_till }) => (
                    true,
                    reason,
                    format!(
                        "{message}; {} and stays in place",
                        describe_validity(*valid_till, None)
                    ),
                ),
                (_, TokenHealth::Expired { at }) => (
                    false,
                    Reason::TokenExpired,
                    describe_expired(*at, reason, message),
                ),
                (_, TokenHealth::Unusable { why }) => (false, reason, format!("{message}; {why}")),
                (true, TokenHealth::Usable { .. }) => (
                    false,
                    reason,
                    format!("{message}; the stored token may have been revoked by this call"),
                ),
            },
            Self::Unwritten {
                token_fingerprint,
                detail,
            } => (
                false,
                Reason::SecretApplyFailed,
                format!(
                    "new token {token_fingerprint} was minted but could not be written yet ({detail}); it is kept and written again, not minted again"
                ),
            ),
            Self::Revoked => (
                false,
                Reason::Revoked,
                "the token was revoked on delete".to_string(),
            ),
        }
    }
}

/// Why a token's expiry is assumed, and what was assumed.
pub fn describe_assumed_expiry(why: &str, valid_till: Option<Timestamp>) -> String {
    let till = valid_till.map(|t| t.to_string()).unwrap_or_default();
    format!(
        "Clear minted a token without a readable expiry ({why}); it is kept and assumed to expire at {till} ({} after issue), and renewed before then",
        super::schedule::ASSUMED_LIFETIME
    )
}

/// Status before calling Clear: the call is counted against the UTC day and marked as in
/// flight, so that a crash during the call is neither forgotten by the budget nor mistaken
/// for a token that is still valid.
pub fn before_mint(
    prev: &ClearApiClientStatus,
    fingerprint: &str,
    config_hash: &str,
    call_id: &str,
    now: Timestamp,
) -> ClearApiClientStatus {
    let mut status = prev.clone();
    status.config_hash = Some(config_hash.to_string());
    status.call_id = Some(call_id.to_string());
    let today = schedule::utc_day(now);
    status.mints_today = if status.mint_day.as_deref() == Some(today.as_str()) {
        status.mints_today.saturating_add(1)
    } else {
        1
    };
    status.mint_day = Some(today);
    status.mint_started_at = Some(Time(now));
    // NB: not clientSecretFingerprint: that describes the stored token, which this call
    // has not replaced yet.
    status.call_client_secret_fingerprint = Some(fingerprint.to_string());
    status
}

/// Status once the token was revoked on delete: no token any more, and the mark that keeps
/// a retried finalizer removal from calling Clear again.
pub fn revoked(
    prev: &ClearApiClientStatus,
    generation: Option<i64>,
    now: Timestamp,
) -> ClearApiClientStatus {
    let mut status = prev.clone();
    status.token_fingerprint = None;
    status.mint_started_at = None;
    status.call_id = None;
    let (ready, reason, message) = Readiness::Revoked.derive();
    set_ready(&mut status, ready, reason, message, generation, now);
    status
}

/// Status after a token was minted and written to the Secret.
pub fn minted(
    prev: &ClearApiClientStatus,
    record: &TokenRecord,
    renewal: Option<Timestamp>,
    secret_name: &str,
    generation: Option<i64>,
    now: Timestamp,
) -> ClearApiClientStatus {
    kept(prev, record, renewal, secret_name, generation, now)
}

/// What a failed call to Clear leaves behind.
pub struct MintFailure {
    pub reason: Reason,
    pub message: String,
    /// When the next attempt may be made; `None` waits for the client secret to change.
    pub next_retry: Option<Timestamp>,
    /// Clear may have minted even though the answer was lost: the stored token is presumed
    /// revoked and replaced on the next attempt.
    pub may_have_minted: bool,
}

pub fn mint_failed(
    prev: &ClearApiClientStatus,
    failure: &MintFailure,
    health: &TokenHealth,
    generation: Option<i64>,
    now: Timestamp,
) -> ClearApiClientStatus {
    let mut status = prev.clone();
    status.failed_attempts = status.failed_attempts.saturating_add(1);
    status.last_failure_time = Some(Time(now));
    status.last_failure_reason = Some(failure.reason.to_string());
    status.next_retry_time = failure.next_retry.map(Time);
    if !failure.may_have_minted {
        status.mint_started_at = None;
        status.call_id = None;
    }
    status.observed_generation = generation;
    let (ready, reason, message) = Readiness::Failed {
        reason: failure.reason,
        message: &failure.message,
        may_have_minted: failure.may_have_minted,
        health,
    }
    .derive();
    set_ready(&mut status, ready, reason, message, generation, now);
    status
}

/// Status while a guard keeps the operator from doing what is needed.
pub fn waiting(
    prev: &ClearApiClientStatus,
    blocker: &Blocker,
    health: &TokenHealth,
    pending: Option<&MintReason>,
    generation: Option<i64>,
    now: Timestamp,
) -> ClearApiClientStatus {
    let mut status = prev.clone();
    status.observed_generation = generation;
    let (reason, what) = describe_blocker(blocker, &status);
    let needed = pending
        .map(|r| format!("; a new token is needed ({})", describe_mint_reason(r)))
        .unwrap_or_default();
    let (ready, reason, message) = Readiness::Waiting {
        reason,
        what: format!("{what}{needed}"),
        health,
    }
    .derive();
    set_ready(&mut status, ready, reason, message, generation, now);
    status
}

/// The message of `TokenExpired`: both facts, the expiry and what kept a renewal from
/// happening (its reason, and `why` in words).
fn describe_expired(at: Timestamp, blocked_by: Reason, why: &str) -> String {
    format!("the token expired at {at} and no new token could be had ({blocked_by}): {why}")
}

fn describe_blocker(blocker: &Blocker, status: &ClearApiClientStatus) -> (Reason, String) {
    match blocker {
        Blocker::InvalidSpec { detail } => (
            Reason::InvalidSpec,
            format!("the spec is invalid: {detail}"),
        ),
        Blocker::BaseUrlNotAllowed { detail } => (Reason::BaseUrlNotAllowed, detail.clone()),
        Blocker::ClientSecretMissing { detail } => (Reason::ClientSecretMissing, detail.clone()),
        Blocker::ClientSecretInvalid { detail } => (Reason::ClientSecretInvalid, detail.clone()),
        Blocker::TargetConflict { detail } => (
            Reason::TargetConflict,
            format!("the target Secret exists and is left untouched: {detail}"),
        ),
        Blocker::Conflict { with } => (
            Reason::Conflict,
            format!(
                "{with} already uses this client secret (it holds the token in use, or is older); minting here would revoke its token, so nothing is minted"
            ),
        ),
        Blocker::Backoff { reason, until } => (
            *reason,
            format!(
                "waiting until {until} before calling Clear again (failed attempts: {})",
                status.failed_attempts
            ),
        ),
        Blocker::Suspended { by } => (
            Reason::Suspended,
            match by {
                super::decide::Suspension::Resource => {
                    "spec.suspend is true: no call to Clear is made for this resource (no renewal, no regeneration, no revoke)".to_string()
                }
                super::decide::Suspension::Install => {
                    "the operator runs in standby: no call to Clear is made for any resource (no renewal, no regeneration, no revoke)".to_string()
                }
            },
        ),
        Blocker::Rejected => (
            Reason::ClientSecretRejected,
            "Clear rejected the client secret; nothing is tried until it changes".to_string(),
        ),
        Blocker::CallInFlight { until } => (
            Reason::MintInFlight,
            format!(
                "a call to Clear started at {} may still be in flight; its outcome is awaited until {until} before a new token is minted",
                status
                    .mint_started_at
                    .as_ref()
                    .map(|t| t.0.to_string())
                    .unwrap_or_default()
            ),
        ),
        // NB: no times nor counts in the message: it stays the same while the outage lasts,
        // so a resource looking again writes nothing.
        Blocker::ClearDown { .. } => (
            Reason::ClearUnavailable,
            format!(
                "Clear failed for every resource lately: one trial call goes every {}s, and this resource calls Clear once one succeeds",
                crate::services::circuit::TRIAL_INTERVAL.as_secs()
            ),
        ),
        Blocker::BudgetExhausted { until } => (
            Reason::BudgetExhausted,
            format!("the daily budget of calls to Clear is spent; next attempt at {until}"),
        ),
    }
}

pub fn describe_mint_reason(reason: &MintReason) -> String {
    match reason {
        MintReason::Interrupted => {
            "a previous call to Clear ended without a recorded outcome".into()
        }
        MintReason::NoToken => "no token yet".into(),
        MintReason::SecretDeleted => "the target Secret was deleted".into(),
        MintReason::TokenRemoved => {
            "the target Secret no longer holds the token (its accessToken key was removed)".into()
        }
        MintReason::TokenReplaced => {
            "the target Secret holds a token the operator did not write (restored from a backup, written back by another tool, or edited)".into()
        }
        MintReason::ClientSecretChanged => "the client secret changed".into(),
        MintReason::ConfigChanged => "environment, region or baseUrl changed".into(),
        MintReason::RegenerateRequested { value } => format!("regeneration requested ({value})"),
        MintReason::Expired => "the token expired".into(),
        MintReason::RenewalDue => "the renewal time was reached".into(),
    }
}

/// Writes `status` with server-side apply on the status subresource, unless it already is
/// the object's status (an unchanged write would still wake every watcher). With
/// `resource_version`, the write is conditional: it fails with 409 if the resource changed
/// since (a stale or late write, or the resource was deleted and created again under the
/// same name). Returns the resourceVersion after the write (`None`: nothing was written).
pub async fn apply(
    api: &Api<ClearApiClient>,
    name: &str,
    current: Option<&ClearApiClientStatus>,
    status: &ClearApiClientStatus,
    resource_version: Option<&str>,
) -> Result<Option<String>, kube::Error> {
    // NB: compared as serialized, i.e. as stored: times are kept to the second, so an
    // in-memory status with sub-second times would never equal the stored one and every
    // reconcile would write (and wake itself) again.
    let serialized = |s: &ClearApiClientStatus| serde_json::to_value(s).ok();
    if current.is_some_and(|c| serialized(c) == serialized(status)) {
        return Ok(None);
    }
    let mut patch = serde_json::json!({
        "apiVersion": "clear-operator.io/v1alpha1",
        "kind": "ClearApiClient",
        "status": status,
    });
    if let Some(rv) = resource_version {
        patch["metadata"] = serde_json::json!({ "resourceVersion": rv });
    }
    let written = api
        .patch_status(
            name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&patch),
        )
        .await?;
    Ok(written.metadata.resource_version)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_is_derived_in_one_place_and_an_expired_token_is_never_ready() {
        let at = ts("2026-11-25T12:00:00Z");
        let usable = TokenHealth::Usable {
            valid_till: Some(at),
        };
        let expired = TokenHealth::Expired { at };
        let waiting = |health| {
            Readiness::Waiting {
                reason: Reason::RateLimited,
                what: "the quota".into(),
                health,
            }
            .derive()
        };
        assert!(waiting(&usable).0);
        assert_eq!(waiting(&usable).1, Reason::RateLimited);
        let (ready, reason, message) = waiting(&expired);
        assert_eq!((ready, reason), (false, Reason::TokenExpired));
        assert!(message.contains("(RateLimited)"), "{message}");
        for may_have_minted in [false, true] {
            let failed = |health| {
                Readiness::Failed {
                    reason: Reason::ClearUnavailable,
                    message: "HTTP 500",
                    may_have_minted,
                    health,
                }
                .derive()
            };
            assert_eq!(failed(&expired).1, Reason::TokenExpired);
            assert_eq!(failed(&usable).0, !may_have_minted, "may have revoked it");
        }
        let served = Readiness::Served {
            valid_till: Some(at),
            renewal: None,
            expiry_assumed: Some("valid_till is missing"),
            adopted_from: Some("erp-token"),
        }
        .derive();
        assert_eq!((served.0, served.1), (true, Reason::ExpiryAssumed));
    }
    use crate::reconcile::test_support::ts;

    fn record() -> TokenRecord {
        TokenRecord {
            issued_at: ts("2026-11-25T00:00:00Z"),
            valid_till: Some(ts("2026-11-25T12:00:00Z")),
            client_secret_fingerprint: "aaaaaaaaaaaa".into(),
            config_hash: "cccccccccccc".into(),
            regenerate: Some("r1".into()),
            token_fingerprint: "tttttttttttt".into(),
        }
    }

    fn ready(status: &ClearApiClientStatus) -> &Condition {
        ready_condition(Some(status)).unwrap()
    }

    #[test]
    fn renewal_windows_condition_follows_the_plan_and_warns_only_on_turning_false() {
        let windows = |s: &ClearApiClientStatus| {
            condition(s, condition_types::RENEWAL_WINDOWS)
                .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
        };
        let renewal = Some(ts("2026-11-25T10:00:00Z"));
        let mut scheduled = ClearApiClientStatus::default();
        set_ready(
            &mut scheduled,
            true,
            Reason::Issued,
            "x".into(),
            Some(1),
            ts("2026-11-25T01:00:00Z"),
        );
        let before = scheduled.clone();
        set_renewal_windows(
            &mut scheduled,
            Some(&WindowOutcome::Scheduled),
            renewal,
            Some(1),
            ts("2026-11-25T01:00:00Z"),
        );
        assert_eq!(
            windows(&scheduled),
            Some((
                "True".into(),
                "Scheduled".into(),
                "the token will be renewed at 2026-11-25T10:00:00Z, inside a renewal window".into()
            ))
        );
        assert!(!renewal_windows_turned_false(&before, &scheduled));

        let missed = WindowOutcome::NoWindowFits {
            why: "no renewal window opens".into(),
        };
        let mut missing = scheduled.clone();
        set_renewal_windows(
            &mut missing,
            Some(&missed),
            renewal,
            Some(1),
            ts("2026-11-25T02:00:00Z"),
        );
        assert_eq!(
            windows(&missing),
            Some((
                "False".into(),
                "NoWindowFits".into(),
                "no renewal window opens".into()
            ))
        );
        assert_eq!(ready(&missing).status, "True", "Ready is untouched");
        assert!(renewal_windows_turned_false(&scheduled, &missing));
        assert!(
            renewal_windows_turned_false(&before, &missing),
            "new and False"
        );

        let mut still_missing = missing.clone();
        set_renewal_windows(
            &mut still_missing,
            Some(&missed),
            renewal,
            Some(1),
            ts("2026-11-25T03:00:00Z"),
        );
        assert!(!renewal_windows_turned_false(&missing, &still_missing));
        let transition = |s: &ClearApiClientStatus| {
            condition(s, condition_types::RENEWAL_WINDOWS).map(|c| c.last_transition_time.0)
        };
        assert_eq!(
            transition(&still_missing),
            Some(ts("2026-11-25T02:00:00Z")),
            "lastTransitionTime stays while the status does"
        );

        let mut removed = still_missing.clone();
        set_renewal_windows(
            &mut removed,
            None,
            renewal,
            Some(1),
            ts("2026-11-25T04:00:00Z"),
        );
        assert_eq!(windows(&removed), None, "no windows, no condition");
        assert_eq!(ready(&removed).status, "True");
    }

    #[test]
    fn unchanged_ready_status_keeps_its_last_transition_time() {
        let first = kept(
            &Default::default(),
            &record(),
            None,
            "billing",
            Some(1),
            ts("2026-11-25T01:00:00Z"),
        );
        let second = kept(
            &first,
            &record(),
            None,
            "billing",
            Some(2),
            ts("2026-11-25T02:00:00Z"),
        );
        assert_eq!(
            ready(&second).last_transition_time,
            Time(ts("2026-11-25T01:00:00Z"))
        );
        assert_eq!(ready(&second).observed_generation, Some(2));
        assert_eq!(second.conditions.len(), 1);
    }

    #[test]
    fn flipped_ready_status_moves_its_last_transition_time() {
        let first = kept(
            &Default::default(),
            &record(),
            None,
            "billing",
            Some(1),
            ts("2026-11-25T01:00:00Z"),
        );
        let blocked = waiting(
            &first,
            &Blocker::ClientSecretMissing {
                detail: "Secret x not found".into(),
            },
            &TokenHealth::Unusable {
                why: "no token is stored",
            },
            None,
            Some(1),
            ts("2026-11-25T03:00:00Z"),
        );
        assert_eq!(ready(&blocked).status, "False");
        assert_eq!(ready(&blocked).reason, Reason::ClientSecretMissing.as_str());
        assert_eq!(
            ready(&blocked).last_transition_time,
            Time(ts("2026-11-25T03:00:00Z"))
        );
    }

    #[test]
    fn reason_change_without_status_flip_keeps_the_transition_time() {
        let first = kept(
            &Default::default(),
            &record(),
            None,
            "billing",
            Some(1),
            ts("2026-11-25T01:00:00Z"),
        );
        let budget = waiting(
            &first,
            &Blocker::BudgetExhausted {
                until: ts("2026-11-26T00:00:00Z"),
            },
            &TokenHealth::Usable {
                valid_till: Some(ts("2026-11-25T12:00:00Z")),
            },
            Some(&MintReason::RenewalDue),
            Some(1),
            ts("2026-11-25T09:00:00Z"),
        );
        assert_eq!(ready(&budget).status, "True");
        assert_eq!(ready(&budget).reason, Reason::BudgetExhausted.as_str());
        assert_eq!(
            ready(&budget).last_transition_time,
            Time(ts("2026-11-25T01:00:00Z"))
        );
    }

    #[test]
    fn before_mint_counts_the_call_and_resets_on_a_new_utc_day() {
        let mut prev = ClearApiClientStatus {
            mint_day: Some("2026-11-25".into()),
            mints_today: 7,
            ..Default::default()
        };
        let same_day = before_mint(
            &prev,
            "ffffffffffff",
            "cccccccccccc",
            "c-1",
            ts("2026-11-25T23:59:59Z"),
        );
        assert_eq!(same_day.mints_today, 8);
        assert_eq!(
            same_day.mint_started_at,
            Some(Time(ts("2026-11-25T23:59:59Z")))
        );
        assert_eq!(
            same_day.call_client_secret_fingerprint.as_deref(),
            Some("ffffffffffff")
        );
        assert_eq!(same_day.call_id.as_deref(), Some("c-1"));
        assert_eq!(
            same_day.client_secret_fingerprint, None,
            "the stored token's client secret is not the call's until it answers"
        );
        prev.mints_today = 250;
        let next_day = before_mint(
            &prev,
            "ffffffffffff",
            "cccccccccccc",
            "c-1",
            ts("2026-11-26T00:00:00Z"),
        );
        assert_eq!(next_day.mints_today, 1);
        assert_eq!(next_day.mint_day.as_deref(), Some("2026-11-26"));
    }

    #[test]
    fn success_clears_the_in_flight_mark_and_failure_bookkeeping() {
        let prev = ClearApiClientStatus {
            failed_attempts: 3,
            last_failure_reason: Some("ClearUnavailable".into()),
            next_retry_time: Some(Time(ts("2026-11-25T00:10:00Z"))),
            mint_started_at: Some(Time(ts("2026-11-25T00:00:00Z"))),
            ..Default::default()
        };
        let renewal = Some(ts("2026-11-25T08:00:00Z"));
        let status = minted(
            &prev,
            &record(),
            renewal,
            "billing",
            Some(4),
            ts("2026-11-25T00:00:01Z"),
        );
        assert_eq!(status.mint_started_at, None);
        assert_eq!(status.failed_attempts, 0);
        assert_eq!(status.last_failure_reason, None);
        assert_eq!(status.next_retry_time, None);
        assert_eq!(status.issued_at, Some(Time(ts("2026-11-25T00:00:00Z"))));
        assert_eq!(status.valid_till, Some(Time(ts("2026-11-25T12:00:00Z"))));
        assert_eq!(status.renewal_time, renewal.map(Time));
        assert_eq!(status.token_fingerprint.as_deref(), Some("tttttttttttt"));
        assert_eq!(status.last_regenerate_request.as_deref(), Some("r1"));
        assert_eq!(status.secret_name.as_deref(), Some("billing"));
        assert_eq!(status.observed_generation, Some(4));
        assert_eq!(ready(&status).status, "True");
        assert_eq!(ready(&status).reason, Reason::Issued.as_str());
    }

    #[test]
    fn failure_with_a_valid_old_token_stays_ready_and_schedules_the_retry() {
        let prev = before_mint(
            &Default::default(),
            "aaaaaaaaaaaa",
            "cccccccccccc",
            "c-1",
            ts("2026-11-25T09:00:00Z"),
        );
        let failure = MintFailure {
            reason: Reason::ClearUnavailable,
            message: "failed to mint a Clear access token: Clear answered HTTP 500".into(),
            next_retry: Some(ts("2026-11-25T09:00:30Z")),
            may_have_minted: false,
        };
        let health = TokenHealth::Usable {
            valid_till: Some(ts("2026-11-25T12:00:00Z")),
        };
        let status = mint_failed(
            &prev,
            &failure,
            &health,
            Some(1),
            ts("2026-11-25T09:00:01Z"),
        );
        assert_eq!(status.failed_attempts, 1);
        assert_eq!(status.mint_started_at, None);
        assert_eq!(
            status.next_retry_time,
            Some(Time(ts("2026-11-25T09:00:30Z")))
        );
        assert_eq!(ready(&status).status, "True");
        assert_eq!(ready(&status).reason, Reason::ClearUnavailable.as_str());
        assert_eq!(status.mints_today, 1);
    }

    #[test]
    fn a_lost_answer_keeps_the_in_flight_mark_and_drops_readiness() {
        let prev = before_mint(
            &Default::default(),
            "aaaaaaaaaaaa",
            "cccccccccccc",
            "c-1",
            ts("2026-11-25T09:00:00Z"),
        );
        let failure = MintFailure {
            reason: Reason::ClearUnavailable,
            message: "failed to mint a Clear access token: the request timed out".into(),
            next_retry: Some(ts("2026-11-25T09:00:30Z")),
            may_have_minted: true,
        };
        let health = TokenHealth::Usable {
            valid_till: Some(ts("2026-11-25T12:00:00Z")),
        };
        let status = mint_failed(
            &prev,
            &failure,
            &health,
            Some(1),
            ts("2026-11-25T09:00:01Z"),
        );
        assert!(status.mint_started_at.is_some());
        assert_eq!(ready(&status).status, "False");
    }
}
