//! `clear-operator check`: proves that the operator can reach each Clear host in use
//! (DNS, the proxy from the environment, TLS with the CA bundle, egress, Clear's IP
//! allow-list) without minting anything. Each distinct base URL gets one request to the
//! documented token path *without* a client secret (see [`ClearClient::probe`]), through the
//! same HTTP client and the same allow-list as `run`; no Secret is ever read.

use std::fmt::Write as _;

use kube::Api;
use kube::api::ListParams;
use kube::core::ResourceExt;

use crate::clear::{
    ALLOWED_BASE_URL_FLAG, AllowedBaseUrls, AnswerClass, BaseUrl, ClearClient, ProbeOutcome,
    ProbeResult, resolve_base_url,
};
use crate::cli::CheckArgs;
use crate::resource::ClearApiClient;

/// Exit status when every base URL was allowed and answered.
pub const EXIT_OK: i32 = 0;
/// Exit status when a base URL was unreachable, not allowed, or could not be worked out.
pub const EXIT_FAILED: i32 = 1;
/// Exit status when there was nothing to check.
pub const EXIT_NOTHING: i32 = 2;

/// One base URL to check, and who uses it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The effective base URL, or what the resource says and why it is not one.
    pub url: Result<BaseUrl, InvalidUrl>,
    /// `namespace/name` of the ClearApiClients using it, `--base-url` for the flag.
    pub used_by: Vec<String>,
}

/// A resource's base URL that the operator cannot use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidUrl {
    /// `spec.baseUrl`, or `(documented host)` when there is none.
    pub raw: String,
    pub why: String,
}

/// What was found for one [`Target`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finding {
    /// No base URL could be worked out for the resource (the text says why).
    Invalid(String),
    /// The allow-list (or `--allow-http`) forbids this URL: not probed.
    NotAllowed(String),
    Probed(ProbeOutcome),
}

impl Finding {
    /// Whether this target passes: allowed and answered (any HTTP status).
    pub fn ok(&self) -> bool {
        matches!(self, Self::Probed(outcome) if outcome.reachable())
    }
}

/// Runs the command and returns its exit status.
pub async fn run(args: CheckArgs) -> anyhow::Result<i32> {
    let (targets, scope) = gather_targets(&args).await?;
    if targets.is_empty() {
        println!("nothing to check: {scope}; give --base-url URL to check a host directly");
        return Ok(EXIT_NOTHING);
    }
    // NB: the same flags as `run`, built the same way (cli::ClearAccessArgs).
    let client = ClearClient::new(args.clear.client_config())?;
    let allowed = args.clear.allow_list();
    println!(
        "checking {} base URL{} ({scope}) with GET <base>/integration/v1/authz/token and no client secret (Clear's documented answer: 401); proxy: {}; CA: {}; timeout {}s",
        targets.len(),
        if targets.len() == 1 { "" } else { "s" },
        proxy_summary(),
        args.clear
            .ca_bundle
            .as_ref()
            .map(|p| format!("system roots + {}", p.display()))
            .unwrap_or_else(|| "system roots".into()),
        args.clear.clear_timeout_secs,
    );
    let mut findings = Vec::with_capacity(targets.len());
    for target in &targets {
        let finding = match &target.url {
            Err(invalid) => Finding::Invalid(invalid.why.clone()),
            Ok(url) => match permission(url, &allowed, args.clear.allow_http) {
                Err(why) => Finding::NotAllowed(why),
                Ok(()) => Finding::Probed(client.probe(url).await),
            },
        };
        findings.push(finding);
    }
    print!("{}", render(&targets, &findings));
    Ok(exit_status(&findings))
}

/// 0 when every target was allowed and answered, 1 otherwise, 2 when there is none.
pub fn exit_status(findings: &[Finding]) -> i32 {
    if findings.is_empty() {
        EXIT_NOTHING
    } else if findings.iter().all(Finding::ok) {
        EXIT_OK
    } else {
        EXIT_FAILED
    }
}

/// Whether the operator, run with these flags, would send a client secret to `url`.
pub fn permission(
    url: &BaseUrl,
    allowed: &AllowedBaseUrls,
    allow_http: bool,
) -> Result<(), String> {
    if url.as_str().starts_with("http://") && !allow_http {
        return Err(
            "plain http: the operator calls it only with --allow-http; not probed".to_string(),
        );
    }
    allowed.check(url).map_err(|_| {
        format!("not on the allow-list (`{ALLOWED_BASE_URL_FLAG} {url}` allows it); not probed")
    })
}

/// The base URLs to check: every distinct effective base URL of the ClearApiClients (one,
/// with NAME), then the `--base-url` values. The second value says where they came from.
async fn gather_targets(args: &CheckArgs) -> anyhow::Result<(Vec<Target>, String)> {
    let mut targets = Vec::new();
    let scope = match &args.name {
        Some(name) => {
            let client = kube::Client::try_default().await.map_err(|e| {
                anyhow::anyhow!("failed to reach the cluster to read ClearApiClient {name}: {e}")
            })?;
            let namespace = args
                .namespace
                .clone()
                .unwrap_or_else(|| client.default_namespace().to_string());
            let api: Api<ClearApiClient> = Api::namespaced(client, &namespace);
            let cac = api.get(name).await.map_err(|e| {
                anyhow::anyhow!("failed to read ClearApiClient {namespace}/{name}: {e}")
            })?;
            add_resources(&mut targets, &[cac], args.clear.allow_http);
            format!("ClearApiClient {namespace}/{name}")
        }
        None => match kube::Client::try_default().await {
            Err(e) => {
                eprintln!("no cluster reachable, so no ClearApiClient is checked: {e}");
                "no cluster reachable".to_string()
            }
            Ok(client) => match list_resources(client, args.namespace.as_deref()).await {
                Ok((resources, where_)) => {
                    add_resources(&mut targets, &resources, args.clear.allow_http);
                    format!(
                        "{} ClearApiClient{} in {where_}",
                        resources.len(),
                        if resources.len() == 1 { "" } else { "s" }
                    )
                }
                Err(e) => {
                    eprintln!("failed to list ClearApiClients, so none is checked: {e}");
                    "no ClearApiClient listed".to_string()
                }
            },
        },
    };
    for url in &args.base_urls {
        add(&mut targets, Ok(url.clone()), "--base-url".to_string());
    }
    let scope = if args.base_urls.is_empty() {
        scope
    } else {
        format!("{scope}, and --base-url")
    };
    Ok((targets, scope))
}

async fn list_resources(
    client: kube::Client,
    namespace: Option<&str>,
) -> Result<(Vec<ClearApiClient>, String), kube::Error> {
    let (api, where_): (Api<ClearApiClient>, String) = match namespace {
        Some(namespace) => (
            Api::namespaced(client, namespace),
            format!("namespace {namespace}"),
        ),
        None => (Api::all(client), "all namespaces".to_string()),
    };
    let list = api.list(&ListParams::default()).await?;
    Ok((list.items, where_))
}

/// Adds each resource's effective base URL (as the reconciler resolves it).
fn add_resources(targets: &mut Vec<Target>, resources: &[ClearApiClient], allow_http: bool) {
    for cac in resources {
        let who = format!("{}/{}", cac.namespace().unwrap_or_default(), cac.name_any());
        let spec = &cac.spec;
        let url = resolve_base_url(
            spec.region,
            spec.environment,
            spec.base_url.as_deref(),
            allow_http,
        )
        .map_err(|e| InvalidUrl {
            raw: spec
                .base_url
                .clone()
                .unwrap_or_else(|| "(documented host)".to_string()),
            why: e.to_string(),
        });
        add(targets, url, who);
    }
}

/// Adds `who` to the target with the same URL, or a new target. Invalid URLs stay apart.
fn add(targets: &mut Vec<Target>, url: Result<BaseUrl, InvalidUrl>, who: String) {
    if let Ok(u) = &url
        && let Some(existing) = targets.iter_mut().find(|t| t.url.as_ref() == Ok(u))
    {
        if !existing.used_by.contains(&who) {
            existing.used_by.push(who);
        }
        return;
    }
    targets.push(Target {
        url,
        used_by: vec![who],
    });
}

/// Which proxy variables are set (names only: a proxy URL may carry credentials).
fn proxy_summary() -> String {
    let set: Vec<&str> = [
        "HTTPS_PROXY",
        "https_proxy",
        "HTTP_PROXY",
        "http_proxy",
        "ALL_PROXY",
        "all_proxy",
        "NO_PROXY",
        "no_proxy",
    ]
    .into_iter()
    .filter(|name| std::env::var_os(name).is_some_and(|v| !v.is_empty()))
    .collect();
    if set.is_empty() {
        "none (no proxy variable in the environment)".to_string()
    } else {
        format!("from the environment ({})", set.join(", "))
    }
}

/// The table: one row per target.
pub fn render(targets: &[Target], findings: &[Finding]) -> String {
    let header = ["URL", "ALLOWED", "RESULT", "LATENCY", "USED BY", "DETAIL"].map(String::from);
    let mut rows = vec![header];
    for (target, finding) in targets.iter().zip(findings) {
        let url = match &target.url {
            Ok(url) => url.to_string(),
            Err(invalid) => invalid.raw.clone(),
        };
        let (allowed, result, latency, detail) = match finding {
            Finding::Invalid(why) => (
                "-".to_string(),
                "invalid base URL".to_string(),
                "-".to_string(),
                why.clone(),
            ),
            Finding::NotAllowed(why) => (
                "no".to_string(),
                "not probed".to_string(),
                "-".to_string(),
                why.clone(),
            ),
            Finding::Probed(outcome) => {
                let (result, detail) = describe(outcome);
                (
                    "yes".to_string(),
                    result,
                    format!("{}ms", outcome.latency.as_millis()),
                    detail,
                )
            }
        };
        rows.push([
            url,
            allowed,
            result,
            latency,
            used_by(&target.used_by),
            detail,
        ]);
    }
    let mut widths = [0usize; 6];
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in &rows {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i + 1 == row.len() {
                line.push_str(cell);
            } else {
                let _ = write!(line, "{cell:<width$}   ", width = widths[i]);
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn used_by(who: &[String]) -> String {
    match who {
        [] => "-".to_string(),
        [one] => one.clone(),
        [first, rest @ ..] => format!("{first} +{}", rest.len()),
    }
}

/// The RESULT and DETAIL cells of a probe.
pub fn describe(outcome: &ProbeOutcome) -> (String, String) {
    match &outcome.result {
        ProbeResult::Answered(answer) => {
            let status = answer.status;
            let (result, note) = match answer.class {
                AnswerClass::AsDocumented => {
                    (format!("reachable: HTTP {status} as documented"), None)
                }
                AnswerClass::Refused => (
                    format!("reachable, refused: HTTP {status}"),
                    Some(
                        "Clear (or something in front of it) refuses this cluster: an IP allow-list of the API client, a WAF, a wrong path?",
                    ),
                ),
                AnswerClass::RateLimited => {
                    (format!("reachable, rate limited: HTTP {status}"), None)
                }
                AnswerClass::Redirect => (
                    format!("reachable, redirect: HTTP {status}"),
                    Some("redirect not followed: wrong base URL?"),
                ),
                AnswerClass::ServerError => {
                    (format!("reachable, server error: HTTP {status}"), None)
                }
                AnswerClass::Success => (
                    format!("reachable?: HTTP {status}"),
                    Some("answered 200 without a client secret: is this Clear?"),
                ),
                AnswerClass::Other => (format!("reachable: HTTP {status}"), None),
            };
            let mut parts: Vec<String> = Vec::new();
            if let Some(note) = note {
                // NB: the Success note names 200 whatever the 2xx; say the real status.
                parts.push(note.replace("200", &status.to_string()));
            }
            if let Some(message) = &answer.message {
                parts.push(format!("Clear said: \"{message}\""));
            }
            if let Some(code) = &answer.code {
                parts.push(format!("error_code {code}"));
            }
            if let Some(id) = &answer.error_id {
                parts.push(format!("error_id {id}"));
            }
            if let Some(location) = &answer.location {
                parts.push(format!("Location: {location}"));
            }
            if let Some(skew) = answer.clock_skew {
                parts.push(format!(
                    "clock skew {} (Clear's Date minus local time)",
                    signed_secs(skew)
                ));
            }
            (result, parts.join("; "))
        }
        ProbeResult::Unreachable { kind, detail } => {
            let hint = match kind {
                crate::clear::UnreachableKind::Tls => {
                    " (a TLS-intercepting proxy or private CA needs --ca-bundle)"
                }
                crate::clear::UnreachableKind::Dns => " (DNS: the host name did not resolve)",
                _ => "",
            };
            (
                format!("UNREACHABLE: {}", kind.as_str()),
                format!("{detail}{hint}"),
            )
        }
        ProbeResult::TimedOut => (
            "UNREACHABLE: timed out".to_string(),
            "connected, but no answer within the timeout".to_string(),
        ),
        ProbeResult::Broken { detail } => {
            ("UNREACHABLE: exchange broken".to_string(), detail.clone())
        }
    }
}

fn signed_secs(skew: jiff::SignedDuration) -> String {
    let secs = skew.as_secs();
    if secs >= 0 {
        format!("+{secs}s")
    } else {
        format!("{secs}s")
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::clear::{ProbeAnswer, UnreachableKind, parse_base_url};

    fn url(raw: &str) -> BaseUrl {
        parse_base_url(raw).unwrap()
    }

    fn answered(status: u16) -> ProbeOutcome {
        ProbeOutcome {
            latency: Duration::from_millis(12),
            result: ProbeResult::Answered(ProbeAnswer {
                status,
                class: AnswerClass::of(status),
                code: None,
                error_id: None,
                message: None,
                location: None,
                clock_skew: None,
            }),
        }
    }

    #[test]
    fn any_answer_passes_and_anything_else_fails() {
        for status in [401, 403, 302, 429, 500, 200] {
            assert!(Finding::Probed(answered(status)).ok(), "{status}");
        }
        let unreachable = Finding::Probed(ProbeOutcome {
            latency: Duration::ZERO,
            result: ProbeResult::Unreachable {
                kind: UnreachableKind::ConnectionRefused,
                detail: "x".into(),
            },
        });
        assert!(!unreachable.ok());
        assert_eq!(exit_status(&[Finding::Probed(answered(401))]), 0);
        assert_eq!(
            exit_status(&[Finding::Probed(answered(401)), unreachable]),
            1
        );
        assert_eq!(
            exit_status(&[Finding::NotAllowed("no".into())]),
            EXIT_FAILED
        );
        assert_eq!(exit_status(&[Finding::Invalid("no".into())]), EXIT_FAILED);
        assert_eq!(exit_status(&[]), EXIT_NOTHING);
    }

    #[test]
    fn results_say_what_the_status_means() {
        assert_eq!(
            describe(&answered(401)).0,
            "reachable: HTTP 401 as documented"
        );
        let (result, detail) = describe(&answered(200));
        assert_eq!(result, "reachable?: HTTP 200");
        assert_eq!(
            detail,
            "answered 200 without a client secret: is this Clear?"
        );
        assert!(
            describe(&answered(204))
                .1
                .starts_with("answered 204 without")
        );
        assert!(describe(&answered(308)).1.contains("wrong base URL?"));
        let mut refused = answered(403);
        if let ProbeResult::Answered(a) = &mut refused.result {
            a.message = Some("IP 10.1.2.3 is not in the allow list of this API client".into());
            a.code = Some("FORBIDDEN".into());
            a.clock_skew = Some(jiff::SignedDuration::from_secs(-3));
        }
        let (result, detail) = describe(&refused);
        assert_eq!(result, "reachable, refused: HTTP 403");
        assert!(
            detail.contains(
                "Clear said: \"IP 10.1.2.3 is not in the allow list of this API client\"; error_code FORBIDDEN; clock skew -3s"
            ),
            "{detail}"
        );
    }

    #[test]
    fn the_allow_list_and_allow_http_decide_what_is_probed() {
        let allowed = AllowedBaseUrls::from_urls(&[url("http://127.0.0.1:9000")]);
        assert_eq!(
            permission(&url("https://api.clear.in"), &allowed, false),
            Ok(())
        );
        assert_eq!(
            permission(&url("http://127.0.0.1:9000"), &allowed, true),
            Ok(())
        );
        assert!(
            permission(&url("http://127.0.0.1:9000"), &allowed, false)
                .unwrap_err()
                .contains("--allow-http")
        );
        let refusal = permission(&url("https://other.example"), &allowed, true).unwrap_err();
        assert!(
            refusal.contains("--allowed-base-url https://other.example"),
            "{refusal}"
        );
        let only = AllowedBaseUrls::only(&[url("http://127.0.0.1:9000")]);
        assert!(permission(&url("https://api.clear.in"), &only, true).is_err());
    }

    #[test]
    fn targets_are_distinct_urls_with_their_users() {
        let mut targets = Vec::new();
        add(&mut targets, Ok(url("https://api.clear.in")), "a/x".into());
        add(&mut targets, Ok(url("https://api.clear.in/")), "b/y".into());
        add(&mut targets, Ok(url("https://api.clear.in")), "a/x".into());
        let invalid = || InvalidUrl {
            raw: "bad".into(),
            why: "why".into(),
        };
        add(&mut targets, Err(invalid()), "c/z".into());
        add(&mut targets, Err(invalid()), "c/w".into());
        assert_eq!(targets.len(), 3);
        assert_eq!(targets[0].used_by, ["a/x", "b/y"]);
        assert_eq!(targets[1].used_by, ["c/z"]);
    }

    #[test]
    fn the_table_has_a_row_per_url() {
        let targets = vec![
            Target {
                url: Ok(url("https://api.clear.in")),
                used_by: vec!["a/x".into(), "b/y".into()],
            },
            Target {
                url: Ok(url("https://other.example")),
                used_by: vec!["--base-url".into()],
            },
            Target {
                url: Err(InvalidUrl {
                    raw: "ftp://x".into(),
                    why: "failed to accept baseUrl: scheme ftp".into(),
                }),
                used_by: vec!["c/z".into()],
            },
        ];
        let findings = vec![
            Finding::Probed(answered(401)),
            Finding::NotAllowed("not on the allow-list".into()),
            Finding::Invalid("failed to accept baseUrl: scheme ftp".into()),
        ];
        let table = render(&targets, &findings);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 4, "{table}");
        assert!(lines[0].starts_with("URL "), "{table}");
        assert!(
            lines[1].contains("yes") && lines[1].contains("12ms") && lines[1].contains("a/x +1"),
            "{table}"
        );
        assert!(
            lines[2].contains(" no ") && lines[2].contains("not probed"),
            "{table}"
        );
        assert!(
            lines[3].starts_with("ftp://x") && lines[3].ends_with("scheme ftp"),
            "{table}"
        );
    }
}
