//! The target Secret: what it should contain, the annotation names that carry what the next
//! decision needs (so that decision can be made from the Secret's metadata alone), whether
//! an existing Secret is ours, and whether its metadata drifted from what the spec asks.

use std::collections::BTreeMap;

use jiff::Timestamp;
use k8s_openapi::{
    ByteString,
    api::core::v1::Secret,
    apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference},
};
use kube::{Resource, ResourceExt};
use sha2::{Digest, Sha256};

use super::template;
use crate::{
    clear::AccessToken,
    resource::{
        CLIENT_LABEL, ClearApiClient, ClearApiClientStatus, DeletionPolicy, MANAGED_BY_LABEL,
        MANAGED_BY_VALUE, Product,
    },
};

/// When the token in the Secret was minted (RFC 3339).
pub const ISSUED_AT_ANNOTATION: &str = "clear-operator.io/issued-at";
/// When it expires (RFC 3339), or [`NEVER_EXPIRES`].
pub const VALID_TILL_ANNOTATION: &str = "clear-operator.io/valid-till";
/// Fingerprint of the client secret the token was minted from.
pub const CLIENT_SECRET_FINGERPRINT_ANNOTATION: &str =
    "clear-operator.io/client-secret-fingerprint";
/// Hash of environment, region, baseUrl and workspace the token was minted for.
pub const CONFIG_HASH_ANNOTATION: &str = "clear-operator.io/config-hash";
/// The `clear-operator.io/regenerate` value honoured by the mint that produced the token.
pub const REGENERATE_HONOURED_ANNOTATION: &str = "clear-operator.io/regenerate";
/// Fingerprint of the token itself (to correlate with status, never to recover it).
pub const TOKEN_FINGERPRINT_ANNOTATION: &str = "clear-operator.io/token-fingerprint";
/// Hash of everything else the operator writes (labels, annotations, non-token keys, owner):
/// when it differs from the desired one, the Secret is re-applied without minting.
pub const CONTENT_HASH_ANNOTATION: &str = "clear-operator.io/content-hash";
/// On a Secret the token moved away from (a renamed target): where it went.
pub const RETIRED_ANNOTATION: &str = "clear-operator.io/retired";
/// On a Secret written with a new token: the `status.callId` of the call that minted it.
pub const CALL_ID_ANNOTATION: &str = "clear-operator.io/call-id";
/// The default keys `target.template.rename` renamed, as `default=new` pairs joined by `,`
/// (`accessToken=CLEAR_TOKEN,workspace=CLEAR_WORKSPACE`); absent without a rename. Where the
/// operator finds its own token, and the workspace it recorded, again (after a restart, or
/// once the rename changes).
pub const RENAMED_KEYS_ANNOTATION: &str = "clear-operator.io/renamed-keys";
/// Value of [`VALID_TILL_ANNOTATION`] for a token that never expires.
pub const NEVER_EXPIRES: &str = "never";

/// Data keys of the target Secret.
pub use super::keys;

/// What the operator knows about the token in a Secret, from the Secret's annotations.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenRecord {
    pub issued_at: Timestamp,
    pub valid_till: Option<Timestamp>,
    pub client_secret_fingerprint: String,
    pub config_hash: String,
    pub regenerate: Option<String>,
    pub token_fingerprint: String,
}

/// Whether an existing Secret may be written by the operator for a given resource.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ownership {
    Ours,
    /// Somebody else's Secret (or another ClearApiClient's): never modify it.
    Foreign {
        detail: String,
    },
}

/// A Secret is ours only when it carries both the managed-by label and the client label
/// naming this resource.
pub fn ownership(meta: &ObjectMeta, client_name: &str) -> Ownership {
    let labels = meta.labels.as_ref();
    let label = |key: &str| labels.and_then(|l| l.get(key)).map(String::as_str);
    match (label(MANAGED_BY_LABEL), label(CLIENT_LABEL)) {
        (Some(MANAGED_BY_VALUE), Some(owner)) if owner == client_name => Ownership::Ours,
        (Some(MANAGED_BY_VALUE), Some(owner)) => Ownership::Foreign {
            detail: format!("it belongs to ClearApiClient {owner}"),
        },
        _ => Ownership::Foreign {
            detail: format!(
                "it is not managed by clear-operator (no {MANAGED_BY_LABEL}={MANAGED_BY_VALUE} label)"
            ),
        },
    }
}

/// Reads the token bookkeeping from a Secret's annotations; `None` when any required part
/// is missing or unreadable (the Secret then counts as holding no token).
pub fn read_token_record(meta: &ObjectMeta) -> Option<TokenRecord> {
    let annotations = meta.annotations.as_ref()?;
    let get = |key: &str| annotations.get(key).filter(|v| !v.is_empty());
    let valid_till = match get(VALID_TILL_ANNOTATION)?.as_str() {
        NEVER_EXPIRES => None,
        value => Some(value.parse().ok()?),
    };
    Some(TokenRecord {
        issued_at: get(ISSUED_AT_ANNOTATION)?.parse().ok()?,
        valid_till,
        client_secret_fingerprint: get(CLIENT_SECRET_FINGERPRINT_ANNOTATION)?.clone(),
        config_hash: get(CONFIG_HASH_ANNOTATION)?.clone(),
        regenerate: get(REGENERATE_HONOURED_ANNOTATION).cloned(),
        token_fingerprint: get(TOKEN_FINGERPRINT_ANNOTATION)?.clone(),
    })
}

/// What an existing Secret of ours holds, judged against status (the authority) from the
/// fingerprint of its `accessToken` value (`held`, `None` when the key is gone or empty)
/// and, only for the one case where the Secret may be newer than status, its annotations.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Held {
    /// The token status names. The record is status's; `annotations_match` says whether the
    /// Secret's annotations still copy it (edited or removed ones are re-applied from status
    /// without a call).
    Current {
        record: TokenRecord,
        annotations_match: bool,
    },
    /// The answer to the call status marks as in flight: written to the Secret with that
    /// call's id, but the status write after it was lost. Told apart exactly by the call id,
    /// so it is adopted without a call.
    CallAnswer(TokenRecord),
    /// A token status does not name and no call of ours wrote: put back by a backup restore,
    /// a secret-sync tool, a second install or an edit. It may well be revoked, so it is
    /// never served as Ready; one call replaces it.
    Unknown,
    /// No token: the key was removed or emptied.
    Nothing,
}

pub fn held_token(meta: &ObjectMeta, held: Option<&str>, status: &ClearApiClientStatus) -> Held {
    let Some(held) = held else {
        return Held::Nothing;
    };
    let annotated = read_token_record(meta);
    if let Some(record) = status_record(status, annotated.as_ref())
        && record.token_fingerprint == held
    {
        let annotations_match = annotated.as_ref() == Some(&record);
        return Held::Current {
            record,
            annotations_match,
        };
    }
    let answer_to_our_call = status.mint_started_at.is_some()
        && status.call_id.is_some()
        && call_id(meta) == status.call_id.as_deref();
    match annotated {
        Some(record) if answer_to_our_call && record.token_fingerprint == held => {
            Held::CallAnswer(record)
        }
        _ => Held::Unknown,
    }
}

/// The call id annotation of a Secret (see [`CALL_ID_ANNOTATION`]).
fn call_id(meta: &ObjectMeta) -> Option<&str> {
    meta.annotations
        .as_ref()?
        .get(CALL_ID_ANNOTATION)
        .map(String::as_str)
}

/// The operator's record of the current token, from status. `annotated` (the Secret's
/// annotations) only fills the configuration hash and client secret of a status written by
/// a version before `tokenConfigHash`, and only when it names the same token.
pub fn status_record(
    status: &ClearApiClientStatus,
    annotated: Option<&TokenRecord>,
) -> Option<TokenRecord> {
    let token_fingerprint = status.token_fingerprint.clone()?;
    let issued_at = status.issued_at.as_ref()?.0;
    let (client_secret_fingerprint, config_hash) = match &status.token_config_hash {
        Some(hash) => (status.client_secret_fingerprint.clone()?, hash.clone()),
        None => match annotated.filter(|a| a.token_fingerprint == token_fingerprint) {
            Some(a) => (a.client_secret_fingerprint.clone(), a.config_hash.clone()),
            // NB: before tokenConfigHash, a failed or interrupted call overwrote these two
            // with the call's; only a clean status still describes the token.
            None if status.failed_attempts == 0 && status.mint_started_at.is_none() => (
                status.client_secret_fingerprint.clone()?,
                status.config_hash.clone()?,
            ),
            None => return None,
        },
    };
    Some(TokenRecord {
        issued_at,
        valid_till: status.valid_till.as_ref().map(|t| t.0),
        client_secret_fingerprint,
        config_hash,
        regenerate: status.last_regenerate_request.clone(),
        token_fingerprint,
    })
}

/// Hash of the settings a token is bound to: a change of any of them needs a new token.
/// The workspace the token Secret records (its `workspace` key, under the name it was
/// written with: see [`RENAMED_KEYS_ANNOTATION`]), if readable.
pub fn recorded_workspace(
    secret: &k8s_openapi::api::core::v1::Secret,
    cac: &ClearApiClient,
) -> Option<String> {
    let data = secret.data.as_ref()?;
    let bytes = key_names(secret, cac, keys::WORKSPACE)
        .into_iter()
        .find_map(|key| data.get(key))?;
    String::from_utf8(bytes.0.clone()).ok()
}

/// (The `baseUrl` field as written; see [`resolved_config_hash`] for what is compared.)
pub fn config_hash(cac: &ClearApiClient) -> String {
    config_hash_with(cac, cac.spec.base_url.as_deref().unwrap_or_default())
}

fn config_hash_with(cac: &ClearApiClient, base_url_field: &str) -> String {
    let spec = &cac.spec;
    let parts = [
        serde_json::to_string(&spec.environment).unwrap_or_default(),
        serde_json::to_string(&spec.region).unwrap_or_default(),
        base_url_field.to_string(),
        spec.workspace.clone(),
    ];
    short_hash(&parts.join("\n"))
}

/// The config hash of the base URL as resolved, plus every hash that means the same
/// configuration (written by earlier versions from the raw field, or with a trailing
/// slash, or naming the built-in host explicitly): comparing any of them, an explicit
/// `baseUrl` equal to the built-in one is no change, and upgrading mints nothing.
pub fn resolved_config_hash(
    cac: &ClearApiClient,
    resolved: &str,
    documented: Option<&str>,
) -> (String, Vec<String>) {
    let builtin = documented == Some(resolved);
    let canonical = config_hash_with(cac, if builtin { "" } else { resolved });
    let mut equivalent = vec![
        config_hash(cac),
        config_hash_with(cac, resolved),
        config_hash_with(cac, &format!("{resolved}/")),
    ];
    if builtin {
        equivalent.push(config_hash_with(cac, ""));
    }
    equivalent.retain(|h| *h != canonical);
    equivalent.sort();
    equivalent.dedup();
    (canonical, equivalent)
}

fn short_hash(input: &str) -> String {
    let mut hex = hex::encode(Sha256::digest(input.as_bytes()));
    hex.truncate(12);
    hex
}

/// Everything in the desired Secret except the token and what describes the token.
fn content(
    cac: &ClearApiClient,
    base_url: &str,
) -> (
    BTreeMap<String, String>,
    BTreeMap<String, String>,
    BTreeMap<String, String>,
) {
    let target = cac.spec.target.clone().unwrap_or_default();
    let mut labels = target.labels;
    labels.insert(MANAGED_BY_LABEL.to_string(), MANAGED_BY_VALUE.to_string());
    labels.insert(CLIENT_LABEL.to_string(), cac.name_any());
    let mut annotations = target.annotations;
    let renamed: Vec<String> = target
        .template
        .iter()
        .flat_map(|t| &t.rename)
        .filter(|(from, to)| from != to)
        .map(|(from, to)| format!("{from}={to}"))
        .collect();
    if !renamed.is_empty() {
        annotations.insert(RENAMED_KEYS_ANNOTATION.to_string(), renamed.join(","));
    }
    // NB: in the API's spelling, once each, in the spec's order: "Max ITC" and MAX_ITC are
    // one product.
    let mut products: Vec<String> = Vec::new();
    for product in cac.spec.products.iter().map(Product::canonical) {
        if !products.contains(&product) {
            products.push(product);
        }
    }
    let data = BTreeMap::from([
        (keys::BASE_URL.to_string(), base_url.to_string()),
        (
            keys::ENVIRONMENT.to_string(),
            json_name(&cac.spec.environment),
        ),
        (keys::WORKSPACE.to_string(), cac.spec.workspace.clone()),
        (keys::PRODUCTS.to_string(), products.join(",")),
    ]);
    (labels, annotations, data)
}

/// The spec's template, when it asks for anything.
fn template_of(cac: &ClearApiClient) -> Option<&crate::resource::SecretTemplate> {
    cac.spec
        .target
        .as_ref()
        .and_then(|t| t.template.as_ref())
        .filter(|t| !t.keys.is_empty() || !t.rename.is_empty())
}

fn json_name<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

fn content_hash(cac: &ClearApiClient, base_url: &str) -> String {
    let (labels, annotations, data) = content(cac, base_url);
    let owned = cac.deletion_policy() == DeletionPolicy::Delete;
    let mut text = serde_json::json!({"labels": labels, "annotations": annotations, "data": data, "owned": owned});
    // NB: only when there is one, so that Secrets written before templates keep their hash
    // (an upgrade re-applies nothing). Editing a template changes the hash: the Secret is
    // re-applied with the stored token, without a call.
    if let Some(template) = template_of(cac) {
        text["template"] = serde_json::json!(template);
    }
    short_hash(&text.to_string())
}

/// The Secret to server-side apply: token, token bookkeeping and the spec's metadata.
/// `call_id` is the minting call's (see [`CALL_ID_ANNOTATION`]); `None` on a re-apply.
pub fn build_secret(
    cac: &ClearApiClient,
    base_url: &str,
    token: &AccessToken,
    record: &TokenRecord,
    call_id: Option<&str>,
) -> Secret {
    let (labels, mut annotations, mut data) = content(cac, base_url);
    if let Some(id) = call_id {
        annotations.insert(CALL_ID_ANNOTATION.to_string(), id.to_string());
    }
    let valid_till = record.valid_till.map(|t| t.to_string());
    annotations.insert(
        ISSUED_AT_ANNOTATION.to_string(),
        record.issued_at.to_string(),
    );
    annotations.insert(
        VALID_TILL_ANNOTATION.to_string(),
        valid_till
            .clone()
            .unwrap_or_else(|| NEVER_EXPIRES.to_string()),
    );
    annotations.insert(
        CLIENT_SECRET_FINGERPRINT_ANNOTATION.to_string(),
        record.client_secret_fingerprint.clone(),
    );
    annotations.insert(
        CONFIG_HASH_ANNOTATION.to_string(),
        record.config_hash.clone(),
    );
    annotations.insert(
        TOKEN_FINGERPRINT_ANNOTATION.to_string(),
        record.token_fingerprint.clone(),
    );
    if let Some(value) = &record.regenerate {
        annotations.insert(REGENERATE_HONOURED_ANNOTATION.to_string(), value.clone());
    }
    annotations.insert(
        CONTENT_HASH_ANNOTATION.to_string(),
        content_hash(cac, base_url),
    );
    data.insert(keys::ACCESS_TOKEN.to_string(), token.expose().to_string());
    data.insert(keys::VALID_TILL.to_string(), valid_till.unwrap_or_default());
    // NB: rendered from the token given: the dry run's placeholder token gives the rendered
    // keys their longest shape too.
    let data = template::shape(template_of(cac), data);

    Secret {
        metadata: ObjectMeta {
            name: Some(cac.target_secret_name()),
            namespace: cac.namespace(),
            labels: Some(labels),
            annotations: Some(annotations),
            owner_references: owner_references(cac),
            ..ObjectMeta::default()
        },
        type_: Some("Opaque".to_string()),
        data: Some(
            data.into_iter()
                .map(|(k, v)| (k, ByteString(v.into_bytes())))
                .collect(),
        ),
        ..Secret::default()
    }
}

/// The owner reference that lets the garbage collector delete the Secret with the resource.
fn owner_references(cac: &ClearApiClient) -> Option<Vec<OwnerReference>> {
    match cac.deletion_policy() {
        DeletionPolicy::Delete => cac.controller_owner_ref(&()).map(|r| vec![r]),
        DeletionPolicy::Retain => None,
    }
}

/// What our Secret under a previous target name becomes once the token has moved: our
/// labels and owner reference, a note saying where the token went, and nothing else. Applied
/// by the operator's field manager, it removes every key and annotation the operator wrote.
pub fn retired(cac: &ClearApiClient, name: &str) -> Secret {
    let labels = BTreeMap::from([
        (MANAGED_BY_LABEL.to_string(), MANAGED_BY_VALUE.to_string()),
        (CLIENT_LABEL.to_string(), cac.name_any()),
    ]);
    let note = format!(
        "the token moved to Secret {} (target.name changed)",
        cac.target_secret_name()
    );
    Secret {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            namespace: cac.namespace(),
            labels: Some(labels),
            annotations: Some(BTreeMap::from([(RETIRED_ANNOTATION.to_string(), note)])),
            owner_references: owner_references(cac),
            ..ObjectMeta::default()
        },
        type_: Some("Opaque".to_string()),
        ..Secret::default()
    }
}

/// Whether the existing Secret's metadata differs from what the spec asks for now: a changed
/// content hash (labels, annotations, products, base URL, ... changed in the spec) or a
/// label or annotation edited by someone else.
pub fn metadata_drifted(cac: &ClearApiClient, base_url: &str, actual: &ObjectMeta) -> bool {
    let (labels, annotations, _) = content(cac, base_url);
    let empty = BTreeMap::new();
    let actual_labels = actual.labels.as_ref().unwrap_or(&empty);
    let actual_annotations = actual.annotations.as_ref().unwrap_or(&empty);
    let differs = |want: &BTreeMap<String, String>, have: &BTreeMap<String, String>| {
        want.iter().any(|(k, v)| have.get(k) != Some(v))
    };
    actual_annotations.get(CONTENT_HASH_ANNOTATION) != Some(&content_hash(cac, base_url))
        || differs(&labels, actual_labels)
        || differs(&annotations, actual_annotations)
}

/// Why the Secret the spec describes could not be written, checked before any mint (a
/// mint whose Secret is then refused would revoke the old token for nothing).
pub fn check_writable(cac: &ClearApiClient) -> Result<(), String> {
    let name = cac.name_any();
    if !is_label_value(&name) {
        return Err(format!(
            "the resource name is used as the {CLIENT_LABEL} label value and must be at most 63 characters"
        ));
    }
    let target = cac.spec.target.clone().unwrap_or_default();
    if let Some((key, value)) = target
        .labels
        .iter()
        .find(|(k, v)| !is_qualified_name(k) || !is_label_value(v))
    {
        return Err(format!(
            "target label {key}={value} is not a valid Kubernetes label"
        ));
    }
    if let Some(key) = target.annotations.keys().find(|k| !is_qualified_name(k)) {
        return Err(format!(
            "target annotation key {key} is not a valid Kubernetes annotation key"
        ));
    }
    Ok(())
}

/// `[prefix/]name`: prefix a DNS subdomain, name at most 63 alphanumerics, `-`, `_`, `.`.
fn is_qualified_name(key: &str) -> bool {
    let (prefix, name) = match key.rsplit_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    let prefix_ok = prefix.is_none_or(|p| {
        !p.is_empty()
            && p.len() <= 253
            && p.split('.').all(|part| {
                !part.is_empty()
                    && part
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                    && !part.starts_with('-')
                    && !part.ends_with('-')
            })
    });
    prefix_ok && !name.is_empty() && is_label_value(name)
}

/// At most 63 alphanumerics, `-`, `_`, `.`, starting and ending alphanumeric (or empty).
fn is_label_value(value: &str) -> bool {
    let alnum = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    value.is_empty()
        || (value.len() <= 63
            && value
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            && alnum(value.chars().next())
            && alnum(value.chars().last()))
}

/// The token currently stored in a Secret, for re-applying the Secret without minting: under
/// the name its [`RENAMED_KEYS_ANNOTATION`] gives `accessToken`, else under `accessToken`.
pub fn stored_token(secret: &Secret) -> Option<AccessToken> {
    [
        written_name(secret, keys::ACCESS_TOKEN),
        Some(keys::ACCESS_TOKEN),
    ]
    .into_iter()
    .flatten()
    .find_map(|key| value_of(secret, key))
}

/// The token stored in our target Secret, looked for where the operator may have written it:
/// the name the Secret's [`RENAMED_KEYS_ANNOTATION`] gives it (the rename the Secret was last
/// written with), the name the spec gives it now, and `accessToken`. The first one holding a
/// token whose fingerprint is among `known` (status's, the Secret's annotation's) wins, else
/// the first one holding anything: so a changed rename, or a removed annotation, still finds
/// the token and costs no call.
pub fn stored_token_for(
    secret: &Secret,
    cac: &ClearApiClient,
    known: &[Option<&str>],
) -> Option<AccessToken> {
    let candidates: Vec<AccessToken> = key_names(secret, cac, keys::ACCESS_TOKEN)
        .into_iter()
        .filter_map(|key| value_of(secret, key))
        .collect();
    let mut candidates = candidates;
    let is_known = |token: &AccessToken| {
        let fingerprint = token.fingerprint();
        known.iter().flatten().any(|k| *k == fingerprint)
    };
    match candidates.iter().position(is_known) {
        Some(at) => Some(candidates.swap_remove(at)),
        None => candidates.into_iter().next(),
    }
}

/// The names a default key may be found under in our Secret, most likely first: the one the
/// Secret was last written with, the one the spec gives it now, its own.
fn key_names<'a>(secret: &'a Secret, cac: &'a ClearApiClient, key: &'a str) -> Vec<&'a str> {
    let mut names = Vec::new();
    for name in [
        written_name(secret, key),
        Some(template::renamed(template_of(cac), key)),
        Some(key),
    ]
    .into_iter()
    .flatten()
    {
        if !names.contains(&name) {
            names.push(name);
        }
    }
    names
}

/// The name [`RENAMED_KEYS_ANNOTATION`] says the default key `key` was written under.
fn written_name<'a>(secret: &'a Secret, key: &str) -> Option<&'a str> {
    secret
        .metadata
        .annotations
        .as_ref()?
        .get(RENAMED_KEYS_ANNOTATION)?
        .split(',')
        .filter_map(|pair| pair.split_once('='))
        .find(|(from, _)| *from == key)
        .map(|(_, to)| to)
        .filter(|to| template::is_secret_key(to))
}

fn value_of(secret: &Secret, key: &str) -> Option<AccessToken> {
    let bytes = secret.data.as_ref()?.get(key)?;
    let text = String::from_utf8(bytes.0.clone()).ok()?;
    (!text.is_empty()).then(|| AccessToken::new(text))
}

/// Why `spec.target.template` cannot be used (see [`template::check`]): checked before any
/// write, so a broken template leaves the last good Secret as it is. The rendered size is
/// bounded with the longest token the operator accepts and the spec's own values.
pub fn check_template(cac: &ClearApiClient, base_url: &str) -> Result<(), String> {
    let Some(template) = template_of(cac) else {
        return Ok(());
    };
    let (_, _, mut values) = content(cac, base_url);
    values.insert(
        keys::ACCESS_TOKEN.to_string(),
        "x".repeat(crate::clear::MAX_ACCEPTED_TOKEN_CHARS),
    );
    values.insert(
        keys::VALID_TILL.to_string(),
        "2026-11-25T22:00:00.123456789+00:00".to_string(),
    );
    template::check(template, &values)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reconcile::test_support::{client, ts};

    fn record() -> TokenRecord {
        TokenRecord {
            issued_at: ts("2026-11-25T10:00:00Z"),
            valid_till: Some(ts("2026-11-25T22:00:00Z")),
            client_secret_fingerprint: "aaaaaaaaaaaa".into(),
            config_hash: "cccccccccccc".into(),
            regenerate: Some("r1".into()),
            token_fingerprint: "tttttttttttt".into(),
        }
    }

    fn data_of(secret: &Secret, key: &str) -> String {
        String::from_utf8(secret.data.as_ref().unwrap()[key].0.clone()).unwrap()
    }

    #[test]
    fn desired_secret_has_every_key_label_and_annotation() {
        let mut cac = client("billing");
        let target = cac.spec.target.get_or_insert_with(Default::default);
        target.labels.insert("team".into(), "payments".into());
        target.annotations.insert("note".into(), "hello".into());
        let secret = build_secret(
            &cac,
            "https://api-sandbox.clear.in",
            &AccessToken::new("tok".into()),
            &record(),
            None,
        );

        assert_eq!(secret.type_.as_deref(), Some("Opaque"));
        assert_eq!(data_of(&secret, keys::ACCESS_TOKEN), "tok");
        assert_eq!(data_of(&secret, keys::VALID_TILL), "2026-11-25T22:00:00Z");
        assert_eq!(
            data_of(&secret, keys::BASE_URL),
            "https://api-sandbox.clear.in"
        );
        assert_eq!(data_of(&secret, keys::ENVIRONMENT), "sandbox");
        assert_eq!(data_of(&secret, keys::WORKSPACE), "ws-1");
        assert_eq!(data_of(&secret, keys::PRODUCTS), "GST,E_INVOICE");
        let labels = secret.metadata.labels.as_ref().unwrap();
        assert_eq!(labels[MANAGED_BY_LABEL], "clear-operator");
        assert_eq!(labels[CLIENT_LABEL], "billing");
        assert_eq!(labels["team"], "payments");
        let annotations = secret.metadata.annotations.as_ref().unwrap();
        assert_eq!(annotations["note"], "hello");
        assert_eq!(annotations[ISSUED_AT_ANNOTATION], "2026-11-25T10:00:00Z");
        assert_eq!(annotations[VALID_TILL_ANNOTATION], "2026-11-25T22:00:00Z");
        assert_eq!(
            annotations[CLIENT_SECRET_FINGERPRINT_ANNOTATION],
            "aaaaaaaaaaaa"
        );
        assert_eq!(annotations[CONFIG_HASH_ANNOTATION], "cccccccccccc");
        assert_eq!(annotations[REGENERATE_HONOURED_ANNOTATION], "r1");
        assert_eq!(annotations[TOKEN_FINGERPRINT_ANNOTATION], "tttttttttttt");
        assert!(annotations.contains_key(CONTENT_HASH_ANNOTATION));
        assert_eq!(read_token_record(&secret.metadata), Some(record()));
    }

    fn templated(keys_: &[(&str, &str)], rename: &[(&str, &str)]) -> ClearApiClient {
        let mut cac = client("billing");
        let map = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        cac.spec
            .target
            .get_or_insert_with(Default::default)
            .template = Some(crate::resource::SecretTemplate {
            keys: map(keys_),
            rename: map(rename),
        });
        cac
    }

    #[test]
    fn templates_add_rendered_keys_and_rename_default_ones() {
        let cac = templated(
            &[
                ("header", "x-cleartax-auth-token: {{ .accessToken }}"),
                (
                    "token.json",
                    r#"{"token": {{ json .accessToken }}, "validTill": {{ json .validTill }}}"#,
                ),
            ],
            &[
                ("accessToken", "CLEAR_TOKEN"),
                ("products", "CLEAR_PRODUCTS"),
            ],
        );
        let secret = build_secret(
            &cac,
            "https://x",
            &AccessToken::new("tok".into()),
            &record(),
            None,
        );
        assert_eq!(data_of(&secret, "CLEAR_TOKEN"), "tok");
        assert_eq!(data_of(&secret, "CLEAR_PRODUCTS"), "GST,E_INVOICE");
        assert_eq!(data_of(&secret, "header"), "x-cleartax-auth-token: tok");
        assert_eq!(
            data_of(&secret, "token.json"),
            r#"{"token": "tok", "validTill": "2026-11-25T22:00:00Z"}"#
        );
        let data = secret.data.as_ref().unwrap();
        assert!(!data.contains_key(keys::ACCESS_TOKEN) && !data.contains_key(keys::PRODUCTS));
        assert_eq!(data.len(), 8);
        assert_eq!(
            secret.metadata.annotations.as_ref().unwrap()[RENAMED_KEYS_ANNOTATION],
            "accessToken=CLEAR_TOKEN,products=CLEAR_PRODUCTS"
        );
        assert_eq!(
            stored_token(&secret).map(|t| t.expose().to_string()),
            Some("tok".into())
        );

        // The dry run's placeholder token reaches the rendered keys too.
        let placeholder = AccessToken::new("x".repeat(crate::clear::MAX_TOKEN_CHARS));
        let dry = build_secret(&cac, "https://x", &placeholder, &record(), Some("c-1"));
        assert_eq!(
            data_of(&dry, "header").len(),
            "x-cleartax-auth-token: ".len() + crate::clear::MAX_TOKEN_CHARS
        );
    }

    #[test]
    fn a_template_edit_is_drift_and_no_template_keeps_the_old_hash() {
        let plain = client("billing");
        let applied = build_secret(
            &plain,
            "https://x",
            &AccessToken::new("tok".into()),
            &record(),
            None,
        );
        // An empty template asks for nothing: no re-apply on upgrade or for `template: {}`.
        let empty = templated(&[], &[]);
        assert!(!metadata_drifted(&empty, "https://x", &applied.metadata));
        assert_eq!(
            content_hash(&empty, "https://x"),
            content_hash(&plain, "https://x")
        );

        let header = templated(
            &[("header", "x-cleartax-auth-token: {{ .accessToken }}")],
            &[],
        );
        assert!(metadata_drifted(&header, "https://x", &applied.metadata));
        let with_header = build_secret(
            &header,
            "https://x",
            &AccessToken::new("tok".into()),
            &record(),
            None,
        );
        assert!(!metadata_drifted(
            &header,
            "https://x",
            &with_header.metadata
        ));
        let edited = templated(&[("header", "Authorization: {{ .accessToken }}")], &[]);
        assert!(metadata_drifted(
            &edited,
            "https://x",
            &with_header.metadata
        ));
        let renamed = templated(&[], &[("accessToken", "token")]);
        assert!(metadata_drifted(
            &renamed,
            "https://x",
            &with_header.metadata
        ));

        // A removed renamed-keys annotation is drift as well (and the token is still found).
        let applied = build_secret(
            &renamed,
            "https://x",
            &AccessToken::new("tok".into()),
            &record(),
            None,
        );
        let mut stripped = applied.clone();
        stripped
            .metadata
            .annotations
            .as_mut()
            .unwrap()
            .remove(RENAMED_KEYS_ANNOTATION);
        assert!(metadata_drifted(&renamed, "https://x", &stripped.metadata));
        assert_eq!(stored_token(&stripped), None);
        assert_eq!(
            stored_token_for(&stripped, &renamed, &[]).map(|t| t.expose().to_string()),
            Some("tok".into())
        );
    }

    #[test]
    fn the_token_is_found_under_every_key_the_operator_may_have_used() {
        let fp = AccessToken::new("tok".into()).fingerprint();
        let written_as = |rename: &[(&str, &str)], extra: &[(&str, &str)]| {
            let cac = templated(extra, rename);
            build_secret(
                &cac,
                "https://x",
                &AccessToken::new("tok".into()),
                &record(),
                None,
            )
        };
        let cases = [
            ("no rename", written_as(&[], &[]), templated(&[], &[])),
            (
                "renamed now, Secret not yet rewritten",
                written_as(&[], &[]),
                templated(&[], &[("accessToken", "token")]),
            ),
            (
                "renamed again",
                written_as(&[("accessToken", "token")], &[]),
                templated(&[], &[("accessToken", "bearer")]),
            ),
            (
                "rename removed",
                written_as(&[("accessToken", "bearer")], &[]),
                client("billing"),
            ),
            (
                "a template key now named like the old token key",
                written_as(&[("accessToken", "token")], &[]),
                templated(
                    &[("token", "Bearer {{ .accessToken }}")],
                    &[("accessToken", "raw")],
                ),
            ),
        ];
        for (name, secret, cac) in cases {
            let found = stored_token_for(&secret, &cac, &[Some(fp.as_str())]);
            assert_eq!(
                found.map(|t| t.expose().to_string()),
                Some("tok".to_string()),
                "{name}"
            );
        }
        // The spec's key holding something else (a template key of before) is passed over
        // for the one holding the known token.
        let secret = written_as(&[], &[("token", "Bearer {{ .accessToken }}")]);
        let cac = templated(&[], &[("accessToken", "token")]);
        assert_eq!(
            stored_token_for(&secret, &cac, &[Some(fp.as_str())]).map(|t| t.expose().to_string()),
            Some("tok".to_string())
        );
    }

    #[test]
    fn a_broken_or_oversized_template_is_refused_by_check_template() {
        assert_eq!(check_template(&client("billing"), "https://x"), Ok(()));
        let good = templated(
            &[("header", "x-cleartax-auth-token: {{ .accessToken }}")],
            &[],
        );
        assert_eq!(check_template(&good, "https://x"), Ok(()));
        let broken = templated(&[("header", "x-cleartax-auth-token: {{ .accessToken")], &[]);
        assert!(
            check_template(&broken, "https://x")
                .unwrap_err()
                .contains("unclosed")
        );
        let many = "{{ json .accessToken }}".repeat(4096 / 24);
        let big = templated(&[("a", many.as_str()), ("b", many.as_str())], &[]);
        assert!(
            check_template(&big, "https://x")
                .unwrap_err()
                .contains("would render")
        );
    }

    #[test]
    fn never_expiring_token_has_empty_valid_till_key_and_never_annotation() {
        let cac = client("billing");
        let mut rec = record();
        rec.valid_till = None;
        let secret = build_secret(
            &cac,
            "https://x",
            &AccessToken::new("tok".into()),
            &rec,
            None,
        );
        assert_eq!(data_of(&secret, keys::VALID_TILL), "");
        assert_eq!(
            secret.metadata.annotations.as_ref().unwrap()[VALID_TILL_ANNOTATION],
            NEVER_EXPIRES
        );
        assert_eq!(
            read_token_record(&secret.metadata).unwrap().valid_till,
            None
        );
    }

    #[test]
    fn a_retired_secret_keeps_only_our_labels_owner_and_a_note() {
        let mut cac = client("billing");
        cac.spec.target =
            Some(serde_json::from_value(serde_json::json!({"name": "new-name"})).unwrap());
        let retired = retired(&cac, "old-name");
        assert_eq!(retired.metadata.name.as_deref(), Some("old-name"));
        assert!(
            retired.data.is_none() && retired.string_data.is_none(),
            "no key, so no token"
        );
        let annotations = retired.metadata.annotations.unwrap();
        assert_eq!(annotations.len(), 1);
        assert!(annotations[RETIRED_ANNOTATION].contains("new-name"));
        assert_eq!(
            ownership(
                &ObjectMeta {
                    labels: retired.metadata.labels.clone(),
                    ..ObjectMeta::default()
                },
                "billing"
            ),
            Ownership::Ours
        );
        assert_eq!(
            retired.metadata.owner_references.unwrap()[0].kind,
            "ClearApiClient"
        );
    }

    #[test]
    fn owner_reference_only_with_delete_policy() {
        let cac = client("billing");
        let secret = build_secret(
            &cac,
            "https://x",
            &AccessToken::new("tok".into()),
            &record(),
            None,
        );
        let owners = secret.metadata.owner_references.unwrap();
        assert_eq!(owners.len(), 1);
        assert_eq!(owners[0].kind, "ClearApiClient");
        assert_eq!(owners[0].controller, Some(true));

        let mut retained = client("billing");
        retained
            .spec
            .target
            .get_or_insert_with(Default::default)
            .deletion_policy = DeletionPolicy::Retain;
        let secret = build_secret(
            &retained,
            "https://x",
            &AccessToken::new("tok".into()),
            &record(),
            None,
        );
        assert!(secret.metadata.owner_references.is_none());
    }

    #[test]
    fn ownership_requires_both_labels_naming_this_resource() {
        let cac = client("billing");
        let ours = build_secret(
            &cac,
            "https://x",
            &AccessToken::new("tok".into()),
            &record(),
            None,
        );
        assert_eq!(ownership(&ours.metadata, "billing"), Ownership::Ours);
        assert!(matches!(
            ownership(&ours.metadata, "payroll"),
            Ownership::Foreign { .. }
        ));
        assert!(matches!(
            ownership(&ObjectMeta::default(), "billing"),
            Ownership::Foreign { .. }
        ));
    }

    #[test]
    fn metadata_drift_is_seen_for_spec_label_product_and_edited_annotation_changes() {
        let cac = client("billing");
        let applied = build_secret(
            &cac,
            "https://x",
            &AccessToken::new("tok".into()),
            &record(),
            None,
        );
        assert!(!metadata_drifted(&cac, "https://x", &applied.metadata));

        let mut relabelled = cac.clone();
        relabelled
            .spec
            .target
            .get_or_insert_with(Default::default)
            .labels
            .insert("team".into(), "x".into());
        assert!(metadata_drifted(
            &relabelled,
            "https://x",
            &applied.metadata
        ));

        let mut fewer_products = cac.clone();
        fewer_products.spec.products.pop();
        assert!(metadata_drifted(
            &fewer_products,
            "https://x",
            &applied.metadata
        ));

        let mut edited = applied.metadata.clone();
        edited.labels.as_mut().unwrap().remove(CLIENT_LABEL);
        assert!(metadata_drifted(&cac, "https://x", &edited));
    }

    #[test]
    fn specs_whose_secret_kubernetes_would_refuse_are_caught_before_minting() {
        assert_eq!(check_writable(&client("billing")), Ok(()));
        assert!(
            check_writable(&client(&"a".repeat(64))).is_err(),
            "name too long for a label value"
        );
        let mut labelled = client("billing");
        let target = labelled.spec.target.get_or_insert_with(Default::default);
        target
            .labels
            .insert("example.com/team".into(), "payments".into());
        target
            .annotations
            .insert("note".into(), "any text at all".into());
        assert_eq!(check_writable(&labelled), Ok(()));
        for (key, value) in [
            ("bad key", "x"),
            ("team", "-x"),
            ("Example.com/team", "x"),
            ("team", "a b"),
        ] {
            let mut bad = client("billing");
            bad.spec
                .target
                .get_or_insert_with(Default::default)
                .labels
                .insert(key.into(), value.into());
            assert!(
                check_writable(&bad).is_err(),
                "{key}={value} should be refused"
            );
        }
        let mut bad = client("billing");
        bad.spec
            .target
            .get_or_insert_with(Default::default)
            .annotations
            .insert("/x".into(), "v".into());
        assert!(check_writable(&bad).is_err());
    }

    #[test]
    fn incomplete_annotations_mean_no_token_record() {
        let cac = client("billing");
        let mut meta = build_secret(
            &cac,
            "https://x",
            &AccessToken::new("tok".into()),
            &record(),
            None,
        )
        .metadata;
        meta.annotations
            .as_mut()
            .unwrap()
            .remove(ISSUED_AT_ANNOTATION);
        assert_eq!(read_token_record(&meta), None);
    }

    #[test]
    fn an_explicit_base_url_equal_to_the_built_in_one_or_with_a_slash_is_the_same_config() {
        const BUILTIN: &str = "https://api-sandbox.clear.in";
        let implicit = client("billing");
        let (canonical, _) = resolved_config_hash(&implicit, BUILTIN, Some(BUILTIN));
        for written in [BUILTIN.to_string(), format!("{BUILTIN}/")] {
            let mut explicit = implicit.clone();
            explicit.spec.base_url = Some(written.clone());
            let (same, legacy) = resolved_config_hash(&explicit, BUILTIN, Some(BUILTIN));
            assert_eq!(same, canonical, "{written}");
            assert!(
                legacy.contains(&config_hash(&explicit)),
                "old Secrets still match"
            );
        }
        // A Secret minted from an explicit URL before the upgrade, field since removed.
        let mut explicit = implicit.clone();
        explicit.spec.base_url = Some(format!("{BUILTIN}/"));
        let (_, legacy) = resolved_config_hash(&implicit, BUILTIN, Some(BUILTIN));
        assert!(legacy.contains(&config_hash(&explicit)));
        // A real change of host is a change.
        let mut proxy = implicit.clone();
        proxy.spec.base_url = Some("https://proxy.example".into());
        let (other, legacy) = resolved_config_hash(&proxy, "https://proxy.example", Some(BUILTIN));
        assert_ne!(other, canonical);
        assert!(!legacy.contains(&canonical));
    }

    #[test]
    fn config_hash_changes_with_environment_region_base_url_and_workspace_only() {
        let cac = client("billing");
        let base = config_hash(&cac);
        let mut other = cac.clone();
        other.spec.products.pop();
        assert_eq!(config_hash(&other), base);
        other.spec.workspace = "ws-2".into();
        assert_ne!(config_hash(&other), base);
        let mut other = cac.clone();
        other.spec.base_url = Some("https://proxy.example".into());
        assert_ne!(config_hash(&other), base);
    }

    #[test]
    fn held_token_believes_status_and_adopts_only_the_answer_to_the_call_in_flight() {
        use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
        let record = record();
        let meta_of = |r: &TokenRecord, call: Option<&str>| {
            let cac = client("billing");
            let token = AccessToken::new("t".into());
            build_secret(&cac, "https://api.example", &token, r, call).metadata
        };
        let status = ClearApiClientStatus {
            issued_at: Some(Time(record.issued_at)),
            valid_till: record.valid_till.map(Time),
            client_secret_fingerprint: Some(record.client_secret_fingerprint.clone()),
            token_config_hash: Some(record.config_hash.clone()),
            token_fingerprint: Some(record.token_fingerprint.clone()),
            last_regenerate_request: record.regenerate.clone(),
            ..Default::default()
        };
        // A newer token minted by the call `c-2`, its status write lost.
        let newer = TokenRecord {
            token_fingerprint: "nnnnnnnnnnnn".into(),
            issued_at: ts("2026-11-25T11:00:00Z"),
            valid_till: Some(ts("2026-11-25T23:00:00Z")),
            ..record.clone()
        };
        let mut in_flight = status.clone();
        in_flight.mint_started_at = Some(Time(ts("2026-11-25T10:59:59Z")));
        in_flight.call_id = Some("c-2".into());
        let mut edited = record.clone();
        edited.valid_till = Some(ts("2030-01-01T00:00:00Z"));
        let mut stripped = meta_of(&record, None);
        stripped.annotations = None;
        let named = Some(record.token_fingerprint.as_str());
        let newer_fp = Some(newer.token_fingerprint.as_str());
        let current = |annotations_match| Held::Current {
            record: record.clone(),
            annotations_match,
        };
        let cases = [
            (
                "intact",
                meta_of(&record, None),
                named,
                &status,
                current(true),
            ),
            (
                "valid-till annotation edited to 2030: status wins",
                meta_of(&edited, None),
                named,
                &status,
                current(false),
            ),
            (
                "annotations removed",
                stripped.clone(),
                named,
                &status,
                current(false),
            ),
            (
                "accessToken removed",
                meta_of(&record, None),
                None,
                &status,
                Held::Nothing,
            ),
            (
                "an older token written back with its own annotations",
                meta_of(&newer, None),
                newer_fp,
                &status,
                Held::Unknown,
            ),
            (
                "a value with no annotations",
                stripped,
                Some("000000000000"),
                &status,
                Held::Unknown,
            ),
            (
                "the answer to the call in flight",
                meta_of(&newer, Some("c-2")),
                newer_fp,
                &in_flight,
                Held::CallAnswer(newer.clone()),
            ),
            (
                "a token written by an earlier call",
                meta_of(&newer, Some("c-1")),
                newer_fp,
                &in_flight,
                Held::Unknown,
            ),
            (
                "a call id with no call in flight",
                meta_of(&newer, Some("c-2")),
                newer_fp,
                &status,
                Held::Unknown,
            ),
            (
                "the call's id over another token",
                meta_of(&newer, Some("c-2")),
                Some("000000000000"),
                &in_flight,
                Held::Unknown,
            ),
            (
                "the current token while a call is in flight",
                meta_of(&record, None),
                named,
                &in_flight,
                current(true),
            ),
        ];
        for (name, meta, held, status, expected) in cases {
            assert_eq!(held_token(&meta, held, status), expected, "{name}");
        }
    }

    #[test]
    fn a_status_from_before_token_config_hash_is_completed_from_matching_annotations_only() {
        use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
        let record = record();
        let legacy = ClearApiClientStatus {
            issued_at: Some(Time(record.issued_at)),
            valid_till: record.valid_till.map(Time),
            // NB: the old before-mint overwrote these with a failed call's secret and config.
            client_secret_fingerprint: Some("callsecret00".into()),
            config_hash: Some("callconfig00".into()),
            token_fingerprint: Some(record.token_fingerprint.clone()),
            last_regenerate_request: record.regenerate.clone(),
            failed_attempts: 1,
            ..Default::default()
        };
        assert_eq!(status_record(&legacy, Some(&record)), Some(record.clone()));
        let other = TokenRecord {
            token_fingerprint: "ffffffffffff".into(),
            ..record.clone()
        };
        assert_eq!(status_record(&legacy, Some(&other)), None);
        let clean = ClearApiClientStatus {
            failed_attempts: 0,
            client_secret_fingerprint: Some(record.client_secret_fingerprint.clone()),
            config_hash: Some(record.config_hash.clone()),
            ..legacy
        };
        assert_eq!(status_record(&clean, None), Some(record));
    }
}
