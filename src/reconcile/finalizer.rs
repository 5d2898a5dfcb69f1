//! The revoke-on-delete finalizer: while `revokeOnDelete` is true, a finalizer holds the
//! resource until one token was minted and dropped (revoking the one handed out), or until
//! that is impossible or would harm another resource (a Warning says so).

use kube::{
    Api, Resource, ResourceExt,
    api::{Patch, PatchParams},
    runtime::controller::Action,
};
use tracing::info;

use super::{Context, error::Error, events::Notice, now_seconds, observe, status, write};
use crate::{
    clear::FailureClass,
    reason::Reason,
    resource::{ClearApiClient, REVOKE_FINALIZER},
};

/// On deletion with revokeOnDelete: mint one token and drop it, so the token handed out
/// stops working. Lets go (with a Warning) when that is impossible or would harm another
/// resource.
pub(super) async fn revoke_on_delete(
    obj: &ClearApiClient,
    api: &Api<ClearApiClient>,
    ctx: &Context,
) -> Result<Action, Error> {
    let name = obj.name_any();
    let namespace = obj.namespace().unwrap_or_default();
    let reference = obj.object_ref(&());
    let Some(fetched) = observe::fetch(ctx, api, &name, observe::Reads::Fresh).await? else {
        return Ok(Action::await_change());
    };
    // NB: never silent: a Warning Event (which a namespace being deleted may refuse, so
    // also) a log line and `clear_operator_revoke_skipped_total{why}`.
    let skip = |label: &'static str, why: &str| {
        ctx.metrics.observe_revoke_skipped(label);
        tracing::warn!(why = label, "the token was not revoked on delete: {why}");
        Notice::RevokeSkipped {
            why: format!("the token was not revoked on delete: {why}"),
        }
    };
    let status = &fetched.observed.status;
    // NB: a revoke already recorded (the finalizer patch after it failed, e.g. on a
    // conflict) is not repeated: one call per deletion.
    if status::ready_condition(Some(status)).is_some_and(|c| c.reason == Reason::Revoked.as_str()) {
        info!("revoke-on-delete already done; releasing the resource");
        return Ok(Action::await_change());
    }
    let notice = match (&fetched.client_secret, &fetched.base_url) {
        _ if status.token_fingerprint.is_none() => skip("no_token", "no token was ever issued"),
        _ if fetched.observed.conflict_with.is_some() => skip(
            "conflict",
            "another ClearApiClient holds the same client secret and minting would revoke its token",
        ),
        (None, _) => skip(
            "client_secret_missing",
            "the client secret is missing (a namespace being deleted removes it before this finalizer runs; the handed-out token stays live until it expires or the API client is deleted in Clear)",
        ),
        (_, None) => skip("no_base_url", "the spec has no usable base URL"),
        (Some(secret), _)
            if status.last_failure_reason.as_deref()
                == Some(Reason::ClientSecretRejected.as_str())
                && status::call_secret(status) == Some(secret.fingerprint().as_str()) =>
        {
            skip("client_secret_rejected", "Clear rejected the client secret")
        }
        (Some(secret), Some(base_url)) => {
            let lock = ctx.index.lock_for(&secret.fingerprint());
            let _serialized = lock.lock().await;
            ctx.fence.check()?;
            // NB: a revoke is a mint whose token is discarded: it counts against the secret's
            // daily limit like any other call.
            ctx.ledger
                .count(&secret.fingerprint(), now_seconds(ctx), &ctx.metrics);
            let started = std::time::Instant::now();
            let result = ctx.clear.mint(base_url, secret, now_seconds(ctx)).await;
            match result {
                // NB: the new token is dropped right here, never written anywhere.
                Ok(_discarded) => {
                    ctx.metrics.observe_clear_call("issued", started.elapsed());
                    let next = status::revoked(status, obj.meta().generation, now_seconds(ctx));
                    write::status(
                        ctx,
                        api,
                        &name,
                        obj.status.as_ref(),
                        &next,
                        obj.metadata.resource_version.as_deref(),
                    )
                    .await?;
                    Notice::Revoked
                }
                Err(error) => {
                    ctx.metrics
                        .observe_clear_call(error.metric_label(), started.elapsed());
                    if error.class() != FailureClass::Rejected {
                        return Err(Error::Revoke(error));
                    }
                    skip("client_secret_rejected", &error.to_string())
                }
            }
        }
    };
    info!(
        revoked = matches!(notice, Notice::Revoked),
        "revoke-on-delete finished"
    );
    ctx.publish(&reference, notice).await;
    ctx.forget(&namespace, &name);
    Ok(Action::await_change())
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
