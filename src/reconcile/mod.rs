//! The reconciler: for one ClearApiClient, a short pipeline of named steps with I/O at the
//! edges — fetch (observe) → decide (pure) → mint → apply the Secret → update status → emit
//! Events → restart targets. The revoke-on-delete finalizer wraps it while asked for.

mod adopt;
mod context;
pub mod decide;
mod door;
pub mod error;
pub mod events;
pub mod finalizer;
mod keep;
pub mod keys;
mod memory;
mod mint;
pub mod nudge;
pub mod observe;
pub mod restart;
pub mod schedule;
pub mod secret;
pub mod status;
mod step;
pub mod template;
#[cfg(test)]
pub(crate) mod test_support;
pub mod view;
mod wait;
pub mod windows;
mod write;

use std::{sync::Arc, time::Duration};

use jiff::{SignedDuration, Timestamp};
use kube::{Api, Resource, ResourceExt, runtime::controller::Action};
use tracing::{debug, instrument, warn};

pub use self::{
    context::{Context, Settings},
    error::Error,
};
use self::{
    decide::{Decision, decide},
    events::Notice,
    keep::Refresh,
    step::Step,
};
use crate::{
    clear::FailureClass,
    resource::{ClearApiClient, REVOKE_FINALIZER},
};

pub use crate::kube_client::FIELD_MANAGER;
/// Longest wait between two reconciles of a healthy resource: a cheap safety net for missed
/// watch events (a reconcile that decides to keep the token makes no call to Clear).
pub const RESYNC: SignedDuration = SignedDuration::from_hours(1);

/// Reconciles one ClearApiClient.
#[instrument(skip(obj, ctx), fields(namespace = obj.namespace().as_deref().unwrap_or(""), name = %obj.name_any()))]
pub async fn reconcile(obj: Arc<ClearApiClient>, ctx: Arc<Context>) -> Result<Action, Error> {
    let _in_flight = ctx.services.progress.start();
    let started = std::time::Instant::now();
    if let (Some(namespace), None) = (obj.namespace(), &obj.meta().deletion_timestamp) {
        ctx.memory.exported(namespace, obj.name_any());
    }
    let result = reconcile_with_finalizer(obj.clone(), &ctx).await;
    let outcome = match &result {
        Ok(_) => "ok",
        Err(e) => e.metric_label(),
    };
    ctx.metrics.observe_reconcile(outcome, started.elapsed());
    let streak = ctx.memory.record_outcome(
        obj.namespace().unwrap_or_default(),
        obj.name_any(),
        result.is_ok(),
    );
    // NB: one Warning per streak, not per retry: the owner learns that the operator is stuck
    // and why (often RBAC), without an Event every few seconds.
    // NB: not for a 429 either: the API server asked for fewer requests, not one more.
    if let (Err(error), 1) = (&result, streak)
        && error.throttled_for().is_none()
    {
        let notice = Notice::ReconcileFailed {
            message: error.to_string(),
        };
        ctx.publish(&obj.object_ref(&()), notice).await;
    }
    result
}

/// Delay before retrying after the `streak`-th consecutive failed reconcile: API hiccups
/// retry soon, a persistent failure (RBAC, quota) backs off to a quiet pace.
pub fn retry_delay(streak: u32, transient: bool) -> Duration {
    const FIRST: Duration = Duration::from_secs(5);
    const CAP: Duration = Duration::from_secs(300);
    if !transient {
        return Duration::from_secs(600);
    }
    let doublings = streak.saturating_sub(1).min(16);
    FIRST.saturating_mul(1 << doublings).min(CAP)
}

/// Requeue policy after a failed reconcile: exponential per resource (see [`retry_delay`]);
/// a revoke blocked by the rate limit waits for the quota to reset.
pub fn error_policy(obj: Arc<ClearApiClient>, error: &Error, ctx: Arc<Context>) -> Action {
    warn!(name = %obj.name_any(), namespace = obj.namespace().as_deref().unwrap_or(""), reason = error.metric_label(), %error, "reconcile failed");
    if let Error::Revoke(clear_error) = error
        && let FailureClass::RateLimited { retry_at, .. } = clear_error.class()
    {
        return requeue_at(Some(retry_at), ctx.now_seconds());
    }
    // NB: a 429 is retried after the API server's Retry-After (spread by up to half of it,
    // so resources refused together do not all come back in the same second): the retry is
    // a new reconcile, which checks the fence again before any write.
    if let Some(wait) = error.throttled_for() {
        use rand::Rng;
        let spread = rand::thread_rng().gen_range(0..=wait.as_millis() as u64 / 2);
        return Action::requeue(wait + Duration::from_millis(spread));
    }
    let streak = ctx
        .memory
        .failure_streak(&obj.namespace().unwrap_or_default(), &obj.name_any());
    Action::requeue(retry_delay(streak, error.is_transient()))
}

async fn reconcile_with_finalizer(
    obj: Arc<ClearApiClient>,
    ctx: &Context,
) -> Result<Action, Error> {
    ctx.fence.check()?;
    let namespace = obj.namespace().ok_or(Error::InvalidObject {
        detail: "has no namespace",
    })?;
    let api: Api<ClearApiClient> = Api::namespaced(ctx.client.clone(), &namespace);
    let has_finalizer = obj.finalizers().iter().any(|f| f == REVOKE_FINALIZER);
    let deleting = obj.meta().deletion_timestamp.is_some();
    if obj.spec.revoke_on_delete {
        if deleting {
            if has_finalizer {
                // Only a successful (or deliberately skipped) revoke releases the resource.
                if let finalizer::Revocation::Later(at) =
                    finalizer::revoke_on_delete(&obj, &api, ctx).await?
                {
                    return Ok(requeue_at(Some(at), ctx.now_seconds()));
                }
                // NB: re-read: the revoke recorded itself in status, so the resourceVersion
                // the finalizer patch carries must be the one after that write.
                if let Some(fresh) = api
                    .get_opt(&obj.name_any())
                    .await
                    .map_err(Error::ReadResource)?
                {
                    ctx.services
                        .versions
                        .own
                        .status_unknown(&namespace, &obj.name_any());
                    finalizer::set_finalizer(&api, &fresh, false).await?;
                }
            }
            return Ok(Action::await_change());
        }
        if !has_finalizer {
            // NB: the finalizer goes on before any token exists, so no token can be handed
            // out without the promise to revoke it; the patch wakes the controller again.
            // NB: not recorded as an own write, so its watch event is not skipped.
            ctx.services
                .versions
                .own
                .status_unknown(&namespace, &obj.name_any());
            finalizer::set_finalizer(&api, &obj, true).await?;
            return Ok(Action::await_change());
        }
        return apply(&obj, &api, ctx).await;
    }
    // NB: the finalizer is only held while revokeOnDelete is true; once it is false, a
    // leftover finalizer would block deletion for nothing.
    if has_finalizer {
        ctx.services
            .versions
            .own
            .status_unknown(&namespace, &obj.name_any());
        finalizer::set_finalizer(&api, &obj, false).await?;
    }
    if deleting {
        ctx.forget(&namespace, &obj.name_any());
        return Ok(Action::await_change());
    }
    apply(&obj, &api, ctx).await
}

/// The pipeline for a live resource: fetch, decide, then the one step the decision names.
async fn apply(
    obj: &ClearApiClient,
    api: &Api<ClearApiClient>,
    ctx: &Context,
) -> Result<Action, Error> {
    let name = obj.name_any();
    let namespace = obj.namespace().unwrap_or_default();
    let Some(mut fetched) = observe::fetch(ctx, api, &name, observe::Reads::Cached(obj)).await?
    else {
        ctx.forget(&namespace, &name);
        return Ok(Action::await_change());
    };
    let now = ctx.now_seconds();
    schedule::bound_future_times(&mut fetched.observed.status, now);
    // NB: observing wrote nothing; what it learnt of this resource's client secret is
    // recorded here, so that another resource with the same one sees it before this one's
    // status reaches the cache. (A mint re-checks and claims under the secret's lock.)
    if let decide::ClientSecretState::Present { fingerprint } = &fetched.observed.client_secret {
        ctx.services
            .index
            .claim(&fetched.claimant, fingerprint, fetched.holds);
    }
    if let Some(me) = &ctx.settings.instance
        && let Some(other) = decide::yield_to(&fetched.observed.status, me, now)
    {
        // NB: no write, no call: another install owns this resource. Said loudly once.
        warn!(%other, %me, "another clear-operator install manages this resource; leaving it alone");
        if ctx.memory.first_yield(&namespace, &name) {
            let notice = Notice::DuplicateOperator {
                other: other.to_string(),
                me: me.clone(),
            };
            ctx.publish(&fetched.cac.object_ref(&()), notice).await;
        }
        return Ok(requeue_at(None, now));
    }
    // NB: before deciding: a token this process minted and could not write yet is written,
    // never minted again, while status still marks its call as the one in flight.
    if let Some(pending) = ctx.memory.take_pending(&namespace, &name) {
        if fetched.observed.status.call_id.as_deref() == Some(pending.call_id.as_str())
            && pending.record.valid_till.is_none_or(|till| now < till)
        {
            let step = Step::new(ctx, api, &fetched, now);
            let next = mint::write_pending(&step, pending).await?;
            return Ok(requeue_at(next, ctx.now_seconds()));
        }
        debug!("a kept token's call is no longer the one in flight; dropped unwritten");
    }
    let decision = decide(&fetched.observed, now, &ctx.settings.policy);
    // NB: the decision may have been made on the client secret's cached fingerprint; a
    // mint needs its value, read now and checked against that fingerprint.
    if matches!(decision, Decision::Mint { .. }) && fetched.client_secret.is_none() {
        match observe::client_secret_value(ctx, &fetched).await? {
            Some(secret) => fetched.client_secret = Some(secret),
            None => {
                debug!("the client secret changed since the decision; deciding again");
                return Ok(requeue_at(Some(now + SignedDuration::from_secs(1)), now));
            }
        }
    }
    let step = Step::new(ctx, api, &fetched, now);
    debug!(decision = decision_label(&decision), "decided");
    let next = match decision {
        Decision::Keep {
            refresh_secret,
            record,
            renewal_time,
            windows,
            move_from,
        } => {
            let refresh = match (refresh_secret, move_from) {
                (false, _) => Refresh::No,
                (true, None) => Refresh::InPlace,
                (true, Some(old)) => Refresh::MoveFrom(old),
            };
            keep::keep(&step, refresh, &record, renewal_time, windows).await?
        }
        Decision::Wait {
            blocker,
            health,
            retry_at,
            pending,
        } => wait::wait(&step, &blocker, &health, retry_at, pending.as_ref()).await?,
        Decision::Mint { reason, health } => mint::mint(&step, reason, &health).await?,
        Decision::Adopt { record, from } => adopt::adopt(&step, &record, &from).await?,
    };
    Ok(requeue_at(next, ctx.now_seconds()))
}

fn decision_label(decision: &Decision) -> &'static str {
    match decision {
        Decision::Keep {
            refresh_secret: true,
            ..
        } => "refresh-secret",
        Decision::Keep { .. } => "keep",
        Decision::Wait { .. } => "wait",
        Decision::Mint { .. } => "mint",
        Decision::Adopt { .. } => "adopt",
    }
}

/// Requeue at `at` (when given), but never later than [`RESYNC`] from now.
pub fn requeue_at(at: Option<Timestamp>, now: Timestamp) -> Action {
    let wait = at
        .map(|at| at.duration_since(now))
        .unwrap_or(RESYNC)
        .clamp(SignedDuration::from_secs(1), RESYNC);
    Action::requeue(wait.unsigned_abs())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reconcile::test_support::ts;

    #[test]
    fn requeue_is_at_the_requested_time_capped_by_the_resync_period() {
        let now = ts("2026-11-25T00:00:00Z");
        assert_eq!(
            requeue_at(Some(ts("2026-11-25T00:10:00Z")), now),
            Action::requeue(Duration::from_secs(600))
        );
        assert_eq!(
            requeue_at(Some(ts("2026-11-26T00:00:00Z")), now),
            Action::requeue(Duration::from_secs(3600))
        );
        assert_eq!(
            requeue_at(None, now),
            Action::requeue(Duration::from_secs(3600))
        );
        assert_eq!(
            requeue_at(Some(ts("2026-11-24T00:00:00Z")), now),
            Action::requeue(Duration::from_secs(1))
        );
    }
}
