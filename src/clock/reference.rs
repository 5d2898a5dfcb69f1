//! Samples of the API server's clock for [`AnchoredClock`]: the HTTP `Date` header of a
//! `GET /version` (cheap, static, readable by every authenticated client). Taken once at
//! start, before anything is reconciled, and then every [`SAMPLE_EVERY`].

use std::{sync::Arc, time::Duration};

use axum::http;
use jiff::{SignedDuration, Timestamp};
use kube::Client;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use super::{
    Clock,
    anchored::{AnchoredClock, Sample},
};

/// How often the API server's clock is sampled while the operator runs. A step of the
/// node's clock never needs a sample to be ignored (the operator's time does not read it);
/// samples correct a wrong start, follow the API server's own clock, and notice (for the
/// log and the offset) a node clock that went off. A `GET /version` every 10 s costs the
/// API server nothing.
pub const SAMPLE_EVERY: Duration = Duration::from_secs(10);

/// How long the operator waits at start for a first sample before it reconciles on the
/// node's clock anyway.
pub const FIRST_SAMPLE_WITHIN: Duration = Duration::from_secs(15);

/// One request's bound: a slow answer is useless as a time sample anyway.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum SampleError {
    #[error("failed to read the API server's clock: {0}")]
    Request(#[source] kube::Error),
    #[error("failed to read the API server's clock: no answer within {0:?}")]
    Timeout(Duration),
    #[error("failed to read the API server's clock: GET /version answered {0}")]
    Status(http::StatusCode),
    #[error("failed to read the API server's clock: no valid Date header")]
    NoDate,
}

/// Reads the API server's clock once. The `Date` header is truncated to the second, so the
/// reference's time is taken as the middle of that second.
pub async fn sample(client: &Client, clock: &dyn Clock) -> Result<Sample, SampleError> {
    let request = http::Request::get("/version")
        .body(kube::client::Body::from(Vec::new()))
        .expect("a constant GET request is valid");
    let sent = clock.instant();
    let response = tokio::time::timeout(REQUEST_TIMEOUT, client.send(request))
        .await
        .map_err(|_| SampleError::Timeout(REQUEST_TIMEOUT))?
        .map_err(SampleError::Request)?;
    let received = clock.instant();
    if !response.status().is_success() {
        return Err(SampleError::Status(response.status()));
    }
    let time = response
        .headers()
        .get(http::header::DATE)
        .and_then(|value| value.to_str().ok())
        .and_then(parse_http_date)
        .ok_or(SampleError::NoDate)?;
    Ok(Sample {
        time: time + SignedDuration::from_millis(500),
        sent,
        received,
    })
}

/// An HTTP date (`Wed, 02 Dec 2026 00:24:30 GMT`, RFC 9110's IMF-fixdate).
fn parse_http_date(value: &str) -> Option<Timestamp> {
    jiff::fmt::rfc2822::parse(value)
        .ok()
        .map(|zoned| zoned.timestamp())
}

/// Samples until one is taken or `within` has passed; returns whether the clock was
/// checked against the API server. Called at start so the first decision is made on the
/// API server's time, not on a node clock that may be wrong.
pub async fn first_sample(clock: &AnchoredClock, client: &Client, within: Duration) -> bool {
    let deadline = clock.instant() + within;
    loop {
        match sample(client, clock).await {
            Ok(sample) => {
                clock.observe(sample);
                return true;
            }
            Err(error) if clock.instant() + Duration::from_secs(1) < deadline => {
                debug!(%error, "no clock sample yet; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Err(error) => {
                warn!(
                    %error,
                    "starting on the node's wall clock: the API server's clock could not be read"
                );
                return false;
            }
        }
    }
}

/// Samples every [`SAMPLE_EVERY`] until `shutdown`.
pub fn spawn_sampler(clock: Arc<AnchoredClock>, client: Client, shutdown: CancellationToken) {
    tokio::spawn(async move {
        let mut every = tokio::time::interval(SAMPLE_EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // NB: the first tick is immediate, and the start already took a sample.
        every.tick().await;
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                _ = every.tick() => {}
            }
            match sample(&client, &*clock).await {
                Ok(sample) => {
                    clock.observe(sample);
                }
                Err(error) => {
                    debug!(%error, "clock sample failed; keeping the last anchor");
                }
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_dates_parse_to_the_second() {
        assert_eq!(
            parse_http_date("Wed, 02 Dec 2026 00:24:30 GMT"),
            Some("2026-12-02T00:24:30Z".parse().unwrap())
        );
        assert_eq!(parse_http_date("yesterday"), None);
    }
}
