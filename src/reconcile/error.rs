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

    /// Whether retrying soon may help (API hiccups) or only a change of the object can.
    pub fn is_transient(&self) -> bool {
        !matches!(self, Self::InvalidObject { .. })
    }
}

/// Describes a kube error without anything a response body could have put in it.
pub fn sanitize(err: &kube::Error) -> String {
    match err {
        kube::Error::Api(status) => format!("HTTP {} {}", status.code, status.reason),
        kube::Error::SerdeError(_) => "the response could not be decoded".to_string(),
        _ => "the request to the Kubernetes API failed".to_string(),
    }
}
