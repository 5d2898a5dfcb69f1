//! Consumers as pods, through rotations (renewals and a regenerate) made by the operator pod:
//! - the Python and Java example clients, the Secret mounted as a directory: no request
//!   fails, and each rotation costs them one retried request, whose duration is the revoke
//!   gap they live through (printed per rotation);
//! - a pod mounting the token with `subPath`: its file never changes (docs/consumers.md);
//! - a pod taking the token from an environment variable: its token dies at the first
//!   rotation, and `rolloutRestartTargets` replaces the pod with one holding the new token.

use std::time::Duration;

use clear_operator::resource::{ClearApiClient, REGENERATE_ANNOTATION};
use clear_sandbox::{ClientConfig, Sandbox, SandboxConfig};
use k8s_openapi::api::{
    apps::v1::Deployment,
    core::v1::{Pod, Secret},
};
use kube::{
    Api,
    api::{ListParams, Patch, PatchParams, PostParams},
};
use serde_json::{Value, json};

use crate::kit::{
    Scope, WAIT, cac, consumer_image, install_operator, issued, logs, operator_images, pod_ready,
    pod_summary, put_client_secret, wait_for,
};

/// Short, so that renewals come within the test: the operator renews at a third of the
/// lifetime before expiry, about every 27 s.
const TOKEN_LIFETIME: Duration = Duration::from_secs(40);
const ENV_CONSUMER: &str = "env-consumer";

/// A pod on the node with hostNetwork (the simulator is on 127.0.0.1), as a non-root user.
fn pod(name: &str, command: Value, volumes: Value, mounts: Value, env: Value) -> Value {
    json!({
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {
            "hostNetwork": true,
            "terminationGracePeriodSeconds": 1,
            "securityContext": {"runAsUser": 1000, "runAsGroup": 1000, "runAsNonRoot": true},
            "volumes": volumes,
            "containers": [{
                "name": "consumer",
                "image": consumer_image(),
                "imagePullPolicy": "Never",
                "command": command,
                "env": env,
                "volumeMounts": mounts,
                "securityContext": {"readOnlyRootFilesystem": true, "allowPrivilegeEscalation": false},
            }],
        },
    })
}

fn token_volume() -> Value {
    json!([{"name": "clear", "secret": {"secretName": "billing"}}])
}

fn token_mount() -> Value {
    json!([{"name": "clear", "mountPath": "/var/run/clear", "readOnly": true}])
}

/// One line per request of `--every` mode: (unix time, status, took ms, retries so far).
fn requests(log: &str) -> Vec<(f64, String, u64, u64)> {
    log.lines()
        .filter(|l| l.starts_with("request "))
        .filter_map(|l| {
            let field = |k: &str| {
                l.split_whitespace()
                    .find_map(|f| f.strip_prefix(&format!("{k}=")).map(str::to_string))
            };
            Some((
                field("at")?.parse().ok()?,
                field("status")?,
                field("took_ms")?.parse().ok()?,
                field("retries_after_401")?.parse().ok()?,
            ))
        })
        .collect()
}

async fn ready_pod(scope: &Scope, ns: &str, label: &str) -> String {
    let pods: Api<Pod> = Api::namespaced(scope.client.clone(), ns);
    wait_for(&format!("a Ready pod app={label}"), WAIT, || async {
        let list = pods
            .list(&ListParams::default().labels(&format!("app={label}")))
            .await
            .ok()?;
        list.items
            .into_iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .find(pod_ready)
            .and_then(|p| p.metadata.name)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumer_pods_live_through_rotations_as_the_readme_says() {
    let _one = crate::exclusive().await;
    crate::kit::apply_crds().await;
    let mut scope = Scope::new("consumers").await;
    let system = scope.namespace("clear-system").await;
    let tenant = scope.namespace("billing").await;
    let client_secret = format!("cs-node-{}-4b8a", crate::kit::random_suffix());
    let sandbox = Sandbox::start(SandboxConfig::new(vec![
        ClientConfig::new(client_secret.clone(), crate::kit::WORKSPACE)
            .with_products(["GST"])
            .with_lifetime(TOKEN_LIFETIME),
    ]))
    .await
    .expect("simulator starts");
    let (image, _) = operator_images();

    let outcome = {
        use futures::FutureExt;
        std::panic::AssertUnwindSafe(async {
            let extra = ["--set", "rbac.rolloutRestart.enabled=true"];
            install_operator(&mut scope, "ops", &system, &image, &tenant, &sandbox, &extra).await;
            put_client_secret(&scope.client, &tenant, &client_secret).await;
            let cacs: Api<ClearApiClient> = Api::namespaced(scope.client.clone(), &tenant);
            let spec = json!({"rolloutRestartTargets": [{"kind": "Deployment", "name": ENV_CONSUMER}]});
            cacs.create(&PostParams::default(), &cac("billing", &sandbox, spec))
                .await
                .expect("ClearApiClient created");
            wait_for("the first token", WAIT, || async {
                cacs.get("billing").await.ok().filter(issued).map(|_| ())
            })
            .await;

            let pods: Api<Pod> = Api::namespaced(scope.client.clone(), &tenant);
            let python = pod(
                "python",
                json!(["python3.11", "/app/python/clear_consumer.py", "--every", "0.2"]),
                token_volume(),
                token_mount(),
                json!([]),
            );
            let java = pod(
                "java",
                json!(["java", "-Xshare:off", "-cp", "/app/java", "ClearClient", "--every", "200"]),
                token_volume(),
                token_mount(),
                json!([]),
            );
            // subPath: prints whether the file still holds what it held at start (never the token).
            let watch_same = "import time,hashlib\n\
                 f='/token/accessToken'\n\
                 first=hashlib.sha256(open(f,'rb').read()).hexdigest()\n\
                 while True:\n\
                 \x20   same=hashlib.sha256(open(f,'rb').read()).hexdigest()==first\n\
                 \x20   print('subpath same' if same else 'subpath changed', flush=True)\n\
                 \x20   time.sleep(1)\n";
            let subpath = pod(
                "subpath",
                json!(["python3.11", "-c", watch_same]),
                token_volume(),
                json!([{"name": "clear", "mountPath": "/token/accessToken", "subPath": "accessToken", "readOnly": true}]),
                json!([]),
            );
            for object in [python, java, subpath] {
                pods.create(&PostParams::default(), &serde_json::from_value(object).unwrap())
                    .await
                    .expect("consumer pod created");
            }
            // The env consumer, a Deployment the operator restarts after each new token.
            let whoami_env = format!(
                "import os,time,urllib.request\n\
                 req=urllib.request.Request('{}/integration/v1/authz/whoami',headers={{'x-cleartax-auth-token':os.environ['CLEAR_TOKEN']}})\n\
                 while True:\n\
                 \x20   try:\n\
                 \x20       status=urllib.request.urlopen(req,timeout=10).status\n\
                 \x20   except urllib.error.HTTPError as e:\n\
                 \x20       status=e.code\n\
                 \x20   print(f'request at={{time.time():.3f}} status={{status}} took_ms=0 retries_after_401=0',flush=True)\n\
                 \x20   time.sleep(0.5)\n",
                sandbox.url()
            );
            let env_pod = pod(
                ENV_CONSUMER,
                json!(["python3.11", "-c", whoami_env]),
                json!([]),
                json!([]),
                json!([{"name": "CLEAR_TOKEN", "valueFrom": {"secretKeyRef": {"name": "billing", "key": "accessToken"}}}]),
            );
            let deployment = json!({
                "metadata": {"name": ENV_CONSUMER},
                "spec": {
                    "replicas": 1,
                    "selector": {"matchLabels": {"app": ENV_CONSUMER}},
                    "template": {"metadata": env_pod["metadata"], "spec": env_pod["spec"]},
                },
            });
            Api::<Deployment>::namespaced(scope.client.clone(), &tenant)
                .create(&PostParams::default(), &serde_json::from_value(deployment).unwrap())
                .await
                .expect("env consumer created");
            for label in ["python", "java", "subpath", ENV_CONSUMER] {
                ready_pod(&scope, &tenant, label).await;
            }
            let first_env_pod = ready_pod(&scope, &tenant, ENV_CONSUMER).await;

            // Rotations: renewals every ~27 s, and one regenerate in between.
            let calls = || sandbox.call_counts(&client_secret).total;
            let start_calls = calls();
            wait_for("a renewal", WAIT, || async { (calls() > start_calls).then_some(()) }).await;
            tokio::time::sleep(Duration::from_secs(8)).await;
            cacs.patch(
                "billing",
                &PatchParams::default(),
                &Patch::Merge(json!({"metadata": {"annotations": {REGENERATE_ANNOTATION: "node-1"}}})),
            )
            .await
            .unwrap();
            wait_for("the regeneration", WAIT, || async {
                (calls() > start_calls + 1).then_some(())
            })
            .await;
            wait_for("another renewal", WAIT, || async {
                (calls() > start_calls + 2).then_some(())
            })
            .await;
            // Time for the kubelet to bring the last token, and the clients to use it.
            let secrets: Api<Secret> = Api::namespaced(scope.client.clone(), &tenant);
            let last = crate::kit::wait_for("the Secret holding the live token", WAIT, || async {
                let s = secrets.get("billing").await.ok()?;
                let token = String::from_utf8(s.data?.get("accessToken")?.0.clone()).ok()?;
                sandbox.is_token_valid(&token).then_some(())
            });
            last.await;
            tokio::time::sleep(Duration::from_secs(25)).await;
            let rotations = calls() - 1;

            let mut report = Vec::new();
            for name in ["python", "java"] {
                let log = logs(&scope.client, &tenant, name).await;
                let lines = requests(&log);
                let failed: Vec<_> = lines.iter().filter(|l| l.1 != "200").collect();
                let retried: Vec<u64> = lines
                    .windows(2)
                    .filter(|w| w[1].3 > w[0].3)
                    .map(|w| w[1].2)
                    .collect();
                assert!(lines.len() > 50, "{name}: too few requests logged:\n{log}");
                assert!(failed.is_empty(), "{name}: failed requests: {failed:?}");
                assert!(
                    !retried.is_empty(),
                    "{name}: never met a revoked token (retries {:?})",
                    lines.last()
                );
                report.push(format!(
                    "{name}: {} requests, 0 failed, {} retried after a 401; revoke gap per rotation (ms): {:?}",
                    lines.len(),
                    lines.last().map(|l| l.3).unwrap_or(0),
                    retried
                ));
            }
            // subPath: never updated.
            let subpath_log = logs(&scope.client, &tenant, "subpath").await;
            assert!(subpath_log.contains("subpath same"), "{subpath_log}");
            assert!(
                !subpath_log.contains("subpath changed"),
                "a subPath mount was updated: {subpath_log}"
            );
            // Environment variable: restarted onto a new pod that works.
            let restarted = Api::<Deployment>::namespaced(scope.client.clone(), &tenant)
                .get(ENV_CONSUMER)
                .await
                .unwrap();
            let annotation = restarted
                .spec
                .and_then(|s| s.template.metadata)
                .and_then(|m| m.annotations)
                .and_then(|a| a.get("kubectl.kubernetes.io/restartedAt").cloned());
            assert!(annotation.is_some(), "the env consumer was never restarted");
            let env_now = ready_pod(&scope, &tenant, ENV_CONSUMER).await;
            assert_ne!(env_now, first_env_pod, "a new pod replaced the env consumer");
            let env_log = logs(&scope.client, &tenant, &env_now).await;
            let env_lines = requests(&env_log);
            assert!(
                env_lines.last().is_some_and(|l| l.1 == "200"),
                "the restarted env consumer works: {env_log}"
            );
            println!("node: {rotations} rotations (renewals and a regenerate) made by the operator pod");
            for line in report {
                println!("node: {line}");
            }
            println!(
                "node: subPath pod: file never changed; env pod: restarted ({first_env_pod} -> {env_now}), new pod answered 200"
            );
        })
        .catch_unwind()
        .await
    };
    if outcome.is_err() {
        eprintln!(
            "pods of {tenant}:\n{}",
            pod_summary(&scope.client, &tenant).await
        );
        eprintln!(
            "pods of {system}:\n{}",
            pod_summary(&scope.client, &system).await
        );
    }
    scope.finish().await;
    let _ = sandbox.shutdown().await;
    outcome.unwrap_or_else(|panic| std::panic::resume_unwind(panic));
}
