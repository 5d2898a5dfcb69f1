//! Each documented answer of `GET /integration/v1/authz/token`, over real HTTP.

mod common;

use std::time::Duration;

use clear_sandbox::{ClientConfig, MAX_TOKEN_LENGTH, TokenField};
use common::{assert_errors_body, start};

#[tokio::test]
async fn valid_secret_gets_a_token_valid_till_now_plus_lifetime() {
    let fx = start(vec![
        ClientConfig::new("secret-a", "acme").with_lifetime(Duration::from_secs(8 * 3600)),
    ])
    .await;
    fx.clock.set_to(common::at("2026-11-25T10:30:00.750Z"));
    let answer = fx.token(Some("secret-a")).await;
    assert_eq!(answer.status, 200);
    let body = answer.json();
    assert_eq!(body["valid_till"], "2026-11-25T18:30:00+00:00");
    let token = body["access_token"].as_str().unwrap();
    assert!(!token.is_empty() && token.len() <= MAX_TOKEN_LENGTH);
    assert_eq!(
        fx.sandbox.current_token("secret-a").unwrap().token.expose(),
        token
    );
    fx.stop().await;
}

#[tokio::test]
async fn never_expiring_client_gets_null_valid_till() {
    let fx = start(vec![ClientConfig::new("secret-a", "acme").never_expires()]).await;
    let answer = fx.token(Some("secret-a")).await;
    assert_eq!(answer.status, 200);
    let body = answer.json();
    assert!(body["valid_till"].is_null(), "{body}");
    assert!(body.as_object().unwrap().contains_key("valid_till"));
    fx.stop().await;
}

#[tokio::test]
async fn hyphen_spelling_client_gets_access_dash_token_field() {
    let fx = start(vec![
        ClientConfig::new("secret-a", "acme").with_token_field(TokenField::Hyphen),
    ])
    .await;
    let body = fx.token(Some("secret-a")).await.json();
    assert!(body["access-token"].is_string(), "{body}");
    assert!(body.get("access_token").is_none(), "{body}");
    fx.stop().await;
}

#[tokio::test]
async fn longest_allowed_tokens_are_exactly_256_characters() {
    let fx = start(vec![
        ClientConfig::new("secret-a", "acme").with_token_length(MAX_TOKEN_LENGTH),
    ])
    .await;
    assert_eq!(fx.token(Some("secret-a")).await.access_token().len(), 256);
    fx.stop().await;
}

#[tokio::test]
async fn missing_secret_header_gets_401_with_errors_body() {
    let fx = start(vec![ClientConfig::new("secret-a", "acme")]).await;
    let answer = fx.token(None).await;
    assert_eq!(answer.status, 401);
    let error = assert_errors_body(&answer);
    assert_eq!(error["error_code"], "UNAUTHORIZED");
    assert_eq!(fx.sandbox.anonymous_call_counts().with_status(401), 1);
    fx.stop().await;
}

#[tokio::test]
async fn empty_secret_header_gets_401_with_errors_body() {
    let fx = start(vec![ClientConfig::new("secret-a", "acme")]).await;
    let answer = fx.token(Some("")).await;
    assert_eq!(answer.status, 401);
    assert_errors_body(&answer);
    fx.stop().await;
}

#[tokio::test]
async fn unknown_secret_gets_401_and_mints_nothing() {
    let fx = start(vec![ClientConfig::new("secret-a", "acme")]).await;
    let answer = fx.token(Some("not-a-secret")).await;
    assert_eq!(answer.status, 401);
    let error = assert_errors_body(&answer);
    assert!(error.get("error_id").is_none(), "error_id is for 5xx only");
    assert!(fx.sandbox.current_token("secret-a").is_none());
    assert_eq!(fx.sandbox.call_counts("not-a-secret").with_status(401), 1);
    fx.stop().await;
}

#[tokio::test]
async fn whoami_reports_the_scope_of_a_live_token() {
    let fx = start(vec![
        ClientConfig::new("secret-a", "acme")
            .with_products(["GST", "EINVOICE"])
            .with_environment(clear_sandbox::Environment::Production)
            .with_lifetime(Duration::from_secs(600)),
    ])
    .await;
    let token = fx.token(Some("secret-a")).await.access_token();
    let answer = fx.whoami(Some(&token)).await;
    assert_eq!(answer.status, 200);
    let body = answer.json();
    assert_eq!(body["workspace"], "acme");
    assert_eq!(body["products"], serde_json::json!(["GST", "EINVOICE"]));
    assert_eq!(body["environment"], "production");
    assert_eq!(body["valid_till"], "2026-11-25T10:10:00+00:00");
    fx.stop().await;
}

#[tokio::test]
async fn whoami_without_or_with_a_bogus_token_gets_401() {
    let fx = start(vec![ClientConfig::new("secret-a", "acme")]).await;
    for token in [None, Some(""), Some("bogus")] {
        let answer = fx.whoami(token).await;
        assert_eq!(answer.status, 401, "{token:?}");
        assert_errors_body(&answer);
    }
    fx.stop().await;
}
