//! `clear-operator status NAME [-n NS]` and `status -A`: what a user asks first, "is my
//! token good, and when and why will the operator call Clear next?", answered from what
//! the cluster stores: the ClearApiClient, its target Secret's METADATA (a metadata-only
//! read: token bytes never reach this process) and the budget ledger ConfigMap.
//!
//! The summary is a pure function of those three ([`summarize`]) so that a table of cases
//! tests it without a server; the I/O lives in [`gather`] and [`gather_all`].
//!
//! The ledger is found from `status.operatorInstance` (the operator's Lease,
//! `namespace/name`): the leader keeps it in the ConfigMap `<lease>-budget` beside the
//! Lease (see `reconcile::ledger`). `--ledger NS/NAME` names it explicitly (an operator run
//! without leader election keeps no ledger ConfigMap).

use std::collections::BTreeMap;

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, ObjectMeta};
use kube::{
    Api, Client, ResourceExt,
    api::{ListParams, PartialObjectMeta},
};

use crate::{
    reason::Reason,
    reconcile::{
        schedule::utc_day,
        secret::{
            ISSUED_AT_ANNOTATION, NEVER_EXPIRES, TOKEN_FINGERPRINT_ANNOTATION,
            VALID_TILL_ANNOTATION,
        },
        status::condition_types,
    },
    resource::{ClearApiClient, MANAGED_BY_LABEL, MANAGED_BY_VALUE},
};

/// Clear's own limit of calls per client secret per UTC day (the operator's `--mint-budget`
/// stays under it; its value is not stored in the cluster, so this is what is shown).
pub const CLEAR_DAILY_LIMIT: u32 = 288;
/// Suffix of the ledger ConfigMap's name after the Lease's (`reconcile::ledger`).
pub const LEDGER_SUFFIX: &str = "-budget";
/// The ledger's key holding the UTC day its counts are for.
const LEDGER_DAY_KEY: &str = "day";

#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    #[error(transparent)]
    Resource(#[from] super::ReadResourceError),
    #[error("failed to list ClearApiClients")]
    List(#[source] kube::Error),
    #[error("failed to parse --ledger {0:?}: expected NAMESPACE/NAME")]
    LedgerLocation(String),
}

/// Where the ledger ConfigMap is, as `namespace/name`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct LedgerRef {
    pub namespace: String,
    pub name: String,
}

impl std::fmt::Display for LedgerRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

impl std::str::FromStr for LedgerRef {
    type Err = StatusError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.split_once('/') {
            Some((namespace, name)) if !namespace.is_empty() && !name.is_empty() => Ok(Self {
                namespace: namespace.to_string(),
                name: name.to_string(),
            }),
            _ => Err(StatusError::LedgerLocation(s.to_string())),
        }
    }
}

/// The ledger of the install managing `cac` (from `status.operatorInstance`).
pub fn ledger_of(cac: &ClearApiClient) -> Option<LedgerRef> {
    let instance = cac.status.as_ref()?.operator_instance.as_deref()?;
    let (namespace, lease) = instance.split_once('/')?;
    Some(LedgerRef {
        namespace: namespace.to_string(),
        name: format!("{lease}{LEDGER_SUFFIX}"),
    })
}

/// What was read of the target Secret: its metadata only.
#[derive(Clone, Debug)]
pub enum SecretView {
    Found(Box<ObjectMeta>),
    Missing,
    Unreadable(String),
}

/// What was read of the ledger ConfigMap.
#[derive(Clone, Debug)]
pub enum LedgerView {
    Found {
        location: LedgerRef,
        data: BTreeMap<String, String>,
    },
    Unavailable {
        location: Option<LedgerRef>,
        why: String,
    },
}

/// The answer to "when will the operator call Clear next, and why?".
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NextCall {
    /// At the renewal time (possibly held to a renewal window).
    Renewal { at: Timestamp },
    /// Not before this time: backoff after failures, the budget, a lost call's grace.
    NotBefore { at: Timestamp, why: String },
    /// Only once something changes; `what` says what.
    WhenChanged { what: String },
    /// As soon as possible (the operator is about to call, or is calling).
    Soon { why: String },
    /// The token never expires and nothing asks for a new one.
    None,
}

/// The human summary of one ClearApiClient.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Summary {
    pub namespace: String,
    pub name: String,
    /// `True`, `False` or `Unknown` (no condition yet).
    pub ready: String,
    pub reason: Option<String>,
    pub message: Option<String>,
    pub valid_till: Option<Timestamp>,
    pub never_expires: bool,
    pub expired: bool,
    pub token_fingerprint: Option<String>,
    pub next_call: NextCall,
    /// The RenewalWindows condition, as `Status (Reason): message`.
    pub renewal_windows: Option<String>,
    /// Another resource using the same client secret (reason Conflict).
    pub conflict_holder: Option<String>,
    /// `reason at time (n failed attempts)`.
    pub last_failure: Option<String>,
    /// Calls today with this resource's client secret, across resources (the ledger).
    pub calls_today: Option<u32>,
    /// Calls today made for this resource (status.mintsToday of today).
    pub resource_calls_today: u32,
    pub ledger: String,
    pub secret_name: String,
    /// Empty when the Secret's annotations copy status; otherwise what differs.
    pub secret_mismatches: Vec<String>,
    pub secret_state: String,
}

fn condition<'a>(cac: &'a ClearApiClient, type_: &str) -> Option<&'a Condition> {
    cac.status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
}

/// The holder named in a Conflict message ("X already uses this client secret ...").
fn conflict_holder(message: &str) -> Option<String> {
    message
        .split_once(" already uses this client secret")
        .map(|(who, _)| who.trim().to_string())
}

/// Builds the summary of `cac` at `now` from its target Secret's metadata and the ledger.
pub fn summarize(
    cac: &ClearApiClient,
    secret: &SecretView,
    ledger: &LedgerView,
    now: Timestamp,
) -> Summary {
    let default_status = Default::default();
    let status = cac.status.as_ref().unwrap_or(&default_status);
    let ready = condition(cac, condition_types::READY);
    let reason = ready.map(|c| c.reason.clone());
    let parsed_reason = reason.as_deref().and_then(Reason::parse);
    let message = ready.map(|c| c.message.clone());
    let valid_till = status.valid_till.as_ref().map(|t| t.0);
    let has_token = status.token_fingerprint.is_some();
    let never_expires = has_token && valid_till.is_none();
    let conflict_holder = match parsed_reason {
        Some(Reason::Conflict) => message.as_deref().and_then(conflict_holder),
        _ => None,
    };
    let next_retry = status.next_retry_time.as_ref().map(|t| t.0);
    let last_failure = status.last_failure_reason.as_ref().map(|r| {
        let at = status
            .last_failure_time
            .as_ref()
            .map(|t| format!(" at {}", t.0))
            .unwrap_or_default();
        format!(
            "{r}{at} ({} failed attempts since the last success)",
            status.failed_attempts
        )
    });
    let next_call = decide_next_call(
        parsed_reason,
        message.as_deref(),
        conflict_holder.as_deref(),
        next_retry,
        status.renewal_time.as_ref().map(|t| t.0),
        has_token,
        now,
    );
    let today = utc_day(now);
    let resource_calls_today = match status.mint_day.as_deref() {
        Some(day) if day == today => u32::try_from(status.mints_today).unwrap_or(0),
        _ => 0,
    };
    let (calls_today, ledger_text) = match ledger {
        LedgerView::Found { location, data } => {
            let calls = if data.get(LEDGER_DAY_KEY) == Some(&today) {
                status
                    .client_secret_fingerprint
                    .as_ref()
                    .and_then(|fp| data.get(fp))
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0)
            } else {
                // NB: a ledger of another day: nothing was counted today yet.
                0
            };
            (Some(calls), location.to_string())
        }
        LedgerView::Unavailable { location, why } => (
            None,
            match location {
                Some(location) => format!("{location} ({why})"),
                None => why.clone(),
            },
        ),
    };
    let secret_name = status
        .secret_name
        .clone()
        .unwrap_or_else(|| cac.target_secret_name());
    let (secret_state, secret_mismatches) = compare_secret(status, secret);
    Summary {
        namespace: cac.namespace().unwrap_or_default(),
        name: cac.name_any(),
        ready: ready
            .map(|c| c.status.clone())
            .unwrap_or_else(|| "Unknown".into()),
        reason,
        message,
        valid_till,
        never_expires,
        expired: valid_till.is_some_and(|t| t <= now),
        token_fingerprint: status.token_fingerprint.clone(),
        next_call,
        renewal_windows: condition(cac, condition_types::RENEWAL_WINDOWS)
            .map(|c| format!("{} ({}): {}", c.status, c.reason, c.message)),
        conflict_holder,
        last_failure,
        calls_today,
        resource_calls_today,
        ledger: ledger_text,
        secret_name,
        secret_mismatches,
        secret_state,
    }
}

fn decide_next_call(
    reason: Option<Reason>,
    message: Option<&str>,
    holder: Option<&str>,
    next_retry: Option<Timestamp>,
    renewal: Option<Timestamp>,
    has_token: bool,
    now: Timestamp,
) -> NextCall {
    let message = message.unwrap_or_default().to_string();
    match reason {
        Some(Reason::Conflict) => {
            return NextCall::WhenChanged {
                what: format!(
                    "{} stops using this client secret (it holds it; minting here would revoke its token)",
                    holder.unwrap_or("another resource")
                ),
            };
        }
        Some(Reason::ClientSecretRejected) => {
            return NextCall::WhenChanged {
                what: "the client secret changes (Clear rejected it)".into(),
            };
        }
        Some(
            r @ (Reason::InvalidSpec
            | Reason::BaseUrlNotAllowed
            | Reason::ClientSecretMissing
            | Reason::ClientSecretInvalid
            | Reason::TargetConflict
            | Reason::DuplicateOperator),
        ) => {
            return NextCall::WhenChanged {
                what: format!("{r} is resolved: {message}"),
            };
        }
        Some(Reason::ClearUnavailable) if next_retry.is_none_or(|t| t <= now) => {
            // The circuit: trial calls only (its message says how often).
            return NextCall::Soon { why: message };
        }
        Some(Reason::MintInFlight) => return NextCall::Soon { why: message },
        _ => {}
    }
    if let Some(at) = next_retry.filter(|t| *t > now) {
        let why = match reason {
            Some(Reason::BudgetExhausted) => "the daily budget of calls is spent".to_string(),
            Some(Reason::RateLimited) => "Clear answered 429 (rate limited)".to_string(),
            Some(r) => format!("backoff after a failure ({r})"),
            None => "backoff after a failure".to_string(),
        };
        return NextCall::NotBefore { at, why };
    }
    if reason == Some(Reason::BudgetExhausted) {
        return NextCall::WhenChanged {
            what: format!("the UTC day ends: {message}"),
        };
    }
    match renewal {
        Some(at) => NextCall::Renewal { at },
        None if has_token => NextCall::None,
        None => NextCall::Soon {
            why: "no token yet".into(),
        },
    }
}

/// Whether the Secret's annotations copy status: `(state, mismatches)`.
fn compare_secret(
    status: &crate::resource::ClearApiClientStatus,
    secret: &SecretView,
) -> (String, Vec<String>) {
    let meta = match secret {
        SecretView::Found(meta) => meta,
        SecretView::Missing => {
            return (
                "missing (the operator mints once to recreate it)".into(),
                vec!["the Secret does not exist".into()],
            );
        }
        SecretView::Unreadable(why) => return (format!("unreadable: {why}"), Vec::new()),
    };
    let empty = BTreeMap::new();
    let annotations = meta.annotations.as_ref().unwrap_or(&empty);
    let mut mismatches = Vec::new();
    let mut check = |key: &str, expected: Option<String>| {
        let actual = annotations.get(key).cloned();
        if actual != expected {
            mismatches.push(format!(
                "{key}: Secret {}, status {}",
                actual.as_deref().unwrap_or("(none)"),
                expected.as_deref().unwrap_or("(none)")
            ));
        }
    };
    // NB: compared as times, not text: the same instant may be written with other digits.
    let same_time = |key: &str, expected: Option<Timestamp>| {
        let actual = annotations
            .get(key)
            .and_then(|v| v.parse::<Timestamp>().ok());
        actual == expected
    };
    if !same_time(ISSUED_AT_ANNOTATION, status.issued_at.as_ref().map(|t| t.0)) {
        check(
            ISSUED_AT_ANNOTATION,
            status.issued_at.as_ref().map(|t| t.0.to_string()),
        );
    }
    let valid_till_matches = match status.valid_till.as_ref() {
        Some(t) => same_time(VALID_TILL_ANNOTATION, Some(t.0)),
        None if status.token_fingerprint.is_some() => {
            annotations.get(VALID_TILL_ANNOTATION).map(String::as_str) == Some(NEVER_EXPIRES)
        }
        None => !annotations.contains_key(VALID_TILL_ANNOTATION),
    };
    if !valid_till_matches {
        let expected = match (&status.valid_till, &status.token_fingerprint) {
            (Some(t), _) => Some(t.0.to_string()),
            (None, Some(_)) => Some(NEVER_EXPIRES.to_string()),
            (None, None) => None,
        };
        check(VALID_TILL_ANNOTATION, expected);
    }
    check(
        TOKEN_FINGERPRINT_ANNOTATION,
        status.token_fingerprint.clone(),
    );
    let state = if mismatches.is_empty() {
        "matches status".to_string()
    } else {
        "differs from status (the operator re-applies it from status without a call)".to_string()
    };
    (state, mismatches)
}

fn ago_or_in(at: Timestamp, now: Timestamp) -> String {
    let d = at.duration_since(now);
    let text = short_duration(d.abs());
    if d.is_negative() {
        format!("{text} ago")
    } else {
        format!("in {text}")
    }
}

fn short_duration(d: SignedDuration) -> String {
    let secs = d.as_secs();
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 3600 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h{}m", s / 3600, s % 3600 / 60),
        s => format!("{}d{}h", s / 86_400, s % 86_400 / 3600),
    }
}

impl NextCall {
    /// One line, with times relative to `now`.
    pub fn describe(&self, now: Timestamp) -> String {
        match self {
            NextCall::Renewal { at } => {
                format!("renewal at {at} ({})", ago_or_in(*at, now))
            }
            NextCall::NotBefore { at, why } => {
                format!("not before {at} ({}): {why}", ago_or_in(*at, now))
            }
            NextCall::WhenChanged { what } => format!("only when {what}"),
            NextCall::Soon { why } => format!("as soon as possible: {why}"),
            NextCall::None => "none planned: the token never expires".into(),
        }
    }

    fn short(&self, now: Timestamp) -> String {
        match self {
            NextCall::Renewal { at } => format!("renew {}", ago_or_in(*at, now)),
            NextCall::NotBefore { at, .. } => format!("retry {}", ago_or_in(*at, now)),
            NextCall::WhenChanged { .. } => "on change".into(),
            NextCall::Soon { .. } => "soon".into(),
            NextCall::None => "none".into(),
        }
    }
}

/// The summary as the lines `status NAME` prints.
pub fn render(summary: &Summary, now: Timestamp) -> String {
    let mut lines: Vec<(String, String)> = Vec::new();
    let mut push = |k: &str, v: String| lines.push((k.to_string(), v));
    push(
        "ClearApiClient",
        format!("{}/{}", summary.namespace, summary.name),
    );
    push(
        "Ready",
        match (&summary.reason, &summary.message) {
            (Some(r), Some(m)) => format!("{} ({r}): {m}", summary.ready),
            _ => summary.ready.clone(),
        },
    );
    let token = match (&summary.token_fingerprint, summary.valid_till) {
        (None, _) => "none".to_string(),
        (Some(fp), None) => format!("fingerprint {fp}, never expires"),
        (Some(fp), Some(at)) if summary.expired => {
            format!("fingerprint {fp}, EXPIRED at {at} ({})", ago_or_in(at, now))
        }
        (Some(fp), Some(at)) => {
            format!("fingerprint {fp}, valid till {at} ({})", ago_or_in(at, now))
        }
    };
    push("Token", token);
    push("Next call to Clear", summary.next_call.describe(now));
    if let Some(windows) = &summary.renewal_windows {
        push("Renewal windows", windows.clone());
    }
    if let Some(holder) = &summary.conflict_holder {
        push("Client secret held by", holder.clone());
    }
    push(
        "Last failure",
        summary
            .last_failure
            .clone()
            .unwrap_or_else(|| "none".into()),
    );
    push(
        "Calls today (UTC)",
        match summary.calls_today {
            Some(calls) => format!(
                "{calls} of {CLEAR_DAILY_LIMIT} for its client secret (all resources), {} for this resource; ledger {}",
                summary.resource_calls_today, summary.ledger
            ),
            None => format!(
                "{} for this resource; the client secret's total is unknown: ledger {}",
                summary.resource_calls_today, summary.ledger
            ),
        },
    );
    push(
        "Secret",
        format!("{}: {}", summary.secret_name, summary.secret_state),
    );
    for mismatch in &summary.secret_mismatches {
        push("  differs", mismatch.clone());
    }
    let width = lines.iter().map(|(k, _)| k.len() + 1).max().unwrap_or(0);
    lines
        .iter()
        .map(|(k, v)| format!("{:width$}  {v}\n", format!("{k}:")))
        .collect()
}

/// The `-A` table: one row per resource.
pub fn render_table(summaries: &[Summary], now: Timestamp) -> String {
    let header = [
        "NAMESPACE",
        "NAME",
        "READY",
        "REASON",
        "VALID TILL",
        "NEXT CALL",
        "SECRET",
        "CALLS TODAY",
    ];
    let rows: Vec<[String; 8]> = summaries
        .iter()
        .map(|s| {
            [
                s.namespace.clone(),
                s.name.clone(),
                s.ready.clone(),
                s.reason.clone().unwrap_or_else(|| "-".into()),
                match (s.valid_till, s.never_expires) {
                    (Some(at), _) if s.expired => format!("expired {}", ago_or_in(at, now)),
                    (Some(at), _) => at.to_string(),
                    (None, true) => "never".into(),
                    (None, false) => "-".into(),
                },
                s.next_call.short(now),
                if matches!(s.secret_state.as_str(), "matches status") {
                    "ok".into()
                } else if s.secret_mismatches.is_empty() {
                    "?".into()
                } else {
                    "differs".into()
                },
                s.calls_today
                    .map(|c| c.to_string())
                    .unwrap_or_else(|| "?".into()),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut out = String::new();
        for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
            if i + 1 == cells.len() {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:w$}   "));
            }
        }
        out.push('\n');
        out
    };
    let mut out = line(header.to_vec());
    for row in &rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}

// ---- I/O ----

async fn read_ledger(client: &Client, location: Option<LedgerRef>) -> LedgerView {
    let Some(location) = location else {
        return LedgerView::Unavailable {
            location: None,
            why: "not known (the operator runs without leader election, or has not reconciled this resource yet; pass --ledger NS/NAME)".into(),
        };
    };
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), &location.namespace);
    match api.get_opt(&location.name).await {
        Ok(Some(cm)) => LedgerView::Found {
            location,
            data: cm.data.unwrap_or_default(),
        },
        Ok(None) => LedgerView::Unavailable {
            location: Some(location),
            why: "not written yet (no call counted since the operator started)".into(),
        },
        Err(kube::Error::Api(status)) => LedgerView::Unavailable {
            location: Some(location),
            why: format!("cannot be read: {} {}", status.code, status.reason),
        },
        Err(e) => LedgerView::Unavailable {
            location: Some(location),
            why: format!("cannot be read: {e}"),
        },
    }
}

fn secret_view(result: Result<Option<PartialObjectMeta<Secret>>, kube::Error>) -> SecretView {
    match result {
        Ok(Some(meta)) => SecretView::Found(Box::new(meta.metadata)),
        Ok(None) => SecretView::Missing,
        Err(kube::Error::Api(status)) => {
            SecretView::Unreadable(format!("{} {}", status.code, status.reason))
        }
        Err(e) => SecretView::Unreadable(e.to_string()),
    }
}

/// Reads the resource, its Secret's metadata and the ledger, and summarizes them.
pub async fn gather(
    client: &Client,
    namespace: &str,
    name: &str,
    ledger: Option<LedgerRef>,
    now: Timestamp,
) -> Result<Summary, StatusError> {
    let cac = super::read_resource(client.clone(), namespace, name).await?;
    let secret_name = cac
        .status
        .as_ref()
        .and_then(|s| s.secret_name.clone())
        .unwrap_or_else(|| cac.target_secret_name());
    // NB: metadata only: the token never reaches this process.
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let secret = secret_view(secrets.get_metadata_opt(&secret_name).await);
    let ledger = read_ledger(client, ledger.or_else(|| ledger_of(&cac))).await;
    Ok(summarize(&cac, &secret, &ledger, now))
}

/// Summaries of every ClearApiClient the caller can list (all namespaces): one list of the
/// resources, one metadata list of the operator's Secrets, one read per ledger.
pub async fn gather_all(
    client: &Client,
    ledger: Option<LedgerRef>,
    now: Timestamp,
) -> Result<Vec<Summary>, StatusError> {
    let cacs: Api<ClearApiClient> = Api::all(client.clone());
    let list = cacs
        .list(&ListParams::default())
        .await
        .map_err(StatusError::List)?;
    let secrets: Api<Secret> = Api::all(client.clone());
    let metas = secrets
        .list_metadata(
            &ListParams::default().labels(&format!("{MANAGED_BY_LABEL}={MANAGED_BY_VALUE}")),
        )
        .await;
    let (by_name, secrets_error) = match metas {
        Ok(list) => (
            list.items
                .into_iter()
                .map(|m| {
                    (
                        (m.namespace().unwrap_or_default(), m.name_any()),
                        m.metadata,
                    )
                })
                .collect::<BTreeMap<_, _>>(),
            None,
        ),
        Err(e) => (BTreeMap::new(), Some(e.to_string())),
    };
    let mut ledgers: BTreeMap<Option<LedgerRef>, LedgerView> = BTreeMap::new();
    let mut summaries = Vec::new();
    for cac in list.items {
        let location = ledger.clone().or_else(|| ledger_of(&cac));
        if !ledgers.contains_key(&location) {
            let view = read_ledger(client, location.clone()).await;
            ledgers.insert(location.clone(), view);
        }
        let namespace = cac.namespace().unwrap_or_default();
        let secret_name = cac
            .status
            .as_ref()
            .and_then(|s| s.secret_name.clone())
            .unwrap_or_else(|| cac.target_secret_name());
        let secret = match (&secrets_error, by_name.get(&(namespace, secret_name))) {
            (Some(e), _) => SecretView::Unreadable(e.clone()),
            (None, Some(meta)) => SecretView::Found(Box::new(meta.clone())),
            (None, None) => SecretView::Missing,
        };
        summaries.push(summarize(&cac, &secret, &ledgers[&location], now));
    }
    Ok(summaries)
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    use super::*;
    use crate::resource::ClearApiClientStatus;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    const NOW: &str = "2026-12-08T10:00:00Z";

    fn cac(status: ClearApiClientStatus) -> ClearApiClient {
        let mut cac: ClearApiClient = serde_json::from_value(serde_json::json!({
            "apiVersion": "clear-operator.io/v1alpha1",
            "kind": "ClearApiClient",
            "metadata": {"name": "billing", "namespace": "team-a"},
            "spec": {
                "environment": "sandbox",
                "workspace": "ws",
                "products": ["GST"],
                "clientSecretRef": {"name": "cs"}
            }
        }))
        .unwrap();
        cac.status = Some(status);
        cac
    }

    fn ready(status: &str, reason: &str, message: &str) -> Condition {
        Condition {
            type_: "Ready".into(),
            status: status.into(),
            reason: reason.into(),
            message: message.into(),
            observed_generation: None,
            last_transition_time: Time(ts(NOW)),
        }
    }

    fn issued() -> ClearApiClientStatus {
        ClearApiClientStatus {
            conditions: vec![ready("True", "Issued", "token valid")],
            secret_name: Some("billing".into()),
            issued_at: Some(Time(ts("2026-12-08T08:00:00Z"))),
            valid_till: Some(Time(ts("2026-12-08T20:00:00Z"))),
            renewal_time: Some(Time(ts("2026-12-08T18:00:00Z"))),
            token_fingerprint: Some("abc123abc123".into()),
            client_secret_fingerprint: Some("cs0000000001".into()),
            mint_day: Some("2026-12-08".into()),
            mints_today: 2,
            operator_instance: Some("ops/clear-operator".into()),
            ..Default::default()
        }
    }

    fn secret_matching(status: &ClearApiClientStatus) -> SecretView {
        let mut annotations = BTreeMap::new();
        if let Some(t) = &status.issued_at {
            annotations.insert(ISSUED_AT_ANNOTATION.to_string(), t.0.to_string());
        }
        annotations.insert(
            VALID_TILL_ANNOTATION.to_string(),
            status
                .valid_till
                .as_ref()
                .map(|t| t.0.to_string())
                .unwrap_or_else(|| NEVER_EXPIRES.into()),
        );
        if let Some(fp) = &status.token_fingerprint {
            annotations.insert(TOKEN_FINGERPRINT_ANNOTATION.to_string(), fp.clone());
        }
        SecretView::Found(Box::new(ObjectMeta {
            annotations: Some(annotations),
            ..Default::default()
        }))
    }

    fn ledger(day: &str, calls: &[(&str, &str)]) -> LedgerView {
        let mut data: BTreeMap<String, String> = calls
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        data.insert("day".into(), day.into());
        LedgerView::Found {
            location: "ops/clear-operator-budget".parse().unwrap(),
            data,
        }
    }

    #[test]
    fn the_ledger_is_found_beside_the_lease_named_in_status() {
        assert_eq!(
            ledger_of(&cac(issued())),
            Some(LedgerRef {
                namespace: "ops".into(),
                name: "clear-operator-budget".into()
            })
        );
        assert_eq!(ledger_of(&cac(ClearApiClientStatus::default())), None);
        assert!("no-slash".parse::<LedgerRef>().is_err());
        assert!("/x".parse::<LedgerRef>().is_err());
    }

    #[test]
    fn summaries_say_when_and_why_the_next_call_happens() {
        let now = ts(NOW);
        let retry = ts("2026-12-08T10:05:00Z");
        struct Case {
            what: &'static str,
            status: ClearApiClientStatus,
            expected: NextCall,
        }
        let cases = vec![
            Case {
                what: "healthy token: renewal at renewalTime",
                status: issued(),
                expected: NextCall::Renewal {
                    at: ts("2026-12-08T18:00:00Z"),
                },
            },
            Case {
                what: "backoff after 5xx",
                status: ClearApiClientStatus {
                    conditions: vec![ready("True", "ClearUnavailable", "waiting until ...")],
                    next_retry_time: Some(Time(retry)),
                    last_failure_reason: Some("ClearUnavailable".into()),
                    failed_attempts: 3,
                    ..issued()
                },
                expected: NextCall::NotBefore {
                    at: retry,
                    why: "backoff after a failure (ClearUnavailable)".into(),
                },
            },
            Case {
                what: "rate limited until midnight",
                status: ClearApiClientStatus {
                    conditions: vec![ready("False", "RateLimited", "waiting")],
                    next_retry_time: Some(Time(ts("2026-12-09T00:00:00Z"))),
                    ..issued()
                },
                expected: NextCall::NotBefore {
                    at: ts("2026-12-09T00:00:00Z"),
                    why: "Clear answered 429 (rate limited)".into(),
                },
            },
            Case {
                what: "conflict names the holder",
                status: ClearApiClientStatus {
                    conditions: vec![ready(
                        "False",
                        "Conflict",
                        "ClearApiClient team-a/gst already uses this client secret (it holds the token in use, or is older); minting here would revoke its token, so nothing is minted",
                    )],
                    token_fingerprint: None,
                    valid_till: None,
                    renewal_time: None,
                    ..ClearApiClientStatus::default()
                },
                expected: NextCall::WhenChanged {
                    what: "ClearApiClient team-a/gst stops using this client secret (it holds it; minting here would revoke its token)".into(),
                },
            },
            Case {
                what: "rejected client secret waits for a change",
                status: ClearApiClientStatus {
                    conditions: vec![ready("False", "ClientSecretRejected", "rejected")],
                    ..ClearApiClientStatus::default()
                },
                expected: NextCall::WhenChanged {
                    what: "the client secret changes (Clear rejected it)".into(),
                },
            },
            Case {
                what: "never-expiring token: no call planned",
                status: ClearApiClientStatus {
                    valid_till: None,
                    renewal_time: None,
                    ..issued()
                },
                expected: NextCall::None,
            },
            Case {
                what: "a retry time in the past does not hold the renewal back",
                status: ClearApiClientStatus {
                    next_retry_time: Some(Time(ts("2026-12-08T09:00:00Z"))),
                    ..issued()
                },
                expected: NextCall::Renewal {
                    at: ts("2026-12-08T18:00:00Z"),
                },
            },
        ];
        for case in cases {
            let cac = cac(case.status.clone());
            let summary = summarize(
                &cac,
                &secret_matching(&case.status),
                &ledger("2026-12-08", &[]),
                now,
            );
            assert_eq!(summary.next_call, case.expected, "{}", case.what);
        }
    }

    #[test]
    fn conflict_holder_and_last_failure_are_shown() {
        let status = ClearApiClientStatus {
            conditions: vec![ready(
                "False",
                "Conflict",
                "ClearApiClient team-a/gst already uses this client secret (it holds the token in use, or is older); minting here would revoke its token, so nothing is minted",
            )],
            last_failure_reason: Some("ClearUnavailable".into()),
            last_failure_time: Some(Time(ts("2026-12-08T09:00:00Z"))),
            failed_attempts: 2,
            ..issued()
        };
        let summary = summarize(
            &cac(status.clone()),
            &secret_matching(&status),
            &ledger("2026-12-08", &[]),
            ts(NOW),
        );
        assert_eq!(
            summary.conflict_holder.as_deref(),
            Some("ClearApiClient team-a/gst")
        );
        assert_eq!(
            summary.last_failure.as_deref(),
            Some(
                "ClearUnavailable at 2026-12-08T09:00:00Z (2 failed attempts since the last success)"
            )
        );
        let text = render(&summary, ts(NOW));
        assert!(text.contains("Client secret held by:"), "{text}");
    }

    #[test]
    fn calls_today_come_from_the_ledger_of_today_for_the_client_secret() {
        let now = ts(NOW);
        let status = issued();
        let secret = secret_matching(&status);
        let cases = [
            (
                ledger("2026-12-08", &[("cs0000000001", "7"), ("other", "40")]),
                Some(7),
            ),
            (ledger("2026-12-07", &[("cs0000000001", "7")]), Some(0)),
            (ledger("2026-12-08", &[("other", "40")]), Some(0)),
            (
                LedgerView::Unavailable {
                    location: None,
                    why: "x".into(),
                },
                None,
            ),
        ];
        for (ledger, expected) in cases {
            let summary = summarize(&cac(status.clone()), &secret, &ledger, now);
            assert_eq!(summary.calls_today, expected, "{ledger:?}");
            assert_eq!(summary.resource_calls_today, 2);
        }
        // A mint count of another day is not today's.
        let yesterday = ClearApiClientStatus {
            mint_day: Some("2026-12-07".into()),
            ..status
        };
        let summary = summarize(&cac(yesterday), &secret, &ledger("2026-12-08", &[]), now);
        assert_eq!(summary.resource_calls_today, 0);
    }

    #[test]
    fn the_secret_is_compared_with_status_from_its_annotations() {
        let now = ts(NOW);
        let status = issued();
        let matching = summarize(
            &cac(status.clone()),
            &secret_matching(&status),
            &ledger("2026-12-08", &[]),
            now,
        );
        assert!(
            matching.secret_mismatches.is_empty(),
            "{:?}",
            matching.secret_mismatches
        );
        assert_eq!(matching.secret_state, "matches status");

        let mut other = status.clone();
        other.token_fingerprint = Some("ffffffffffff".into());
        other.valid_till = Some(Time(ts("2026-12-08T21:00:00Z")));
        let differs = summarize(
            &cac(status.clone()),
            &secret_matching(&other),
            &ledger("2026-12-08", &[]),
            now,
        );
        assert_eq!(
            differs.secret_mismatches.len(),
            2,
            "{:?}",
            differs.secret_mismatches
        );
        assert!(
            differs.secret_mismatches[1]
                .contains("token-fingerprint: Secret ffffffffffff, status abc123abc123")
        );

        let missing = summarize(
            &cac(status.clone()),
            &SecretView::Missing,
            &ledger("2026-12-08", &[]),
            now,
        );
        assert!(!missing.secret_mismatches.is_empty());

        // Never expires: the annotation says "never".
        let never = ClearApiClientStatus {
            valid_till: None,
            renewal_time: None,
            ..status
        };
        let summary = summarize(
            &cac(never.clone()),
            &secret_matching(&never),
            &ledger("2026-12-08", &[]),
            now,
        );
        assert!(
            summary.secret_mismatches.is_empty(),
            "{:?}",
            summary.secret_mismatches
        );
        assert!(summary.never_expires);
    }

    #[test]
    fn an_expired_token_is_said_to_be_expired() {
        let status = ClearApiClientStatus {
            valid_till: Some(Time(ts("2026-12-08T09:00:00Z"))),
            ..issued()
        };
        let summary = summarize(
            &cac(status.clone()),
            &secret_matching(&status),
            &ledger("2026-12-08", &[]),
            ts(NOW),
        );
        assert!(summary.expired);
        let text = render(&summary, ts(NOW));
        assert!(
            text.contains("EXPIRED at 2026-12-08T09:00:00Z (1h0m ago)"),
            "{text}"
        );
        let table = render_table(&[summary], ts(NOW));
        assert!(table.starts_with("NAMESPACE"), "{table}");
        assert!(table.contains("expired 1h0m ago"), "{table}");
    }

    #[test]
    fn the_rendered_summary_has_no_token_and_says_each_part() {
        let summary = summarize(
            &cac(issued()),
            &secret_matching(&issued()),
            &ledger("2026-12-08", &[("cs0000000001", "3")]),
            ts(NOW),
        );
        let text = render(&summary, ts(NOW));
        for part in [
            "ClearApiClient:",
            "team-a/billing",
            "Ready:",
            "True (Issued)",
            "fingerprint abc123abc123, valid till 2026-12-08T20:00:00Z (in 10h0m)",
            "renewal at 2026-12-08T18:00:00Z (in 8h0m)",
            "Last failure:",
            "3 of 288 for its client secret (all resources), 2 for this resource; ledger ops/clear-operator-budget",
            "billing: matches status",
        ] {
            assert!(text.contains(part), "{part} missing from:\n{text}");
        }
    }
}
