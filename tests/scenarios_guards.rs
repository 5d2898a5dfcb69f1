//! Scenarios where the operator must hold back: missing or rejected client secrets, rate
//! limits, Clear outages, the daily budget, Secrets and client secrets it must not touch,
//! and specs the schema or the operator refuses. Each counts the exact calls to Clear.

mod scenario_kit;

use std::time::Duration;

use clear_operator::reconcile::decide::Policy;
use clear_operator::resource::ClearApiClient;
use clear_sandbox::{ClientConfig, Fault, FaultScope};
use jiff::SignedDuration;
use k8s_openapi::api::core::v1::Secret;
use kube::{
    Api, CustomResourceExt,
    api::{DynamicObject, PostParams},
};
use scenario_kit::{Kit, KitOptions, common};
use serde_json::json;

const SECRET: &str = "cs-guards-0001";

fn client() -> ClientConfig {
    ClientConfig::new(SECRET, "ws-1").with_lifetime(Duration::from_secs(12 * 3600))
}

/// The resource `billing` reading [`SECRET`] from `clear-secret`, not reconciled yet.
async fn kit_with_billing() -> Kit {
    Kit::with_resource(vec![client()], SECRET).await
}

/// `first` and then, a second later (creation timestamps have second precision), `second`,
/// both reading [`SECRET`] from `clear-secret`; neither reconciled yet.
async fn kit_with_two_resources_sharing_the_secret() -> Kit {
    let kit = Kit::with_client_secret(vec![client()], SECRET).await;
    kit.create("first", kit.spec("clear-secret")).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    kit.create("second", kit.spec("clear-secret")).await;
    kit
}

#[tokio::test]
async fn missing_client_secret_makes_no_call_and_recovers_when_created() {
    let kit = Kit::start(vec![client()]).await;
    kit.create("billing", kit.spec("clear-secret")).await;
    kit.reconcile_times("billing", 3).await;
    assert_eq!(kit.all_calls(), 0);
    assert_eq!(
        kit.ready("billing").await,
        ("False".into(), "ClientSecretMissing".into())
    );

    kit.put_client_secret("clear-secret", "wrongKey", SECRET)
        .await;
    kit.reconcile_times("billing", 2).await;
    assert_eq!(kit.all_calls(), 0, "a missing key is missing too");
    assert_eq!(kit.ready("billing").await.1, "ClientSecretMissing");

    kit.put_client_secret("clear-secret", "clientSecret", "")
        .await;
    kit.reconcile("billing").await;
    assert_eq!(kit.all_calls(), 0, "an empty key is missing too");

    kit.put_client_secret("clear-secret", "clientSecret", SECRET)
        .await;
    kit.reconcile_times("billing", 2).await;
    assert_eq!(kit.calls(SECRET), 1);
    assert_eq!(kit.ready("billing").await, ("True".into(), "Issued".into()));
    let warnings = kit.warnings("billing", "ClientSecretMissing");
    assert_eq!(warnings.len(), 1, "told once, not on every reconcile");
    kit.token_in("billing").await;
    kit.finish().await;
}

#[tokio::test]
async fn an_oversized_or_binary_client_secret_is_reported_never_sent_and_recovers() {
    let kit = Kit::start(vec![client()]).await;
    kit.create("billing", kit.spec("clear-secret")).await;
    // A tenant points the resource at a key of 5,000 bytes: refused by size, not read into a
    // header, and the message names the limit, not the value.
    let oversized = format!("{SECRET}{}", "x".repeat(5000));
    kit.remember(&oversized);
    kit.put_client_secret("clear-secret", "clientSecret", &oversized)
        .await;
    kit.reconcile_times("billing", 2).await;
    assert_eq!(kit.all_calls(), 0);
    assert_eq!(
        kit.ready("billing").await,
        ("False".into(), "ClientSecretInvalid".into())
    );
    let message = scenario_kit::ready_message(&kit.get("billing").await);
    assert!(
        message.contains("5014 bytes") && message.contains("4096"),
        "{message}"
    );
    assert_eq!(kit.warnings("billing", "ClientSecretInvalid").len(), 1);

    kit.put_client_secret("clear-secret", "clientSecret", SECRET)
        .await;
    kit.reconcile_times("billing", 2).await;
    assert_eq!(kit.calls(SECRET), 1);
    assert_eq!(kit.ready("billing").await, ("True".into(), "Issued".into()));
    kit.finish().await;
}

#[tokio::test]
async fn rejected_client_secret_is_not_retried_until_it_changes() {
    let kit = Kit::start(vec![client()]).await;
    const UNKNOWN: &str = "cs-guards-unknown";
    kit.put_client_secret("clear-secret", "clientSecret", UNKNOWN)
        .await;
    kit.create("billing", kit.spec("clear-secret")).await;
    kit.reconcile("billing").await;
    assert_eq!(kit.calls(UNKNOWN), 1);
    assert_eq!(
        kit.ready("billing").await,
        ("False".into(), "ClientSecretRejected".into())
    );

    for _ in 0..6 {
        kit.advance(SignedDuration::from_mins(10));
        kit.reconcile("billing").await;
    }
    assert_eq!(kit.calls(UNKNOWN), 1, "no retry storm with the same secret");

    kit.put_client_secret("clear-secret", "clientSecret", SECRET)
        .await;
    kit.reconcile_times("billing", 2).await;
    assert_eq!(kit.calls(SECRET), 1, "a new secret is tried at once");
    assert_eq!(kit.ready("billing").await, ("True".into(), "Issued".into()));
    kit.token_in("billing").await;
    kit.finish().await;
}

#[tokio::test]
async fn rate_limit_waits_until_midnight_utc_without_calls() {
    let kit = Kit::with_resource(vec![client().with_daily_quota(1)], SECRET).await;
    kit.reconcile("billing").await;
    let first = kit.token_in("billing").await;

    kit.regenerate("billing", "again").await;
    kit.reconcile("billing").await;
    assert_eq!(kit.calls(SECRET), 2, "the second call is refused with 429");
    let status = kit.status("billing").await;
    // NB: the daily quota resets at 00:00 UTC; each resource waits a few minutes more of
    // its own, so that resources refused together do not all call at 00:00:00.
    let retry = status.next_retry_time.unwrap().0;
    let midnight: jiff::Timestamp = "2026-11-26T00:00:00Z".parse().unwrap();
    assert!(
        retry >= midnight && retry < midnight + SignedDuration::from_mins(5),
        "{retry}"
    );
    assert_eq!(
        kit.ready("billing").await,
        ("True".into(), "RateLimited".into())
    );
    assert!(
        kit.sandbox.is_token_valid(&first),
        "the failed call left the old token in place"
    );
    assert_eq!(kit.token_in("billing").await, first);

    kit.set_time(&(retry - SignedDuration::from_secs(1)).to_string());
    kit.reconcile_times("billing", 3).await;
    assert_eq!(
        kit.calls(SECRET),
        2,
        "no call before the reset and this resource's jitter"
    );

    kit.set_time(&retry.to_string());
    kit.reconcile_times("billing", 2).await;
    assert_eq!(kit.calls(SECRET), 3, "one call once the quota reset");
    assert_eq!(kit.ready("billing").await, ("True".into(), "Issued".into()));
    kit.token_in("billing").await;
    kit.finish().await;
}

#[tokio::test]
async fn server_errors_are_retried_with_growing_backoff_and_recover() {
    let kit = kit_with_billing().await;
    kit.sandbox
        .inject_fault(FaultScope::Secret(SECRET.into()), Fault::ServerError, 3);

    kit.reconcile("billing").await;
    assert_eq!(kit.calls(SECRET), 1);
    assert_eq!(
        kit.ready("billing").await,
        ("False".into(), "ClearUnavailable".into())
    );
    let mut previous_wait = SignedDuration::ZERO;
    for attempt in 2..=4 {
        let wait = kit.retry_wait("billing").await;
        assert!(
            wait > previous_wait,
            "backoff grows: {wait:?} after {previous_wait:?}"
        );
        previous_wait = wait;
        kit.reconcile_times("billing", 2).await;
        assert_eq!(kit.calls(SECRET), attempt - 1, "no call during the backoff");
        kit.advance(wait);
        kit.reconcile("billing").await;
        assert_eq!(kit.calls(SECRET), attempt);
    }
    assert_eq!(kit.ready("billing").await, ("True".into(), "Issued".into()));
    let status = kit.status("billing").await;
    assert_eq!(status.failed_attempts, 0);
    assert_eq!(status.mints_today, 4);
    kit.token_in("billing").await;
    kit.finish().await;
}

#[tokio::test]
async fn lost_answer_presumes_the_token_revoked_and_replaces_it_after_the_backoff() {
    let kit = Kit::with_resource_and(
        KitOptions {
            clients: vec![client()],
            clear_timeout: Duration::from_millis(500),
            ..KitOptions::default()
        },
        SECRET,
    )
    .await;
    kit.reconcile("billing").await;
    let first = kit.token_in("billing").await;

    // Clear mints (revoking the stored token) but the answer arrives after the timeout.
    let delay = Fault::Delay(Duration::from_millis(1500));
    kit.sandbox
        .inject_fault(FaultScope::Secret(SECRET.into()), delay, 1);
    kit.regenerate("billing", "slow").await;
    kit.reconcile("billing").await;
    assert_eq!(kit.calls(SECRET), 2);
    assert!(
        !kit.sandbox.is_token_valid(&first),
        "Clear did mint and revoke"
    );
    assert_eq!(
        kit.ready("billing").await,
        ("False".into(), "ClearUnavailable".into())
    );
    let status = kit.status("billing").await;
    assert!(
        status.mint_started_at.is_some(),
        "the lost outcome is remembered"
    );

    kit.reconcile_times("billing", 2).await;
    assert_eq!(kit.calls(SECRET), 2, "no call during the backoff");
    kit.advance(SignedDuration::from_mins(1));
    kit.reconcile_times("billing", 2).await;
    assert_eq!(kit.calls(SECRET), 3, "one replacement after the backoff");
    let replaced = kit.token_in("billing").await;
    assert!(kit.sandbox.is_token_valid(&replaced));
    assert_eq!(kit.ready("billing").await, ("True".into(), "Issued".into()));
    kit.finish().await;
}

#[tokio::test]
async fn a_secret_that_cannot_be_written_costs_no_call_and_backs_off() {
    let kit = kit_with_billing().await;
    // An admission webhook or quota refusing the Secret, three attempts in a row.
    kit.emulator.faults().fail_next("patch", "secrets", 3, 403);
    kit.reconcile("billing").await;
    assert_eq!(
        kit.calls(SECRET),
        0,
        "the dry run failed: Clear is not called"
    );
    assert!(kit.target("billing").await.is_none());
    assert_eq!(
        kit.ready("billing").await,
        ("False".into(), "SecretApplyFailed".into())
    );
    kit.reconcile_times("billing", 3).await;
    for _ in 0..2 {
        let wait = kit.retry_wait("billing").await;
        kit.advance(wait);
        kit.reconcile("billing").await;
        assert_eq!(kit.calls(SECRET), 0, "each retry is a dry run again");
    }
    // The Secret can be written again: one call.
    kit.advance(kit.retry_wait("billing").await);
    kit.reconcile_times("billing", 2).await;
    assert_eq!(kit.calls(SECRET), 1);
    let token = kit.token_in("billing").await;
    assert!(kit.sandbox.is_token_valid(&token));
    assert_eq!(kit.ready("billing").await, ("True".into(), "Issued".into()));
    kit.finish().await;
}

#[tokio::test]
async fn exhausted_daily_budget_makes_no_call_and_keeps_the_valid_token_ready() {
    let kit = Kit::with_resource_and(
        KitOptions {
            clients: vec![client()],
            policy: Policy {
                mint_budget: 2,
                ..Policy::default()
            },
            ..KitOptions::default()
        },
        SECRET,
    )
    .await;
    kit.reconcile("billing").await;
    kit.regenerate("billing", "one").await;
    kit.reconcile("billing").await;
    assert_eq!(kit.calls(SECRET), 2);

    kit.regenerate("billing", "two").await;
    kit.reconcile_times("billing", 3).await;
    assert_eq!(kit.calls(SECRET), 2, "budget spent: no call");
    assert_eq!(
        kit.ready("billing").await,
        ("True".into(), "BudgetExhausted".into())
    );

    kit.set_time("2026-11-26T00:00:00Z");
    kit.reconcile("billing").await;
    assert_eq!(
        kit.calls(SECRET),
        3,
        "the budget rolls over with the UTC day"
    );
    kit.token_in("billing").await;
    kit.finish().await;
}

#[tokio::test]
async fn unowned_target_secret_is_a_target_conflict_and_stays_byte_identical() {
    let kit = Kit::with_client_secret(vec![client()], SECRET).await;
    let foreign: Secret = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "billing", "namespace": "default", "labels": {"app": "other"}},
        "stringData": {"accessToken": "somebody-elses"},
    }))
    .unwrap();
    kit.secrets
        .create(&PostParams::default(), &foreign)
        .await
        .unwrap();
    let before = kit
        .emulator
        .object("secrets", Some("default"), "billing")
        .unwrap();

    kit.create("billing", kit.spec("clear-secret")).await;
    kit.reconcile_times("billing", 3).await;
    assert_eq!(kit.all_calls(), 0);
    assert_eq!(
        kit.ready("billing").await,
        ("False".into(), "TargetConflict".into())
    );
    let after = kit
        .emulator
        .object("secrets", Some("default"), "billing")
        .unwrap();
    assert_eq!(
        before, after,
        "the foreign Secret is untouched, resourceVersion included"
    );
    kit.finish().await;
}

#[tokio::test]
async fn two_resources_sharing_a_client_secret_mint_once_and_the_newer_conflicts() {
    let kit = kit_with_two_resources_sharing_the_secret().await;

    kit.reconcile("first").await;
    kit.reconcile_times("second", 3).await;
    kit.reconcile_times("first", 2).await;
    assert_eq!(kit.calls(SECRET), 1, "one call in total");
    assert_eq!(kit.ready("first").await, ("True".into(), "Issued".into()));
    assert_eq!(
        kit.ready("second").await,
        ("False".into(), "Conflict".into())
    );
    assert!(kit.target("second").await.is_none());
    let token = kit.token_in("first").await;
    assert!(kit.sandbox.is_token_valid(&token));
    kit.finish().await;
}

#[tokio::test]
async fn a_newer_resource_that_minted_first_keeps_the_secret_and_the_older_one_conflicts() {
    let kit = kit_with_two_resources_sharing_the_secret().await;

    // The older one has never been reconciled: the newer one mints and its token is in
    // use; taking the secret over would revoke it, so the older one yields.
    kit.reconcile("second").await;
    let in_use = kit.token_in("second").await;
    kit.reconcile_times("first", 2).await;
    kit.reconcile_times("second", 2).await;
    kit.reconcile("first").await;
    assert_eq!(kit.ready("second").await, ("True".into(), "Issued".into()));
    assert_eq!(
        kit.ready("first").await,
        ("False".into(), "Conflict".into())
    );
    assert_eq!(kit.calls(SECRET), 1, "one call in total");
    assert_eq!(kit.token_in("second").await, in_use);
    assert!(
        kit.sandbox.is_token_valid(&in_use),
        "the holder's token is live"
    );
    assert!(kit.target("first").await.is_none());
    kit.finish().await;
}

#[tokio::test]
async fn an_older_resource_whose_secret_appears_later_with_the_same_value_yields_to_the_holder() {
    let kit = Kit::start(vec![client()]).await;
    // A (older) points at a Secret that does not exist yet.
    kit.create("a", kit.spec("secret-a")).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    kit.reconcile("a").await;
    assert_eq!(
        kit.ready("a").await,
        ("False".into(), "ClientSecretMissing".into())
    );
    // B (newer) has its own Secret and mints.
    kit.put_client_secret("secret-b", "clientSecret", SECRET)
        .await;
    kit.create("b", kit.spec("secret-b")).await;
    kit.reconcile("b").await;
    let b_token = kit.token_in("b").await;
    assert_eq!(kit.calls(SECRET), 1);
    // A's Secret appears, holding the same client secret.
    kit.put_client_secret("secret-a", "clientSecret", SECRET)
        .await;
    kit.reconcile_times("a", 3).await;
    kit.reconcile_times("b", 2).await;

    assert_eq!(kit.ready("a").await, ("False".into(), "Conflict".into()));
    let (_, _, message) = kit.ready_with_message("a").await;
    assert!(message.contains("ClearApiClient b"), "{message}");
    assert_eq!(kit.ready("b").await, ("True".into(), "Issued".into()));
    assert_eq!(kit.calls(SECRET), 1, "1 call in total");
    assert_eq!(kit.token_in("b").await, b_token);
    assert!(
        kit.sandbox.is_token_valid(&b_token),
        "B's token is still live"
    );
    assert!(kit.target("a").await.is_none(), "A wrote no Secret");
    kit.finish().await;
}

#[tokio::test]
async fn a_conflict_with_a_resource_in_another_namespace_does_not_name_it() {
    let kit = Kit::start(vec![client()]).await;
    let other_ns = "payroll-team";
    scenario_kit::create_namespace(&kit.client, other_ns).await;
    // The holder lives in the other namespace.
    let other_secrets: Api<Secret> = Api::namespaced(kit.client.clone(), other_ns);
    let hidden = common::client_secret("hidden-secret", None, "clientSecret", SECRET);
    other_secrets
        .create(&PostParams::default(), &hidden)
        .await
        .unwrap();
    let other_cacs: Api<ClearApiClient> = Api::namespaced(kit.client.clone(), other_ns);
    let holder = common::resource(
        "confidential-project",
        Some(other_ns),
        json!({}),
        kit.spec("hidden-secret"),
    );
    other_cacs
        .create(&PostParams::default(), &holder)
        .await
        .unwrap();
    kit.wait_in_directory_of(other_ns, "confidential-project")
        .await;
    let obj = other_cacs.get("confidential-project").await.unwrap();
    clear_operator::reconcile::reconcile(std::sync::Arc::new(obj), kit.ctx.clone())
        .await
        .unwrap();
    assert_eq!(kit.calls(SECRET), 1);

    kit.put_client_secret("clear-secret", "clientSecret", SECRET)
        .await;
    kit.create("billing", kit.spec("clear-secret")).await;
    kit.reconcile_times("billing", 2).await;
    let (status, reason, message) = kit.ready_with_message("billing").await;
    assert_eq!((status.as_str(), reason.as_str()), ("False", "Conflict"));
    assert!(message.contains("another ClearApiClient"), "{message}");
    let events: Vec<String> = kit.events("billing").into_iter().map(|e| e.2).collect();
    for text in events.iter().chain([&message]) {
        assert!(
            !text.contains(other_ns) && !text.contains("confidential-project"),
            "the other namespace and name stay hidden: {text}"
        );
    }
    assert_eq!(
        kit.calls(SECRET),
        1,
        "the conflicting resource made no call"
    );
    kit.finish().await;
}

#[tokio::test]
async fn plain_http_base_url_is_an_invalid_spec_without_allow_http() {
    let kit = kit_with_billing().await;
    let strict = kit.new_context(Policy::default());
    let strict = {
        let mut ctx = std::sync::Arc::try_unwrap(strict).ok().unwrap();
        ctx.settings.allow_http = false;
        std::sync::Arc::new(ctx)
    };
    let obj = kit.get("billing").await;
    clear_operator::reconcile::reconcile(std::sync::Arc::new(obj), strict)
        .await
        .unwrap();
    assert_eq!(kit.all_calls(), 0);
    assert_eq!(
        kit.ready("billing").await,
        ("False".into(), "InvalidSpec".into())
    );
    kit.finish().await;
}

#[tokio::test]
async fn invalid_specs_are_rejected_by_the_schema() {
    let kit = Kit::start(vec![client()]).await;
    let raw: Api<DynamicObject> = Api::namespaced_with(
        kit.client.clone(),
        "default",
        &ClearApiClient::api_resource(),
    );
    let cases = [
        (
            "no-products",
            json!({"environment": "sandbox", "workspace": "w", "products": [], "clientSecretRef": {"name": "s"}}),
        ),
        (
            "bad-env",
            json!({"environment": "staging", "workspace": "w", "products": ["GST"], "clientSecretRef": {"name": "s"}}),
        ),
        (
            "product-with-punctuation",
            json!({"environment": "sandbox", "workspace": "w", "products": ["GST,TDS"], "clientSecretRef": {"name": "s"}}),
        ),
        (
            "ksa-no-url",
            json!({"environment": "production", "region": "ksa", "workspace": "w", "products": ["GST"], "clientSecretRef": {"name": "s"}}),
        ),
        (
            "bad-duration",
            json!({"environment": "sandbox", "workspace": "w", "products": ["GST"], "clientSecretRef": {"name": "s"}, "renewBefore": "1 day"}),
        ),
        (
            "empty-workspace",
            json!({"environment": "sandbox", "workspace": "", "products": ["GST"], "clientSecretRef": {"name": "s"}}),
        ),
    ];
    for (name, spec) in cases {
        let obj: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "clear-operator.io/v1alpha1", "kind": "ClearApiClient",
            "metadata": {"name": name, "namespace": "default"}, "spec": spec,
        }))
        .unwrap();
        let result = raw.create(&PostParams::default(), &obj).await;
        match result {
            Err(kube::Error::Api(status)) => assert_eq!(status.code, 422, "{name}: {status:?}"),
            other => panic!(
                "{name} should be rejected, got {:?}",
                other.map(|o| o.metadata.name)
            ),
        }
    }
    assert_eq!(kit.all_calls(), 0);
    kit.shutdown().await;
}

#[tokio::test]
async fn kubernetes_api_failures_back_off_per_resource_and_warn_once_per_streak() {
    use clear_operator::reconcile;
    use std::sync::Arc;

    let kit = kit_with_billing().await;
    kit.reconcile("billing").await;
    assert_eq!(kit.calls(SECRET), 1);

    // Reading the client secret fails three times in a row (a flaky or forbidden API).
    kit.emulator.faults().fail_next("get", "secrets", 3, 500);
    let obj = Arc::new(kit.get("billing").await);
    for expected_streak in 1..=3 {
        let result = reconcile::reconcile(obj.clone(), kit.ctx.clone()).await;
        assert!(result.is_err(), "the injected 500 fails the reconcile");
        assert_eq!(
            kit.ctx.memory.failure_streak(scenario_kit::NS, "billing"),
            expected_streak
        );
    }
    let warnings = kit.warnings("billing", "ReconcileFailed");
    assert_eq!(warnings.len(), 1, "one Warning per streak: {warnings:?}");
    assert!(
        warnings[0].contains("failed to read client secret Secret clear-secret"),
        "{warnings:?}"
    );

    kit.reconcile("billing").await;
    assert_eq!(
        kit.ctx.memory.failure_streak(scenario_kit::NS, "billing"),
        0
    );
    assert_eq!(kit.calls(SECRET), 1, "API failures never cause a mint");
    kit.finish().await;
}

#[test]
fn retry_delays_double_from_five_seconds_up_to_five_minutes() {
    use clear_operator::reconcile::retry_delay;
    let secs: Vec<u64> = (1..=9).map(|n| retry_delay(n, true).as_secs()).collect();
    assert_eq!(secs, [5, 10, 20, 40, 80, 160, 300, 300, 300]);
    assert_eq!(retry_delay(u32::MAX, true).as_secs(), 300);
    assert_eq!(
        retry_delay(1, false).as_secs(),
        600,
        "permanent errors wait for a change"
    );
}

#[tokio::test]
async fn a_clear_clock_behind_the_clusters_counts_the_life_on_clears_clock_instead_of_minting_in_a_loop()
 {
    let kit = Kit::start(vec![
        ClientConfig::new(SECRET, "ws-1").with_lifetime(Duration::from_secs(60)),
    ])
    .await;
    // Clear's clock is two hours behind: on the cluster's clock, every token it mints
    // "expired" before it was issued. Its life is counted on Clear's clock instead.
    kit.set_clear_time("2026-11-25T08:00:00Z");
    kit.put_client_secret("clear-secret", "clientSecret", SECRET)
        .await;
    kit.create("billing", kit.spec("clear-secret")).await;
    kit.reconcile_times("billing", 3).await;
    assert_eq!(kit.calls(SECRET), 1);
    assert_eq!(kit.ready("billing").await, ("True".into(), "Issued".into()));
    let status = kit.status("billing").await;
    assert_eq!(
        status.valid_till.map(|t| t.0),
        Some("2026-11-25T10:01:00Z".parse().unwrap()),
        "the minute Clear gives, from when the answer arrived"
    );
    // Renewal at two thirds of that minute; before it, any number of reconciles costs nothing.
    for _ in 0..39 {
        kit.clock.advance(SignedDuration::from_secs(1));
        kit.reconcile("billing").await;
    }
    assert_eq!(kit.calls(SECRET), 1, "no mint loop");
    kit.clock.advance(SignedDuration::from_secs(1));
    kit.reconcile_times("billing", 3).await;
    assert_eq!(kit.calls(SECRET), 2, "one renewal per clamped lifetime");
    kit.finish().await;
}

#[tokio::test]
async fn after_a_rejection_correcting_the_configuration_retries_once_without_a_secret_change() {
    // Another Clear host that does not know this client secret (a production secret sent
    // to the sandbox host, or the other way round): it answers 401.
    let wrong_host = clear_sandbox::Sandbox::start(clear_sandbox::SandboxConfig::new(vec![]))
        .await
        .unwrap();
    let kit = Kit::start_with(KitOptions {
        clients: vec![client()],
        also_allowed: vec![wrong_host.url().to_string()],
        ..KitOptions::default()
    })
    .await;
    kit.put_client_secret("clear-secret", "clientSecret", SECRET)
        .await;
    let mut spec = kit.spec("clear-secret");
    spec["baseUrl"] = json!(wrong_host.url());
    kit.create("billing", spec).await;
    kit.reconcile_times("billing", 3).await;
    assert_eq!(wrong_host.call_counts(SECRET).total, 1, "one rejected call");
    assert_eq!(
        kit.ready("billing").await,
        ("False".into(), "ClientSecretRejected".into())
    );
    // Correcting the spec is enough: no need to change the client secret.
    kit.patch_spec("billing", json!({"baseUrl": kit.url()}))
        .await;
    kit.reconcile_times("billing", 3).await;
    assert_eq!(wrong_host.call_counts(SECRET).total, 1);
    assert_eq!(kit.calls(SECRET), 1, "one call to the right host");
    assert_eq!(kit.ready("billing").await, ("True".into(), "Issued".into()));
    let token = kit.token_in("billing").await;
    assert!(kit.sandbox.is_token_valid(&token));
    kit.assert_no_leaks();
    let _ = wrong_host.shutdown().await;
    kit.shutdown().await;
}

#[tokio::test]
async fn a_trailing_slash_on_the_base_url_is_not_a_configuration_change() {
    let kit = kit_with_billing().await;
    kit.reconcile("billing").await;
    let token = kit.token_in("billing").await;
    kit.patch_spec("billing", json!({"baseUrl": format!("{}/", kit.url())}))
        .await;
    kit.reconcile_times("billing", 3).await;
    assert_eq!(kit.calls(SECRET), 1, "the same host: no call");
    assert_eq!(kit.token_in("billing").await, token);
    assert_eq!(kit.ready("billing").await, ("True".into(), "Issued".into()));
    kit.finish().await;
}

#[tokio::test]
async fn a_replica_without_the_lease_writes_nothing_and_publishes_no_event() {
    let kit = Kit::start(vec![
        ClientConfig::new("cs-fenced-0001", "ws-1").with_lifetime(Duration::from_secs(3600)),
    ])
    .await;
    kit.put_client_secret("clear-secret", "clientSecret", "cs-fenced-0001")
        .await;
    kit.create("billing", kit.spec("clear-secret")).await;
    kit.reconcile("billing").await;
    let token = kit.token_in("billing").await;
    let status = kit.get("billing").await.status;
    let events = kit.events("billing").len();

    // Leadership is required from now on and was never granted (or was lost); a regenerate
    // request and a failing read both want to write or tell.
    kit.ctx.fence.require_lease();
    kit.regenerate("billing", "r1").await;
    let obj = std::sync::Arc::new(kit.get("billing").await);
    let result = clear_operator::reconcile::reconcile(obj, kit.ctx.clone()).await;
    assert!(
        matches!(result, Err(clear_operator::reconcile::Error::NotLeader(_))),
        "{result:?}"
    );
    assert_eq!(kit.calls("cs-fenced-0001"), 1, "no call without the lease");
    assert_eq!(kit.token_in("billing").await, token, "the Secret untouched");
    assert_eq!(kit.get("billing").await.status, status, "status untouched");
    assert_eq!(kit.events("billing").len(), events, "no Event either");
    kit.shutdown().await;
}
