//! Command-line interface of the `clear-operator` binary.

use std::{net::SocketAddr, path::PathBuf};

use clap::{Args, Parser, Subcommand};

use crate::{
    clear::{BaseUrl, parse_base_url},
    telemetry::LogFormat,
};

fn parse_allowed_base_url(raw: &str) -> Result<BaseUrl, String> {
    parse_base_url(raw).map_err(|e| e.to_string())
}

#[derive(Debug, Parser)]
#[command(
    name = "clear-operator",
    version,
    about = "Keeps Clear (ClearTax) API access tokens alive in Kubernetes Secrets"
)]
pub struct Cli {
    /// Log format on stderr (filter with RUST_LOG).
    #[arg(long, value_enum, default_value_t = LogFormat::Text, global = true, env = "CLEAR_OPERATOR_LOG_FORMAT")]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the controller (KUBECONFIG or in-cluster configuration).
    Run(RunArgs),
    /// Print the ClearApiClient CustomResourceDefinition as YAML.
    Crd,
    /// Ask for a new token now (revokes the current one): sets the regenerate annotation.
    Regenerate(RegenerateArgs),
    /// What the operator holds for a ClearApiClient and when and why it will call Clear next
    /// (from the resource, its Secret's metadata and the budget ledger; never token bytes).
    Status(StatusArgs),
    /// Prove that each Clear host in use is reachable (DNS, proxy, TLS, allow-list) without
    /// minting: the token path is called without a client secret.
    ///
    /// One request per distinct base URL, through the operator's HTTP client; Clear's
    /// documented answer is 401. No Secret is read. Exit 0: every host answered (any HTTP
    /// status); 1: a host is unreachable, not allowed, or a resource's base URL is
    /// invalid; 2: nothing to check.
    Check(CheckArgs),
    /// Local sandbox: Kubernetes API emulator + Clear simulator + operator in one process.
    #[cfg(feature = "dev")]
    Dev(DevArgs),
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Check only this ClearApiClient's base URL. Without it: the base URLs of every
    /// ClearApiClient that can be listed (all namespaces, or -n's).
    pub name: Option<String>,
    /// With NAME, its namespace (default: the kubeconfig context's); without, only the
    /// ClearApiClients of this namespace.
    #[arg(long, short = 'n')]
    pub namespace: Option<String>,
    /// Also check this base URL (repeatable); without a cluster, only these are checked.
    #[arg(long = "base-url", value_name = "URL", value_parser = parse_allowed_base_url)]
    pub base_urls: Vec<BaseUrl>,
    /// Where and how Clear may be called, exactly as for `run` (a base URL that is not
    /// allowed is reported, not probed).
    #[command(flatten)]
    pub clear: ClearAccessArgs,
}

/// Where and how the operator may call Clear: one set of flags for `run` and `check`, so
/// that a preflight allows, trusts and waits for exactly what the operator does.
#[derive(Debug, Args, Clone)]
pub struct ClearAccessArgs {
    /// A base URL the operator may send client secrets to (repeatable; comma-separated in
    /// the environment variable), besides the hosts Clear documents (see
    /// `--no-documented-base-urls`). A ClearApiClient whose base URL is not allowed is
    /// refused (reason BaseUrlNotAllowed) before its client secret is read.
    #[arg(
        long = "allowed-base-url",
        value_name = "URL",
        env = "CLEAR_OPERATOR_ALLOWED_BASE_URLS",
        value_delimiter = ',',
        value_parser = parse_allowed_base_url
    )]
    pub allowed_base_urls: Vec<BaseUrl>,
    /// Allow only the `--allowed-base-url` values, not Clear's documented hosts (a cluster
    /// that must reach Clear through a proxy only).
    #[arg(long, env = "CLEAR_OPERATOR_NO_DOCUMENTED_BASE_URLS")]
    pub no_documented_base_urls: bool,
    /// Allow plain-http base URLs (simulators and tests only).
    #[arg(long, env = "CLEAR_OPERATOR_ALLOW_HTTP")]
    pub allow_http: bool,
    /// PEM bundle of extra CA certificates trusted for Clear (TLS-intercepting proxies).
    #[arg(long, value_name = "PEM")]
    pub ca_bundle: Option<PathBuf>,
    /// Total timeout of one call to Clear, in seconds.
    #[arg(long, default_value_t = 20)]
    pub clear_timeout_secs: u64,
}

impl ClearAccessArgs {
    /// The allow-list these flags ask for.
    pub fn allow_list(&self) -> crate::clear::AllowedBaseUrls {
        crate::clear::AllowedBaseUrls::configured(
            &self.allowed_base_urls,
            self.no_documented_base_urls,
        )
    }

    /// The Clear client's settings these flags ask for.
    pub fn client_config(&self) -> crate::clear::ClearClientConfig {
        crate::clear::ClearClientConfig {
            request_timeout: std::time::Duration::from_secs(self.clear_timeout_secs),
            ca_bundle: self.ca_bundle.clone(),
            ..crate::clear::ClearClientConfig::default()
        }
    }
}

impl Default for ClearAccessArgs {
    /// The flags' own defaults (see [`RunArgs::default`]).
    fn default() -> Self {
        RunArgs::default().clear
    }
}

#[derive(Debug, Args, Clone)]
pub struct RunArgs {
    /// Only watch these namespaces (repeatable). Default: all namespaces.
    #[arg(long = "namespace", short = 'n', value_name = "NAMESPACE")]
    pub namespaces: Vec<String>,
    /// Where and how Clear may be called.
    #[command(flatten)]
    pub clear: ClearAccessArgs,
    /// After each new token, patch an annotation on each running pod that mounts the token
    /// Secret as files (a `secret` or `projected` volume, not `subPath`), which makes its
    /// kubelet refresh the volume at once instead of at its next periodic sync (a minute or
    /// more, while the pod sends the revoked token). Needs list, watch and patch on pods;
    /// `spec.target.nudgePods: false` opts a resource out.
    #[arg(long, env = "CLEAR_OPERATOR_NUDGE_PODS")]
    pub nudge_pods: bool,
    /// Standby: reconcile and report as usual but call Clear for nothing (no renewal, no
    /// regeneration, no revoke), as if every resource had `spec.suspend: true`. For a
    /// disaster-recovery or migration cluster holding the same resources as the active one:
    /// only one cluster may mint with a client secret, or each revokes the other's tokens.
    #[arg(long, env = "CLEAR_OPERATOR_STANDBY")]
    pub standby: bool,
    /// Mints allowed per client secret per UTC day (Clear's hard limit is 288).
    #[arg(long, default_value_t = 250, value_parser = clap::value_parser!(u32).range(1..=288))]
    pub mint_budget: u32,
    /// Renewals are brought forward by up to this share of the token's lifetime, in percent,
    /// by an amount fixed per resource (its namespace/name): resources created together then
    /// do not renew, nor revoke their consumers' tokens, in the same second every cycle.
    /// Never past the last safe moment, never out of a renewal window; 0 turns it off.
    #[arg(
        long,
        env = "CLEAR_OPERATOR_RENEWAL_JITTER_PERCENT",
        default_value_t = crate::reconcile::schedule::DEFAULT_RENEWAL_JITTER_PERCENT,
        value_parser = clap::value_parser!(u8).range(0..=10)
    )]
    pub renewal_jitter_percent: u8,
    /// Resources reconciled at once, and so calls to Clear in flight at most (a reconcile
    /// makes at most one). Each reconcile makes its Kubernetes requests one after another,
    /// so this also bounds the operator's API requests in flight. See docs/performance.md
    /// and docs/operations.md ("Concurrency") for why the default is what it is.
    #[arg(
        long,
        env = "CLEAR_OPERATOR_CONCURRENCY",
        default_value_t = DEFAULT_CONCURRENCY,
        value_parser = clap::value_parser!(u16).range(1..=1024)
    )]
    pub concurrency: u16,
    /// Kubernetes API requests in flight at once (watches excepted), whatever
    /// `--concurrency` is: a bound for a shared API server. A 429 (API Priority and
    /// Fairness) to a read is retried after its Retry-After; to a write, the resource is
    /// requeued after it.
    #[arg(
        long,
        env = "CLEAR_OPERATOR_KUBE_API_CONCURRENCY",
        default_value_t = crate::kube_client::DEFAULT_API_CONCURRENCY,
        value_parser = clap::value_parser!(u16).range(1..=1024)
    )]
    pub kube_api_concurrency: u16,
    /// Address of the /metrics, /healthz and /readyz server.
    #[arg(long, default_value = "0.0.0.0:8080")]
    pub metrics_addr: SocketAddr,
    #[command(flatten)]
    pub metrics_secure: MetricsSecureArgs,
    /// Disable leader election (only when exactly one replica runs).
    #[arg(long)]
    pub no_leader_election: bool,
    /// Namespace of the leader-election Lease (default: the pod's namespace, else `default`).
    #[arg(long, env = "POD_NAMESPACE")]
    pub leader_election_namespace: Option<String>,
    /// Name of the leader-election Lease.
    #[arg(long, default_value = "clear-operator")]
    pub lease_name: String,
    // -- failover (issue 7) --
    /// Duration of the leader Lease, in seconds; the leader stops writing two thirds of it
    /// after its last successful renewal.
    #[arg(long, default_value_t = 15, value_parser = clap::value_parser!(u64).range(3..=300))]
    pub lease_duration_secs: u64,
    /// On SIGTERM, how long in-flight reconciles may run before the Lease is released
    /// (keep it under the pod's terminationGracePeriodSeconds).
    #[arg(long, default_value_t = 25)]
    pub shutdown_grace_secs: u64,
    /// `/healthz` fails when reconciles are in flight and none has ended (or started from
    /// idle) for this many seconds: the loop is wedged and a restart is the cure. Keep it
    /// well above --clear-timeout-secs plus a few Kubernetes requests.
    #[arg(
        long,
        env = "CLEAR_OPERATOR_RECONCILE_STALL_SECS",
        default_value_t = 300,
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    pub reconcile_stall_secs: u64,
}

/// Protection of the metrics server (the chart turns it on; off by default for `dev` and
/// local runs, which have no API server identities to check).
#[derive(Debug, Args, Clone, Default)]
pub struct MetricsSecureArgs {
    /// Serve /metrics, /healthz and /readyz over TLS, and /metrics only to callers whose
    /// bearer token the API server authenticates (TokenReview) and allows `get` on the
    /// non-resource URL /metrics (SubjectAccessReview), as kubebuilder's secure metrics.
    #[arg(long, env = "CLEAR_OPERATOR_METRICS_SECURE")]
    pub metrics_secure: bool,
    /// PEM certificate chain of the metrics server (default: a self-signed one generated at
    /// start).
    #[arg(long, requires_all = ["metrics_secure", "metrics_key_file"], value_name = "PATH")]
    pub metrics_cert_file: Option<PathBuf>,
    /// PEM private key of --metrics-cert-file.
    #[arg(long, requires_all = ["metrics_secure", "metrics_cert_file"], value_name = "PATH")]
    pub metrics_key_file: Option<PathBuf>,
}

pub use crate::controller::DEFAULT_CONCURRENCY;

/// `run` as a command line of its own, to read its defaults.
#[derive(Parser)]
struct RunOnly {
    #[command(flatten)]
    args: RunArgs,
}

impl Default for RunArgs {
    /// `run`'s defaults as clap knows them (and the environment variables it reads), so
    /// that `dev` and tests start from the same settings as the command line.
    fn default() -> Self {
        RunOnly::parse_from(["run"]).args
    }
}

#[derive(Debug, Args)]
pub struct RegenerateArgs {
    /// Name of the ClearApiClient.
    pub name: String,
    /// Its namespace (default: the kubeconfig context's namespace).
    #[arg(long, short = 'n')]
    pub namespace: Option<String>,
    /// Value to record (default: the current time, so each call is a new request).
    #[arg(long)]
    pub value: Option<String>,
    /// Wait until status shows the new token (or the reason it cannot come); exit non-zero
    /// on a failure or when --timeout passes.
    #[arg(long)]
    pub wait: bool,
    /// How long --wait waits (Go duration: 90s, 2m).
    #[arg(long, default_value = "120s", value_parser = parse_timeout, requires = "wait")]
    pub timeout: std::time::Duration,
}

fn parse_timeout(raw: &str) -> Result<std::time::Duration, String> {
    let parsed = crate::reconcile::schedule::parse_go_duration(raw).map_err(|e| e.to_string())?;
    std::time::Duration::try_from(parsed).map_err(|_| format!("{raw}: must not be negative"))
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Name of the ClearApiClient (omit with -A).
    #[arg(
        required_unless_present = "all_namespaces",
        conflicts_with = "all_namespaces"
    )]
    pub name: Option<String>,
    /// Its namespace (default: the kubeconfig context's namespace).
    #[arg(long, short = 'n')]
    pub namespace: Option<String>,
    /// Every ClearApiClient in every namespace, as a table.
    #[arg(long, short = 'A', conflicts_with = "namespace")]
    pub all_namespaces: bool,
    /// The budget ledger ConfigMap as NAMESPACE/NAME (default: `<lease>-budget` beside the
    /// operator's Lease, which status.operatorInstance names).
    #[arg(long, value_name = "NAMESPACE/NAME")]
    pub ledger: Option<crate::commands::status::LedgerRef>,
}

/// File name under which the binary runs as a kubectl plugin (`kubectl clear ...`).
pub const KUBECTL_PLUGIN_NAME: &str = "kubectl-clear";

impl Cli {
    /// Parses `args` (argv[0] first). Invoked as `kubectl-clear` (a copy or symlink on PATH,
    /// which kubectl runs for `kubectl clear ...`), it is the same command; only its usage
    /// text says `kubectl clear`.
    pub fn parse_args<I, T>(args: I) -> Result<Self, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        use clap::{CommandFactory, FromArgMatches};
        let args: Vec<std::ffi::OsString> = args.into_iter().map(Into::into).collect();
        let mut command = Self::command();
        if args.first().is_some_and(|argv0| is_kubectl_plugin(argv0)) {
            command = command.bin_name("kubectl clear").name(KUBECTL_PLUGIN_NAME);
        }
        let matches = command.try_get_matches_from(args)?;
        Self::from_arg_matches(&matches)
    }
}

/// Whether `argv0`'s file name is `kubectl-clear` (with `.exe` on Windows).
pub fn is_kubectl_plugin(argv0: &std::ffi::OsStr) -> bool {
    std::path::Path::new(argv0)
        .file_stem()
        .is_some_and(|stem| stem == KUBECTL_PLUGIN_NAME)
}

#[derive(Debug, Args)]
pub struct DevArgs {
    /// Do not seed the demo client secret and ClearApiClient.
    #[arg(long)]
    pub no_demo: bool,
    /// Exit 0 as soon as the demo resource is Ready (for scripts); exit 1 if it is not
    /// Ready within --ready-timeout-secs.
    #[arg(long)]
    pub exit_when_ready: bool,
    #[arg(long, default_value_t = 60)]
    pub ready_timeout_secs: u64,
    /// Where to write the kubeconfig for kubectl.
    #[arg(long, default_value = ".dev/kubeconfig")]
    pub kubeconfig_out: PathBuf,
    /// Address of the Kubernetes API emulator (port 0 picks one).
    #[arg(long, default_value = "127.0.0.1:0")]
    pub kube_listen: SocketAddr,
    /// Address of the Clear simulator (port 0 picks one).
    #[arg(long, default_value = "127.0.0.1:0")]
    pub clear_listen: SocketAddr,
    /// Lifetime of the demo tokens the simulator mints, in seconds (short, to watch renewals).
    #[arg(long, default_value_t = 120)]
    pub token_lifetime_secs: u64,
    /// Address of the operator's metrics server.
    #[arg(long, default_value = "127.0.0.1:0")]
    pub metrics_addr: SocketAddr,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invoked_as_kubectl_clear_it_is_the_same_command() {
        for argv0 in [
            "/usr/local/bin/kubectl-clear",
            "kubectl-clear",
            "clear-operator",
        ] {
            let cli = Cli::parse_args([argv0, "status", "billing", "-n", "team-a"]).unwrap();
            let Command::Status(args) = cli.command else {
                panic!("{argv0}: not status");
            };
            assert_eq!(args.name.as_deref(), Some("billing"));
            assert_eq!(args.namespace.as_deref(), Some("team-a"));
        }
        assert!(is_kubectl_plugin("/x/kubectl-clear".as_ref()));
        assert!(!is_kubectl_plugin("/x/kubectl-clearer".as_ref()));
        let help = Cli::parse_args(["kubectl-clear", "--help"])
            .unwrap_err()
            .to_string();
        assert!(help.contains("kubectl clear"), "{help}");
    }

    #[test]
    fn status_takes_a_name_or_all_namespaces_and_a_ledger_location() {
        let cli = Cli::parse_args(["clear-operator", "status", "-A", "--ledger", "ops/x-budget"])
            .unwrap();
        let Command::Status(args) = cli.command else {
            panic!("not status");
        };
        assert!(args.all_namespaces && args.name.is_none());
        assert_eq!(args.ledger.unwrap().to_string(), "ops/x-budget");
        assert!(Cli::parse_args(["clear-operator", "status"]).is_err());
        assert!(Cli::parse_args(["clear-operator", "status", "a", "-A"]).is_err());
        assert!(Cli::parse_args(["clear-operator", "status", "a", "--ledger", "nope"]).is_err());
    }

    #[test]
    fn metrics_security_is_off_unless_asked_and_a_certificate_needs_its_key() {
        let Command::Run(run) = Cli::parse_args(["clear-operator", "run"]).unwrap().command else {
            panic!("not run");
        };
        assert!(!run.metrics_secure.metrics_secure);
        let Command::Run(run) = Cli::parse_args([
            "clear-operator",
            "run",
            "--metrics-secure",
            "--metrics-cert-file",
            "/c.pem",
            "--metrics-key-file",
            "/k.pem",
        ])
        .unwrap()
        .command
        else {
            panic!("not run");
        };
        assert!(run.metrics_secure.metrics_secure);
        assert!(
            Cli::parse_args([
                "clear-operator",
                "run",
                "--metrics-secure",
                "--metrics-cert-file",
                "/c.pem"
            ])
            .is_err()
        );
    }

    #[test]
    fn regenerate_wait_takes_a_go_duration_timeout() {
        let cli = Cli::parse_args([
            "clear-operator",
            "regenerate",
            "a",
            "--wait",
            "--timeout",
            "2m",
        ])
        .unwrap();
        let Command::Regenerate(args) = cli.command else {
            panic!("not regenerate");
        };
        assert!(args.wait);
        assert_eq!(args.timeout, std::time::Duration::from_secs(120));
        let default = Cli::parse_args(["clear-operator", "regenerate", "a"]).unwrap();
        let Command::Regenerate(args) = default.command else {
            panic!("not regenerate");
        };
        assert_eq!(args.timeout, std::time::Duration::from_secs(120));
        assert!(Cli::parse_args(["clear-operator", "regenerate", "a", "--timeout", "5s"]).is_err());
    }
}
