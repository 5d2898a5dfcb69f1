//! The fetch step: reads what the decision needs, fresh from the API server (the cache may
//! lag behind this controller's own last write, and acting on a stale status could mint
//! twice). The client secret's value is kept only as a [`ClientSecret`]; the decision sees
//! its fingerprint. The target Secret is read whole, and reduced at once to its token.

use k8s_openapi::api::core::v1::Secret;
use kube::{Api, ResourceExt, core::PartialObjectMeta};

use super::{
    context::Context,
    decide::{
        Adoption, ClientSecretState, Observed, PreviousTarget, Suspension, TargetState, ValidSpec,
    },
    error::{Error, sanitize},
    schedule,
    secret::{self, Held, Ownership, TokenRecord},
    windows,
};
use crate::{
    clear::{AccessToken, BaseUrl, ClientSecret, documented_base_url, resolve_base_url},
    resource::{AdoptFrom, ClearApiClient, REGENERATE_ANNOTATION},
    services::{conflict::Claimant, versions::SecretSeen},
};

/// What the fetch step found.
pub struct Fetched {
    pub cac: ClearApiClient,
    pub observed: Observed,
    /// Present when the client secret could be read; needed only to mint.
    pub client_secret: Option<ClientSecret>,
    pub base_url: Option<BaseUrl>,
    pub claimant: Claimant,
    /// Whether the stored token was minted from the current client secret.
    pub holds: bool,
    /// Our Secret under the target name of before a rename: deleted once the target holds
    /// the token, so no Secret of ours keeps a token that the next mint revokes.
    pub previous_secret: Option<String>,
    /// The token in the target Secret when it is the one the operator knows (status names
    /// it, or it is the answer to the call in flight): what a re-apply writes back.
    pub stored_token: Option<AccessToken>,
    /// The target Secret's resourceVersion as read (`None`: absent): the precondition of
    /// this reconcile's write of it.
    pub target_resource_version: Option<String>,
    /// The token `spec.adoptFrom` hands over (see [`Adoption`]).
    pub adopt_token: Option<AccessToken>,
}

/// How the fetch may read.
#[derive(Clone, Copy)]
pub enum Reads<'a> {
    /// Everything from the API server, the client secret's value included.
    Fresh,
    /// What the watch caches answer as well as a read would (issue 17): the resource as the
    /// controller's store holds it (`cached`) when this process's own writes do not make
    /// it stale (see [`crate::services::versions::OwnWrites::freshness`]); the client secret's
    /// fingerprint when the Secret is still at the version it was read at (its value is
    /// then read only to mint, see [`client_secret_value`]); an absent target Secret when
    /// nothing could be in it. Everything else is read.
    Cached(&'a ClearApiClient),
}

/// Reads the resource, its client secret, its target Secret's metadata, and whether an
/// older resource holds the same client secret. `None` when the resource is gone.
pub async fn fetch(
    ctx: &Context,
    api: &Api<ClearApiClient>,
    name: &str,
    reads: Reads<'_>,
) -> Result<Option<Fetched>, Error> {
    let cached = match reads {
        Reads::Cached(cached) => cached_resource(ctx, cached),
        Reads::Fresh => None,
    };
    let cac = match cached {
        Some(cac) => cac,
        None => match api.get_opt(name).await.map_err(Error::ReadResource)? {
            Some(cac) => cac,
            None => return Ok(None),
        },
    };
    let namespace = cac.namespace().unwrap_or_default();
    let use_caches = matches!(reads, Reads::Cached(_));
    let (mut base_url, mut spec) = check_spec(
        &cac,
        ctx.settings.allow_http,
        ctx.settings.policy.renewal_jitter_percent,
    );
    // NB: the allow-list is checked before the client secret is read (confused deputy: the
    // tenant picks both the Secret and the host); without a base URL nothing is called.
    let refused = base_url
        .as_ref()
        .and_then(|url| ctx.settings.allowed_base_urls.check(url).err());
    let (client_secret, client_secret_state) = match refused {
        Some(refusal) => {
            base_url = None;
            let detail = refusal.to_string();
            (None, ClientSecretState::Withheld { detail })
        }
        None => match cached_fingerprint(ctx, &namespace, &cac).filter(|_| use_caches) {
            Some(fingerprint) => (None, ClientSecretState::Present { fingerprint }),
            None => match read_client_secret(ctx, &namespace, &cac).await? {
                Ok(secret) => {
                    let fingerprint = secret.fingerprint();
                    (Some(secret), ClientSecretState::Present { fingerprint })
                }
                Err(Unreadable::Missing(detail)) => (None, ClientSecretState::Missing { detail }),
                Err(Unreadable::Invalid(detail)) => (None, ClientSecretState::Invalid { detail }),
            },
        },
    };

    let target_name = cac.target_secret_name();
    let status = cac.status.clone().unwrap_or_default();
    // NB: read whole (not as metadata) to tell whether `accessToken` still holds the token the
    // annotations name; only that token is kept (for a re-apply), and the error is sanitized
    // because the response carries it.
    let full: Api<Secret> = Api::namespaced(ctx.client.clone(), &namespace);
    let permit = ctx.services.secret_reads.acquire().await;
    let target_secret = if use_caches && known_absent(ctx, &namespace, &target_name, &status) {
        ctx.metrics.observe_request_saved("absent_target");
        None
    } else {
        full.get_opt(&target_name)
            .await
            .map_err(|e| Error::ReadStoredToken {
                name: target_name.clone(),
                detail: sanitize(&e),
            })?
    };
    let mut stored_token = None;
    let target_resource_version = target_secret
        .as_ref()
        .and_then(|s| s.metadata.resource_version.clone());
    // NB: the workspace is descriptive (never sent to Clear): a token minted under the
    // workspace the Secret still records is the same configuration as the spec's.
    if let (Ok(valid), Some(url), Some(found)) = (&mut spec, &base_url, &target_secret)
        && let Some(recorded) = secret::recorded_workspace(found, &cac)
        && recorded != cac.spec.workspace
    {
        let mut then = cac.clone();
        then.spec.workspace = recorded;
        let (canonical, equivalent) = secret::resolved_config_hash(
            &then,
            url.as_str(),
            documented_base_url(cac.spec.region, cac.spec.environment),
        );
        valid.equivalent_config_hashes.push(canonical);
        valid.equivalent_config_hashes.extend(equivalent);
    }
    let target = match target_secret {
        None => TargetState::Absent,
        Some(found) => match secret::ownership(&found.metadata, &cac.name_any()) {
            Ownership::Foreign { detail } => TargetState::Foreign { detail },
            Ownership::Ours => {
                // NB: where `target.template.rename` put it, this spec's or an earlier one's.
                let annotated = found
                    .metadata
                    .annotations
                    .as_ref()
                    .and_then(|a| a.get(secret::TOKEN_FINGERPRINT_ANNOTATION))
                    .map(String::as_str);
                let token = secret::stored_token_for(
                    &found,
                    &cac,
                    &[status.token_fingerprint.as_deref(), annotated],
                );
                let held = token.as_ref().map(AccessToken::fingerprint);
                let drifted = base_url.as_ref().is_some_and(|url| {
                    secret::metadata_drifted(&cac, url.as_str(), &found.metadata)
                });
                let assessed = secret::held_token(&found.metadata, held.as_deref(), &status);
                if matches!(assessed, Held::Current { .. } | Held::CallAnswer(_)) {
                    stored_token = token;
                }
                match assessed {
                    // NB: annotations that no longer copy status are re-applied from it: the
                    // keep step rewrites the Secret, the token stays.
                    Held::Current {
                        record,
                        annotations_match,
                    } => TargetState::Ours {
                        token: Some(record),
                        drifted: drifted || !annotations_match,
                    },
                    Held::CallAnswer(record) => TargetState::Ours {
                        token: Some(record),
                        drifted,
                    },
                    Held::Unknown => TargetState::Unknown,
                    Held::Nothing => TargetState::Ours {
                        token: None,
                        drifted,
                    },
                }
            }
        },
    };
    // NB: held until the Secret is reduced to what is kept of it (see read_client_secret).
    drop(permit);

    // NB: after a rename of target.name, the Secret status names is where the token is.
    let secrets: Api<PartialObjectMeta<Secret>> = Api::namespaced(ctx.client.clone(), &namespace);
    let mut previous_secret = None;
    let mut previous_target = None;
    if let Some(old) = status
        .secret_name
        .as_deref()
        .filter(|old| *old != target_name)
    {
        let meta =
            secrets
                .get_metadata_opt(old)
                .await
                .map_err(|source| Error::ReadTargetSecret {
                    name: old.to_string(),
                    source,
                })?;
        if let Some(meta) = meta
            && secret::ownership(&meta.metadata, &cac.name_any()) == Ownership::Ours
        {
            previous_secret = Some(old.to_string());
            previous_target = secret::read_token_record(&meta.metadata)
                .filter(|r| {
                    status.token_fingerprint.as_deref() == Some(r.token_fingerprint.as_str())
                })
                .filter(|_| matches!(target, TargetState::Absent))
                .map(|record| PreviousTarget {
                    name: old.to_string(),
                    record,
                });
        }
    }

    let claimant = Claimant::of(&cac);
    // NB: this resource holds the secret when its stored token was minted from it.
    let holds = match (&client_secret_state, &target) {
        (
            ClientSecretState::Present { fingerprint },
            TargetState::Ours {
                token: Some(record),
                ..
            },
        ) => record.client_secret_fingerprint == *fingerprint,
        _ => false,
    };
    let conflict_with = match &client_secret_state {
        ClientSecretState::Present { fingerprint } => ctx
            .services
            .index
            .find_conflict(&claimant, fingerprint, holds)
            .map(|c| c.display_to(&claimant)),
        ClientSecretState::Missing { .. }
        | ClientSecretState::Invalid { .. }
        | ClientSecretState::Withheld { .. } => None,
    };

    let client_secret_calls_today = match &client_secret_state {
        ClientSecretState::Present { fingerprint } => ctx
            .services
            .ledger
            .calls_today(fingerprint, ctx.now_seconds()),
        _ => 0,
    };
    // NB: only while no token is held and no call is in flight: afterwards `adoptFrom` is
    // history, and the token Secret is what status-is-the-truth protects.
    let holds_nothing = status.token_fingerprint.is_none()
        && status.mint_started_at.is_none()
        && matches!(
            target,
            TargetState::Absent | TargetState::Ours { token: None, .. }
        );
    let (adoption, adopt_token) = match (&cac.spec.adopt_from, &spec, &client_secret_state) {
        (Some(from), Ok(valid), ClientSecretState::Present { fingerprint }) if holds_nothing => {
            match read_adoptable(ctx, &namespace, from).await? {
                Ok((token, valid_till)) if valid_till.is_none_or(|t| t > ctx.now_seconds()) => {
                    let record = TokenRecord {
                        issued_at: ctx.now_seconds(),
                        valid_till,
                        client_secret_fingerprint: fingerprint.clone(),
                        config_hash: valid.config_hash.clone(),
                        // NB: a regenerate value present at adoption is honoured by it, as
                        // one present at creation is by the first mint.
                        regenerate: cac.regenerate_request().map(str::to_string),
                        token_fingerprint: token.fingerprint(),
                    };
                    let from = from.name.clone();
                    (Some(Adoption::Ready { record, from }), Some(token))
                }
                // NB: expired: nothing live to protect; the first token is minted as usual.
                Ok(_) => (None, None),
                Err(detail) => (Some(Adoption::Invalid { detail }), None),
            }
        }
        _ => (None, None),
    };
    let suspended = if ctx.settings.standby {
        Some(Suspension::Install)
    } else {
        cac.spec.suspend.then_some(Suspension::Resource)
    };
    let observed = Observed {
        adoption,
        suspended,
        client_secret_calls_today,
        name: cac.name_any(),
        target_name,
        spec,
        client_secret: client_secret_state,
        target,
        conflict_with,
        regenerate_request: cac.regenerate_request().map(str::to_string),
        status,
        previous_target,
        clear_recovered_at: base_url
            .as_ref()
            .and_then(|url| ctx.services.circuits.recovered_at(url.as_str())),
    };
    Ok(Some(Fetched {
        cac,
        observed,
        client_secret,
        base_url,
        claimant,
        holds,
        previous_secret,
        stored_token,
        target_resource_version,
        adopt_token,
    }))
}

/// Longest token accepted from `spec.adoptFrom` (as from Clear's answers).
const MAX_ADOPTED_TOKEN_BYTES: usize = crate::clear::MAX_ACCEPTED_TOKEN_CHARS;

/// Reads the token in use and its expiry from the Secret `spec.adoptFrom` names:
/// `Ok(Err(why))` when it is missing or unreadable (a state for the owner to fix).
async fn read_adoptable(
    ctx: &Context,
    namespace: &str,
    from: &AdoptFrom,
) -> Result<Result<(AccessToken, Option<jiff::Timestamp>), String>, Error> {
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), namespace);
    // NB: a Secret is read whole, and tenants choose it: bounded like client secrets.
    let found = {
        let _permit = ctx.services.secret_reads.acquire().await;
        api.get_opt(&from.name)
            .await
            .map_err(|e| Error::ReadClientSecret {
                name: from.name.clone(),
                detail: sanitize(&e),
            })?
    };
    let name = &from.name;
    let Some(found) = found else {
        return Ok(Err(format!(
            "adoptFrom: Secret {name} not found; create it with the token in use and its expiry, or remove adoptFrom to mint a first token (which revokes the one in use)"
        )));
    };
    let text = |key: &str| {
        found
            .data
            .as_ref()
            .and_then(|d| d.get(key))
            .map(|b| String::from_utf8_lossy(&b.0).trim().to_string())
    };
    let Some(token) = text(&from.token_key).filter(|t| !t.is_empty()) else {
        return Ok(Err(format!(
            "adoptFrom: key {} of Secret {name} is missing or empty",
            from.token_key
        )));
    };
    if token.len() > MAX_ADOPTED_TOKEN_BYTES || token.chars().any(char::is_control) {
        return Ok(Err(format!(
            "adoptFrom: key {} of Secret {name} does not hold a token that can be sent as a header (at most {MAX_ADOPTED_TOKEN_BYTES} bytes, no control characters)",
            from.token_key
        )));
    }
    let valid_till = match text(&from.valid_till_key).as_deref() {
        None | Some("") => {
            return Ok(Err(format!(
                "adoptFrom: key {} of Secret {name} is missing: the token's valid_till (RFC 3339 with an offset) or `never`; a token of unknown expiry is not adopted",
                from.valid_till_key
            )));
        }
        Some("never") => None,
        Some(raw) => match crate::clear::parse_valid_till(raw) {
            Ok(till) => Some(till),
            Err(_) => {
                return Ok(Err(format!(
                    "adoptFrom: key {} of Secret {name} is not a date with a UTC offset, nor `never`",
                    from.valid_till_key
                )));
            }
        },
    };
    Ok(Ok((AccessToken::new(token), valid_till)))
}

/// The resource as the controller's store holds it, when that is as fresh as a GET as far
/// as this process's own writes go.
// NB: the cache may lag behind this process's own last write, and acting on a status older
// than it could mint twice: it is used only at exactly the version this process last wrote,
// or when this process never wrote the resource (its store then comes from a consistent
// list and watch; a write by another replica that it may not show yet is caught by the
// resourceVersion precondition of the status write that precedes every call to Clear).
fn cached_resource(ctx: &Context, cached: &ClearApiClient) -> Option<ClearApiClient> {
    let namespace = cached.namespace()?;
    let rv = cached.resource_version();
    let fresh = ctx
        .services
        .versions
        .own
        .freshness(&namespace, &cached.name_any(), rv.as_deref())
        .is_fresh();
    if fresh {
        ctx.metrics.observe_request_saved("cached_resource");
        return Some(cached.clone());
    }
    None
}

/// The client secret's fingerprint, when its Secret is still at the version this process
/// read it at (the metadata watch says so): no read is needed unless a mint follows.
fn cached_fingerprint(ctx: &Context, namespace: &str, cac: &ClearApiClient) -> Option<String> {
    let reference = &cac.spec.client_secret_ref;
    let SecretSeen::At(rv) = ctx
        .services
        .versions
        .secrets
        .get(namespace, &reference.name)
    else {
        return None;
    };
    let fingerprint =
        ctx.services
            .versions
            .fingerprints
            .get(namespace, &reference.name, &reference.key, &rv)?;
    ctx.metrics
        .observe_request_saved("client_secret_fingerprint");
    Some(fingerprint)
}

/// Whether the target Secret is surely absent without reading it: the metadata watch does
/// not list it, and status names no token, no Secret and no call in flight, so nothing this
/// process or another replica wrote could be in it (the first issue of a new resource).
// NB: a Secret created a moment ago that the watch does not list yet is either someone
// else's (the Secret write of the mint that follows carries no precondition, as when the
// Secret is created between a read and that write) or ours from a call whose outcome was
// lost, which status would name as in flight.
fn known_absent(
    ctx: &Context,
    namespace: &str,
    target: &str,
    status: &crate::resource::ClearApiClientStatus,
) -> bool {
    status.token_fingerprint.is_none()
        && status.call_id.is_none()
        && status.mint_started_at.is_none()
        && status.secret_name.is_none()
        && ctx.services.versions.secrets.get(namespace, target) == SecretSeen::Absent
}

/// The client secret's value, read to mint after a decision made on its cached fingerprint
/// (`fetched.client_secret` is `None`); `None` when the Secret no longer holds the secret
/// the decision was made on (it changed meanwhile: the watch event that says so follows).
pub async fn client_secret_value(
    ctx: &Context,
    fetched: &Fetched,
) -> Result<Option<ClientSecret>, Error> {
    let decided = match &fetched.observed.client_secret {
        ClientSecretState::Present { fingerprint } => fingerprint,
        _ => return Ok(None),
    };
    let namespace = fetched.cac.namespace().unwrap_or_default();
    match read_client_secret(ctx, &namespace, &fetched.cac).await? {
        Ok(secret) if secret.fingerprint() == *decided => Ok(Some(secret)),
        _ => {
            let name = &fetched.cac.spec.client_secret_ref.name;
            ctx.services.versions.fingerprints.forget(&namespace, name);
            Ok(None)
        }
    }
}

/// The checks the schema cannot make: the base URL (plain http depends on the operator's
/// flags), the target template (placeholders, collisions, rendered size), the renewBefore
/// duration and the renewal windows (cron syntax, known time zone);
/// with the resource's renewal jitter (its share of `renewal_jitter_percent`).
pub fn check_spec(
    cac: &ClearApiClient,
    allow_http: bool,
    renewal_jitter_percent: u8,
) -> (Option<BaseUrl>, Result<ValidSpec, String>) {
    let spec = &cac.spec;
    let base_url = match resolve_base_url(
        spec.region,
        spec.environment,
        spec.base_url.as_deref(),
        allow_http,
    ) {
        Ok(url) => url,
        Err(e) => return (None, Err(e.to_string())),
    };
    if let Err(detail) = secret::check_writable(cac) {
        return (Some(base_url), Err(detail));
    }
    // NB: a template that cannot be rendered blocks every write (InvalidSpec): the last
    // good Secret stays as it is, and nothing is called.
    if let Err(detail) = secret::check_template(cac, base_url.as_str()) {
        return (Some(base_url), Err(detail));
    }
    if let Some(value) = cac.regenerate_request()
        && value.len() > MAX_REGENERATE_VALUE_BYTES
    {
        // NB: honoured values are kept in status (the last 16): a tenant-sized value there
        // could make the object outgrow what etcd stores.
        return (
            Some(base_url),
            Err(format!(
                "the annotation {REGENERATE_ANNOTATION} holds {} bytes; at most {MAX_REGENERATE_VALUE_BYTES} are accepted (a timestamp or a short word is enough)",
                value.len()
            )),
        );
    }
    let renew_before = match spec
        .renew_before
        .as_deref()
        .map(schedule::parse_go_duration)
        .transpose()
    {
        Ok(d) => d,
        Err(e) => return (Some(base_url), Err(e.to_string())),
    };
    let renewal_windows = match windows::parse(&spec.renewal_windows) {
        Ok(windows) => windows,
        Err(e) => return (Some(base_url), Err(e.to_string())),
    };
    let (config_hash, equivalent_config_hashes) = secret::resolved_config_hash(
        cac,
        base_url.as_str(),
        documented_base_url(spec.region, spec.environment),
    );
    let valid = ValidSpec {
        base_url: base_url.as_str().to_string(),
        config_hash,
        equivalent_config_hashes,
        renew_before,
        renewal_windows,
        renewal_jitter: schedule::renewal_jitter(
            format!("{}/{}", cac.namespace().unwrap_or_default(), cac.name_any()).as_bytes(),
        ) * f64::from(renewal_jitter_percent)
            / 100.0,
    };
    (Some(base_url), Ok(valid))
}

/// Longest regenerate annotation value accepted, in bytes: status remembers the last 16.
pub const MAX_REGENERATE_VALUE_BYTES: usize = 128;

/// Longest client secret accepted, in bytes. Clear's are well under a hundred characters;
/// anything this large is a mistake (or a tenant probing the operator's memory) and is
/// reported, never sent.
pub const MAX_CLIENT_SECRET_BYTES: usize = 4096;

/// Why a client secret could not be taken from its Secret.
enum Unreadable {
    /// Missing or empty: a state the owner fixes by creating it.
    Missing(String),
    /// There, but not a client secret.
    Invalid(String),
}

/// GETs the referenced Secret and extracts the key: `Ok(Err(why))` when it is missing, empty
/// or not a client secret (a state, not an error), `Err` when the API call itself failed.
async fn read_client_secret(
    ctx: &Context,
    namespace: &str,
    cac: &ClearApiClient,
) -> Result<Result<ClientSecret, Unreadable>, Error> {
    let reference = &cac.spec.client_secret_ref;
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), namespace);
    // NB: a Secret is read whole (a Secret's data cannot be fetched key by key) and can be
    // up to 1 MiB: the permit bounds how many are decoded at once, whatever tenants point
    // their resources at.
    let secret = {
        let _permit = ctx.services.secret_reads.acquire().await;
        api.get_opt(&reference.name)
            .await
            .map_err(|e| Error::ReadClientSecret {
                name: reference.name.clone(),
                detail: sanitize(&e),
            })?
    };
    let (name, key) = (&reference.name, &reference.key);
    let Some(secret) = secret else {
        ctx.services.versions.fingerprints.forget(namespace, name);
        return Ok(Err(Unreadable::Missing(format!(
            "client secret Secret {name} not found"
        ))));
    };
    let Some(bytes) = secret.data.as_ref().and_then(|d| d.get(key)) else {
        return Ok(Err(Unreadable::Missing(format!(
            "key {key} not found in client secret Secret {name}"
        ))));
    };
    if bytes.0.len() > MAX_CLIENT_SECRET_BYTES {
        return Ok(Err(Unreadable::Invalid(format!(
            "key {key} in client secret Secret {name} holds {} bytes, more than the {MAX_CLIENT_SECRET_BYTES} a client secret can be",
            bytes.0.len()
        ))));
    }
    // NB: `kubectl create secret --from-file` keeps a trailing newline; a header value
    // cannot carry it, so surrounding whitespace is not part of the secret.
    match std::str::from_utf8(&bytes.0).map(str::trim) {
        Ok(v) if !v.is_empty() => {
            let value = ClientSecret::new(v.to_string());
            // NB: refused here, on this resource alone: a value that cannot be sent never
            // reaches the door to Clear, so it counts no call and tells the shared circuit
            // nothing (the value itself is never named).
            if let Some(problem) = super::door::unsendable(&value) {
                return Ok(Err(Unreadable::Invalid(format!(
                    "key {key} in client secret Secret {name} cannot be sent to Clear: {problem} (a line break or control character inside the value?)"
                ))));
            }
            // NB: the fingerprint only, never the value, with the version it was read at.
            if let Some(rv) = &secret.metadata.resource_version {
                ctx.services.versions.fingerprints.remember(
                    namespace,
                    name,
                    key,
                    rv,
                    value.fingerprint(),
                );
            }
            Ok(Ok(value))
        }
        Ok(_) => Ok(Err(Unreadable::Missing(format!(
            "key {key} in client secret Secret {name} is empty"
        )))),
        Err(_) => Ok(Err(Unreadable::Invalid(format!(
            "key {key} in client secret Secret {name} is not UTF-8 text"
        )))),
    }
}
