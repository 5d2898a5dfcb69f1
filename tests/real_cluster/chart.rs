//! The chart on the real server, the way a platform team installs it: `helm install`, then
//! the operator binary run as the chart's ServiceAccount (a token from `kubectl create
//! token`, the args and env the installed Deployment holds). kube-apiserver enforces the
//! chart's RBAC; its audit log then shows every request the operator made, and the test
//! checks both directions: nothing was forbidden, and every right granted was used.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use clear_operator::{
    commands::regenerate::request_regeneration,
    reconcile::{secret::keys, status},
    resource::ClearApiClient,
};
use clear_sandbox::{ClientConfig, Sandbox, SandboxConfig, SandboxHandle};
use k8s_openapi::api::{
    apps::v1::{DaemonSet, Deployment, StatefulSet},
    core::v1::{Namespace, Secret},
    networking::v1::NetworkPolicy,
};
use kube::{
    Api, Client,
    api::{DeleteParams, PostParams},
    config::{KubeConfigOptions, Kubeconfig},
};
use serde_json::json;

use crate::{
    audit,
    chart_support::{
        Operator, Pod, denied, eventually, free_loopback_addr, grants_of_service_account, helm,
        helm_output, https_get, repo_root, start_as_deployed, tool, unused,
    },
    e2e_support::data,
};

const CLIENT_SECRET_NAME: &str = "clear-client-secret";
/// The name of each consumer workload (a Deployment, a StatefulSet, a DaemonSet).
const CONSUMER: &str = "erp";
const WORKSPACE: &str = "ws-real";
/// Short enough that a renewal comes within the test: the default renewBefore is a third
/// of the lifetime, so the token is replaced about 20 s after it was issued.
const TOKEN_LIFETIME: Duration = Duration::from_secs(30);
/// Generous: a real cluster garbage-collects and delivers watch events in its own time.
const WAIT: Duration = Duration::from_secs(120);

/// Rights the operator needs that no request in the audit log can show, each with why.
const JUSTIFIED: &[(&str, &str)] = &[
    // Server-side apply of a Secret that does not exist yet is authorized as `create` as
    // well as `patch`, but the audit log records the request as a patch.
    ("secrets", "create"),
    // kube-runtime's event recorder patches an Event when the same event repeats (a
    // series). The operator gives each Event a recorder of its own (no repeats are kept in
    // memory), so it normally creates only; the grant stays for the recorder's own path.
    ("events", "patch"),
    // The same for the budget ledger's ConfigMap, applied the first time it is written.
    ("configmaps", "create"),
];

pub(crate) fn random_suffix() -> String {
    use rand::Rng;
    let mut rng = rand::thread_rng();
    (0..6)
        .map(|_| (b'a' + rng.gen_range(0..26)) as char)
        .collect()
}

pub(crate) async fn admin_client() -> (Client, Kubeconfig) {
    let kubeconfig = Kubeconfig::read_from(crate::kubeconfig_path()).expect("read kubeconfig");
    let config =
        kube::Config::from_custom_kubeconfig(kubeconfig.clone(), &KubeConfigOptions::default())
            .await
            .expect("load kubeconfig");
    (Client::try_from(config).expect("client"), kubeconfig)
}

/// A kubeconfig for the same server that authenticates with `token` instead of the
/// admin's client certificate.
pub(crate) fn kubeconfig_with_token(admin: &Kubeconfig, token: &str, path: &Path) {
    let mut config = serde_yaml::to_value(admin).expect("kubeconfig serializes");
    let users = json!([{"name": "operator", "user": {"token": token}}]);
    config["users"] = serde_yaml::to_value(users).unwrap();
    let contexts = config["contexts"].as_sequence_mut().expect("contexts");
    for context in contexts {
        context["context"]["user"] = serde_yaml::Value::from("operator");
    }
    std::fs::write(path, serde_yaml::to_string(&config).unwrap()).expect("write kubeconfig");
}

/// `kubectl create token`: a short-lived ServiceAccount token from the TokenRequest API.
pub(crate) async fn create_token(namespace: &str, service_account: &str) -> String {
    let out = tokio::process::Command::new(tool("kubectl"))
        .args([
            "create",
            "token",
            service_account,
            "-n",
            namespace,
            "--duration=1h",
        ])
        .env("KUBECONFIG", crate::kubeconfig_path())
        .output()
        .await
        .expect("kubectl runs");
    assert!(
        out.status.success(),
        "kubectl create token failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

pub(crate) async fn create_namespace(client: &Client, name: &str) {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let ns: Namespace = serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"app.kubernetes.io/part-of": "clear-operator-e2e"}},
    }))
    .unwrap();
    namespaces
        .create(&PostParams::default(), &ns)
        .await
        .expect("namespace created");
}

pub(crate) async fn delete_namespace(client: &Client, name: &str) {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let _ = namespaces.delete(name, &DeleteParams::default()).await;
}

/// A ClearApiClient on the simulator; `consumers` adds the three workloads as restart
/// targets and revocation on delete, so that every right the chart grants gets used.
fn cac(name: &str, sandbox: &SandboxHandle, secret: &str, consumers: bool) -> ClearApiClient {
    let mut spec = json!({
        "environment": "sandbox",
        "baseUrl": sandbox.url(),
        "workspace": WORKSPACE,
        "products": ["GST"],
        "clientSecretRef": {"name": secret},
    });
    if consumers {
        spec["rolloutRestartTargets"] = json!([
            {"kind": "Deployment", "name": CONSUMER},
            {"kind": "StatefulSet", "name": CONSUMER},
            {"kind": "DaemonSet", "name": CONSUMER},
        ]);
        spec["revokeOnDelete"] = json!(true);
    }
    serde_json::from_value(json!({
        "apiVersion": "clear-operator.io/v1alpha1", "kind": "ClearApiClient",
        "metadata": {"name": name}, "spec": spec,
    }))
    .unwrap()
}

/// Deployment, StatefulSet, DaemonSet: what `rolloutRestartTargets` may name.
trait Workload:
    kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
    + Clone
    + serde::de::DeserializeOwned
    + serde::Serialize
    + std::fmt::Debug
{
}
impl Workload for Deployment {}
impl Workload for StatefulSet {}
impl Workload for DaemonSet {}

/// A workload of kind `K` named CONSUMER (an object only: there is no kubelet).
async fn create_consumer<K>(client: &Client, namespace: &str)
where
    K: Workload,
{
    let mut spec = json!({
        "selector": {"matchLabels": {"app": CONSUMER}},
        "template": {
            "metadata": {"labels": {"app": CONSUMER}},
            "spec": {"containers": [{"name": "erp", "image": "example.invalid/erp:1"}]},
        },
    });
    if K::kind(&()) == "StatefulSet" {
        spec["serviceName"] = json!(CONSUMER);
    }
    let object: K = serde_json::from_value(json!({"metadata": {"name": CONSUMER}, "spec": spec}))
        .expect("a workload object");
    Api::<K>::namespaced(client.clone(), namespace)
        .create(&PostParams::default(), &object)
        .await
        .unwrap_or_else(|e| panic!("{} created: {e}", K::kind(&())));
}

/// The restartedAt annotation of a workload's pod template.
async fn restarted_at<K>(client: &Client, namespace: &str) -> Option<String>
where
    K: Workload,
{
    let object = Api::<K>::namespaced(client.clone(), namespace)
        .get(CONSUMER)
        .await
        .ok()?;
    let value = serde_json::to_value(object).ok()?;
    value["spec"]["template"]["metadata"]["annotations"]["kubectl.kubernetes.io/restartedAt"]
        .as_str()
        .map(str::to_string)
}

fn ready(cac: &ClearApiClient) -> Option<(String, String)> {
    let c = status::ready_condition(cac.status.as_ref())?;
    Some((c.status.clone(), c.reason.clone()))
}

fn token_fingerprint(cac: &ClearApiClient) -> Option<String> {
    cac.status.as_ref()?.token_fingerprint.clone()
}

/// Everything one chart install is tested with.
struct Install {
    /// `watchNamespaces={tenant}`: Roles in the tenant namespace instead of a ClusterRole.
    scoped_to_tenant: bool,
    /// `rbac.rolloutRestart.enabled`: without it, restarts are forbidden and said so.
    rollout_restart: bool,
    release: String,
    release_ns: String,
    tenant_ns: String,
    dir: PathBuf,
}

impl Install {
    fn fullname(&self) -> String {
        format!("{}-clear-operator", self.release)
    }
}

/// Installs the chart (`sets` added), runs the operator as its ServiceAccount, and takes
/// one ClearApiClient through create, renewal, regenerate, a missing client secret and
/// deletion; then checks the chart's RBAC against the audit log in both directions.
async fn install_and_operate(scoped_to_tenant: bool, rollout_restart: bool) {
    let _one_at_a_time = crate::exclusive().await;
    let (admin, admin_kubeconfig) = admin_client().await;
    let suffix = random_suffix();
    let install = Install {
        scoped_to_tenant,
        rollout_restart,
        release: format!("ops{suffix}"),
        release_ns: format!("clear-system-{suffix}"),
        tenant_ns: format!("billing-{suffix}"),
        dir: Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("real-chart-{suffix}")),
    };
    std::fs::create_dir_all(&install.dir).unwrap();
    std::fs::copy(crate::kubeconfig_path(), install.dir.join("kubeconfig")).unwrap();
    create_namespace(&admin, &install.release_ns).await;
    create_namespace(&admin, &install.tenant_ns).await;

    let client_secret = format!("cs-real-{suffix}-0f3a9c7d");
    let sandbox = Sandbox::start(SandboxConfig::new(vec![
        ClientConfig::new(client_secret.clone(), WORKSPACE)
            .with_products(["GST"])
            .with_lifetime(TOKEN_LIFETIME),
    ]))
    .await
    .expect("simulator starts");

    let outcome = operate(
        &install,
        &admin,
        &admin_kubeconfig,
        &sandbox,
        &client_secret,
    )
    .await;

    // NB: clean-up runs after a failure too; its own failure must not hide the first one.
    let _ = helm_output(
        &install.dir,
        &[
            "uninstall",
            &install.release,
            "--namespace",
            &install.release_ns,
        ],
    )
    .await;
    delete_namespace(&admin, &install.tenant_ns).await;
    delete_namespace(&admin, &install.release_ns).await;
    let _ = sandbox.shutdown().await;
    let _ = std::fs::remove_dir_all(&install.dir);
    outcome.unwrap_or_else(|panic| std::panic::resume_unwind(panic));
}

async fn operate(
    install: &Install,
    admin: &Client,
    admin_kubeconfig: &Kubeconfig,
    sandbox: &SandboxHandle,
    client_secret: &str,
) -> Result<(), Box<dyn std::any::Any + Send>> {
    use futures::FutureExt;
    std::panic::AssertUnwindSafe(async {
        let chart = repo_root().join("charts/clear-operator");
        let watch = format!("watchNamespaces={{{}}}", install.tenant_ns);
        let restarts = format!("rbac.rolloutRestart.enabled={}", install.rollout_restart);
        let allowed = format!("operator.allowedBaseUrls={{{}}}", sandbox.url());
        let mut args = vec![
            "install",
            &install.release,
            chart.to_str().unwrap(),
            "--namespace",
            &install.release_ns,
            "--set",
            "operator.allowHttp=true",
            "--set",
            &restarts,
            "--set",
            &allowed,
            "--set",
            "image.repository=registry.example.com/platform/clear-operator",
            // NB: the suite's CRD comes from `kubectl apply -f crds/` (and the e2e harness);
            // a templated one would not be adopted by this release, nor by the next one.
            "--set",
            "crds.enabled=false",
            "--wait=false",
        ];
        if install.scoped_to_tenant {
            args.extend(["--set", &watch]);
        }
        helm(&install.dir, &args).await;
        assert_metrics_are_fenced_by_default(install, admin).await;

        // What the operator will act on, made before it starts.
        let secrets: Api<Secret> = Api::namespaced(admin.clone(), &install.tenant_ns);
        secrets
            .create(
                &PostParams::default(),
                &serde_json::from_value(json!({
                    "metadata": {"name": CLIENT_SECRET_NAME},
                    "stringData": {"clientSecret": client_secret},
                }))
                .unwrap(),
            )
            .await
            .expect("client secret created");
        let tenant = install.tenant_ns.as_str();
        create_consumer::<Deployment>(admin, tenant).await;
        create_consumer::<StatefulSet>(admin, tenant).await;
        create_consumer::<DaemonSet>(admin, tenant).await;
        let cacs: Api<ClearApiClient> = Api::namespaced(admin.clone(), &install.tenant_ns);
        cacs.create(
            &PostParams::default(),
            &cac("billing", sandbox, CLIENT_SECRET_NAME, true),
        )
        .await
        .expect("ClearApiClient created");

        // Play the kubelet: the Deployment's container, as its ServiceAccount.
        let installed: Api<Deployment> = Api::namespaced(admin.clone(), &install.release_ns);
        let operator_deployment = serde_json::to_value(
            installed
                .get(&install.fullname())
                .await
                .expect("helm created the Deployment"),
        )
        .unwrap();
        let token = create_token(&install.release_ns, &install.fullname()).await;
        let operator_kubeconfig = install.dir.join("operator.kubeconfig");
        kubeconfig_with_token(admin_kubeconfig, &token, &operator_kubeconfig);
        let audit_log = crate::audit_log_path();
        let audit_from = audit::len(&audit_log);
        let metrics_addr = free_loopback_addr();
        let pod_name = format!("{}-5d8c7b-q2x7z", install.fullname());
        let operator = start_as_deployed(
            &operator_deployment,
            &Pod {
                namespace: &install.release_ns,
                name: &pod_name,
                kubeconfig: &operator_kubeconfig,
                metrics_addr: &metrics_addr,
            },
        );
        // NB: the chart's default, secure metrics: HTTPS, probes without a token.
        eventually("/readyz to answer 200", &operator, WAIT, async || {
            (https_get(&metrics_addr, "/readyz", None).await?.0 == 200).then_some(())
        })
        .await;

        // Create: one call, a live token in the Secret, Ready.
        let first = wait_issued(&operator, &cacs, "billing", None).await;
        // Who may scrape: the operator asks the server (TokenReview, SubjectAccessReview),
        // which uses the two rights the chart grants for it.
        crate::metrics_auth::assert_only_metrics_readers_scrape(
            admin,
            &install.release_ns,
            &install.fullname(),
            &metrics_addr,
            &format!(
                r#"clear_operator_renewal_timestamp_seconds{{namespace="{}",name="billing"}}"#,
                install.tenant_ns
            ),
        )
        .await;
        let token_1 = token_in(&secrets, "billing").await;
        assert!(sandbox.is_token_valid(&token_1), "the first token is live");
        assert_eq!(
            sandbox.call_counts(client_secret).total,
            1,
            "one call for a new resource"
        );

        // Renewal: about 20 s later the operator replaces it; the old one is revoked.
        let second = wait_issued(&operator, &cacs, "billing", Some(&first)).await;
        let token_2 = token_in(&secrets, "billing").await;
        assert_eq!(
            sandbox.call_counts(client_secret).total,
            2,
            "one call for the renewal"
        );
        assert!(
            sandbox.is_token_valid(&token_2),
            "the renewed token is live"
        );
        assert!(
            !sandbox.is_token_valid(&token_1),
            "minting revoked the first token"
        );
        if install.rollout_restart {
            eventually("the consumers restarted", &operator, WAIT, async || {
                restarted_at::<Deployment>(admin, tenant).await?;
                restarted_at::<StatefulSet>(admin, tenant).await?;
                restarted_at::<DaemonSet>(admin, tenant).await
            })
            .await;
        } else {
            let note = eventually("a RestartForbidden Warning", &operator, WAIT, async || {
                let events: Api<k8s_openapi::api::events::v1::Event> =
                    Api::namespaced(admin.clone(), tenant);
                let list = events.list(&Default::default()).await.ok()?;
                list.items
                    .into_iter()
                    .find(|e| e.reason.as_deref() == Some("RestartForbidden"))
                    .and_then(|e| e.note)
            })
            .await;
            assert!(
                note.contains("rbac.rolloutRestart.enabled=true"),
                "the Warning names the chart value to set: {note}"
            );
            assert!(restarted_at::<Deployment>(admin, tenant).await.is_none());
        }

        // Regenerate: exactly one more call.
        request_regeneration(
            admin.clone(),
            &install.tenant_ns,
            "billing",
            Some("real-cluster-1".to_string()),
        )
        .await
        .expect("regenerate requested");
        wait_issued(&operator, &cacs, "billing", Some(&second)).await;
        assert_eq!(
            sandbox.call_counts(client_secret).total,
            3,
            "one call for the regeneration"
        );
        let token_3 = token_in(&secrets, "billing").await;
        assert!(
            sandbox.is_token_valid(&token_3),
            "the regenerated token is live"
        );

        // A client secret that does not exist: reported, no call.
        cacs.create(
            &PostParams::default(),
            &cac("orphan", sandbox, "no-such-secret", false),
        )
        .await
        .expect("second ClearApiClient created");
        eventually(
            "Ready=False (ClientSecretMissing)",
            &operator,
            WAIT,
            async || {
                let c = cacs.get("orphan").await.ok()?;
                (ready(&c)? == ("False".to_string(), "ClientSecretMissing".to_string()))
                    .then_some(())
            },
        )
        .await;
        assert_eq!(
            sandbox.total_call_counts().total,
            3,
            "a missing client secret costs no call"
        );

        // Deletion with revokeOnDelete: one call that revokes the handed-out token, then
        // the finalizer goes and the real garbage collector removes the owned Secret.
        cacs.delete("billing", &DeleteParams::default())
            .await
            .expect("deleted");
        eventually("the ClearApiClient gone", &operator, WAIT, async || {
            matches!(cacs.get_opt("billing").await, Ok(None)).then_some(())
        })
        .await;
        eventually(
            "the token Secret garbage-collected",
            &operator,
            WAIT,
            async || matches!(secrets.get_opt("billing").await, Ok(None)).then_some(()),
        )
        .await;
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert_eq!(
            sandbox.total_call_counts().total,
            4,
            "deletion revokes with one call"
        );
        assert!(
            !sandbox.is_token_valid(&token_3),
            "the handed-out token is revoked"
        );
        // The budget ledger, next to the Lease, counted the four calls of this client
        // secret (three mints and the revoke) for the next leader.
        let ledgers: Api<k8s_openapi::api::core::v1::ConfigMap> =
            Api::namespaced(admin.clone(), &install.release_ns);
        let ledger_name = format!("{}-budget", install.fullname());
        eventually("the budget ledger written", &operator, WAIT, async || {
            let data = ledgers.get_opt(&ledger_name).await.ok()??.data?;
            data.iter()
                .any(|(key, calls)| key != "day" && calls == "4")
                .then_some(())
        })
        .await;

        let logs = operator.stop();
        for line in &logs {
            for secret in [client_secret, &token_1, &token_2, &token_3] {
                assert!(!line.contains(secret), "a log line carries a secret");
            }
        }
        assert_rbac_is_exact(install, admin, &audit_log, audit_from).await;
    })
    .catch_unwind()
    .await
}

/// The default NetworkPolicy, as the real server stored it: it selects the operator pods
/// and admits only the monitoring namespace, only on the metrics port.
async fn assert_metrics_are_fenced_by_default(install: &Install, admin: &Client) {
    let policies: Api<NetworkPolicy> = Api::namespaced(admin.clone(), &install.release_ns);
    let policy = policies
        .get(&install.fullname())
        .await
        .expect("the chart installs its NetworkPolicy by default");
    let deployment = Api::<Deployment>::namespaced(admin.clone(), &install.release_ns)
        .get(&install.fullname())
        .await
        .expect("the Deployment");
    let spec = serde_json::to_value(policy.spec.expect("a spec")).unwrap();
    let pod_labels = serde_json::to_value(
        deployment
            .spec
            .and_then(|s| s.template.metadata)
            .and_then(|m| m.labels),
    )
    .unwrap();
    for (key, value) in spec["podSelector"]["matchLabels"].as_object().unwrap() {
        assert_eq!(
            &pod_labels[key], value,
            "the policy selects the operator pods"
        );
    }
    assert_eq!(spec["policyTypes"], json!(["Ingress"]));
    assert_eq!(
        spec["ingress"],
        json!([{
            "ports": [{"port": "metrics", "protocol": "TCP"}],
            "from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}],
        }])
    );
}

async fn wait_issued(
    operator: &Operator,
    cacs: &Api<ClearApiClient>,
    name: &str,
    replacing: Option<&str>,
) -> String {
    eventually(
        "Ready=True (Issued) with a new token",
        operator,
        WAIT,
        async || {
            let c = cacs.get(name).await.ok()?;
            let fingerprint = token_fingerprint(&c)?;
            let issued = ready(&c)? == ("True".to_string(), "Issued".to_string());
            (issued && Some(fingerprint.as_str()) != replacing).then_some(fingerprint)
        },
    )
    .await
}

async fn token_in(secrets: &Api<Secret>, name: &str) -> String {
    let secret = secrets.get(name).await.expect("token Secret");
    data(&secret, keys::ACCESS_TOKEN).expect("an access token")
}

/// The server's record against the chart's grants: no request was forbidden (the server
/// says so with 403), our reading of the grants agrees with the server's authorizer, and
/// no right granted went unused.
async fn assert_rbac_is_exact(install: &Install, admin: &Client, audit_log: &Path, from: u64) {
    let user = format!(
        "system:serviceaccount:{}:{}",
        install.release_ns,
        install.fullname()
    );
    let recorded = audit::requests_of(audit_log, from, &user);
    assert!(
        !recorded.is_empty(),
        "the audit log holds no request of {user}"
    );
    // NB: without rbac.rolloutRestart.enabled the restarts are expected to be refused
    // (and reported as RestartForbidden); the server must have been the one refusing.
    let (refused_restarts, forbidden): (Vec<_>, Vec<_>) = recorded
        .iter()
        .filter(|r| r.forbidden_by_rbac)
        .partition(|r| r.request.group == "apps" && r.request.verb == "patch");
    assert_eq!(
        refused_restarts.is_empty(),
        install.rollout_restart,
        "restarts refused by the server exactly when the chart does not grant them: {refused_restarts:#?}"
    );
    assert!(
        forbidden.is_empty(),
        "kube-apiserver forbade requests of the operator under the chart's RBAC:\n{forbidden:#?}"
    );
    let server_errors: Vec<_> = recorded.iter().filter(|r| r.code >= 500).collect();
    assert!(
        server_errors.is_empty(),
        "requests of the operator the server failed on:\n{server_errors:#?}"
    );
    let requests: Vec<_> = recorded
        .into_iter()
        .filter(|r| !r.forbidden_by_rbac)
        .map(|r| r.request)
        .collect();
    let grants = grants_of_service_account(admin, &install.release_ns, &install.fullname()).await;
    let denied = denied(&grants, &requests);
    assert!(
        denied.is_empty(),
        "requests the server allowed but our reading of the grants does not:\n{denied:#?}"
    );
    let unused = unused(&grants, &requests, JUSTIFIED);
    assert!(
        unused.is_empty(),
        "the chart grants rights the operator never used (remove them or justify them):\n{unused:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_installed_cluster_wide_works_within_exactly_the_rbac_it_uses() {
    install_and_operate(false, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_installed_for_one_namespace_works_within_exactly_the_rbac_it_uses() {
    install_and_operate(true, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_rollout_restart_rights_restarts_are_refused_and_the_chart_value_is_named() {
    install_and_operate(true, false).await;
}
