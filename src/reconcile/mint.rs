//! The mint step: serialize per client secret, yield to a holder, check the Secret can be
//! written, count the call, call Clear, store the token, record it, restart the targets.
//! Every failure records itself in status and backs off; none leaves the last good token
//! overwritten, and a token Clear issued is never thrown away: when its Secret write fails
//! it is kept (see [`super::context::PendingToken`]) and written by the next reconciles.

use jiff::{SignedDuration, Timestamp};
use kube::Resource;
use tracing::{debug, info, warn};

use super::{
    context::PendingToken,
    decide::{self, Blocker, MintReason, TokenHealth, WindowOutcome},
    door::{self, Entry, Purpose},
    error::Error,
    events::{self, Notice},
    keep, schedule,
    secret::TokenRecord,
    status::{self, MintFailure},
    step::Step,
    wait::wait,
    write,
};
use crate::{
    clear::{ClearError, FailureClass, IssuedToken},
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
    if !ctx.services.index.all_scopes_synced() {
        debug!(
            "not every watched namespace is listed yet; minting waits for the shared-secret check to see them all"
        );
        return Ok(Some(ctx.now_seconds() + jiff::SignedDuration::from_secs(1)));
    }
    let fingerprint = client_secret.fingerprint();
    // NB: before anything is written: while Clear fails for everyone, a resource that is not
    // the trial waits to be released, with no dry run, no status mark and no call.
    let door = match door::enter(ctx, base_url, step.key(), &fingerprint, step.now).await {
        Entry::Open(door) => door,
        Entry::Held => {
            let retry_at = circuit_retry(step, health);
            let blocker = Blocker::ClearDown { retry_at };
            return wait(step, &blocker, health, Some(retry_at), Some(&reason)).await;
        }
    };
    // NB: re-checked under the lock: another resource with the same client secret may have
    // claimed it since the fetch, and its status may not have reached the cache yet.
    if let Some(holder) =
        ctx.services
            .index
            .find_conflict(&fetched.claimant, &fingerprint, fetched.holds)
    {
        let blocker = Blocker::Conflict {
            with: holder.display_to(&fetched.claimant),
        };
        return wait(step, &blocker, health, None, Some(&reason)).await;
    }
    // NB: from here on this resource is about to hold the secret: others yield to it.
    ctx.services
        .index
        .claim(&fetched.claimant, &fingerprint, true);

    let prev = step.prev();
    let call_id = new_call_id();
    if let Err(Error::ApplySecret {
        name: target,
        detail,
    }) = write::dry_run_token_secret(
        ctx,
        cac,
        base_url.as_str(),
        spec,
        &fingerprint,
        &call_id,
        step.now,
    )
    .await
    {
        let failure = MintFailure {
            reason: Reason::SecretApplyFailed,
            message: format!(
                "failed to write Secret {target} (server-side dry run, before calling Clear): {detail}"
            ),
            next_retry: Some(transient_retry(step, prev, health)),
            may_have_minted: false,
        };
        warn!(secret = %target, error = %detail, "the token Secret cannot be written; not calling Clear");
        return record_failure(step, prev, cac.status.as_ref(), failure, health).await;
    }
    // NB: `mintStartedAt` is what another replica's wait counts from, so it is taken right
    // before the request and rounded up (status keeps seconds): the recorded start is never
    // earlier than the real one. A status write that ate much of the margin the waiters add
    // to the Clear timeout cancels the call instead of starting it late.
    let marked = std::time::Instant::now();
    let started = ceil_to_second(ctx.clock.now());
    let counted = status::before_mint(prev, &fingerprint, &spec.config_hash, &call_id, started);
    step.write_status(cac.status.as_ref(), &counted).await?;
    if marked.elapsed() > CALL_START_BUDGET {
        warn!(
            elapsed_ms = marked.elapsed().as_millis(),
            "marking the call in status took too long; not calling Clear this time"
        );
        let mut unmarked = counted.clone();
        unmarked.mint_started_at = None;
        unmarked.call_id = None;
        step.write_status(Some(&counted), &unmarked).await?;
        return Ok(Some(ctx.now_seconds() + jiff::SignedDuration::from_secs(5)));
    }
    info!(
        reason = status::describe_mint_reason(&reason),
        "a new token is needed"
    );
    // NB: the door checks the fence again: the status write above may have taken a while.
    let answer = door.call(client_secret, Purpose::Mint, step.now).await?;
    drop(door);
    let issued = match describe_answer(step, answer, &counted, health) {
        Ok(issued) => issued,
        Err(failure) => {
            return record_failure(step, &counted, Some(&counted), failure, health).await;
        }
    };

    let record = token_record(step, &issued, fingerprint, &spec.config_hash);
    let pending = PendingToken {
        call_id,
        answered_at: issued.received_at,
        token: issued.token,
        record,
        reason,
        expiry_assumed: issued.expiry_unknown,
        attempts: 0,
    };
    store_and_record(step, pending, &counted).await
}

/// Writes a token this process minted earlier and could not write then (see
/// [`PendingToken`]); `status.callId` still names its call.
pub(super) async fn write_pending(
    step: &Step<'_>,
    pending: PendingToken,
) -> Result<Option<Timestamp>, Error> {
    info!(token = %pending.record.token_fingerprint, attempt = pending.attempts + 1, "writing the token minted earlier, not minting again");
    let counted = step.prev().clone();
    store_and_record(step, pending, &counted).await
}

/// Longest time marking a call in status may take before the call is sent. It must stay
/// well inside [`crate::operator::IN_FLIGHT_MARGIN`], the margin other replicas wait past
/// `mintStartedAt` + the Clear timeout.
const CALL_START_BUDGET: std::time::Duration = std::time::Duration::from_secs(4);

/// Identifies one call to Clear (`status.callId`, and the Secret annotation written with
/// its token).
fn new_call_id() -> String {
    use rand::Rng;
    format!("{:016x}", rand::thread_rng().r#gen::<u64>())
}

/// `at`, rounded up to the whole second.
fn ceil_to_second(at: Timestamp) -> Timestamp {
    let floor = at.as_second();
    let second = if at.subsec_nanosecond() > 0 {
        floor.saturating_add(1)
    } else {
        floor
    };
    Timestamp::from_second(second).unwrap_or(at)
}

/// Writes a fresh token to the Secret, then status, the Event and the restarts. When the
/// Secret write fails, the token is kept for the next reconcile (never a second call while
/// it can still be written); `counted` is the status that marks its call.
async fn store_and_record(
    step: &Step<'_>,
    mut pending: PendingToken,
    counted: &ClearApiClientStatus,
) -> Result<Option<Timestamp>, Error> {
    let (ctx, fetched) = (step.ctx, step.fetched);
    let (Some(base_url), Ok(spec)) = (&fetched.base_url, &fetched.observed.spec) else {
        // NB: the spec turned invalid (or its base URL was refused) since the call: the token
        // is still the live one; it is written with the base URL of its call when it comes
        // back, so keep it.
        let (namespace, name) = step.key();
        ctx.memory.keep_pending(&namespace, &name, pending);
        return Ok(Some(
            ctx.now_seconds() + jiff::SignedDuration::from_secs(30),
        ));
    };
    let cac = &fetched.cac;
    // NB: ahead of every other request of the operator: until this lands, consumers hold
    // the token this call revoked.
    let applied = crate::kube_client::with_priority(write::token_secret(
        ctx,
        cac,
        base_url.as_str(),
        &pending.token,
        &pending.record,
        Some(&pending.call_id),
        fetched.target_resource_version.as_deref(),
    ))
    .await;
    if applied.is_ok() {
        ctx.metrics
            .observe_rotation_write(pending.answered_at.elapsed());
    }
    if let Err(error) = applied {
        // NB: the stored token was revoked by this call; the new one is the only live one.
        // It is kept and written again soon (this process is the only one that has it), at
        // a pace that does not hammer a failing API server.
        pending.attempts = pending.attempts.saturating_add(1);
        let retry_in = jiff::SignedDuration::from_secs(
            1_i64 << pending.attempts.clamp(1, 5).saturating_sub(1),
        );
        let detail = error.to_string();
        warn!(error = %detail, attempt = pending.attempts, "failed to write the new token; keeping it and writing it again");
        let (namespace, name) = step.key();
        ctx.metrics.set_ready(&namespace, &name, false);
        let token_fingerprint = pending.record.token_fingerprint.clone();
        ctx.memory.keep_pending(&namespace, &name, pending);
        // NB: best effort: the same outage may fail this write too. Nothing depends on it:
        // `mintStartedAt` and `callId` (already in status) are what keep other replicas
        // from minting, and the pending token what keeps this one from it.
        if error.is_transient() && !matches!(error, Error::NotLeader(_)) {
            let mut next = counted.clone();
            let (ready, reason, message) = status::Readiness::Unwritten {
                token_fingerprint: &token_fingerprint,
                detail: &detail,
            }
            .derive();
            status::set_ready(
                &mut next,
                ready,
                reason,
                message,
                cac.meta().generation,
                ctx.now_seconds(),
            );
            let _ = step.write_status(Some(counted), &next).await;
        }
        return Ok(Some(ctx.now_seconds() + retry_in));
    }
    let PendingToken {
        record,
        reason,
        expiry_assumed,
        ..
    } = pending;
    if let Some(previous) = &fetched.previous_secret {
        // NB: the new token revoked the one still sitting under the old target name.
        let (namespace, _) = step.key();
        write::retire_previous_secret(ctx, cac, &namespace, previous).await?;
    }
    let planned = decide::plan_renewal(&record, spec, record.issued_at);
    let (renewal, windows) = decide::split_plan(planned);
    let minted = Minted {
        record: &record,
        reason,
        expiry_assumed,
    };
    let done = record_success(step, counted, minted, renewal, windows.as_ref()).await?;
    // NB: after status names the token: the pods' kubelets fetch what the Secret holds.
    super::nudge::nudge(step, &cac.target_secret_name(), record.issued_at);
    let restart_retry = restart_targets(step, &done, record.issued_at).await?;
    Ok(schedule::earliest(renewal, restart_retry))
}

/// Answers in a row with no usable token (not JSON, no token in it) after which the operator
/// leaves the client secret alone until the next UTC day.
const MALFORMED_ANSWERS_PER_DAY: i32 = 3;

/// Clear's answer to a mint, a failure described for status.
fn describe_answer(
    step: &Step<'_>,
    answer: Result<IssuedToken, ClearError>,
    counted: &ClearApiClientStatus,
    health: &TokenHealth,
) -> Result<IssuedToken, MintFailure> {
    let error = match answer {
        Ok(issued) => return Ok(issued),
        Err(error) => error,
    };
    warn!(reason = %error.reason(), %error, "failed to mint a token; the stored Secret is left as it was");
    let class = error.class();
    let (namespace, name) = step.key();
    let resource_key = format!("{namespace}/{name}");
    // NB: an answer with no usable token, again and again, is Clear's (or a proxy's) way of
    // answering this client secret today: each retry may mint (and revoke) a token that is
    // thrown away with the body, so after a few the rest of the day is left alone.
    let malformed_in_a_row =
        if counted.last_failure_reason.as_deref() == Some(Reason::ClearResponseInvalid.as_str()) {
            counted.failed_attempts.saturating_add(1)
        } else {
            1
        };
    if error.reason() == Reason::ClearResponseInvalid
        && malformed_in_a_row >= MALFORMED_ANSWERS_PER_DAY
    {
        let midnight = schedule::next_utc_midnight(step.now);
        let retry = midnight + crate::clear::quota_jitter(midnight, resource_key.as_bytes());
        return Err(MintFailure {
            reason: error.reason(),
            message: format!(
                "{error}; {malformed_in_a_row} answers in a row held no usable token, so Clear is not called again before {retry}"
            ),
            next_retry: Some(retry),
            may_have_minted: error.may_have_minted(),
        });
    }
    let next_retry = match class {
        FailureClass::Rejected => None,
        // NB: the daily quota resets for every resource at 00:00 UTC; a jitter of its
        // own (deterministic per resource) keeps them from all calling that second.
        FailureClass::RateLimited { quota: true, .. } => {
            class.jittered_retry_at(resource_key.as_bytes())
        }
        FailureClass::RateLimited {
            quota: false,
            retry_at,
        } => Some(throttled_retry(step, counted, health, retry_at)),
        FailureClass::Refused { .. } | FailureClass::Transient => {
            Some(transient_retry(step, counted, health))
        }
    };
    Err(MintFailure {
        reason: error.reason(),
        message: error.to_string(),
        next_retry,
        may_have_minted: error.may_have_minted(),
    })
}

/// When a transiently failed attempt may be retried: exponential, jittered, capped by the
/// life the stored token has left (see [`schedule::backoff_cap`]), and never after it
/// expires (from then on the cap of a resource without a token applies).
fn transient_retry(
    step: &Step<'_>,
    base: &ClearApiClientStatus,
    health: &TokenHealth,
) -> Timestamp {
    let attempt = base.failed_attempts.saturating_add(1);
    let cap = schedule::backoff_cap(life_left(health, step.now));
    let at = step.now + schedule::transient_backoff(attempt, schedule::random_jitter(), cap);
    expiry_bound(at, health)
}

/// When a call refused with a 429 that names no daily quota may be retried. `Retry-After`
/// (`not_before`) is a lower bound, never a schedule: consecutive 429s back off like any
/// transient failure (30 s doubling, ±20 %), capped at [`schedule::BACKOFF_CAP`] whatever
/// the token's life, so a limiter that answers `Retry-After: 1` over and over gets at most
/// 8 calls in its first hour and one every 48 to 60 minutes after that: at most 40 a day
/// (16 % of the default budget of 250), and the rest of the budget stays for the renewal
/// once it lets go. Brought forward to the stored token's expiry (one more call), so a
/// renewal is tried as the token dies, but never before `Retry-After`.
fn throttled_retry(
    step: &Step<'_>,
    base: &ClearApiClientStatus,
    health: &TokenHealth,
    not_before: Timestamp,
) -> Timestamp {
    let attempt = base.failed_attempts.saturating_add(1);
    let backoff =
        schedule::transient_backoff(attempt, schedule::random_jitter(), schedule::BACKOFF_CAP);
    expiry_bound(step.now + backoff, health).max(not_before)
}

/// When a resource held back by the circuit looks again if it is not released first: at the
/// cap of its backoff (the release, not this, is what serves it once Clear answers; this
/// only bounds how long a process that missed the release waits), jittered.
fn circuit_retry(step: &Step<'_>, health: &TokenHealth) -> Timestamp {
    let cap = schedule::backoff_cap(life_left(health, step.now));
    let spread = 1.0 + schedule::random_jitter();
    expiry_bound(
        step.now + SignedDuration::from_secs_f64(cap.as_secs_f64() * spread),
        health,
    )
}

/// How long the stored token still lives: `None` without a usable one.
fn life_left(health: &TokenHealth, now: Timestamp) -> Option<SignedDuration> {
    match health {
        TokenHealth::Usable {
            valid_till: Some(till),
        } => Some(till.duration_since(now)),
        TokenHealth::Usable { valid_till: None } => Some(SignedDuration::MAX),
        TokenHealth::Expired { .. } | TokenHealth::Unusable { .. } => None,
    }
}

/// `at`, but no later than the usable token's expiry.
fn expiry_bound(at: Timestamp, health: &TokenHealth) -> Timestamp {
    match health {
        TokenHealth::Usable {
            valid_till: Some(till),
        } => at.min(*till),
        _ => at,
    }
}

/// What is recorded about a new token (never the token itself).
fn token_record(
    step: &Step<'_>,
    issued: &IssuedToken,
    client_secret_fingerprint: String,
    config_hash: &str,
) -> TokenRecord {
    let issued_at = step.ctx.now_seconds();
    // NB: Clear minted this token (and so revoked the previous one) but did not say, in a
    // readable way, when it stops working: "never" would never renew it, so a short life is
    // assumed and said (status `expiryAssumed`, reason ExpiryAssumed, a Warning).
    let stated = match issued.expiry_unknown {
        Some(why) => {
            warn!(
                why,
                assumed_hours = schedule::ASSUMED_LIFETIME.as_hours(),
                "Clear's answer has no readable valid_till; assuming a short lifetime"
            );
            Some(issued_at + schedule::ASSUMED_LIFETIME)
        }
        None => valid_till_on_our_clock(issued, issued_at),
    };
    let (valid_till, clamped) = schedule::clamp_valid_till(issued_at, stated);
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

/// When the token expires, on the operator's clock: the lifetime Clear gives it by its own
/// clock (`valid_till` less its `Date` header), counted from when the answer arrived. A
/// local clock that is off (a step, a skewed node) then neither shortens nor stretches the
/// token's life; without a `Date`, Clear's `valid_till` as it is.
fn valid_till_on_our_clock(issued: &IssuedToken, received: Timestamp) -> Option<Timestamp> {
    let till = issued.valid_till?;
    let Some(date) = issued.server_date else {
        return Some(till);
    };
    let skew = received.duration_since(date);
    if skew.abs() > jiff::SignedDuration::from_mins(1) {
        warn!(clear_date = %date, local = %received, "the local clock and Clear's differ by more than a minute; the token's life is counted on Clear's clock");
    }
    Some(
        received
            .saturating_add(till.duration_since(date))
            .unwrap_or(till),
    )
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
        step.ctx.now_seconds(),
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
    if let Some(notice) = events::expired(current, &next) {
        step.publish(notice).await;
    }
    // NB: Ready follows the token, not the plan: whatever the retry, the resource looks
    // again when the token it still serves expires, and turns Ready=False then.
    let expiry = usable.then(|| health.expires_at()).flatten();
    Ok(schedule::earliest(Some(retry), expiry))
}

/// A new token, as written to its Secret.
struct Minted<'a> {
    record: &'a TokenRecord,
    reason: MintReason,
    expiry_assumed: Option<&'static str>,
}

/// A new token is in the Secret: status (with every restart target pending), the Normal
/// Event, the gauges. Returns the status written.
async fn record_success(
    step: &Step<'_>,
    counted: &ClearApiClientStatus,
    minted: Minted<'_>,
    renewal: Option<Timestamp>,
    windows: Option<&WindowOutcome>,
) -> Result<ClearApiClientStatus, Error> {
    let Minted {
        record,
        reason,
        expiry_assumed,
    } = minted;
    let cac = &step.fetched.cac;
    let target = cac.target_secret_name();
    let generation = cac.meta().generation;
    let mut base = counted.clone();
    base.expiry_assumed = expiry_assumed.map(str::to_string);
    // NB: this token was minted here.
    base.adopted_from = None;
    let mut done = status::minted(
        &base,
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
    // NB: ahead of other requests too: until status names the new token, a reader of status
    // sees the revoked one.
    crate::kube_client::with_priority(step.write_status(Some(counted), &done)).await?;
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
    if let Some(why) = expiry_assumed {
        step.publish(Notice::Blocked {
            reason: Reason::ExpiryAssumed,
            message: status::describe_assumed_expiry(why, record.valid_till),
        })
        .await;
    }
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
