//! The nudge (issue 24): a merge patch of an annotation on a running pod makes its kubelet
//! sync the pod, which remounts its `secret` and `projected` volumes from the kubelet's
//! Secret cache (kept current by a watch), so an updated Secret reaches the mounted files
//! at once instead of at the pod's next periodic sync. `subPath` mounts never update.
//!
//! The assertion is about the mechanism, not a time, and cannot pass by chance: the test
//! first reads the kubelet's own configuration (/configz) and requires a `syncFrequency` of
//! at least 5 minutes (scripts/node-suite.sh restarts the kubelet with 10m for this test),
//! so no periodic sync of a pod started during the test can happen before it ends. Then a
//! nudged pod must show each new value, and a control pod on the same node, mounting the
//! same Secret the same ways but never patched, must still show the first value after every
//! round; at the end the control pod is nudged too and must catch up.
//!
//! The figures (time from the Secret update to the file, with and without the nudge, at the
//! kubelet's default sync) come from `scripts/nudge-experiment.sh`.

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::{
    Api, Client,
    api::{Patch, PatchParams, PostParams},
};
use serde_json::json;

use crate::kit::{Scope, WAIT, cluster_env, kubeconfig_path, logs, pod_summary, wait_for};

/// Reads /s/token, /p/token and /sub/token every 0.2 s; prints each new value.
const READER: &str = r#"
B=/bin/busybox; s=; p=; u=
while :; do
  v=; read -r v </s/token; [ "$v" != "$s" ] && { echo "seen s $v"; s=$v; }
  v=; read -r v </p/token; [ "$v" != "$p" ] && { echo "seen p $v"; p=$v; }
  if [ -e /sub/token ]; then v=; read -r v </sub/token; [ "$v" != "$u" ] && { echo "seen sub $v"; u=$v; }; fi
  $B sleep 0.2
done
"#;

/// Generous: a nudge takes well under a second on an idle node; the bound only has to be
/// far below the periodic sync (at least 5 minutes here).
const NUDGE_LIMIT: Duration = Duration::from_secs(60);

/// The kubelet's `syncFrequency` as it runs, from its /configz (the kubelet's own port:
/// the API server does not proxy to a loopback node).
fn kubelet_sync_frequency() -> Duration {
    let env = cluster_env();
    let url = env
        .get("KUBELET_URL")
        .expect("KUBELET_URL in the node's env (scripts/node.sh)");
    let pki = kubeconfig_path().parent().unwrap().join("pki");
    let out = std::process::Command::new("curl")
        // -k: the kubelet's serving certificate is self-signed (scripts/node.sh); the
        // request stays on loopback and carries the admin client certificate.
        .args(["-sfk", "--cert"])
        .arg(pki.join("admin.crt"))
        .arg("--key")
        .arg(pki.join("admin.key"))
        .arg(format!("{url}/configz"))
        .output()
        .expect("run curl");
    assert!(out.status.success(), "GET {url}/configz: {out:?}");
    let config: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let text = config["kubeletconfig"]["syncFrequency"]
        .as_str()
        .expect("kubeletconfig.syncFrequency")
        .to_string();
    go_duration(&text).unwrap_or_else(|| panic!("cannot read syncFrequency {text:?}"))
}

/// How long after its start a pod's kubelet syncs stop (start events, status): generous.
const SETTLE: Duration = Duration::from_secs(10);

/// A Go duration as the kubelet prints it: "10m0s", "1m0s", "10s", "1h0m0s".
fn go_duration(text: &str) -> Option<Duration> {
    let mut total = 0.0;
    let mut number = String::new();
    for c in text.chars() {
        match c {
            '0'..='9' | '.' => number.push(c),
            'h' | 'm' | 's' => {
                let unit = match c {
                    'h' => 3600.0,
                    'm' => 60.0,
                    _ => 1.0,
                };
                total += number.parse::<f64>().ok()? * unit;
                number.clear();
            }
            _ => return None,
        }
    }
    number.is_empty().then(|| Duration::from_secs_f64(total))
}

fn reader_pod(name: &str, image: &str, node: &str, subpath: bool) -> Pod {
    let mut mounts = vec![
        json!({"name": "s", "mountPath": "/s"}),
        json!({"name": "p", "mountPath": "/p"}),
    ];
    if subpath {
        mounts.push(json!({"name": "s", "mountPath": "/sub/token", "subPath": "token"}));
    }
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {
            "nodeName": node,
            "hostNetwork": true,
            "terminationGracePeriodSeconds": 1,
            "automountServiceAccountToken": false,
            "volumes": [
                {"name": "s", "secret": {"secretName": "tok"}},
                {"name": "p", "projected": {"sources": [{"secret": {"name": "tok"}}]}},
            ],
            "containers": [{
                "name": "c",
                "image": image,
                "imagePullPolicy": "Never",
                "command": ["/bin/busybox", "sh", "-c", READER],
                "volumeMounts": mounts,
            }],
        },
    }))
    .unwrap()
}

/// The last value `pod` read from `volume` (s, p or sub).
async fn current(client: &Client, ns: &str, pod: &str, volume: &str) -> Option<String> {
    let prefix = format!("seen {volume} ");
    logs(client, ns, pod)
        .await
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix(&prefix))
        .map(str::to_string)
}

async fn nudge(pods: &Api<Pod>, name: &str, value: &str) {
    pods.patch(
        name,
        &PatchParams::default(),
        &Patch::Merge(
            json!({"metadata": {"annotations": {"clear-operator.io/token-nudge": value}}}),
        ),
    )
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nudge_annotation_refreshes_mounted_secret_before_the_periodic_sync() {
    let _one = crate::exclusive().await;
    let sync = kubelet_sync_frequency();
    assert!(
        sync >= Duration::from_secs(300),
        "this test needs the kubelet at syncFrequency >= 5m, so that only the nudge can refresh \
         a volume during it; it runs at {sync:?} (scripts/node-suite.sh restarts the kubelet \
         with NODE_SYNC_FREQUENCY=10m before this test)"
    );
    let env = cluster_env();
    let image = env
        .get("BUSYBOX_IMAGE")
        .expect("BUSYBOX_IMAGE in the node's env")
        .clone();
    let node = env["NODE_NAME"].clone();
    let mut scope = Scope::new("nudge").await;
    let ns = scope.namespace("nudge").await;
    let outcome = {
        use futures::FutureExt;
        std::panic::AssertUnwindSafe(async {
            let client = scope.client.clone();
            let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
            let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
            secrets
                .create(
                    &PostParams::default(),
                    &serde_json::from_value(json!({"metadata": {"name": "tok"}, "stringData": {"token": "v0"}}))
                        .unwrap(),
                )
                .await
                .unwrap();
            for (name, subpath) in [("nudged", true), ("control", false)] {
                pods.create(&PostParams::default(), &reader_pod(name, &image, &node, subpath))
                    .await
                    .unwrap();
            }
            for (pod, volume) in [("nudged", "s"), ("nudged", "p"), ("nudged", "sub"), ("control", "s"), ("control", "p")] {
                wait_for(&format!("{pod} reads v0 from /{volume}"), WAIT, || async {
                    (current(&client, &ns, pod, volume).await.as_deref() == Some("v0")).then_some(())
                })
                .await;
            }

            // Any sync of a pod remounts its volumes, and a new pod is synced again on its
            // container's start event (the kubelet's PLEG relists every second): let those
            // pass, so that from here on only a nudge (or the 10-minute resync) syncs them.
            tokio::time::sleep(SETTLE).await;

            for round in 1..=3 {
                let value = format!("r{round}");
                secrets
                    .patch("tok", &PatchParams::default(), &Patch::Merge(json!({"stringData": {"token": value}})))
                    .await
                    .unwrap();
                let updated = Instant::now();
                nudge(&pods, "nudged", &round.to_string()).await;
                for volume in ["s", "p"] {
                    wait_for(&format!("{value} in the nudged pod's {volume} volume"), NUDGE_LIMIT, || async {
                        (current(&client, &ns, "nudged", volume).await.as_deref() == Some(value.as_str()))
                            .then_some(())
                    })
                    .await;
                }
                println!(
                    "node: nudge round {round}: {value} in the nudged pod's secret and projected volumes {:.2} s \
                     after the Secret update (kubelet syncFrequency {sync:?})",
                    updated.elapsed().as_secs_f64()
                );
                // The control pod, never patched, has not been synced since it started.
                for volume in ["s", "p"] {
                    assert_eq!(
                        current(&client, &ns, "control", volume).await.as_deref(),
                        Some("v0"),
                        "the control pod's {volume} volume changed without a nudge: a periodic or \
                         other sync happened, so this run proves nothing about the nudge"
                    );
                }
                assert_eq!(
                    current(&client, &ns, "nudged", "sub").await.as_deref(),
                    Some("v0"),
                    "a subPath mount never updates"
                );
            }

            // The control pod was stale only for want of a nudge.
            nudge(&pods, "control", "1").await;
            for volume in ["s", "p"] {
                wait_for(&format!("r3 in the control pod's {volume} volume once nudged"), NUDGE_LIMIT, || async {
                    (current(&client, &ns, "control", volume).await.as_deref() == Some("r3")).then_some(())
                })
                .await;
            }
        })
        .catch_unwind()
        .await
    };
    if outcome.is_err() {
        eprintln!("pods of {ns}:\n{}", pod_summary(&scope.client, &ns).await);
        for pod in ["nudged", "control"] {
            eprintln!("log of {pod}:\n{}", logs(&scope.client, &ns, pod).await);
        }
    }
    scope.finish().await;
    outcome.unwrap_or_else(|panic| std::panic::resume_unwind(panic));
}

#[test]
fn go_durations_parse() {
    assert_eq!(go_duration("10m0s"), Some(Duration::from_secs(600)));
    assert_eq!(go_duration("1m0s"), Some(Duration::from_secs(60)));
    assert_eq!(go_duration("10s"), Some(Duration::from_secs(10)));
    assert_eq!(go_duration("1h0m0s"), Some(Duration::from_secs(3600)));
    assert_eq!(go_duration("1.5s"), Some(Duration::from_millis(1500)));
    assert_eq!(go_duration("10"), None);
}

/// Reads /s/accessToken every 0.2 s and prints the fingerprint of each new token (12 hex
/// characters of its SHA-256, as status shows it: never the token).
const TOKEN_READER: &str = r#"
B=/bin/busybox; s=
while :; do
  v=$($B sha256sum /s/accessToken 2>/dev/null | $B cut -c1-12)
  [ -n "$v" ] && [ "$v" != "$s" ] && { echo "seen $v"; s=$v; }
  $B sleep 0.2
done
"#;

fn token_reader_pod(image: &str, node: &str, secret: &str) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": "reader"},
        "spec": {
            "nodeName": node,
            "hostNetwork": true,
            "terminationGracePeriodSeconds": 1,
            "automountServiceAccountToken": false,
            "volumes": [{"name": "s", "secret": {"secretName": secret}}],
            "containers": [{
                "name": "c",
                "image": image,
                "imagePullPolicy": "Never",
                "command": ["/bin/busybox", "sh", "-c", TOKEN_READER],
                "volumeMounts": [{"name": "s", "mountPath": "/s"}],
            }],
        },
    }))
    .unwrap()
}

/// The fingerprint of the token the reader pod of `ns` last saw.
async fn seen(client: &Client, ns: &str) -> Option<String> {
    logs(client, ns, "reader")
        .await
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("seen "))
        .map(str::to_string)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_nudges_the_pods_that_mount_a_new_token_and_leaves_opted_out_ones_alone() {
    use clear_operator::{
        cli::RunArgs, commands::regenerate::request_regeneration, resource::ClearApiClient,
    };
    use clear_sandbox::{ClientConfig, Sandbox, SandboxConfig};

    let _one = crate::exclusive().await;
    // NB: the operator's own log lines (never a token) say what it nudged, should a round fail.
    let _ = tracing_subscriber::fmt()
        .with_env_filter("warn,clear_operator::reconcile=info")
        .with_test_writer()
        .try_init();
    let sync = kubelet_sync_frequency();
    assert!(
        sync >= Duration::from_secs(300),
        "this test needs the kubelet at syncFrequency >= 5m (it runs at {sync:?})"
    );
    let env = cluster_env();
    let image = env["BUSYBOX_IMAGE"].clone();
    let node = env["NODE_NAME"].clone();
    crate::kit::apply_crds().await;
    let secrets = [
        format!("cs-nudge-a-{}", crate::kit::random_suffix()),
        format!("cs-nudge-b-{}", crate::kit::random_suffix()),
    ];
    let sandbox = Sandbox::start(SandboxConfig::new(
        secrets
            .iter()
            .map(|s| ClientConfig::new(s.clone(), crate::kit::WORKSPACE).with_products(["GST"]))
            .collect(),
    ))
    .await
    .expect("simulator");
    let mut scope = Scope::new("opnudge").await;
    let nudged_ns = scope.namespace("opnudge-a").await;
    let opted_out_ns = scope.namespace("opnudge-b").await;
    let client = scope.client.clone();
    let shutdown = tokio_util::sync::CancellationToken::new();
    let outcome = {
        use futures::FutureExt;
        std::panic::AssertUnwindSafe(async {
            for (ns, secret, extra) in [
                (&nudged_ns, &secrets[0], json!({})),
                (&opted_out_ns, &secrets[1], json!({"target": {"nudgePods": false}})),
            ] {
                crate::kit::put_client_secret(&client, ns, secret).await;
                Api::<ClearApiClient>::namespaced(client.clone(), ns)
                    .create(&PostParams::default(), &crate::kit::cac("tok", &sandbox, extra))
                    .await
                    .unwrap();
            }
            let args = RunArgs {
                namespaces: vec![nudged_ns.clone(), opted_out_ns.clone()],
                clear: clear_operator::cli::ClearAccessArgs {
                    allowed_base_urls: vec![
                        clear_operator::clear::parse_base_url(sandbox.url()).unwrap(),
                    ],
                    no_documented_base_urls: true,
                    allow_http: true,
                    ..Default::default()
                },
                no_leader_election: true,
                nudge_pods: true,
                metrics_addr: "127.0.0.1:0".parse().unwrap(),
                ..RunArgs::default()
            };
            tokio::spawn(clear_operator::operator::run(
                client.clone(),
                args,
                shutdown.clone(),
            ));
            let fingerprint = |ns: String| {
                let client = client.clone();
                async move {
                    Api::<ClearApiClient>::namespaced(client, &ns)
                        .get("tok")
                        .await
                        .ok()
                        .and_then(|c| c.status)
                        .and_then(|s| s.token_fingerprint)
                }
            };
            for ns in [&nudged_ns, &opted_out_ns] {
                wait_for(&format!("a first token in {ns}"), WAIT, || fingerprint(ns.clone())).await;
                Api::<Pod>::namespaced(client.clone(), ns)
                    .create(&PostParams::default(), &token_reader_pod(&image, &node, "tok"))
                    .await
                    .unwrap();
            }
            for ns in [&nudged_ns, &opted_out_ns] {
                let first = fingerprint(ns.clone()).await.unwrap();
                wait_for(&format!("the reader of {ns} sees the first token"), WAIT, || async {
                    (seen(&client, ns).await.as_deref() == Some(first.as_str())).then_some(())
                })
                .await;
            }
            // Start-up syncs of the pods pass; from here on only a nudge (or the 10-minute
            // periodic sync) refreshes their volumes.
            tokio::time::sleep(SETTLE).await;
            let stale = fingerprint(opted_out_ns.clone()).await.unwrap();
            for round in 1..=3 {
                let before = fingerprint(nudged_ns.clone()).await.unwrap();
                for ns in [&nudged_ns, &opted_out_ns] {
                    request_regeneration(client.clone(), ns, "tok", Some(format!("round-{round}")))
                        .await
                        .unwrap();
                }
                let asked = Instant::now();
                let new = wait_for(&format!("round {round}: a new token"), WAIT, || async {
                    fingerprint(nudged_ns.clone()).await.filter(|f| *f != before)
                })
                .await;
                wait_for(&format!("round {round}: the nudged reader sees it"), NUDGE_LIMIT, || async {
                    (seen(&client, &nudged_ns).await.as_deref() == Some(new.as_str())).then_some(())
                })
                .await;
                println!(
                    "node: operator nudge round {round}: the new token in the pod's file {:.2} s after the regenerate request (kubelet syncFrequency {sync:?})",
                    asked.elapsed().as_secs_f64()
                );
                assert_eq!(
                    seen(&client, &opted_out_ns).await,
                    Some(stale.clone()),
                    "a resource with target.nudgePods: false is not nudged (and nothing else synced its pod)"
                );
            }
            assert_eq!(
                sandbox.call_counts(&secrets[0]).total,
                4,
                "one first token and three regenerations"
            );
        })
        .catch_unwind()
        .await
    };
    shutdown.cancel();
    if outcome.is_err() {
        for ns in [&nudged_ns, &opted_out_ns] {
            eprintln!("pods of {ns}:\n{}", pod_summary(&client, ns).await);
        }
    }
    scope.finish().await;
    outcome.unwrap_or_else(|panic| std::panic::resume_unwind(panic));
}
