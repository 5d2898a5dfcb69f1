//! Rollout restarts of the workloads that read the token from environment variables (they
//! only see a new token when their pods are recreated), done the way `kubectl rollout
//! restart` does it: a new `restartedAt` annotation on the pod template.

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use kube::{
    Api, Client,
    api::{Patch, PatchParams},
};

use super::events::Notice;
use crate::kube_client::FIELD_MANAGER;
use crate::resource::{RolloutKind, RolloutRestartTarget};

pub const RESTARTED_AT_ANNOTATION: &str = "kubectl.kubernetes.io/restartedAt";

/// How long a failed restart waits before it is tried again (a forbidden one waits longer:
/// it needs someone to grant the right).
pub const RETRY: SignedDuration = SignedDuration::from_mins(1);
pub const FORBIDDEN_RETRY: SignedDuration = SignedDuration::from_mins(10);

/// What became of one target's restart.
pub struct Attempt {
    pub target: RolloutRestartTarget,
    pub notice: Notice,
    /// When it should be tried again; `None` when done (restarted, or gone: a workload
    /// created later starts on the current token anyway).
    pub retry_in: Option<SignedDuration>,
}

/// Restarts each target onto the token issued at `issued_at` (the `restartedAt` value, so
/// that a retry of a restart that did happen changes nothing). A missing target, a
/// forbidden or failed patch becomes a Warning notice naming what went wrong, never a
/// reconcile failure: the token is already in place.
pub async fn restart_targets(
    client: &Client,
    namespace: &str,
    targets: &[RolloutRestartTarget],
    issued_at: Timestamp,
    fence: &crate::fence::Fence,
) -> Vec<Attempt> {
    let mut attempts = Vec::new();
    for target in targets {
        let kind = format!("{:?}", target.kind);
        let name = target.name.clone();
        // NB: fenced per patch, not once for the list: a replica that lost the Lease
        // half-way leaves the rest pending for the new leader.
        if fence.check().is_err() {
            attempts.push(Attempt {
                target: target.clone(),
                notice: Notice::RestartFailed {
                    kind,
                    name,
                    error: "this replica no longer leads".to_string(),
                },
                retry_in: Some(RETRY),
            });
            continue;
        }
        let result = match target.kind {
            RolloutKind::Deployment => {
                patch::<Deployment>(client, namespace, &target.name, issued_at).await
            }
            RolloutKind::StatefulSet => {
                patch::<StatefulSet>(client, namespace, &target.name, issued_at).await
            }
            RolloutKind::DaemonSet => {
                patch::<DaemonSet>(client, namespace, &target.name, issued_at).await
            }
        };
        let (notice, retry_in) = match result {
            Ok(()) => (Notice::Restarted { kind, name }, None),
            Err(kube::Error::Api(status)) if status.code == 404 => {
                (Notice::RestartTargetMissing { kind, name }, None)
            }
            Err(kube::Error::Api(status)) if status.code == 403 => {
                tracing::warn!(%kind, %name, "forbidden to restart a rollout target");
                (
                    Notice::RestartForbidden { kind, name },
                    Some(FORBIDDEN_RETRY),
                )
            }
            Err(error) => {
                let error = super::error::sanitize(&error);
                tracing::warn!(%kind, %name, %error, "failed to restart a rollout target");
                (Notice::RestartFailed { kind, name, error }, Some(RETRY))
            }
        };
        attempts.push(Attempt {
            target: target.clone(),
            notice,
            retry_in,
        });
    }
    attempts
}

/// The pending restarts still asked for: a target removed from the spec is dropped.
pub fn still_listed(
    pending: &[RolloutRestartTarget],
    listed: &[RolloutRestartTarget],
) -> Vec<RolloutRestartTarget> {
    pending
        .iter()
        .filter(|target| listed.contains(target))
        .cloned()
        .collect()
}

async fn patch<K>(
    client: &Client,
    namespace: &str,
    name: &str,
    restarted_at: Timestamp,
) -> Result<(), kube::Error>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    let api: Api<K> = Api::namespaced(client.clone(), namespace);
    let body = serde_json::json!({
        "spec": {"template": {"metadata": {"annotations": {RESTARTED_AT_ANNOTATION: restarted_at.to_string()}}}}
    });
    api.patch(
        name,
        &PatchParams::apply(FIELD_MANAGER),
        &Patch::Merge(&body),
    )
    .await
    .map(|_| ())
}
