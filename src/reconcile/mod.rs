//! The reconciler: for one ClearApiClient, a short pipeline of named steps with I/O at the
//! edges — fetch (observe) → decide (pure) → mint → apply the Secret → update status → emit
//! Events → restart targets. The revoke-on-delete finalizer wraps it while asked for.

pub mod conflict;
pub mod decide;
pub mod error;
pub mod events;
pub mod observe;
pub mod restart;
pub mod schedule;
pub mod secret;
pub mod status;
#[cfg(test)]
pub(crate) mod test_support;
pub mod windows;

use std::{sync::Arc, time::Duration};

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::core::v1::Secret;
use kube::{
    Api, Client, Resource, ResourceExt,
    api::{Patch, PatchParams},
    runtime::{
        controller::Action,
        events::{Recorder, Reporter},
    },
};
use tracing::{debug, info, instrument, warn};

pub use self::error::Error;
use self::{
    conflict::ResourceIndex,
    decide::{Blocker, Decision, MintReason, Policy, TokenHealth, decide},
    events::Notice,
    observe::Fetched,
    secret::TokenRecord,
    status::MintFailure,
};
use crate::{
    clear::{AccessToken, AllowedBaseUrls, ClearClient, FailureClass},
    clock::Clock,
    fence::Fence,
    metrics::Metrics,
    resource::{ClearApiClient, REVOKE_FINALIZER},
    watchdog::{Heartbeat, Progress},
};

/// The one field manager for everything the operator writes.
pub const FIELD_MANAGER: &str = "clear-operator";
/// Longest wait between two reconciles of a healthy resource: a cheap safety net for missed
/// watch events (a reconcile that decides to keep the token makes no call to Clear).
pub const RESYNC: SignedDuration = SignedDuration::from_hours(1);
/// How often a resource in Conflict looks again (the older one may have gone away).
pub const CONFLICT_RECHECK: SignedDuration = SignedDuration::from_mins(5);

/// Operator-wide settings the reconciler follows.
#[derive(Clone, Debug, Default)]
pub struct Settings {
    /// Accept `http://` base URLs (simulators and tests only).
    pub allow_http: bool,
    /// Where client secrets may be sent (`--allowed-base-url`; default: Clear's hosts).
    pub allowed_base_urls: AllowedBaseUrls,
    pub policy: Policy,
}

/// What every reconcile shares.
pub struct Context {
    pub client: Client,
    pub clear: ClearClient,
    pub clock: Arc<dyn Clock>,
    pub metrics: Arc<Metrics>,
    pub recorder: Recorder,
    pub settings: Settings,
    /// The ClearApiClients the controller knows (fed by its watch events): the conflict
    /// check and the Secret-to-resources mapping.
    pub index: ResourceIndex,
    /// Whether this replica may still write (leader election); checked before each write
    /// and before each call to Clear.
    pub fence: Fence,
    /// Reconciles in flight, for the `/healthz` stall check.
    pub progress: Progress,
    /// Beats on every round of the leader-election loop, for the `/healthz` stall check.
    pub lease_heartbeat: Heartbeat,
    /// Resources this process exported per-resource metrics for.
    exported: std::sync::Mutex<std::collections::BTreeSet<(String, String)>>,
    /// Consecutive failed reconciles per resource. NB: this paces retries of Kubernetes API
    /// errors only; it never feeds the mint decision, which stays a function of the cluster.
    failures: std::sync::Mutex<std::collections::BTreeMap<(String, String), u32>>,
}

impl Context {
    pub fn new(
        client: Client,
        clear: ClearClient,
        clock: Arc<dyn Clock>,
        metrics: Arc<Metrics>,
        settings: Settings,
        reporter: Reporter,
    ) -> Self {
        Self {
            recorder: Recorder::new(client.clone(), reporter),
            fence: Fence::new(clock.clone()),
            progress: Progress::default(),
            lease_heartbeat: Heartbeat::default(),
            client,
            clear,
            clock,
            metrics,
            settings,
            index: ResourceIndex::default(),
            exported: std::sync::Mutex::default(),
            failures: std::sync::Mutex::default(),
        }
    }
}

/// Reconciles one ClearApiClient.
#[instrument(skip(obj, ctx), fields(namespace = obj.namespace().as_deref().unwrap_or(""), name = %obj.name_any()))]
pub async fn reconcile(obj: Arc<ClearApiClient>, ctx: Arc<Context>) -> Result<Action, Error> {
    let _in_flight = ctx.progress.start();
    let started = std::time::Instant::now();
    if let (Some(namespace), None) = (obj.namespace(), &obj.meta().deletion_timestamp) {
        ctx.exported_lock().insert((namespace, obj.name_any()));
    }
    let result = reconcile_with_finalizer(obj.clone(), &ctx).await;
    let outcome = match &result {
        Ok(_) => "ok",
        Err(e) => e.metric_label(),
    };
    ctx.metrics.observe_reconcile(outcome, started.elapsed());
    let key = (obj.namespace().unwrap_or_default(), obj.name_any());
    match &result {
        Ok(_) => {
            ctx.failures_lock().remove(&key);
        }
        Err(error) => {
            let streak = {
                let mut failures = ctx.failures_lock();
                let streak = failures.entry(key).or_insert(0);
                *streak = streak.saturating_add(1);
                *streak
            };
            // NB: one Warning per streak, not per retry: the owner learns that the operator
            // is stuck and why (often RBAC), without an Event every few seconds.
            if streak == 1 {
                let notice = Notice::ReconcileFailed {
                    reason: error.metric_label(),
                    message: error.to_string(),
                };
                events::publish(&ctx.recorder, &obj.object_ref(&()), notice).await;
            }
        }
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
        && let FailureClass::RateLimited { retry_at } = clear_error.class()
    {
        return requeue_at(Some(retry_at), now_seconds(&ctx));
    }
    let streak = ctx.failure_streak(&obj.namespace().unwrap_or_default(), &obj.name_any());
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
                revoke_on_delete(&obj, &api, ctx).await?;
                // NB: re-read: the revoke recorded itself in status, so the resourceVersion
                // the finalizer patch carries must be the one after that write.
                if let Some(fresh) = api
                    .get_opt(&obj.name_any())
                    .await
                    .map_err(Error::ReadResource)?
                {
                    set_finalizer(&api, &fresh, false).await?;
                }
            }
            return Ok(Action::await_change());
        }
        if !has_finalizer {
            // NB: the finalizer goes on before any token exists, so no token can be handed
            // out without the promise to revoke it; the patch wakes the controller again.
            set_finalizer(&api, &obj, true).await?;
            return Ok(Action::await_change());
        }
        return apply(&obj, &api, ctx).await;
    }
    // NB: the finalizer is only held while revokeOnDelete is true; once it is false, a
    // leftover finalizer would block deletion for nothing.
    if has_finalizer {
        set_finalizer(&api, &obj, false).await?;
    }
    if deleting {
        forget(ctx, &namespace, &obj.name_any());
        return Ok(Action::await_change());
    }
    apply(&obj, &api, ctx).await
}

/// The pipeline for a live resource.
async fn apply(
    obj: &ClearApiClient,
    api: &Api<ClearApiClient>,
    ctx: &Context,
) -> Result<Action, Error> {
    let name = obj.name_any();
    let Some(fetched) = observe::fetch(ctx, api, &name).await? else {
        forget(ctx, obj.namespace().as_deref().unwrap_or_default(), &name);
        return Ok(Action::await_change());
    };
    let now = now_seconds(ctx);
    let decision = decide(&fetched.observed, now, &ctx.settings.policy);
    debug!(decision = decision_label(&decision), "decided");
    let next = match decision {
        Decision::Keep {
            refresh_secret,
            record,
            renewal_time,
            move_from,
            ..
        } => {
            let refresh = refresh_secret.then_some(move_from);
            keep(ctx, api, &fetched, refresh, &record, renewal_time, now).await?
        }
        Decision::Wait {
            blocker,
            health,
            retry_at,
            pending,
        } => {
            wait(
                ctx,
                api,
                &fetched,
                &blocker,
                &health,
                retry_at,
                pending.as_ref(),
                now,
            )
            .await?
        }
        Decision::Mint { reason, health } => mint(ctx, api, &fetched, reason, &health, now).await?,
    };
    Ok(requeue_at(next, now_seconds(ctx)))
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
    }
}

/// The stored token stays; only drifted metadata is re-applied. `refresh`: `Some(None)`
/// re-applies the target Secret, `Some(Some(old))` moves the token from the Secret `old`
/// (a renamed target) and then deletes it.
async fn keep(
    ctx: &Context,
    api: &Api<ClearApiClient>,
    fetched: &Fetched,
    refresh: Option<Option<String>>,
    record: &TokenRecord,
    renewal_time: Option<Timestamp>,
    now: Timestamp,
) -> Result<Option<Timestamp>, Error> {
    let cac = &fetched.cac;
    let (namespace, name) = (cac.namespace().unwrap_or_default(), cac.name_any());
    if let Some(move_from) = refresh
        && let Some(base_url) = &fetched.base_url
    {
        // NB: the full Secret is read only here, to carry its token into the apply.
        let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &namespace);
        let target = cac.target_secret_name();
        let source = move_from.clone().unwrap_or_else(|| target.clone());
        let current = secrets
            .get_opt(&source)
            .await
            .map_err(|e| Error::ReadStoredToken {
                name: source.clone(),
                detail: error::sanitize(&e),
            })?;
        if let Some(token) = current.as_ref().and_then(secret::stored_token) {
            apply_secret(ctx, cac, base_url.as_str(), &token, record).await?;
            drop(token);
            if move_from.is_some() {
                retire_previous_secret(ctx, cac, &namespace, &source).await?;
                info!(from = %source, secret = %target, "moved the token to the renamed target Secret without minting");
            } else {
                info!(secret = %target, "re-applied drifted Secret metadata without minting");
            }
            events::publish(&ctx.recorder, &cac.object_ref(&()), Notice::SecretRefreshed).await;
        }
    }
    ctx.index
        .claim(&fetched.claimant, &record.client_secret_fingerprint, true);
    let prev = &fetched.observed.status;
    let next = status::kept(
        prev,
        record,
        renewal_time,
        &cac.target_secret_name(),
        cac.meta().generation,
        now,
    );
    write_status(ctx, api, &name, cac.status.as_ref(), &next).await?;
    ctx.metrics.set_ready(&namespace, &name, true);
    ctx.metrics
        .set_token_expiry(&namespace, &name, record.valid_till);
    Ok(renewal_time)
}

/// A guard holds: record why, tell the owner once, and come back when it may have lifted.
#[allow(clippy::too_many_arguments)]
async fn wait(
    ctx: &Context,
    api: &Api<ClearApiClient>,
    fetched: &Fetched,
    blocker: &Blocker,
    health: &TokenHealth,
    retry_at: Option<Timestamp>,
    pending: Option<&MintReason>,
    now: Timestamp,
) -> Result<Option<Timestamp>, Error> {
    let cac = &fetched.cac;
    let (namespace, name) = (cac.namespace().unwrap_or_default(), cac.name_any());
    let prev = &fetched.observed.status;
    let next = status::waiting(prev, blocker, health, pending, cac.meta().generation, now);
    write_status(ctx, api, &name, cac.status.as_ref(), &next).await?;
    let before = status::ready_condition(Some(prev)).map(|c| c.reason.as_str());
    if let Some(condition) = status::ready_condition(Some(&next))
        && before != Some(condition.reason.as_str())
    {
        let reason = reason_static(&condition.reason);
        info!(reason, "waiting: {}", condition.message);
        if let Some(notice) = events::blocked(blocker, reason, condition.message.clone()) {
            events::publish(&ctx.recorder, &cac.object_ref(&()), notice).await;
        }
    }
    ctx.metrics.set_ready(&namespace, &name, health.is_usable());
    if let TokenHealth::Usable { valid_till } = health {
        ctx.metrics.set_token_expiry(&namespace, &name, *valid_till);
    }
    Ok(match blocker {
        Blocker::Conflict { .. } => Some(now + CONFLICT_RECHECK),
        _ => retry_at,
    })
}

fn reason_static(reason: &str) -> &'static str {
    use status::reasons as r;
    [
        r::ISSUED,
        r::CLIENT_SECRET_MISSING,
        r::CONFLICT,
        r::TARGET_CONFLICT,
        r::INVALID_SPEC,
        r::BASE_URL_NOT_ALLOWED,
        r::BUDGET_EXHAUSTED,
        r::CLIENT_SECRET_REJECTED,
        r::RATE_LIMITED,
        r::CLEAR_UNAVAILABLE,
        r::CLEAR_RESPONSE_INVALID,
        r::MINT_IN_FLIGHT,
    ]
    .into_iter()
    .find(|r| *r == reason)
    .unwrap_or(r::CLEAR_UNAVAILABLE)
}

/// Calls Clear, then writes the Secret, then status, then Events, then restarts targets.
async fn mint(
    ctx: &Context,
    api: &Api<ClearApiClient>,
    fetched: &Fetched,
    reason: MintReason,
    health: &TokenHealth,
    now: Timestamp,
) -> Result<Option<Timestamp>, Error> {
    let cac = &fetched.cac;
    let (namespace, name) = (cac.namespace().unwrap_or_default(), cac.name_any());
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
        return wait(
            ctx,
            api,
            fetched,
            &blocker,
            health,
            None,
            Some(&reason),
            now,
        )
        .await;
    }
    // NB: from here on this resource is about to hold the secret: others yield to it.
    ctx.index.claim(&fetched.claimant, &fingerprint, true);

    let prev = &fetched.observed.status;
    // NB: a Secret that cannot be written (admission webhook, quota, immutable, RBAC) would
    // make the call revoke the stored token for nothing, again after every backoff; a
    // server-side dry run of the same apply finds out first, at no cost at Clear.
    if let Err(Error::ApplySecret {
        name: target,
        detail,
    }) = dry_run_secret(ctx, cac, base_url.as_str(), spec, &fingerprint, now).await
    {
        let attempt = prev.failed_attempts.saturating_add(1);
        let next_retry = now + schedule::transient_backoff(attempt, schedule::random_jitter());
        let failure = MintFailure {
            reason: status::reasons::SECRET_APPLY_FAILED,
            message: format!(
                "failed to write Secret {target} (server-side dry run, before calling Clear): {detail}"
            ),
            next_retry: Some(next_retry),
            may_have_minted: false,
        };
        let next = status::mint_failed(prev, &failure, health, cac.meta().generation, now);
        write_status(ctx, api, &name, cac.status.as_ref(), &next).await?;
        warn!(secret = %target, error = %detail, "the token Secret cannot be written; not calling Clear");
        let notice = Notice::MintFailed {
            reason: failure.reason,
            message: failure.message.clone(),
        };
        events::publish(&ctx.recorder, &cac.object_ref(&()), notice).await;
        ctx.metrics.set_ready(&namespace, &name, health.is_usable());
        return Ok(Some(next_retry));
    }
    let counted = status::before_mint(prev, &fingerprint, &spec.config_hash, now);
    write_status(ctx, api, &name, cac.status.as_ref(), &counted).await?;
    info!(reason = status::describe_mint_reason(&reason), client_secret = %fingerprint, "calling Clear for a new token");
    // NB: the fence was checked by the status write just above; checked again because that
    // write may have taken a while.
    ctx.fence.check()?;
    let started = std::time::Instant::now();
    let result = ctx.clear.mint(base_url, client_secret, now).await;
    let elapsed = started.elapsed();
    let generation = cac.meta().generation;
    let issued = match result {
        Ok(issued) => {
            ctx.metrics.observe_clear_call("issued", elapsed);
            issued
        }
        Err(error) => {
            ctx.metrics
                .observe_clear_call(error.metric_label(), elapsed);
            let next_retry = match error.class() {
                FailureClass::Rejected => None,
                FailureClass::RateLimited { retry_at } => Some(retry_at),
                FailureClass::Transient => {
                    let attempt = counted.failed_attempts.saturating_add(1);
                    Some(now + schedule::transient_backoff(attempt, schedule::random_jitter()))
                }
            };
            let failure = MintFailure {
                reason: error.reason(),
                message: error.to_string(),
                next_retry,
                may_have_minted: error.may_have_minted(),
            };
            let next =
                status::mint_failed(&counted, &failure, health, generation, now_seconds(ctx));
            write_status(ctx, api, &name, Some(&counted), &next).await?;
            warn!(reason = error.reason(), %error, "failed to mint a token; the stored Secret is left as it was");
            let notice = Notice::MintFailed {
                reason: error.reason(),
                message: failure.message.clone(),
            };
            events::publish(&ctx.recorder, &cac.object_ref(&()), notice).await;
            let usable = health.is_usable() && !failure.may_have_minted;
            ctx.metrics.set_ready(&namespace, &name, usable);
            return Ok(Some(next_retry.unwrap_or(now + schedule::REJECTED_RECHECK)));
        }
    };

    let issued_at = now_seconds(ctx);
    let (valid_till, clamped) = schedule::clamp_valid_till(issued_at, issued.valid_till);
    if clamped {
        warn!(
            valid_till = ?issued.valid_till,
            %issued_at,
            "Clear's valid_till is not after the issue time (clock skew?); assuming a lifetime of one hour"
        );
    }
    let record = TokenRecord {
        issued_at,
        valid_till,
        client_secret_fingerprint: fingerprint,
        config_hash: spec.config_hash.clone(),
        // NB: whatever regenerate value is present now is honoured by this mint, including
        // one that was already there when the resource was created.
        regenerate: fetched.observed.regenerate_request.clone(),
        token_fingerprint: issued.token.fingerprint(),
    };
    let applied = apply_secret(ctx, cac, base_url.as_str(), &issued.token, &record).await;
    drop(issued);
    if let Err(Error::ApplySecret {
        name: target,
        detail,
    }) = applied
    {
        // NB: the new token is lost and the stored one revoked; retrying at once would mint
        // in a loop if the write keeps failing (RBAC, quota), so it backs off like a failure.
        let attempt = counted.failed_attempts.saturating_add(1);
        let next_retry = now + schedule::transient_backoff(attempt, schedule::random_jitter());
        let failure = MintFailure {
            reason: status::reasons::SECRET_APPLY_FAILED,
            message: format!("failed to write the new token to Secret {target}: {detail}"),
            next_retry: Some(next_retry),
            may_have_minted: true,
        };
        let next = status::mint_failed(&counted, &failure, health, generation, now_seconds(ctx));
        write_status(ctx, api, &name, Some(&counted), &next).await?;
        warn!(secret = %target, error = %detail, "failed to write the new token; retrying with backoff");
        let notice = Notice::MintFailed {
            reason: failure.reason,
            message: failure.message.clone(),
        };
        events::publish(&ctx.recorder, &cac.object_ref(&()), notice).await;
        ctx.metrics.set_ready(&namespace, &name, false);
        return Ok(Some(next_retry));
    }
    applied?;
    if let Some(previous) = &fetched.previous_secret {
        // NB: the new token revoked the one still sitting under the old target name.
        retire_previous_secret(ctx, cac, &namespace, previous).await?;
    }
    let renewal = schedule::renewal_time(record.issued_at, record.valid_till, spec.renew_before);
    let target = cac.target_secret_name();
    let done = status::minted(&counted, &record, renewal, &target, generation, issued_at);
    write_status(ctx, api, &name, Some(&counted), &done).await?;
    info!(reason = status::describe_mint_reason(&reason), token = %record.token_fingerprint, secret = %target, "new token written");
    let reference = cac.object_ref(&());
    let notice = Notice::Minted {
        reason,
        token_fingerprint: record.token_fingerprint.clone(),
        valid_till: record.valid_till,
    };
    events::publish(&ctx.recorder, &reference, notice).await;
    ctx.metrics.set_ready(&namespace, &name, true);
    ctx.metrics
        .set_token_expiry(&namespace, &name, record.valid_till);
    ctx.fence.check()?;
    let notices = restart::restart_targets(
        &ctx.client,
        &namespace,
        &cac.spec.rollout_restart_targets,
        issued_at,
    )
    .await;
    for notice in notices {
        events::publish(&ctx.recorder, &reference, notice).await;
    }
    Ok(renewal)
}

/// Server-side dry run of the Secret apply a mint would make (with a placeholder token).
async fn dry_run_secret(
    ctx: &Context,
    cac: &ClearApiClient,
    base_url: &str,
    spec: &decide::ValidSpec,
    fingerprint: &str,
    now: Timestamp,
) -> Result<(), Error> {
    let record = TokenRecord {
        issued_at: now,
        valid_till: None,
        client_secret_fingerprint: fingerprint.to_string(),
        config_hash: spec.config_hash.clone(),
        regenerate: None,
        token_fingerprint: "dry-run".to_string(),
    };
    let placeholder = AccessToken::new("dry-run-placeholder".to_string());
    let desired = secret::build_secret(cac, base_url, &placeholder, &record);
    server_side_apply(ctx, &desired, Write::DryRun).await
}

/// Whether a server-side apply stores anything.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Write {
    DryRun,
    Store,
}

/// Server-side applies `desired` as the operator's field manager (force: the operator owns
/// these fields); an error names the Secret, never its content.
async fn server_side_apply(ctx: &Context, desired: &Secret, write: Write) -> Result<(), Error> {
    let name = desired.name_any();
    let secrets: Api<Secret> =
        Api::namespaced(ctx.client.clone(), &desired.namespace().unwrap_or_default());
    let params = match write {
        Write::DryRun => PatchParams::apply(FIELD_MANAGER).force().dry_run(),
        Write::Store => PatchParams::apply(FIELD_MANAGER).force(),
    };
    match secrets.patch(&name, &params, &Patch::Apply(desired)).await {
        Ok(_) => Ok(()),
        Err(e) => Err(Error::ApplySecret {
            name,
            detail: error::sanitize(&e),
        }),
    }
}

/// Empties our Secret left under a previous target name (if this replica still leads): a
/// server-side apply of its labels, owner reference and a note only, so every key and
/// annotation the operator wrote (the token first) is removed from it.
// NB: not a delete. The chart grants no `delete` on Secrets (issue 8: a compromised
// operator must not be able to delete every Secret it can see); an emptied Secret holds
// no token, revoked or live, and goes with the resource when the policy is Delete.
async fn retire_previous_secret(
    ctx: &Context,
    cac: &ClearApiClient,
    namespace: &str,
    name: &str,
) -> Result<(), Error> {
    ctx.fence.check()?;
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), namespace);
    // NB: an apply would create a Secret that is already gone; there is nothing to empty then.
    let exists = secrets
        .get_metadata_opt(name)
        .await
        .map_err(|source| Error::ReadTargetSecret {
            name: name.to_string(),
            source,
        })?
        .is_some();
    if !exists {
        return Ok(());
    }
    server_side_apply(ctx, &secret::retired(cac, name), Write::Store).await
}

/// Writes status, if this replica still leads.
async fn write_status(
    ctx: &Context,
    api: &Api<ClearApiClient>,
    name: &str,
    current: Option<&crate::resource::ClearApiClientStatus>,
    next: &crate::resource::ClearApiClientStatus,
) -> Result<(), Error> {
    ctx.fence.check()?;
    status::apply(api, name, current, next)
        .await
        .map_err(Error::PatchStatus)
}

/// Server-side applies the target Secret (force: the operator owns these fields), if this
/// replica still leads.
async fn apply_secret(
    ctx: &Context,
    cac: &ClearApiClient,
    base_url: &str,
    token: &AccessToken,
    record: &TokenRecord,
) -> Result<(), Error> {
    ctx.fence.check()?;
    let desired = secret::build_secret(cac, base_url, token, record);
    server_side_apply(ctx, &desired, Write::Store).await
}

/// On deletion with revokeOnDelete: mint one token and drop it, so the token handed out
/// stops working. Lets go (with a Warning) when that is impossible or would harm another
/// resource.
async fn revoke_on_delete(
    obj: &ClearApiClient,
    api: &Api<ClearApiClient>,
    ctx: &Context,
) -> Result<Action, Error> {
    let name = obj.name_any();
    let namespace = obj.namespace().unwrap_or_default();
    let reference = obj.object_ref(&());
    let Some(fetched) = observe::fetch(ctx, api, &name).await? else {
        return Ok(Action::await_change());
    };
    let skip = |why: &str| Notice::RevokeSkipped {
        why: format!("the token was not revoked on delete: {why}"),
    };
    let status = &fetched.observed.status;
    // NB: a revoke already recorded (the finalizer patch after it failed, e.g. on a
    // conflict) is not repeated: one call per deletion.
    if status::ready_condition(Some(status)).is_some_and(|c| c.reason == status::reasons::REVOKED) {
        info!("revoke-on-delete already done; releasing the resource");
        return Ok(Action::await_change());
    }
    let notice = match (&fetched.client_secret, &fetched.base_url) {
        _ if status.token_fingerprint.is_none() => skip("no token was ever issued"),
        _ if fetched.observed.conflict_with.is_some() => skip(
            "another ClearApiClient holds the same client secret and minting would revoke its token",
        ),
        (None, _) => skip("the client secret is missing"),
        (_, None) => skip("the spec has no usable base URL"),
        (Some(secret), _)
            if status.last_failure_reason.as_deref()
                == Some(status::reasons::CLIENT_SECRET_REJECTED)
                && status.client_secret_fingerprint.as_deref()
                    == Some(secret.fingerprint().as_str()) =>
        {
            skip("Clear rejected the client secret")
        }
        (Some(secret), Some(base_url)) => {
            let lock = ctx.index.lock_for(&secret.fingerprint());
            let _serialized = lock.lock().await;
            ctx.fence.check()?;
            let started = std::time::Instant::now();
            let result = ctx.clear.mint(base_url, secret, now_seconds(ctx)).await;
            match result {
                // NB: the new token is dropped right here, never written anywhere.
                Ok(_discarded) => {
                    ctx.metrics.observe_clear_call("issued", started.elapsed());
                    let next = status::revoked(status, obj.meta().generation, now_seconds(ctx));
                    write_status(ctx, api, &name, obj.status.as_ref(), &next).await?;
                    Notice::Revoked
                }
                Err(error) => {
                    ctx.metrics
                        .observe_clear_call(error.metric_label(), started.elapsed());
                    if error.class() != FailureClass::Rejected {
                        return Err(Error::Revoke(error));
                    }
                    skip(&error.to_string())
                }
            }
        }
    };
    info!(
        revoked = matches!(notice, Notice::Revoked),
        "revoke-on-delete finished"
    );
    events::publish(&ctx.recorder, &reference, notice).await;
    forget(ctx, &namespace, &name);
    Ok(Action::await_change())
}

/// Adds or removes the revoke-on-delete finalizer. The merge patch carries the
/// resourceVersion read, so a concurrent change of the list fails (and is retried) instead
/// of being overwritten.
async fn set_finalizer(
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

fn forget(ctx: &Context, namespace: &str, name: &str) {
    ctx.metrics.forget(namespace, name);
    ctx.index.forget(namespace, name);
    let key = (namespace.to_string(), name.to_string());
    ctx.exported_lock().remove(&key);
    ctx.failures_lock().remove(&key);
}

impl Context {
    /// Forgets every per-resource series, claim and failure streak (leadership lost).
    pub fn forget_all(&self) {
        let exported: Vec<(String, String)> = std::mem::take(&mut *self.exported_lock())
            .into_iter()
            .collect();
        for (namespace, name) in exported {
            forget(self, &namespace, &name);
        }
        self.metrics.forget_all();
        self.index.forget_all_claims();
    }

    /// Consecutive failed reconciles of this resource (0 after a success).
    pub fn failure_streak(&self, namespace: &str, name: &str) -> u32 {
        self.failures_lock()
            .get(&(namespace.to_string(), name.to_string()))
            .copied()
            .unwrap_or(0)
    }

    fn failures_lock(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::BTreeMap<(String, String), u32>> {
        self.failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn exported_lock(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::BTreeSet<(String, String)>> {
        self.exported
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Drops the metrics and claims of resources that are gone from the controller's view.
    /// NB: kube-runtime does not reconcile a deleted object that has no finalizer, so this
    /// sweep (run periodically by the controller) is where their series disappear.
    pub fn forget_deleted(&self) {
        let present: std::collections::BTreeSet<(String, String)> =
            self.index.keys().into_iter().collect();
        let gone: Vec<(String, String)> =
            self.exported_lock().difference(&present).cloned().collect();
        for (namespace, name) in gone {
            forget(self, &namespace, &name);
        }
    }
}

/// The clock, to the second: what status and annotations can hold, so that what the
/// operator computes equals what it reads back.
fn now_seconds(ctx: &Context) -> Timestamp {
    let now = ctx.clock.now();
    Timestamp::from_second(now.as_second()).unwrap_or(now)
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
