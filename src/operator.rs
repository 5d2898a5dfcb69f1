//! Assembles a running operator from the command line: Clear client, metrics and health
//! server, reconcile context, leader election, controller. Shared by `run` and `dev`.

use std::{sync::Arc, time::Duration};

use kube::{Api, Client, api::ListParams, runtime::events::Reporter};
use prometheus_client::registry::Registry;
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::{
    clear::{ClearClient, ClearError},
    cli::RunArgs,
    clock::{self, AnchoredClock},
    controller::{self, ControllerConfig},
    http::{self, Health},
    leader::LeaseConfig,
    metrics::Metrics,
    reconcile::{Context, Settings, decide::Policy},
    resource::ClearApiClient,
};

/// Name under which Events are reported and the Lease is held.
pub const CONTROLLER_NAME: &str = "clear-operator";

#[derive(Debug, thiserror::Error)]
pub enum OperatorError {
    #[error("failed to build the Clear client: {0}")]
    ClearClient(#[source] ClearError),
    #[error(
        "failed to list ClearApiClients (is the CRD installed? `clear-operator crd | kubectl apply -f -`): {0}"
    )]
    CrdMissing(#[source] kube::Error),
    #[error("failed to set up TLS for the metrics server")]
    MetricsTls(#[source] crate::secure_metrics::TlsError),
    #[error("failed to serve metrics on {addr}: {source}")]
    Metrics {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
}

/// Runs until `shutdown` is cancelled.
pub async fn run(
    client: Client,
    args: RunArgs,
    shutdown: CancellationToken,
) -> Result<(), OperatorError> {
    check_crd_served(&client, &args.namespaces).await?;

    let mut registry = Registry::default();
    let metrics = Arc::new(Metrics::register(&mut registry));
    let health = Health::new();
    let listener = tokio::net::TcpListener::bind(args.metrics_addr)
        .await
        .map_err(|source| OperatorError::Metrics {
            addr: args.metrics_addr,
            source,
        })?;
    let metrics_addr = listener.local_addr().unwrap_or(args.metrics_addr);
    let security = metrics_security(&client, &args.metrics_secure)?;
    let server = tokio::spawn(http::serve_secured_on(
        listener,
        Arc::new(registry),
        health.clone(),
        security,
        shutdown.clone().cancelled_owned(),
    ));

    let clear = ClearClient::new(args.clear.client_config()).map_err(OperatorError::ClearClient)?;
    let identity = replica_identity();
    let allowed_base_urls = args.clear.allow_list();
    let leader_election = (!args.no_leader_election).then(|| {
        let namespace = args
            .leader_election_namespace
            .clone()
            .unwrap_or_else(|| client.default_namespace().to_string());
        let mut lease = LeaseConfig::new(namespace, args.lease_name.clone(), identity.clone());
        lease.lease_duration = Duration::from_secs(args.lease_duration_secs);
        lease
    });
    let settings = Settings {
        allow_http: args.clear.allow_http,
        allowed_base_urls: allowed_base_urls.clone(),
        policy: Policy {
            mint_budget: args.mint_budget,
            in_flight_grace: in_flight_grace(Duration::from_secs(args.clear.clear_timeout_secs)),
            renewal_jitter_percent: args.renewal_jitter_percent,
        },
        // NB: one install = one Lease; its replicas share it, a second install has its own.
        instance: leader_election
            .as_ref()
            .map(|lease| format!("{}/{}", lease.namespace, lease.name)),
        standby: args.standby,
        nudge_pods: args.nudge_pods,
    };
    if args.standby {
        tracing::warn!(
            "standby: no call to Clear is made for any resource (no renewal, no regeneration, no revoke)"
        );
    }
    let reporter = Reporter {
        controller: CONTROLLER_NAME.into(),
        instance: Some(identity.clone()),
    };
    // NB: the operator's time is the API server's, read before anything is decided, so a
    // node whose wall clock is wrong or steps does not make tokens look expired (docs/minting-and-failures.md,
    // "Clocks").
    let clock = Arc::new(AnchoredClock::system());
    clock::reference::first_sample(&clock, &client, clock::reference::FIRST_SAMPLE_WITHIN).await;
    clock::reference::spawn_sampler(clock.clone(), client.clone(), shutdown.clone());
    let ctx = Arc::new(Context::new(
        client.clone(),
        clear,
        clock,
        metrics,
        settings,
        reporter,
    ));
    spawn_watchdog(
        &ctx,
        &health,
        Duration::from_secs(args.reconcile_stall_secs),
        leader_election
            .as_ref()
            .map(|lease| lease.lease_duration * 3),
        shutdown.clone(),
    );
    let config = ControllerConfig {
        namespaces: args.namespaces.clone(),
        concurrency: args.concurrency,
        leader_election,
        shutdown_grace: Duration::from_secs(args.shutdown_grace_secs),
    };
    info!(
        %identity,
        %metrics_addr,
        metrics_secure = args.metrics_secure.metrics_secure,
        namespaces = ?config.namespaces,
        mint_budget = args.mint_budget,
        allow_http = args.clear.allow_http,
        allowed_base_urls = %allowed_base_urls,
        "clear-operator starting"
    );
    // Ready means "this replica is healthy", leader or standby, so a rollout of two
    // replicas does not wait on the one that is not leading.
    health.set_ready(true);
    controller::run(ctx, config, shutdown.clone().cancelled_owned()).await;
    health.set_ready(false);
    shutdown.cancel();
    match server.await {
        Ok(Ok(())) | Err(_) => Ok(()),
        Ok(Err(source)) => Err(OperatorError::Metrics {
            addr: metrics_addr,
            source,
        }),
    }
}

/// TLS and scraper authorization of the metrics server, when `--metrics-secure` asks.
fn metrics_security(
    client: &Client,
    args: &crate::cli::MetricsSecureArgs,
) -> Result<Option<http::Security>, OperatorError> {
    if !args.metrics_secure {
        return Ok(None);
    }
    let files = args
        .metrics_cert_file
        .clone()
        .zip(args.metrics_key_file.clone());
    let tls = crate::secure_metrics::tls_config(files).map_err(OperatorError::MetricsTls)?;
    let auth = crate::secure_metrics::MetricsAuth::with_api_server(client.clone());
    Ok(Some(http::Security {
        tls,
        auth: Arc::new(auth),
    }))
}

/// Fails `/healthz` while the reconcile loop (`reconcile_stall`: a reconcile running this
/// long with no other reconcile ending means the loop is wedged; a call to Clear is bounded
/// by its timeout, each Kubernetes request by the client's) or the leader-election loop
/// (when there is one; `lease_stall` is its deadline) has stalled, so that the kubelet
/// restarts the pod.
fn spawn_watchdog(
    ctx: &Arc<Context>,
    health: &Health,
    reconcile_stall: Duration,
    lease_stall: Option<Duration>,
    shutdown: CancellationToken,
) {
    let (ctx, health) = (ctx.clone(), health.clone());
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                _ = every.tick() => {}
            }
            let now = std::time::Instant::now();
            let reconcile_stalled = ctx.services.progress.is_stalled_at(now, reconcile_stall);
            let lease_stalled = lease_stall
                .is_some_and(|deadline| !ctx.services.lease_heartbeat.is_fresh_at(now, deadline));
            let live = !reconcile_stalled && !lease_stalled;
            if live != health.is_live() {
                tracing::warn!(reconcile_stalled, lease_stalled, live, "liveness changed");
            }
            health.set_live(live);
        }
    });
}

/// How long after `mintStartedAt` a call to Clear made by another replica may still be in
/// flight: our own total timeout (replicas share their flags) plus a margin for clock skew
/// and the writes that follow the call.
pub fn in_flight_grace(clear_timeout: Duration) -> jiff::SignedDuration {
    jiff::SignedDuration::try_from(clear_timeout + IN_FLIGHT_MARGIN).unwrap_or_default()
}

/// See [`in_flight_grace`].
pub const IN_FLIGHT_MARGIN: Duration = Duration::from_secs(10);

/// Fails early, with the fix in the message, when the CRD is not installed.
async fn check_crd_served(client: &Client, namespaces: &[String]) -> Result<(), OperatorError> {
    let api: Api<ClearApiClient> = match namespaces.first() {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    api.list_metadata(&ListParams::default().limit(1))
        .await
        .map(|_| ())
        .map_err(OperatorError::CrdMissing)
}

/// The pod name when in a cluster, the host name elsewhere, plus a random suffix so that two
/// processes on one host never share a Lease identity.
fn replica_identity() -> String {
    use rand::Rng;
    let base = std::env::var("POD_NAME")
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_else(|_| CONTROLLER_NAME.to_string());
    format!("{base}-{:06x}", rand::thread_rng().gen_range(0..0x100_0000))
}
