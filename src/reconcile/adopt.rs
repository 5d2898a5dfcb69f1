//! The adopt step: the resource holds no token yet and `spec.adoptFrom` hands over the one
//! in use (minted elsewhere from the same client secret). It is written to the target Secret
//! and recorded in status like a minted token, with no call to Clear: a first mint would
//! have revoked it.

use jiff::Timestamp;
use kube::Resource;
use tracing::info;

use super::{
    decide, error::Error, events::Notice, schedule, secret::TokenRecord, status, step::Step, write,
};

pub(super) async fn adopt(
    step: &Step<'_>,
    record: &TokenRecord,
    from: &str,
) -> Result<Option<Timestamp>, Error> {
    let (ctx, fetched) = (step.ctx, step.fetched);
    let (Some(token), Some(base_url), Ok(spec)) = (
        &fetched.adopt_token,
        &fetched.base_url,
        &fetched.observed.spec,
    ) else {
        return Err(Error::InvalidObject {
            detail: "was to adopt a token without one, or without a valid spec",
        });
    };
    let cac = &fetched.cac;
    write::token_secret(
        ctx,
        cac,
        base_url.as_str(),
        token,
        record,
        None,
        fetched.target_resource_version.as_deref(),
    )
    .await?;
    let (renewal, windows) = decide::split_plan(decide::plan_renewal(record, spec, step.now));
    let mut base = step.prev().clone();
    base.adopted_from = Some(from.to_string());
    let generation = cac.meta().generation;
    let target = cac.target_secret_name();
    let mut next = status::kept(&base, record, renewal, &target, generation, step.now);
    status::set_renewal_windows(&mut next, windows.as_ref(), renewal, generation, step.now);
    step.write_status(cac.status.as_ref(), &next).await?;
    info!(token = %record.token_fingerprint, %from, "adopted the token in use; no call to Clear");
    step.publish(Notice::Adopted {
        from: from.to_string(),
        token_fingerprint: record.token_fingerprint.clone(),
        valid_till: record.valid_till,
    })
    .await;
    let (namespace, name) = step.key();
    ctx.metrics.set_ready(&namespace, &name, true);
    ctx.metrics
        .set_token_expiry(&namespace, &name, record.valid_till);
    Ok(schedule::earliest(renewal, None))
}
