//! The revoke-on-delete finalizer: while `revokeOnDelete` is true, a finalizer holds the
//! resource until one token was minted and dropped (revoking the one handed out), or until
//! that is impossible or would harm another resource (a Warning says so). Like the live
//! path, deletion is "decide, then act": [`decide_revoke`] is pure, and the call goes
//! through the same door to Clear as a mint (circuit, lock, fence, ledger, metrics).

use jiff::{SignedDuration, Timestamp};
use kube::{
    Api, Resource, ResourceExt,
    api::{Patch, PatchParams},
};
use tracing::info;

use super::{
    context::Context,
    decide::{ClientSecretState, Observed, Policy, TargetState},
    door::{self, Entry, Purpose},
    error::Error,
    events::Notice,
    observe, schedule, status,
    view::{self, mints_today},
    write,
};
use crate::{
    clear::FailureClass,
    reason::Reason,
    resource::{ClearApiClient, REVOKE_FINALIZER},
};

/// What deleting a resource with `revokeOnDelete` calls for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RevokeDecision {
    /// Already revoked (a retried finalizer removal): nothing to call.
    Done,
    /// Revoking is impossible or would harm another resource: let go, and say why.
    Skip {
        label: &'static str,
        why: &'static str,
    },
    /// Not now: the daily budget of the client secret is spent.
    Wait { until: Timestamp },
    /// Call Clear once and discard the token.
    Revoke,
}

/// Whether (and when) to revoke what a deleted resource handed out: a pure function of the
/// observation, like [`super::decide::decide`].
pub fn decide_revoke(obs: &Observed, now: Timestamp, policy: &Policy) -> RevokeDecision {
    let status = &obs.status;
    // NB: a revoke already recorded (the finalizer patch after it failed, e.g. on a
    // conflict) is not repeated: one call per deletion.
    if view::revoked(status) {
        return RevokeDecision::Done;
    }
    // NB: a token may be out there although status records none: a call was in flight when
    // the resource was deleted (its status write then fails on the deleted resource's
    // precondition), and its answer may sit in the Secret.
    let handed_out = status.token_fingerprint.is_some()
        || status.mint_started_at.is_some()
        || matches!(
            obs.target,
            TargetState::Ours { token: Some(_), .. } | TargetState::Unknown
        );
    let skip = |label, why| RevokeDecision::Skip { label, why };
    if obs.suspended.is_some() {
        return skip(
            "suspended",
            "the resource (or the whole install, in standby) is suspended: no call to Clear is made; the handed-out token stays live until it expires or the API client is deleted in Clear",
        );
    }
    if !handed_out {
        return skip("no_token", "no token was ever issued");
    }
    if obs.conflict_with.is_some() {
        return skip(
            "conflict",
            "another ClearApiClient holds the same client secret and minting would revoke its token",
        );
    }
    let fingerprint = match &obs.client_secret {
        ClientSecretState::Present { fingerprint } => fingerprint,
        ClientSecretState::Missing { .. } => {
            return skip(
                "client_secret_missing",
                "the client secret is missing (a namespace being deleted removes it before this finalizer runs; the handed-out token stays live until it expires or the API client is deleted in Clear)",
            );
        }
        ClientSecretState::Invalid { .. } | ClientSecretState::Withheld { .. } => {
            return skip(
                "client_secret_unusable",
                "the client secret cannot be sent to Clear, or not to this base URL",
            );
        }
    };
    if obs.spec.is_err() {
        return skip("no_base_url", "the spec has no usable base URL");
    }
    if status.last_failure_reason.as_deref() == Some(Reason::ClientSecretRejected.as_str())
        && view::call_secret(status) == Some(fingerprint.as_str())
    {
        return skip("client_secret_rejected", "Clear rejected the client secret");
    }
    let spent = mints_today(status, now).max(i64::from(obs.client_secret_calls_today));
    if spent >= i64::from(policy.mint_budget) {
        return RevokeDecision::Wait {
            until: schedule::next_utc_midnight(now),
        };
    }
    RevokeDecision::Revoke
}

/// How a revoke-on-delete ended.
pub enum Revocation {
    /// Revoked, or deliberately skipped (with a Warning): the finalizer may go.
    Finished,
    /// Try again at this time; the finalizer stays.
    Later(Timestamp),
}

/// How long a revoke held back by the shared circuit waits before asking again.
const REVOKE_HELD_RETRY: SignedDuration = SignedDuration::from_secs(30);

/// On deletion with revokeOnDelete: mint one token and drop it, so the token handed out
/// stops working. Lets go (with a Warning) when that is impossible or would harm another
/// resource.
pub(super) async fn revoke_on_delete(
    obj: &ClearApiClient,
    api: &Api<ClearApiClient>,
    ctx: &Context,
) -> Result<Revocation, Error> {
    let name = obj.name_any();
    let namespace = obj.namespace().unwrap_or_default();
    let reference = obj.object_ref(&());
    let Some(fetched) = observe::fetch(ctx, api, &name, observe::Reads::Fresh).await? else {
        return Ok(Revocation::Finished);
    };
    let now = ctx.now_seconds();
    let notice = match decide_revoke(&fetched.observed, now, &ctx.settings.policy) {
        RevokeDecision::Done => {
            info!("revoke-on-delete already done; releasing the resource");
            return Ok(Revocation::Finished);
        }
        RevokeDecision::Wait { until } => {
            tracing::warn!(%until, "the daily budget of calls for this client secret is spent; the revoke waits for it");
            return Ok(Revocation::Later(until));
        }
        // NB: never silent: a Warning Event (which a namespace being deleted may refuse, so
        // also) a log line and `clear_operator_revoke_skipped_total{why}`.
        RevokeDecision::Skip { label, why } => {
            ctx.metrics.observe_revoke_skipped(label);
            tracing::warn!(why = label, "the token was not revoked on delete: {why}");
            Notice::RevokeSkipped {
                why: format!("the token was not revoked on delete: {why}"),
            }
        }
        RevokeDecision::Revoke => match revoke(ctx, api, &fetched, now).await? {
            Some(notice) => notice,
            None => return Ok(Revocation::Later(now + REVOKE_HELD_RETRY)),
        },
    };
    info!(
        revoked = matches!(notice, Notice::Revoked),
        "revoke-on-delete finished"
    );
    ctx.publish(&reference, notice).await;
    ctx.forget(&namespace, &name);
    Ok(Revocation::Finished)
}

/// The call, through the door, and its record in status. `None`: the shared circuit holds
/// calls back; a retryable failure is an error (the finalizer stays, the controller backs
/// off).
async fn revoke(
    ctx: &Context,
    api: &Api<ClearApiClient>,
    fetched: &observe::Fetched,
    now: Timestamp,
) -> Result<Option<Notice>, Error> {
    let (Some(secret), Some(base_url)) = (&fetched.client_secret, &fetched.base_url) else {
        return Err(Error::InvalidObject {
            detail: "was to be revoked without a readable client secret and base URL",
        });
    };
    let cac = &fetched.cac;
    let key = (cac.namespace().unwrap_or_default(), cac.name_any());
    let door = match door::enter(ctx, base_url, key, &secret.fingerprint(), now).await {
        Entry::Open(door) => door,
        Entry::Held => return Ok(None),
    };
    let answer = door.call(secret, Purpose::Revoke, now).await?;
    drop(door);
    match answer {
        // NB: the new token is dropped right here, never written anywhere.
        Ok(_discarded) => {
            record_revoked(ctx, api, cac).await?;
            Ok(Some(Notice::Revoked))
        }
        Err(error) => match error.class() {
            FailureClass::Rejected => Ok(Some(Notice::RevokeSkipped {
                why: format!("the token was not revoked on delete: {error}"),
            })),
            _ => Err(Error::Revoke(error)),
        },
    }
}

/// Records the revoke in status, so that a retried finalizer removal calls nothing. The
/// write is conditional on the resource as just read; on a conflict (the resource changed
/// meanwhile) it is read again and written once more: the revoke is done and must not be
/// repeated because its record lost a race.
async fn record_revoked(
    ctx: &Context,
    api: &Api<ClearApiClient>,
    read: &ClearApiClient,
) -> Result<(), Error> {
    let name = read.name_any();
    let mut cac = read.clone();
    for attempt in 0..2 {
        let prev = cac.status.clone().unwrap_or_default();
        let next = status::revoked(&prev, cac.meta().generation, ctx.now_seconds());
        let written = write::status(
            ctx,
            api,
            &name,
            cac.status.as_ref(),
            &next,
            cac.metadata.resource_version.as_deref(),
        )
        .await;
        match written {
            Ok(_) => return Ok(()),
            Err(error) if attempt == 0 && error.is_conflict() => {
                match api.get_opt(&name).await.map_err(Error::ReadResource)? {
                    Some(fresh) => cac = fresh,
                    None => return Ok(()),
                }
            }
            Err(error) => return Err(error),
        }
    }
    Ok(())
}

/// Adds or removes the revoke-on-delete finalizer. The merge patch carries the
/// resourceVersion read, so a concurrent change of the list fails (and is retried) instead
/// of being overwritten.
pub(super) async fn set_finalizer(
    api: &Api<ClearApiClient>,
    obj: &ClearApiClient,
    present: bool,
) -> Result<(), Error> {
    let mut finalizers: Vec<&str> = obj
        .finalizers()
        .iter()
        .map(String::as_str)
        .filter(|f| *f != REVOKE_FINALIZER)
        .collect();
    if present {
        finalizers.push(REVOKE_FINALIZER);
    }
    let patch = serde_json::json!({
        "metadata": {"finalizers": finalizers, "resourceVersion": obj.resource_version()}
    });
    api.patch(
        &obj.name_any(),
        &PatchParams::default(),
        &Patch::Merge(&patch),
    )
    .await
    .map_err(Error::Finalizer)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    use super::*;
    use crate::reconcile::{decide::tests::healthy, test_support::ts};

    const NOW: &str = "2026-11-25T06:00:00Z";

    #[test]
    fn deletion_rules_table() {
        type Change = fn(&mut Observed);
        type Expect = Box<dyn Fn(&RevokeDecision) -> bool>;
        let revoke = RevokeDecision::Revoke;
        let skip = |label| move |d: &RevokeDecision| matches!(d, RevokeDecision::Skip { label: l, .. } if *l == label);
        let cases: Vec<(&str, Change, Expect)> = vec![
            (
                "a token handed out",
                |_| {},
                Box::new(move |d| *d == revoke),
            ),
            (
                "already revoked: no second call",
                |o| {
                    crate::reconcile::status::set_ready(
                        &mut o.status,
                        false,
                        Reason::Revoked,
                        "revoked".into(),
                        None,
                        ts(NOW),
                    )
                },
                Box::new(|d| *d == RevokeDecision::Done),
            ),
            (
                "suspended: no call",
                |o| o.suspended = Some(crate::reconcile::decide::Suspension::Resource),
                Box::new(skip("suspended")),
            ),
            (
                "nothing ever handed out",
                |o| {
                    o.status.token_fingerprint = None;
                    o.target = TargetState::Absent;
                },
                Box::new(skip("no_token")),
            ),
            (
                "deleted during its first call: status records no token, a call is in flight",
                |o| {
                    o.status.token_fingerprint = None;
                    o.target = TargetState::Absent;
                    o.status.mint_started_at = Some(Time(ts(NOW)));
                },
                Box::new(|d| *d == RevokeDecision::Revoke),
            ),
            (
                "the Secret holds a token status does not record yet",
                |o| o.status.token_fingerprint = None,
                Box::new(|d| *d == RevokeDecision::Revoke),
            ),
            (
                "another resource holds the client secret",
                |o| o.conflict_with = Some("another ClearApiClient".into()),
                Box::new(skip("conflict")),
            ),
            (
                "the client secret is gone",
                |o| {
                    o.client_secret = ClientSecretState::Missing {
                        detail: "not found".into(),
                    }
                },
                Box::new(skip("client_secret_missing")),
            ),
            (
                "the budget is spent: wait for the next UTC day",
                |o| o.client_secret_calls_today = 250,
                Box::new(|d| {
                    *d == RevokeDecision::Wait {
                        until: ts("2026-11-26T00:00:00Z"),
                    }
                }),
            ),
        ];
        for (case, change, expected) in cases {
            let mut obs = healthy();
            change(&mut obs);
            let decision = decide_revoke(&obs, ts(NOW), &Policy::default());
            assert!(expected(&decision), "case: {case}: {decision:?}");
        }
    }
}
