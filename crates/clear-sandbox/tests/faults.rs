//! Injected faults: 500 with error_id, any status, malformed bodies, late answers; scoped
//! to one secret or to all, for exactly N calls.

mod common;

use std::time::Duration;

use axum::http::StatusCode;
use clear_sandbox::{
    CLIENT_SECRET_HEADER, ClientConfig, ClientSecret, Fault, FaultScope, TOKEN_PATH,
};
use common::{assert_errors_body, start};

#[tokio::test]
async fn injected_server_error_answers_500_with_error_id_and_mints_nothing() {
    let fx = start(vec![ClientConfig::new("secret-a", "acme")]).await;
    let before = fx.token(Some("secret-a")).await.access_token();
    fx.sandbox
        .inject_fault(FaultScope::Global, Fault::ServerError, 2);
    let mut ids = Vec::new();
    for _ in 0..2 {
        let answer = fx.token(Some("secret-a")).await;
        assert_eq!(answer.status, 500);
        let error = assert_errors_body(&answer);
        ids.push(error["error_id"].as_str().expect("error_id").to_owned());
    }
    assert_ne!(ids[0], ids[1], "each error has its own id");
    assert!(fx.sandbox.is_token_valid(&before), "a 500 revokes nothing");
    assert_eq!(fx.sandbox.pending_faults(), 0);
    assert_eq!(fx.token(Some("secret-a")).await.status, 200);
    fx.stop().await;
}

#[tokio::test]
async fn injected_status_is_answered_with_an_errors_body() {
    let fx = start(vec![ClientConfig::new("secret-a", "acme")]).await;
    fx.sandbox.inject_fault(
        FaultScope::Global,
        Fault::Status(StatusCode::SERVICE_UNAVAILABLE),
        1,
    );
    let answer = fx.token(Some("secret-a")).await;
    assert_eq!(answer.status, 503);
    let error = assert_errors_body(&answer);
    assert_eq!(error["error_code"], "SERVICE_UNAVAILABLE");
    assert_eq!(fx.sandbox.call_counts("secret-a").with_status(503), 1);
    fx.stop().await;
}

#[tokio::test]
async fn injected_malformed_body_is_not_json() {
    let fx = start(vec![ClientConfig::new("secret-a", "acme")]).await;
    fx.sandbox
        .inject_fault(FaultScope::Global, Fault::MalformedBody, 1);
    let answer = fx.token(Some("secret-a")).await;
    assert_eq!(answer.status, 200);
    assert!(serde_json::from_str::<serde_json::Value>(&answer.body).is_err());
    assert!(fx.sandbox.current_token("secret-a").is_none());
    fx.stop().await;
}

#[tokio::test]
async fn secret_scoped_fault_leaves_other_secrets_alone() {
    let fx = start(vec![
        ClientConfig::new("secret-a", "acme"),
        ClientConfig::new("secret-b", "acme"),
    ])
    .await;
    fx.sandbox.inject_fault(
        FaultScope::Secret(ClientSecret::new("secret-a")),
        Fault::ServerError,
        1,
    );
    assert_eq!(fx.token(Some("secret-b")).await.status, 200);
    assert_eq!(fx.token(Some("secret-a")).await.status, 500);
    assert_eq!(fx.token(Some("secret-a")).await.status, 200);
    fx.stop().await;
}

#[tokio::test]
async fn faulted_calls_count_against_the_quota() {
    let fx = start(vec![
        ClientConfig::new("secret-a", "acme").with_daily_quota(2),
    ])
    .await;
    fx.sandbox
        .inject_fault(FaultScope::Global, Fault::ServerError, 2);
    assert_eq!(fx.token(Some("secret-a")).await.status, 500);
    assert_eq!(fx.token(Some("secret-a")).await.status, 500);
    assert_eq!(fx.token(Some("secret-a")).await.status, 429);
    fx.stop().await;
}

#[tokio::test]
async fn unknown_secrets_get_401_and_do_not_consume_faults() {
    let fx = start(vec![ClientConfig::new("secret-a", "acme")]).await;
    fx.sandbox
        .inject_fault(FaultScope::Global, Fault::ServerError, 1);
    assert_eq!(fx.token(Some("wrong")).await.status, 401);
    assert_eq!(fx.sandbox.pending_faults(), 1);
    fx.sandbox.clear_faults();
    assert_eq!(fx.token(Some("secret-a")).await.status, 200);
    fx.stop().await;
}

#[tokio::test]
async fn delayed_answer_still_arrives_in_full() {
    let fx = start(vec![ClientConfig::new("secret-a", "acme")]).await;
    fx.sandbox.inject_fault(
        FaultScope::Global,
        Fault::Delay(Duration::from_millis(50)),
        1,
    );
    let answer = fx.token(Some("secret-a")).await;
    assert_eq!(answer.status, 200);
    assert!(fx.sandbox.is_token_valid(&answer.access_token()));
    fx.stop().await;
}

#[tokio::test]
async fn client_that_times_out_on_a_delay_has_lost_its_old_token_anyway() {
    let fx = start(vec![ClientConfig::new("secret-a", "acme")]).await;
    let old = fx.token(Some("secret-a")).await.access_token();
    fx.sandbox
        .inject_fault(FaultScope::Global, Fault::Delay(Duration::from_secs(30)), 1);
    let result = fx
        .http
        .get(format!("{}{TOKEN_PATH}", fx.sandbox.url()))
        .header(CLIENT_SECRET_HEADER, "secret-a")
        .timeout(Duration::from_millis(200))
        .send()
        .await;
    assert!(result.expect_err("client gives up").is_timeout());
    assert!(!fx.sandbox.is_token_valid(&old));
    let minted = fx.sandbox.current_token("secret-a").expect("minted anyway");
    assert!(fx.sandbox.is_token_valid(minted.token.expose()));
    // Shutdown cuts the pending delay short instead of waiting 30 s.
    fx.stop().await;
}

#[tokio::test]
async fn injected_429_sends_retry_after_as_given_and_mints_nothing() {
    let fx = start(vec![ClientConfig::new("secret-a", "acme")]).await;
    let before = fx.token(Some("secret-a")).await.access_token();
    for retry_after in ["120", "Wed, 25 Nov 2026 10:05:00 GMT", "soon-ish"] {
        fx.sandbox.inject_fault(
            FaultScope::Global,
            Fault::TooManyRequests {
                retry_after: Some(retry_after.into()),
                quota_body: false,
            },
            1,
        );
        let answer = fx.token(Some("secret-a")).await;
        assert_eq!(answer.status, 429);
        assert_eq!(answer.header("retry-after"), Some(retry_after));
        let error = assert_errors_body(&answer);
        assert_eq!(error["error_code"], "TOO_MANY_REQUESTS");
        let message = error["error_message"].as_str().unwrap().to_lowercase();
        assert!(
            !message.contains("quota") && !message.contains("daily"),
            "{message}"
        );
    }
    assert!(fx.sandbox.is_token_valid(&before), "a 429 revokes nothing");
    assert_eq!(fx.sandbox.call_counts("secret-a").with_status(429), 3);
    assert_eq!(fx.token(Some("secret-a")).await.status, 200);
    fx.stop().await;
}

#[tokio::test]
async fn injected_429_without_retry_after_can_say_quota() {
    let fx = start(vec![ClientConfig::new("secret-a", "acme")]).await;
    fx.sandbox.inject_fault(
        FaultScope::Global,
        Fault::TooManyRequests {
            retry_after: None,
            quota_body: true,
        },
        1,
    );
    let answer = fx.token(Some("secret-a")).await;
    assert_eq!(answer.status, 429);
    assert_eq!(answer.header("retry-after"), None);
    let error = assert_errors_body(&answer);
    assert_eq!(error["error_code"], "QUOTA_EXHAUSTED");
    assert!(
        error["error_message"]
            .as_str()
            .unwrap()
            .contains("quota of token requests exhausted")
    );
    assert!(fx.sandbox.current_token("secret-a").is_none());
    fx.stop().await;
}

#[tokio::test]
async fn injected_refusals_answer_their_status_and_mint_nothing() {
    let fx = start(vec![ClientConfig::new("secret-a", "acme")]).await;
    let before = fx.token(Some("secret-a")).await.access_token();
    for (code, error_code) in [
        (403, "FORBIDDEN"),
        (404, "NOT_FOUND"),
        (405, "METHOD_NOT_ALLOWED"),
        (400, "BAD_REQUEST"),
    ] {
        fx.sandbox.inject_fault(
            FaultScope::Global,
            Fault::Status(StatusCode::from_u16(code).unwrap()),
            1,
        );
        let answer = fx.token(Some("secret-a")).await;
        assert_eq!(answer.status, code);
        assert_eq!(assert_errors_body(&answer)["error_code"], error_code);
        assert_eq!(answer.header("location"), None);
    }
    assert!(fx.sandbox.is_token_valid(&before));
    fx.stop().await;
}

#[tokio::test]
async fn injected_redirect_points_back_at_the_token_path() {
    let fx = start(vec![ClientConfig::new("secret-a", "acme")]).await;
    for code in [301, 302, 307, 308] {
        fx.sandbox.inject_fault(
            FaultScope::Global,
            Fault::Status(StatusCode::from_u16(code).unwrap()),
            1,
        );
        let answer = fx.token(Some("secret-a")).await;
        assert_eq!(answer.status, code);
        assert_eq!(answer.header("location"), Some(TOKEN_PATH));
    }
    // A client that did follow would have minted: nothing was.
    assert!(fx.sandbox.current_token("secret-a").is_none());
    assert_eq!(fx.sandbox.call_counts("secret-a").with_status(200), 0);
    fx.stop().await;
}

#[tokio::test]
async fn token_answers_carry_the_simulator_clock_as_date() {
    let fx = start(vec![
        ClientConfig::new("secret-a", "acme").with_daily_quota(1),
    ])
    .await;
    fx.clock.set_to(common::at("2026-11-05T08:09:07.600Z"));
    let minted = fx.token(Some("secret-a")).await;
    assert_eq!(minted.status, 200);
    assert_eq!(minted.header("date"), Some("Thu, 05 Nov 2026 08:09:07 GMT"));
    fx.clock.advance_by(Duration::from_secs(3600));
    let refused = fx.token(Some("secret-a")).await;
    assert_eq!(refused.status, 429);
    assert_eq!(
        refused.header("date"),
        Some("Thu, 05 Nov 2026 09:09:07 GMT")
    );
    let unknown = fx.token(Some("nope")).await;
    assert_eq!(
        unknown.header("date"),
        Some("Thu, 05 Nov 2026 09:09:07 GMT")
    );
    fx.stop().await;
}
