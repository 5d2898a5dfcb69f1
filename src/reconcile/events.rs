//! Events on the ClearApiClient: Normal ones for each new token (why it was minted), Warning
//! ones for what blocks or fails. Notes are built from fingerprints, times and reasons only.

use jiff::Timestamp;
use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::events::{Event, EventType};

use super::{
    decide::{Blocker, MintReason},
    status::describe_mint_reason,
};
use crate::{metrics::Metrics, reason::Reason};

/// Something worth telling the resource's owner.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Notice {
    Minted {
        reason: MintReason,
        token_fingerprint: String,
        issued_at: Timestamp,
        valid_till: Option<Timestamp>,
    },
    /// No renewal window opens before the last safe moment: the token will be renewed
    /// outside the windows; `why` says when and why.
    RenewalWindowMissed {
        why: String,
    },
    SecretRefreshed,
    MintFailed {
        reason: Reason,
        message: String,
    },
    Blocked {
        reason: Reason,
        message: String,
    },
    Restarted {
        kind: String,
        name: String,
    },
    RestartTargetMissing {
        kind: String,
        name: String,
    },
    /// The API server answered 403: the operator was installed without the right to patch
    /// workloads (the chart grants it only with `rbac.rolloutRestart.enabled=true`).
    RestartForbidden {
        kind: String,
        name: String,
    },
    /// Any other failure of the restart patch, described by `error::sanitize` (status code and
    /// reason only, nothing a response body could carry).
    RestartFailed {
        kind: String,
        name: String,
        error: String,
    },
    /// The token in use was taken over from `spec.adoptFrom`, with no call.
    Adopted {
        from: String,
        token_fingerprint: String,
        valid_till: Option<Timestamp>,
    },
    /// Pods that mount the token Secret could not be nudged (`pods` of them; `first` and
    /// its sanitized `error` named).
    NudgeFailed {
        pods: usize,
        first: String,
        error: String,
    },
    Revoked,
    RevokeSkipped {
        why: String,
    },
    /// Another install manages the resource; this one yields.
    DuplicateOperator {
        other: String,
        me: String,
    },
    /// A reconcile failed on the Kubernetes side (reading, writing); `message` says what.
    ReconcileFailed {
        message: String,
    },
}

impl Notice {
    pub fn to_event(&self) -> Event {
        let (type_, reason, note, action) = match self {
            Self::Minted {
                reason,
                token_fingerprint,
                issued_at,
                valid_till,
            } => {
                let validity = valid_till.map_or("never expires".to_string(), |t| format!("valid until {t}"));
                let mut note = format!(
                    "new token {token_fingerprint} (issued at {issued_at}, {validity}) written: {}",
                    describe_mint_reason(reason)
                );
                if matches!(reason, MintReason::SecretDeleted | MintReason::TokenRemoved) {
                    note.push_str(
                        "; the previous token existed only in that Secret, so a new one was minted (which revoked the old one)",
                    );
                }
                // NB: a Warning: something outside the operator wrote a token into its
                // Secret, and replacing it revoked whatever that token was.
                let type_ = if *reason == MintReason::TokenReplaced {
                    note.push_str(
                        "; the Secret held a token the operator had not written (a restore, another tool or an edit), which may have been revoked, so it was replaced",
                    );
                    EventType::Warning
                } else {
                    EventType::Normal
                };
                (type_, minted_reason(reason), note, "Mint")
            }
            Self::RenewalWindowMissed { why } => (
                EventType::Warning,
                Reason::RenewalWindowMissed,
                why.clone(),
                "Renew",
            ),
            Self::SecretRefreshed => (
                EventType::Normal,
                Reason::SecretRefreshed,
                "the target Secret's labels, annotations or descriptive keys were updated without minting".to_string(),
                "ApplySecret",
            ),
            Self::MintFailed { reason, message } => (EventType::Warning, *reason, message.clone(), "Mint"),
            Self::Blocked { reason, message } => (EventType::Warning, *reason, message.clone(), "Reconcile"),
            Self::Restarted { kind, name } => (
                EventType::Normal,
                Reason::Restarted,
                format!("{kind} {name} restarted to pick up the new token"),
                "RolloutRestart",
            ),
            Self::RestartTargetMissing { kind, name } => (
                EventType::Warning,
                Reason::RestartTargetMissing,
                format!("{kind} {name} listed in rolloutRestartTargets was not found"),
                "RolloutRestart",
            ),
            Self::RestartForbidden { kind, name } => (
                EventType::Warning,
                Reason::RestartForbidden,
                format!(
                    "the operator may not patch {kind} {name} listed in rolloutRestartTargets: \
                     install the chart with rbac.rolloutRestart.enabled=true (or grant patch on \
                     {kind}s to the operator's ServiceAccount)"
                ),
                "RolloutRestart",
            ),
            Self::RestartFailed { kind, name, error } => (
                EventType::Warning,
                Reason::RestartFailed,
                format!("failed to restart {kind} {name} listed in rolloutRestartTargets: {error}"),
                "RolloutRestart",
            ),
            Self::Adopted {
                from,
                token_fingerprint,
                valid_till,
            } => (
                EventType::Normal,
                Reason::Adopted,
                format!(
                    "took over the token in use ({token_fingerprint}) from Secret {from} with no call to Clear; valid till {}; renewed at its normal renewal point",
                    valid_till.map_or_else(|| "never".to_string(), |t| t.to_string())
                ),
                "Adopt",
            ),
            // NB: what a revoke does and does not do, said where the owner looks (issue 23).
            Self::Revoked => (
                EventType::Normal,
                Reason::Revoked,
                "minted one discarded token on delete, revoking the token that was handed out; the discarded token itself stays live at Clear until it expires: delete the API client in the Clear web app to revoke for good".to_string(),
                "Revoke",
            ),
            Self::NudgeFailed { pods, first, error } => (
                EventType::Warning,
                Reason::NudgeFailed,
                format!(
                    "could not nudge {pods} pod(s) that mount the token Secret (first: {first}: {error}); they see the new token at their kubelet's next periodic sync (a minute or more): grant patch on pods (chart nudgePods.enabled=true) or set target.nudgePods=false"
                ),
                "Nudge",
            ),
            Self::RevokeSkipped { why } => (EventType::Warning, Reason::RevokeSkipped, why.clone(), "Revoke"),
            Self::DuplicateOperator { other, me } => (
                EventType::Warning,
                Reason::DuplicateOperator,
                format!(
                    "two clear-operator installs watch this resource: it is managed by {other}, so {me} leaves it alone                      (two minters would revoke each other's tokens); uninstall one, or keep their namespaces apart.                      {me} takes over only once {other} evidently stopped (a renewal overdue by 10 minutes, or no token for an hour)"
                ),
                "Reconcile",
            ),
            Self::ReconcileFailed { message } => (EventType::Warning, Reason::ReconcileFailed, message.clone(), "Reconcile"),
        };
        Event {
            type_,
            reason: reason.to_string(),
            note: Some(truncate(note)),
            action: action.to_string(),
            secondary: None,
        }
    }
}

/// The reason of the Normal Event a new token gets (Issued, Renewed, Regenerated,
/// SecretRecreated); also what the rotation metric counts by.
pub fn minted_reason(reason: &MintReason) -> Reason {
    match reason {
        MintReason::NoToken => Reason::Issued,
        MintReason::RenewalDue | MintReason::Expired => Reason::Renewed,
        MintReason::SecretDeleted | MintReason::TokenRemoved => Reason::SecretRecreated,
        MintReason::TokenReplaced => Reason::TokenReplaced,
        _ => Reason::Regenerated,
    }
}

/// Event notes are limited to 1 kB.
fn truncate(mut note: String) -> String {
    const MAX: usize = 1000;
    if note.len() > MAX {
        let mut cut = MAX;
        while !note.is_char_boundary(cut) {
            cut -= 1;
        }
        note.truncate(cut);
    }
    note
}

/// Publishes a notice and counts it by reason; a failure to publish is logged, never fatal
/// (the status says it too).
pub async fn publish(
    recorders: &crate::services::recorder::Recorders,
    metrics: &Metrics,
    reference: &ObjectReference,
    notice: Notice,
) {
    crate::services::recorder::publish(recorders, metrics, reference, notice.to_event()).await;
}

/// A notice for a guard, with the reason and message of the condition it set.
/// The Warning due when Ready turned to `TokenExpired` from `prev` to `next`: once, at the
/// instant consumers start holding a dead token, whatever stood in the way of a renewal.
pub fn expired(
    prev: Option<&crate::resource::ClearApiClientStatus>,
    next: &crate::resource::ClearApiClientStatus,
) -> Option<Notice> {
    let reason_of = |s| super::status::ready_condition(s).map(|c| c.reason.as_str());
    let now = super::status::ready_condition(Some(next))?;
    (now.reason == Reason::TokenExpired.as_str()
        && reason_of(prev) != Some(Reason::TokenExpired.as_str()))
    .then(|| Notice::Blocked {
        reason: Reason::TokenExpired,
        message: now.message.clone(),
    })
}

pub fn blocked(blocker: &Blocker, reason: Reason, message: String) -> Option<Notice> {
    // NB: a resource waiting out a backoff already got the failure's Warning; repeating it on
    // every requeue would only add noise.
    match blocker {
        // NB: nor a resource held back by the shared circuit: in an outage of Clear that is
        // every resource due, and the condition, the log and the metrics say it.
        Blocker::Backoff { .. } | Blocker::ClearDown { .. } => None,
        _ => Some(Notice::Blocked { reason, message }),
    }
}

#[cfg(test)]
mod tests {
    use kube::runtime::events::Reporter;

    use super::*;
    use crate::reconcile::test_support::ts;
    use crate::services::recorder::Recorders;

    #[test]
    fn mint_reasons_map_to_the_documented_event_reasons() {
        let cases = [
            (MintReason::NoToken, "Issued"),
            (MintReason::RenewalDue, "Renewed"),
            (MintReason::Expired, "Renewed"),
            (MintReason::SecretDeleted, "SecretRecreated"),
            (MintReason::TokenRemoved, "SecretRecreated"),
            (
                MintReason::RegenerateRequested { value: "x".into() },
                "Regenerated",
            ),
            (MintReason::ClientSecretChanged, "Regenerated"),
        ];
        for (reason, expected) in cases {
            let event = Notice::Minted {
                reason,
                token_fingerprint: "tttttttttttt".into(),
                issued_at: ts("2026-11-25T00:00:00Z"),
                valid_till: Some(ts("2026-11-25T12:00:00Z")),
            }
            .to_event();
            assert_eq!(event.reason, expected);
            assert_eq!(event.type_, EventType::Normal);
        }
    }

    #[test]
    fn a_replaced_foreign_token_is_a_warning_that_says_so() {
        let event = Notice::Minted {
            reason: MintReason::TokenReplaced,
            token_fingerprint: "tttttttttttt".into(),
            issued_at: ts("2026-11-25T00:00:00Z"),
            valid_till: None,
        }
        .to_event();
        assert_eq!(event.type_, EventType::Warning);
        assert_eq!(event.reason, "TokenReplaced");
        let note = event.note.unwrap();
        assert!(note.contains("had not written"), "{note}");
    }

    #[test]
    fn secret_recreated_event_explains_the_old_token_is_gone() {
        let event = Notice::Minted {
            reason: MintReason::SecretDeleted,
            token_fingerprint: "tttttttttttt".into(),
            issued_at: ts("2026-11-25T00:00:00Z"),
            valid_till: None,
        }
        .to_event();
        let note = event.note.unwrap();
        assert!(note.contains("existed only in that Secret"), "{note}");
        assert!(note.contains("issued at 2026-11-25T00:00:00Z"), "{note}");
        assert!(note.contains("never expires"), "{note}");
    }

    #[test]
    fn a_missed_renewal_window_is_a_warning_that_says_why() {
        let event = Notice::RenewalWindowMissed {
            why: "no renewal window opens between A and B".into(),
        }
        .to_event();
        assert_eq!(event.type_, EventType::Warning);
        assert_eq!(event.reason, "RenewalWindowMissed");
        assert_eq!(
            event.note.as_deref(),
            Some("no renewal window opens between A and B")
        );
    }

    #[test]
    fn long_notes_are_cut_to_the_event_limit() {
        let event = Notice::Blocked {
            reason: Reason::InvalidSpec,
            message: "é".repeat(800),
        }
        .to_event();
        assert!(event.note.unwrap().len() <= 1000);
        assert_eq!(event.type_, EventType::Warning);
    }

    /// Against the emulator: a Warning that repeats becomes a series on one Event, while each
    /// Normal Event (another new token) is an Event of its own and nothing is kept for it.
    #[tokio::test]
    async fn every_event_is_its_own_and_no_recorder_holds_one_in_memory() {
        use k8s_openapi::api::events::v1::Event as K8sEvent;
        use kube::{Api, api::ListParams};

        let emulator = kube_emulator::Emulator::start(kube_emulator::EmulatorOptions::default())
            .await
            .unwrap();
        let client = emulator.client().await;
        let recorders = Recorders::new(
            client.clone(),
            Reporter {
                controller: "clear-operator".into(),
                instance: Some("test".into()),
            },
        );
        let metrics = Metrics::register(&mut prometheus_client::registry::Registry::default());
        let reference = ObjectReference {
            api_version: Some("clear-operator.io/v1alpha1".into()),
            kind: Some("ClearApiClient".into()),
            name: Some("billing".into()),
            namespace: Some("default".into()),
            uid: Some("uid-1".into()),
            ..ObjectReference::default()
        };
        let minted = |fingerprint: &str| Notice::Minted {
            reason: MintReason::RenewalDue,
            token_fingerprint: fingerprint.into(),
            issued_at: ts("2026-11-25T00:00:00Z"),
            valid_till: None,
        };
        let failed = Notice::Blocked {
            reason: Reason::InvalidSpec,
            message: "workspace is empty".into(),
        };
        for notice in [
            minted("aaaaaaaaaaaa"),
            failed.clone(),
            minted("bbbbbbbbbbbb"),
            failed,
        ] {
            publish(&recorders, &metrics, &reference, notice).await;
        }

        let events = Api::<K8sEvent>::namespaced(client, "default")
            .list(&ListParams::default())
            .await
            .unwrap()
            .items;
        let notes = |type_: &str| -> Vec<(String, Option<i32>)> {
            events
                .iter()
                .filter(|e| e.type_.as_deref() == Some(type_))
                .map(|e| {
                    (
                        e.note.clone().unwrap_or_default(),
                        e.series.as_ref().map(|s| s.count),
                    )
                })
                .collect()
        };
        let normal = notes("Normal");
        assert_eq!(normal.len(), 2, "{normal:?}");
        assert!(
            normal.iter().all(|(_, series)| series.is_none()),
            "{normal:?}"
        );
        assert!(normal.iter().any(|(note, _)| note.contains("aaaaaaaaaaaa")));
        assert!(normal.iter().any(|(note, _)| note.contains("bbbbbbbbbbbb")));
        // NB: no recorder keeps an Event to fold a repeat into a series (memory that would
        // grow with a fleet-wide failure); the operator publishes a Warning once per streak.
        let warning = notes("Warning");
        assert_eq!(warning.len(), 2, "{warning:?}");
        assert!(
            warning.iter().all(|(_, series)| series.is_none()),
            "{warning:?}"
        );
        emulator.shutdown().await;
    }
}
