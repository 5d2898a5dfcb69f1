//! What can make a reconcile fail (as opposed to a failed call to Clear, which is an outcome
//! recorded in status). Variant names double as metric labels; messages never carry a
//! Secret's data.

use crate::clear::ClearError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("failed to read the ClearApiClient: {0}")]
    ReadResource(#[source] kube::Error),
    /// NB: holds a sanitized description instead of the kube error, whose decoding errors
    /// can quote the response body, and this response is a Secret.
    #[error("failed to read client secret Secret {name}: {detail}")]
    ReadClientSecret { name: String, detail: String },
    #[error("failed to read target Secret {name}: {source}")]
    ReadTargetSecret {
        name: String,
        #[source]
        source: kube::Error,
    },
    /// NB: sanitized like the client secret: this read returns the token.
    #[error("failed to read the token in target Secret {name}: {detail}")]
    ReadStoredToken { name: String, detail: String },
    /// NB: sanitized: the response to this apply is the Secret, token included.
    #[error("failed to apply target Secret {name}: {detail}")]
    ApplySecret { name: String, detail: String },
    #[error("failed to update the ClearApiClient status: {0}")]
    PatchStatus(#[source] kube::Error),
    /// A write did not finish within [`crate::reconcile::write::WRITE_TIMEOUT`]; its outcome
    /// is unknown (it may still land, which is what its precondition is for).
    #[error("failed to write {what}: no answer within {secs} s")]
    WriteTimedOut { what: &'static str, secs: u64 },
    #[error("failed to update the revoke-on-delete finalizer: {0}")]
    Finalizer(#[source] kube::Error),
    #[error("failed to revoke the token on delete: {0}")]
    Revoke(#[source] ClearError),
    #[error("failed to reconcile: the ClearApiClient {detail}")]
    InvalidObject { detail: &'static str },
    /// Leadership lost or released: nothing more is written (see `fence`).
    #[error(transparent)]
    NotLeader(#[from] crate::fence::NotLeader),
}

impl Error {
    /// Label for `clear_operator_reconcile_total{outcome}` and the Event reason.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::ReadResource(_) => "ReadResource",
            Self::ReadClientSecret { .. } => "ReadClientSecret",
            Self::ReadTargetSecret { .. } => "ReadTargetSecret",
            Self::ReadStoredToken { .. } => "ReadStoredToken",
            Self::ApplySecret { .. } => "ApplySecret",
            Self::PatchStatus(_) => "PatchStatus",
            Self::WriteTimedOut { .. } => "WriteTimedOut",
            Self::Finalizer(_) => "Finalizer",
            Self::Revoke(_) => "Revoke",
            Self::InvalidObject { .. } => "InvalidObject",
            Self::NotLeader(_) => "NotLeader",
        }
    }

    /// Whether the API server refused a write on its precondition (409 Conflict).
    pub fn is_conflict(&self) -> bool {
        matches!(self, Self::PatchStatus(kube::Error::Api(status)) if status.code == 409)
    }

    /// Whether retrying soon may help (API hiccups) or only a change of the object can.
    pub fn is_transient(&self) -> bool {
        !matches!(self, Self::InvalidObject { .. })
    }

    /// When the API server refused a request with 429 (API Priority and Fairness, or its
    /// max-in-flight limit): how long it asked to wait (its `Retry-After`, one second when
    /// it gave none). The reconcile is requeued after that, never the write re-sent.
    pub fn throttled_for(&self) -> Option<std::time::Duration> {
        let secs = match self {
            Self::ReadResource(e)
            | Self::ReadTargetSecret { source: e, .. }
            | Self::PatchStatus(e)
            | Self::Finalizer(e) => retry_after(e)?,
            Self::ReadClientSecret { detail, .. }
            | Self::ReadStoredToken { detail, .. }
            | Self::ApplySecret { detail, .. } => {
                let rest = detail.strip_prefix("HTTP 429 ")?;
                rest.split_once("(retry after ")
                    .and_then(|(_, n)| n.split_once(' '))
                    .and_then(|(n, _)| n.parse().ok())
                    .unwrap_or(1)
            }
            _ => return None,
        };
        Some(std::time::Duration::from_secs(u64::from(secs.max(1))))
    }
}

/// The `Retry-After` of a 429 (`details.retryAfterSeconds`, 0 when absent).
fn retry_after(err: &kube::Error) -> Option<u32> {
    match err {
        kube::Error::Api(status) if status.code == 429 => {
            Some(status.details.as_ref().map_or(0, |d| d.retry_after_seconds))
        }
        _ => None,
    }
}

/// Describes a kube error without anything a response body could have put in it.
pub fn sanitize(err: &kube::Error) -> String {
    match err {
        kube::Error::Api(status) => match retry_after(err) {
            Some(secs) if secs > 0 => format!(
                "HTTP {} {} (retry after {secs} s)",
                status.code, status.reason
            ),
            _ => format!("HTTP {} {}", status.code, status.reason),
        },
        kube::Error::SerdeError(_) => "the response could not be decoded".to_string(),
        _ => "the request to the Kubernetes API failed".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn throttled(secs: u32) -> kube::Error {
        let mut status = kube::core::Status::failure("slow down", "TooManyRequests").with_code(429);
        if secs > 0 {
            status = status.with_details(kube::core::response::StatusDetails {
                name: String::new(),
                group: String::new(),
                kind: String::new(),
                uid: String::new(),
                causes: Vec::new(),
                retry_after_seconds: secs,
            });
        }
        kube::Error::Api(Box::new(status))
    }

    #[test]
    fn a_429_says_how_long_the_api_server_asked_to_wait_also_once_sanitized() {
        let wait = std::time::Duration::from_secs;
        assert_eq!(
            Error::PatchStatus(throttled(7)).throttled_for(),
            Some(wait(7))
        );
        assert_eq!(
            Error::PatchStatus(throttled(0)).throttled_for(),
            Some(wait(1))
        );
        let apply = Error::ApplySecret {
            name: "t".into(),
            detail: sanitize(&throttled(9)),
        };
        assert_eq!(apply.throttled_for(), Some(wait(9)));
        let conflict = kube::Error::Api(Box::new(
            kube::core::Status::failure("conflict", "Conflict").with_code(409),
        ));
        assert_eq!(Error::PatchStatus(conflict).throttled_for(), None);
    }
}
