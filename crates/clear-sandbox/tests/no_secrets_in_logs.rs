//! Captures every tracing line (at TRACE, hyper and axum included) while driving every
//! endpoint and admin path, then checks that no secret or token value shows up in the
//! logs or in any Debug output.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::StatusCode;
use clear_sandbox::{
    AdminError, ClientConfig, ClientSecret, Fault, FaultScope, SandboxConfig, error_chain,
};
use reqwest::Method;
use serde_json::json;

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_or_token_appears_in_any_log_line_or_debug_output() {
    let capture = Capture::default();
    let writer = capture.clone();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .init();

    let secrets = [
        "log-secret-alpha-1",
        "log-secret-beta-2",
        "log-secret-gamma-3",
    ];
    let clients = vec![
        ClientConfig::new(secrets[0], "acme")
            .with_name("alpha")
            .with_daily_quota(3),
        ClientConfig::new(secrets[1], "acme").never_expires(),
    ];
    let config_debug = format!("{:?}", SandboxConfig::new(clients.clone()));
    let fx = common::start(clients).await;
    let mut tokens = Vec::new();

    // Every answer of the token endpoint, and whoami on live, revoked and expired tokens.
    tokens.push(fx.token(Some(secrets[0])).await.access_token());
    tokens.push(fx.token(Some(secrets[0])).await.access_token());
    tokens.push(fx.token(Some(secrets[1])).await.access_token());
    for token in &tokens {
        fx.whoami(Some(token)).await;
    }
    fx.token(Some(secrets[0])).await;
    assert_eq!(fx.token(Some(secrets[0])).await.status, 429);
    fx.token(Some("log-unknown-secret-4")).await;
    fx.token(Some("")).await;
    fx.token(None).await;
    for fault in [
        Fault::ServerError,
        Fault::Status(StatusCode::BAD_GATEWAY),
        Fault::MalformedBody,
        Fault::Delay(Duration::from_millis(1)),
    ] {
        fx.sandbox
            .inject_fault(FaultScope::Secret(ClientSecret::new(secrets[1])), fault, 1);
        let answer = fx.token(Some(secrets[1])).await;
        if answer.status == 200
            && answer.body.starts_with("{\"access")
            && answer.body.ends_with('}')
        {
            tokens.push(answer.access_token());
        }
    }
    fx.clock.advance_by(Duration::from_secs(2 * 86_400));
    fx.whoami(Some(&tokens[1])).await;

    // Admin paths, both through the handle and over HTTP.
    let added = fx
        .admin_send(
            Method::POST,
            "/_sandbox/clients",
            json!({"name": "gamma", "clientSecret": secrets[2], "workspace": "w",
                   "environment": "sandbox", "tokenLifetime": "1h"}),
        )
        .await;
    assert_eq!(added.status, 201);
    let duplicate = fx
        .admin_send(
            Method::POST,
            "/_sandbox/clients",
            json!({"clientSecret": secrets[2], "workspace": "w", "environment": "sandbox", "neverExpires": true}),
        )
        .await;
    tokens.push(fx.token(Some(secrets[2])).await.access_token());
    fx.admin_send(
        Method::POST,
        "/_sandbox/clients/gamma/rotate",
        json!({"clientSecret": "log-secret-rotated-5"}),
    )
    .await;
    fx.admin_send(
        Method::POST,
        "/_sandbox/faults",
        json!({"client": "gamma", "fault": "server-error"}),
    )
    .await;
    fx.token(Some("log-secret-rotated-5")).await;
    fx.admin_send(Method::DELETE, "/_sandbox/clients/gamma", json!({}))
        .await;
    fx.admin_send(Method::POST, "/_sandbox/clock", json!({"advance": "1h"}))
        .await;
    let listing = fx.admin_get("/_sandbox/clients").await;
    let counts = fx.admin_get("/_sandbox/counts").await;
    let duplicate_error = fx
        .sandbox
        .add_client(ClientConfig::new(secrets[1], "acme"))
        .unwrap_err();
    assert_eq!(duplicate_error, AdminError::DuplicateSecret);

    let debug_outputs = [
        config_debug,
        format!("{:?}", fx.sandbox),
        format!("{:?}", fx.sandbox.current_token(secrets[1])),
        format!("{:?}", fx.sandbox.clients()),
        format!("{duplicate_error:?} {}", error_chain(&duplicate_error)),
        duplicate.body,
        listing.body,
        counts.body,
    ];
    fx.stop().await;

    let logs = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
    assert!(logs.contains("minted access token"), "capture works");
    assert!(logs.contains("daily quota exhausted"));
    let mut values: Vec<&str> = secrets.to_vec();
    values.extend(["log-unknown-secret-4", "log-secret-rotated-5"]);
    values.extend(tokens.iter().map(String::as_str));
    assert!(tokens.len() >= 5, "{} tokens", tokens.len());
    for value in values {
        assert!(!logs.contains(value), "leaked into the logs:\n{logs}");
        for output in &debug_outputs {
            assert!(!output.contains(value), "leaked into {output}");
        }
    }
}
