//! Prometheus metrics of the operator: Clear calls by result and latency, token expiry,
//! renewal time and readiness per ClearApiClient, reconcile outcomes and latency,
//! leadership, and the build (`clear_operator_build_info`).
//!
//! A token that never expires has no `clear_operator_token_expiry_timestamp_seconds`
//! series (a +Inf or far-future value would break `expiry - time()` alerts and graphs);
//! instead `clear_operator_token_never_expires{namespace,name}` is 1. Alert on expiry with
//! `clear_operator_token_expiry_timestamp_seconds - time() < 3600`.

use std::sync::atomic::AtomicU64;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};
use strum::IntoEnumIterator;

use crate::reason::Reason;

/// `result` label value of a successful mint.
pub const RESULT_ISSUED: &str = "issued";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BaseUrlLabels {
    base_url: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ClientSecretLabels {
    client_secret_fingerprint: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WhyLabels {
    why: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WhatLabels {
    what: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EventLabels {
    reason: String,
    /// `Normal` or `Warning`, as on the Event.
    r#type: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RotationLabels {
    namespace: String,
    name: String,
    /// The new token's Event reason: Issued, Renewed, Regenerated or SecretRecreated.
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: String,
    /// Whether the `dev` subcommand is compiled in (the image is built without it).
    dev: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ClientLabels {
    namespace: String,
    name: String,
}

impl ClientLabels {
    fn new(namespace: &str, name: &str) -> Self {
        Self {
            namespace: namespace.to_string(),
            name: name.to_string(),
        }
    }
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

fn clear_call_histogram() -> Histogram {
    // NB: 50 ms .. ~25 s: Clear answers in well under a second; the top buckets show
    // calls that ran into the request timeout.
    Histogram::new(exponential_buckets(0.05, 2.0, 10))
}

fn reconcile_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.005, 2.0, 12))
}

/// Cheap to clone: every clone updates the same series.
#[derive(Clone, Debug)]
pub struct Metrics {
    mints: Family<ResultLabels, Counter>,
    clear_request_duration: HistogramFamily<ResultLabels>,
    token_expiry: Family<ClientLabels, Gauge<f64, AtomicU64>>,
    renewal_time: Family<ClientLabels, Gauge<f64, AtomicU64>>,
    token_never_expires: Family<ClientLabels, Gauge>,
    client_ready: Family<ClientLabels, Gauge>,
    reconciles: Family<OutcomeLabels, Counter>,
    reconcile_duration: HistogramFamily<OutcomeLabels>,
    events: Family<EventLabels, Counter>,
    rotations: Family<RotationLabels, Counter>,
    last_rotation: Family<ClientLabels, Gauge<f64, AtomicU64>>,
    revokes_skipped: Family<WhyLabels, Counter>,
    circuit_open: Family<BaseUrlLabels, Gauge>,
    client_secret_calls: Family<ClientSecretLabels, Gauge>,
    requests_saved: Family<WhatLabels, Counter>,
    rotation_write: Histogram,
    leader: Gauge,
}

impl Metrics {
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self {
            mints: Family::default(),
            clear_request_duration: Family::new_with_constructor(clear_call_histogram),
            token_expiry: Family::default(),
            renewal_time: Family::default(),
            token_never_expires: Family::default(),
            client_ready: Family::default(),
            reconciles: Family::default(),
            reconcile_duration: Family::new_with_constructor(reconcile_histogram),
            events: Family::default(),
            rotations: Family::default(),
            last_rotation: Family::default(),
            revokes_skipped: Family::default(),
            circuit_open: Family::default(),
            client_secret_calls: Family::default(),
            requests_saved: Family::default(),
            rotation_write: reconcile_histogram(),
            leader: Gauge::default(),
        };
        registry.register_with_unit(
            "clear_operator_rotation_write_duration",
            "From Clear's answer with a new token to that token in its Secret: the window in which consumers hold the token the call revoked",
            Unit::Seconds,
            metrics.rotation_write.clone(),
        );
        let build_info: Family<BuildLabels, Gauge> = Family::default();
        build_info
            .get_or_create(&BuildLabels {
                version: env!("CARGO_PKG_VERSION").to_string(),
                dev: cfg!(feature = "dev").to_string(),
            })
            .set(1);
        registry.register(
            "clear_operator_build_info",
            "Always 1; its labels say which build of the operator runs (version; dev: whether the `dev` subcommand is compiled in)",
            build_info,
        );
        registry.register(
            "clear_operator_kube_requests_saved",
            "Kubernetes API work skipped because this process already knew the answer, by what: a watch event of its own write (own_status_event, own_secret_event), a read the watch cache answered (cached_resource, absent_target, client_secret_fingerprint)",
            metrics.requests_saved.clone(),
        );
        registry.register(
            "clear_operator_mints",
            "Calls to Clear's token endpoint, by result (issued or the failure)",
            metrics.mints.clone(),
        );
        registry.register_with_unit(
            "clear_operator_clear_request_duration",
            "Duration of calls to Clear's token endpoint, by result",
            Unit::Seconds,
            metrics.clear_request_duration.clone(),
        );
        registry.register_with_unit(
            "clear_operator_token_expiry_timestamp",
            "When the stored token of a ClearApiClient expires (Unix time); absent when it never expires",
            Unit::Seconds,
            metrics.token_expiry.clone(),
        );
        registry.register_with_unit(
            "clear_operator_renewal_timestamp",
            "When the operator will next renew the token of a ClearApiClient (Unix time, status.renewalTime); absent when no renewal is planned",
            Unit::Seconds,
            metrics.renewal_time.clone(),
        );
        registry.register(
            "clear_operator_token_never_expires",
            "1 when the stored token of a ClearApiClient never expires",
            metrics.token_never_expires.clone(),
        );
        registry.register(
            "clear_operator_client_ready",
            "1 when a ClearApiClient is Ready (its Secret holds a usable token), else 0",
            metrics.client_ready.clone(),
        );
        registry.register(
            "clear_operator_reconcile",
            "Reconciles by outcome",
            metrics.reconciles.clone(),
        );
        registry.register_with_unit(
            "clear_operator_reconcile_duration",
            "Duration of reconciles, by outcome",
            Unit::Seconds,
            metrics.reconcile_duration.clone(),
        );
        registry.register(
            "clear_operator_events",
            "Events the operator published, by reason (the same reasons as its conditions and logs) and type",
            metrics.events.clone(),
        );
        registry.register(
            "clear_operator_token_rotations",
            "New tokens written for a ClearApiClient, by the reason of their Event (each one revoked the previous token)",
            metrics.rotations.clone(),
        );
        registry.register_with_unit(
            "clear_operator_last_rotation_timestamp",
            "When the current token of a ClearApiClient was issued (Unix time)",
            Unit::Seconds,
            metrics.last_rotation.clone(),
        );
        registry.register(
            "clear_operator_revoke_skipped",
            "Deletions with revokeOnDelete whose token was not revoked, by why (no_token, conflict, client_secret_missing, no_base_url, client_secret_rejected)",
            metrics.revokes_skipped.clone(),
        );
        registry.register(
            "clear_operator_clear_circuit_open",
            "1 while Clear (this base URL) failed for every resource lately and only trial calls go to it (see docs/minting-and-failures.md, \"When Clear fails for everyone\")",
            metrics.circuit_open.clone(),
        );
        registry.register(
            "clear_operator_client_secret_calls_today",
            "Calls to Clear in the current UTC day per client secret (by fingerprint), across its resources, deletions and revocations, as the leader counts them",
            metrics.client_secret_calls.clone(),
        );
        registry.register(
            "clear_operator_leader",
            "1 while this replica holds the leader Lease and reconciles",
            metrics.leader.clone(),
        );
        metrics
    }

    /// One call to Clear: `result` is [`RESULT_ISSUED`] or `ClearError::metric_label()`.
    pub fn observe_clear_call(&self, result: &str, elapsed: Duration) {
        let labels = ResultLabels {
            result: result.to_string(),
        };
        self.mints.get_or_create(&labels).inc();
        self.clear_request_duration
            .get_or_create(&labels)
            .observe(elapsed.as_secs_f64());
    }

    /// The time from Clear's answer to the new token in its Secret.
    pub fn observe_rotation_write(&self, elapsed: Duration) {
        self.rotation_write.observe(elapsed.as_secs_f64());
    }

    /// Whether the circuit of the Clear host `base_url` is open.
    pub fn set_clear_circuit_open(&self, base_url: &str, open: bool) {
        self.circuit_open
            .get_or_create(&BaseUrlLabels {
                base_url: base_url.to_string(),
            })
            .set(i64::from(open));
    }

    /// The calls made today with the client secret of this fingerprint.
    pub fn set_client_secret_calls(&self, fingerprint: &str, calls: u32) {
        self.client_secret_calls
            .get_or_create(&ClientSecretLabels {
                client_secret_fingerprint: fingerprint.to_string(),
            })
            .set(i64::from(calls));
    }

    /// Drops the series of one client secret (a day ended, or leadership was lost).
    pub fn forget_client_secret(&self, fingerprint: &str) {
        self.client_secret_calls.remove(&ClientSecretLabels {
            client_secret_fingerprint: fingerprint.to_string(),
        });
    }

    /// `None`: the token never expires (see the module docs for how that is shown).
    pub fn set_token_expiry(
        &self,
        namespace: &str,
        name: &str,
        valid_till: Option<jiff::Timestamp>,
    ) {
        let labels = ClientLabels::new(namespace, name);
        match valid_till {
            Some(at) => {
                self.token_expiry
                    .get_or_create(&labels)
                    .set(at.as_millisecond() as f64 / 1000.0);
                self.token_never_expires.remove(&labels);
            }
            None => {
                self.token_expiry.remove(&labels);
                self.token_never_expires.get_or_create(&labels).set(1);
            }
        }
    }

    /// `None`: no renewal is planned (no token, or one that never expires): no series.
    pub fn set_renewal_time(
        &self,
        namespace: &str,
        name: &str,
        renewal_time: Option<jiff::Timestamp>,
    ) {
        let labels = ClientLabels::new(namespace, name);
        match renewal_time {
            Some(at) => {
                self.renewal_time
                    .get_or_create(&labels)
                    .set(at.as_millisecond() as f64 / 1000.0);
            }
            None => {
                self.renewal_time.remove(&labels);
            }
        }
    }

    pub fn set_ready(&self, namespace: &str, name: &str, ready: bool) {
        self.client_ready
            .get_or_create(&ClientLabels::new(namespace, name))
            .set(i64::from(ready));
    }

    /// A new token was written: `clear_operator_token_rotations_total{namespace,name,reason}`
    /// and `clear_operator_last_rotation_timestamp_seconds{namespace,name}`.
    pub fn record_rotation(
        &self,
        namespace: &str,
        name: &str,
        reason: Reason,
        issued_at: jiff::Timestamp,
    ) {
        let labels = RotationLabels {
            namespace: namespace.to_string(),
            name: name.to_string(),
            reason: reason.to_string(),
        };
        self.rotations.get_or_create(&labels).inc();
        self.last_rotation
            .get_or_create(&ClientLabels::new(namespace, name))
            .set(issued_at.as_millisecond() as f64 / 1000.0);
    }

    /// Drops every per-resource series of a deleted ClearApiClient.
    pub fn forget(&self, namespace: &str, name: &str) {
        let labels = ClientLabels::new(namespace, name);
        self.token_expiry.remove(&labels);
        self.renewal_time.remove(&labels);
        self.token_never_expires.remove(&labels);
        self.client_ready.remove(&labels);
        self.last_rotation.remove(&labels);
        // NB: a family is keyed by the whole label set; every reason is tried, so a reason
        // added later cannot leave a series behind.
        for reason in Reason::iter() {
            self.rotations.remove(&RotationLabels {
                namespace: namespace.to_string(),
                name: name.to_string(),
                reason: reason.to_string(),
            });
        }
    }

    /// Drops every per-resource series (leadership lost: the new leader exports them).
    pub fn forget_all(&self) {
        self.token_expiry.clear();
        self.renewal_time.clear();
        self.token_never_expires.clear();
        self.client_ready.clear();
        self.rotations.clear();
        self.last_rotation.clear();
    }

    /// A revoke-on-delete that did not happen: `clear_operator_revoke_skipped_total{why}`.
    pub fn observe_revoke_skipped(&self, why: &str) {
        self.revokes_skipped
            .get_or_create(&WhyLabels {
                why: why.to_string(),
            })
            .inc();
    }

    /// Kubernetes API work skipped: `clear_operator_kube_requests_saved_total{what}`.
    pub fn observe_request_saved(&self, what: &str) {
        self.requests_saved
            .get_or_create(&WhatLabels {
                what: what.to_string(),
            })
            .inc();
    }

    /// Kubernetes API work skipped so far, for `what` (tests and the bench read it).
    pub fn requests_saved(&self, what: &str) -> u64 {
        self.requests_saved
            .get_or_create(&WhatLabels {
                what: what.to_string(),
            })
            .get()
    }

    /// One published Event: `clear_operator_events_total{reason,type}`.
    pub fn observe_event(&self, reason: &str, type_: &str) {
        let labels = EventLabels {
            reason: reason.to_string(),
            r#type: type_.to_string(),
        };
        self.events.get_or_create(&labels).inc();
    }

    pub fn observe_reconcile(&self, outcome: &str, elapsed: Duration) {
        let labels = OutcomeLabels {
            outcome: outcome.to_string(),
        };
        self.reconciles.get_or_create(&labels).inc();
        self.reconcile_duration
            .get_or_create(&labels)
            .observe(elapsed.as_secs_f64());
    }

    /// Reconciles ended so far with `outcome` ("ok" or an error label; tests read it).
    pub fn reconciles(&self, outcome: &str) -> u64 {
        self.reconciles
            .get_or_create(&OutcomeLabels {
                outcome: outcome.to_string(),
            })
            .get()
    }

    pub fn set_leader(&self, leader: bool) {
        self.leader.set(i64::from(leader));
    }
}

/// The registry in OpenMetrics text (tests; `/metrics` serves [`render_chunks`]).
pub fn render(registry: &Registry) -> Result<String, std::fmt::Error> {
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, registry)?;
    Ok(text)
}

/// Size of each piece of [`render_chunks`].
const CHUNK: usize = 64 * 1024;

/// The registry in OpenMetrics text as served on `/metrics`, in pieces of [`CHUNK`] bytes.
/// NB: with series per resource the text is megabytes (about 5 MB at 10,000 resources);
/// one `String` grown by doubling held 8 MiB and, while it grew, 12 (heaptrack), in large
/// blocks the allocator kept after each scrape. Pieces of one size are reused instead.
pub fn render_chunks(registry: &Registry) -> Result<Vec<bytes::Bytes>, std::fmt::Error> {
    let mut chunks = Chunks::default();
    prometheus_client::encoding::text::encode(&mut chunks, registry)?;
    Ok(chunks.finish())
}

#[derive(Default)]
struct Chunks {
    done: Vec<bytes::Bytes>,
    current: String,
}

impl Chunks {
    fn finish(mut self) -> Vec<bytes::Bytes> {
        if !self.current.is_empty() {
            self.done.push(std::mem::take(&mut self.current).into());
        }
        self.done
    }
}

impl std::fmt::Write for Chunks {
    fn write_str(&mut self, mut s: &str) -> std::fmt::Result {
        while !s.is_empty() {
            if self.current.capacity() == 0 {
                self.current.reserve_exact(CHUNK);
            }
            let room = CHUNK - self.current.len();
            // NB: split on a character boundary (labels are UTF-8 text).
            let mut take = room.min(s.len());
            while !s.is_char_boundary(take) {
                take -= 1;
            }
            self.current.push_str(&s[..take]);
            s = &s[take..];
            // What is left did not fit (or the piece is full): this piece is done.
            if !s.is_empty() || self.current.len() == CHUNK {
                self.done.push(std::mem::take(&mut self.current).into());
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_served_pieces_are_the_whole_text_each_at_most_one_chunk() {
        let (registry, metrics) = setup();
        // Enough series for several pieces, with multi-byte characters in label values
        // (names are ASCII, but a piece must never end inside a character whatever the
        // text).
        for n in 0..2_000 {
            metrics.set_ready("tenant-é", &format!("client-ü-{n}"), true);
        }
        let text = render(&registry).unwrap();
        let chunks = render_chunks(&registry).unwrap();
        assert!(chunks.len() > 2, "{} pieces", chunks.len());
        assert!(chunks.iter().all(|c| c.len() <= CHUNK && !c.is_empty()));
        let joined: Vec<u8> = chunks.iter().flat_map(|c| c.iter().copied()).collect();
        assert_eq!(String::from_utf8(joined).unwrap(), text);
        for c in &chunks {
            std::str::from_utf8(c).expect("each piece is whole characters");
        }
    }

    fn setup() -> (Registry, Metrics) {
        let mut registry = Registry::default();
        let metrics = Metrics::register(&mut registry);
        (registry, metrics)
    }

    fn lines_starting(text: &str, prefix: &str) -> Vec<String> {
        text.lines()
            .filter(|l| l.starts_with(prefix))
            .map(str::to_string)
            .collect()
    }

    #[test]
    fn clear_calls_are_counted_and_timed_by_result() {
        let (registry, metrics) = setup();
        metrics.observe_clear_call(RESULT_ISSUED, Duration::from_millis(250));
        metrics.observe_clear_call(RESULT_ISSUED, Duration::from_millis(250));
        metrics.observe_clear_call("rate_limited", Duration::from_millis(30));
        let text = render(&registry).unwrap();
        assert!(
            text.contains(r#"clear_operator_mints_total{result="issued"} 2"#),
            "{text}"
        );
        assert!(
            text.contains(r#"clear_operator_mints_total{result="rate_limited"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(
                r#"clear_operator_clear_request_duration_seconds_count{result="issued"} 2"#
            ),
            "{text}"
        );
        assert!(
            text.contains(
                r#"clear_operator_clear_request_duration_seconds_sum{result="issued"} 0.5"#
            ),
            "{text}"
        );
        assert!(text.contains("# TYPE clear_operator_clear_request_duration_seconds histogram"));
        assert!(
            text.ends_with("# EOF\n"),
            "OpenMetrics ends with EOF: {text}"
        );
    }

    #[test]
    fn token_expiry_is_a_unix_time_gauge_per_resource() {
        let (registry, metrics) = setup();
        let at: jiff::Timestamp = "2026-11-25T18:30:00Z".parse().unwrap();
        metrics.set_token_expiry("team-a", "gst", Some(at));
        let text = render(&registry).unwrap();
        assert!(
            text.contains(r#"clear_operator_token_expiry_timestamp_seconds{namespace="team-a",name="gst"} 1795631400.0"#),
            "{text}"
        );
        assert!(
            lines_starting(&text, "clear_operator_token_never_expires{").is_empty(),
            "{text}"
        );
    }

    #[test]
    fn never_expiring_token_has_no_expiry_series_but_a_flag() {
        let (registry, metrics) = setup();
        let at: jiff::Timestamp = "2026-11-25T18:30:00Z".parse().unwrap();
        metrics.set_token_expiry("team-a", "gst", Some(at));
        metrics.set_token_expiry("team-a", "gst", None);
        let text = render(&registry).unwrap();
        assert!(
            lines_starting(&text, "clear_operator_token_expiry_timestamp_seconds{").is_empty(),
            "{text}"
        );
        assert!(
            text.contains(r#"clear_operator_token_never_expires{namespace="team-a",name="gst"} 1"#),
            "{text}"
        );
    }

    #[test]
    fn readiness_is_zero_or_one_and_forget_drops_the_resource_series() {
        let (registry, metrics) = setup();
        metrics.set_ready("ns", "a", true);
        metrics.set_ready("ns", "b", false);
        metrics.set_token_expiry("ns", "a", Some(jiff::Timestamp::UNIX_EPOCH));
        metrics.set_token_expiry("ns", "b", None);
        let text = render(&registry).unwrap();
        assert!(
            text.contains(r#"clear_operator_client_ready{namespace="ns",name="a"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"clear_operator_client_ready{namespace="ns",name="b"} 0"#),
            "{text}"
        );

        metrics.forget("ns", "a");
        metrics.forget("ns", "b");
        let text = render(&registry).unwrap();
        assert!(!text.contains(r#"namespace="ns""#), "{text}");
    }

    #[test]
    fn renewal_time_is_a_unix_time_gauge_removed_when_none_and_on_forget() {
        let (registry, metrics) = setup();
        let at: jiff::Timestamp = "2026-11-25T18:30:00Z".parse().unwrap();
        metrics.set_renewal_time("team-a", "gst", Some(at));
        metrics.set_renewal_time("team-a", "other", Some(at));
        let text = render(&registry).unwrap();
        assert!(
            text.contains(r#"clear_operator_renewal_timestamp_seconds{namespace="team-a",name="gst"} 1795631400.0"#),
            "{text}"
        );
        metrics.set_renewal_time("team-a", "gst", None);
        metrics.forget("team-a", "other");
        let text = render(&registry).unwrap();
        assert!(
            lines_starting(&text, "clear_operator_renewal_timestamp_seconds{").is_empty(),
            "{text}"
        );
        metrics.set_renewal_time("team-a", "gst", Some(at));
        metrics.forget_all();
        assert!(
            lines_starting(
                &render(&registry).unwrap(),
                "clear_operator_renewal_timestamp_seconds{"
            )
            .is_empty()
        );
    }

    #[test]
    fn build_info_is_one_with_the_crate_version() {
        let (registry, _metrics) = setup();
        let text = render(&registry).unwrap();
        let line = lines_starting(&text, "clear_operator_build_info{");
        assert_eq!(line.len(), 1, "{text}");
        assert!(
            line[0].contains(&format!("version=\"{}\"", env!("CARGO_PKG_VERSION")))
                && line[0].ends_with(" 1"),
            "{line:?}"
        );
    }

    #[test]
    fn events_are_counted_by_reason_and_type() {
        let (registry, metrics) = setup();
        metrics.observe_event("Renewed", "Normal");
        metrics.observe_event("Renewed", "Normal");
        metrics.observe_event("RateLimited", "Warning");
        let text = render(&registry).unwrap();
        assert!(
            text.contains(r#"clear_operator_events_total{reason="Renewed",type="Normal"} 2"#),
            "{text}"
        );
        assert!(
            text.contains(r#"clear_operator_events_total{reason="RateLimited",type="Warning"} 1"#),
            "{text}"
        );
    }

    #[test]
    fn reconciles_and_leadership_are_exported() {
        let (registry, metrics) = setup();
        metrics.observe_reconcile("minted", Duration::from_millis(40));
        metrics.observe_reconcile("unchanged", Duration::from_millis(2));
        metrics.observe_reconcile("unchanged", Duration::from_millis(3));
        metrics.set_leader(true);
        let text = render(&registry).unwrap();
        assert!(
            text.contains(r#"clear_operator_reconcile_total{outcome="unchanged"} 2"#),
            "{text}"
        );
        assert!(
            text.contains(r#"clear_operator_reconcile_total{outcome="minted"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"clear_operator_reconcile_duration_seconds_count{outcome="minted"} 1"#),
            "{text}"
        );
        assert!(text.contains("clear_operator_leader 1"), "{text}");
        metrics.set_leader(false);
        assert!(
            render(&registry)
                .unwrap()
                .contains("clear_operator_leader 0")
        );
    }

    #[test]
    fn rotations_are_counted_by_reason_with_the_last_issue_time_and_forgotten() {
        let (registry, metrics) = setup();
        let first: jiff::Timestamp = "2026-11-25T18:30:00Z".parse().unwrap();
        let second: jiff::Timestamp = "2026-11-26T02:00:00Z".parse().unwrap();
        metrics.record_rotation("team-a", "gst", Reason::Issued, first);
        metrics.record_rotation("team-a", "gst", Reason::Renewed, second);
        metrics.record_rotation("team-a", "gst", Reason::Renewed, second);
        metrics.record_rotation("team-b", "gst", Reason::Regenerated, first);
        let text = render(&registry).unwrap();
        for expected in [
            r#"clear_operator_token_rotations_total{namespace="team-a",name="gst",reason="Issued"} 1"#,
            r#"clear_operator_token_rotations_total{namespace="team-a",name="gst",reason="Renewed"} 2"#,
            r#"clear_operator_last_rotation_timestamp_seconds{namespace="team-a",name="gst"} 1795658400.0"#,
            r#"clear_operator_last_rotation_timestamp_seconds{namespace="team-b",name="gst"} 1795631400.0"#,
        ] {
            assert!(text.contains(expected), "{expected} missing from {text}");
        }
        metrics.forget("team-a", "gst");
        let text = render(&registry).unwrap();
        assert!(!text.contains(r#"namespace="team-a""#), "{text}");
        assert!(text.contains(r#"namespace="team-b""#), "{text}");
        metrics.forget_all();
        assert!(!render(&registry).unwrap().contains("namespace="));
    }

    #[test]
    fn clones_update_the_same_series() {
        let (registry, metrics) = setup();
        let clone = metrics.clone();
        clone.observe_clear_call("timeout", Duration::from_secs(30));
        metrics.observe_clear_call("timeout", Duration::from_secs(30));
        let text = render(&registry).unwrap();
        assert!(
            text.contains(r#"clear_operator_mints_total{result="timeout"} 2"#),
            "{text}"
        );
    }
}
