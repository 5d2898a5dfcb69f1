//! The nudge step, after a new token reached its Secret: the pods that mount that Secret as
//! files get an annotation patched, which makes their kubelet sync the pod and remount its
//! Secret volumes from the kubelet's Secret cache (kept current by a watch), instead of at
//! its next periodic sync, a minute or more later, while the pod sends the token this mint
//! revoked. Pods come from the pod index (a watch), never from a list per rotation; each is
//! patched once per token, fenced; a failure is a Warning, not a retry (the periodic sync
//! still brings the token).

use std::time::Duration;

use k8s_openapi::api::core::v1::{ObjectReference, Pod};
use kube::{
    Api, Client,
    api::{Patch, PatchParams},
};
use tracing::{info, warn};

use super::{error::sanitize, events::Notice, step::Step};
use crate::{fence::Fence, kube_client::FIELD_MANAGER, metrics::Metrics, services::recorder};

/// The annotation patched on a pod after each new token: when that token was issued.
// NB: a value of its own for every token (an unchanged value makes the patch a no-op the
// kubelet never sees), and nothing derived from the token.
pub const NUDGE_ANNOTATION: &str = "clear-operator.io/token-nudge";

/// How long after the Secret write the pods are nudged.
// NB: the kubelet learns of the new Secret and of the pod update through two watches, and
// remounts on the pod update from its Secret cache: patched a few milliseconds after the
// Secret write, a pod was synced before its kubelet had the new Secret (seen on the real
// node), and kept the revoked token until the periodic sync. A second puts the Secret
// first, and still brings the token to the files within about a second and a half.
pub const NUDGE_DELAY: Duration = Duration::from_secs(1);

/// Nudges the pods that mount `secret_name` (see the module documentation), off the
/// reconcile's path: a task waits [`NUDGE_DELAY`], then patches.
pub(super) fn nudge(step: &Step<'_>, secret_name: &str, issued_at: jiff::Timestamp) {
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
    let nudge = Nudge {
        client: ctx.client.clone(),
        fence: ctx.fence.clone(),
        metrics: ctx.metrics.clone(),
        recorders: ctx.services.recorder.clone(),
        reference: kube::Resource::object_ref(cac, &()),
        namespace,
        secret: secret_name.to_string(),
        value: issued_at.to_string(),
    };
    tokio::spawn(async move {
        tokio::time::sleep(NUDGE_DELAY).await;
        nudge.patch(&pods).await;
    });
}

/// What a nudge needs once the reconcile that asked for it has ended.
struct Nudge {
    client: Client,
    fence: Fence,
    metrics: std::sync::Arc<Metrics>,
    recorders: recorder::Recorders,
    reference: ObjectReference,
    namespace: String,
    secret: String,
    value: String,
}

impl Nudge {
    async fn patch(&self, pods: &[String]) {
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &self.namespace);
        let patch = serde_json::json!({
            "metadata": {"annotations": {NUDGE_ANNOTATION: self.value}}
        });
        let params = PatchParams {
            field_manager: Some(FIELD_MANAGER.to_string()),
            ..PatchParams::default()
        };
        let (mut nudged, mut failed) = (0usize, Vec::new());
        for pod in pods {
            // NB: fenced like every other write: a replica that lost the Lease patches nothing.
            if self.fence.check().is_err() {
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
            namespace = %self.namespace,
            secret = %self.secret,
            nudged,
            failed = failed.len(),
            "nudged the kubelets of the pods that mount the token"
        );
        let Some((pod, error)) = failed.first() else {
            return;
        };
        warn!(%pod, %error, "could not nudge a pod that mounts the token; its kubelet's periodic sync will bring it");
        if self.fence.is_open() {
            let notice = Notice::NudgeFailed {
                pods: failed.len(),
                first: pod.clone(),
                error: error.clone(),
            };
            recorder::publish(
                &self.recorders,
                &self.metrics,
                &self.reference,
                notice.to_event(),
            )
            .await;
        }
    }
}
