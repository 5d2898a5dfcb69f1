//! The API server goes away right after Clear answered: the token Clear just issued (which
//! revoked the stored one) must not be thrown away. The operator keeps it and writes it once
//! kube-apiserver is back: exactly one call, and the Secret ends with the live token.

use std::{process::Command, time::Duration};

use clear_operator::{reconcile::secret::keys, resource::REGENERATE_ANNOTATION};
use clear_sandbox::{Fault, FaultScope};
use kube::api::{Patch, PatchParams};
use serde_json::json;

use crate::{
    chart_support::repo_root,
    e2e_support::{E2e, data, is_ready_with, with_temp_ns},
};

/// `DIR` of `scripts/control-plane.sh up DIR` (scripts/test.sh sets it).
pub const CONTROL_PLANE_DIR_ENV: &str = "CLEAR_OPERATOR_E2E_CONTROL_PLANE_DIR";

const NAME: &str = "outage";

async fn mark_seen(env: &E2e) -> bool {
    env.cacs
        .get(NAME)
        .await
        .ok()
        .and_then(|cac| cac.status)
        .is_some_and(|s| s.mint_started_at.is_some())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_server_outage_right_after_clear_answers_costs_no_second_call() {
    let _one_at_a_time = crate::exclusive().await;
    let dir = std::env::var(CONTROL_PLANE_DIR_ENV).unwrap_or_else(|_| {
        panic!("{CONTROL_PLANE_DIR_ENV} is not set: the DIR of scripts/control-plane.sh up DIR")
    });
    with_temp_ns(|env| async move {
        env.put_client_secret("clear-secret").await;
        let operator = env.start_operator();
        env.create(NAME, env.spec("clear-secret")).await;
        env.wait_for_cac(NAME, "Ready", |cac| is_ready_with(cac, "True", "Issued"))
            .await;
        let first = env.token_in(NAME).await;
        assert_eq!(env.calls(), 1);

        // Clear mints at once and holds its answer 3 s (inside the harness's 5 s Clear
        // timeout); the API server is killed during that time and stays down 20 s, so the
        // answer arrives while it is gone.
        env.sandbox
            .inject_fault(FaultScope::Global, Fault::Delay(Duration::from_secs(3)), 1);
        env.cacs
            .patch(
                NAME,
                &PatchParams::default(),
                &Patch::Merge(
                    &json!({"metadata": {"annotations": {REGENERATE_ANNOTATION: "outage-1"}}}),
                ),
            )
            .await
            .expect("regenerate requested");
        let deadline = std::time::Instant::now() + Duration::from_secs(120);
        while !mark_seen(&env).await {
            assert!(
                std::time::Instant::now() < deadline,
                "the call was never marked"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let outage = tokio::task::spawn_blocking(move || {
            Command::new(repo_root().join("scripts/apiserver-outage.sh"))
                .args([dir.as_str(), "20"])
                .status()
                .expect("the outage script runs")
        });
        assert!(outage.await.unwrap().success(), "the API server came back");
        assert_eq!(
            env.calls(),
            2,
            "one call, answered while the server was down"
        );

        env.wait_for_secret(
            NAME,
            "the minted token written once the server is back",
            |s| {
                s.and_then(|s| data(s, keys::ACCESS_TOKEN))
                    .is_some_and(|t| t != first)
            },
        )
        .await;
        let token = env.token_in(NAME).await;
        assert!(
            env.sandbox.is_token_valid(&token),
            "the Secret holds Clear's live token"
        );
        env.wait_for_cac(NAME, "Ready on the new token", |cac| {
            is_ready_with(cac, "True", "Issued")
                && cac
                    .status
                    .as_ref()
                    .is_some_and(|s| s.mint_started_at.is_none())
        })
        .await;
        env.wait_settled().await;
        assert_eq!(env.calls(), 2, "no second call after the outage");
        env.assert_no_leaks(&[first, token]).await;
        operator.stop().await;
    })
    .await;
}
