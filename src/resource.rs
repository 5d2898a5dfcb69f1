//! The `ClearApiClient` custom resource (clear-operator.io/v1alpha1): spec, status, the
//! names of the annotations and labels the operator reads and writes, and the CRD built
//! from the Rust types (plus the schema rules schemars cannot express on its own).

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// API group of every resource this operator defines.
pub const GROUP: &str = "clear-operator.io";
/// Setting this annotation to a new value asks for one regeneration (which revokes the old token).
pub const REGENERATE_ANNOTATION: &str = "clear-operator.io/regenerate";
/// Label put on every Secret the operator writes; also the watch selector for them.
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
pub const MANAGED_BY_VALUE: &str = "clear-operator";
/// Label naming the ClearApiClient a target Secret belongs to.
pub const CLIENT_LABEL: &str = "clear-operator.io/client";
/// Default key of the client secret inside the referenced Secret.
pub const DEFAULT_CLIENT_SECRET_KEY: &str = "clientSecret";
/// Finalizer used only while `spec.revokeOnDelete` is true.
pub const REVOKE_FINALIZER: &str = "clear-operator.io/revoke-on-delete";

/// Product names: words of letters and digits joined by `_`, `-` or a space, so both the
/// API's spelling (GST, MAX_ITC, E_INVOICE) and the web app's ("Max ITC", "E-Invoice",
/// "E-Way Bill") are accepted; see [`Product::canonical`] for what the Secret records.
pub const PRODUCT_PATTERN: &str = "^[A-Za-z][A-Za-z0-9]*([ _-][A-Za-z0-9]+)*$";
/// Go-style duration (`90m`, `1h30m`, `2.5h`), the notation Kubernetes users know.
pub const DURATION_PATTERN: &str = r"^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$";
/// A cron schedule of exactly five fields (minute hour day-of-month month day-of-week).
pub const CRON_SCHEDULE_PATTERN: &str = r"^\s*\S+(\s+\S+){4}\s*$";
/// The characters of an IANA time zone name (`UTC`, `Europe/Berlin`, `America/Port-au-Prince`,
/// `Etc/GMT+5`); whether the zone exists is checked by the operator.
pub const TIME_ZONE_PATTERN: &str = r"^[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+)*$";
/// An http(s) URL with a host; whether plain http is allowed is the operator's decision
/// (`--allow-http`), which the schema cannot know.
pub const BASE_URL_PATTERN: &str = r"^https?://[^\s/?#]+(/[^\s?#]*)?$";
/// A Kubernetes object name (DNS-1123 subdomain).
pub const OBJECT_NAME_PATTERN: &str =
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$";
/// A Secret data key.
pub const SECRET_KEY_PATTERN: &str = r"^[-._a-zA-Z0-9]+$";

/// Keeps a live Clear API access token in a Secret: minted from the client secret,
/// renewed before it expires, regenerated on request.
// NB: kube's derive takes one `printcolumn(...)` per column, which clippy reads as repeats.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "clear-operator.io",
    version = "v1alpha1",
    kind = "ClearApiClient",
    plural = "clearapiclients",
    shortname = "cac",
    category = "clear",
    namespaced,
    status = "ClearApiClientStatus",
    doc = "A Clear (ClearTax) API client whose access token the operator keeps in a Secret.",
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Reason",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].reason",
        priority = "1"
    ),
    printcolumn(
        name = "Environment",
        type_ = "string",
        json_path = ".spec.environment"
    ),
    printcolumn(name = "Workspace", type_ = "string", json_path = ".spec.workspace"),
    // NB: "string", not "date": a date column prints the time since, which is
    // meaningless (kubectl shows "<invalid>") for an expiry in the future.
    printcolumn(name = "Valid Till", type_ = "string", json_path = ".status.validTill"),
    // NB: "string" for the same reason; with renewal windows this is when the next call to
    // Clear (and so the next short outage for consumers) is planned.
    printcolumn(name = "Renewal", type_ = "string", json_path = ".status.renewalTime"),
    printcolumn(
        name = "Secret",
        type_ = "string",
        json_path = ".status.secretName",
        priority = "1"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "has(self.baseUrl) || (self.region == 'india') || (self.region == 'eu' && self.environment == 'production')",
        "message": "baseUrl is required: Clear documents no host for this region and environment (EU sandbox, KSA)",
        "reason": "FieldValueRequired",
        "fieldPath": ".baseUrl"
    }
]))]
pub struct ClearApiClientSpec {
    /// Clear environment the API client belongs to: `sandbox` or `production`.
    pub environment: Environment,

    /// Clear region: `india` (default), `eu` or `ksa`. With `environment` it selects the
    /// documented base URL; where none is documented (EU sandbox, KSA) `baseUrl` is required.
    #[serde(default)]
    pub region: Region,

    /// Overrides the base URL (proxies, simulators). Must be https unless the operator runs
    /// with `--allow-http`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = BASE_URL_PATTERN), length(max = 2048))]
    pub base_url: Option<String>,

    /// Clear workspace ID the API client was created in.
    #[schemars(length(min = 1, max = 256))]
    pub workspace: String,

    /// Products the client secret was created for (GST, MAX_ITC, E_INVOICE, E_WAY_BILL,
    /// TDS, ...). Fixed when the client secret is created in Clear; recorded on the Secret
    /// for consumers. Unknown names are accepted because Clear adds products.
    #[schemars(length(min = 1, max = 64), extend("x-kubernetes-list-type" = "set"))]
    pub products: Vec<Product>,

    /// The Secret (in this namespace) and key holding the Clear client secret.
    pub client_secret_ref: ClientSecretRef,

    /// Where the access token is written. Defaults to a Secret named like this resource.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<TargetSpec>,

    /// Renew this long before the token expires (Go duration, e.g. `1h`, `90m`). Default:
    /// a third of the token's lifetime, at most 24h.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = DURATION_PATTERN))]
    pub renew_before: Option<String>,

    /// When renewals may happen, for consumers that would rather see the token change
    /// outside business hours (every renewal revokes the previous token at once). A due
    /// renewal waits for the next opening of any window, but never past the last safe moment
    /// before expiry (a tenth of the token's lifetime, at most 1h, before `validTill`): if no
    /// window opens by then the token is renewed at that moment anyway, the condition
    /// `RenewalWindows` turns False and a Warning Event says why. Windows never delay a
    /// regeneration, a changed client secret or configuration, or a missing or expired token.
    /// Empty (default): renew as soon as the renewal is due.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub renewal_windows: Vec<RenewalWindow>,

    /// Take over a token already in use (minted from this client secret by an ERP, a CI job
    /// or another cluster) instead of minting one, which would revoke it: a Secret in this
    /// namespace holding the token and its expiry. Used only while the resource holds no
    /// token yet; then costs no call, and the token is renewed at its normal renewal point.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adopt_from: Option<AdoptFrom>,

    /// While true, the operator calls Clear for nothing on this resource: no renewal, no
    /// regeneration, no revoke on delete. The token Secret is kept, and Ready says whether
    /// its token is still valid (reason Suspended, then TokenExpired). For a standby or
    /// migration cluster holding the same resources as the active one: only one cluster may
    /// mint with a client secret. Default false.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub suspend: bool,

    /// On deletion, mint once more and discard the result so that the token handed out is
    /// revoked. Uses a finalizer while true. Default false.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub revoke_on_delete: bool,

    /// Workloads (same namespace) restarted after each new token, for consumers that read
    /// the token from environment variables.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    pub rollout_restart_targets: Vec<RolloutRestartTarget>,
}

/// A product name, as written in the spec (see [`PRODUCT_PATTERN`]).
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, JsonSchema)]
#[serde(transparent)]
pub struct Product(
    #[schemars(regex(pattern = PRODUCT_PATTERN), length(min = 1, max = 64))] pub String,
);

impl Product {
    /// Upper snake case, the API's spelling: "Max ITC" and "max-itc" are `MAX_ITC`,
    /// "E-Way Bill" is `E_WAY_BILL`. What the token Secret's `products` key records.
    pub fn canonical(&self) -> String {
        self.0
            .split([' ', '-', '_'])
            .filter(|word| !word.is_empty())
            .map(str::to_ascii_uppercase)
            .collect::<Vec<_>>()
            .join("_")
    }
}

#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Environment {
    Sandbox,
    Production,
}

#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Region {
    #[default]
    India,
    Eu,
    Ksa,
}

#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClientSecretRef {
    /// Name of a Secret in the same namespace (no cross-namespace references: that is a
    /// tenant boundary).
    #[schemars(regex(pattern = OBJECT_NAME_PATTERN), length(min = 1, max = 253))]
    pub name: String,
    /// Key inside that Secret. Default `clientSecret`.
    #[serde(default = "default_client_secret_key")]
    #[schemars(regex(pattern = SECRET_KEY_PATTERN), length(min = 1, max = 253))]
    pub key: String,
}

fn default_client_secret_key() -> String {
    DEFAULT_CLIENT_SECRET_KEY.to_string()
}

/// Where the token to adopt is: see [`ClearApiClientSpec::adopt_from`].
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AdoptFrom {
    /// Name of a Secret in the same namespace.
    #[schemars(regex(pattern = OBJECT_NAME_PATTERN), length(min = 1, max = 253))]
    pub name: String,
    /// Key holding the access token. Default `accessToken`.
    #[serde(default = "default_adopt_token_key")]
    #[schemars(regex(pattern = SECRET_KEY_PATTERN), length(min = 1, max = 253))]
    pub token_key: String,
    /// Key holding when the token expires: the `valid_till` Clear answered with (RFC 3339
    /// with an offset), or `never` for an API client whose tokens never expire. Required in
    /// the Secret: a token of unknown expiry is not adopted. Default `validTill`.
    #[serde(default = "default_adopt_valid_till_key")]
    #[schemars(regex(pattern = SECRET_KEY_PATTERN), length(min = 1, max = 253))]
    pub valid_till_key: String,
}

fn default_adopt_token_key() -> String {
    "accessToken".to_string()
}

fn default_adopt_valid_till_key() -> String {
    "validTill".to_string()
}

#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TargetSpec {
    /// Name of the Secret to write. Default: the resource's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = OBJECT_NAME_PATTERN), length(min = 1, max = 253))]
    pub name: Option<String>,
    /// Extra labels for the Secret.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Extra annotations for the Secret.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// `Delete` (default): the Secret is owned by this resource and garbage-collected with
    /// it. `Retain`: the Secret outlives the resource.
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,
    /// Whether, after each new token, the operator nudges the kubelets of the pods that
    /// mount this Secret as files so they see it in seconds (when the operator runs with
    /// `--nudge-pods`). Default true; false leaves them to the kubelet's periodic sync.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nudge_pods: Option<bool>,
    /// Extra keys built from the token and its metadata (a header line, an `.env` or JSON
    /// document), and new names for the default keys. See docs/resource-reference.md,
    /// "Templates".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<SecretTemplate>,
}

/// `spec.target.template`. Templates substitute only the values of the default keys:
/// `{{ .accessToken }}`, `{{ .validTill }}`, `{{ .baseUrl }}`, `{{ .environment }}`,
/// `{{ .workspace }}`, `{{ .products }}`, each also as a JSON string with
/// `{{ json .accessToken }}`; everything else is copied as written.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "!has(self.keys) || !has(self.rename) || self.rename.all(k, !(self.rename[k] in self.keys))",
        "message": "a template key has the name a default key is renamed to",
        "reason": "FieldValueInvalid",
        "fieldPath": ".keys"
    }
]))]
pub struct SecretTemplate {
    /// Extra Secret keys (at most 16) and the template each is rendered from (at most 4096
    /// characters), e.g. `header: "x-cleartax-auth-token: {{ .accessToken }}"`. A key may
    /// not be named like a default key.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend(
        "maxProperties" = 16,
        "additionalProperties" = {"type": "string", "maxLength": 4096},
        "x-kubernetes-validations" = [
            {
                "rule": "self.all(k, size(k) <= 253 && k.matches('^[-._a-zA-Z0-9]+$') && k != '.' && !k.startsWith('..'))",
                "message": "template keys must be valid Secret keys (letters, digits, '-', '_', '.'; at most 253; not '.' nor starting with '..')",
                "reason": "FieldValueInvalid"
            },
            {
                "rule": "self.all(k, !(k in ['accessToken', 'validTill', 'baseUrl', 'environment', 'workspace', 'products']))",
                "message": "a template key may not be named like a default key (rename the default key with rename instead)",
                "reason": "FieldValueInvalid"
            }
        ]
    ))]
    pub keys: BTreeMap<String, String>,
    /// New names for default keys (`accessToken`, `validTill`, `baseUrl`, `environment`,
    /// `workspace`, `products`), e.g. `accessToken: CLEAR_TOKEN`. Each new name must be
    /// used once, and not be another default key's name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend(
        "maxProperties" = 6,
        "additionalProperties" = {
            "type": "string", "minLength": 1, "maxLength": 253, "pattern": SECRET_KEY_PATTERN
        },
        "x-kubernetes-validations" = [
            {
                "rule": "self.all(k, k in ['accessToken', 'validTill', 'baseUrl', 'environment', 'workspace', 'products'])",
                "message": "only the default keys accessToken, validTill, baseUrl, environment, workspace and products can be renamed",
                "reason": "FieldValueInvalid"
            },
            {
                "rule": "self.all(k, self[k] == k || !(self[k] in ['accessToken', 'validTill', 'baseUrl', 'environment', 'workspace', 'products']))",
                "message": "a default key may not be renamed to another default key's name",
                "reason": "FieldValueInvalid"
            },
            {
                "rule": "self.all(k, self[k] != '.' && !self[k].startsWith('..'))",
                "message": "a new key name may not be '.' nor start with '..'",
                "reason": "FieldValueInvalid"
            },
            {
                "rule": "self.all(a, self.all(b, a == b || self[a] != self[b]))",
                "message": "two default keys are renamed to the same name",
                "reason": "FieldValueInvalid"
            }
        ]
    ))]
    pub rename: BTreeMap<String, String>,
}

#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
pub enum DeletionPolicy {
    #[default]
    Delete,
    Retain,
}

#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RolloutRestartTarget {
    pub kind: RolloutKind,
    #[schemars(regex(pattern = OBJECT_NAME_PATTERN), length(min = 1, max = 253))]
    pub name: String,
}

/// A recurring period in which the token may be renewed.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RenewalWindow {
    /// When the window opens, as a five-field cron expression (minute hour day-of-month
    /// month day-of-week) read in `timeZone`: e.g. `0 1 * * *` (01:00 every day),
    /// `30 22 * * 1-5` (22:30 on weekdays), `0 2 * * SAT,SUN`. An opening time that does not
    /// exist on a day the clock springs forward is moved to the first instant after the gap.
    #[schemars(regex(pattern = CRON_SCHEDULE_PATTERN), length(min = 1, max = 128))]
    pub schedule: String,
    /// IANA time zone the schedule is read in (`Europe/Berlin`, `Asia/Kolkata`,
    /// `America/New_York`). Default `UTC`. Daylight saving time is followed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = TIME_ZONE_PATTERN), length(min = 1, max = 64))]
    pub time_zone: Option<String>,
    /// How long the window stays open after each opening (Go duration: `2h`, `90m`),
    /// counted in elapsed time: across a daylight-saving change the window ends that much
    /// real time later, not at the same wall-clock time. Must be positive.
    #[schemars(
        regex(pattern = DURATION_PATTERN),
        length(min = 1, max = 32),
        extend("x-kubernetes-validations" = [{
            "rule": "self.matches('[1-9]')",
            "message": "duration must be positive",
            "reason": "FieldValueInvalid"
        }])
    )]
    pub duration: String,
}

#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum RolloutKind {
    Deployment,
    StatefulSet,
    DaemonSet,
}

/// What the operator observed and did. Never holds a token or a client secret: only
/// short one-way fingerprints of them.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClearApiClientStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready` and friends, per the Kubernetes API conventions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    /// The Secret holding the access token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_name: Option<String>,
    /// When the current token was minted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issued_at: Option<Time>,
    /// When the current token expires; absent when it never expires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_till: Option<Time>,
    /// When the operator will renew the token (inside a renewal window, when the spec has
    /// any); absent when it never expires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub renewal_time: Option<Time>,
    /// The Secret the current token was adopted from (`spec.adoptFrom`): it was not minted
    /// here, so `issuedAt` is when it was adopted, not when Clear issued it. Cleared by the
    /// next token minted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adopted_from: Option<String>,
    /// Set when Clear's answer gave the current token no readable `valid_till` (absent, or
    /// not a date with a UTC offset): says why; `validTill` is then an assumed, short
    /// lifetime (one hour) rather than "never expires", and Ready's reason is
    /// `ExpiryAssumed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiry_assumed: Option<String>,
    /// Short SHA-256 prefix of the current token (to correlate, never to recover it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_fingerprint: Option<String>,
    /// Short SHA-256 prefix of the client secret the current token was minted from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret_fingerprint: Option<String>,
    /// Hash of environment, region, base URL and workspace the current token was minted
    /// for. With the fields above, the operator's record of the token: status is the
    /// authority, the token Secret's annotations are a copy of it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_config_hash: Option<String>,
    /// The last `clear-operator.io/regenerate` value honoured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_regenerate_request: Option<String>,
    /// The regenerate values honoured most recently (newest last, at most 16): a value
    /// put back by a GitOps revert is not a new request.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub regenerate_history: Vec<String>,
    /// UTC day (YYYY-MM-DD) that `mintsToday` counts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mint_day: Option<String>,
    /// Calls to Clear's token endpoint made for this resource on `mintDay` (UTC).
    #[serde(default)]
    pub mints_today: i32,
    /// Consecutive failed attempts since the last success.
    #[serde(default)]
    pub failed_attempts: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_failure_time: Option<Time>,
    /// Reason of the last failure (a condition reason such as ClearUnavailable).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_failure_reason: Option<String>,
    /// The operator will not call Clear for this resource before this time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_retry_time: Option<Time>,
    /// Set just before a call to Clear and cleared once its outcome is recorded. If it is
    /// still set on the next reconcile, the operator stopped mid-call: Clear may have minted
    /// (and so revoked the stored token) without the new token reaching the Secret, so the
    /// stored token is presumed revoked and is replaced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mint_started_at: Option<Time>,
    /// Identifies the call marked by `mintStartedAt`. The Secret written with that call's
    /// token carries it (annotation `clear-operator.io/call-id`), so a Secret newer than
    /// status (the status write after the call was lost) is told apart exactly from a
    /// token written back by something else.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call_id: Option<String>,
    /// Short SHA-256 prefix of the client secret the last call to Clear was made with (a
    /// 401 or 429 waits for it to change).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call_client_secret_fingerprint: Option<String>,
    /// Hash of environment, region, base URL and workspace of the last call to Clear: a
    /// client secret rejected (401) for one configuration is tried again once it changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_hash: Option<String>,
    /// The operator install (its leader Lease, `namespace/name`) that manages this resource.
    /// A second install watching the same namespace yields to it and says so (Warning
    /// `DuplicateOperator`) instead of minting against it; it takes over only once the
    /// first evidently stopped (see docs/minting-and-failures.md, "Two installs").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operator_instance: Option<String>,
    /// `rolloutRestartTargets` not yet restarted onto the current token (the patch failed,
    /// was forbidden, or the operator stopped before making it); retried until done.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pending_restarts: Vec<RolloutRestartTarget>,
}

impl ClearApiClient {
    /// Name of the target Secret.
    pub fn target_secret_name(&self) -> String {
        self.spec
            .target
            .as_ref()
            .and_then(|t| t.name.clone())
            .unwrap_or_else(|| kube::ResourceExt::name_any(self))
    }

    /// The regenerate annotation's value, if any.
    pub fn regenerate_request(&self) -> Option<&str> {
        self.metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(REGENERATE_ANNOTATION))
            .map(String::as_str)
    }

    pub fn deletion_policy(&self) -> DeletionPolicy {
        self.spec
            .target
            .as_ref()
            .map(|t| t.deletion_policy)
            .unwrap_or_default()
    }
}

/// The CRD as committed in `crds/`. Tests compare the two so they never drift.
pub fn crd_yaml() -> String {
    use kube::CustomResourceExt;
    let crd = ClearApiClient::crd();
    serde_yaml::to_string(&crd).expect("a CRD always serializes")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vendor_spellings_of_products_are_accepted_and_recorded_in_the_apis_spelling() {
        let pattern = regex_lite_match;
        for (written, canonical) in [
            ("GST", "GST"),
            ("MAX_ITC", "MAX_ITC"),
            ("Max ITC", "MAX_ITC"),
            ("E-Invoice", "E_INVOICE"),
            ("E-Way Bill", "E_WAY_BILL"),
            ("tds", "TDS"),
        ] {
            assert!(pattern(written), "{written} is accepted");
            assert_eq!(Product(written.into()).canonical(), canonical);
        }
        for refused in [
            "",
            " GST",
            "GST ",
            "E--Invoice",
            "9GST",
            "GST,TDS",
            "Max  ITC",
        ] {
            assert!(!pattern(refused), "{refused:?} is refused");
        }
    }

    /// The schema's pattern, as the API server applies it (anchored, whole value).
    fn regex_lite_match(value: &str) -> bool {
        regex::Regex::new(PRODUCT_PATTERN).unwrap().is_match(value)
    }

    #[test]
    fn spec_defaults_region_key_and_policy_when_omitted() {
        let spec: ClearApiClientSpec = serde_json::from_value(serde_json::json!({
            "environment": "sandbox",
            "workspace": "ws-1",
            "products": ["GST"],
            "clientSecretRef": {"name": "clear-secret"}
        }))
        .unwrap();
        assert_eq!(spec.region, Region::India);
        assert_eq!(spec.client_secret_ref.key, "clientSecret");
        assert!(!spec.revoke_on_delete);
        let cac = ClearApiClient::new("billing", spec);
        assert_eq!(cac.target_secret_name(), "billing");
        assert_eq!(cac.deletion_policy(), DeletionPolicy::Delete);
    }
}
