//! Secure metrics on the real server, as the chart installs them (metrics.secure.enabled,
//! the default): a scraper's ServiceAccount bound to the chart's `-metrics-reader`
//! ClusterRole reads /metrics (200), one without the binding is refused (403), a request
//! without a token is not authenticated (401); kube-apiserver answers the operator's
//! TokenReview and SubjectAccessReview under the RBAC the chart grants it.

use k8s_openapi::api::{core::v1::ServiceAccount, rbac::v1::ClusterRoleBinding};
use kube::{
    Api, Client,
    api::{DeleteParams, PostParams},
};
use serde_json::json;

use crate::chart_support::https_get;

/// Checks who may read `https://{addr}/metrics` of the release `fullname` installed in
/// `release_ns`; `expected_series` must be in what the allowed scraper reads.
pub async fn assert_only_metrics_readers_scrape(
    admin: &Client,
    release_ns: &str,
    fullname: &str,
    addr: &str,
    expected_series: &str,
) {
    let accounts: Api<ServiceAccount> = Api::namespaced(admin.clone(), release_ns);
    for name in ["scraper", "stranger"] {
        accounts
            .create(
                &PostParams::default(),
                &serde_json::from_value(json!({"metadata": {"name": name}})).unwrap(),
            )
            .await
            .expect("scraper ServiceAccount created");
    }
    let binding_name = format!("{fullname}-scraper");
    let bindings: Api<ClusterRoleBinding> = Api::all(admin.clone());
    bindings
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "metadata": {"name": binding_name},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "ClusterRole",
                    "name": format!("{fullname}-metrics-reader"),
                },
                "subjects": [{"kind": "ServiceAccount", "name": "scraper", "namespace": release_ns}],
            }))
            .unwrap(),
        )
        .await
        .expect("metrics-reader bound to the scraper");
    let scraper = crate::chart::create_token(release_ns, "scraper").await;
    let stranger = crate::chart::create_token(release_ns, "stranger").await;

    let outcome = async {
        let (status, _) = https_get(addr, "/metrics", None).await.expect("an answer");
        assert_eq!(status, 401, "no token: not authenticated");
        let (status, _) = https_get(addr, "/metrics", Some("not-a-token"))
            .await
            .expect("an answer");
        assert_eq!(
            status, 401,
            "a token the server does not know: not authenticated"
        );
        let (status, body) = https_get(addr, "/metrics", Some(&stranger))
            .await
            .expect("an answer");
        assert_eq!(
            status, 403,
            "not bound to metrics-reader: forbidden ({body})"
        );
        assert!(
            !body.contains("clear_operator_"),
            "a refused scrape reads nothing"
        );
        // NB: RBAC bindings reach the authorizer's cache within moments; poll briefly.
        let mut allowed = None;
        for _ in 0..50 {
            if let Some((200, body)) = https_get(addr, "/metrics", Some(&scraper)).await {
                allowed = Some(body);
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
        let body = allowed.expect("the metrics-reader scraper reads /metrics");
        assert!(
            body.contains(expected_series),
            "no {expected_series} in:\n{body}"
        );
        assert!(body.contains("clear_operator_build_info{"), "{body}");
        // Probes need no token, over the same TLS port.
        assert_eq!(
            https_get(addr, "/healthz", None).await.map(|r| r.0),
            Some(200)
        );
    }
    .await;
    let _ = bindings
        .delete(&binding_name, &DeleteParams::default())
        .await;
    outcome
}
