//! End-to-end tests of the operator as a user meets it: `operator::run` in this process,
//! the Clear simulator on 127.0.0.1, and a Kubernetes API used only through its public
//! behaviour. Against a real cluster when `CLEAR_OPERATOR_E2E_KUBECONFIG` names a
//! kubeconfig, otherwise against the in-process kube-emulator (so CI always runs them).
//! Each test has its own namespace and counts the exact calls to Clear.

mod e2e_support;

use std::collections::BTreeMap;

use clear_operator::{
    commands::regenerate::request_regeneration,
    reconcile::secret::keys,
    resource::{CLIENT_LABEL, ClearApiClient, MANAGED_BY_LABEL, MANAGED_BY_VALUE},
};
use e2e_support::{E2e, data, is_ready_with, with_temp_ns};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{DeleteParams, PostParams};
use serde_json::json;

const CLIENT_SECRET_NAME: &str = "clear-secret";
const NAME: &str = "billing";

fn is_issued(cac: &ClearApiClient) -> bool {
    is_ready_with(cac, "True", "Issued")
}

fn fingerprint(cac: &ClearApiClient) -> Option<String> {
    cac.status.as_ref()?.token_fingerprint.clone()
}

/// The client secret, the operator, and one ClearApiClient `NAME` (with `spec` merged over
/// the default one), waited on until Ready with its first token.
async fn issue(env: &E2e, spec: serde_json::Value) -> (e2e_support::RunningOperator, String) {
    env.put_client_secret(CLIENT_SECRET_NAME).await;
    let operator = env.start_operator();
    let mut full = env.spec(CLIENT_SECRET_NAME);
    if let (Some(base), Some(extra)) = (full.as_object_mut(), spec.as_object()) {
        base.extend(extra.clone());
    }
    env.create(NAME, full).await;
    let cac = env
        .wait_for_cac(NAME, "Ready=True (Issued)", is_issued)
        .await;
    let fp = fingerprint(&cac).expect("a Ready resource records its token fingerprint");
    (operator, fp)
}

#[tokio::test]
async fn create_issues_a_live_token_into_a_labelled_secret_with_one_call() {
    with_temp_ns(|env| async move {
        let (operator, _) = issue(&env, json!({})).await;

        let secret = env
            .wait_for_secret(NAME, "written with an access token", |s| {
                s.and_then(|s| data(s, keys::ACCESS_TOKEN)).is_some()
            })
            .await
            .expect("the token Secret exists");
        for key in [
            keys::ACCESS_TOKEN,
            keys::VALID_TILL,
            keys::BASE_URL,
            keys::ENVIRONMENT,
            keys::WORKSPACE,
            keys::PRODUCTS,
        ] {
            assert!(
                data(&secret, key).is_some_and(|v| !v.is_empty()),
                "the token Secret has a non-empty {key}"
            );
        }
        assert_eq!(
            data(&secret, keys::BASE_URL).as_deref(),
            Some(env.sandbox.url())
        );
        assert_eq!(data(&secret, keys::ENVIRONMENT).as_deref(), Some("sandbox"));
        assert_eq!(
            data(&secret, keys::WORKSPACE).as_deref(),
            Some(e2e_support::WORKSPACE)
        );
        assert_eq!(
            data(&secret, keys::PRODUCTS).as_deref(),
            Some("GST,E_INVOICE")
        );
        let labels = secret.metadata.labels.clone().unwrap_or_default();
        assert_eq!(
            labels.get(MANAGED_BY_LABEL).map(String::as_str),
            Some(MANAGED_BY_VALUE)
        );
        assert_eq!(labels.get(CLIENT_LABEL).map(String::as_str), Some(NAME));
        assert!(
            env.token_is_live(NAME).await,
            "Clear accepts the token in the Secret"
        );

        env.wait_settled().await;
        assert_eq!(env.calls(), 1, "one call to Clear for one new resource");
        env.assert_no_leaks(&[env.token_in(NAME).await]).await;
        operator.stop().await;
    })
    .await;
}

#[tokio::test]
async fn a_restarted_operator_keeps_the_token_and_calls_clear_zero_times() {
    with_temp_ns(|env| async move {
        let (operator, fp) = issue(&env, json!({})).await;
        let token = env.token_in(NAME).await;
        assert_eq!(env.calls(), 1);
        operator.stop().await;

        let operator = env.start_operator();
        // NB: a harmless change that only a running operator can carry to the Secret proves
        // the new one has reconciled the resource (and so had its chance to mint).
        env.patch_spec(
            NAME,
            json!({"target": {"labels": {"e2e.clear-operator.io/restarted": "yes"}}}),
        )
        .await;
        env.wait_for_secret(NAME, "labelled by the new operator", |s| {
            s.and_then(|s| s.metadata.labels.as_ref())
                .is_some_and(|l| l.contains_key("e2e.clear-operator.io/restarted"))
        })
        .await;
        env.wait_settled().await;

        let cac = env.wait_for_cac(NAME, "still Ready", is_issued).await;
        assert_eq!(
            fingerprint(&cac),
            Some(fp),
            "the same token after a restart"
        );
        assert!(
            env.token_in(NAME).await == token,
            "the Secret holds the same token after a restart"
        );
        assert!(env.token_is_live(NAME).await, "and Clear still accepts it");
        assert_eq!(env.calls(), 1, "the restart called Clear zero times");
        operator.stop().await;
    })
    .await;
}

#[tokio::test]
async fn regenerate_mints_exactly_one_new_token_and_revokes_the_old_one() {
    with_temp_ns(|env| async move {
        let (operator, fp) = issue(&env, json!({})).await;
        let old = env.token_in(NAME).await;
        assert_eq!(env.calls(), 1);

        let value = request_regeneration(env.client.clone(), &env.namespace, NAME, None)
            .await
            .expect("the regenerate annotation is set");
        let cac = env
            .wait_for_cac(NAME, "the regeneration recorded", |cac| {
                cac.status
                    .as_ref()
                    .and_then(|s| s.last_regenerate_request.as_deref())
                    == Some(value.as_str())
            })
            .await;
        assert!(
            fingerprint(&cac).is_some_and(|new| new != fp),
            "status names a new token"
        );
        env.wait_for_secret(NAME, "holding a new token", |s| {
            s.and_then(|s| data(s, keys::ACCESS_TOKEN))
                .is_some_and(|t| t != old)
        })
        .await;
        let new = env.token_in(NAME).await;
        assert_eq!(env.calls(), 2, "exactly one call for the regeneration");
        assert!(
            !env.sandbox.is_token_valid(&old),
            "Clear rejects the old token"
        );
        assert!(
            env.sandbox.is_token_valid(&new),
            "Clear accepts the new one"
        );

        env.wait_settled().await;
        assert_eq!(env.calls(), 2, "the request is honoured once, not again");
        let cac = env.wait_for_cac(NAME, "Ready", is_issued).await;
        assert_eq!(
            cac.status.and_then(|s| s.last_regenerate_request),
            Some(value)
        );
        env.assert_no_leaks(&[old, new]).await;
        operator.stop().await;
    })
    .await;
}

#[tokio::test]
async fn a_label_only_change_reaches_the_secret_with_zero_calls() {
    with_temp_ns(|env| async move {
        let (operator, fp) = issue(&env, json!({})).await;
        let token = env.token_in(NAME).await;
        assert_eq!(env.calls(), 1);

        env.patch_spec(NAME, json!({"target": {"labels": {"team": "payments"}}}))
            .await;
        let secret = env
            .wait_for_secret(NAME, "labelled team=payments", |s| {
                s.and_then(|s| s.metadata.labels.as_ref())
                    .and_then(|l| l.get("team"))
                    .is_some_and(|v| v == "payments")
            })
            .await
            .expect("the token Secret exists");
        let labels = secret.metadata.labels.unwrap_or_default();
        assert_eq!(
            labels.get(CLIENT_LABEL).map(String::as_str),
            Some(NAME),
            "the operator's own labels stay"
        );
        env.wait_settled().await;

        assert_eq!(env.calls(), 1, "a label change calls Clear zero times");
        assert!(
            env.token_in(NAME).await == token,
            "the Secret keeps its token"
        );
        let cac = env.wait_for_cac(NAME, "Ready", is_issued).await;
        assert_eq!(fingerprint(&cac), Some(fp));
        operator.stop().await;
    })
    .await;
}

#[tokio::test]
async fn an_unowned_target_secret_is_a_conflict_left_untouched_with_zero_calls() {
    with_temp_ns(|env| async move {
        let foreign: Secret = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": NAME, "labels": {"team": "someone-else"}},
            "stringData": {"accessToken": "hand-made-placeholder", "note": "not the operator's"},
        }))
        .expect("a Secret object");
        env.secrets
            .create(&PostParams::default(), &foreign)
            .await
            .expect("the foreign Secret is created");
        let before = env.secrets.get(NAME).await.expect("the foreign Secret");
        env.put_client_secret(CLIENT_SECRET_NAME).await;
        let operator = env.start_operator();
        env.create(NAME, env.spec(CLIENT_SECRET_NAME)).await;

        env.wait_for_cac(NAME, "Ready=False (TargetConflict)", |cac| {
            is_ready_with(cac, "False", "TargetConflict")
        })
        .await;
        env.wait_settled().await;

        assert_eq!(env.calls(), 0, "a conflict calls Clear zero times");
        let after = env
            .secrets
            .get(NAME)
            .await
            .expect("the foreign Secret stays");
        assert!(
            after.data == before.data,
            "the foreign Secret's data is unchanged"
        );
        let labels = |s: &Secret| s.metadata.labels.clone().unwrap_or_default();
        assert_eq!(
            labels(&after),
            labels(&before),
            "the foreign Secret's labels are unchanged"
        );
        assert_eq!(
            labels(&after),
            BTreeMap::from([("team".to_string(), "someone-else".to_string())])
        );
        assert!(
            after
                .metadata
                .owner_references
                .unwrap_or_default()
                .is_empty(),
            "the operator did not take ownership"
        );
        env.wait_for_cac(NAME, "still in conflict", |cac| {
            is_ready_with(cac, "False", "TargetConflict")
        })
        .await;
        operator.stop().await;
    })
    .await;
}

#[tokio::test]
async fn deleting_a_client_with_policy_delete_garbage_collects_its_secret() {
    with_temp_ns(|env| async move {
        let (operator, _) = issue(&env, json!({"target": {"deletionPolicy": "Delete"}})).await;
        env.wait_for_secret(NAME, "written", |s| s.is_some()).await;

        env.cacs
            .delete(NAME, &DeleteParams::default())
            .await
            .expect("the ClearApiClient is deleted");
        env.wait_for_secret(NAME, "garbage-collected", |s| s.is_none())
            .await;
        assert_eq!(env.calls(), 1, "deletion calls Clear zero times");
        operator.stop().await;
    })
    .await;
}

#[tokio::test]
async fn deleting_a_client_with_policy_retain_keeps_its_secret() {
    with_temp_ns(|env| async move {
        let (operator, _) = issue(&env, json!({"target": {"deletionPolicy": "Retain"}})).await;
        let token = env.token_in(NAME).await;

        env.cacs
            .delete(NAME, &DeleteParams::default())
            .await
            .expect("the ClearApiClient is deleted");
        env.wait_until_cac_gone(NAME).await;
        // NB: GC is asynchronous on a real cluster: give it time to (wrongly) act.
        env.wait_settled().await;

        let kept = env.secrets.get_opt(NAME).await.expect("lookup");
        let kept = kept.expect("the Secret outlives its ClearApiClient");
        assert!(
            data(&kept, keys::ACCESS_TOKEN).as_deref() == Some(token.as_str()),
            "the kept Secret still holds the token"
        );
        assert!(env.token_is_live(NAME).await, "and Clear still accepts it");
        assert_eq!(env.calls(), 1, "deletion calls Clear zero times");
        operator.stop().await;
    })
    .await;
}

#[tokio::test]
async fn editing_workspace_and_products_rewrites_the_secret_with_zero_calls() {
    with_temp_ns(|env| async move {
        let (operator, fp) = issue(&env, json!({})).await;
        let token = env.token_in(NAME).await;
        env.patch_spec(
            NAME,
            json!({"workspace": "ws-typo-fixed", "products": ["GST", "Max ITC", "E-Invoice"]}),
        )
        .await;
        env.wait_for_secret(NAME, "rewritten with the new workspace and products", |s| {
            s.is_some_and(|s| {
                data(s, keys::WORKSPACE).as_deref() == Some("ws-typo-fixed")
                    && data(s, keys::PRODUCTS).as_deref() == Some("GST,MAX_ITC,E_INVOICE")
            })
        })
        .await;
        env.wait_settled().await;
        assert_eq!(
            env.calls(),
            1,
            "Clear is never told the workspace or products"
        );
        assert!(
            env.token_in(NAME).await == token,
            "the Secret keeps its token"
        );
        assert!(env.token_is_live(NAME).await);
        let cac = env.wait_for_cac(NAME, "Ready", is_issued).await;
        assert_eq!(fingerprint(&cac), Some(fp));
        operator.stop().await;
    })
    .await;
}

#[tokio::test]
async fn a_suspended_resource_ignores_a_regenerate_request_until_resumed() {
    with_temp_ns(|env| async move {
        let (operator, fp) = issue(&env, json!({})).await;
        env.patch_spec(NAME, json!({"suspend": true})).await;
        env.wait_for_cac(NAME, "Ready=True (Suspended)", |c| {
            is_ready_with(c, "True", "Suspended")
        })
        .await;
        request_regeneration(
            env.client.clone(),
            &env.namespace,
            NAME,
            Some("while-suspended".into()),
        )
        .await
        .expect("annotated");
        env.wait_settled().await;
        assert_eq!(env.calls(), 1, "no call while suspended");
        assert!(
            env.token_is_live(NAME).await,
            "the stored token still serves"
        );
        env.patch_spec(NAME, json!({"suspend": false})).await;
        let cac = env
            .wait_for_cac(NAME, "a new token for the request", |c| {
                is_issued(c) && fingerprint(c).is_some_and(|f| f != fp)
            })
            .await;
        assert_eq!(
            cac.status
                .and_then(|s| s.last_regenerate_request)
                .as_deref(),
            Some("while-suspended")
        );
        env.wait_settled().await;
        assert_eq!(env.calls(), 2, "one call when resumed");
        operator.stop().await;
    })
    .await;
}

#[tokio::test]
async fn the_token_in_use_is_adopted_with_zero_calls() {
    with_temp_ns(|env| async move {
        env.put_client_secret(CLIENT_SECRET_NAME).await;
        let (token, valid_till) = env.mint_elsewhere().await;
        let adoptable: Secret = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "erp-token"},
            "stringData": {"accessToken": token, "validTill": valid_till.unwrap_or_else(|| "never".into())},
        }))
        .expect("a Secret object");
        env.secrets
            .create(&PostParams::default(), &adoptable)
            .await
            .expect("the Secret to adopt from");
        let operator = env.start_operator();
        let mut spec = env.spec(CLIENT_SECRET_NAME);
        spec["adoptFrom"] = json!({"name": "erp-token"});
        env.create(NAME, spec).await;
        env.wait_for_cac(NAME, "Ready=True (Adopted)", |c| {
            is_ready_with(c, "True", "Adopted")
        })
        .await;
        env.wait_settled().await;
        assert_eq!(env.calls(), 1, "only the call made elsewhere");
        assert!(env.token_in(NAME).await == token, "the token in use is served");
        assert!(env.token_is_live(NAME).await, "and was not revoked");
        operator.stop().await;
        env.assert_no_leaks(&[token]).await;
    })
    .await;
}

#[tokio::test]
async fn templates_render_the_live_token_and_edits_renames_and_broken_ones_cost_zero_calls() {
    with_temp_ns(|env| async move {
        let (operator, fp) = issue(
            &env,
            json!({"target": {"template": {
                "keys": {
                    "header": "x-cleartax-auth-token: {{ .accessToken }}",
                    ".env": "CLEAR_TOKEN={{ .accessToken }}\nCLEAR_BASE_URL={{ .baseUrl }}\n",
                    "token.json": "{\"token\": {{ json .accessToken }}, \"validTill\": {{ json .validTill }}}"
                },
                "rename": {"products": "CLEAR_PRODUCTS"}
            }}}),
        )
        .await;
        let token = env.token_in(NAME).await;
        let secret = env
            .wait_for_secret(NAME, "written with the rendered keys", |s| {
                s.and_then(|s| data(s, "header")).is_some()
            })
            .await
            .expect("the token Secret exists");
        assert!(
            data(&secret, "header") == Some(format!("x-cleartax-auth-token: {token}")),
            "the header line holds the token"
        );
        assert!(
            data(&secret, ".env")
                == Some(format!(
                    "CLEAR_TOKEN={token}\nCLEAR_BASE_URL={}\n",
                    env.sandbox.url()
                )),
            "the .env document holds the token and the base URL"
        );
        let document: serde_json::Value =
            serde_json::from_str(&data(&secret, "token.json").expect("the JSON document"))
                .expect("the JSON document parses");
        assert!(document["token"] == token.as_str(), "the JSON token");
        assert_eq!(
            document["validTill"].as_str(),
            data(&secret, keys::VALID_TILL).as_deref()
        );
        assert_eq!(
            data(&secret, "CLEAR_PRODUCTS").as_deref(),
            Some("GST,E_INVOICE")
        );
        assert_eq!(data(&secret, keys::PRODUCTS), None, "renamed away");

        env.patch_spec(
            NAME,
            json!({"target": {"template": {"keys": {"header": "Authorization: {{ .accessToken }}"}}}}),
        )
        .await;
        env.wait_for_secret(NAME, "the edited header", |s| {
            s.and_then(|s| data(s, "header"))
                .is_some_and(|h| h.starts_with("Authorization: "))
        })
        .await;
        let good = env.secrets.get(NAME).await.expect("the token Secret");

        env.patch_spec(
            NAME,
            json!({"target": {"template": {"keys": {"header": "Authorization: {{ .accessToken"}}}}),
        )
        .await;
        env.wait_for_cac(NAME, "reason InvalidSpec", |c| {
            is_ready_with(c, "True", "InvalidSpec")
        })
        .await;
        env.wait_settled().await;
        let kept = env.secrets.get(NAME).await.expect("the token Secret");
        assert!(kept.data == good.data, "the last good Secret stays");
        assert_eq!(env.calls(), 1, "templates call Clear zero times");
        assert!(env.token_is_live(NAME).await, "the token still serves");
        let cac = env.cacs.get(NAME).await.expect("the ClearApiClient");
        assert_eq!(fingerprint(&cac), Some(fp.clone()));

        // Fixed, and accessToken renamed: the token moves to its new key, with no call.
        env.patch_spec(
            NAME,
            json!({"target": {"template": {
                "keys": {"header": "x-cleartax-auth-token: {{ .accessToken }}"},
                "rename": {"accessToken": "CLEAR_TOKEN"}
            }}}),
        )
        .await;
        env.wait_for_secret(NAME, "the token under CLEAR_TOKEN only", |s| {
            s.is_some_and(|s| {
                data(s, "CLEAR_TOKEN").is_some_and(|t| t == token)
                    && data(s, keys::ACCESS_TOKEN).is_none()
            })
        })
        .await;
        env.wait_for_cac(NAME, "Ready=True (Issued)", is_issued).await;
        operator.stop().await;

        // A restarted operator finds its token under the new name.
        let operator = env.start_operator();
        env.patch_spec(
            NAME,
            json!({"target": {"labels": {"e2e.clear-operator.io/restarted": "yes"}}}),
        )
        .await;
        env.wait_for_secret(NAME, "labelled by the new operator", |s| {
            s.and_then(|s| s.metadata.labels.as_ref())
                .is_some_and(|l| l.contains_key("e2e.clear-operator.io/restarted"))
        })
        .await;
        env.wait_settled().await;
        let cac = env.wait_for_cac(NAME, "still Ready", is_issued).await;
        assert_eq!(fingerprint(&cac), Some(fp), "the same token");
        assert_eq!(env.calls(), 1, "a rename and a restart call Clear zero times");
        assert!(env.sandbox.is_token_valid(&token), "and Clear still accepts it");
        env.assert_no_leaks(&[token]).await;
        operator.stop().await;
    })
    .await;
}

#[tokio::test]
async fn an_install_in_standby_reports_and_calls_clear_for_nothing() {
    with_temp_ns(|env| async move {
        env.put_client_secret(CLIENT_SECRET_NAME).await;
        let operator = env.start_operator_with(|args| args.standby = true);
        env.create(NAME, env.spec(CLIENT_SECRET_NAME)).await;
        env.wait_for_cac(NAME, "Ready=False (Suspended)", |c| {
            is_ready_with(c, "False", "Suspended")
        })
        .await;
        env.wait_settled().await;
        assert_eq!(env.calls(), 0, "a standby install mints nothing");
        operator.stop().await;
        // The install that takes over (no standby) mints the first token.
        let active = env.start_operator();
        env.wait_for_cac(NAME, "Ready=True (Issued)", is_issued)
            .await;
        env.wait_settled().await;
        assert_eq!(env.calls(), 1);
        active.stop().await;
    })
    .await;
}
