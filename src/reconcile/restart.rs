//! Rollout restarts of the workloads that read the token from environment variables (they
//! only see a new token when their pods are recreated), done the way `kubectl rollout
//! restart` does it: a new `restartedAt` annotation on the pod template.

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use kube::{
    Api, Client,
    api::{Patch, PatchParams},
};

use super::{FIELD_MANAGER, events::Notice};
use crate::resource::{RolloutKind, RolloutRestartTarget};

pub const RESTARTED_AT_ANNOTATION: &str = "kubectl.kubernetes.io/restartedAt";

/// Restarts each target; a missing target, a forbidden or failed patch becomes a Warning
/// notice naming what went wrong, never a reconcile failure (the token is already in place).
pub async fn restart_targets(
    client: &Client,
    namespace: &str,
    targets: &[RolloutRestartTarget],
    now: Timestamp,
) -> Vec<Notice> {
    let mut notices = Vec::new();
    for target in targets {
        let kind = format!("{:?}", target.kind);
        let result = match target.kind {
            RolloutKind::Deployment => {
                patch::<Deployment>(client, namespace, &target.name, now).await
            }
            RolloutKind::StatefulSet => {
                patch::<StatefulSet>(client, namespace, &target.name, now).await
            }
            RolloutKind::DaemonSet => {
                patch::<DaemonSet>(client, namespace, &target.name, now).await
            }
        };
        match result {
            Ok(()) => notices.push(Notice::Restarted {
                kind,
                name: target.name.clone(),
            }),
            Err(kube::Error::Api(status)) if status.code == 404 => {
                notices.push(Notice::RestartTargetMissing {
                    kind,
                    name: target.name.clone(),
                })
            }
            Err(kube::Error::Api(status)) if status.code == 403 => {
                tracing::warn!(%kind, name = %target.name, "forbidden to restart a rollout target");
                notices.push(Notice::RestartForbidden {
                    kind,
                    name: target.name.clone(),
                })
            }
            Err(error) => {
                tracing::warn!(%kind, name = %target.name, error = %super::error::sanitize(&error), "failed to restart a rollout target");
                notices.push(Notice::RestartFailed {
                    kind,
                    name: target.name.clone(),
                    error: super::error::sanitize(&error),
                });
            }
        }
    }
    notices
}

async fn patch<K>(
    client: &Client,
    namespace: &str,
    name: &str,
    now: Timestamp,
) -> Result<(), kube::Error>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    let api: Api<K> = Api::namespaced(client.clone(), namespace);
    let body = serde_json::json!({
        "spec": {"template": {"metadata": {"annotations": {RESTARTED_AT_ANNOTATION: now.to_string()}}}}
    });
    api.patch(
        name,
        &PatchParams::apply(FIELD_MANAGER),
        &Patch::Merge(&body),
    )
    .await
    .map(|_| ())
}
