//! Failover with two real processes of the binary (leader election on the emulator's
//! Lease, the Clear simulator answering slowly): stopping the leader with SIGTERM or SIGKILL
//! while its call to Clear is in flight must leave the Secret holding a live token, with
//! the exact number of calls once everything settled.

use std::{
    io::{BufRead, BufReader},
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use clear_operator::resource::{ClearApiClient, REGENERATE_ANNOTATION};
use clear_sandbox::{ClientConfig, Fault, FaultScope, Sandbox, SandboxConfig, SandboxHandle};
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

const BIN: &str = env!("CARGO_BIN_EXE_clear-operator");
const NS: &str = "default";
/// Each test has its own client secret (the tests may run in parallel).
const LEASE_SECS: &str = "3";
const CLEAR_TIMEOUT_SECS: &str = "5";
/// The simulator mints at once, then holds its answer back this long.
const SLOW_ANSWER: Duration = Duration::from_secs(3);

/// One `clear-operator run` process; killed on drop so a failing test leaks nothing.
struct Replica {
    child: Child,
    output: Arc<Mutex<Vec<String>>>,
}

impl Replica {
    /// `allowed`: the simulator's URL, the only base URL this operator may call.
    fn start(kubeconfig: &std::path::Path, name: &str, allowed: &str) -> Replica {
        let mut child = Command::new(BIN)
            .args([
                "run",
                "--allow-http",
                "--namespace",
                NS,
                "--leader-election-namespace",
                NS,
                "--metrics-addr",
                "127.0.0.1:0",
                "--lease-duration-secs",
                LEASE_SECS,
                "--clear-timeout-secs",
                CLEAR_TIMEOUT_SECS,
                "--shutdown-grace-secs",
                "20",
            ])
            .env("KUBECONFIG", kubeconfig)
            .env("CLEAR_OPERATOR_ALLOWED_BASE_URLS", allowed)
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
        Replica { child, output }
    }

    fn logged(&self, needle: &str) -> bool {
        self.output
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains(needle))
    }

    fn output(&self) -> String {
        self.output.lock().unwrap().join("\n")
    }

    fn signal_term(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success());
    }

    /// Waits for the process to exit; returns whether it exited with status 0.
    async fn wait_exit(&mut self, within: Duration) -> bool {
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
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct World {
    emulator: Emulator,
    sandbox: SandboxHandle,
    cacs: Api<ClearApiClient>,
    secrets: Api<Secret>,
    leases: Api<Lease>,
    kubeconfig: std::path::PathBuf,
    secret: &'static str,
}

impl World {
    async fn start(secret: &'static str) -> World {
        let emulator = Emulator::start(EmulatorOptions::default())
            .await
            .expect("emulator starts");
        let client = emulator.client().await;
        Api::<CustomResourceDefinition>::all(client.clone())
            .create(&PostParams::default(), &ClearApiClient::crd())
            .await
            .expect("CRD registers");
        let sandbox = Sandbox::start(SandboxConfig::new(vec![
            ClientConfig::new(secret, "ws-1").with_lifetime(Duration::from_secs(12 * 3600)),
        ]))
        .await
        .expect("sandbox starts");
        let kubeconfig =
            std::env::temp_dir().join(format!("clear-operator-failover-{secret}.kubeconfig"));
        std::fs::write(&kubeconfig, emulator.kubeconfig_yaml()).expect("kubeconfig written");
        let secrets: Api<Secret> = Api::namespaced(client.clone(), NS);
        let client_secret: Secret = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "clear-secret", "namespace": NS},
            "stringData": {"clientSecret": secret},
        }))
        .unwrap();
        secrets
            .create(&PostParams::default(), &client_secret)
            .await
            .expect("client secret created");
        let cacs: Api<ClearApiClient> = Api::namespaced(client.clone(), NS);
        let cac: ClearApiClient = serde_json::from_value(json!({
            "apiVersion": "clear-operator.io/v1alpha1", "kind": "ClearApiClient",
            "metadata": {"name": "billing", "namespace": NS},
            "spec": {
                "environment": "sandbox", "baseUrl": sandbox.url(), "workspace": "ws-1",
                "products": ["GST"], "clientSecretRef": {"name": "clear-secret"},
            },
        }))
        .unwrap();
        cacs.create(&PostParams::default(), &cac)
            .await
            .expect("resource created");
        World {
            leases: Api::namespaced(client, NS),
            emulator,
            sandbox,
            cacs,
            secrets,
            kubeconfig,
            secret,
        }
    }

    fn calls(&self) -> u64 {
        self.sandbox.call_counts(self.secret).total
    }

    async fn holder(&self) -> Option<String> {
        self.leases
            .get_opt("clear-operator")
            .await
            .unwrap()
            .and_then(|l| l.spec?.holder_identity)
    }

    /// The token in the Secret, if it is the simulator's current, live token.
    async fn live_token_in_secret(&self) -> bool {
        let Some(secret) = self.secrets.get_opt("billing").await.unwrap() else {
            return false;
        };
        let Some(token) = secret.data.and_then(|d| d.get("accessToken").cloned()) else {
            return false;
        };
        let token = String::from_utf8(token.0).unwrap();
        self.sandbox.is_token_valid(&token)
            && self
                .sandbox
                .current_token(self.secret)
                .is_some_and(|t| t.token.expose() == token)
    }

    /// Ready=True, no call marked in flight, and the Secret's token live.
    async fn settled(&self) -> bool {
        let cac = self.cacs.get("billing").await.unwrap();
        let status = cac.status.unwrap_or_default();
        let ready = status
            .conditions
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True" && c.reason == "Issued");
        ready && status.mint_started_at.is_none() && self.live_token_in_secret().await
    }

    async fn wait_until<F: std::future::Future<Output = bool>>(
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

    async fn annotate(&self, key: &str, value: &str) {
        self.cacs
            .patch(
                "billing",
                &PatchParams::default(),
                &Patch::Merge(&json!({"metadata": {"annotations": {key: value}}})),
            )
            .await
            .expect("annotated");
    }

    /// Leader `a` (issued the first token) and standby `b`, then a regeneration whose call
    /// to Clear is slow: returns once Clear has minted (the answer is still held back).
    async fn leader_in_a_slow_call(&self) -> (Replica, Replica) {
        let a = Replica::start(&self.kubeconfig, "replica-a", self.sandbox.url());
        self.wait_until("the first token", Duration::from_secs(60), &[&a], || {
            self.settled()
        })
        .await;
        assert_eq!(self.calls(), 1);
        self.wait_until(
            "replica-a holds the Lease",
            Duration::from_secs(30),
            &[&a],
            || async {
                self.holder()
                    .await
                    .is_some_and(|h| h.starts_with("replica-a"))
            },
        )
        .await;
        let b = Replica::start(&self.kubeconfig, "replica-b", self.sandbox.url());
        self.wait_until("replica-b runs", Duration::from_secs(30), &[&b], || async {
            b.logged("clear-operator starting")
        })
        .await;

        self.sandbox.inject_fault(
            FaultScope::Secret(self.secret.into()),
            Fault::Delay(SLOW_ANSWER),
            1,
        );
        self.annotate(REGENERATE_ANNOTATION, "rotate-1").await;
        self.wait_until(
            "the slow call reached Clear",
            Duration::from_secs(30),
            &[&a, &b],
            || async { self.calls() == 2 },
        )
        .await;
        (a, b)
    }

    /// Pokes the resource (a spurious event) and gives the leader time to act on it.
    async fn poke_and_settle(&self) {
        self.annotate("example.com/poke", "1").await;
        tokio::time::sleep(Duration::from_secs(2)).await;
    }

    async fn shutdown(self) {
        let _ = std::fs::remove_file(&self.kubeconfig);
        let _ = self.sandbox.shutdown().await;
        self.emulator.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_a_slow_call_finishes_the_call_then_hands_over_without_minting() {
    let world = World::start("cs-failover-term-0001").await;
    let (mut a, b) = world.leader_in_a_slow_call().await;

    a.signal_term();
    assert!(
        a.wait_exit(Duration::from_secs(30)).await,
        "SIGTERM ends the leader cleanly; output:\n{}",
        a.output()
    );
    world
        .wait_until(
            "replica-b leads",
            Duration::from_secs(30),
            &[&b],
            || async {
                world
                    .holder()
                    .await
                    .is_some_and(|h| h.starts_with("replica-b"))
            },
        )
        .await;
    world
        .wait_until(
            "a live token is Ready",
            Duration::from_secs(30),
            &[&a, &b],
            || world.settled(),
        )
        .await;
    world.poke_and_settle().await;

    assert_eq!(
        world.calls(),
        2,
        "the first token and the regeneration, nothing more; replica-b:\n{}",
        b.output()
    );
    assert!(
        world.settled().await,
        "the Secret still holds the live token"
    );
    assert!(
        a.logged("new token written"),
        "the old leader wrote the answer of its call before releasing the Lease"
    );
    drop(b);
    world.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_a_slow_call_lets_the_standby_replace_the_token_exactly_once() {
    let world = World::start("cs-failover-kill-0001").await;
    let (mut a, b) = world.leader_in_a_slow_call().await;

    // The token in the Secret was revoked by the call that is now lost with its process.
    a.child.kill().expect("SIGKILL");
    let _ = a.child.wait();
    world
        .wait_until(
            "replica-b waits out the lost call, then replaces the token",
            Duration::from_secs(90),
            &[&b],
            || world.settled(),
        )
        .await;
    world.poke_and_settle().await;

    assert_eq!(
        world.calls(),
        3,
        "first token, the lost call, one replacement; replica-b:\n{}",
        b.output()
    );
    assert!(world.settled().await, "the Secret holds the live token");
    assert!(
        b.logged("MintInFlight") || b.logged("may still be in flight"),
        "the standby waited for the lost call's deadline before minting; replica-b:\n{}",
        b.output()
    );
    drop(b);
    world.shutdown().await;
}
