//! After an uninstall: ClearApiClients still holding the revoke-on-delete finalizer, and no
//! operator left to remove it, so deleting their namespace waits forever. The command the
//! chart's NOTES and both READMEs give for that
//! (`charts/clear-operator/files/remove-revoke-finalizers.sh`, checked to be the same text
//! by tests/chart_lint.rs) is run here as a user would paste it, with `sh` and the real
//! kubectl: the pending namespace deletion completes, and no other finalizer is touched.

use std::{process::Stdio, time::Duration};

use clear_operator::resource::{ClearApiClient, REVOKE_FINALIZER};
use k8s_openapi::api::core::v1::Namespace;
use kube::{
    Api, Client,
    api::{Patch, PatchParams, PostParams},
};
use serde_json::json;

use crate::{
    chart::{admin_client, create_namespace, delete_namespace, random_suffix},
    chart_support::{repo_root, tool},
};

/// Generous: the namespace controller retries a namespace whose content remains on its
/// own schedule.
const WAIT: Duration = Duration::from_secs(180);
/// Some other controller's finalizer, which the command must leave alone.
const FOREIGN_FINALIZER: &str = "example.com/backup";

fn resource(name: &str, finalizers: &[&str]) -> ClearApiClient {
    serde_json::from_value(json!({
        "apiVersion": "clear-operator.io/v1alpha1", "kind": "ClearApiClient",
        "metadata": {"name": name, "finalizers": finalizers},
        "spec": {
            "environment": "sandbox",
            "workspace": "ws-uninstalled",
            "products": ["GST"],
            "clientSecretRef": {"name": "clear-client-secret"},
            "revokeOnDelete": true,
        },
    }))
    .unwrap()
}

async fn finalizers_of(api: &Api<ClearApiClient>, name: &str) -> Vec<String> {
    api.get(name)
        .await
        .unwrap_or_else(|e| panic!("{name}: {e}"))
        .metadata
        .finalizers
        .unwrap_or_default()
}

/// Polls `check` every 500 ms until it holds; panics after [`WAIT`] naming `what`.
async fn wait_for(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "gave up waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The documented command, run by `sh` with the real kubectl first on PATH.
async fn run_the_documented_command() -> std::process::Output {
    let command = std::fs::read_to_string(
        repo_root().join("charts/clear-operator/files/remove-revoke-finalizers.sh"),
    )
    .expect("the documented command");
    let home = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("real-finalizers-home");
    std::fs::create_dir_all(&home).unwrap();
    let kubectl_dir = tool("kubectl").parent().unwrap().to_path_buf();
    let path = std::env::join_paths(std::iter::once(kubectl_dir).chain(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    )))
    .unwrap();
    let run = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(&command)
        .env("PATH", path)
        .env("HOME", &home)
        .env("KUBECONFIG", crate::kubeconfig_path())
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    tokio::time::timeout(Duration::from_secs(180), run)
        .await
        .expect("the command finished within 180s")
        .expect("sh runs")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_documented_command_lets_a_namespace_with_revoke_finalizers_be_deleted() {
    let _one_at_a_time = crate::exclusive().await;
    let (admin, _) = admin_client().await;
    clear_operator::dev::install_crd(&admin, Duration::from_secs(60))
        .await
        .expect("the CRD is installed and Established");
    let suffix = random_suffix();
    let doomed = format!("uninstalled-{suffix}");
    let kept = format!("kept-{suffix}");
    create_namespace(&admin, &doomed).await;
    create_namespace(&admin, &kept).await;

    let outcome = {
        use futures::FutureExt;
        std::panic::AssertUnwindSafe(check(&admin, &doomed, &kept, &suffix))
            .catch_unwind()
            .await
    };

    // NB: clean-up runs after a failure too: the foreign finalizer would keep `kept` forever.
    let api: Api<ClearApiClient> = Api::namespaced(admin.clone(), &kept);
    let _ = api
        .patch(
            &format!("shared-{suffix}"),
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"finalizers": null}})),
        )
        .await;
    delete_namespace(&admin, &kept).await;
    delete_namespace(&admin, &doomed).await;
    outcome.unwrap_or_else(|panic| std::panic::resume_unwind(panic));
}

async fn check(admin: &Client, doomed: &str, kept: &str, suffix: &str) {
    // NB: unique names: the command acts on the whole cluster, and kubectl's output names
    // resources without their namespace.
    let (billing, shared, plain) = (
        format!("billing-{suffix}"),
        format!("shared-{suffix}"),
        format!("plain-{suffix}"),
    );
    // What an uninstalled operator leaves behind: a resource with our finalizer in a
    // namespace being deleted, and elsewhere one that also carries another controller's
    // finalizer (ours second, so the command must find its position), and one with none.
    let in_doomed: Api<ClearApiClient> = Api::namespaced(admin.clone(), doomed);
    let in_kept: Api<ClearApiClient> = Api::namespaced(admin.clone(), kept);
    let pp = PostParams::default();
    in_doomed
        .create(&pp, &resource(&billing, &[REVOKE_FINALIZER]))
        .await
        .expect("created");
    in_kept
        .create(
            &pp,
            &resource(&shared, &[FOREIGN_FINALIZER, REVOKE_FINALIZER]),
        )
        .await
        .expect("created");
    in_kept
        .create(&pp, &resource(&plain, &[]))
        .await
        .expect("created");

    delete_namespace(admin, doomed).await;
    // Stuck, as a user finds it: the namespace controller has asked for the resource's
    // deletion, and the finalizer holds it (and so the namespace).
    wait_for("the namespace controller to delete the resource", async || {
        matches!(in_doomed.get_opt(&billing).await, Ok(Some(c)) if c.metadata.deletion_timestamp.is_some())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let namespaces: Api<Namespace> = Api::all(admin.clone());
    assert!(
        namespaces.get_opt(doomed).await.unwrap().is_some(),
        "the finalizer holds the namespace"
    );
    assert_eq!(
        finalizers_of(&in_doomed, &billing).await,
        [REVOKE_FINALIZER]
    );

    let out = run_the_documented_command().await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "the documented command failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    for name in [&billing, &shared] {
        assert!(
            stdout
                .lines()
                .any(|l| l == format!("clearapiclient.clear-operator.io/{name} patched")),
            "{name} holds the finalizer and was patched:\n{stdout}"
        );
    }
    assert!(!stdout.contains(plain.as_str()), "{stdout}");

    wait_for("the namespace deletion to complete", async || {
        matches!(namespaces.get_opt(doomed).await, Ok(None))
    })
    .await;
    assert_eq!(
        finalizers_of(&in_kept, &shared).await,
        [FOREIGN_FINALIZER],
        "only the operator's finalizer goes"
    );
    assert!(finalizers_of(&in_kept, &plain).await.is_empty());
    assert!(
        in_kept
            .get(&shared)
            .await
            .unwrap()
            .metadata
            .deletion_timestamp
            .is_none(),
        "a resource nobody deleted is not deleted"
    );

    // Nothing left to do here: a second run succeeds and patches neither again.
    let again = run_the_documented_command().await;
    let stdout = String::from_utf8_lossy(&again.stdout);
    assert!(again.status.success(), "{again:?}");
    assert!(!stdout.contains(shared.as_str()), "{stdout}");
}
