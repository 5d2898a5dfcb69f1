//! The one door to Clear. Every call (a mint for a live resource, the revoke of a deleted
//! one) goes through here, and here only are the rules every call must respect: the shared
//! circuit of the host, one call at a time per client secret, the fence, the budget ledger,
//! and the metrics. What a call is *for*, and what its answer means for status, stays with
//! the caller ([`super::mint`], [`super::finalizer`]).
//!
//! Only a request that reached Clear counts: a client secret that cannot be sent is refused
//! before the ledger is counted or the circuit consulted, so one tenant's bad input is that
//! tenant's failure alone (see [`unsendable`]).

use jiff::Timestamp;
use tracing::{info, warn};

use super::{context::Context, error::Error};
use crate::{
    clear::{BaseUrl, ClearError, ClientSecret, IssuedToken},
    services::circuit::{self, Admission, Key, Outcome},
};

/// What the caller wants the call for (log lines and metrics say it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purpose {
    /// A token to serve.
    Mint,
    /// A token to discard: minting revokes the one that was handed out.
    Revoke,
}

impl Purpose {
    fn label(self) -> &'static str {
        match self {
            Self::Mint => "mint",
            Self::Revoke => "revoke",
        }
    }
}

/// The door is open for one call with one client secret: the per-client-secret lock is
/// held, so no other resource with the same client secret calls until it is dropped.
pub struct Door<'a> {
    ctx: &'a Context,
    base_url: &'a BaseUrl,
    key: Key,
    fingerprint: String,
    /// The circuit of this host is open and this call is its trial.
    pub trial: bool,
    _serialized: tokio::sync::OwnedMutexGuard<()>,
}

/// Whether a call may go now.
pub enum Entry<'a> {
    Open(Door<'a>),
    /// Clear failed for every resource lately: only the circuit's trial calls go.
    Held,
}

/// Asks the door for a call with the client secret whose fingerprint is given: the circuit
/// first (a resource held back takes no lock and writes nothing), then the lock.
pub async fn enter<'a>(
    ctx: &'a Context,
    base_url: &'a BaseUrl,
    key: Key,
    fingerprint: &str,
    now: Timestamp,
) -> Entry<'a> {
    let trial = match ctx.services.circuits.admit(base_url.as_str(), &key, now) {
        Admission::Call => false,
        Admission::Trial => true,
        Admission::Wait { .. } => return Entry::Held,
    };
    let lock = ctx.services.index.lock_for(fingerprint);
    let serialized = lock.lock_owned().await;
    Entry::Open(Door {
        ctx,
        base_url,
        key,
        fingerprint: fingerprint.to_string(),
        trial,
        _serialized: serialized,
    })
}

/// Why a client secret cannot be sent at all, if it cannot: such a call never reaches Clear.
pub fn unsendable(secret: &ClientSecret) -> Option<&'static str> {
    crate::clear::header_problem(secret)
}

impl Door<'_> {
    /// Calls Clear, if this replica still leads: the call is counted in the ledger before it
    /// is sent, its outcome is told to the circuit, its latency to the metrics. The outer
    /// error is the operator's own (the fence closed); the inner result is Clear's answer.
    pub async fn call(
        &self,
        secret: &ClientSecret,
        purpose: Purpose,
        now: Timestamp,
    ) -> Result<Result<IssuedToken, ClearError>, Error> {
        let ctx = self.ctx;
        // NB: refused here, before the ledger and the circuit: nothing was sent, so nothing
        // is counted against the client secret, and the shared circuit learns nothing.
        if let Some(detail) = unsendable(secret) {
            return Ok(Err(ClearError::InvalidClientSecret { detail }));
        }
        ctx.fence.check()?;
        // NB: counted before the call, like `mintsToday`: a call whose outcome is lost counted.
        let calls_today = ctx
            .services
            .ledger
            .count(&self.fingerprint, now, &ctx.metrics);
        info!(
            purpose = purpose.label(),
            client_secret = %self.fingerprint,
            calls_today,
            trial = self.trial,
            "calling Clear"
        );
        let started = std::time::Instant::now();
        let result = ctx.clear.mint(self.base_url, secret, now).await;
        let elapsed = started.elapsed();
        self.tell_circuit(&result, now);
        let label = match &result {
            Ok(_) => "issued",
            Err(error) => error.metric_label(),
        };
        ctx.metrics.observe_clear_call(label, elapsed);
        Ok(result)
    }

    fn tell_circuit(&self, result: &Result<IssuedToken, ClearError>, now: Timestamp) {
        let (ctx, host) = (self.ctx, self.base_url.as_str());
        let was_open = ctx.services.circuits.is_open(host);
        if ctx
            .services
            .circuits
            .record(host, &self.key, Outcome::of(result), now)
        {
            warn!(
                failures = circuit::OPEN_AFTER,
                "Clear failed this many calls in a row: holding back every call but one trial every {}s until it answers",
                circuit::TRIAL_INTERVAL.as_secs()
            );
        } else if was_open && !ctx.services.circuits.is_open(host) {
            info!("Clear answers again: releasing the resources that waited for it");
        }
        ctx.metrics
            .set_clear_circuit_open(host, ctx.services.circuits.is_open(host));
    }
}
