//! The `/_sandbox/` admin API that drives the stand-alone binary.

mod common;

use clear_sandbox::{ClientConfig, Sandbox, SandboxConfig};
use common::{at, http_client, into_answer, start};
use reqwest::Method;
use serde_json::json;

#[tokio::test]
async fn clients_listing_shows_state_but_never_secrets_or_tokens() {
    let fx = start(vec![
        ClientConfig::new("secret-a", "acme")
            .with_name("gst")
            .with_products(["GST"]),
    ])
    .await;
    let token = fx.token(Some("secret-a")).await.access_token();
    let answer = fx.admin_get("/_sandbox/clients").await;
    assert_eq!(answer.status, 200);
    assert!(!answer.body.contains("secret-a") && !answer.body.contains(&token));
    let clients = answer.json();
    assert_eq!(clients[0]["name"], "gst");
    assert_eq!(clients[0]["tokenLive"], true);
    assert_eq!(clients[0]["quotaUsedToday"], 1);
    assert_eq!(clients[0]["counts"]["byStatus"]["200"], 1);
    fx.stop().await;
}

#[tokio::test]
async fn clients_can_be_added_rotated_and_removed_over_http() {
    let fx = start(vec![]).await;
    let added = fx
        .admin_send(
            Method::POST,
            "/_sandbox/clients",
            json!({"name": "eu", "clientSecret": "s-1", "workspace": "w",
                   "environment": "production", "tokenLifetime": "1h"}),
        )
        .await;
    assert_eq!(added.status, 201, "{}", added.body);
    assert_eq!(fx.token(Some("s-1")).await.status, 200);
    let rotated = fx
        .admin_send(
            Method::POST,
            "/_sandbox/clients/eu/rotate",
            json!({"clientSecret": "s-2"}),
        )
        .await;
    assert_eq!(rotated.status, 204, "{}", rotated.body);
    assert_eq!(fx.token(Some("s-1")).await.status, 401);
    let token = fx.token(Some("s-2")).await.access_token();
    let removed = fx
        .admin_send(Method::DELETE, "/_sandbox/clients/eu", json!({}))
        .await;
    assert_eq!(removed.status, 204);
    assert_eq!(fx.whoami(Some(&token)).await.status, 401);
    let missing = fx
        .admin_send(Method::DELETE, "/_sandbox/clients/eu", json!({}))
        .await;
    assert_eq!(missing.status, 404);
    fx.stop().await;
}

#[tokio::test]
async fn duplicate_or_invalid_clients_are_refused_over_http() {
    let fx = start(vec![ClientConfig::new("s-1", "w").with_name("one")]).await;
    let duplicate = fx
        .admin_send(
            Method::POST,
            "/_sandbox/clients",
            json!({"clientSecret": "s-1", "workspace": "w", "environment": "sandbox", "neverExpires": true}),
        )
        .await;
    assert_eq!(duplicate.status, 409);
    assert!(!duplicate.body.contains("s-1"), "{}", duplicate.body);
    let no_expiry = fx
        .admin_send(
            Method::POST,
            "/_sandbox/clients",
            json!({"clientSecret": "s-2", "workspace": "w", "environment": "sandbox"}),
        )
        .await;
    assert_eq!(no_expiry.status, 400);
    assert!(
        no_expiry.body.contains("tokenLifetime"),
        "{}",
        no_expiry.body
    );
    fx.stop().await;
}

#[tokio::test]
async fn faults_injected_over_http_hit_the_named_client() {
    let fx = start(vec![
        ClientConfig::new("secret-a", "acme").with_name("a"),
        ClientConfig::new("secret-b", "acme").with_name("b"),
    ])
    .await;
    let injected = fx
        .admin_send(
            Method::POST,
            "/_sandbox/faults",
            json!({"client": "a", "fault": "status", "status": 502, "times": 2}),
        )
        .await;
    assert_eq!(injected.status, 204, "{}", injected.body);
    assert_eq!(fx.token(Some("secret-b")).await.status, 200);
    assert_eq!(fx.token(Some("secret-a")).await.status, 502);
    let cleared = fx
        .admin_send(Method::DELETE, "/_sandbox/faults", json!({}))
        .await;
    assert_eq!(cleared.status, 204);
    assert_eq!(fx.token(Some("secret-a")).await.status, 200);
    let global = fx
        .admin_send(
            Method::POST,
            "/_sandbox/faults",
            json!({"fault": "server-error"}),
        )
        .await;
    assert_eq!(global.status, 204);
    assert_eq!(fx.token(Some("secret-b")).await.status, 500);
    let bad = fx
        .admin_send(Method::POST, "/_sandbox/faults", json!({"fault": "delay"}))
        .await;
    assert_eq!(bad.status, 400);
    fx.stop().await;
}

#[tokio::test]
async fn rate_limit_faults_injected_over_http_carry_retry_after_and_body() {
    let fx = start(vec![ClientConfig::new("secret-a", "acme").with_name("a")]).await;
    let injected = fx
        .admin_send(
            Method::POST,
            "/_sandbox/faults",
            json!({"client": "a", "fault": "too-many-requests", "retryAfter": "30"}),
        )
        .await;
    assert_eq!(injected.status, 204, "{}", injected.body);
    let injected = fx
        .admin_send(
            Method::POST,
            "/_sandbox/faults",
            json!({"fault": "too-many-requests", "quotaBody": true}),
        )
        .await;
    assert_eq!(injected.status, 204, "{}", injected.body);
    let first = fx.token(Some("secret-a")).await;
    assert_eq!(
        (first.status, first.header("retry-after")),
        (429, Some("30"))
    );
    assert_eq!(first.json()["errors"][0]["error_code"], "TOO_MANY_REQUESTS");
    let second = fx.token(Some("secret-a")).await;
    assert_eq!((second.status, second.header("retry-after")), (429, None));
    assert_eq!(second.json()["errors"][0]["error_code"], "QUOTA_EXHAUSTED");
    let bad = fx
        .admin_send(
            Method::POST,
            "/_sandbox/faults",
            json!({"fault": "too-many-requests", "retryAfter": "a\nb"}),
        )
        .await;
    assert_eq!(bad.status, 400, "{}", bad.body);
    assert!(bad.body.contains("retryAfter"), "{}", bad.body);
    assert_eq!(fx.sandbox.pending_faults(), 0);
    fx.stop().await;
}

#[tokio::test]
async fn counts_report_splits_clients_unknown_and_anonymous_calls() {
    let fx = start(vec![ClientConfig::new("secret-a", "acme").with_name("a")]).await;
    fx.token(Some("secret-a")).await;
    fx.token(Some("nope")).await;
    fx.token(None).await;
    let report = fx.admin_get("/_sandbox/counts").await;
    assert!(!report.body.contains("secret-a") && !report.body.contains("nope"));
    let report = report.json();
    assert_eq!(report["total"]["total"], 3);
    assert_eq!(report["clients"]["a"]["total"], 1);
    assert_eq!(report["unknownSecrets"]["total"], 1);
    assert_eq!(report["anonymous"]["total"], 1);
    fx.stop().await;
}

#[tokio::test]
async fn clock_can_be_read_set_and_advanced_over_http() {
    let fx = start(vec![
        ClientConfig::new("secret-a", "acme").with_daily_quota(1),
    ])
    .await;
    assert_eq!(fx.token(Some("secret-a")).await.status, 200);
    assert_eq!(fx.token(Some("secret-a")).await.status, 429);
    let set = fx
        .admin_send(
            Method::POST,
            "/_sandbox/clock",
            json!({"set": "2026-11-25T23:59:00Z", "advance": "1m"}),
        )
        .await;
    assert_eq!(set.status, 200, "{}", set.body);
    assert_eq!(set.json()["now"], "2026-11-26T00:00:00+00:00");
    assert_eq!(
        clear_sandbox::Clock::now(fx.clock.as_ref()),
        at("2026-11-26T00:00:00Z")
    );
    assert_eq!(fx.token(Some("secret-a")).await.status, 200);
    fx.stop().await;
}

#[tokio::test]
async fn system_clock_refuses_to_move_and_admin_api_can_be_disabled() {
    let sandbox = Sandbox::start(SandboxConfig::new(vec![])).await.unwrap();
    let http = http_client();
    let answer = into_answer(
        http.post(format!("{}/_sandbox/clock", sandbox.url()))
            .json(&json!({"advance": "1h"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(answer.status, 409);
    sandbox.shutdown().await.unwrap();

    let sandbox = Sandbox::start(SandboxConfig::new(vec![]).without_admin_api())
        .await
        .unwrap();
    let answer = into_answer(
        http.get(format!("{}/_sandbox/clients", sandbox.url()))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(answer.status, 404);
    sandbox.shutdown().await.unwrap();
}
