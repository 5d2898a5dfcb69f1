//! `clear-operator regenerate NAME`: asks for one new token by setting the
//! `clear-operator.io/regenerate` annotation to a fresh value (like `cmctl renew`).
//! The operator honours each distinct value once and records it in status; `--wait` reads
//! status until it shows the value honoured or the reason it cannot be.

use kube::{
    Api, Client,
    api::{Patch, PatchParams},
};

use crate::{
    reason::Reason,
    resource::{ClearApiClient, REGENERATE_ANNOTATION},
};

#[derive(Debug, thiserror::Error)]
pub enum RegenerateError {
    #[error("failed to find ClearApiClient {namespace}/{name}")]
    NotFound { namespace: String, name: String },
    #[error(transparent)]
    Resource(#[from] super::ReadResourceError),
    #[error("failed to annotate ClearApiClient {namespace}/{name}")]
    Patch {
        namespace: String,
        name: String,
        #[source]
        source: kube::Error,
    },
}

/// Sets the regenerate annotation and returns the value written. Without an explicit value
/// the current time is used, so every call is a new request.
pub async fn request_regeneration(
    client: Client,
    namespace: &str,
    name: &str,
    value: Option<String>,
) -> Result<String, RegenerateError> {
    let value = value.unwrap_or_else(|| jiff::Timestamp::now().to_string());
    let api: Api<ClearApiClient> = Api::namespaced(client, namespace);
    let patch =
        serde_json::json!({ "metadata": { "annotations": { REGENERATE_ANNOTATION: value } } });
    match api
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(_) => Ok(value),
        Err(kube::Error::Api(status)) if status.code == 404 => Err(RegenerateError::NotFound {
            namespace: namespace.to_string(),
            name: name.to_string(),
        }),
        Err(source) => Err(RegenerateError::Patch {
            namespace: namespace.to_string(),
            name: name.to_string(),
            source,
        }),
    }
}

/// How far a regeneration request has got, judged from the resource's status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Progress {
    /// Not honoured yet, and nothing says it cannot be.
    Waiting,
    /// Honoured: status records the value and the new token is Ready.
    Done {
        valid_till: Option<jiff::Timestamp>,
        token_fingerprint: Option<String>,
    },
    /// Not honoured, for this reason (the Ready condition's).
    Failed { reason: String, message: String },
}

/// Reasons of a Ready condition that are no verdict on the request: a token in place, or a
/// call whose outcome is still awaited.
const NOT_A_VERDICT: [Reason; 7] = [
    Reason::Issued,
    Reason::Renewed,
    Reason::Regenerated,
    Reason::SecretRecreated,
    Reason::TokenReplaced,
    Reason::SecretRefreshed,
    Reason::MintInFlight,
];

/// Reasons of a Ready condition that hold every call back until a user changes something
/// (or, for the budget and a 429, until the UTC day ends): the request cannot be honoured
/// while one stands, and the operator does not always name the request in their message.
const HELD_BACK: [Reason; 10] = [
    Reason::Conflict,
    Reason::TargetConflict,
    Reason::InvalidSpec,
    Reason::BaseUrlNotAllowed,
    Reason::ClientSecretMissing,
    Reason::ClientSecretInvalid,
    Reason::ClientSecretRejected,
    Reason::DuplicateOperator,
    Reason::BudgetExhausted,
    Reason::RateLimited,
];

/// Judges `cac` against the request `value`. `failure_before` is `status.lastFailureTime`
/// before the request was made: a failure recorded since then is this request's.
// NB: the request changes no generation (an annotation), so a verdict is recognised by what
// the operator writes for it: a blocked request is named in the Ready message ("a new
// token is needed (regeneration requested (VALUE))"), a failed call moves lastFailureTime.
pub fn judge(
    cac: &ClearApiClient,
    value: &str,
    failure_before: Option<&jiff::Timestamp>,
) -> Progress {
    let Some(status) = cac.status.as_ref() else {
        return Progress::Waiting;
    };
    let ready = status.conditions.iter().find(|c| c.type_ == "Ready");
    if status.last_regenerate_request.as_deref() == Some(value)
        && ready.is_some_and(|c| c.status == "True")
    {
        return Progress::Done {
            valid_till: status.valid_till.as_ref().map(|t| t.0),
            token_fingerprint: status.token_fingerprint.clone(),
        };
    }
    let Some(ready) = ready else {
        return Progress::Waiting;
    };
    let reason = Reason::parse(&ready.reason);
    if reason.is_some_and(|r| HELD_BACK.contains(&r)) {
        return Progress::Failed {
            reason: ready.reason.clone(),
            message: ready.message.clone(),
        };
    }
    let verdict = reason.is_none_or(|r| !NOT_A_VERDICT.contains(&r));
    let names_request = ready.message.contains(&format!("({value})"));
    let failed_since = status.last_failure_time.as_ref().map(|t| &t.0) != failure_before
        && status.last_failure_time.is_some();
    if verdict && (names_request || failed_since) {
        return Progress::Failed {
            reason: ready.reason.clone(),
            message: ready.message.clone(),
        };
    }
    Progress::Waiting
}

/// Polls the resource every [`POLL_EVERY`] until [`judge`] gives a verdict or `timeout`
/// passes (`Ok(Progress::Waiting)` then).
pub async fn wait_for(
    client: Client,
    namespace: &str,
    name: &str,
    value: &str,
    failure_before: Option<jiff::Timestamp>,
    timeout: std::time::Duration,
) -> Result<Progress, RegenerateError> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let cac = super::read_resource(client.clone(), namespace, name).await?;
        let progress = judge(&cac, value, failure_before.as_ref());
        if progress != Progress::Waiting || tokio::time::Instant::now() >= deadline {
            return Ok(progress);
        }
        tokio::time::sleep(POLL_EVERY.min(deadline - tokio::time::Instant::now())).await;
    }
}

/// How often `regenerate --wait` reads the resource (one GET each: cheap, and simpler to
/// bound by a timeout than a watch that may be refused by RBAC).
pub const POLL_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// `status.lastFailureTime` now (taken before the request, for [`judge`]).
pub async fn last_failure_time(
    client: Client,
    namespace: &str,
    name: &str,
) -> Result<Option<jiff::Timestamp>, RegenerateError> {
    let cac = super::read_resource(client, namespace, name).await?;
    Ok(cac.status.and_then(|s| s.last_failure_time).map(|t| t.0))
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

    use super::*;
    use crate::resource::ClearApiClientStatus;

    fn ts(s: &str) -> jiff::Timestamp {
        s.parse().unwrap()
    }

    fn with(status: ClearApiClientStatus) -> ClearApiClient {
        let mut cac: ClearApiClient = serde_json::from_value(serde_json::json!({
            "apiVersion": "clear-operator.io/v1alpha1",
            "kind": "ClearApiClient",
            "metadata": {"name": "billing", "namespace": "team-a"},
            "spec": {"environment": "sandbox", "workspace": "ws", "products": ["GST"],
                     "clientSecretRef": {"name": "cs"}}
        }))
        .unwrap();
        cac.status = Some(status);
        cac
    }

    fn ready(status: &str, reason: &str, message: &str) -> Vec<Condition> {
        vec![Condition {
            type_: "Ready".into(),
            status: status.into(),
            reason: reason.into(),
            message: message.into(),
            observed_generation: None,
            last_transition_time: Time(ts("2026-12-08T10:00:00Z")),
        }]
    }

    #[test]
    fn regeneration_is_judged_from_status() {
        let earlier = ts("2026-12-08T09:00:00Z");
        let later = ts("2026-12-08T10:00:00Z");
        let cases = [
            (
                "old token still Ready: waiting",
                ClearApiClientStatus {
                    conditions: ready("True", "Issued", "ok"),
                    last_regenerate_request: Some("v0".into()),
                    ..Default::default()
                },
                Some(earlier),
                "waiting",
            ),
            (
                "value recorded and Ready: done",
                ClearApiClientStatus {
                    conditions: ready("True", "Regenerated", "ok"),
                    last_regenerate_request: Some("v1".into()),
                    token_fingerprint: Some("abc".into()),
                    ..Default::default()
                },
                None,
                "done",
            ),
            (
                "call in flight: waiting",
                ClearApiClientStatus {
                    conditions: ready("False", "MintInFlight", "a call (v1) may be in flight"),
                    ..Default::default()
                },
                None,
                "waiting",
            ),
            (
                "blocked by a conflict naming the request: failed",
                ClearApiClientStatus {
                    conditions: ready(
                        "True",
                        "Conflict",
                        "x already uses this client secret; a new token is needed (regeneration requested (v1)); valid",
                    ),
                    ..Default::default()
                },
                None,
                "failed",
            ),
            (
                "held back by a conflict whose message does not name the request: failed",
                ClearApiClientStatus {
                    conditions: ready("False", "Conflict", "x already uses this client secret"),
                    ..Default::default()
                },
                None,
                "failed",
            ),
            (
                "a failure recorded since the request: failed",
                ClearApiClientStatus {
                    conditions: ready("True", "ClearUnavailable", "waiting until ..."),
                    last_failure_time: Some(Time(later)),
                    ..Default::default()
                },
                Some(earlier),
                "failed",
            ),
            (
                "an old failure only: waiting",
                ClearApiClientStatus {
                    conditions: ready("True", "ClearUnavailable", "waiting until ..."),
                    last_failure_time: Some(Time(earlier)),
                    ..Default::default()
                },
                Some(earlier),
                "waiting",
            ),
        ];
        for (what, status, before, expected) in cases {
            let got = match judge(&with(status), "v1", before.as_ref()) {
                Progress::Waiting => "waiting",
                Progress::Done { .. } => "done",
                Progress::Failed { .. } => "failed",
            };
            assert_eq!(got, expected, "{what}");
        }
    }
}
