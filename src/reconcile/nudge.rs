//! The nudge step, after a new token reached its Secret: the pods that mount that Secret as
//! files get an annotation patched, which makes their kubelet sync the pod now and remount
//! its Secret volumes (the kubelet's Secret cache, watch-based by default, already holds the
//! new value), instead of at its next periodic sync, a minute or more later, while the pod
//! sends the token this mint revoked. Pods come from the pod index (a watch), never from a
//! list per rotation; each is patched once per token, fenced; a failure is a Warning, not a
//! retry (the periodic sync still brings the token).

use k8s_openapi::api::core::v1::Pod;
use kube::{
    Api,
    api::{Patch, PatchParams},
};
use tracing::{info, warn};

use super::{error::sanitize, events::Notice, step::Step};
use crate::kube_client::FIELD_MANAGER;

/// The annotation patched on a pod after each new token: when that token was issued.
// NB: a value of its own for every token (an unchanged value makes the patch a no-op the
// kubelet never sees), and nothing derived from the token.
pub const NUDGE_ANNOTATION: &str = "clear-operator.io/token-nudge";

/// Nudges the pods that mount `secret_name` (see the module documentation).
pub(super) async fn nudge(step: &Step<'_>, secret_name: &str, issued_at: jiff::Timestamp) {
    let (ctx, cac) = (step.ctx, &step.fetched.cac);
    let opted_out = cac.spec.target.as_ref().and_then(|t| t.nudge_pods) == Some(false);
    if !ctx.settings.nudge_pods || opted_out {
        return;
    }
    let (namespace, _) = step.key();
    let pods = ctx.services.pods.mounting(&namespace, secret_name);
    if pods.is_empty() {
        return;
    }
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), &namespace);
    let patch = serde_json::json!({
        "metadata": {"annotations": {NUDGE_ANNOTATION: issued_at.to_string()}}
    });
    let params = PatchParams {
        field_manager: Some(FIELD_MANAGER.to_string()),
        ..PatchParams::default()
    };
    let (mut nudged, mut failed) = (0usize, Vec::new());
    for pod in &pods {
        // NB: fenced like every other write: a replica that lost the Lease patches nothing.
        if ctx.fence.check().is_err() {
            return;
        }
        match api.patch(pod, &params, &Patch::Merge(&patch)).await {
            Ok(_) => nudged += 1,
            // NB: gone since the index saw it: nothing to nudge.
            Err(kube::Error::Api(status)) if status.code == 404 => {}
            Err(error) => failed.push((pod.clone(), sanitize(&error))),
        }
    }
    info!(
        nudged,
        failed = failed.len(),
        secret = secret_name,
        "nudged the kubelets of the pods that mount the token"
    );
    if let Some((pod, error)) = failed.first() {
        warn!(%pod, %error, "could not nudge a pod that mounts the token; its kubelet's periodic sync will bring it");
        step.publish(Notice::NudgeFailed {
            pods: failed.len(),
            first: pod.clone(),
            error: error.clone(),
        })
        .await;
    }
}
