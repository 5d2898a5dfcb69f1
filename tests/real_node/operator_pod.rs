//! The operator as the chart's pod: started by the kubelet from the image the Dockerfile
//! builds, under the chart's security context (non-root 65532, read-only root), reading its
//! projected ServiceAccount token and in-cluster configuration, passing its probes, taking
//! the Lease and reconciling; a `helm upgrade` to a new tag rolls the pod without a call to
//! Clear; and deleting the leader pod during a slow call hands over to the standby.

use std::time::Duration;

use clear_operator::resource::{ClearApiClient, REGENERATE_ANNOTATION};
use clear_sandbox::{ClientConfig, Fault, FaultScope, Sandbox, SandboxConfig, SandboxHandle};
use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::{
    Api,
    api::{DeleteParams, Patch, PatchParams, PostParams},
};
use serde_json::json;

use crate::{
    chart_support::helm,
    kit::{
        Release, Scope, WAIT, cac, held_by, install_operator, issued, lease_holder, logs,
        operator_images, pod_summary, put_client_secret, ready_pods, restarts, wait_for,
    },
};

/// The simulator mints at once, then holds its answer back this long.
const SLOW_ANSWER: Duration = Duration::from_secs(8);

/// The token in the Secret is the simulator's current, live one.
async fn live_token_in_secret(
    secrets: &Api<Secret>,
    sandbox: &SandboxHandle,
    secret: &str,
) -> bool {
    let Some(token) = secrets
        .get_opt("billing")
        .await
        .ok()
        .flatten()
        .and_then(|s| s.data)
        .and_then(|d| d.get("accessToken").cloned())
    else {
        return false;
    };
    let token = String::from_utf8(token.0).unwrap_or_default();
    sandbox.is_token_valid(&token)
        && sandbox
            .current_token(secret)
            .is_some_and(|t| t.token.expose() == token)
}

async fn one_ready_pod(scope: &Scope, release: &Release, image: &str) -> Pod {
    let client = scope.client.clone();
    wait_for(
        &format!("one Ready pod of {} running {image}", release.name),
        WAIT,
        || async {
            let pods = ready_pods(&client, release, image).await;
            (pods.len() == 1).then(|| pods.into_iter().next().unwrap())
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_runs_as_the_charts_pod_and_a_helm_upgrade_rolls_it_without_a_call() {
    let _one = crate::exclusive().await;
    crate::kit::apply_crds().await;
    let mut scope = Scope::new("operator").await;
    let system = scope.namespace("clear-system").await;
    let tenant = scope.namespace("billing").await;
    let client_secret = format!("cs-node-{}-7c1e", crate::kit::random_suffix());
    let sandbox = Sandbox::start(SandboxConfig::new(vec![
        ClientConfig::new(client_secret.clone(), crate::kit::WORKSPACE).with_products(["GST"]),
    ]))
    .await
    .expect("simulator starts");
    let (image_a, image_b) = operator_images();

    let outcome = {
        use futures::FutureExt;
        std::panic::AssertUnwindSafe(async {
            let release =
                install_operator(&mut scope, "ops", &system, &image_a, &tenant, &sandbox, &[])
                    .await;
            // Started by the kubelet, probes passing (Ready), under the chart's security context.
            let pod = one_ready_pod(&scope, &release, &image_a).await;
            let pod_name = pod.metadata.name.clone().unwrap();
            let spec = pod.spec.clone().unwrap();
            assert_eq!(spec.host_network, Some(true));
            let security = spec.containers[0].security_context.clone().unwrap();
            assert_eq!(security.read_only_root_filesystem, Some(true));
            assert_eq!(
                spec.security_context.unwrap().run_as_user,
                Some(65532),
                "the image's user"
            );

            put_client_secret(&scope.client, &tenant, &client_secret).await;
            let cacs: Api<ClearApiClient> = Api::namespaced(scope.client.clone(), &tenant);
            cacs.create(&PostParams::default(), &cac("billing", &sandbox, json!({})))
                .await
                .expect("ClearApiClient created");
            let secrets: Api<Secret> = Api::namespaced(scope.client.clone(), &tenant);
            wait_for("the token issued by the pod", WAIT, || async {
                let issued = cacs.get("billing").await.ok().filter(issued);
                (issued.is_some() && live_token_in_secret(&secrets, &sandbox, &client_secret).await)
                    .then_some(())
            })
            .await;
            assert_eq!(sandbox.call_counts(&client_secret).total, 1, "one call");
            // In-cluster configuration and the projected token worked: the pod holds the Lease.
            let holder = lease_holder(&scope.client, &system, &release.fullname()).await;
            assert!(
                holder.as_deref().is_some_and(|h| held_by(h, &pod_name)),
                "the pod took the Lease: {holder:?}"
            );
            assert_eq!(restarts(&pod), 0, "{}", logs(&scope.client, &system, &pod_name).await);

            // helm upgrade to another tag: a new pod replaces the old one, takes the Lease, and
            // finds the token it has: no call.
            let (repository, tag_b) = image_b.rsplit_once(':').unwrap();
            let chart = crate::chart_support::repo_root().join("charts/clear-operator");
            let tag = format!("image.tag={tag_b}");
            let repo = format!("image.repository={repository}");
            helm(
                &scope.dir,
                &[
                    "upgrade",
                    &release.name,
                    chart.to_str().unwrap(),
                    "--namespace",
                    &system,
                    "--reuse-values",
                    "--set",
                    &repo,
                    "--set",
                    &tag,
                ],
            )
            .await;
            let rolled = one_ready_pod(&scope, &release, &image_b).await;
            let rolled_name = rolled.metadata.name.clone().unwrap();
            assert_ne!(rolled_name, pod_name);
            let pods: Api<Pod> = Api::namespaced(scope.client.clone(), &system);
            wait_for("the old pod gone", WAIT, || async {
                pods.get_opt(&pod_name).await.ok()?.is_none().then_some(())
            })
            .await;
            wait_for("the new pod leading", WAIT, || async {
                lease_holder(&scope.client, &system, &release.fullname())
                    .await
                    .filter(|h| held_by(h, &rolled_name))
                    .map(|_| ())
            })
            .await;
            // A spurious event, and time to act on it: still the one token.
            cacs.patch(
                "billing",
                &PatchParams::default(),
                &Patch::Merge(json!({"metadata": {"annotations": {"example.com/poke": "1"}}})),
            )
            .await
            .unwrap();
            tokio::time::sleep(Duration::from_secs(5)).await;
            assert_eq!(
                sandbox.call_counts(&client_secret).total,
                1,
                "the rolled pod made no call; its log:\n{}",
                logs(&scope.client, &system, &rolled_name).await
            );
            assert!(issued(&cacs.get("billing").await.unwrap()));
            assert!(live_token_in_secret(&secrets, &sandbox, &client_secret).await);
            println!(
                "node: operator pod Ready, Lease taken, 1 call; helm upgrade rolled {pod_name} -> {rolled_name} with 0 calls"
            );
        })
        .catch_unwind()
        .await
    };
    if outcome.is_err() {
        eprintln!(
            "pods of {system}:\n{}",
            pod_summary(&scope.client, &system).await
        );
    }
    scope.finish().await;
    let _ = sandbox.shutdown().await;
    outcome.unwrap_or_else(|panic| std::panic::resume_unwind(panic));
}

/// Two operator pods compete for one Lease. NB: two releases (each with its own metrics
/// port) rather than `replicaCount: 2`: hostNetwork pods on one node share its ports, so
/// two replicas of one Deployment cannot both listen.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_the_leader_pod_during_a_slow_call_hands_over_to_the_standby() {
    let _one = crate::exclusive().await;
    crate::kit::apply_crds().await;
    let mut scope = Scope::new("failover").await;
    let system = scope.namespace("clear-system").await;
    let tenant = scope.namespace("billing").await;
    let client_secret = format!("cs-node-{}-9d2f", crate::kit::random_suffix());
    let sandbox = Sandbox::start(SandboxConfig::new(vec![
        ClientConfig::new(client_secret.clone(), crate::kit::WORKSPACE).with_products(["GST"]),
    ]))
    .await
    .expect("simulator starts");
    let (image, _) = operator_images();
    let lease = format!("clear-failover-{}", crate::kit::random_suffix());
    let lease_set = format!("operator.leaseName={lease}");

    let outcome = {
        use futures::FutureExt;
        std::panic::AssertUnwindSafe(async {
            let extra = ["--set", lease_set.as_str()];
            let a = install_operator(&mut scope, "ops-a", &system, &image, &tenant, &sandbox, &extra)
                .await;
            let b = install_operator(&mut scope, "ops-b", &system, &image, &tenant, &sandbox, &extra)
                .await;
            let pod_a = one_ready_pod(&scope, &a, &image).await.metadata.name.unwrap();
            let pod_b = one_ready_pod(&scope, &b, &image).await.metadata.name.unwrap();

            put_client_secret(&scope.client, &tenant, &client_secret).await;
            let cacs: Api<ClearApiClient> = Api::namespaced(scope.client.clone(), &tenant);
            cacs.create(&PostParams::default(), &cac("billing", &sandbox, json!({})))
                .await
                .expect("ClearApiClient created");
            let secrets: Api<Secret> = Api::namespaced(scope.client.clone(), &tenant);
            wait_for("the first token", WAIT, || async {
                let ok = cacs.get("billing").await.ok().filter(issued).is_some();
                (ok && live_token_in_secret(&secrets, &sandbox, &client_secret).await).then_some(())
            })
            .await;
            assert_eq!(sandbox.call_counts(&client_secret).total, 1);
            let identity = lease_holder(&scope.client, &system, &lease)
                .await
                .expect("a leader");
            assert!(
                held_by(&identity, &pod_a) || held_by(&identity, &pod_b),
                "leader {identity}"
            );
            let (leader, standby) = if held_by(&identity, &pod_a) {
                (pod_a.clone(), pod_b.clone())
            } else {
                (pod_b.clone(), pod_a.clone())
            };

            // A regeneration whose call is slow; the leader pod is deleted while it waits.
            sandbox.inject_fault(
                FaultScope::Secret(client_secret.clone().into()),
                Fault::Delay(SLOW_ANSWER),
                1,
            );
            cacs.patch(
                "billing",
                &PatchParams::default(),
                &Patch::Merge(json!({"metadata": {"annotations": {REGENERATE_ANNOTATION: "rotate-1"}}})),
            )
            .await
            .unwrap();
            wait_for("the slow call reached Clear", WAIT, || async {
                (sandbox.call_counts(&client_secret).total == 2).then_some(())
            })
            .await;
            let pods: Api<Pod> = Api::namespaced(scope.client.clone(), &system);
            pods.delete(&leader, &DeleteParams::default())
                .await
                .expect("leader pod deleted");
            let new_leader = wait_for("another pod leading", WAIT, || async {
                lease_holder(&scope.client, &system, &lease)
                    .await
                    .filter(|h| !held_by(h, &leader))
            })
            .await;
            wait_for("a live token, Ready", WAIT, || async {
                let ok = cacs.get("billing").await.ok().filter(issued).is_some();
                (ok && live_token_in_secret(&secrets, &sandbox, &client_secret).await).then_some(())
            })
            .await;
            cacs.patch(
                "billing",
                &PatchParams::default(),
                &Patch::Merge(json!({"metadata": {"annotations": {"example.com/poke": "1"}}})),
            )
            .await
            .unwrap();
            tokio::time::sleep(Duration::from_secs(5)).await;
            let calls = sandbox.call_counts(&client_secret).total;
            println!(
                "node: failover on pods: leader {leader} deleted during a slow call; Lease taken by \
                 {new_leader} (the standby was {standby}); {calls} calls to Clear in all"
            );
            assert_eq!(
                calls,
                2,
                "the first token and the regeneration, nothing more; new leader's log:\n{}",
                logs(&scope.client, &system, crate::kit::pod_of(&new_leader)).await
            );
            assert!(live_token_in_secret(&secrets, &sandbox, &client_secret).await);
        })
        .catch_unwind()
        .await
    };
    if outcome.is_err() {
        eprintln!(
            "pods of {system}:\n{}",
            pod_summary(&scope.client, &system).await
        );
    }
    scope.finish().await;
    let _ = sandbox.shutdown().await;
    outcome.unwrap_or_else(|panic| std::panic::resume_unwind(panic));
}
