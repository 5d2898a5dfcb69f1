//! The wait step: a guard holds. Record why in status, tell the owner once (on the change of
//! reason, not on every requeue), and come back when the guard may have lifted.

use jiff::Timestamp;
use kube::Resource;
use tracing::info;

use super::{
    decide::{Blocker, MintReason, TokenHealth},
    error::Error,
    events, schedule, status,
    step::Step,
};
use crate::{reason::Reason, services::conflict::CONFLICT_RECHECK};

pub(super) async fn wait(
    step: &Step<'_>,
    blocker: &Blocker,
    health: &TokenHealth,
    retry_at: Option<Timestamp>,
    pending: Option<&MintReason>,
) -> Result<Option<Timestamp>, Error> {
    let cac = &step.fetched.cac;
    let prev = step.prev();
    let next = status::waiting(
        prev,
        blocker,
        health,
        pending,
        cac.meta().generation,
        step.now,
    );
    step.write_status(cac.status.as_ref(), &next).await?;
    let before = status::ready_condition(Some(prev)).map(|c| c.reason.as_str());
    if let Some(condition) = status::ready_condition(Some(&next))
        && before != Some(condition.reason.as_str())
    {
        // NB: reads back the reason written a line above, so it always parses.
        let reason = Reason::parse(&condition.reason).unwrap_or(Reason::ClearUnavailable);
        info!(%reason, "waiting: {}", condition.message);
        let notice = match events::expired(Some(prev), &next) {
            Some(expired) => Some(expired),
            None => events::blocked(blocker, reason, condition.message.clone()),
        };
        if let Some(notice) = notice {
            step.publish(notice).await;
        }
    }
    let (namespace, name) = step.key();
    step.ctx
        .metrics
        .set_ready(&namespace, &name, health.is_usable());
    if let TokenHealth::Usable { valid_till } = health {
        step.ctx
            .metrics
            .set_token_expiry(&namespace, &name, *valid_till);
    }
    let retry_at = match blocker {
        Blocker::Conflict { .. } => Some(step.now + CONFLICT_RECHECK),
        _ => retry_at,
    };
    // NB: Ready follows the token, not the plan: whatever is awaited (a quota, the budget,
    // a client secret, the circuit), the resource looks again when its token expires, and
    // turns Ready=False then.
    Ok(schedule::earliest(retry_at, health.expires_at()))
}
