//! The mint step: serialize per client secret, yield to a holder, check the Secret can be
//! written, count the call, call Clear, store the token, record it, restart the targets.
//! Every failure records itself in status and backs off; none leaves a new token unrecorded
//! or the last good token overwritten.

use jiff::Timestamp;
use kube::Resource;
use tracing::{info, warn};

use super::{
    Step,
    decide::{self, Blocker, MintReason, TokenHealth, WindowOutcome},
    earliest,
    error::Error,
    events::{self, Notice},
    keep, now_seconds, schedule,
    secret::TokenRecord,
    status::{self, MintFailure},
    wait::wait,
    write,
};
use crate::{
    clear::{BaseUrl, ClientSecret, FailureClass, IssuedToken},
    reason::Reason,
    resource::ClearApiClientStatus,
};

pub(super) async fn mint(
    step: &Step<'_>,
    reason: MintReason,
    health: &TokenHealth,
) -> Result<Option<Timestamp>, Error> {
    let (ctx, fetched) = (step.ctx, step.fetched);
    let (Some(client_secret), Some(base_url), Ok(spec)) = (
        &fetched.client_secret,
        &fetched.base_url,
        &fetched.observed.spec,
    ) else {
        // decide() mints only with a valid spec and a readable client secret.
        return Err(Error::InvalidObject {
            detail: "was to be minted for without a valid spec and client secret",
        });
    };
    let cac = &fetched.cac;
    let fingerprint = client_secret.fingerprint();
    let lock = ctx.index.lock_for(&fingerprint);
    let _serialized = lock.lock().await;
    // NB: re-checked under the lock: another resource with the same client secret may have
    // claimed it since the fetch, and its status may not have reached the cache yet.
    if let Some(holder) = ctx
        .index
        .find_conflict(&fetched.claimant, &fingerprint, fetched.holds)
    {
        let blocker = Blocker::Conflict {
            with: holder.display_to(&fetched.claimant),
        };
        return wait(step, &blocker, health, None, Some(&reason)).await;
    }
    // NB: from here on this resource is about to hold the secret: others yield to it.
    ctx.index.claim(&fetched.claimant, &fingerprint, true);

    let prev = step.prev();
    if let Err(Error::ApplySecret {
        name: target,
        detail,
    }) =
        write::dry_run_token_secret(ctx, cac, base_url.as_str(), spec, &fingerprint, step.now).await
    {
        let failure = MintFailure {
            reason: Reason::SecretApplyFailed,
            message: format!(
                "failed to write Secret {target} (server-side dry run, before calling Clear): {detail}"
            ),
            next_retry: Some(transient_retry(step, prev)),
            may_have_minted: false,
        };
        warn!(secret = %target, error = %detail, "the token Secret cannot be written; not calling Clear");
        return record_failure(step, prev, cac.status.as_ref(), failure, health).await;
    }
    let counted = status::before_mint(prev, &fingerprint, &spec.config_hash, step.now);
    step.write_status(cac.status.as_ref(), &counted).await?;
    info!(reason = status::describe_mint_reason(&reason), client_secret = %fingerprint, "calling Clear for a new token");
    // NB: the fence was checked by the status write just above; checked again because that
    // write may have taken a while.
    ctx.fence.check()?;
    let issued = match call_clear(step, base_url, client_secret, &counted).await {
        Ok(issued) => issued,
        Err(failure) => {
            return record_failure(step, &counted, Some(&counted), failure, health).await;
        }
    };

    let issued_at = now_seconds(ctx);
    let record = token_record(step, &issued, fingerprint, issued_at, &spec.config_hash);
    let applied = write::token_secret(ctx, cac, base_url.as_str(), &issued.token, &record).await;
    drop(issued);
    if let Err(Error::ApplySecret {
        name: target,
        detail,
    }) = applied
    {
        // NB: the new token is lost and the stored one revoked; retrying at once would mint
        // in a loop if the write keeps failing (RBAC, quota), so it backs off like a failure.
        let failure = MintFailure {
            reason: Reason::SecretApplyFailed,
            message: format!("failed to write the new token to Secret {target}: {detail}"),
            next_retry: Some(transient_retry(step, &counted)),
            may_have_minted: true,
        };
        warn!(secret = %target, error = %detail, "failed to write the new token; retrying with backoff");
        return record_failure(step, &counted, Some(&counted), failure, health).await;
    }
    applied?;
    if let Some(previous) = &fetched.previous_secret {
        // NB: the new token revoked the one still sitting under the old target name.
        let (namespace, _) = step.key();
        write::retire_previous_secret(ctx, cac, &namespace, previous).await?;
    }
    let planned = decide::plan_renewal(&record, spec, record.issued_at);
    let (renewal, windows) = decide::split_plan(planned);
    let done = record_success(step, &counted, &record, reason, renewal, windows.as_ref()).await?;
    let restart_retry = restart_targets(step, &done, issued_at).await?;
    Ok(earliest(renewal, restart_retry))
}

/// Calls Clear (if this replica still leads); a failure comes back described for status.
async fn call_clear(
    step: &Step<'_>,
    base_url: &BaseUrl,
    client_secret: &ClientSecret,
    counted: &ClearApiClientStatus,
) -> Result<IssuedToken, MintFailure> {
    let ctx = step.ctx;
    let started = std::time::Instant::now();
    let result = ctx.clear.mint(base_url, client_secret, step.now).await;
    let elapsed = started.elapsed();
    match result {
        Ok(issued) => {
            ctx.metrics.observe_clear_call("issued", elapsed);
            Ok(issued)
        }
        Err(error) => {
            ctx.metrics
                .observe_clear_call(error.metric_label(), elapsed);
            warn!(reason = %error.reason(), %error, "failed to mint a token; the stored Secret is left as it was");
            let next_retry = match error.class() {
                FailureClass::Rejected => None,
                FailureClass::RateLimited { retry_at, .. } => Some(retry_at),
                FailureClass::Refused { .. } | FailureClass::Transient => {
                    Some(transient_retry(step, counted))
                }
            };
            Err(MintFailure {
                reason: error.reason(),
                message: error.to_string(),
                next_retry,
                may_have_minted: error.may_have_minted(),
            })
        }
    }
}

/// When a transiently failed attempt may be retried: exponential, jittered.
fn transient_retry(step: &Step<'_>, base: &ClearApiClientStatus) -> Timestamp {
    let attempt = base.failed_attempts.saturating_add(1);
    step.now + schedule::transient_backoff(attempt, schedule::random_jitter())
}

/// What is recorded about a new token (never the token itself).
fn token_record(
    step: &Step<'_>,
    issued: &IssuedToken,
    client_secret_fingerprint: String,
    issued_at: Timestamp,
    config_hash: &str,
) -> TokenRecord {
    let (valid_till, clamped) = schedule::clamp_valid_till(issued_at, issued.valid_till);
    if clamped {
        warn!(
            valid_till = ?issued.valid_till,
            %issued_at,
            "Clear's valid_till is not after the issue time (clock skew?); assuming a lifetime of one hour"
        );
    }
    TokenRecord {
        issued_at,
        valid_till,
        client_secret_fingerprint,
        config_hash: config_hash.to_string(),
        // NB: whatever regenerate value is present now is honoured by this mint, including
        // one that was already there when the resource was created.
        regenerate: step.fetched.observed.regenerate_request.clone(),
        token_fingerprint: issued.token.fingerprint(),
    }
}

/// A failed attempt: status (on top of `base`, the status as last written), a Warning, the
/// readiness gauge; comes back at the failure's retry time.
async fn record_failure(
    step: &Step<'_>,
    base: &ClearApiClientStatus,
    current: Option<&ClearApiClientStatus>,
    failure: MintFailure,
    health: &TokenHealth,
) -> Result<Option<Timestamp>, Error> {
    let cac = &step.fetched.cac;
    let next = status::mint_failed(
        base,
        &failure,
        health,
        cac.meta().generation,
        now_seconds(step.ctx),
    );
    step.write_status(current, &next).await?;
    let usable = health.is_usable() && !failure.may_have_minted;
    let (namespace, name) = step.key();
    step.ctx.metrics.set_ready(&namespace, &name, usable);
    let retry = failure
        .next_retry
        .unwrap_or(step.now + schedule::REJECTED_RECHECK);
    step.publish(Notice::MintFailed {
        reason: failure.reason,
        message: failure.message,
    })
    .await;
    Ok(Some(retry))
}

/// A new token is in the Secret: status (with every restart target pending), the Normal
/// Event, the gauges. Returns the status written.
async fn record_success(
    step: &Step<'_>,
    counted: &ClearApiClientStatus,
    record: &TokenRecord,
    reason: MintReason,
    renewal: Option<Timestamp>,
    windows: Option<&WindowOutcome>,
) -> Result<ClearApiClientStatus, Error> {
    let cac = &step.fetched.cac;
    let target = cac.target_secret_name();
    let generation = cac.meta().generation;
    let mut done = status::minted(
        counted,
        record,
        renewal,
        &target,
        generation,
        record.issued_at,
    );
    status::set_renewal_windows(&mut done, windows, renewal, generation, record.issued_at);
    // NB: recorded with the token, before any patch: an operator stopped before (or
    // during) the restarts finds them pending and makes them on its next reconcile.
    done.pending_restarts = cac.spec.rollout_restart_targets.clone();
    step.write_status(Some(counted), &done).await?;
    info!(reason = status::describe_mint_reason(&reason), token = %record.token_fingerprint, secret = %target, "new token written");
    let (namespace, name) = step.key();
    step.ctx.metrics.record_rotation(
        &namespace,
        &name,
        events::minted_reason(&reason),
        record.issued_at,
    );
    step.publish(Notice::Minted {
        reason,
        token_fingerprint: record.token_fingerprint.clone(),
        issued_at: record.issued_at,
        valid_till: record.valid_till,
    })
    .await;
    keep::warn_if_windows_missed(step, counted, &done).await;
    step.ctx.metrics.set_ready(&namespace, &name, true);
    step.ctx
        .metrics
        .set_token_expiry(&namespace, &name, record.valid_till);
    Ok(done)
}

/// Restarts the workloads that read the token from environment variables; the ones left
/// to do stay pending in status. Returns when to retry those.
async fn restart_targets(
    step: &Step<'_>,
    done: &ClearApiClientStatus,
    issued_at: Timestamp,
) -> Result<Option<Timestamp>, Error> {
    if done.pending_restarts.is_empty() {
        return Ok(None);
    }
    let mut after = done.clone();
    let retry = step
        .restart(&done.pending_restarts, issued_at, &mut after)
        .await?;
    if after != *done {
        step.write_status(Some(done), &after).await?;
    }
    Ok(retry)
}
