//! Injected faults for the token endpoint: the next N calls of one secret (or of any
//! secret) answer 500, another status (a 3xx with a `Location`), a 429 with or without
//! `Retry-After`, a malformed body, or arrive late.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use axum::http::StatusCode;

use crate::secret::ClientSecret;

/// What an affected call does instead of the normal answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// 500 with an `errors` body carrying an `error_id`; nothing is minted.
    ServerError,
    /// The given status with an `errors` body; nothing is minted. A 3xx also carries
    /// `Location: /integration/v1/authz/token` (this server's own token path), so a client
    /// that follows redirects would call, and mint, a second time.
    Status(StatusCode),
    /// 429 with an `errors` body; nothing is minted. `retry_after` is sent as the
    /// `Retry-After` value exactly as given (garbage included, to test clients), and left
    /// out when `None` (as the simulator's own quota answer does). `quota_body`: the body
    /// says the daily quota is exhausted (`QUOTA_EXHAUSTED`); otherwise it is a short
    /// limit's `TOO_MANY_REQUESTS` that says nothing about how long.
    TooManyRequests {
        retry_after: Option<String>,
        quota_body: bool,
    },
    /// 200 with a truncated JSON body; nothing is minted.
    MalformedBody,
    /// The call is processed normally (the token is minted and the previous one
    /// revoked), then the answer is held back for the duration: a client that times
    /// out has lost its old token anyway, as with a slow real server.
    Delay(Duration),
    /// The call is processed normally (the token is minted and the previous one revoked),
    /// and the 200 answer departs from the documented shape as `OddBody` says: what a
    /// client must do when Clear's real answer differs from its documentation.
    OddBody(OddBody),
}

/// How an [`Fault::OddBody`] answer departs from the documented token body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OddBody {
    /// `valid_till` without a UTC offset (`2026-11-25T22:00:00`).
    NoOffset,
    /// The token under `accessToken`, a key the documentation does not name.
    CamelCaseKey,
    /// No `valid_till` key at all.
    NoValidTill,
    /// No token in the body (`{"valid_till": ...}`), although one was minted.
    NoToken,
    /// An HTML page, although a token was minted.
    Html,
    /// An empty body, although a token was minted.
    Empty,
    /// A token of 302 characters, longer than the 256 the documentation allows.
    LongToken,
}

/// Which calls a fault applies to.
#[derive(Clone, Debug)]
pub enum FaultScope {
    /// Calls of any known secret.
    Global,
    /// Calls made with this secret only.
    Secret(ClientSecret),
}

struct PendingFault {
    fault: Fault,
    remaining: u32,
}

/// Queues of pending faults; secret-scoped faults win over global ones.
#[derive(Default)]
pub(crate) struct FaultBook {
    global: VecDeque<PendingFault>,
    by_secret: HashMap<String, VecDeque<PendingFault>>,
}

impl FaultBook {
    pub(crate) fn inject(&mut self, scope: FaultScope, fault: Fault, times: u32) {
        if times == 0 {
            return;
        }
        let pending = PendingFault {
            fault,
            remaining: times,
        };
        match scope {
            FaultScope::Global => self.global.push_back(pending),
            FaultScope::Secret(secret) => self
                .by_secret
                .entry(secret.expose().to_owned())
                .or_default()
                .push_back(pending),
        }
    }

    pub(crate) fn clear(&mut self) {
        self.global.clear();
        self.by_secret.clear();
    }

    /// Consumes one fault for a call made with `secret`, if any is pending.
    pub(crate) fn take(&mut self, secret: &str) -> Option<Fault> {
        if let Some(queue) = self.by_secret.get_mut(secret) {
            let fault = take_from(queue);
            if queue.is_empty() {
                self.by_secret.remove(secret);
            }
            if fault.is_some() {
                return fault;
            }
        }
        take_from(&mut self.global)
    }

    pub(crate) fn pending(&self) -> u64 {
        self.global
            .iter()
            .chain(self.by_secret.values().flatten())
            .map(|p| u64::from(p.remaining))
            .sum()
    }
}

fn take_from(queue: &mut VecDeque<PendingFault>) -> Option<Fault> {
    let front = queue.front_mut()?;
    front.remaining -= 1;
    let fault = front.fault.clone();
    if front.remaining == 0 {
        queue.pop_front();
    }
    Some(fault)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_faults_come_before_global_ones_and_run_out() {
        let mut book = FaultBook::default();
        book.inject(FaultScope::Global, Fault::ServerError, 1);
        book.inject(
            FaultScope::Secret(ClientSecret::new("a")),
            Fault::MalformedBody,
            2,
        );
        assert_eq!(book.pending(), 3);
        assert_eq!(book.take("a"), Some(Fault::MalformedBody));
        assert_eq!(book.take("b"), Some(Fault::ServerError));
        assert_eq!(book.take("b"), None);
        assert_eq!(book.take("a"), Some(Fault::MalformedBody));
        assert_eq!(book.take("a"), None);
        assert_eq!(book.pending(), 0);
    }

    #[test]
    fn faults_queue_in_injection_order() {
        let mut book = FaultBook::default();
        book.inject(FaultScope::Global, Fault::ServerError, 1);
        book.inject(
            FaultScope::Global,
            Fault::Status(StatusCode::BAD_GATEWAY),
            1,
        );
        assert_eq!(book.take("x"), Some(Fault::ServerError));
        assert_eq!(book.take("x"), Some(Fault::Status(StatusCode::BAD_GATEWAY)));
    }
}
