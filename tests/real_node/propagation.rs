//! How long the kubelet takes to bring a Secret update into a mounted file, on this node
//! (its `syncFrequency`, scripts/node.sh): a pod polls the mounted file every 20 ms and logs
//! each new value with the time it saw it; the test updates the Secret, records the time
//! the update was accepted, and waits for the pod's line. Printed: p50 and p99 (and the
//! range) over NODE_PROPAGATION_UPDATES updates (default 20). Nothing is asserted about the
//! figures; the test asserts that every update arrived, in order.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::{
    Api,
    api::{Patch, PatchParams, PostParams},
};
use rand::Rng;
use serde_json::json;

use crate::kit::{Scope, WAIT, consumer_image, logs, percentile, pod_summary, wait_for};

const WATCHER: &str = "import os,time\n\
f='/probe/value'\n\
last=None\n\
while True:\n\
\x20   try:\n\
\x20       v=open(f).read()\n\
\x20   except OSError:\n\
\x20       v=None\n\
\x20   if v!=last:\n\
\x20       print(f'seen {v} at={time.time():.3f}',flush=True)\n\
\x20       last=v\n\
\x20   time.sleep(0.02)\n";

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secret_to_file_propagation_is_measured() {
    let _one = crate::exclusive().await;
    let updates: usize = std::env::var("NODE_PROPAGATION_UPDATES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let mut scope = Scope::new("propagation").await;
    let ns = scope.namespace("probe").await;
    let outcome = {
        use futures::FutureExt;
        std::panic::AssertUnwindSafe(async {
            let secrets: Api<Secret> = Api::namespaced(scope.client.clone(), &ns);
            secrets
                .create(
                    &PostParams::default(),
                    &serde_json::from_value(json!({"metadata": {"name": "probe"}, "stringData": {"value": "0"}}))
                        .unwrap(),
                )
                .await
                .unwrap();
            let pods: Api<Pod> = Api::namespaced(scope.client.clone(), &ns);
            let pod = json!({
                "metadata": {"name": "watcher"},
                "spec": {
                    "hostNetwork": true,
                    "terminationGracePeriodSeconds": 1,
                    "securityContext": {"runAsUser": 1000, "runAsNonRoot": true},
                    "volumes": [{"name": "probe", "secret": {"secretName": "probe"}}],
                    "containers": [{
                        "name": "watcher",
                        "image": consumer_image(),
                        "imagePullPolicy": "Never",
                        "command": ["python3.11", "-c", WATCHER],
                        "volumeMounts": [{"name": "probe", "mountPath": "/probe", "readOnly": true}],
                    }],
                },
            });
            pods.create(&PostParams::default(), &serde_json::from_value(pod).unwrap())
                .await
                .unwrap();
            wait_for("the watcher saw value 0", WAIT, || async {
                logs(&scope.client, &ns, "watcher")
                    .await
                    .contains("seen 0 at=")
                    .then_some(())
            })
            .await;

            let mut delays = Vec::new();
            for i in 1..=updates {
                // Not in step with the kubelet's sync loop.
                let pause = rand::thread_rng().gen_range(0..2000);
                tokio::time::sleep(Duration::from_millis(pause)).await;
                secrets
                    .patch(
                        "probe",
                        &PatchParams::default(),
                        &Patch::Merge(json!({"stringData": {"value": i.to_string()}})),
                    )
                    .await
                    .unwrap();
                let updated = now();
                let needle = format!("seen {i} at=");
                let seen: f64 = wait_for(&format!("update {i} in the file"), WAIT, || async {
                    let log = logs(&scope.client, &ns, "watcher").await;
                    let at = log.lines().find_map(|l| l.strip_prefix(&needle))?;
                    at.trim().parse().ok()
                })
                .await;
                delays.push(seen - updated);
            }
            let mut sorted = delays.clone();
            sorted.sort_by(|a, b| a.partial_cmp(b).unwrap());
            println!(
                "node: Secret-to-file propagation over {updates} updates: p50 {:.1} s, p99 {:.1} s \
                 (min {:.1} s, max {:.1} s; kubelet syncFrequency {})",
                percentile(&sorted, 50.0),
                percentile(&sorted, 99.0),
                sorted[0],
                sorted[sorted.len() - 1],
                crate::kit::cluster_env()
                    .get("NODE_SYNC_FREQUENCY")
                    .cloned()
                    .unwrap_or_else(|| "?".into())
            );
            assert!(delays.iter().all(|d| *d > 0.0), "{delays:?}");
        })
        .catch_unwind()
        .await
    };
    if outcome.is_err() {
        eprintln!("pods of {ns}:\n{}", pod_summary(&scope.client, &ns).await);
    }
    scope.finish().await;
    outcome.unwrap_or_else(|panic| std::panic::resume_unwind(panic));
}
