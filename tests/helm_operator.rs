//! The user's three moves, with the real helm and the real binary: `helm install` of
//! charts/clear-operator into the Kubernetes API emulator (CRD, RBAC, Deployment), then the
//! operator binary started exactly as the installed Deployment says (its args and env, read
//! back from the emulator), then a ClearApiClient whose token comes from the Clear simulator.
//! Proves the chart's arguments, environment, Lease name and metric names match the binary,
//! and that every API request the operator made is allowed by the RBAC the chart installed
//! (the emulator does not enforce RBAC, so the test checks its request log against the
//! installed Roles and bindings the way the API server's authorizer would).
//!
//! There are no pods here, so the test plays the kubelet: only `--metrics-addr` changes, from
//! the pod's 0.0.0.0:8080 to a free loopback port.

mod chart_support;

use std::{path::Path, time::Duration};

use chart_support::{
    Pod, denied, eventually, free_loopback_addr, grants_of_service_account, helm, http_get,
    repo_root, start_as_deployed,
};
use clear_sandbox::{ClientConfig, Sandbox, SandboxConfig};
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::api::{Api, DynamicObject, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube_emulator::RequestEntry;
use kube_emulator::{Emulator, EmulatorOptions};
use serde_json::{Value, json};

const RELEASE: &str = "ops";
const RELEASE_NAMESPACE: &str = "clear-system";
const FULLNAME: &str = "ops-clear-operator";
const POD_NAME: &str = "ops-clear-operator-7d4b9c-x2x9q";
/// A made-up client secret, known only to the simulator and this test.
const CLIENT_SECRET: &str = "helm-e2e-client-secret-0f3a9c";
/// The bound only keeps a broken build from hanging.
const WAIT: Duration = Duration::from_secs(60);

async fn assert_rbac_allows_every_request(emulator: &Emulator, requests: &[RequestEntry]) {
    let grants =
        grants_of_service_account(&emulator.client().await, RELEASE_NAMESPACE, FULLNAME).await;
    let denied = denied(&grants, requests);
    assert!(
        denied.is_empty(),
        "the chart's RBAC would forbid these requests of the operator:\n{denied:#?}\ngrants:\n{grants:#?}"
    );
    // Not vacuous: the operator did watch, elect itself and write its Secret.
    for (verb, resource) in [
        ("watch", "clearapiclients"),
        ("create", "leases"),
        ("patch", "secrets"),
    ] {
        assert!(
            requests
                .iter()
                .any(|r| r.verb == verb && r.resource == resource),
            "the operator made no {verb} on {resource}: {requests:#?}"
        );
    }
}

/// Installs the chart with `sets`, runs the operator as deployed, and follows one
/// ClearApiClient in `default` from creation to a live token.
async fn install_and_run_the_operator(sets: &[&str]) {
    let emulator = Emulator::start(EmulatorOptions::default())
        .await
        .expect("emulator starts");
    let client = emulator.client().await;
    let sandbox = Sandbox::start(SandboxConfig::new(vec![
        ClientConfig::new(CLIENT_SECRET, "ws-1").with_products(["GST"]),
    ]))
    .await
    .expect("simulator starts");
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "helm-operator-{}-{}",
        std::process::id(),
        sets.len()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let kubeconfig = dir.join("kubeconfig");
    std::fs::write(&kubeconfig, emulator.kubeconfig_yaml()).unwrap();

    // Moves 1 and 2: the chart installs the CRD and the operator.
    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": RELEASE_NAMESPACE}})).unwrap(),
        )
        .await
        .unwrap();
    let chart = repo_root().join("charts/clear-operator");
    let allowed = format!("operator.allowedBaseUrls={{{}}}", sandbox.url());
    let mut install = vec![
        "install",
        RELEASE,
        chart.to_str().unwrap(),
        "--namespace",
        RELEASE_NAMESPACE,
        "--set",
        "operator.allowHttp=true",
        "--set",
        &allowed,
        "--set",
        "image.repository=registry.example.com/platform/clear-operator",
        // NB: the emulator has no TokenReview nor SubjectAccessReview to authorize a scrape;
        // the chart's default, secure metrics, is run on the real API server
        // (tests/real_cluster/chart.rs and metrics_auth.rs).
        "--set",
        "metrics.secure.enabled=false",
    ];
    install.extend_from_slice(sets);
    helm(&dir, &install).await;

    // Move 3, before the operator starts so that every request logged from here on is its own.
    let secrets: Api<Secret> = Api::namespaced(client.clone(), "default");
    secrets
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "metadata": {"name": "clear-client-secret"},
                "stringData": {"clientSecret": CLIENT_SECRET},
            }))
            .unwrap(),
        )
        .await
        .unwrap();
    let gvk = GroupVersionKind::gvk("clear-operator.io", "v1alpha1", "ClearApiClient");
    let cacs: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), "default", &ApiResource::from_gvk(&gvk));
    cacs.create(
        &PostParams::default(),
        &serde_json::from_value(json!({
            "apiVersion": "clear-operator.io/v1alpha1",
            "kind": "ClearApiClient",
            "metadata": {"name": "billing"},
            "spec": {
                "environment": "sandbox",
                "baseUrl": sandbox.url(),
                "workspace": "ws-1",
                "products": ["GST"],
                "clientSecretRef": {"name": "clear-client-secret"},
            },
        }))
        .unwrap(),
    )
    .await
    .unwrap();

    let deployment = emulator
        .object("apps/deployments", Some(RELEASE_NAMESPACE), FULLNAME)
        .expect("helm created the Deployment");
    emulator.requests().reset();
    let metrics_addr = free_loopback_addr();
    let operator = start_as_deployed(
        &deployment,
        &Pod {
            namespace: RELEASE_NAMESPACE,
            name: POD_NAME,
            kubeconfig: &kubeconfig,
            metrics_addr: &metrics_addr,
        },
    );

    eventually("/readyz to answer 200", &operator, WAIT, async || {
        (http_get(&metrics_addr, "/readyz", None)?.0 == 200).then_some(())
    })
    .await;
    assert_eq!(
        http_get(&metrics_addr, "/healthz", None).map(|r| r.0),
        Some(200)
    );

    // The chart's Lease name and namespace are the ones the binary elects itself on.
    let lease = eventually("the leader Lease", &operator, WAIT, async || {
        emulator.object(
            "coordination.k8s.io/leases",
            Some(RELEASE_NAMESPACE),
            FULLNAME,
        )
    })
    .await;
    let holder = lease["spec"]["holderIdentity"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(holder.starts_with(POD_NAME), "lease held by {holder:?}");

    // Read in process, not over HTTP, so the request log holds the operator's requests only.
    let token = eventually("the token Secret", &operator, WAIT, async || {
        let secret: Secret =
            serde_json::from_value(emulator.object("secrets", Some("default"), "billing")?).ok()?;
        let bytes = secret.data?.remove("accessToken")?.0;
        String::from_utf8(bytes).ok().filter(|t| !t.is_empty())
    })
    .await;
    let whoami = http_get(
        &sandbox.addr().to_string(),
        clear_sandbox::WHOAMI_PATH,
        Some((clear_sandbox::AUTH_TOKEN_HEADER, &token)),
    );
    assert_eq!(
        whoami.map(|r| r.0),
        Some(200),
        "the stored token is not live"
    );

    // The series the chart's PrometheusRule alerts on exist under those names.
    let metrics = eventually("the client's Ready gauge", &operator, WAIT, async || {
        let (_, body) = http_get(&metrics_addr, "/metrics", None)?;
        body.contains(r#"clear_operator_client_ready{namespace="default",name="billing"} 1"#)
            .then_some(body)
    })
    .await;
    for series in [
        "clear_operator_leader 1",
        r#"clear_operator_token_expiry_timestamp_seconds{namespace="default",name="billing"}"#,
        r#"clear_operator_mints_total{result="issued"} 1"#,
    ] {
        assert!(metrics.contains(series), "no {series} in:\n{metrics}");
    }
    assert_eq!(
        sandbox.call_counts(CLIENT_SECRET).total,
        1,
        "exactly one call to Clear"
    );

    let requests = emulator.requests().entries();
    let logs = operator.stop();
    assert_rbac_allows_every_request(&emulator, &requests).await;

    // --log-format json from the chart: every line is a JSON object, none carries a secret.
    assert!(!logs.is_empty(), "the operator logged nothing");
    for line in &logs {
        let parsed: Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("not a JSON log line ({e}): {line}"));
        assert!(parsed.is_object(), "{line}");
        assert!(
            !line.contains(CLIENT_SECRET) && !line.contains(&token),
            "a log line carries a secret"
        );
    }

    helm(
        &dir,
        &["uninstall", RELEASE, "--namespace", RELEASE_NAMESPACE],
    )
    .await;
    assert!(
        emulator
            .object("apps/deployments", Some(RELEASE_NAMESPACE), FULLNAME)
            .is_none()
    );
    let _ = std::fs::remove_dir_all(&dir);
    sandbox.shutdown().await.expect("simulator stops");
    emulator.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_installed_cluster_wide_issues_a_token_within_its_rbac() {
    install_and_run_the_operator(&[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_installed_for_one_namespace_issues_a_token_within_its_rbac() {
    install_and_run_the_operator(&["--set", "watchNamespaces={default}"]).await;
}
