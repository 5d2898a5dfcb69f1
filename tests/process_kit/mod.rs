//! Shared harness of the tests that run the operator binary as real processes: the
//! Kubernetes API emulator and the Clear simulator in process, one ClearApiClient `billing`
//! with its client secret, and `clear-operator run` replicas whose output is kept for the
//! failure message (and which are killed on drop, so a failing test leaks nothing).
#![allow(dead_code)]

pub mod faketime;

use std::{
    io::{BufRead, BufReader},
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use clear_operator::resource::ClearApiClient;
use clear_sandbox::{ClientConfig, Sandbox, SandboxConfig, SandboxHandle};
use k8s_openapi::{
    api::{coordination::v1::Lease, core::v1::Secret},
    apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
};
use kube::{
    Api, CustomResourceExt,
    api::{Patch, PatchParams, PostParams},
};
use kube_emulator::{Emulator, EmulatorOptions};
use serde_json::json;

pub const BIN: &str = env!("CARGO_BIN_EXE_clear-operator");
pub const NS: &str = "default";
pub const LEASE: &str = "clear-operator";

/// One `clear-operator run` process.
pub struct Replica {
    child: Child,
    output: Arc<Mutex<Vec<String>>>,
    /// Run under libfaketime: its shared memory is removed when the process is killed.
    faked: bool,
}

impl Replica {
    /// Starts a replica named `name` (its POD_NAME) against `world`, allowed to call only the
    /// simulator, with leader election in [`NS`] and `extra` flags.
    pub fn start(world: &World, name: &str, extra: &[&str]) -> Replica {
        Self::start_with(world, name, extra, None)
    }

    /// As [`Replica::start`], with its wall clock under `clock` (monotonic time untouched).
    pub fn start_faked(
        world: &World,
        name: &str,
        extra: &[&str],
        clock: &faketime::FakeClock,
    ) -> Replica {
        Self::start_with(world, name, extra, Some(clock))
    }

    fn start_with(
        world: &World,
        name: &str,
        extra: &[&str],
        clock: Option<&faketime::FakeClock>,
    ) -> Replica {
        let mut command = Command::new(BIN);
        if let Some(clock) = clock {
            command.envs(clock.env());
        }
        let mut child = command
            .args([
                "run",
                "--allow-http",
                "--namespace",
                NS,
                "--leader-election-namespace",
                NS,
                "--metrics-addr",
                "127.0.0.1:0",
            ])
            .args(extra)
            .env("KUBECONFIG", &world.kubeconfig)
            .env("CLEAR_OPERATOR_ALLOWED_BASE_URLS", world.sandbox.url())
            .env("POD_NAME", name)
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("clear-operator run starts");
        let output = Arc::new(Mutex::new(Vec::new()));
        for stream in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let output = output.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    output.lock().unwrap().push(line);
                }
            });
        }
        Replica {
            child,
            output,
            faked: clock.is_some(),
        }
    }

    pub fn logged(&self, needle: &str) -> bool {
        self.output
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains(needle))
    }

    pub fn output(&self) -> String {
        self.output.lock().unwrap().join("\n")
    }

    /// `http://ADDR` of its metrics server, from its start-up line (it binds port 0).
    pub async fn base(&self) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            let found = self.output.lock().unwrap().iter().find_map(|line| {
                let rest = &line[line.find("metrics_addr=")? + "metrics_addr=".len()..];
                Some(rest.split_whitespace().next()?.to_string())
            });
            if let Some(addr) = found {
                return format!("http://{addr}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("no metrics address logged; output:\n{}", self.output());
    }

    pub fn signal_term(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success());
    }

    /// SIGKILL, as the kubelet does after the grace period (or the OOM killer at any time).
    pub fn kill(&mut self) {
        self.child.kill().expect("SIGKILL");
        let _ = self.child.wait();
        self.forget_faketime();
    }

    /// SIGTERM, then waits (30 s at most) for a clean exit; returns whether it exited 0.
    pub async fn stop(&mut self) -> bool {
        self.signal_term();
        self.wait_exit(Duration::from_secs(30)).await
    }

    /// libfaketime keeps shared memory named after the process, removed only by a clean
    /// exit; a later process given the same id would fail to start under it.
    fn forget_faketime(&self) {
        if self.faked {
            faketime::remove_shared_memory(self.child.id());
        }
    }

    /// Waits for the process to exit; returns whether it exited with status 0.
    pub async fn wait_exit(&mut self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().expect("wait works") {
                return status.success();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("replica did not exit; output:\n{}", self.output());
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        if !matches!(self.child.try_wait(), Ok(Some(_))) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        self.forget_faketime();
    }
}

/// The emulator, the simulator, and the resource `billing` whose client secret is `secret`
/// (each test its own, as tests may run in parallel).
pub struct World {
    pub emulator: Emulator,
    pub sandbox: SandboxHandle,
    pub cacs: Api<ClearApiClient>,
    pub secrets: Api<Secret>,
    pub leases: Api<Lease>,
    pub kubeconfig: PathBuf,
    pub secret: &'static str,
}

impl World {
    /// The world with `billing`'s tokens living 12 hours.
    pub async fn start(secret: &'static str) -> World {
        Self::start_with_lifetime(secret, Duration::from_secs(12 * 3600)).await
    }

    /// The world with `billing`'s tokens living `lifetime`.
    pub async fn start_with_lifetime(secret: &'static str, lifetime: Duration) -> World {
        let emulator = Emulator::start(EmulatorOptions::default())
            .await
            .expect("emulator starts");
        let client = emulator.client().await;
        Api::<CustomResourceDefinition>::all(client.clone())
            .create(&PostParams::default(), &ClearApiClient::crd())
            .await
            .expect("CRD registers");
        let sandbox = Sandbox::start(SandboxConfig::new(vec![
            ClientConfig::new(secret, "ws-1").with_lifetime(lifetime),
        ]))
        .await
        .expect("sandbox starts");
        let kubeconfig =
            std::env::temp_dir().join(format!("clear-operator-process-{secret}.kubeconfig"));
        std::fs::write(&kubeconfig, emulator.kubeconfig_yaml()).expect("kubeconfig written");
        let world = World {
            leases: Api::namespaced(client.clone(), NS),
            secrets: Api::namespaced(client.clone(), NS),
            cacs: Api::namespaced(client, NS),
            emulator,
            sandbox,
            kubeconfig,
            secret,
        };
        world
            .create_resource("billing", "clear-secret", secret)
            .await;
        world
    }

    /// Adds a ClearApiClient `name` with a client secret of its own (`secret`, known to the
    /// simulator from now on, its tokens living `lifetime`), in a Secret `<name>-secret`.
    pub async fn add_resource(&self, name: &str, secret: &str, lifetime: Duration) {
        self.sandbox
            .add_client(ClientConfig::new(secret, "ws-1").with_lifetime(lifetime))
            .expect("the simulator takes the client");
        self.create_resource(name, &format!("{name}-secret"), secret)
            .await;
    }

    async fn create_resource(&self, name: &str, secret_name: &str, secret: &str) {
        let client_secret: Secret = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": secret_name, "namespace": NS},
            "stringData": {"clientSecret": secret},
        }))
        .unwrap();
        self.secrets
            .create(&PostParams::default(), &client_secret)
            .await
            .expect("client secret created");
        let cac: ClearApiClient = serde_json::from_value(json!({
            "apiVersion": "clear-operator.io/v1alpha1", "kind": "ClearApiClient",
            "metadata": {"name": name, "namespace": NS},
            "spec": {
                "environment": "sandbox", "baseUrl": self.sandbox.url(), "workspace": "ws-1",
                "products": ["GST"], "clientSecretRef": {"name": secret_name},
            },
        }))
        .unwrap();
        self.cacs
            .create(&PostParams::default(), &cac)
            .await
            .expect("resource created");
    }

    /// Calls to Clear with this world's client secret.
    pub fn calls(&self) -> u64 {
        self.sandbox.call_counts(self.secret).total
    }

    /// Who holds the leader Lease.
    pub async fn holder(&self) -> Option<String> {
        self.leases
            .get_opt(LEASE)
            .await
            .unwrap()
            .and_then(|l| l.spec?.holder_identity)
    }

    /// Whether `billing` is Ready=True.
    pub async fn ready(&self) -> bool {
        let cac = self.cacs.get("billing").await.unwrap();
        cac.status.is_some_and(|s| {
            s.conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True")
        })
    }

    pub async fn annotate(&self, key: &str, value: &str) {
        self.cacs
            .patch(
                "billing",
                &PatchParams::default(),
                &Patch::Merge(&json!({"metadata": {"annotations": {key: value}}})),
            )
            .await
            .expect("annotated");
    }

    /// Polls `check` every 50 ms until it holds; panics with the calls made and the
    /// replicas' output otherwise.
    pub async fn wait_until<F: std::future::Future<Output = bool>>(
        &self,
        what: &str,
        within: Duration,
        replicas: &[&Replica],
        check: impl Fn() -> F,
    ) {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if check().await {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let logs: Vec<String> = replicas.iter().map(|r| r.output()).collect();
        panic!(
            "never reached: {what} (calls: {}); replica output:\n{}",
            self.calls(),
            logs.join("\n----\n")
        );
    }

    /// Waits (30 s at most) until the replica named `name` holds the leader Lease.
    pub async fn wait_for_leader(&self, name: &str, replicas: &[&Replica]) {
        self.wait_until(
            &format!("{name} holds the Lease"),
            Duration::from_secs(30),
            replicas,
            || async { self.holder().await.is_some_and(|h| h.starts_with(name)) },
        )
        .await;
    }

    pub async fn shutdown(self) {
        let _ = std::fs::remove_file(&self.kubeconfig);
        let _ = self.sandbox.shutdown().await;
        self.emulator.shutdown().await;
    }
}
