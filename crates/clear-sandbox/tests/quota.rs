//! The daily quota: 429 past it, counted per secret and UTC day, reset at 00:00 UTC.

mod common;

use std::time::Duration;

use clear_sandbox::{ClientConfig, DEFAULT_DAILY_QUOTA};
use common::{assert_errors_body, at, start, start_at};

#[tokio::test]
async fn default_quota_allows_288_calls_and_the_289th_gets_429() {
    let fx = start(vec![ClientConfig::new("secret-a", "acme")]).await;
    for call in 1..=DEFAULT_DAILY_QUOTA {
        assert_eq!(fx.token(Some("secret-a")).await.status, 200, "call {call}");
    }
    let refused = fx.token(Some("secret-a")).await;
    assert_eq!(refused.status, 429);
    let error = assert_errors_body(&refused);
    assert_eq!(error["error_code"], "RATE_LIMIT_EXCEEDED");
    assert!(error.get("error_id").is_none(), "error_id is for 5xx only");
    fx.stop().await;
}

#[tokio::test]
async fn quota_is_per_secret() {
    let fx = start(vec![
        ClientConfig::new("secret-a", "acme").with_daily_quota(1),
        ClientConfig::new("secret-b", "acme").with_daily_quota(1),
    ])
    .await;
    assert_eq!(fx.token(Some("secret-a")).await.status, 200);
    assert_eq!(fx.token(Some("secret-a")).await.status, 429);
    assert_eq!(fx.token(Some("secret-b")).await.status, 200);
    fx.stop().await;
}

#[tokio::test]
async fn quota_resets_exactly_at_midnight_utc() {
    let fx = start_at(
        "2026-11-25T23:00:00Z",
        vec![ClientConfig::new("secret-a", "acme").with_daily_quota(2)],
    )
    .await;
    assert_eq!(fx.token(Some("secret-a")).await.status, 200);
    assert_eq!(fx.token(Some("secret-a")).await.status, 200);
    assert_eq!(fx.token(Some("secret-a")).await.status, 429);
    fx.clock.set_to(at("2026-11-25T23:59:59.999Z"));
    assert_eq!(fx.token(Some("secret-a")).await.status, 429);
    fx.clock.set_to(at("2026-11-26T00:00:00Z"));
    assert_eq!(fx.token(Some("secret-a")).await.status, 200);
    let yesterday = at("2026-11-25T12:00:00Z").date_naive();
    let today = at("2026-11-26T12:00:00Z").date_naive();
    assert_eq!(fx.sandbox.quota_used("secret-a", yesterday), 4);
    assert_eq!(fx.sandbox.quota_used("secret-a", today), 1);
    fx.stop().await;
}

#[tokio::test]
async fn refused_calls_still_count_so_the_quota_stays_exhausted() {
    let fx = start(vec![
        ClientConfig::new("secret-a", "acme").with_daily_quota(1),
    ])
    .await;
    let first = fx.token(Some("secret-a")).await.access_token();
    for _ in 0..5 {
        assert_eq!(fx.token(Some("secret-a")).await.status, 429);
    }
    // A 429 mints nothing, so the token handed out before stays live.
    assert!(fx.sandbox.is_token_valid(&first));
    let counts = fx.sandbox.call_counts("secret-a");
    assert_eq!(counts.total, 6);
    assert_eq!(counts.with_status(200), 1);
    assert_eq!(counts.with_status(429), 5);
    assert_eq!(
        fx.sandbox
            .quota_used("secret-a", at("2026-11-25T00:00:00Z").date_naive()),
        6
    );
    fx.clock.advance_by(Duration::from_secs(14 * 3600));
    assert_eq!(fx.token(Some("secret-a")).await.status, 200);
    fx.stop().await;
}

#[tokio::test]
async fn zero_quota_refuses_every_call() {
    let fx = start(vec![
        ClientConfig::new("secret-a", "acme").with_daily_quota(0),
    ])
    .await;
    assert_eq!(fx.token(Some("secret-a")).await.status, 429);
    assert!(fx.sandbox.current_token("secret-a").is_none());
    fx.stop().await;
}
