//! How Clear's answers steer the reconciler: a 429 read right (Retry-After, or the daily
//! quota with a per-resource jitter), a refusal that proves nothing was minted, and a token's
//! life counted on Clear's clock when the local one is off. Each counts the exact calls.

mod scenario_kit;

use std::time::Duration;

use axum::http::StatusCode;
use clear_operator::resource::REGENERATE_ANNOTATION;
use clear_sandbox::{ClientConfig, Fault, FaultScope};
use jiff::{SignedDuration, Timestamp};
use scenario_kit::Kit;

const SECRET: &str = "cs-answers-0001";

async fn kit_with_token() -> Kit {
    Kit::with_first_token(SECRET).await
}

async fn next_retry(kit: &Kit) -> Timestamp {
    kit.status("billing")
        .await
        .next_retry_time
        .expect("a retry is scheduled")
        .0
}

#[tokio::test]
async fn a_429_with_retry_after_waits_that_long_not_until_midnight() {
    let kit = kit_with_token().await;
    kit.sandbox.inject_fault(
        FaultScope::Global,
        Fault::TooManyRequests {
            retry_after: Some("120".into()),
            quota_body: false,
        },
        1,
    );
    kit.regenerate("billing", "r1").await;
    kit.reconcile("billing").await;
    assert_eq!(kit.calls(SECRET), 2);
    assert_eq!(
        next_retry(&kit).await,
        kit.now() + SignedDuration::from_secs(120)
    );
    assert_eq!(
        kit.ready("billing").await,
        ("True".into(), "RateLimited".into())
    );
    kit.advance(SignedDuration::from_secs(119));
    kit.reconcile("billing").await;
    assert_eq!(kit.calls(SECRET), 2, "not before Retry-After");
    kit.advance(SignedDuration::from_secs(1));
    kit.reconcile_times("billing", 2).await;
    assert_eq!(kit.calls(SECRET), 3, "then exactly once");
    assert_eq!(kit.ready("billing").await.0, "True");
    kit.finish().await;
}

#[tokio::test]
async fn the_daily_quota_waits_for_midnight_plus_a_jitter_of_its_own() {
    let kit = kit_with_token().await;
    kit.sandbox.inject_fault(
        FaultScope::Global,
        Fault::TooManyRequests {
            retry_after: None,
            quota_body: true,
        },
        1,
    );
    kit.regenerate("billing", "r1").await;
    kit.reconcile("billing").await;
    let midnight: Timestamp = "2026-11-26T00:00:00Z".parse().unwrap();
    let retry = next_retry(&kit).await;
    assert!(
        retry >= midnight && retry < midnight + SignedDuration::from_mins(5),
        "{retry}"
    );
    kit.reconcile("billing").await;
    assert_eq!(
        next_retry(&kit).await,
        retry,
        "deterministic: a reconcile does not move it"
    );
    kit.set_time(&(retry - SignedDuration::from_secs(1)).to_string());
    kit.reconcile("billing").await;
    assert_eq!(kit.calls(SECRET), 2);
    kit.set_time(&retry.to_string());
    kit.reconcile_times("billing", 2).await;
    assert_eq!(kit.calls(SECRET), 3);
    kit.shutdown().await;
}

#[tokio::test]
async fn refusals_leave_the_stored_token_ready_and_name_the_status_code() {
    let kit = kit_with_token().await;
    let token = kit.token_in("billing").await;
    for (i, code) in [403u16, 404, 400, 307].into_iter().enumerate() {
        kit.sandbox.inject_fault(
            FaultScope::Global,
            Fault::Status(StatusCode::from_u16(code).unwrap()),
            1,
        );
        kit.annotate("billing", REGENERATE_ANNOTATION, &format!("r{i}"))
            .await;
        kit.reconcile("billing").await;
        let cac = kit.get("billing").await;
        let status = cac.status.as_ref().unwrap();
        assert_eq!(
            status.mint_started_at, None,
            "HTTP {code}: nothing was minted"
        );
        let ready = status
            .conditions
            .iter()
            .find(|c| c.type_ == "Ready")
            .unwrap();
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_str()),
            ("True", "ClearRefused"),
            "HTTP {code}"
        );
        assert!(
            ready.message.contains(&format!("HTTP {code}")),
            "{}",
            ready.message
        );
        kit.advance(SignedDuration::from_hours(2));
    }
    assert_eq!(kit.calls(SECRET), 5, "one call per refusal");
    assert_eq!(kit.token_in("billing").await, token);
    assert!(
        kit.sandbox.is_token_valid(&token),
        "the stored token is intact"
    );
    kit.reconcile_times("billing", 2).await;
    assert_eq!(
        kit.calls(SECRET),
        6,
        "the regenerate request is served after the backoff"
    );
    kit.finish().await;
}

#[tokio::test]
async fn a_local_clock_a_day_ahead_of_clears_counts_the_life_on_clears_clock() {
    let kit = Kit::with_client_secret(
        vec![ClientConfig::new(SECRET, "ws-1").with_lifetime(Duration::from_secs(12 * 3600))],
        SECRET,
    )
    .await;
    // The operator's node is a day ahead: Clear's valid_till looks past on the local clock.
    kit.set_clear_time("2026-11-24T10:00:00Z");
    kit.create("billing", kit.spec("clear-secret")).await;
    kit.reconcile_times("billing", 3).await;
    assert_eq!(
        kit.calls(SECRET),
        1,
        "no mint loop on a token that looks expired"
    );
    let status = kit.status("billing").await;
    assert_eq!(
        status.valid_till.map(|t| t.0),
        Some(kit.now() + SignedDuration::from_hours(12)),
        "twelve hours of life, as Clear counts them"
    );
    assert_eq!(kit.ready("billing").await, ("True".into(), "Issued".into()));
    kit.finish().await;
}
