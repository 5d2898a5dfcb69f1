//! Minting revokes, expiry, rotation and removal, checked through whoami and the handle.

mod common;

use std::time::Duration;

use clear_sandbox::{AdminError, ClientConfig};
use common::{start, start_at};

#[tokio::test]
async fn minting_again_revokes_the_previous_token_at_once() {
    let fx = start(vec![ClientConfig::new("secret-a", "acme")]).await;
    let old = fx.token(Some("secret-a")).await.access_token();
    assert_eq!(fx.whoami(Some(&old)).await.status, 200);
    let new = fx.token(Some("secret-a")).await.access_token();
    assert_ne!(old, new);
    assert_eq!(fx.whoami(Some(&old)).await.status, 401);
    assert_eq!(fx.whoami(Some(&new)).await.status, 200);
    assert!(!fx.sandbox.is_token_valid(&old));
    assert!(fx.sandbox.is_token_valid(&new));
    fx.stop().await;
}

#[tokio::test]
async fn two_clients_do_not_revoke_each_other() {
    let fx = start(vec![
        ClientConfig::new("secret-a", "acme"),
        ClientConfig::new("secret-b", "acme"),
    ])
    .await;
    let a = fx.token(Some("secret-a")).await.access_token();
    let b = fx.token(Some("secret-b")).await.access_token();
    assert!(fx.sandbox.is_token_valid(&a));
    assert!(fx.sandbox.is_token_valid(&b));
    fx.stop().await;
}

#[tokio::test]
async fn token_stops_working_at_valid_till() {
    let fx = start(vec![
        ClientConfig::new("secret-a", "acme").with_lifetime(Duration::from_secs(600)),
    ])
    .await;
    let token = fx.token(Some("secret-a")).await.access_token();
    fx.clock.advance_by(Duration::from_secs(599));
    assert_eq!(fx.whoami(Some(&token)).await.status, 200);
    fx.clock.advance_by(Duration::from_secs(1));
    let answer = fx.whoami(Some(&token)).await;
    assert_eq!(answer.status, 401);
    assert!(answer.body.contains("expired"), "{}", answer.body);
    assert!(!fx.sandbox.is_token_valid(&token));
    // An expired token is replaced by minting again, as with Clear.
    let next = fx.token(Some("secret-a")).await.access_token();
    assert_eq!(fx.whoami(Some(&next)).await.status, 200);
    fx.stop().await;
}

#[tokio::test]
async fn never_expiring_token_lives_for_years() {
    let fx = start_at(
        "2026-01-01T00:00:00Z",
        vec![ClientConfig::new("secret-a", "acme").never_expires()],
    )
    .await;
    let token = fx.token(Some("secret-a")).await.access_token();
    fx.clock.set_to(common::at("2036-01-01T00:00:00Z"));
    assert_eq!(fx.whoami(Some(&token)).await.status, 200);
    fx.stop().await;
}

#[tokio::test]
async fn rotated_secret_gets_401_and_the_new_one_mints() {
    let fx = start(vec![ClientConfig::new("secret-a", "acme")]).await;
    let issued = fx.token(Some("secret-a")).await.access_token();
    fx.sandbox
        .rotate_client_secret("secret-a", "secret-a2")
        .unwrap();
    assert_eq!(fx.token(Some("secret-a")).await.status, 401);
    // The token issued before the rotation keeps working until replaced.
    assert_eq!(fx.whoami(Some(&issued)).await.status, 200);
    let next = fx.token(Some("secret-a2")).await.access_token();
    assert_eq!(fx.whoami(Some(&issued)).await.status, 401);
    assert_eq!(fx.whoami(Some(&next)).await.status, 200);
    assert_eq!(fx.sandbox.call_counts("secret-a").with_status(401), 1);
    assert_eq!(fx.sandbox.call_counts("secret-a2").with_status(200), 1);
    fx.stop().await;
}

#[tokio::test]
async fn removing_a_client_revokes_its_token_without_replacement() {
    let fx = start(vec![ClientConfig::new("secret-a", "acme")]).await;
    let token = fx.token(Some("secret-a")).await.access_token();
    fx.sandbox.remove_client("secret-a").unwrap();
    assert_eq!(fx.whoami(Some(&token)).await.status, 401);
    assert_eq!(fx.token(Some("secret-a")).await.status, 401);
    assert_eq!(
        fx.sandbox.remove_client("secret-a"),
        Err(AdminError::UnknownClient)
    );
    fx.stop().await;
}

#[tokio::test]
async fn client_added_at_runtime_can_mint() {
    let fx = start(vec![]).await;
    assert_eq!(fx.token(Some("late")).await.status, 401);
    let name = fx
        .sandbox
        .add_client(ClientConfig::new("late", "acme").with_name("late-client"))
        .unwrap();
    assert_eq!(name, "late-client");
    assert_eq!(fx.token(Some("late")).await.status, 200);
    let counts = fx.sandbox.call_counts("late");
    assert_eq!((counts.with_status(401), counts.with_status(200)), (1, 1));
    fx.stop().await;
}

#[tokio::test]
async fn call_counts_split_by_status_and_day() {
    let fx = start_at(
        "2026-11-25T23:59:00Z",
        vec![ClientConfig::new("secret-a", "acme")],
    )
    .await;
    fx.token(Some("secret-a")).await;
    fx.token(Some("secret-a")).await;
    fx.clock.advance_by(Duration::from_secs(120));
    fx.token(Some("secret-a")).await;
    fx.token(Some("wrong")).await;
    fx.token(None).await;
    let counts = fx.sandbox.call_counts("secret-a");
    assert_eq!(counts.total, 3);
    assert_eq!(counts.with_status(200), 3);
    assert_eq!(
        counts.on_day(common::at("2026-11-25T00:00:00Z").date_naive()),
        2
    );
    assert_eq!(
        counts.on_day(common::at("2026-11-26T00:00:00Z").date_naive()),
        1
    );
    let total = fx.sandbox.total_call_counts();
    assert_eq!(total.total, 5);
    assert_eq!(total.with_status(401), 2);
    fx.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_minters_sharing_a_secret_leave_exactly_one_live_token() {
    let fx = start(vec![ClientConfig::new("shared", "acme")]).await;
    let mut calls = tokio::task::JoinSet::new();
    for _ in 0..20 {
        let request = fx
            .http
            .get(format!("{}{}", fx.sandbox.url(), clear_sandbox::TOKEN_PATH))
            .header(clear_sandbox::CLIENT_SECRET_HEADER, "shared");
        calls.spawn(async move { common::into_answer(request.send().await.unwrap()).await });
    }
    let tokens: Vec<String> = calls
        .join_all()
        .await
        .iter()
        .map(|answer| answer.access_token())
        .collect();
    let live: Vec<&String> = tokens
        .iter()
        .filter(|t| fx.sandbox.is_token_valid(t))
        .collect();
    assert_eq!(live.len(), 1, "every mint revoked the one before");
    assert_eq!(
        fx.sandbox.current_token("shared").unwrap().token.expose(),
        live[0].as_str()
    );
    assert_eq!(fx.sandbox.call_counts("shared").with_status(200), 20);
    fx.stop().await;
}
