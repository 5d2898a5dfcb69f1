//! `clear-operator dev`: the whole flow on one machine, no cluster and no Clear account.
//! Starts the Kubernetes API emulator and the Clear simulator in-process, installs the
//! CRD, runs the operator against them, seeds a demo client secret and ClearApiClient, and
//! narrates in plain words what happens (issue, Secret written, renewal due, renewed).

use std::{path::Path, sync::Arc, time::Duration};

use clear_sandbox::{ClientConfig, Sandbox, SandboxConfig, SandboxHandle};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::{
    ByteString,
    api::core::v1::{Namespace, Secret},
    apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
};
use kube::{
    Api, Client, CustomResourceExt, ResourceExt,
    api::{ObjectMeta, PostParams},
    runtime::{WatchStreamExt, conditions, wait::await_condition, watcher},
};
use kube_emulator::{Emulator, EmulatorOptions};
use tokio_util::sync::CancellationToken;

use crate::{
    clear::{BaseUrlError, parse_base_url},
    cli::{ClearAccessArgs, DevArgs, RunArgs},
    operator,
    reconcile::status::{self, ready_condition},
    resource::{
        ClearApiClient, ClearApiClientSpec, ClientSecretRef, DEFAULT_CLIENT_SECRET_KEY,
        Environment, Product, Region, RenewalWindow,
    },
};

pub const DEMO_NAMESPACE: &str = "demo";
pub const DEMO_NAME: &str = "gst-demo";
const DEMO_CLIENT_SECRET_NAME: &str = "clear-client-secret";
const DEMO_WORKSPACE: &str = "demo-workspace";
const DEMO_PRODUCTS: [&str; 2] = ["GST", "E_INVOICE"];

#[derive(Debug, thiserror::Error)]
pub enum DevError {
    #[error("failed to start the Kubernetes API emulator: {0}")]
    Emulator(#[from] kube_emulator::Error),
    #[error("failed to start the Clear simulator: {0}")]
    Sandbox(#[from] clear_sandbox::StartError),
    #[error("failed to write the kubeconfig to {path}: {source}")]
    Kubeconfig {
        path: String,
        source: std::io::Error,
    },
    #[error("failed to {step}: {source}")]
    Kube {
        step: &'static str,
        source: kube::Error,
    },
    #[error("failed to run the operator: {0}")]
    Operator(#[from] operator::OperatorError),
    #[error("the demo ClearApiClient was not Ready within {0:?}")]
    NotReady(Duration),
    #[error("the token in the demo Secret is not live according to the Clear simulator")]
    TokenNotLive,
    #[error("failed to allow the Clear simulator's URL: {0}")]
    SimulatorUrl(#[source] BaseUrlError),
}

fn kube_step(step: &'static str) -> impl FnOnce(kube::Error) -> DevError {
    move |source| DevError::Kube { step, source }
}

/// Runs until Ctrl-C (or until Ready, with `--exit-when-ready`).
pub async fn run(args: DevArgs) -> Result<(), DevError> {
    let emulator = Emulator::start(EmulatorOptions {
        listen: args.kube_listen,
        ..EmulatorOptions::default()
    })
    .await?;
    write_kubeconfig(&args.kubeconfig_out, &emulator.kubeconfig_yaml())?;
    let demo_secret = random_demo_secret();
    let sandbox = Sandbox::start(
        SandboxConfig::new(vec![
            ClientConfig::new(demo_secret.clone(), DEMO_WORKSPACE)
                .with_name("demo")
                .with_products(DEMO_PRODUCTS)
                .with_lifetime(Duration::from_secs(args.token_lifetime_secs)),
        ])
        .with_listen(args.clear_listen),
    )
    .await?;
    let sandbox = Arc::new(sandbox);
    say(&format!("Kubernetes API emulator: {}", emulator.url()));
    say(&format!("Clear simulator:         {}", sandbox.url()));
    say(&format!(
        "kubectl:                 export KUBECONFIG={}",
        args.kubeconfig_out.display()
    ));

    let client = emulator.client().await;
    install_crd(&client, Duration::from_secs(10)).await?;
    say("CRD clearapiclients.clear-operator.io installed");

    let shutdown = CancellationToken::new();
    let operator_client = crate::kube_client::build(emulator.client_config())
        .expect("a plain-http client for the emulator builds");
    let operator = tokio::spawn(operator::run(
        operator_client,
        dev_run_args(&args, sandbox.url())?,
        shutdown.clone(),
    ));

    let outcome = if args.no_demo {
        say(
            "No demo seeded (--no-demo). Apply your own ClearApiClient; base URL of the simulator above (the only one allowed), --allow-http is on.",
        );
        wait_for_ctrl_c(&shutdown).await;
        Ok(())
    } else {
        seed_demo(&client, &demo_secret, sandbox.url()).await?;
        say(&format!(
            "Seeded Secret {DEMO_NAMESPACE}/{DEMO_CLIENT_SECRET_NAME} (the client secret) and ClearApiClient {DEMO_NAMESPACE}/{DEMO_NAME}"
        ));
        let view = Arc::new(SandboxView(sandbox.clone()));
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let narrator = narrate(client.clone(), view.clone(), shutdown.clone(), ready_tx);
        if args.exit_when_ready {
            let timeout = Duration::from_secs(args.ready_timeout_secs);
            // NB: wait for the narrator, not for the condition alone, so that what the user
            // reads ("issued", "written", "live") is printed before we exit.
            let ready = match tokio::time::timeout(timeout, ready_rx).await {
                Ok(Ok(())) => check_token_live(&client, &view).await,
                _ => Err(DevError::NotReady(timeout)),
            };
            shutdown.cancel();
            let _ = narrator.await;
            ready
        } else {
            say(
                "Try: kubectl get cac -A; kubectl describe cac -n demo gst-demo; clear-operator regenerate gst-demo -n demo. Ctrl-C stops everything.",
            );
            wait_for_ctrl_c(&shutdown).await;
            let _ = narrator.await;
            Ok(())
        }
    };

    shutdown.cancel();
    let operator_result = operator.await;
    if let Ok(sandbox) = Arc::try_unwrap(sandbox) {
        sandbox.shutdown().await.ok();
    }
    emulator.shutdown().await;
    outcome?;
    match operator_result {
        Ok(result) => result.map_err(DevError::from),
        Err(join) => panic!("operator task panicked: {join}"),
    }
}

/// The operator's settings in dev mode: plain http and the simulator (only) allowed.
fn dev_run_args(args: &DevArgs, simulator_url: &str) -> Result<RunArgs, DevError> {
    let simulator = parse_base_url(simulator_url).map_err(DevError::SimulatorUrl)?;
    // NB: everything else is `run`'s own default, from the one place clap keeps them.
    Ok(RunArgs {
        clear: ClearAccessArgs {
            allowed_base_urls: vec![simulator],
            no_documented_base_urls: true,
            allow_http: true,
            clear_timeout_secs: 10,
            ..ClearAccessArgs::default()
        },
        metrics_addr: args.metrics_addr,
        leader_election_namespace: Some("default".to_string()),
        ..RunArgs::default()
    })
}

fn say(line: &str) {
    println!("[dev] {line}");
}

fn random_demo_secret() -> String {
    use rand::{Rng, distributions::Alphanumeric};
    let suffix: String = rand::thread_rng()
        .sample_iter(&Alphanumeric)
        .take(32)
        .map(char::from)
        .collect();
    format!("demo-{suffix}")
}

fn write_kubeconfig(path: &Path, yaml: &str) -> Result<(), DevError> {
    let err = |source| DevError::Kubeconfig {
        path: path.display().to_string(),
        source,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(err)?;
    }
    std::fs::write(path, yaml).map_err(err)
}

/// Creates the CRD unless the cluster already has it (an existing one is left alone) and
/// waits up to `timeout` until it is Established, so a first list does not race its
/// registration.
pub async fn install_crd(client: &Client, timeout: Duration) -> Result<(), DevError> {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let crd = ClearApiClient::crd();
    let name = crd.name_any();
    match crds.create(&PostParams::default(), &crd).await {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 409 => {}
        Err(e) => return Err(kube_step("create the CRD")(e)),
    }
    tokio::time::timeout(
        timeout,
        await_condition(crds, &name, conditions::is_crd_established()),
    )
    .await
    .map_err(|_| DevError::NotReady(timeout))?
    .map_err(|e| DevError::Kube {
        step: "wait for the CRD",
        source: kube::Error::Service(Box::new(e)),
    })?;
    Ok(())
}

async fn seed_demo(client: &Client, client_secret: &str, base_url: &str) -> Result<(), DevError> {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let ns = Namespace {
        metadata: ObjectMeta {
            name: Some(DEMO_NAMESPACE.to_string()),
            ..ObjectMeta::default()
        },
        ..Namespace::default()
    };
    create_if_absent(&namespaces, &ns, "create the demo namespace").await?;

    let secrets: Api<Secret> = Api::namespaced(client.clone(), DEMO_NAMESPACE);
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some(DEMO_CLIENT_SECRET_NAME.to_string()),
            ..ObjectMeta::default()
        },
        data: Some(
            [(
                DEFAULT_CLIENT_SECRET_KEY.to_string(),
                ByteString(client_secret.as_bytes().to_vec()),
            )]
            .into(),
        ),
        ..Secret::default()
    };
    create_if_absent(&secrets, &secret, "create the demo client secret").await?;

    let cacs: Api<ClearApiClient> = Api::namespaced(client.clone(), DEMO_NAMESPACE);
    let cac = ClearApiClient::new(
        DEMO_NAME,
        ClearApiClientSpec {
            environment: Environment::Sandbox,
            region: Region::India,
            base_url: Some(base_url.to_string()),
            workspace: DEMO_WORKSPACE.to_string(),
            products: DEMO_PRODUCTS
                .iter()
                .map(|p| Product(p.to_string()))
                .collect(),
            client_secret_ref: ClientSecretRef {
                name: DEMO_CLIENT_SECRET_NAME.to_string(),
                key: DEFAULT_CLIENT_SECRET_KEY.to_string(),
            },
            target: None,
            renew_before: None,
            // NB: a window open the first 40 s of every minute: with the demo's short tokens
            // a renewal waits for the next minute when it falls due in the last 20 s of one,
            // and `kubectl get cac` shows the planned time in the Renewal column.
            renewal_windows: vec![RenewalWindow {
                schedule: "* * * * *".to_string(),
                time_zone: None,
                duration: "40s".to_string(),
            }],
            adopt_from: None,
            suspend: false,
            revoke_on_delete: false,
            rollout_restart_targets: Vec::new(),
        },
    );
    create_if_absent(&cacs, &cac, "create the demo ClearApiClient").await
}

async fn create_if_absent<K>(api: &Api<K>, obj: &K, step: &'static str) -> Result<(), DevError>
where
    K: kube::Resource + Clone + serde::Serialize + serde::de::DeserializeOwned + std::fmt::Debug,
{
    match api.create(&PostParams::default(), obj).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
        Err(e) => Err(kube_step(step)(e)),
    }
}

fn is_ready(cac: &ClearApiClient) -> bool {
    ready_condition(cac.status.as_ref()).is_some_and(|c| c.status == "True")
}

/// What the demo may ask the simulator: only whether the token in a Secret is live.
struct SandboxView(Arc<SandboxHandle>);

impl SandboxView {
    fn is_live(&self, secret: &Secret) -> bool {
        secret
            .data
            .as_ref()
            .and_then(|d| d.get("accessToken"))
            .is_some_and(|t| self.0.is_token_valid(&String::from_utf8_lossy(&t.0)))
    }
}

/// Reads the demo token from the target Secret and asks the simulator whether it is live.
async fn check_token_live(client: &Client, sandbox: &SandboxView) -> Result<(), DevError> {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), DEMO_NAMESPACE);
    let secret = secrets
        .get(DEMO_NAME)
        .await
        .map_err(kube_step("read the demo token Secret"))?;
    if sandbox.is_live(&secret) {
        say("Clear simulator confirms the token in the Secret is live. Done (--exit-when-ready).");
        Ok(())
    } else {
        Err(DevError::TokenNotLive)
    }
}

async fn wait_for_ctrl_c(shutdown: &CancellationToken) {
    tokio::select! {
        _ = tokio::signal::ctrl_c() => say("Stopping…"),
        _ = shutdown.cancelled() => {}
    }
}

/// Prints one plain line per meaningful change of the demo resource.
/// `ready` fires once the resource is Ready with a token the simulator confirms is live.
fn narrate(
    client: Client,
    sandbox: Arc<SandboxView>,
    shutdown: CancellationToken,
    ready: tokio::sync::oneshot::Sender<()>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let api: Api<ClearApiClient> = Api::namespaced(client.clone(), DEMO_NAMESPACE);
        let secrets: Api<Secret> = Api::namespaced(client, DEMO_NAMESPACE);
        let config = watcher::Config::default().fields(&format!("metadata.name={DEMO_NAME}"));
        let mut stream = watcher(api, config).applied_objects().boxed();
        let mut narrator = Narrator::default();
        let mut ready = Some(ready);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                next = stream.try_next() => match next {
                    Ok(Some(cac)) => {
                        for line in narrator.observe(&cac) {
                            say(&line);
                        }
                        let new_token = narrator.take_new_token();
                        let awaiting_ready = ready.is_some() && is_ready(&cac) && narrator.token.is_some();
                        if new_token || awaiting_ready {
                            let live = match secrets.get(&cac.target_secret_name()).await {
                                Ok(secret) => sandbox.is_live(&secret),
                                Err(_) => false,
                            };
                            if new_token {
                                say(if live {
                                    "Clear simulator: the token in the Secret is live (any previous one is now revoked)."
                                } else {
                                    "Clear simulator: the token in the Secret is NOT live."
                                });
                            }
                            if live && is_ready(&cac) && let Some(ready) = ready.take() {
                                let _ = ready.send(());
                            }
                        }
                    }
                    Ok(None) => break,
                    Err(e) => say(&format!("watch interrupted ({e}); resuming")),
                },
            }
        }
    })
}

/// Turns status changes into sentences; remembers just enough to say "renewed".
#[derive(Default)]
struct Narrator {
    token: Option<String>,
    ready: Option<(String, String)>,
    windows: Option<(String, String, String)>,
    new_token: bool,
}

impl Narrator {
    fn observe(&mut self, cac: &ClearApiClient) -> Vec<String> {
        let mut lines = Vec::new();
        let Some(status) = cac.status.as_ref() else {
            return lines;
        };
        if let Some(fp) = &status.token_fingerprint
            && self.token.as_ref() != Some(fp)
        {
            let verb = if self.token.is_none() {
                "issued"
            } else {
                "renewed"
            };
            let till = status
                .valid_till
                .as_ref()
                .map(|t| format!("valid till {}", t.0))
                .unwrap_or_else(|| "never expires".to_string());
            lines.push(format!("Token {verb} (fingerprint {fp}), {till}."));
            lines.push(format!(
                "Secret {}/{} written: accessToken, validTill, baseUrl, environment, workspace, products.",
                DEMO_NAMESPACE,
                status.secret_name.as_deref().unwrap_or(DEMO_NAME)
            ));
            if let Some(renewal) = &status.renewal_time {
                lines.push(format!("Renewal due at {}.", renewal.0));
            }
            self.token = Some(fp.clone());
            self.new_token = true;
        }
        if let Some(cond) = ready_condition(cac.status.as_ref()) {
            let now = (cond.status.clone(), cond.reason.clone());
            if self.ready.as_ref() != Some(&now) {
                lines.push(format!(
                    "Ready={} ({}): {}",
                    cond.status, cond.reason, cond.message
                ));
                self.ready = Some(now);
            }
        }
        if let Some(cond) = status::condition(status, status::condition_types::RENEWAL_WINDOWS) {
            let now = (
                cond.status.clone(),
                cond.reason.clone(),
                cond.message.clone(),
            );
            if self.windows.as_ref() != Some(&now) {
                lines.push(format!(
                    "RenewalWindows={} ({}): {}",
                    cond.status, cond.reason, cond.message
                ));
                self.windows = Some(now);
            }
        }
        lines
    }

    fn take_new_token(&mut self) -> bool {
        std::mem::take(&mut self.new_token)
    }
}
