//! Publishing Events: a fresh kube-runtime recorder for each, and a count by reason.

use k8s_openapi::api::core::v1::ObjectReference;
use kube::{
    Client,
    runtime::events::{Event, EventType, Recorder, Reporter},
};

use crate::metrics::Metrics;

/// Makes kube-runtime event recorders.
///
/// NB: a [`Recorder`] keeps every Event it published for six minutes, so that a repeat
/// becomes a series (the same Event, counted) rather than another Event. Shared by all
/// reconciles, that cache holds one Event per resource that had news in the last six
/// minutes: most of the operator's memory when 10,000 resources all mint at their first
/// start, and, for Warnings, memory that grows with a fleet-wide failure (Clear down for
/// every resource) rather than with the work. Each Event therefore gets a recorder of its
/// own, as kube-runtime intends recorders to be used (one per reconcile): the operator
/// already publishes a Warning once per streak of failures, not on every retry, so there are
/// no repeats to fold into series.
#[derive(Clone)]
pub struct Recorders {
    client: Client,
    reporter: Reporter,
}

impl Recorders {
    pub fn new(client: Client, reporter: Reporter) -> Self {
        Self { client, reporter }
    }

    fn fresh(&self) -> Recorder {
        Recorder::new(self.client.clone(), self.reporter.clone())
    }
}

/// Publishes `event` about `reference` and counts it by reason; a failure to publish is
/// logged, never fatal (the status says it too).
pub async fn publish(
    recorders: &Recorders,
    metrics: &Metrics,
    reference: &ObjectReference,
    event: Event,
) {
    let type_ = match event.type_ {
        EventType::Normal => "Normal",
        EventType::Warning => "Warning",
    };
    metrics.observe_event(&event.reason, type_);
    let recorder = recorders.fresh();
    if let Err(error) = recorder.publish(&event, reference).await {
        tracing::warn!(reason = %event.reason, error = %error, "failed to publish event");
    }
}
