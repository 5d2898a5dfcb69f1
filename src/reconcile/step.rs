//! One reconcile of a live resource, as the steps after the fetch see it: the context, the
//! observation, the clock of the decision, and the resourceVersion each status write must
//! find (the precondition that keeps a late or stale write from landing).

use jiff::{SignedDuration, Timestamp};
use kube::{Api, Resource, ResourceExt};

use super::{context::Context, error::Error, events::Notice, observe::Fetched, restart, write};
use crate::resource::{ClearApiClient, ClearApiClientStatus, RolloutRestartTarget};

/// One reconcile of a live resource, as the steps after the fetch see it.
pub(super) struct Step<'a> {
    pub(super) ctx: &'a Context,
    pub(super) api: &'a Api<ClearApiClient>,
    pub(super) fetched: &'a Fetched,
    /// The clock when the decision was made.
    pub(super) now: Timestamp,
    /// The resource's resourceVersion as read, then as each status write left it: the
    /// precondition of the next status write.
    resource_version: std::sync::Mutex<Option<String>>,
}

impl<'a> Step<'a> {
    pub(super) fn new(
        ctx: &'a Context,
        api: &'a Api<ClearApiClient>,
        fetched: &'a Fetched,
        now: Timestamp,
    ) -> Self {
        Self {
            ctx,
            api,
            fetched,
            now,
            resource_version: std::sync::Mutex::new(fetched.cac.metadata.resource_version.clone()),
        }
    }

    /// The resource's namespace and name.
    pub(super) fn key(&self) -> (String, String) {
        let cac = &self.fetched.cac;
        (cac.namespace().unwrap_or_default(), cac.name_any())
    }

    /// The status the decision was made on.
    pub(super) fn prev(&self) -> &ClearApiClientStatus {
        &self.fetched.observed.status
    }

    /// Writes status (fenced, and on condition that the resource did not change since this
    /// reconcile read or last wrote it) over `current`, the status as last written.
    pub(super) async fn write_status(
        &self,
        current: Option<&ClearApiClientStatus>,
        next: &ClearApiClientStatus,
    ) -> Result<(), Error> {
        let name = self.fetched.cac.name_any();
        let expected = self.lock_resource_version().clone();
        let mut next = next.clone();
        if let Some(me) = &self.ctx.settings.instance {
            next.operator_instance = Some(me.clone());
        }
        let written = write::status(
            self.ctx,
            self.api,
            &name,
            current,
            &next,
            expected.as_deref(),
        )
        .await?;
        if let Some(rv) = written {
            *self.lock_resource_version() = Some(rv);
        }
        Ok(())
    }

    fn lock_resource_version(&self) -> std::sync::MutexGuard<'_, Option<String>> {
        self.resource_version
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Restarts `targets` onto the token issued at `issued_at`, publishes what became of
    /// each, records the ones left to do in `next`, and says when to try those again.
    pub(super) async fn restart(
        &self,
        targets: &[RolloutRestartTarget],
        issued_at: Timestamp,
        next: &mut ClearApiClientStatus,
    ) -> Result<Option<Timestamp>, Error> {
        self.ctx.fence.check()?;
        let (namespace, _) = self.key();
        let attempts = restart::restart_targets(
            &self.ctx.client,
            &namespace,
            targets,
            issued_at,
            &self.ctx.fence,
        )
        .await;
        let mut retry_in: Option<SignedDuration> = None;
        next.pending_restarts.clear();
        for attempt in attempts {
            if let Some(after) = attempt.retry_in {
                retry_in = Some(retry_in.map_or(after, |r| r.min(after)));
                next.pending_restarts.push(attempt.target);
            }
            self.publish(attempt.notice).await;
        }
        Ok(retry_in.map(|after| self.ctx.now_seconds() + after))
    }

    pub(super) async fn publish(&self, notice: Notice) {
        let reference = self.fetched.cac.object_ref(&());
        self.ctx.publish(&reference, notice).await;
    }
}
