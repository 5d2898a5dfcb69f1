//! The keep step: the stored token stays. Drifted Secret metadata is re-applied, a token
//! left under a renamed target is moved, and restarts left pending are retried, all without
//! calling Clear.

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Secret;
use kube::{Api, Resource};
use tracing::{info, warn};

use super::{
    decide::WindowOutcome,
    error::{self, Error},
    events::Notice,
    restart, schedule,
    secret::{self, TokenRecord},
    status,
    step::Step,
    write,
};
use crate::resource::ClearApiClientStatus;

/// What to do with the target Secret while keeping the token.
pub(super) enum Refresh {
    /// Nothing: the Secret is as it should be.
    No,
    /// Re-apply the target Secret (drifted labels, annotations or descriptive keys).
    InPlace,
    /// Move the token from our Secret under a previous target name, then empty that one.
    MoveFrom(String),
}

pub(super) async fn keep(
    step: &Step<'_>,
    refresh: Refresh,
    record: &TokenRecord,
    renewal_time: Option<Timestamp>,
    windows: Option<WindowOutcome>,
) -> Result<Option<Timestamp>, Error> {
    let (ctx, fetched) = (step.ctx, step.fetched);
    let cac = &fetched.cac;
    // NB: the configuration the token is recorded under changes (an equivalent spelling, an
    // edited workspace): status first, since the Secret's `workspace` key is what told the
    // old workspace apart; were the Secret rewritten first and status lost, the next
    // reconcile could no longer tell an edit of the workspace from a new configuration.
    let mut written = cac.status.clone();
    if step.prev().token_config_hash.as_deref() != Some(record.config_hash.as_str())
        && matches!(refresh, Refresh::InPlace)
    {
        let mut first = step.prev().clone();
        first.token_config_hash = Some(record.config_hash.clone());
        step.write_status(written.as_ref(), &first).await?;
        written = Some(first);
    }
    if !matches!(refresh, Refresh::No) {
        refresh_secret(step, &refresh, record).await?;
    }
    let prev = step.prev();
    if prev.mint_started_at.is_some()
        && prev.token_fingerprint.as_deref() != Some(record.token_fingerprint.as_str())
    {
        // NB: told apart by its call id (see secret::held_token), not guessed.
        info!(token = %record.token_fingerprint, "the Secret holds the answer to the call in flight (its status write was lost); recording it without a call");
    }
    ctx.services
        .index
        .claim(&fetched.claimant, &record.client_secret_fingerprint, true);
    let mut next = status::kept(
        step.prev(),
        record,
        renewal_time,
        &cac.target_secret_name(),
        cac.meta().generation,
        step.now,
    );
    status::set_renewal_windows(
        &mut next,
        windows.as_ref(),
        renewal_time,
        cac.meta().generation,
        step.now,
    );
    let pending = restart::still_listed(
        &step.prev().pending_restarts,
        &cac.spec.rollout_restart_targets,
    );
    next.pending_restarts.clear();
    let restart_retry = if pending.is_empty() {
        None
    } else {
        step.restart(&pending, record.issued_at, &mut next).await?
    };
    step.write_status(written.as_ref(), &next).await?;
    warn_if_windows_missed(step, step.prev(), &next).await;
    let (namespace, name) = step.key();
    ctx.metrics.set_ready(&namespace, &name, true);
    ctx.metrics
        .set_token_expiry(&namespace, &name, record.valid_till);
    Ok(schedule::earliest(renewal_time, restart_retry))
}

/// Tells the owner, once, that the renewal will happen outside the renewal windows: when the
/// `RenewalWindows` condition turns False (not on every reconcile while it stays so).
pub(super) async fn warn_if_windows_missed(
    step: &Step<'_>,
    prev: &ClearApiClientStatus,
    next: &ClearApiClientStatus,
) {
    if !status::renewal_windows_turned_false(prev, next) {
        return;
    }
    let why = status::condition(next, status::condition_types::RENEWAL_WINDOWS)
        .map(|c| c.message.clone())
        .unwrap_or_default();
    warn!(%why, "no renewal window fits before the token expires");
    step.publish(Notice::RenewalWindowMissed { why }).await;
}

/// Re-applies the target Secret with the token it (or the Secret it moves from) holds.
async fn refresh_secret(
    step: &Step<'_>,
    refresh: &Refresh,
    record: &TokenRecord,
) -> Result<(), Error> {
    let (ctx, fetched) = (step.ctx, step.fetched);
    let Some(base_url) = &fetched.base_url else {
        return Ok(());
    };
    let cac = &fetched.cac;
    let (namespace, _) = step.key();
    let target = cac.target_secret_name();
    // NB: the fetch kept the target's token; only a move reads the old Secret whole, to
    // carry its token into the apply.
    let moved;
    let token = match refresh {
        Refresh::MoveFrom(old) => {
            let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &namespace);
            moved = secrets
                .get_opt(old)
                .await
                .map_err(|e| Error::ReadStoredToken {
                    name: old.clone(),
                    detail: error::sanitize(&e),
                })?
                .as_ref()
                .and_then(secret::stored_token);
            moved.as_ref()
        }
        _ => fetched.stored_token.as_ref(),
    };
    let Some(token) = token else {
        return Ok(());
    };
    // NB: the answer to the call in flight keeps its call id until status records it, so
    // that a status write lost after this one still tells it apart from a foreign token.
    let prev = step.prev();
    let call_id = prev
        .call_id
        .as_deref()
        .filter(|_| prev.token_fingerprint.as_deref() != Some(record.token_fingerprint.as_str()));
    write::token_secret(
        ctx,
        cac,
        base_url.as_str(),
        token,
        record,
        call_id,
        fetched.target_resource_version.as_deref(),
    )
    .await?;
    if let Refresh::MoveFrom(old) = refresh {
        write::retire_previous_secret(ctx, cac, &namespace, old).await?;
        info!(from = %old, secret = %target, "moved the token to the renamed target Secret without minting");
    } else {
        info!(secret = %target, "re-applied drifted Secret metadata without minting");
    }
    step.publish(Notice::SecretRefreshed).await;
    Ok(())
}
