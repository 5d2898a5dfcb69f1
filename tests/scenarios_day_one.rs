//! Day one in a real Clear account (issue 23): Clear's real answer may differ from its
//! documentation. A 200 that carries a token is a minted token (the previous one is revoked
//! already), so it is kept and served whatever else is odd about the body; a body with no
//! usable token costs a few calls a day, not a retry loop. Each counts the calls.

mod scenario_kit;

use clear_operator::resource::REGENERATE_ANNOTATION;
use clear_sandbox::{Fault, FaultScope, OddBody};
use jiff::{SignedDuration, Timestamp};
use scenario_kit::Kit;

const SECRET: &str = "cs-day-one-0001";

/// Regenerates once through an answer of the given shape; returns the kit (2 calls made).
async fn regenerated_through(odd: OddBody) -> Kit {
    let kit = Kit::with_first_token(SECRET).await;
    kit.sandbox
        .inject_fault(FaultScope::Global, Fault::OddBody(odd), 1);
    kit.annotate("billing", REGENERATE_ANNOTATION, "r1").await;
    kit.reconcile_times("billing", 3).await;
    assert_eq!(kit.calls(SECRET), 2, "{odd:?}: one call, never a second");
    kit
}

/// The Secret serves the live token, Ready with `reason`; returns the status.
async fn assert_served(
    kit: &Kit,
    odd: OddBody,
    reason: &str,
) -> clear_operator::resource::ClearApiClientStatus {
    let token = kit.token_in("billing").await;
    assert!(
        kit.sandbox.is_token_valid(&token),
        "{odd:?}: the live token"
    );
    assert_eq!(
        kit.ready("billing").await,
        ("True".into(), reason.into()),
        "{odd:?}"
    );
    kit.get("billing").await.status.unwrap()
}

#[tokio::test]
async fn a_token_under_an_undocumented_key_or_longer_than_documented_is_served() {
    for odd in [OddBody::CamelCaseKey, OddBody::LongToken] {
        let kit = regenerated_through(odd).await;
        let status = assert_served(&kit, odd, "Issued").await;
        assert_eq!(
            status.valid_till.map(|t| t.0),
            Some(kit.now() + SignedDuration::from_hours(12)),
            "{odd:?}: Clear's own expiry"
        );
        kit.assert_no_leaks();
        kit.shutdown().await;
    }
}

#[tokio::test]
async fn a_token_without_a_readable_expiry_is_served_with_a_short_assumed_life() {
    for odd in [OddBody::NoOffset, OddBody::NoValidTill] {
        let kit = regenerated_through(odd).await;
        let issued = kit.now();
        let status = assert_served(&kit, odd, "ExpiryAssumed").await;
        assert_eq!(
            status.valid_till.map(|t| t.0),
            Some(issued + SignedDuration::from_hours(1)),
            "{odd:?}: one hour assumed, never 'never expires'"
        );
        assert!(status.expiry_assumed.is_some(), "{odd:?}");
        assert_eq!(kit.warnings("billing", "ExpiryAssumed").len(), 1, "{odd:?}");
        // Renewed before the assumed expiry; a documented answer then clears the assumption.
        kit.advance(SignedDuration::from_mins(50));
        kit.reconcile_times("billing", 2).await;
        assert_eq!(
            kit.calls(SECRET),
            3,
            "{odd:?}: renewed before the hour ends"
        );
        assert_eq!(
            kit.ready("billing").await,
            ("True".into(), "Issued".into()),
            "{odd:?}"
        );
        assert_eq!(
            kit.get("billing").await.status.unwrap().expiry_assumed,
            None
        );
        kit.shutdown().await;
    }
}

#[tokio::test]
async fn answers_without_a_usable_token_cost_three_calls_a_day_not_a_loop() {
    for fault in [
        Fault::OddBody(OddBody::NoToken),
        Fault::OddBody(OddBody::Html),
        Fault::OddBody(OddBody::Empty),
        Fault::MalformedBody,
    ] {
        let kit = Kit::with_first_token(SECRET).await;
        kit.sandbox
            .inject_fault(FaultScope::Global, fault.clone(), 10_000);
        kit.annotate("billing", REGENERATE_ANNOTATION, "r1").await;
        kit.reconcile("billing").await;
        let midnight: Timestamp = "2026-11-26T00:00:00Z".parse().unwrap();
        for _ in 0..50 {
            let next = kit.get("billing").await.status.unwrap().next_retry_time;
            let Some(next) = next.map(|t| t.0).filter(|t| *t < midnight) else {
                break;
            };
            kit.set_time(&next.to_string());
            kit.reconcile_times("billing", 2).await;
        }
        assert_eq!(
            kit.calls(SECRET),
            1 + 3,
            "{fault:?}: three answers without a token, then nothing before the next day"
        );
        let cac = kit.get("billing").await;
        let status = cac.status.clone().unwrap();
        let retry = status.next_retry_time.unwrap().0;
        assert!(
            retry >= midnight && retry < midnight + SignedDuration::from_mins(5),
            "{fault:?}: {retry}"
        );
        assert_eq!(
            kit.ready("billing").await,
            ("False".into(), "ClearResponseInvalid".into()),
            "{fault:?}: a call that may have minted: the stored token may be revoked"
        );
        let warnings = kit.warnings("billing", "ClearResponseInvalid");
        assert!(
            warnings
                .last()
                .is_some_and(|w| w.contains("not called again before")),
            "{fault:?}: the owner is told why it stops: {warnings:?}"
        );
        kit.assert_no_leaks();
        kit.shutdown().await;
    }
}

/// The first token of `Kit::with_first_token` is due for renewal at 18:00 and expires at 22:00.
const RENEWAL_DUE: &str = "2026-11-25T18:00:00Z";

#[tokio::test]
async fn a_suspended_resource_calls_clear_for_nothing_and_says_whether_its_token_lives() {
    let kit = Kit::with_first_token(SECRET).await;
    let token = kit.token_in("billing").await;
    let mut spec = kit.spec("clear-secret");
    spec["suspend"] = serde_json::json!(true);
    kit.patch_spec("billing", spec.clone()).await;
    kit.reconcile_times("billing", 2).await;
    assert_eq!(
        kit.ready("billing").await,
        ("True".into(), "Suspended".into())
    );
    // Past the renewal point, and with a regenerate request: nothing is called.
    kit.set_time(RENEWAL_DUE);
    kit.annotate("billing", REGENERATE_ANNOTATION, "while-suspended")
        .await;
    kit.set_time("2026-11-25T21:59:00Z");
    kit.reconcile_times("billing", 2).await;
    assert_eq!(kit.calls(SECRET), 1, "no renewal, no regeneration");
    assert_eq!(kit.token_in("billing").await, token, "the Secret is kept");
    assert_eq!(
        kit.ready("billing").await,
        ("True".into(), "Suspended".into())
    );
    // Ready tells the truth about the stored token.
    kit.set_time("2026-11-25T22:00:00Z");
    kit.reconcile("billing").await;
    assert_eq!(
        kit.ready("billing").await,
        ("False".into(), "TokenExpired".into())
    );
    let message = scenario_kit::ready_message(&kit.get("billing").await);
    assert!(message.contains("(Suspended)"), "{message}");
    assert_eq!(kit.calls(SECRET), 1);
    // Resumed past its renewal point: exactly one call.
    spec["suspend"] = serde_json::json!(false);
    kit.patch_spec("billing", spec).await;
    kit.reconcile_times("billing", 3).await;
    assert_eq!(kit.calls(SECRET), 2, "one call when resumed");
    assert_eq!(kit.ready("billing").await, ("True".into(), "Issued".into()));
    kit.assert_no_leaks();
    kit.shutdown().await;
}

#[tokio::test]
async fn an_install_in_standby_calls_clear_for_nothing_and_the_active_one_then_renews_once() {
    let kit = Kit::with_first_token(SECRET).await;
    let standby = kit.new_standby_context();
    kit.set_time(RENEWAL_DUE);
    for _ in 0..3 {
        kit.reconcile_in(&standby, "billing")
            .await
            .expect("reconciles");
    }
    assert_eq!(kit.calls(SECRET), 1, "the standby install renews nothing");
    assert_eq!(
        kit.ready("billing").await,
        ("True".into(), "Suspended".into())
    );
    let message = scenario_kit::ready_message(&kit.get("billing").await);
    assert!(message.contains("standby"), "{message}");
    // The same resource under an install that is not in standby (the one that takes over).
    kit.reconcile_times("billing", 2).await;
    assert_eq!(kit.calls(SECRET), 2, "one renewal");
    assert_eq!(kit.ready("billing").await, ("True".into(), "Issued".into()));
    kit.shutdown().await;
}

#[tokio::test]
async fn editing_the_workspace_or_products_rewrites_the_secret_and_mints_nothing() {
    let kit = Kit::with_first_token(SECRET).await;
    let token = kit.token_in("billing").await;
    let before = kit.get("billing").await.status.unwrap().token_config_hash;
    let mut spec = kit.spec("clear-secret");
    // A typo fixed, and the products in the web app's spelling.
    spec["workspace"] = serde_json::json!("ws-1-fixed");
    spec["products"] = serde_json::json!(["GST", "Max ITC", "E-Way Bill", "MAX_ITC"]);
    kit.patch_spec("billing", spec.clone()).await;
    kit.reconcile_times("billing", 3).await;
    assert_eq!(
        kit.calls(SECRET),
        1,
        "Clear is never told the workspace or products"
    );
    let secret = kit.target("billing").await.unwrap();
    assert_eq!(Kit::data(&secret, "workspace"), "ws-1-fixed");
    assert_eq!(Kit::data(&secret, "products"), "GST,MAX_ITC,E_WAY_BILL");
    assert_eq!(kit.token_in("billing").await, token);
    let after = kit.get("billing").await.status.unwrap().token_config_hash;
    assert_ne!(
        after, before,
        "the token is recorded under the new workspace"
    );
    assert_eq!(kit.ready("billing").await, ("True".into(), "Issued".into()));
    // And back: still nothing.
    spec["workspace"] = serde_json::json!("ws-1");
    kit.patch_spec("billing", spec).await;
    kit.reconcile_times("billing", 3).await;
    assert_eq!(kit.calls(SECRET), 1);
    assert_eq!(
        Kit::data(&kit.target("billing").await.unwrap(), "workspace"),
        "ws-1"
    );
    kit.assert_no_leaks();
    kit.shutdown().await;
}

/// The token an ERP minted with the same client secret before the operator came: one call
/// to Clear, made outside the operator.
async fn token_minted_elsewhere(kit: &Kit) -> clear_operator::clear::IssuedToken {
    use clear_operator::clear::{ClearClient, ClearClientConfig, ClientSecret, parse_base_url};
    let client = ClearClient::new(ClearClientConfig::default()).expect("a Clear client");
    let issued = client
        .mint(
            &parse_base_url(&kit.url()).unwrap(),
            &ClientSecret::new(SECRET.into()),
            kit.now(),
        )
        .await
        .expect("the ERP's token");
    kit.remember(issued.token.expose());
    issued
}

async fn put_adoptable(kit: &Kit, token: &str, valid_till: Option<&str>) {
    let mut data = serde_json::Map::new();
    data.insert("accessToken".into(), token.into());
    if let Some(till) = valid_till {
        data.insert("validTill".into(), till.into());
    }
    let secret: k8s_openapi::api::core::v1::Secret = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "erp-token", "namespace": scenario_kit::NS},
        "stringData": data,
    }))
    .unwrap();
    kit.secrets
        .create(&Default::default(), &secret)
        .await
        .expect("the Secret to adopt from");
}

async fn kit_before_adoption() -> Kit {
    let kit = Kit::start(vec![
        clear_sandbox::ClientConfig::new(SECRET, "ws-1")
            .with_lifetime(std::time::Duration::from_secs(12 * 3600)),
    ])
    .await;
    kit.put_client_secret("clear-secret", "clientSecret", SECRET)
        .await;
    kit
}

#[tokio::test]
async fn the_token_in_use_is_adopted_with_no_call_and_renewed_at_its_renewal_point() {
    let kit = kit_before_adoption().await;
    let erp = token_minted_elsewhere(&kit).await;
    let till = erp.valid_till.expect("12 h tokens").to_string();
    put_adoptable(&kit, erp.token.expose(), Some(&till)).await;
    let mut spec = kit.spec("clear-secret");
    spec["adoptFrom"] = serde_json::json!({"name": "erp-token"});
    kit.create("billing", spec).await;
    kit.reconcile_times("billing", 3).await;
    assert_eq!(kit.calls(SECRET), 1, "only the ERP's own call");
    assert_eq!(kit.token_in("billing").await, erp.token.expose());
    assert!(
        kit.sandbox.is_token_valid(erp.token.expose()),
        "not revoked"
    );
    assert_eq!(
        kit.ready("billing").await,
        ("True".into(), "Adopted".into())
    );
    let status = kit.get("billing").await.status.unwrap();
    assert_eq!(status.adopted_from.as_deref(), Some("erp-token"));
    assert_eq!(status.valid_till.map(|t| t.0.to_string()), Some(till));
    assert!(
        kit.event_reasons("billing")
            .contains(&"Adopted".to_string()),
        "a Normal Event says so"
    );
    // Served until its renewal point (a third of its life before expiry), then one call.
    kit.set_time("2026-11-25T17:59:00Z");
    kit.reconcile_times("billing", 2).await;
    assert_eq!(kit.calls(SECRET), 1);
    kit.set_time("2026-11-25T18:00:00Z");
    kit.reconcile_times("billing", 2).await;
    assert_eq!(kit.calls(SECRET), 2, "renewed once, at the renewal point");
    assert_eq!(kit.ready("billing").await, ("True".into(), "Issued".into()));
    assert_eq!(kit.get("billing").await.status.unwrap().adopted_from, None);
    kit.assert_no_leaks();
    kit.shutdown().await;
}

#[tokio::test]
async fn a_token_to_adopt_without_its_expiry_waits_instead_of_revoking_it() {
    let kit = kit_before_adoption().await;
    let erp = token_minted_elsewhere(&kit).await;
    put_adoptable(&kit, erp.token.expose(), None).await;
    let mut spec = kit.spec("clear-secret");
    spec["adoptFrom"] = serde_json::json!({"name": "erp-token"});
    kit.create("billing", spec).await;
    kit.reconcile_times("billing", 3).await;
    assert_eq!(
        kit.calls(SECRET),
        1,
        "no mint: it would revoke the token in use"
    );
    assert!(kit.sandbox.is_token_valid(erp.token.expose()));
    assert_eq!(
        kit.ready("billing").await,
        ("False".into(), "InvalidSpec".into())
    );
    let message = scenario_kit::ready_message(&kit.get("billing").await);
    assert!(message.contains("validTill"), "{message}");
    kit.assert_no_leaks();
    kit.shutdown().await;
}

/// A pod in the kit's namespace whose container mounts `volume` (at `sub_path`, if any).
async fn create_pod(kit: &Kit, name: &str, volume: serde_json::Value, sub_path: Option<&str>) {
    use k8s_openapi::api::core::v1::Pod;
    let mut mount = serde_json::json!({"name": "token", "mountPath": "/var/run/clear"});
    if let Some(sub) = sub_path {
        mount["subPath"] = sub.into();
    }
    let pod: Pod = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": scenario_kit::NS},
        "spec": {
            "containers": [{"name": "app", "image": "app", "volumeMounts": [mount]}],
            "volumes": [volume],
        },
    }))
    .unwrap();
    let pods: kube::Api<Pod> = kube::Api::namespaced(kit.client.clone(), scenario_kit::NS);
    let created = pods.create(&Default::default(), &pod).await.expect("pod");
    // NB: the kit runs no controller: the pod watch is played here.
    kit.ctx
        .services
        .pods
        .apply_event(0, &kube::runtime::watcher::Event::Apply(created));
}

/// The pod's nudge annotation once the nudge (sent [`NUDGE_DELAY`] after the Secret write,
/// off the reconcile) had time to land: polled until `expected`, or read after the delay.
async fn nudged_as(kit: &Kit, name: &str, expected: Option<&str>) -> Option<String> {
    use clear_operator::reconcile::nudge::NUDGE_DELAY;
    let deadline = std::time::Instant::now() + NUDGE_DELAY * 10;
    tokio::time::sleep(NUDGE_DELAY).await;
    loop {
        let now = nudged(kit, name).await;
        if now.as_deref() == expected || std::time::Instant::now() > deadline {
            return now;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

async fn nudged(kit: &Kit, name: &str) -> Option<String> {
    use k8s_openapi::api::core::v1::Pod;
    let pods: kube::Api<Pod> = kube::Api::namespaced(kit.client.clone(), scenario_kit::NS);
    let pod = pods.get(name).await.expect("pod");
    pod.metadata.annotations.and_then(|a| {
        a.get(clear_operator::reconcile::nudge::NUDGE_ANNOTATION)
            .cloned()
    })
}

#[tokio::test]
async fn a_new_token_nudges_exactly_the_pods_that_mount_its_secret_as_files() {
    let kit = Kit::with_first_token(SECRET).await;
    let volume = serde_json::json!({"name": "token", "secret": {"secretName": "billing"}});
    let projected = serde_json::json!({"name": "token", "projected": {"sources": [
        {"secret": {"name": "billing"}}
    ]}});
    let other = serde_json::json!({"name": "token", "secret": {"secretName": "not-the-token"}});
    create_pod(&kit, "reader", volume.clone(), None).await;
    create_pod(&kit, "projected-reader", projected, None).await;
    create_pod(&kit, "subpath-reader", volume, Some("accessToken")).await;
    create_pod(&kit, "other-reader", other, None).await;
    kit.annotate("billing", REGENERATE_ANNOTATION, "r1").await;
    kit.reconcile_times("billing", 2).await;
    assert_eq!(kit.calls(SECRET), 2);
    let token = kit
        .get("billing")
        .await
        .status
        .unwrap()
        .issued_at
        .unwrap()
        .0
        .to_string();
    let want = Some(token.as_str());
    assert_eq!(nudged_as(&kit, "reader", want).await.as_deref(), want);
    assert_eq!(
        nudged_as(&kit, "projected-reader", want).await.as_deref(),
        want
    );
    assert_eq!(
        nudged_as(&kit, "subpath-reader", None).await,
        None,
        "subPath never updates"
    );
    assert_eq!(nudged_as(&kit, "other-reader", None).await, None);
    // Opted out: the next token nudges nobody.
    let mut spec = kit.spec("clear-secret");
    spec["target"] = serde_json::json!({"nudgePods": false});
    kit.patch_spec("billing", spec).await;
    kit.annotate("billing", REGENERATE_ANNOTATION, "r2").await;
    kit.reconcile_times("billing", 2).await;
    assert_eq!(kit.calls(SECRET), 3);
    assert_eq!(
        nudged_as(&kit, "reader", want).await.as_deref(),
        want,
        "still the previous token's nudge"
    );
    kit.assert_no_leaks();
    kit.shutdown().await;
}
