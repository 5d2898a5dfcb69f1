//! Scenarios of `spec.target.template` against the Kubernetes API emulator and the Clear
//! simulator: rendered keys hold the live token, editing or renaming costs no call (also
//! across a restart), and a broken template is InvalidSpec with the Secret left as it was.

mod scenario_kit;

use clear_operator::{
    reconcile::{
        decide::Policy,
        secret::{RENAMED_KEYS_ANNOTATION, keys},
    },
    resource::REGENERATE_ANNOTATION,
};
use jiff::SignedDuration;
use scenario_kit::{Kit, ready_message};
use serde_json::{Value, json};

const SECRET: &str = "cs-templates-0001";

const HEADER: &str = "x-cleartax-auth-token: {{ .accessToken }}";
const ENV: &str = "CLEAR_TOKEN={{ .accessToken }}\nCLEAR_BASE_URL={{ .baseUrl }}\n";
const JSON: &str = r#"{"token": {{ json .accessToken }}, "validTill": {{ json .validTill }}}"#;

fn three_examples() -> Value {
    json!({"target": {"template": {"keys": {"header": HEADER, ".env": ENV, "token.json": JSON}}}})
}

/// A kit whose `billing` holds its first token and whose spec then got `patch`: one call.
async fn with_template(patch: Value) -> Kit {
    let kit = Kit::with_first_token(SECRET).await;
    kit.patch_spec("billing", patch).await;
    kit.reconcile_times("billing", 3).await;
    kit
}

#[tokio::test]
async fn header_env_and_json_keys_hold_the_live_token_and_cost_no_call() {
    let kit = with_template(three_examples()).await;
    assert_eq!(
        kit.calls(SECRET),
        1,
        "adding templates calls Clear zero times"
    );
    let token = kit.token_in("billing").await;
    let secret = kit.target("billing").await.unwrap();
    assert_eq!(
        Kit::data(&secret, "header"),
        format!("x-cleartax-auth-token: {token}")
    );
    assert_eq!(
        Kit::data(&secret, ".env"),
        format!("CLEAR_TOKEN={token}\nCLEAR_BASE_URL={}\n", kit.url())
    );
    let document: Value = serde_json::from_str(&Kit::data(&secret, "token.json")).unwrap();
    assert_eq!(document["token"], token.as_str());
    assert_eq!(document["validTill"], "2026-11-25T22:00:00Z");
    assert!(kit.sandbox.is_token_valid(&token));
    assert_eq!(kit.ready("billing").await.0, "True");

    // A renewal renders every key again with the new token.
    kit.advance(SignedDuration::from_hours(8));
    kit.reconcile("billing").await;
    assert_eq!(kit.calls(SECRET), 2, "renewed once");
    let renewed = kit.token_in("billing").await;
    assert_ne!(renewed, token);
    let secret = kit.target("billing").await.unwrap();
    assert_eq!(
        Kit::data(&secret, "header"),
        format!("x-cleartax-auth-token: {renewed}")
    );
    assert!(Kit::data(&secret, ".env").starts_with(&format!("CLEAR_TOKEN={renewed}\n")));
    let document: Value = serde_json::from_str(&Kit::data(&secret, "token.json")).unwrap();
    assert_eq!(document["token"], renewed.as_str());
    assert_eq!(document["validTill"], Kit::data(&secret, keys::VALID_TILL));
    kit.assert_no_leaks();
    kit.shutdown().await;
}

#[tokio::test]
async fn editing_or_removing_a_template_rewrites_the_secret_with_zero_calls() {
    let kit = with_template(three_examples()).await;
    let token = kit.token_in("billing").await;

    kit.patch_spec(
        "billing",
        json!({"target": {"template": {"keys": {"header": "Authorization: {{.accessToken}}"}}}}),
    )
    .await;
    kit.reconcile_times("billing", 3).await;
    let secret = kit.target("billing").await.unwrap();
    assert_eq!(
        Kit::data(&secret, "header"),
        format!("Authorization: {token}")
    );
    assert_eq!(
        kit.calls(SECRET),
        1,
        "an edited template calls Clear zero times"
    );

    kit.patch_spec("billing", json!({"target": {"template": null}}))
        .await;
    kit.reconcile_times("billing", 3).await;
    let secret = kit.target("billing").await.unwrap();
    let data = secret.data.as_ref().unwrap();
    for key in ["header", ".env", "token.json"] {
        assert!(!data.contains_key(key), "{key} goes with its template");
    }
    assert_eq!(Kit::data(&secret, keys::ACCESS_TOKEN), token);
    assert_eq!(
        kit.calls(SECRET),
        1,
        "a removed template calls Clear zero times"
    );
    assert!(kit.sandbox.is_token_valid(&token));
    assert_eq!(kit.ready("billing").await.0, "True");
    kit.assert_no_leaks();
    kit.shutdown().await;
}

#[tokio::test]
async fn a_broken_template_is_invalid_spec_and_leaves_the_secret_as_it_was() {
    let kit = with_template(three_examples()).await;
    let before = kit.target("billing").await.unwrap();
    let token = kit.token_in("billing").await;

    for (broken, why) in [
        ("x-cleartax-auth-token: {{ .accessToken", "unclosed"),
        ("x-cleartax-auth-token: {{ .token }}", "unknown placeholder"),
        (
            "{{ lookup \"v1\" \"Secret\" \"default\" \"clear-secret\" }}",
            "unknown placeholder",
        ),
    ] {
        kit.patch_spec(
            "billing",
            json!({"target": {"template": {"keys": {"header": broken}}}}),
        )
        .await;
        kit.reconcile_times("billing", 3).await;
        // NB: Ready follows the stored token, which still serves: True, reason InvalidSpec.
        assert_eq!(
            kit.ready("billing").await,
            ("True".into(), "InvalidSpec".into()),
            "{broken}"
        );
        let message = ready_message(&kit.get("billing").await);
        assert!(
            message.contains("target.template.keys.header") && message.contains(why),
            "{message}"
        );
        let after = kit.target("billing").await.unwrap();
        assert_eq!(after.data, before.data, "the last good Secret stays");
        assert_eq!(after.metadata.annotations, before.metadata.annotations);
        assert_eq!(
            kit.calls(SECRET),
            1,
            "a broken template calls Clear zero times"
        );
    }

    // A regeneration asked for meanwhile waits for a usable spec too.
    kit.annotate("billing", REGENERATE_ANNOTATION, "r1").await;
    kit.reconcile_times("billing", 2).await;
    assert_eq!(kit.calls(SECRET), 1);
    assert!(
        kit.sandbox.is_token_valid(&token),
        "the served token stays live"
    );

    // Fixed: the Secret is rewritten, then the regeneration is honoured once.
    kit.patch_spec(
        "billing",
        json!({"target": {"template": {"keys": {"header": HEADER}}}}),
    )
    .await;
    kit.reconcile_times("billing", 3).await;
    assert_eq!(kit.calls(SECRET), 2, "only the regeneration calls Clear");
    let fresh = kit.token_in("billing").await;
    let secret = kit.target("billing").await.unwrap();
    assert_eq!(
        Kit::data(&secret, "header"),
        format!("x-cleartax-auth-token: {fresh}")
    );
    assert_eq!(kit.ready("billing").await.0, "True");
    kit.assert_no_leaks();
    kit.shutdown().await;
}

#[tokio::test]
async fn a_template_colliding_with_a_renamed_key_is_refused_before_any_write() {
    let kit = Kit::with_first_token(SECRET).await;
    let before = kit.target("billing").await.unwrap();
    // NB: the emulator applies the CRD's rules as the API server does: what the schema
    // refuses never reaches the operator.
    let refused = kit
        .cacs
        .patch(
            "billing",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(&json!({"spec": {"target": {"template": {
                "keys": {"token": HEADER},
                "rename": {"accessToken": "token"}
            }}}})),
        )
        .await;
    let err = refused.expect_err("the API server refuses the collision");
    assert!(
        err.to_string().contains("renamed to"),
        "the schema's message: {err}"
    );
    for bad in [
        json!({"keys": {"accessToken": HEADER}}),
        json!({"keys": {"bad key": HEADER}}),
        json!({"rename": {"validTill": "t", "baseUrl": "t"}}),
        json!({"rename": {"validTill": "accessToken"}}),
        json!({"rename": {"token": "t"}}),
    ] {
        let refused = kit
            .cacs
            .patch(
                "billing",
                &kube::api::PatchParams::default(),
                &kube::api::Patch::Merge(&json!({"spec": {"target": {"template": bad}}})),
            )
            .await;
        assert!(refused.is_err(), "refused when applied: {bad}");
    }
    kit.reconcile("billing").await;
    assert_eq!(kit.target("billing").await.unwrap().data, before.data);
    assert_eq!(kit.calls(SECRET), 1);
    kit.shutdown().await;
}

#[tokio::test]
async fn renaming_access_token_costs_no_call_survives_a_restart_and_renews() {
    let kit = with_template(json!({"target": {"template": {
        "rename": {"accessToken": "CLEAR_TOKEN", "baseUrl": "CLEAR_BASE_URL"},
        "keys": {"header": HEADER}
    }}}))
    .await;
    assert_eq!(kit.calls(SECRET), 1, "a rename calls Clear zero times");
    let secret = kit.target("billing").await.unwrap();
    let token = Kit::data(&secret, "CLEAR_TOKEN");
    kit.remember(&token);
    assert!(kit.sandbox.is_token_valid(&token), "the same, live token");
    assert_eq!(Kit::data(&secret, "CLEAR_BASE_URL"), kit.url());
    assert_eq!(
        Kit::data(&secret, "header"),
        format!("x-cleartax-auth-token: {token}")
    );
    let data = secret.data.as_ref().unwrap();
    assert!(
        !data.contains_key(keys::ACCESS_TOKEN) && !data.contains_key(keys::BASE_URL),
        "the old names are gone"
    );
    assert_eq!(
        secret.metadata.annotations.as_ref().unwrap()[RENAMED_KEYS_ANNOTATION],
        "accessToken=CLEAR_TOKEN,baseUrl=CLEAR_BASE_URL"
    );
    assert_eq!(kit.ready("billing").await, ("True".into(), "Issued".into()));

    // A restarted operator (fresh context, nothing in memory) finds the token under its
    // new name.
    let restarted = kit.new_context(Policy {
        renewal_jitter_percent: 0,
        ..Policy::default()
    });
    for _ in 0..3 {
        kit.reconcile_in(&restarted, "billing").await.unwrap();
    }
    assert_eq!(
        kit.calls(SECRET),
        1,
        "a restart after a rename calls Clear zero times"
    );
    assert_eq!(kit.ready("billing").await.0, "True");

    // Renamed again: still found, still no call.
    kit.patch_spec(
        "billing",
        json!({"target": {"template": {"rename": {"accessToken": "token"}}}}),
    )
    .await;
    kit.reconcile_times("billing", 3).await;
    let secret = kit.target("billing").await.unwrap();
    assert_eq!(Kit::data(&secret, "token"), token);
    assert!(!secret.data.as_ref().unwrap().contains_key("CLEAR_TOKEN"));
    assert_eq!(
        kit.calls(SECRET),
        1,
        "a second rename calls Clear zero times"
    );

    // The operator's own annotation removed: the spec's name still finds the token.
    kit.secrets
        .patch(
            "billing",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(
                &json!({"metadata": {"annotations": {RENAMED_KEYS_ANNOTATION: null}}}),
            ),
        )
        .await
        .unwrap();
    kit.reconcile_times("billing", 2).await;
    assert_eq!(
        kit.calls(SECRET),
        1,
        "a removed renamed-keys annotation is repaired"
    );
    let secret = kit.target("billing").await.unwrap();
    assert_eq!(
        secret.metadata.annotations.as_ref().unwrap()[RENAMED_KEYS_ANNOTATION],
        "accessToken=token,baseUrl=CLEAR_BASE_URL",
        "put back (the merge patch kept the rename of baseUrl)"
    );

    // The renewal writes the new token under the renamed key.
    kit.advance(SignedDuration::from_hours(8));
    kit.reconcile_times("billing", 2).await;
    assert_eq!(kit.calls(SECRET), 2, "renewed once");
    let secret = kit.target("billing").await.unwrap();
    let renewed = Kit::data(&secret, "token");
    kit.remember(&renewed);
    assert_ne!(renewed, token);
    assert!(kit.sandbox.is_token_valid(&renewed));
    assert!(
        !secret
            .data
            .as_ref()
            .unwrap()
            .contains_key(keys::ACCESS_TOKEN)
    );
    assert_eq!(
        Kit::data(&secret, "header"),
        format!("x-cleartax-auth-token: {renewed}")
    );

    // The rename undone: back under accessToken, no call.
    kit.patch_spec("billing", json!({"target": {"template": null}}))
        .await;
    kit.reconcile_times("billing", 3).await;
    assert_eq!(kit.token_in("billing").await, renewed);
    assert_eq!(kit.calls(SECRET), 2);
    let secret = kit.target("billing").await.unwrap();
    assert!(
        !secret
            .metadata
            .annotations
            .as_ref()
            .unwrap()
            .contains_key(RENAMED_KEYS_ANNOTATION)
    );
    kit.assert_no_leaks();
    kit.shutdown().await;
}

#[tokio::test]
async fn editing_a_renamed_workspace_costs_no_call() {
    let kit = with_template(json!({"target": {"template": {
        "rename": {"workspace": "CLEAR_WORKSPACE"},
        "keys": {".env": "CLEAR_WORKSPACE={{ .workspace }}\n"}
    }}}))
    .await;
    let token = kit.token_in("billing").await;
    // NB: the workspace is descriptive: the Secret's record of it (under its new name) tells
    // an edit from a new configuration, as it does under `workspace`.
    kit.patch_spec("billing", json!({"workspace": "ws-typo-fixed"}))
        .await;
    kit.reconcile_times("billing", 3).await;
    assert_eq!(
        kit.calls(SECRET),
        1,
        "a workspace edit calls Clear zero times"
    );
    let secret = kit.target("billing").await.unwrap();
    assert_eq!(Kit::data(&secret, "CLEAR_WORKSPACE"), "ws-typo-fixed");
    assert_eq!(
        Kit::data(&secret, ".env"),
        "CLEAR_WORKSPACE=ws-typo-fixed\n"
    );
    assert_eq!(kit.token_in("billing").await, token);
    assert_eq!(kit.ready("billing").await, ("True".into(), "Issued".into()));

    // Renamed back and edited in one go: still the same configuration.
    kit.patch_spec(
        "billing",
        json!({"workspace": "ws-1", "target": {"template": null}}),
    )
    .await;
    kit.reconcile_times("billing", 3).await;
    assert_eq!(kit.calls(SECRET), 1);
    let secret = kit.target("billing").await.unwrap();
    assert_eq!(Kit::data(&secret, keys::WORKSPACE), "ws-1");
    kit.assert_no_leaks();
    kit.shutdown().await;
}
