//! Scenarios of `spec.renewalWindows` against the Kubernetes API emulator and the Clear
//! simulator, on the manual clock: a due renewal waits for its window, a renewal that no
//! window fits happens at the last safe moment (with a condition and one Warning), requests
//! that must not wait do not, and a malformed window is refused without calling Clear. Each
//! counts the exact calls to Clear.

mod scenario_kit;

use std::time::Duration;

use clear_operator::resource::ClearApiClient;
use clear_sandbox::ClientConfig;
use kube::{
    Api, CustomResourceExt,
    api::{DynamicObject, Patch, PatchParams, PostParams},
};
use scenario_kit::Kit;
use serde_json::{Value, json};

const SECRET: &str = "cs-windows-00001";
/// Tokens live a week: issued at the kit's start (2026-11-25T10:00Z) a token is due a day
/// before expiry (2026-12-01T10:00Z) and must be renewed by 2026-12-02T09:00Z (an hour, the
/// safety margin, before it expires at 10:00Z).
const WEEK: Duration = Duration::from_secs(7 * 24 * 3600);
const DUE: &str = "2026-12-01T10:00:00Z";
const LAST_SAFE_MOMENT: &str = "2026-12-02T09:00:00Z";
/// 02:00 in Berlin (CET, +01:00) on the night after the due time.
const WINDOW_OPENS: &str = "2026-12-02T01:00:00Z";

/// The client-secret Secret `clear-secret`, tokens living a week; no resource yet.
async fn kit() -> Kit {
    Kit::with_client_secret(
        vec![
            ClientConfig::new(SECRET, "ws-1")
                .with_products(["GST", "E_INVOICE"])
                .with_lifetime(WEEK),
        ],
        SECRET,
    )
    .await
}

/// The resource `billing` renewed in these windows, not reconciled yet.
async fn kit_with_windows(windows: Value) -> Kit {
    let kit = kit().await;
    kit.create("billing", with_windows(&kit, windows)).await;
    kit
}

/// The kit's spec with these renewal windows.
fn with_windows(kit: &Kit, windows: Value) -> Value {
    let mut spec = kit.spec("clear-secret");
    spec["renewalWindows"] = windows;
    spec
}

/// Two hours from 02:00 Berlin time, every night.
fn nightly_berlin() -> Value {
    json!([{"schedule": "0 2 * * *", "timeZone": "Europe/Berlin", "duration": "2h"}])
}

/// `RenewalWindows` as (status, reason, message), if present.
async fn windows_condition(kit: &Kit, name: &str) -> Option<(String, String, String)> {
    kit.get(name)
        .await
        .status?
        .conditions
        .into_iter()
        .find(|c| c.type_ == "RenewalWindows")
        .map(|c| (c.status, c.reason, c.message))
}

async fn renewal_time(kit: &Kit, name: &str) -> String {
    kit.status(name)
        .await
        .renewal_time
        .expect("a renewal is planned")
        .0
        .to_string()
}

fn warnings(kit: &Kit, name: &str, reason: &str) -> usize {
    kit.warnings(name, reason).len()
}

#[tokio::test]
async fn a_due_renewal_waits_for_the_next_window_and_makes_one_call_there() {
    let kit = kit_with_windows(nightly_berlin()).await;
    kit.reconcile("billing").await;
    assert_eq!(kit.calls(SECRET), 1, "the first token is not held back");
    let first = kit.token_in("billing").await;
    assert_eq!(renewal_time(&kit, "billing").await, WINDOW_OPENS);
    let (status, reason, message) = windows_condition(&kit, "billing").await.unwrap();
    assert_eq!((status.as_str(), reason.as_str()), ("True", "Scheduled"));
    assert!(message.contains(WINDOW_OPENS), "{message}");

    // Due, and all the hours until the window opens: nothing is called.
    for now in [DUE, "2026-12-01T18:00:00Z", "2026-12-02T00:59:59Z"] {
        kit.set_time(now);
        kit.reconcile_times("billing", 2).await;
        assert_eq!(kit.calls(SECRET), 1, "no call at {now}, before the window");
        assert_eq!(kit.ready("billing").await.0, "True", "at {now}");
        assert!(kit.sandbox.is_token_valid(&first), "at {now}");
    }

    kit.set_time(WINDOW_OPENS);
    kit.reconcile("billing").await;
    assert_eq!(kit.calls(SECRET), 2, "one call once the window opened");
    let second = kit.token_in("billing").await;
    assert!(kit.sandbox.is_token_valid(&second));
    assert!(
        !kit.sandbox.is_token_valid(&first),
        "minting revoked the old token"
    );
    let status = kit.status("billing").await;
    assert_eq!(status.issued_at.unwrap().0.to_string(), WINDOW_OPENS);
    // The next token is due on 2026-12-08T01:00Z, when the window is open: renewed then.
    assert_eq!(renewal_time(&kit, "billing").await, "2026-12-08T01:00:00Z");
    assert_eq!(windows_condition(&kit, "billing").await.unwrap().0, "True");
    let renewed: Vec<_> = kit
        .events("billing")
        .into_iter()
        .filter(|(_, reason, _)| reason == "Renewed")
        .collect();
    assert_eq!(renewed.len(), 1, "{renewed:?}");
    assert!(
        renewed[0].2.contains(&format!("issued at {WINDOW_OPENS}")),
        "{renewed:?}"
    );

    kit.reconcile_times("billing", 3).await;
    assert_eq!(kit.calls(SECRET), 2);
    assert_eq!(warnings(&kit, "billing", "RenewalWindowMissed"), 0);
    kit.finish().await;
}

#[tokio::test]
async fn without_a_fitting_window_the_renewal_is_at_the_last_safe_moment_and_ready_stays_true() {
    // A second a year, in June: never before the last safe moment of a December token.
    let never = json!([{"schedule": "0 3 15 6 *", "duration": "1s"}]);
    let kit = kit_with_windows(never).await;
    kit.reconcile_times("billing", 3).await;
    assert_eq!(kit.calls(SECRET), 1);
    let first = kit.token_in("billing").await;
    assert_eq!(renewal_time(&kit, "billing").await, LAST_SAFE_MOMENT);
    let (status, reason, message) = windows_condition(&kit, "billing").await.unwrap();
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("False", "NoWindowFits")
    );
    assert!(message.contains(LAST_SAFE_MOMENT), "{message}");
    assert_eq!(kit.ready("billing").await, ("True".into(), "Issued".into()));
    assert_eq!(
        warnings(&kit, "billing", "RenewalWindowMissed"),
        1,
        "one Warning when the condition turned False, not one per reconcile"
    );

    for now in [DUE, "2026-12-02T08:59:59Z"] {
        kit.set_time(now);
        kit.reconcile_times("billing", 2).await;
        assert_eq!(kit.calls(SECRET), 1, "no call at {now}");
        assert_eq!(kit.ready("billing").await.0, "True", "at {now}");
        assert!(kit.sandbox.is_token_valid(&first), "at {now}");
    }

    kit.set_time(LAST_SAFE_MOMENT);
    kit.reconcile_times("billing", 3).await;
    assert_eq!(kit.calls(SECRET), 1 + 1, "renewed once, before expiry");
    let second = kit.token_in("billing").await;
    assert!(kit.sandbox.is_token_valid(&second));
    assert_eq!(kit.ready("billing").await, ("True".into(), "Issued".into()));
    assert_eq!(
        renewal_time(&kit, "billing").await,
        "2026-12-09T08:00:00Z",
        "the next token's last safe moment"
    );
    assert_eq!(windows_condition(&kit, "billing").await.unwrap().0, "False");
    assert_eq!(
        warnings(&kit, "billing", "RenewalWindowMissed"),
        1,
        "still False: no new Warning"
    );
    kit.finish().await;
}

#[tokio::test]
async fn a_regenerate_request_mints_at_once_while_the_window_is_closed() {
    let kit = kit_with_windows(nightly_berlin()).await;
    kit.reconcile("billing").await;
    let old = kit.token_in("billing").await;

    kit.set_time("2026-11-25T14:00:00Z"); // 15:00 in Berlin: closed
    kit.regenerate("billing", "now-please").await;
    kit.reconcile_times("billing", 3).await;
    assert_eq!(kit.calls(SECRET), 2, "regenerated at once, once");
    assert!(!kit.sandbox.is_token_valid(&old));
    assert!(kit.sandbox.is_token_valid(&kit.token_in("billing").await));
    assert!(
        kit.event_reasons("billing")
            .contains(&"Regenerated".to_string())
    );
    // The new token (issued 14:00Z) is due 2026-12-01T14:00Z; the window opens next at 01:00Z.
    assert_eq!(renewal_time(&kit, "billing").await, WINDOW_OPENS);
    kit.finish().await;
}

#[tokio::test]
async fn changing_the_windows_moves_the_renewal_without_a_call() {
    let kit = kit().await;
    kit.create("billing", kit.spec("clear-secret")).await;
    kit.reconcile("billing").await;
    assert_eq!(renewal_time(&kit, "billing").await, DUE);
    assert_eq!(windows_condition(&kit, "billing").await, None);

    kit.patch_spec("billing", json!({"renewalWindows": nightly_berlin()}))
        .await;
    kit.reconcile_times("billing", 3).await;
    assert_eq!(renewal_time(&kit, "billing").await, WINDOW_OPENS);
    assert_eq!(windows_condition(&kit, "billing").await.unwrap().0, "True");

    kit.patch_spec("billing", json!({"renewalWindows": null}))
        .await;
    kit.reconcile_times("billing", 3).await;
    assert_eq!(renewal_time(&kit, "billing").await, DUE);
    assert_eq!(windows_condition(&kit, "billing").await, None);
    assert_eq!(kit.calls(SECRET), 1, "windows never mint");
    kit.finish().await;
}

#[tokio::test]
async fn a_malformed_window_is_an_invalid_spec_and_nothing_is_called() {
    let windows = json!([
        {"schedule": "0 2 * * *", "duration": "1h"},
        {"schedule": "0 3 * * *", "timeZone": "Europe/Pariss", "duration": "1h"},
    ]);
    let kit = kit_with_windows(windows).await;
    kit.reconcile_times("billing", 3).await;
    assert_eq!(kit.calls(SECRET), 0);
    assert_eq!(
        kit.ready("billing").await,
        ("False".into(), "InvalidSpec".into())
    );
    let cac = kit.get("billing").await;
    let ready = cac
        .status
        .unwrap()
        .conditions
        .into_iter()
        .find(|c| c.type_ == "Ready")
        .unwrap();
    assert!(
        ready
            .message
            .contains(r#"renewalWindows[1].timeZone: unknown time zone "Europe/Pariss""#),
        "{}",
        ready.message
    );
    assert!(kit.target("billing").await.is_none());
    kit.finish().await;
}

#[tokio::test]
async fn the_schema_refuses_windows_it_can_tell_are_malformed() {
    let kit = kit().await;
    let bad = [
        (
            "zero-duration",
            json!({"schedule": "0 2 * * *", "duration": "0h0m"}),
        ),
        ("no-duration", json!({"schedule": "0 2 * * *"})),
        ("nickname", json!({"schedule": "@daily", "duration": "1h"})),
        (
            "six-fields",
            json!({"schedule": "0 0 2 * * *", "duration": "1h"}),
        ),
        (
            "zone-chars",
            json!({"schedule": "0 2 * * *", "timeZone": "Europe/Paris;x", "duration": "1h"}),
        ),
        (
            "day-duration",
            json!({"schedule": "0 2 * * *", "duration": "1d"}),
        ),
    ];
    let raw: Api<DynamicObject> = Api::namespaced_with(
        kit.client.clone(),
        scenario_kit::NS,
        &ClearApiClient::api_resource(),
    );
    for (name, window) in bad {
        // NB: sent as JSON, not as the Rust type, which cannot even hold some of them.
        let obj: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "clear-operator.io/v1alpha1", "kind": "ClearApiClient",
            "metadata": {"name": name, "namespace": scenario_kit::NS},
            "spec": with_windows(&kit, json!([window])),
        }))
        .unwrap();
        match raw.create(&PostParams::default(), &obj).await {
            Err(kube::Error::Api(status)) => assert_eq!(status.code, 422, "{name}: {status:?}"),
            other => panic!(
                "{name} should be rejected, got {:?}",
                other.map(|o| o.metadata.name)
            ),
        }
    }
    // A valid window is accepted, and a spec can drop it again.
    kit.create("billing", with_windows(&kit, nightly_berlin()))
        .await;
    kit.cacs
        .patch(
            "billing",
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"renewalWindows": []}})),
        )
        .await
        .expect("an empty list is valid");
    assert_eq!(kit.all_calls(), 0);
    kit.shutdown().await;
}

#[tokio::test]
async fn a_window_that_never_fires_is_an_invalid_spec_named_at_once() {
    // The 30th of February never comes: refused when read, never searched for.
    let never = json!([{"schedule": "0 0 30 2 *", "duration": "1h"}]);
    let kit = kit_with_windows(never).await;
    kit.reconcile_times("billing", 2).await;
    assert_eq!(kit.calls(SECRET), 0);
    assert_eq!(
        kit.ready("billing").await,
        ("False".into(), "InvalidSpec".into())
    );
    let message = scenario_kit::ready_message(&kit.get("billing").await);
    assert!(
        message.contains(r#"renewalWindows[0].schedule: "0 0 30 2 *" never fires"#),
        "{message}"
    );
    kit.shutdown().await;
}
