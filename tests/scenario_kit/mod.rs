//! Shared harness of the scenario tests: a Kubernetes API emulator and a Clear simulator in
//! process, the operator's reconciler wired to both with one manual clock driving the
//! operator and the simulator, and checks that no client secret or token leaks into logs,
//! Events or status.
#![allow(dead_code)]

#[path = "../kit_common/mod.rs"]
pub mod common;

#[allow(unused_imports)]
pub use common::{PRODUCTS, is_ready, is_ready_with, ready_condition, ready_message};

use std::{
    io::Write,
    sync::{Arc, Mutex, OnceLock},
    time::Duration,
};

use chrono::{DateTime, Utc};
use clear_operator::{
    clear::{AllowedBaseUrls, ClearClient, ClearClientConfig, parse_base_url},
    clock::ManualClock,
    controller::{self, ControllerConfig},
    metrics::Metrics,
    reconcile::{self, Context, Settings, decide::Policy, secret::keys},
    resource::{ClearApiClient, ClearApiClientStatus},
};
use clear_sandbox::{ClientConfig, Sandbox, SandboxConfig, SandboxHandle};
use futures::StreamExt;
use jiff::{SignedDuration, Timestamp};
use k8s_openapi::{
    api::core::v1::Secret,
    apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
};
use kube::{
    Api, CustomResourceExt,
    api::{DeleteParams, Patch, PatchParams, PostParams},
    runtime::{controller::Action, events::Reporter, watcher},
};
use kube_emulator::{Emulator, EmulatorOptions};
use serde_json::{Value, json};
use tokio::sync::oneshot;

pub const NS: &str = "default";

/// Everything the suite logged, for the leak check.
fn log_buffer() -> &'static Mutex<Vec<u8>> {
    static BUFFER: OnceLock<Mutex<Vec<u8>>> = OnceLock::new();
    BUFFER.get_or_init(|| Mutex::new(Vec::new()))
}

struct BufferWriter;

impl Write for BufferWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        log_buffer()
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn capture_logs() {
    static INIT: OnceLock<()> = OnceLock::new();
    INIT.get_or_init(|| {
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter("debug,hyper=info,hyper_util=info,tower=info,h2=info,rustls=info")
            .with_writer(|| BufferWriter)
            .with_ansi(false)
            .finish();
        let _ = tracing::subscriber::set_global_default(subscriber);
    });
}

pub fn captured_logs() -> String {
    String::from_utf8_lossy(
        &log_buffer()
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner),
    )
    .into_owned()
}

fn to_chrono(t: Timestamp) -> DateTime<Utc> {
    DateTime::from_timestamp(t.as_second(), t.subsec_nanosecond() as u32).expect("in range")
}

pub struct Kit {
    pub emulator: Emulator,
    pub sandbox: SandboxHandle,
    pub client: kube::Client,
    pub clock: ManualClock,
    sandbox_clock: Arc<clear_sandbox::ManualClock>,
    pub ctx: Arc<Context>,
    pub cacs: Api<ClearApiClient>,
    pub secrets: Api<Secret>,
    /// Every client secret and token the test saw, for the leak check.
    confidential: Mutex<Vec<String>>,
    reflector_stop: Option<oneshot::Sender<()>>,
}

pub struct KitOptions {
    pub clients: Vec<ClientConfig>,
    pub policy: Policy,
    pub start: Timestamp,
    /// Total timeout of one call to Clear.
    pub clear_timeout: Duration,
    /// Base URLs allowed besides the kit's own simulator (another Clear host of a test).
    pub also_allowed: Vec<String>,
    /// The install the kit's context belongs to (its Lease, `namespace/name`): it records
    /// itself in status, and keeps its budget ledger next to the Lease.
    pub instance: Option<String>,
}

impl Default for KitOptions {
    fn default() -> Self {
        Self {
            clients: Vec::new(),
            // NB: exact renewal instants, so that tests can name them; the jitter has
            // scenarios of its own.
            policy: Policy {
                renewal_jitter_percent: 0,
                ..Policy::default()
            },
            start: "2026-11-25T10:00:00Z".parse().unwrap(),
            clear_timeout: Duration::from_secs(5),
            also_allowed: Vec::new(),
            instance: None,
        }
    }
}

impl Kit {
    pub async fn start(clients: Vec<ClientConfig>) -> Kit {
        Self::start_with(Self::options(clients)).await
    }

    /// A kit whose resource `billing` (client secret `secret` in Secret `clear-secret`,
    /// tokens living 12 h) holds its first token: one call made.
    pub async fn with_first_token(secret: &str) -> Kit {
        let kit = Kit::start(vec![
            ClientConfig::new(secret, "ws-1").with_lifetime(Duration::from_secs(12 * 3600)),
        ])
        .await;
        kit.put_client_secret("clear-secret", "clientSecret", secret)
            .await;
        kit.create("billing", kit.spec("clear-secret")).await;
        kit.reconcile("billing").await;
        assert_eq!(kit.calls(secret), 1);
        kit
    }

    /// A kit whose Secret `clear-secret` holds the client secret `secret` (key
    /// `clientSecret`); no resource yet.
    pub async fn with_client_secret(clients: Vec<ClientConfig>, secret: &str) -> Kit {
        Self::with_client_secret_and(Self::options(clients), secret).await
    }

    /// [`Kit::with_client_secret`] with other options.
    pub async fn with_client_secret_and(options: KitOptions, secret: &str) -> Kit {
        let kit = Self::start_with(options).await;
        kit.put_client_secret("clear-secret", "clientSecret", secret)
            .await;
        kit
    }

    /// A kit whose resource `billing` reads the client secret `secret` from the Secret
    /// `clear-secret`: not reconciled yet, no call made.
    pub async fn with_resource(clients: Vec<ClientConfig>, secret: &str) -> Kit {
        Self::with_resource_and(Self::options(clients), secret).await
    }

    /// [`Kit::with_resource`] with other options.
    pub async fn with_resource_and(options: KitOptions, secret: &str) -> Kit {
        let kit = Self::with_client_secret_and(options, secret).await;
        kit.create("billing", kit.spec("clear-secret")).await;
        kit
    }

    /// The default options with these Clear clients.
    fn options(clients: Vec<ClientConfig>) -> KitOptions {
        KitOptions {
            clients,
            ..KitOptions::default()
        }
    }

    pub async fn start_with(options: KitOptions) -> Kit {
        capture_logs();
        let (emulator, client) = emulator_with_crd().await;

        let sandbox_clock = Arc::new(clear_sandbox::ManualClock::new(to_chrono(options.start)));
        let confidential: Vec<String> = options
            .clients
            .iter()
            .map(|c| c.client_secret.expose().to_string())
            .collect();
        let sandbox =
            Sandbox::start(SandboxConfig::new(options.clients).with_clock(sandbox_clock.clone()))
                .await
                .expect("sandbox starts");

        let clock = ManualClock::new(options.start);
        let ctx = Arc::new(new_context(
            &operator_client(&emulator),
            &clock,
            options.policy,
            options.clear_timeout,
            &[&[sandbox.url().to_string()][..], &options.also_allowed[..]].concat(),
            options.instance.as_deref(),
        ));
        let cacs: Api<ClearApiClient> = Api::namespaced(client.clone(), NS);
        let secrets: Api<Secret> = Api::namespaced(client.clone(), NS);

        // The index the conflict check reads, fed from a watch like the controller's own.
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let index = ctx.services.index.clone();
        let stream = watcher(
            Api::<ClearApiClient>::all(client.clone()),
            watcher::Config::default(),
        )
        .take_until(stop_rx);
        tokio::spawn(stream.for_each(move |event| {
            if let Ok(event) = event {
                index.apply_event(0, &event);
            }
            async {}
        }));

        Kit {
            emulator,
            sandbox,
            client,
            clock,
            sandbox_clock,
            ctx,
            cacs,
            secrets,
            confidential: Mutex::new(confidential),
            reflector_stop: Some(stop_tx),
        }
    }

    pub fn url(&self) -> String {
        self.sandbox.url().to_string()
    }

    /// Moves the operator's and the simulator's clocks together.
    pub fn advance(&self, by: SignedDuration) {
        self.clock.advance(by);
        self.sandbox_clock.set_to(to_chrono(jiff_now(&self.clock)));
    }

    /// Moves only the simulator's clock (Clear and the cluster disagree about the time).
    pub fn set_clear_time(&self, to: &str) {
        let t: Timestamp = to.parse().unwrap();
        self.sandbox_clock.set_to(to_chrono(t));
    }

    pub fn set_time(&self, to: &str) {
        let t: Timestamp = to.parse().unwrap();
        self.clock.set(t);
        self.sandbox_clock.set_to(to_chrono(t));
    }

    pub fn now(&self) -> Timestamp {
        jiff_now(&self.clock)
    }

    pub fn remember(&self, value: &str) {
        // NB: an empty or tiny value would "appear" everywhere; tests use long ones.
        if value.len() < 8 {
            return;
        }
        self.confidential.lock().unwrap().push(value.to_string());
    }

    /// Creates (or replaces) the client-secret Secret.
    pub async fn put_client_secret(&self, name: &str, key: &str, value: &str) {
        self.remember(value);
        let secret = common::client_secret(name, Some(NS), key, value);
        let _ = self.secrets.delete(name, &DeleteParams::default()).await;
        self.secrets
            .create(&PostParams::default(), &secret)
            .await
            .expect("client secret created");
    }

    /// A spec pointing at the simulator.
    pub fn spec(&self, secret_name: &str) -> Value {
        common::spec(&self.url(), "ws-1", secret_name)
    }

    pub async fn create(&self, name: &str, spec: Value) -> ClearApiClient {
        self.create_with_meta(name, json!({}), spec).await
    }

    pub async fn create_with_meta(&self, name: &str, meta: Value, spec: Value) -> ClearApiClient {
        let obj = common::resource(name, Some(NS), meta, spec);
        let created = self
            .cacs
            .create(&PostParams::default(), &obj)
            .await
            .expect("resource created");
        self.wait_in_directory(name).await;
        created
    }

    /// Waits until the conflict-check index has seen the resource.
    pub async fn wait_in_directory(&self, name: &str) {
        self.wait_in_directory_of(NS, name).await;
    }

    /// Waits until the conflict-check index has seen the resource `namespace/name`.
    pub async fn wait_in_directory_of(&self, namespace: &str, name: &str) {
        let index = &self.ctx.services.index;
        let seen = common::poll(Duration::from_secs(10), Duration::from_millis(10), || {
            std::future::ready(index.contains(namespace, name).then_some(()))
        })
        .await;
        assert!(
            seen.is_some(),
            "resource {name} never reached the directory"
        );
    }

    /// Creates a Deployment `name` (one container) that reads the token: a
    /// `rolloutRestartTargets` entry. Returns the Deployments API of the namespace.
    pub async fn create_consumer_deployment(
        &self,
        name: &str,
    ) -> Api<k8s_openapi::api::apps::v1::Deployment> {
        let deployments = Api::namespaced(self.client.clone(), NS);
        let deployment = serde_json::from_value(serde_json::json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name},
            "spec": {
                "selector": {"matchLabels": {"app": name}},
                "template": {
                    "metadata": {"labels": {"app": name}},
                    "spec": {"containers": [{"name": "app", "image": "busybox"}]}
                }
            }
        }))
        .unwrap();
        deployments
            .create(&Default::default(), &deployment)
            .await
            .unwrap();
        deployments
    }

    /// Deletes the resource `name` (a finalizer may keep it a while).
    pub async fn delete(&self, name: &str) {
        self.cacs
            .delete(name, &DeleteParams::default())
            .await
            .expect("resource deleted");
    }

    pub async fn patch_spec(&self, name: &str, spec: Value) {
        common::patch_spec(&self.cacs, name, spec).await;
    }

    /// Asks for a new token: the regenerate annotation set to `value`.
    pub async fn regenerate(&self, name: &str, value: &str) {
        self.annotate(name, clear_operator::resource::REGENERATE_ANNOTATION, value)
            .await;
    }

    /// Someone edits the token Secret `name` the way `kubectl edit` would (a merge patch of
    /// their own).
    pub async fn edit_target(&self, name: &str, patch: Value) {
        self.secrets
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .expect("target Secret edited");
    }

    /// Edits the status of `name` as the operator's field manager would write it (another
    /// replica, an earlier version, a crash, a clock that was off).
    pub async fn edit_status(&self, name: &str, edit: impl FnOnce(&mut Value)) {
        let mut status = serde_json::to_value(self.status(name).await).unwrap();
        edit(&mut status);
        let patch = json!({"apiVersion": "clear-operator.io/v1alpha1", "kind": "ClearApiClient", "status": status});
        self.cacs
            .patch_status(
                name,
                &PatchParams::apply("clear-operator").force(),
                &Patch::Apply(&patch),
            )
            .await
            .expect("status edited");
    }

    pub async fn annotate(&self, name: &str, key: &str, value: &str) {
        self.cacs
            .patch(
                name,
                &PatchParams::default(),
                &Patch::Merge(&json!({"metadata": {"annotations": {key: value}}})),
            )
            .await
            .expect("annotated");
    }

    /// One reconcile of `name`, as the controller would run it on any event.
    pub async fn reconcile(&self, name: &str) -> Action {
        self.reconcile_in(&self.ctx, name)
            .await
            .expect("reconcile succeeds")
    }

    /// One reconcile of `name` by the replica (or install) whose context is `ctx`; it may
    /// fail (an injected API error, a replica that may not write).
    pub async fn reconcile_in(
        &self,
        ctx: &Arc<Context>,
        name: &str,
    ) -> Result<Action, reconcile::Error> {
        let obj = self.cacs.get(name).await.expect("resource exists");
        reconcile::reconcile(Arc::new(obj), ctx.clone()).await
    }

    /// Several reconciles in a row: spurious events must not change anything.
    pub async fn reconcile_times(&self, name: &str, times: usize) {
        for _ in 0..times {
            self.reconcile(name).await;
        }
    }

    pub async fn get(&self, name: &str) -> ClearApiClient {
        self.cacs.get(name).await.expect("resource exists")
    }

    /// The status of `name` (present once reconciled).
    pub async fn status(&self, name: &str) -> ClearApiClientStatus {
        self.get(name).await.status.expect("status present")
    }

    /// How long until the retry status schedules for `name`.
    pub async fn retry_wait(&self, name: &str) -> SignedDuration {
        let retry = self
            .status(name)
            .await
            .next_retry_time
            .expect("a retry planned");
        retry.0.duration_since(self.now())
    }

    pub async fn ready(&self, name: &str) -> (String, String) {
        let (status, reason, _) = self.ready_with_message(name).await;
        (status, reason)
    }

    /// The Ready condition as (status, reason, message).
    pub async fn ready_with_message(&self, name: &str) -> (String, String, String) {
        let cac = self.get(name).await;
        let condition = ready_condition(&cac).expect("Ready condition present");
        (
            condition.status.clone(),
            condition.reason.clone(),
            condition.message.clone(),
        )
    }

    pub async fn target(&self, name: &str) -> Option<Secret> {
        self.secrets.get_opt(name).await.expect("secret read")
    }

    pub fn data(secret: &Secret, key: &str) -> String {
        String::from_utf8(secret.data.as_ref().expect("data")[key].0.clone()).expect("utf-8")
    }

    /// The token stored in the target Secret (remembered for the leak check).
    pub async fn token_in(&self, name: &str) -> String {
        let secret = self.target(name).await.expect("target Secret exists");
        let token = Self::data(&secret, keys::ACCESS_TOKEN);
        self.remember(&token);
        token
    }

    /// The token Clear (the simulator) holds for `secret` now, remembered for the leak check
    /// (it may never have reached a Secret).
    pub fn live_token(&self, secret: &str) -> String {
        let token = self
            .sandbox
            .current_token(secret)
            .expect("Clear holds a token")
            .token
            .expose()
            .to_string();
        self.remember(&token);
        token
    }

    /// Calls to Clear's token endpoint made with `secret`.
    pub fn calls(&self, secret: &str) -> u64 {
        common::calls(&self.sandbox, secret)
    }

    pub fn all_calls(&self) -> u64 {
        self.sandbox.total_call_counts().total
    }

    /// Events (events.k8s.io) recorded about `name`, as (type, reason, note).
    pub fn events(&self, name: &str) -> Vec<(String, String, String)> {
        self.emulator
            .objects("events.k8s.io/events", Some(NS))
            .into_iter()
            .filter(|e| e["regarding"]["name"] == name)
            .map(|e| {
                let s = |v: &Value| v.as_str().unwrap_or_default().to_string();
                (s(&e["type"]), s(&e["reason"]), s(&e["note"]))
            })
            .collect()
    }

    /// The notes of the Warning Events with `reason` recorded about `name`.
    pub fn warnings(&self, name: &str, reason: &str) -> Vec<String> {
        self.events(name)
            .into_iter()
            .filter(|(kind, r, _)| kind == "Warning" && r == reason)
            .map(|(_, _, note)| note)
            .collect()
    }

    /// The notes of the Events (of any type) with `reason` recorded about `name`.
    pub fn notes(&self, name: &str, reason: &str) -> Vec<String> {
        self.events(name)
            .into_iter()
            .filter(|(_, r, _)| r == reason)
            .map(|(_, _, note)| note)
            .collect()
    }

    pub fn event_reasons(&self, name: &str) -> Vec<String> {
        self.events(name)
            .into_iter()
            .map(|(_, reason, _)| reason)
            .collect()
    }

    /// No client secret or token seen by this test appears in the logs, in any Event, or
    /// in any ClearApiClient (status included).
    pub fn assert_no_leaks(&self) {
        // Current tokens of the simulator count too, even if they never reached a Secret.
        let known: Vec<String> = self.confidential.lock().unwrap().clone();
        for value in known {
            if let Some(issued) = self.sandbox.current_token(&value) {
                self.remember(issued.token.expose());
            }
        }
        let logs = captured_logs();
        let events =
            serde_json::to_string(&self.emulator.objects("events.k8s.io/events", None)).unwrap();
        let core_events = serde_json::to_string(&self.emulator.objects("events", None)).unwrap();
        let resources = serde_json::to_string(
            &self
                .emulator
                .objects("clear-operator.io/clearapiclients", None),
        )
        .unwrap();
        let confidential = self.confidential.lock().unwrap().clone();
        common::assert_not_shown(
            &confidential,
            &[
                ("the logs", logs),
                ("an Event", events),
                ("an Event", core_events),
                ("a ClearApiClient", resources),
            ],
        );
    }

    /// Runs the real controller (no leader election) until the returned sender is used.
    pub fn run_controller(
        &self,
        ctx: Arc<Context>,
    ) -> (oneshot::Sender<()>, tokio::task::JoinHandle<()>) {
        let (tx, rx) = oneshot::channel::<()>();
        let config = ControllerConfig {
            concurrency: 4,
            ..ControllerConfig::default()
        };
        let handle = tokio::spawn(controller::run(ctx, config, async move {
            let _ = rx.await;
        }));
        (tx, handle)
    }

    /// Runs a replica with leader election on the Lease `clear-operator` (short lease so
    /// that handovers take about a second).
    pub fn run_replica(
        &self,
        ctx: Arc<Context>,
        identity: &str,
    ) -> (oneshot::Sender<()>, tokio::task::JoinHandle<()>) {
        let (tx, rx) = oneshot::channel::<()>();
        let mut lease = clear_operator::leader::LeaseConfig::new(NS, "clear-operator", identity);
        lease.lease_duration = Duration::from_secs(3);
        let config = ControllerConfig {
            concurrency: 4,
            leader_election: Some(lease),
            ..ControllerConfig::default()
        };
        let handle = tokio::spawn(controller::run(ctx, config, async move {
            let _ = rx.await;
        }));
        (tx, handle)
    }

    /// A fresh operator context (as after a restart) sharing this kit's clock.
    pub fn new_context(&self, policy: Policy) -> Arc<Context> {
        self.new_context_of(policy, None)
    }

    /// A fresh operator context with its own Kubernetes client (e.g. other limits).
    pub fn new_context_with_client(&self, client: kube::Client, policy: Policy) -> Arc<Context> {
        Arc::new(self.fresh_context(&client, policy, None))
    }

    /// A fresh operator context of an install in standby (`--standby`).
    pub fn new_standby_context(&self) -> Arc<Context> {
        let policy = Policy {
            renewal_jitter_percent: 0,
            ..Policy::default()
        };
        let mut ctx = self.fresh_context(&operator_client(&self.emulator), policy, None);
        ctx.settings.standby = true;
        Arc::new(ctx)
    }

    /// A fresh operator context of the install `instance` (its Lease `namespace/name`).
    pub fn new_context_of(&self, policy: Policy, instance: Option<&str>) -> Arc<Context> {
        let client = operator_client(&self.emulator);
        Arc::new(self.fresh_context(&client, policy, instance))
    }

    /// A context as after a restart: this kit's clock and simulator, Clear's 5 s timeout.
    fn fresh_context(
        &self,
        client: &kube::Client,
        policy: Policy,
        instance: Option<&str>,
    ) -> Context {
        new_context(
            client,
            &self.clock,
            policy,
            Duration::from_secs(5),
            &[self.sandbox.url().to_string()],
            instance,
        )
    }

    /// Gives the background controller time: polls `check` (every 10 ms, for up to 20 s)
    /// until it holds. It asserts nothing; the test asserts what it waited for afterwards.
    pub async fn eventually<Fut>(&self, mut check: impl FnMut() -> Fut)
    where
        Fut: std::future::Future<Output = bool>,
    {
        common::poll(Duration::from_secs(20), Duration::from_millis(10), || {
            let held = check();
            async move { held.await.then_some(()) }
        })
        .await;
    }

    /// Waits until the resource is Ready=True (the controller runs in the background).
    pub async fn wait_ready(&self, name: &str) {
        self.wait_for(name, "Ready", |c| is_ready(c, "True")).await;
    }

    /// Runs the real controller (no leader election) with a fresh context of the default
    /// policy, as a started operator would.
    pub fn start_controller(&self) -> RunningController {
        self.start_controller_with(self.new_context(Policy::default()))
    }

    /// Runs the real controller (no leader election) on the context `ctx`.
    pub fn start_controller_with(&self, ctx: Arc<Context>) -> RunningController {
        let (stop, handle) = self.run_controller(ctx);
        RunningController { stop, handle }
    }

    /// Waits until `check` holds for the resource (the controller runs in the background).
    pub async fn wait_for(&self, name: &str, what: &str, check: impl Fn(&ClearApiClient) -> bool) {
        let check = &check;
        let reached = common::poll(
            Duration::from_secs(20),
            Duration::from_millis(10),
            || async {
                self.cacs
                    .get_opt(name)
                    .await
                    .unwrap()
                    .filter(|cac| check(cac))
            },
        )
        .await;
        if reached.is_some() {
            return;
        }
        let logs = captured_logs();
        let failures: Vec<&str> = logs
            .lines()
            .filter(|l| l.contains("reconcile failed"))
            .take(3)
            .collect();
        panic!("{name} never reached: {what}; reconcile failures: {failures:#?}");
    }

    /// The end of most scenarios: nothing confidential leaked, then the kit stops.
    pub async fn finish(self) {
        self.assert_no_leaks();
        self.shutdown().await;
    }

    pub async fn shutdown(mut self) {
        if let Some(stop) = self.reflector_stop.take() {
            let _ = stop.send(());
        }
        let _ = self.sandbox.shutdown().await;
        self.emulator.shutdown().await;
    }
}

/// A controller running in the background ([`Kit::start_controller`]).
pub struct RunningController {
    stop: oneshot::Sender<()>,
    handle: tokio::task::JoinHandle<()>,
}

impl RunningController {
    /// Stops the controller and waits until it has exited.
    pub async fn stop(self) {
        self.stop.send(()).expect("the controller still runs");
        self.handle.await.expect("the controller did not panic");
    }
}

/// The operator's client as `run` builds it (no hidden retries); the test's own client is
/// kube-rs's default.
fn operator_client(emulator: &Emulator) -> kube::Client {
    clear_operator::kube_client::build(emulator.client_config())
        .expect("a plain-http client builds")
}

fn jiff_now(clock: &ManualClock) -> Timestamp {
    use clear_operator::clock::Clock;
    clock.now()
}

fn new_context(
    client: &kube::Client,
    clock: &ManualClock,
    policy: Policy,
    timeout: Duration,
    allowed: &[String],
    instance: Option<&str>,
) -> Context {
    let mut registry = prometheus_client::registry::Registry::default();
    let metrics = Arc::new(Metrics::register(&mut registry));
    let clear = ClearClient::new(ClearClientConfig {
        request_timeout: timeout,
        ..ClearClientConfig::default()
    })
    .expect("clear client builds");
    Context::new(
        client.clone(),
        clear,
        Arc::new(clock.clone()),
        metrics,
        Settings {
            allow_http: true,
            // NB: like `dev`, the operator may only call this kit's simulator (and what a
            // test allows besides).
            allowed_base_urls: AllowedBaseUrls::only(
                &allowed
                    .iter()
                    .map(|url| parse_base_url(url).expect("an allowed URL"))
                    .collect::<Vec<_>>(),
            ),
            policy,
            instance: instance.map(str::to_string),
            standby: false,
            nudge_pods: true,
        },
        Reporter {
            controller: "clear-operator".into(),
            instance: None,
        },
    )
}

/// An emulator with the ClearApiClient CRD registered, and a client of it.
pub async fn emulator_with_crd() -> (Emulator, kube::Client) {
    let emulator = Emulator::start(EmulatorOptions::default())
        .await
        .expect("emulator starts");
    let client = emulator.client().await;
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    crds.create(&PostParams::default(), &ClearApiClient::crd())
        .await
        .expect("CRD registers");
    (emulator, client)
}

/// Creates the namespace `name`.
pub async fn create_namespace(client: &kube::Client, name: &str) {
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    namespaces
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": name}})).unwrap(),
        )
        .await
        .expect("namespace created");
}
