//! The writes a reconcile makes, each fenced: a replica that lost or released the Lease
//! writes nothing more. Secret writes are one server-side apply as the operator's field
//! manager (dry run, token Secret, retired Secret); errors name the Secret, never its
//! content.
//!
//! NB: each write is one request, sent only after the fence check: the operator's
//! Kubernetes client has no retry layer (see [`crate::kube_client`]), so no write is re-sent
//! behind the fence's back. Writes that can race carry a precondition: status writes the
//! resourceVersion the reconcile read (or last wrote), token Secret writes the Secret's, so
//! a late or stale write fails with 409 instead of landing over a newer one.

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Secret;
use kube::{
    Api, ResourceExt,
    api::{Patch, PatchParams},
};

use crate::{kube_client::FIELD_MANAGER, services::versions};

use super::{
    context::Context,
    decide::ValidSpec,
    error::{self, Error},
    secret::{self, TokenRecord},
    status,
};
use crate::{
    clear::AccessToken,
    resource::{ClearApiClient, ClearApiClientStatus},
};

/// Whether a server-side apply stores anything.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Write {
    DryRun,
    Store,
}

/// Writes status, if this replica still leads, on condition that the resource is still at
/// `resource_version` (when given); returns the resourceVersion after the write.
pub(super) async fn status(
    ctx: &Context,
    api: &Api<ClearApiClient>,
    name: &str,
    current: Option<&ClearApiClientStatus>,
    next: &ClearApiClientStatus,
    resource_version: Option<&str>,
) -> Result<Option<String>, Error> {
    ctx.fence.check()?;
    let namespace = api.namespace().unwrap_or_default();
    // NB: while the write is in flight, and after one whose outcome is unknown, the cache
    // cannot stand in for a fresh read of the resource, and its watch events wait for the
    // answer (see `versions`).
    let in_flight = ctx
        .services
        .versions
        .own
        .writing(versions::Object::Status, namespace, name);
    let written = bounded(
        "the ClearApiClient status",
        status::apply(api, name, current, next, resource_version),
    )
    .await?
    .map_err(Error::PatchStatus)?;
    in_flight.done(written.clone());
    // NB: here, after the write, so that the gauge says what status says (every status
    // write goes through this function), and never a renewal that a failed write lost.
    ctx.metrics
        .set_renewal_time(namespace, name, next.renewal_time.as_ref().map(|t| t.0));
    Ok(written)
}

/// How long one write may take. NB: a write that hangs (an API server frozen mid-request)
/// would hold the reconcile, and with it the resource, for the client's read timeout of
/// several minutes; the write's own precondition keeps a late landing harmless.
pub const WRITE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

async fn bounded<T>(
    what: &'static str,
    write: impl std::future::Future<Output = T>,
) -> Result<T, Error> {
    tokio::time::timeout(WRITE_TIMEOUT, write)
        .await
        .map_err(|_| Error::WriteTimedOut {
            what,
            secs: WRITE_TIMEOUT.as_secs(),
        })
}

/// Server-side applies the target Secret holding `token`, if this replica still leads, on
/// condition that the Secret is still at `resource_version` (`None`: it did not exist).
/// `call_id` marks a token fresh from a call (see [`secret::CALL_ID_ANNOTATION`]).
pub(super) async fn token_secret(
    ctx: &Context,
    cac: &ClearApiClient,
    base_url: &str,
    token: &AccessToken,
    record: &TokenRecord,
    call_id: Option<&str>,
    resource_version: Option<&str>,
) -> Result<(), Error> {
    ctx.fence.check()?;
    let mut desired = secret::build_secret(cac, base_url, token, record, call_id);
    desired.metadata.resource_version = resource_version.map(str::to_string);
    server_side_apply(ctx, &desired, Write::Store).await
}

/// Server-side dry run of the Secret apply a mint would make: the same shape and at least
/// the same size (the longest token Clear documents, a full expiry, the regenerate value
/// and call id the real write will carry), with a placeholder token, which the keys
/// rendered from `target.template` carry too (so they have their real shape and size).
// NB: a Secret that cannot be written (admission webhook, quota, immutable, RBAC, size)
// would make a call to Clear revoke the stored token for nothing; this finds out at no cost.
pub(super) async fn dry_run_token_secret(
    ctx: &Context,
    cac: &ClearApiClient,
    base_url: &str,
    spec: &ValidSpec,
    fingerprint: &str,
    call_id: &str,
    now: Timestamp,
) -> Result<(), Error> {
    let record = TokenRecord {
        issued_at: now,
        valid_till: Some(now),
        client_secret_fingerprint: fingerprint.to_string(),
        config_hash: spec.config_hash.clone(),
        regenerate: cac.regenerate_request().map(str::to_string),
        token_fingerprint: "0".repeat(crate::clear::FINGERPRINT_HEX_CHARS),
    };
    let placeholder = AccessToken::new("x".repeat(crate::clear::MAX_TOKEN_CHARS));
    let desired = secret::build_secret(cac, base_url, &placeholder, &record, Some(call_id));
    server_side_apply(ctx, &desired, Write::DryRun).await
}

/// Empties our Secret left under a previous target name (if this replica still leads): a
/// server-side apply of its labels, owner reference and a note only, so every key and
/// annotation the operator wrote (the token first) is removed from it.
// NB: not a delete. The chart grants no `delete` on Secrets (issue 8: a compromised
// operator must not be able to delete every Secret it can see); an emptied Secret holds
// no token, revoked or live, and goes with the resource when the policy is Delete.
pub(super) async fn retire_previous_secret(
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

/// Server-side applies `desired` as the operator's field manager (force: the operator owns
/// these fields).
async fn server_side_apply(ctx: &Context, desired: &Secret, write: Write) -> Result<(), Error> {
    let name = desired.name_any();
    let secrets: Api<Secret> =
        Api::namespaced(ctx.client.clone(), &desired.namespace().unwrap_or_default());
    let params = match write {
        Write::DryRun => PatchParams::apply(FIELD_MANAGER).force().dry_run(),
        Write::Store => PatchParams::apply(FIELD_MANAGER).force(),
    };
    let namespace = desired.namespace().unwrap_or_default();
    let in_flight = (write == Write::Store).then(|| {
        ctx.services
            .versions
            .own
            .writing(versions::Object::Secret, &namespace, &name)
    });
    match bounded(
        "the target Secret",
        secrets.patch(&name, &params, &Patch::Apply(desired)),
    )
    .await?
    {
        Ok(written) => {
            if let Some(in_flight) = in_flight {
                in_flight.done(written.metadata.resource_version);
            }
            Ok(())
        }
        Err(e) => Err(Error::ApplySecret {
            name,
            detail: error::sanitize(&e),
        }),
    }
}
