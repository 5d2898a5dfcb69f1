//! Harness of the end-to-end suite: one Kubernetes API reached only through a `kube::Client`
//! (a real cluster when `CLEAR_OPERATOR_E2E_KUBECONFIG` names a kubeconfig, otherwise an
//! in-process kube-emulator), a throwaway namespace per test that is deleted even when the
//! test fails, an in-process Clear simulator, and the real operator (`operator::run`) in the
//! test process, watching only that namespace.
//!
//! Nothing here reads emulator state or injects faults: every check goes through the public
//! Kubernetes API, so a test means the same thing on both back ends.
#![allow(dead_code)]

#[path = "../kit_common/mod.rs"]
mod common;

#[allow(unused_imports)]
pub use common::{data, is_ready_with, ready_condition};

use std::{future::Future, net::SocketAddr, panic::AssertUnwindSafe, sync::Arc, time::Duration};

use clear_operator::{
    cli::RunArgs, dev::install_crd, operator, reconcile::secret::keys, resource::ClearApiClient,
};
use clear_sandbox::{ClientConfig, Sandbox, SandboxConfig, SandboxHandle};
use futures::FutureExt;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::{
    Api, Client,
    api::{DeleteParams, ListParams, PostParams},
    config::{KubeConfigOptions, Kubeconfig},
};
use kube_emulator::{Emulator, EmulatorOptions};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

/// Names a kubeconfig whose current context is the real cluster to test against.
pub const KUBECONFIG_ENV: &str = "CLEAR_OPERATOR_E2E_KUBECONFIG";
/// Workspace and products the simulator's client is created for.
pub const WORKSPACE: &str = "ws-e2e";
pub const PRODUCTS: [&str; 2] = common::PRODUCTS;

/// Where the Kubernetes API comes from.
enum Cluster {
    Real,
    /// Kept alive for the test; dropping it stops the server.
    Emulator(Emulator),
}

/// One test's world: its namespace, a simulator holding one Clear client, and clients for
/// the ClearApiClients and Secrets in that namespace.
pub struct E2e {
    pub client: Client,
    config: kube::Config,
    pub namespace: String,
    pub sandbox: SandboxHandle,
    client_secret: String,
    pub cacs: Api<ClearApiClient>,
    pub secrets: Api<Secret>,
    real: bool,
    _cluster: Cluster,
}

/// Runs `body` in a fresh namespace `e2e-<random>` and deletes that namespace afterwards,
/// also when `body` panics (the panic is then resumed, so the test still fails).
pub async fn with_temp_ns<F, Fut>(body: F)
where
    F: FnOnce(Arc<E2e>) -> Fut,
    Fut: Future<Output = ()>,
{
    let env = Arc::new(E2e::start().await);
    let outcome = AssertUnwindSafe(body(env.clone())).catch_unwind().await;
    // NB: the body's future (and every operator it started) is gone here; stopping the
    // operators before the namespace goes keeps them from recreating what is being deleted.
    env.delete_namespace().await;
    if let Ok(env) = Arc::try_unwrap(env) {
        let _ = env.sandbox.shutdown().await;
        if let Cluster::Emulator(emulator) = env._cluster {
            emulator.shutdown().await;
        }
    }
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

impl E2e {
    async fn start() -> E2e {
        let (config, cluster, real) = match std::env::var_os(KUBECONFIG_ENV) {
            Some(path) => {
                let kubeconfig = Kubeconfig::read_from(&path)
                    .unwrap_or_else(|e| panic!("failed to read {KUBECONFIG_ENV}: {e}"));
                let config =
                    kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
                        .await
                        .unwrap_or_else(|e| panic!("failed to load {KUBECONFIG_ENV}: {e}"));
                (config, Cluster::Real, true)
            }
            None => {
                let emulator = Emulator::start(EmulatorOptions::default())
                    .await
                    .expect("the kube-emulator starts");
                (emulator.client_config(), Cluster::Emulator(emulator), false)
            }
        };
        let client = Client::try_from(config.clone()).expect("a kube client builds");
        install_crd(&client, Duration::from_secs(60))
            .await
            .expect("the CRD is installed and Established within 60s");

        // NB: started before the namespace exists, so a failure here leaves nothing behind.
        // A fresh client secret per test: the simulator's call counts are then this test's.
        let client_secret = format!("cs-e2e-{}", random_lowercase(32));
        let sandbox = Sandbox::start(SandboxConfig::new(vec![
            ClientConfig::new(client_secret.clone(), WORKSPACE)
                .with_products(PRODUCTS)
                .with_lifetime(Duration::from_secs(12 * 3600)),
        ]))
        .await
        .expect("the Clear simulator starts");

        let namespace = format!("e2e-{}", random_lowercase(8));
        let namespaces: Api<Namespace> = Api::all(client.clone());
        let ns: Namespace = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": namespace, "labels": {"app.kubernetes.io/part-of": "clear-operator-e2e"}},
        }))
        .expect("a namespace object");
        namespaces
            .create(&PostParams::default(), &ns)
            .await
            .expect("the test namespace is created");

        E2e {
            cacs: Api::namespaced(client.clone(), &namespace),
            secrets: Api::namespaced(client.clone(), &namespace),
            client,
            config,
            namespace,
            sandbox,
            client_secret,
            real,
            _cluster: cluster,
        }
    }

    /// Whether the suite runs against a real cluster (slower: longer waits).
    pub fn is_real_cluster(&self) -> bool {
        self.real
    }

    async fn delete_namespace(&self) {
        let namespaces: Api<Namespace> = Api::all(self.client.clone());
        // NB: not awaited to completion: a real cluster finalizes namespaces in its own time.
        if let Err(e) = namespaces
            .delete(&self.namespace, &DeleteParams::default())
            .await
        {
            eprintln!("failed to delete namespace {}: {e}", self.namespace);
        }
    }

    /// Starts the real operator in this process, watching only this test's namespace.
    pub fn start_operator(&self) -> RunningOperator {
        self.start_operator_with(|_| {})
    }

    /// Starts the real operator in this process with `change` applied to its flags.
    pub fn start_operator_with(&self, change: impl FnOnce(&mut RunArgs)) -> RunningOperator {
        // NB: the client `run` builds: no hidden retries.
        let client =
            clear_operator::kube_client::build(self.config.clone()).expect("a kube client builds");
        let args = RunArgs {
            namespaces: vec![self.namespace.clone()],
            // NB: like `dev`, the operator may only call the simulator.
            clear: clear_operator::cli::ClearAccessArgs {
                allowed_base_urls: vec![
                    clear_operator::clear::parse_base_url(self.sandbox.url())
                        .expect("simulator URL"),
                ],
                no_documented_base_urls: true,
                allow_http: true,
                clear_timeout_secs: 5,
                ..Default::default()
            },
            concurrency: 4,
            metrics_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            no_leader_election: true,
            ..RunArgs::default()
        };
        let mut args = args;
        change(&mut args);
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(operator::run(client, args, shutdown.clone()));
        RunningOperator {
            shutdown,
            task: Some(task),
        }
    }

    /// Creates the Secret holding the simulator's client secret, under `name`/`clientSecret`.
    pub async fn put_client_secret(&self, name: &str) {
        let secret = common::client_secret(name, None, "clientSecret", &self.client_secret);
        self.secrets
            .create(&PostParams::default(), &secret)
            .await
            .expect("the client-secret Secret is created");
    }

    /// A spec pointing at the simulator, reading the client secret from `secret_name`.
    pub fn spec(&self, secret_name: &str) -> Value {
        common::spec(self.sandbox.url(), WORKSPACE, secret_name)
    }

    pub async fn create(&self, name: &str, spec: Value) -> ClearApiClient {
        let obj = common::resource(name, None, json!({}), spec);
        self.cacs
            .create(&PostParams::default(), &obj)
            .await
            .expect("the ClearApiClient is created")
    }

    pub async fn patch_spec(&self, name: &str, spec: Value) {
        common::patch_spec(&self.cacs, name, spec).await;
    }

    /// Mints a token with this test's client secret outside the operator (an ERP's), as
    /// `(token, valid_till)`: one call.
    pub async fn mint_elsewhere(&self) -> (String, Option<String>) {
        use clear_operator::clear::{ClearClient, ClearClientConfig, ClientSecret, parse_base_url};
        let client = ClearClient::new(ClearClientConfig::default()).expect("a Clear client");
        let issued = client
            .mint(
                &parse_base_url(self.sandbox.url()).expect("simulator URL"),
                &ClientSecret::new(self.client_secret.clone()),
                jiff::Timestamp::now(),
            )
            .await
            .expect("a token minted elsewhere");
        (
            issued.token.expose().to_string(),
            issued.valid_till.map(|t| t.to_string()),
        )
    }

    /// Calls to Clear's token endpoint made with this test's client secret.
    pub fn calls(&self) -> u64 {
        common::calls(&self.sandbox, &self.client_secret)
    }

    /// Whether Clear (the simulator) accepts the token stored in Secret `name`.
    pub async fn token_is_live(&self, name: &str) -> bool {
        let token = self.token_in(name).await;
        self.sandbox.is_token_valid(&token)
    }

    /// The token in Secret `name`. Never print it.
    pub async fn token_in(&self, name: &str) -> String {
        let secret = self
            .secrets
            .get(name)
            .await
            .expect("the token Secret exists");
        data(&secret, keys::ACCESS_TOKEN).expect("the token Secret has an access token")
    }

    /// The current token in the simulator, for leak checks.
    pub fn current_token(&self) -> Option<String> {
        self.sandbox
            .current_token(&self.client_secret)
            .map(|t| t.token.expose().to_string())
    }

    /// How long to poll for an asynchronous effect before failing.
    pub fn timeout(&self) -> Duration {
        if self.real {
            Duration::from_secs(120)
        } else {
            Duration::from_secs(20)
        }
    }

    /// How long to keep watching that something does NOT happen (no extra call, no GC).
    pub fn settle(&self) -> Duration {
        if self.real {
            Duration::from_secs(5)
        } else {
            Duration::from_millis(400)
        }
    }

    pub async fn wait_settled(&self) {
        tokio::time::sleep(self.settle()).await;
    }

    /// Polls until `check` holds on the ClearApiClient `name`; panics after the timeout.
    pub async fn wait_for_cac(
        &self,
        name: &str,
        what: &str,
        check: impl Fn(&ClearApiClient) -> bool,
    ) -> ClearApiClient {
        let check = &check;
        let found = self
            .poll(|| async { self.cac(name).await.filter(|cac| check(cac)) })
            .await;
        match found {
            Some(cac) => cac,
            None => {
                let last = self.cac(name).await;
                panic!(
                    "ClearApiClient {name} never reached: {what}; last Ready condition: {:?}",
                    last.as_ref().and_then(ready_condition)
                );
            }
        }
    }

    /// The ClearApiClient `name`, if it exists and could be read.
    async fn cac(&self, name: &str) -> Option<ClearApiClient> {
        self.cacs.get_opt(name).await.ok().flatten()
    }

    /// Polls until the ClearApiClient `name` no longer exists; panics after the timeout.
    pub async fn wait_until_cac_gone(&self, name: &str) {
        let gone = self
            .poll(|| async { matches!(self.cacs.get_opt(name).await, Ok(None)).then_some(()) })
            .await;
        assert!(gone.is_some(), "ClearApiClient {name} was never deleted");
    }

    /// Polls until `check` holds on Secret `name` (`None`: absent); panics after the timeout.
    pub async fn wait_for_secret(
        &self,
        name: &str,
        what: &str,
        check: impl Fn(Option<&Secret>) -> bool,
    ) -> Option<Secret> {
        let check = &check;
        let found = self
            .poll(|| async {
                let secret = self.secrets.get_opt(name).await.ok()?;
                check(secret.as_ref()).then_some(secret)
            })
            .await;
        match found {
            Some(secret) => secret,
            None => panic!("Secret {name} never reached: {what}"),
        }
    }

    async fn poll<T, Fut>(&self, attempt: impl FnMut() -> Fut) -> Option<T>
    where
        Fut: Future<Output = Option<T>>,
    {
        let interval = if self.real {
            Duration::from_millis(250)
        } else {
            Duration::from_millis(20)
        };
        common::poll(self.timeout(), interval, attempt).await
    }

    /// No token or client secret in any ClearApiClient or Event of this namespace, read
    /// through the API as a user with `kubectl get -o yaml` would.
    pub async fn assert_no_leaks(&self, extra: &[String]) {
        let mut confidential = vec![self.client_secret.clone()];
        confidential.extend(self.current_token());
        confidential.extend(extra.iter().cloned());
        confidential.retain(|v| v.len() >= 8);
        let lp = ListParams::default();
        let cacs = self.cacs.list(&lp).await.expect("ClearApiClients list");
        let events: Api<k8s_openapi::api::events::v1::Event> =
            Api::namespaced(self.client.clone(), &self.namespace);
        let events = events.list(&lp).await.expect("Events list");
        let core: Api<k8s_openapi::api::core::v1::Event> =
            Api::namespaced(self.client.clone(), &self.namespace);
        let core = core.list(&lp).await.expect("core Events list");
        common::assert_not_shown(
            &confidential,
            &[
                (
                    "a ClearApiClient",
                    serde_json::to_string(&cacs.items).expect("serializes"),
                ),
                (
                    "an Event",
                    serde_json::to_string(&events.items).expect("serializes"),
                ),
                (
                    "an Event",
                    serde_json::to_string(&core.items).expect("serializes"),
                ),
            ],
        );
    }
}

/// An operator running in this process; dropping it (a failing test) cancels it.
pub struct RunningOperator {
    shutdown: CancellationToken,
    task: Option<tokio::task::JoinHandle<Result<(), operator::OperatorError>>>,
}

impl RunningOperator {
    /// Stops the operator and waits until it has exited cleanly.
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        let task = self.task.take().expect("stopped once");
        let exited = tokio::time::timeout(Duration::from_secs(30), task)
            .await
            .expect("the operator stops within 30s")
            .expect("the operator task did not panic");
        if let Err(e) = exited {
            panic!("the operator exited with an error: {e}");
        }
    }
}

impl Drop for RunningOperator {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

fn random_lowercase(len: usize) -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::thread_rng();
    (0..len)
        .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
        .collect()
}
