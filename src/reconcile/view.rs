//! The typed status view: the wire status (`ClearApiClientStatus`, flat as the API
//! conventions and `kubectl` want it) read once into what it means for a decision: the call
//! in flight, the last failure, the day's budget, the owner and the Ready condition. The
//! decision and the writers read these instead of interpreting raw fields each in its own
//! way.

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;

use crate::{clock::utc_day, reason::Reason, resource::ClearApiClientStatus};

/// The type of the condition that says whether the Secret holds a usable token.
pub const READY: &str = "Ready";

/// A call to Clear marked in status (`mintStartedAt`, `callId`) and not yet recorded as
/// answered: Clear may have minted, and so revoked the stored token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallInFlight {
    pub started_at: Timestamp,
    pub call_id: Option<String>,
    /// Whether a failure was recorded after the call started: then the call ended (its
    /// answer was lost, or may have minted) and only its backoff applies.
    pub ended_in_failure: bool,
}

/// The last failed attempt and the wait it asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LastFailure {
    /// NB: a reason this version does not know (written by another version) reads as
    /// `ClearUnavailable`: transient.
    pub reason: Reason,
    pub at: Option<Timestamp>,
    pub next_retry: Option<Timestamp>,
    pub attempts: i32,
    /// The client secret and configuration the failed call was made with.
    pub client_secret_fingerprint: Option<String>,
    pub config_hash: Option<String>,
}

/// The call marked in flight, if any.
pub fn call_in_flight(status: &ClearApiClientStatus) -> Option<CallInFlight> {
    let started_at = status.mint_started_at.as_ref()?.0;
    Some(CallInFlight {
        started_at,
        call_id: status.call_id.clone(),
        ended_in_failure: status
            .last_failure_time
            .as_ref()
            .is_some_and(|failed| failed.0 >= started_at),
    })
}

/// The last failure, if one is recorded.
pub fn last_failure(status: &ClearApiClientStatus) -> Option<LastFailure> {
    let reason = status
        .last_failure_reason
        .as_deref()
        .map(|r| Reason::parse(r).unwrap_or(Reason::ClearUnavailable))?;
    Some(LastFailure {
        reason,
        at: status.last_failure_time.as_ref().map(|t| t.0),
        next_retry: status.next_retry_time.as_ref().map(|t| t.0),
        attempts: status.failed_attempts,
        client_secret_fingerprint: call_secret(status).map(str::to_string),
        config_hash: status.config_hash.clone(),
    })
}

/// The client secret the last call to Clear was made with (for a status written before
/// `callClientSecretFingerprint`, the one status recorded).
pub fn call_secret(status: &ClearApiClientStatus) -> Option<&str> {
    status
        .call_client_secret_fingerprint
        .as_deref()
        .or(status.client_secret_fingerprint.as_deref())
}

/// Calls made on the current UTC day (a count recorded on an earlier day is stale).
pub fn mints_today(status: &ClearApiClientStatus, now: Timestamp) -> i64 {
    if status.mint_day.as_deref() == Some(utc_day(now).as_str()) {
        i64::from(status.mints_today)
    } else {
        0
    }
}

/// The `Ready` condition, if any.
pub fn ready_condition(status: Option<&ClearApiClientStatus>) -> Option<&Condition> {
    status?.conditions.iter().find(|c| c.type_ == READY)
}

/// Whether the Ready condition says the token was revoked on delete.
pub fn revoked(status: &ClearApiClientStatus) -> bool {
    ready_condition(Some(status)).is_some_and(|c| c.reason == Reason::Revoked.as_str())
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    use super::*;
    use crate::reconcile::test_support::ts;

    #[test]
    fn a_call_in_flight_ends_with_a_failure_recorded_at_or_after_its_start() {
        let mut status = ClearApiClientStatus {
            mint_started_at: Some(Time(ts("2026-11-25T10:00:00Z"))),
            call_id: Some("c1".into()),
            ..Default::default()
        };
        let call = call_in_flight(&status).unwrap();
        assert!(!call.ended_in_failure);
        assert_eq!(call.call_id.as_deref(), Some("c1"));
        status.last_failure_time = Some(Time(ts("2026-11-25T09:59:59Z")));
        assert!(!call_in_flight(&status).unwrap().ended_in_failure, "older");
        status.last_failure_time = Some(Time(ts("2026-11-25T10:00:00Z")));
        assert!(call_in_flight(&status).unwrap().ended_in_failure);
        status.mint_started_at = None;
        assert_eq!(call_in_flight(&status), None);
    }

    #[test]
    fn an_unknown_failure_reason_reads_as_transient() {
        let status = ClearApiClientStatus {
            last_failure_reason: Some("SomethingNew".into()),
            call_client_secret_fingerprint: Some("fp-call".into()),
            client_secret_fingerprint: Some("fp-token".into()),
            ..Default::default()
        };
        let failure = last_failure(&status).unwrap();
        assert_eq!(failure.reason, Reason::ClearUnavailable);
        assert_eq!(
            failure.client_secret_fingerprint.as_deref(),
            Some("fp-call")
        );
    }

    #[test]
    fn the_day_count_is_stale_on_another_utc_day() {
        let status = ClearApiClientStatus {
            mint_day: Some("2026-11-25".into()),
            mints_today: 7,
            ..Default::default()
        };
        assert_eq!(mints_today(&status, ts("2026-11-25T23:59:59Z")), 7);
        assert_eq!(mints_today(&status, ts("2026-11-26T00:00:00Z")), 0);
    }
}
