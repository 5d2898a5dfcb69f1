//! Every reason the operator reports, in one enum: the `Ready` condition's reasons, the
//! Events', the `reason` field of its logs and the `reason` label of its metrics. One list,
//! so that what a user reads in `kubectl describe`, a log line and a dashboard is the same
//! word, and a new reason cannot be added to one of them and forgotten in another.

use strum::{Display, EnumIter, EnumString, IntoStaticStr};

#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Display,
    EnumString,
    IntoStaticStr,
    EnumIter,
)]
pub enum Reason {
    // --- A token is in the Secret (Ready=True), and the Events that put it there.
    /// The first token was minted (also the Ready=True reason).
    Issued,
    /// A token is served, but Clear's answer gave it no readable `valid_till`: its
    /// expiry is assumed (one hour) and it is renewed before then (Ready=True; a Warning at
    /// the mint).
    ExpiryAssumed,
    /// The token in use was taken over from `spec.adoptFrom` with no call (Ready=True, and a
    /// Normal Event), until the first renewal.
    Adopted,
    /// A token was renewed before (or at) its expiry.
    Renewed,
    /// A token was minted on request: the regenerate annotation, a changed client secret
    /// or configuration.
    Regenerated,
    /// The target Secret was gone; the previous token existed only there.
    SecretRecreated,
    /// The target Secret held a token the operator did not write (a backup restore, a
    /// secret-sync tool, an edit); a new token replaced it (a Warning).
    TokenReplaced,
    /// The target Secret's metadata was re-applied, or the token moved, without minting.
    SecretRefreshed,

    // --- Why no token is minted now (the `Ready` condition's reason, and a Warning).
    ClientSecretMissing,
    /// The client secret's key holds something that cannot be one (over the size limit,
    /// not UTF-8 text): never sent to Clear.
    ClientSecretInvalid,
    Conflict,
    TargetConflict,
    InvalidSpec,
    /// The base URL is not on the operator's allow-list (`--allowed-base-url`).
    BaseUrlNotAllowed,
    BudgetExhausted,
    /// The stored token's `validTill` passed and no new token could be had (the message says
    /// what stood in the way: a quota, the budget, a missing client secret, an outage...):
    /// consumers hold a dead token. Also the Warning Event at that instant.
    TokenExpired,
    /// `spec.suspend` is true, or the operator runs in standby (`--standby`): no call to
    /// Clear is made for this resource; Ready says whether the stored token is still valid.
    Suspended,
    /// A call to Clear started by another replica (or an earlier attempt) may still be in
    /// flight; nothing is minted until its deadline passed.
    MintInFlight,

    // --- A call to Clear, or the write after it, failed.
    ClientSecretRejected,
    RateLimited,
    /// Clear (or a proxy, WAF or allow-list in front of it) refused the request with a 3xx
    /// or a 4xx other than 401/429: nothing was minted; the message names the status.
    ClearRefused,
    ClearUnavailable,
    ClearResponseInvalid,
    /// The Secret could not be written (before calling Clear: the dry run; after: the new
    /// token is lost and the stored one revoked).
    SecretApplyFailed,

    // --- Restarts of rolloutRestartTargets.
    Restarted,
    RestartTargetMissing,
    /// The API server answered 403: the chart was installed without
    /// `rbac.rolloutRestart.enabled=true`.
    RestartForbidden,
    RestartFailed,

    /// Pods that mount the token Secret could not be nudged to refresh it (a Warning): they
    /// see the new token at their kubelet's next periodic sync.
    NudgeFailed,

    // --- Deletion with revokeOnDelete.
    /// The token handed out was revoked (also the Ready=False reason while deleting).
    Revoked,
    RevokeSkipped,

    // --- spec.renewalWindows: the `RenewalWindows` condition and its Warning.
    /// The renewal is planned inside a renewal window (RenewalWindows=True).
    Scheduled,
    /// No renewal window opens before the last safe moment; the token is renewed outside
    /// them (RenewalWindows=False).
    NoWindowFits,
    /// The Warning Event when RenewalWindows turns False.
    RenewalWindowMissed,

    /// Another operator install manages the resource (its `status.operatorInstance`): this
    /// one yields instead of fighting it.
    DuplicateOperator,

    /// A reconcile failed on the Kubernetes side (reading, writing); the note names what.
    ReconcileFailed,
}

impl Reason {
    /// The reason as written in conditions, Events, logs and metric labels (UpperCamelCase,
    /// as the API conventions ask of condition reasons: the variant's name).
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// Reads back a reason the operator wrote (status keeps the last failure's reason).
    pub fn parse(text: &str) -> Option<Self> {
        text.parse().ok()
    }
}

#[cfg(test)]
mod tests {
    use strum::IntoEnumIterator;

    use super::*;

    #[test]
    fn every_reason_reads_back_as_itself() {
        for reason in Reason::iter() {
            assert_eq!(Reason::parse(reason.as_str()), Some(reason));
            assert_eq!(reason.to_string(), reason.as_str());
        }
        assert_eq!(Reason::parse("NoSuchReason"), None);
        assert_eq!(Reason::SecretApplyFailed.as_str(), "SecretApplyFailed");
    }

    #[test]
    fn reasons_are_upper_camel_case_as_the_api_conventions_ask() {
        for reason in Reason::iter() {
            let text = reason.as_str();
            assert!(text.chars().next().is_some_and(|c| c.is_ascii_uppercase()));
            assert!(text.chars().all(|c| c.is_ascii_alphanumeric()), "{text}");
        }
    }
}
