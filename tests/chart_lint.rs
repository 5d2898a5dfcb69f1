//! The Helm chart and the Dockerfile, checked with the real tools: `helm lint`, `helm
//! template` rendered with default and with every optional value (the YAML parsed and the
//! objects inspected: RBAC verbs, pod security, operator arguments), values.schema.json
//! rejecting bad values, and hadolint on the Dockerfile.
//!
//! The tools come from `.tools/bin` (installed by `scripts/install-tools.sh`, which the
//! test script and CI run first).

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
    process::{Command, Output},
};

use serde::Deserialize;
use serde_json::{Value, json};

const CHART: &str = "charts/clear-operator";
const RELEASE: &str = "ops";
const RELEASE_NAMESPACE: &str = "clear-system";
const FULLNAME: &str = "ops-clear-operator";
/// The chart refuses its placeholder repository, so every render names one.
const IMAGE_REPOSITORY: &str = "registry.example.com/platform/clear-operator";
const IMAGE_SET: &str = "image.repository=registry.example.com/platform/clear-operator";

fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn tool(name: &str) -> PathBuf {
    let path = repo_root().join(".tools/bin").join(name);
    assert!(
        path.exists(),
        "{} is missing: run scripts/install-tools.sh first (it installs helm and hadolint into .tools/bin)",
        path.display()
    );
    path
}

/// Runs helm with its cache/config/data homes in the test's own scratch directory, so no
/// user configuration (repositories, plugins) changes what it does.
fn helm(args: &[&str]) -> Output {
    let home = Path::new(env!("CARGO_TARGET_TMPDIR")).join("chart-lint-helm-home");
    Command::new(tool("helm"))
        .args(args)
        .current_dir(repo_root())
        .env("HELM_CACHE_HOME", home.join("cache"))
        .env("HELM_CONFIG_HOME", home.join("config"))
        .env("HELM_DATA_HOME", home.join("data"))
        .env_remove("KUBECONFIG")
        .output()
        .expect("failed to run helm")
}

fn stdout_of(output: &Output, what: &str) -> String {
    assert!(
        output.status.success(),
        "{what} failed ({}):\n{}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout.clone()).expect("helm prints UTF-8")
}

/// `helm template` with `--set`-style overrides (and an image repository); returns every
/// rendered object.
fn render(extra: &[&str]) -> Vec<Value> {
    parse_documents(&stdout_of(&helm(&template_args(extra)), "helm template"))
}

fn template_args<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "template",
        RELEASE,
        CHART,
        "--namespace",
        RELEASE_NAMESPACE,
        "--set",
    ];
    args.push(IMAGE_SET);
    args.extend_from_slice(extra);
    args
}

/// `helm template` that must fail; returns its error output.
fn render_error(extra: &[&str]) -> String {
    let output = helm(&template_args(extra));
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(
        !output.status.success(),
        "helm template {extra:?} was accepted:\n{}",
        String::from_utf8_lossy(&output.stdout)
    );
    stderr
}

fn parse_documents(yaml: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(yaml)
        .map(|doc| Value::deserialize(doc).expect("helm renders valid YAML"))
        .filter(|doc| !doc.is_null())
        .collect()
}

fn of_kind<'a>(objects: &'a [Value], kind: &str) -> Vec<&'a Value> {
    objects.iter().filter(|o| o["kind"] == kind).collect()
}

fn only<'a>(objects: &'a [Value], kind: &str) -> &'a Value {
    let found = of_kind(objects, kind);
    assert_eq!(
        found.len(),
        1,
        "expected exactly one {kind}, found {}",
        found.len()
    );
    found[0]
}

fn container(objects: &[Value]) -> &Value {
    let containers = only(objects, "Deployment")["spec"]["template"]["spec"]["containers"]
        .as_array()
        .expect("the Deployment has containers");
    assert_eq!(containers.len(), 1, "the operator pod runs one container");
    &containers[0]
}

fn args(objects: &[Value]) -> Vec<String> {
    container(objects)["args"]
        .as_array()
        .expect("the container has args")
        .iter()
        .map(|a| a.as_str().expect("args are strings").to_string())
        .collect()
}

/// The value following `flag` in the argument list, for each occurrence.
fn flag_values(args: &[String], flag: &str) -> Vec<String> {
    args.windows(2)
        .filter(|w| w[0] == flag)
        .map(|w| w[1].clone())
        .collect()
}

/// Rules as comparable (apiGroup, resource, verbs, resourceNames) rows.
fn rule_rows(role: &Value) -> BTreeSet<(String, String, Vec<String>, Vec<String>)> {
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| a.iter().map(|s| s.as_str().unwrap().to_string()).collect())
            .unwrap_or_default()
    };
    let mut rows = BTreeSet::new();
    for rule in role["rules"].as_array().expect("a role has rules") {
        for group in strings(&rule["apiGroups"]) {
            for resource in strings(&rule["resources"]) {
                rows.insert((
                    group.clone(),
                    resource,
                    strings(&rule["verbs"]),
                    strings(&rule["resourceNames"]),
                ));
            }
        }
    }
    rows
}

fn expected_operator_rules() -> BTreeSet<(String, String, Vec<String>, Vec<String>)> {
    let row = |group: &str, resource: &str, verbs: &[&str]| {
        (
            group.to_string(),
            resource.to_string(),
            verbs.iter().map(|v| v.to_string()).collect(),
            Vec::new(),
        )
    };
    [
        row(
            "clear-operator.io",
            "clearapiclients",
            &["get", "list", "watch", "patch"],
        ),
        row("clear-operator.io", "clearapiclients/status", &["patch"]),
        row("", "secrets", &["get", "list", "watch", "create", "patch"]),
        row("events.k8s.io", "events", &["create", "patch"]),
    ]
    .into_iter()
    .collect()
}

/// The ClusterRole bound to the operator (not the ones aggregated into view/edit/admin).
fn operator_cluster_role(objects: &[Value]) -> &Value {
    of_kind(objects, "ClusterRole")
        .into_iter()
        .find(|r| r["metadata"]["name"] == FULLNAME)
        .expect("the operator's ClusterRole")
}

fn is_aggregated(role: &Value) -> bool {
    role["metadata"]["labels"]
        .as_object()
        .is_some_and(|labels| {
            labels
                .keys()
                .any(|k| k.starts_with("rbac.authorization.k8s.io/aggregate-to-"))
        })
}

fn leader_election_role(objects: &[Value]) -> &Value {
    of_kind(objects, "Role")
        .into_iter()
        .find(|r| r["metadata"]["name"] == format!("{FULLNAME}-leader-election"))
        .expect("a leader-election Role")
}

const EVERYTHING_ON: &[&str] = &[
    "--set",
    "replicaCount=2",
    "--set",
    "operator.allowHttp=true",
    "--set",
    "operator.mintBudget=120",
    "--set",
    "caBundle.enabled=true,caBundle.source=secret,caBundle.name=corp-ca,caBundle.key=bundle.pem",
    "--set",
    "extraEnv[0].name=HTTPS_PROXY,extraEnv[0].value=http://proxy.internal:3128",
    "--set",
    "serviceMonitor.enabled=true",
    "--set",
    "prometheusRule.enabled=true",
    "--set",
    "podDisruptionBudget.enabled=true,podDisruptionBudget.minAvailable=1",
    "--set",
    "apiPriority.enabled=true",
    "--set",
    "networkPolicy.restrictEgress=true,networkPolicy.apiServer.cidrs[0]=10.96.0.1/32",
    "--set",
    "podAnnotations.team=payments,podLabels.tier=platform",
    "--set",
    "nodeSelector.kubernetes\\.io/os=linux",
    "--set",
    "tolerations[0].key=dedicated,tolerations[0].operator=Exists",
];

#[test]
fn helm_lint_passes_on_the_chart() {
    let output = helm(&["lint", "--strict", CHART]);
    stdout_of(&output, "helm lint --strict");
}

#[test]
fn helm_lint_passes_with_every_optional_object_on() {
    let mut args = vec![
        "lint",
        "--strict",
        CHART,
        "--set",
        "watchNamespaces={team-a,team-b}",
    ];
    args.extend_from_slice(EVERYTHING_ON);
    stdout_of(&helm(&args), "helm lint --strict with every option");
}

#[test]
fn default_render_holds_the_operator_and_its_cluster_wide_rbac() {
    let objects = render(&[]);
    let kinds: BTreeSet<&str> = objects
        .iter()
        .map(|o| o["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "ClusterRole",
            "ClusterRoleBinding",
            "CustomResourceDefinition",
            "Deployment",
            "NetworkPolicy",
            "Role",
            "RoleBinding",
            "Service",
            "ServiceAccount"
        ]
        .into_iter()
        .collect()
    );
    assert_eq!(
        rule_rows(operator_cluster_role(&objects)),
        expected_operator_rules()
    );
    let binding = of_kind(&objects, "ClusterRoleBinding")
        .into_iter()
        .find(|b| b["metadata"]["name"] == FULLNAME)
        .expect("the operator's ClusterRoleBinding");
    assert_eq!(
        binding["roleRef"],
        json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": FULLNAME})
    );
    assert_eq!(
        binding["subjects"],
        json!([{"kind": "ServiceAccount", "name": FULLNAME, "namespace": RELEASE_NAMESPACE}])
    );
    assert_secure_metrics_rbac(&objects);
    for object in &objects {
        let labels = &object["metadata"]["labels"];
        assert_eq!(
            labels["app.kubernetes.io/name"], "clear-operator",
            "{} lacks the standard labels",
            object["kind"]
        );
        assert_eq!(labels["app.kubernetes.io/instance"], RELEASE);
        assert_eq!(labels["app.kubernetes.io/managed-by"], "Helm");
    }
}

/// With metrics.secure.enabled (the default): the operator may create TokenReviews and
/// SubjectAccessReviews and nothing more through `-metrics-auth`; `-metrics-reader` grants
/// exactly `get` on `/metrics` and is bound to nobody.
fn assert_secure_metrics_rbac(objects: &[Value]) {
    let auth_name = format!("{FULLNAME}-metrics-auth");
    let reader_name = format!("{FULLNAME}-metrics-reader");
    let cluster_role = |name: &str| {
        of_kind(objects, "ClusterRole")
            .into_iter()
            .find(|r| r["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("no ClusterRole {name}"))
    };
    let row = |group: &str, resource: &str| {
        (
            group.to_string(),
            resource.to_string(),
            vec!["create".to_string()],
            Vec::new(),
        )
    };
    assert_eq!(
        rule_rows(cluster_role(&auth_name)),
        [
            row("authentication.k8s.io", "tokenreviews"),
            row("authorization.k8s.io", "subjectaccessreviews"),
        ]
        .into_iter()
        .collect()
    );
    assert_eq!(
        cluster_role(&reader_name)["rules"],
        json!([{"nonResourceURLs": ["/metrics"], "verbs": ["get"]}])
    );
    let bindings = of_kind(objects, "ClusterRoleBinding");
    let auth_binding = bindings
        .iter()
        .find(|b| b["metadata"]["name"] == auth_name.as_str())
        .expect("the metrics-auth ClusterRoleBinding");
    assert_eq!(
        auth_binding["roleRef"],
        json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": auth_name})
    );
    assert_eq!(
        auth_binding["subjects"],
        json!([{"kind": "ServiceAccount", "name": FULLNAME, "namespace": RELEASE_NAMESPACE}])
    );
    assert!(
        bindings
            .iter()
            .chain(of_kind(objects, "RoleBinding").iter())
            .all(|b| b["roleRef"]["name"] != reader_name.as_str()),
        "the metrics-reader role is for scrapers to bind, not the chart"
    );
}

#[test]
fn metrics_secure_disabled_renders_no_review_rights_and_plain_probes() {
    let objects = render(&["--set", "metrics.secure.enabled=false"]);
    assert!(
        of_kind(&objects, "ClusterRole")
            .iter()
            .chain(of_kind(&objects, "ClusterRoleBinding").iter())
            .all(|r| !r["metadata"]["name"]
                .as_str()
                .unwrap()
                .contains("-metrics-")),
        "no metrics roles without secure metrics"
    );
    let c = container(&objects);
    assert_eq!(
        c["livenessProbe"]["httpGet"],
        json!({"path": "/healthz", "port": "metrics"})
    );
    assert!(!args(&objects).iter().any(|a| a == "--metrics-secure"));
}

#[test]
fn metrics_cert_secret_is_mounted_and_passed_as_files() {
    let objects = render(&["--set", "metrics.secure.certSecret=metrics-tls"]);
    let args = args(&objects);
    assert_eq!(
        flag_values(&args, "--metrics-cert-file"),
        vec!["/etc/clear-operator/metrics-tls/tls.crt"]
    );
    assert_eq!(
        flag_values(&args, "--metrics-key-file"),
        vec!["/etc/clear-operator/metrics-tls/tls.key"]
    );
    let pod = &only(&objects, "Deployment")["spec"]["template"]["spec"];
    assert!(
        pod["volumes"]
            .as_array()
            .unwrap()
            .contains(&json!({"name": "metrics-tls", "secret": {"secretName": "metrics-tls"}}))
    );
    let (_, run) = parse_run_args(&objects);
    assert!(run.metrics_secure.metrics_secure);
    assert!(run.metrics_secure.metrics_cert_file.is_some());
}

/// By default: no wildcards, no deletecollection or escalate, no update or delete on
/// Secrets and nothing on workloads (restarts are opt-in).
#[test]
fn rbac_grants_no_wildcards_and_no_rights_beyond_the_list() {
    for extra in [&[][..], &["--set", "watchNamespaces={team-a}"][..]] {
        let objects = render(extra);
        for role in of_kind(&objects, "ClusterRole")
            .into_iter()
            .chain(of_kind(&objects, "Role"))
            .filter(|r| !is_aggregated(r))
        {
            for (group, resource, verbs, _) in rule_rows(role) {
                assert!(
                    group != "*" && resource != "*" && !verbs.contains(&"*".to_string()),
                    "wildcard in {role}"
                );
                assert!(
                    !verbs.contains(&"deletecollection".to_string())
                        && !verbs.contains(&"escalate".to_string()),
                    "{resource}: {verbs:?}"
                );
                assert_ne!(group, "apps", "workload rights by default: {role}");
                if resource == "secrets" {
                    for verb in ["update", "delete"] {
                        assert!(!verbs.contains(&verb.to_string()), "{verb} on secrets");
                    }
                }
            }
        }
    }
}

#[test]
fn rollout_restart_value_grants_patch_on_the_three_workload_kinds_only() {
    let objects = render(&["--set", "rbac.rolloutRestart.enabled=true"]);
    let workloads: BTreeSet<_> = rule_rows(operator_cluster_role(&objects))
        .into_iter()
        .filter(|(group, ..)| group == "apps")
        .collect();
    let row = |resource: &str| {
        (
            "apps".to_string(),
            resource.to_string(),
            vec!["patch".to_string()],
            Vec::new(),
        )
    };
    assert_eq!(
        workloads,
        [row("deployments"), row("statefulsets"), row("daemonsets")]
            .into_iter()
            .collect()
    );
}

#[test]
fn nudging_pods_is_opt_in_and_grants_list_watch_and_patch_on_pods_only() {
    let pods_rows = |objects: &[Value]| -> BTreeSet<_> {
        rule_rows(operator_cluster_role(objects))
            .into_iter()
            .filter(|(_, resource, ..)| resource == "pods")
            .collect()
    };
    let default = render(&[]);
    assert!(
        pods_rows(&default).is_empty(),
        "no rights on pods by default"
    );
    assert!(!parse_run_args(&default).1.nudge_pods);
    let on = render(&["--set", "nudgePods.enabled=true"]);
    assert_eq!(
        pods_rows(&on),
        [(
            String::new(),
            "pods".to_string(),
            vec!["list".to_string(), "watch".to_string(), "patch".to_string()],
            Vec::new(),
        )]
        .into_iter()
        .collect()
    );
    assert!(parse_run_args(&on).1.nudge_pods, "passes --nudge-pods");
}

#[test]
fn aggregated_roles_let_view_read_and_edit_manage_clear_api_clients() {
    let objects = render(&[]);
    let aggregated: Vec<&Value> = of_kind(&objects, "ClusterRole")
        .into_iter()
        .filter(|r| is_aggregated(r))
        .collect();
    let view = aggregated
        .iter()
        .find(|r| r["metadata"]["labels"]["rbac.authorization.k8s.io/aggregate-to-view"] == "true")
        .expect("a role aggregated into view");
    for (group, resource, verbs, _) in rule_rows(view) {
        assert_eq!(group, "clear-operator.io");
        assert!(resource.starts_with("clearapiclients"));
        assert_eq!(verbs, ["get", "list", "watch"], "view only reads");
    }
    let edit = aggregated
        .iter()
        .find(|r| {
            r["metadata"]["labels"]["rbac.authorization.k8s.io/aggregate-to-edit"] == "true"
                && r["metadata"]["labels"]["rbac.authorization.k8s.io/aggregate-to-view"].is_null()
        })
        .expect("a role aggregated into edit");
    let verbs: BTreeSet<String> = rule_rows(edit).into_iter().flat_map(|r| r.2).collect();
    for verb in ["create", "update", "patch", "delete"] {
        assert!(verbs.contains(verb), "edit cannot {verb} ClearApiClients");
    }
    let none = render(&["--set", "rbac.aggregateToDefaultRoles=false"]);
    assert!(
        of_kind(&none, "ClusterRole")
            .iter()
            .all(|r| !is_aggregated(r))
    );
}

#[test]
fn leader_election_lease_rights_stay_in_the_release_namespace() {
    let objects = render(&[]);
    let role = leader_election_role(&objects);
    assert_eq!(role["metadata"]["namespace"], RELEASE_NAMESPACE);
    let expected: BTreeSet<_> = [
        (
            "coordination.k8s.io".to_string(),
            "leases".to_string(),
            vec!["create".to_string()],
            vec![],
        ),
        (
            "coordination.k8s.io".to_string(),
            "leases".to_string(),
            vec!["get".to_string(), "update".to_string()],
            vec![FULLNAME.to_string()],
        ),
        (
            "".to_string(),
            "configmaps".to_string(),
            vec!["create".to_string()],
            vec![],
        ),
        (
            "".to_string(),
            "configmaps".to_string(),
            vec!["get".to_string(), "patch".to_string()],
            vec![format!("{FULLNAME}-budget")],
        ),
    ]
    .into_iter()
    .collect();
    assert_eq!(rule_rows(role), expected);
    assert_eq!(
        flag_values(&args(&objects), "--lease-name"),
        vec![FULLNAME.to_string()]
    );
}

#[test]
fn default_deployment_runs_the_operator_locked_down() {
    let objects = render(&[]);
    let deployment = only(&objects, "Deployment");
    assert_eq!(deployment["spec"]["replicas"], 1);
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(pod["serviceAccountName"], FULLNAME);
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(pod["securityContext"]["runAsUser"], 65532);
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );

    let c = container(&objects);
    assert_eq!(c["image"], format!("{IMAGE_REPOSITORY}:0.1.0"));
    assert_eq!(c["imagePullPolicy"], "IfNotPresent");
    let sc = &c["securityContext"];
    assert_eq!(sc["runAsNonRoot"], true);
    assert_eq!(sc["readOnlyRootFilesystem"], true);
    assert_eq!(sc["allowPrivilegeEscalation"], false);
    assert_eq!(sc["capabilities"]["drop"], json!(["ALL"]));
    assert_eq!(sc["seccompProfile"]["type"], "RuntimeDefault");
    assert!(
        c["resources"]["requests"]["memory"].is_string()
            && c["resources"]["limits"]["memory"].is_string()
    );

    assert_eq!(
        c["ports"],
        json!([{"name": "metrics", "containerPort": 8080, "protocol": "TCP"}])
    );
    // NB: secure metrics by default: the port speaks TLS only, the probes HTTPS.
    assert_eq!(
        c["livenessProbe"]["httpGet"],
        json!({"path": "/healthz", "port": "metrics", "scheme": "HTTPS"})
    );
    assert_eq!(
        c["readinessProbe"]["httpGet"],
        json!({"path": "/readyz", "port": "metrics", "scheme": "HTTPS"})
    );

    let args = args(&objects);
    assert_eq!(args[0], "run");
    assert!(args.iter().any(|a| a == "--metrics-secure"), "{args:?}");
    assert_eq!(flag_values(&args, "--metrics-addr"), vec!["0.0.0.0:8080"]);
    assert_eq!(
        flag_values(&args, "--leader-election-namespace"),
        vec![RELEASE_NAMESPACE]
    );
    assert_eq!(flag_values(&args, "--mint-budget"), vec!["250"]);
    assert_eq!(flag_values(&args, "--log-format"), vec!["json"]);
    assert!(
        flag_values(&args, "--namespace").is_empty(),
        "no namespace limit by default: {args:?}"
    );
    assert!(
        !args
            .iter()
            .any(|a| a == "--allow-http" || a == "--ca-bundle"),
        "{args:?}"
    );

    let env = c["env"].as_array().unwrap();
    let pod_namespace = env
        .iter()
        .find(|e| e["name"] == "POD_NAMESPACE")
        .expect("POD_NAMESPACE env");
    assert_eq!(
        pod_namespace["valueFrom"]["fieldRef"]["fieldPath"],
        "metadata.namespace"
    );

    let service = only(&objects, "Service");
    assert_eq!(
        service["spec"]["ports"],
        json!([{"name": "metrics", "port": 8080, "targetPort": "metrics", "protocol": "TCP"}])
    );
    assert_eq!(
        service["spec"]["selector"],
        deployment["spec"]["selector"]["matchLabels"]
    );
}

#[test]
fn watched_namespaces_get_roles_instead_of_cluster_roles() {
    let objects = render(&["--set", "watchNamespaces={team-a,team-b}"]);
    // Only the roles aggregated into view/edit/admin (they bind nobody) and the secure
    // metrics' (TokenReview and SubjectAccessReview are cluster-scoped) stay cluster-wide.
    let metrics_roles = [
        format!("{FULLNAME}-metrics-auth"),
        format!("{FULLNAME}-metrics-reader"),
    ];
    assert!(of_kind(&objects, "ClusterRole").iter().all(|r| {
        is_aggregated(r)
            || metrics_roles
                .iter()
                .any(|m| r["metadata"]["name"] == m.as_str())
    }));
    assert_eq!(
        of_kind(&objects, "ClusterRoleBinding")
            .iter()
            .map(|b| b["metadata"]["name"].as_str().unwrap())
            .collect::<Vec<_>>(),
        vec![metrics_roles[0].as_str()]
    );
    assert_secure_metrics_rbac(&objects);

    let args = args(&objects);
    assert_eq!(flag_values(&args, "--namespace"), vec!["team-a", "team-b"]);

    for namespace in ["team-a", "team-b"] {
        let role = of_kind(&objects, "Role")
            .into_iter()
            .find(|r| r["metadata"]["namespace"] == namespace)
            .unwrap_or_else(|| panic!("no Role in {namespace}"));
        assert_eq!(rule_rows(role), expected_operator_rules());
        let binding = of_kind(&objects, "RoleBinding")
            .into_iter()
            .find(|b| b["metadata"]["namespace"] == namespace)
            .unwrap_or_else(|| panic!("no RoleBinding in {namespace}"));
        assert_eq!(binding["roleRef"]["name"], role["metadata"]["name"]);
        assert_eq!(
            binding["subjects"],
            json!([{"kind": "ServiceAccount", "name": FULLNAME, "namespace": RELEASE_NAMESPACE}])
        );
    }
    // The Lease stays in the release namespace whatever is watched.
    assert_eq!(
        leader_election_role(&objects)["metadata"]["namespace"],
        RELEASE_NAMESPACE
    );
}

#[test]
fn optional_objects_are_absent_by_default() {
    let objects = render(&[]);
    for kind in [
        "ServiceMonitor",
        "PrometheusRule",
        "PodDisruptionBudget",
        "FlowSchema",
        "PriorityLevelConfiguration",
    ] {
        assert!(
            of_kind(&objects, kind).is_empty(),
            "{kind} rendered although not enabled"
        );
    }
}

#[test]
fn every_optional_object_renders_when_enabled() {
    let objects = render(EVERYTHING_ON);

    let monitor = only(&objects, "ServiceMonitor");
    assert_eq!(monitor["apiVersion"], "monitoring.coreos.com/v1");
    assert_eq!(monitor["spec"]["endpoints"][0]["port"], "metrics");
    assert_eq!(monitor["spec"]["endpoints"][0]["path"], "/metrics");
    // As kubebuilder's: https, the scraper's own ServiceAccount token, a self-signed
    // certificate not verified unless serviceMonitor.tlsConfig says otherwise.
    assert_eq!(monitor["spec"]["endpoints"][0]["scheme"], "https");
    assert_eq!(
        monitor["spec"]["endpoints"][0]["bearerTokenFile"],
        "/var/run/secrets/kubernetes.io/serviceaccount/token"
    );
    assert_eq!(
        monitor["spec"]["endpoints"][0]["tlsConfig"],
        json!({"insecureSkipVerify": true})
    );
    assert_eq!(
        monitor["spec"]["selector"]["matchLabels"],
        only(&objects, "Service")["spec"]["selector"]
    );

    let rules = &only(&objects, "PrometheusRule")["spec"]["groups"][0]["rules"];
    let alerts: BTreeSet<&str> = rules
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["alert"].as_str().unwrap())
        .collect();
    assert_eq!(
        alerts,
        [
            "ClearApiClientNotReady",
            "ClearClientSecretNearDailyLimit",
            "ClearMintsFailing",
            "ClearOperatorNotLeading",
            "ClearRenewalWindowMissed",
            "ClearTokenExpiringSoon"
        ]
        .into_iter()
        .collect()
    );
    let expr_of = |name: &str| {
        rules
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["alert"] == name)
            .unwrap()["expr"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert!(
        expr_of("ClearTokenExpiringSoon")
            .contains("clear_operator_token_expiry_timestamp_seconds - time()) < 3600")
    );
    assert!(expr_of("ClearApiClientNotReady").contains("clear_operator_client_ready == 0"));
    for alert in ["ClearTokenExpiringSoon", "ClearApiClientNotReady"] {
        assert!(
            expr_of(alert).contains("and on (instance) (clear_operator_leader == 1)"),
            "{alert} must look at the leading replica only"
        );
    }
    assert_eq!(
        rules
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["alert"] == "ClearApiClientNotReady")
            .unwrap()["for"],
        "15m"
    );
    assert!(
        expr_of("ClearMintsFailing").contains("clear_operator_mints_total{result!=\"issued\"}")
    );
    // With the ServiceMonitor on, the no-leader alert picks this release's scrape job.
    assert_eq!(
        expr_of("ClearOperatorNotLeading"),
        format!(
            "absent(clear_operator_leader{{job=\"{FULLNAME}-metrics\", namespace=\"{RELEASE_NAMESPACE}\"}} == 1)"
        )
    );
    assert_eq!(
        only(&objects, "Service")["metadata"]["name"],
        format!("{FULLNAME}-metrics"),
        "the job the no-leader alert selects is the metrics Service's name"
    );

    let pdb = only(&objects, "PodDisruptionBudget");
    assert_eq!(pdb["spec"]["minAvailable"], 1);
    assert!(pdb["spec"].get("maxUnavailable").is_none());

    let policy = &only(&objects, "NetworkPolicy")["spec"];
    assert_eq!(policy["policyTypes"], json!(["Ingress", "Egress"]));
    assert_eq!(policy["ingress"], default_metrics_ingress());
    let egress = policy["egress"].as_array().unwrap();
    let ports_of = |rule: &Value| -> BTreeSet<(i64, String)> {
        rule["ports"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                (
                    p["port"].as_i64().unwrap(),
                    p["protocol"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    };
    assert_eq!(
        ports_of(&egress[0]),
        [(53, "TCP".to_string()), (53, "UDP".to_string())]
            .into_iter()
            .collect()
    );
    assert_eq!(
        ports_of(&egress[1]),
        [(443, "TCP".to_string()), (6443, "TCP".to_string())]
            .into_iter()
            .collect()
    );
    assert_eq!(
        egress[1]["to"],
        json!([{"ipBlock": {"cidr": "10.96.0.1/32"}}])
    );
    assert_eq!(
        ports_of(&egress[2]),
        [(443, "TCP".to_string())].into_iter().collect()
    );

    let deployment = only(&objects, "Deployment");
    assert_eq!(deployment["spec"]["replicas"], 2);
    let pod = &deployment["spec"]["template"];
    assert_eq!(pod["metadata"]["annotations"]["team"], "payments");
    assert_eq!(pod["metadata"]["labels"]["tier"], "platform");
    assert_eq!(
        pod["spec"]["nodeSelector"],
        json!({"kubernetes.io/os": "linux"})
    );
    assert_eq!(
        pod["spec"]["tolerations"],
        json!([{"key": "dedicated", "operator": "Exists"}])
    );
    assert_eq!(
        pod["spec"]["volumes"][1],
        json!({"name": "ca-bundle", "secret": {"secretName": "corp-ca", "items": [{"key": "bundle.pem", "path": "bundle.pem"}]}})
    );

    let c = container(&objects);
    assert!(c["volumeMounts"].as_array().unwrap().contains(&json!({
        "name": "ca-bundle", "mountPath": "/etc/clear-operator/ca", "readOnly": true
    })));
    assert!(
        c["env"]
            .as_array()
            .unwrap()
            .contains(&json!({"name": "HTTPS_PROXY", "value": "http://proxy.internal:3128"}))
    );
    let args = args(&objects);
    assert_eq!(
        flag_values(&args, "--ca-bundle"),
        vec!["/etc/clear-operator/ca/bundle.pem"]
    );
    assert_eq!(flag_values(&args, "--mint-budget"), vec!["120"]);
    assert!(args.iter().any(|a| a == "--allow-http"), "{args:?}");
}

#[test]
fn ca_bundle_from_a_config_map_is_mounted_from_it() {
    let objects = render(&["--set", "caBundle.enabled=true,caBundle.name=corp-ca"]);
    let volumes = &only(&objects, "Deployment")["spec"]["template"]["spec"]["volumes"];
    assert_eq!(
        volumes[1],
        json!({"name": "ca-bundle", "configMap": {"name": "corp-ca", "items": [{"key": "ca.crt", "path": "ca.crt"}]}})
    );
    assert_eq!(
        flag_values(&args(&objects), "--ca-bundle"),
        vec!["/etc/clear-operator/ca/ca.crt"]
    );
}

#[test]
fn the_crd_is_templated_from_the_generated_one_and_kept_on_uninstall() {
    let objects = render(&[]);
    let crd = only(&objects, "CustomResourceDefinition");
    let generated: Value = serde_yaml::from_str(&clear_operator::resource::crd_yaml()).unwrap();
    assert_eq!(crd["spec"], generated["spec"]);
    assert_eq!(crd["metadata"]["name"], generated["metadata"]["name"]);
    assert_eq!(
        crd["metadata"]["annotations"]["helm.sh/resource-policy"], "keep",
        "helm uninstall would delete every ClearApiClient with the CRD"
    );
    assert_eq!(
        crd["metadata"]["labels"]["app.kubernetes.io/managed-by"],
        "Helm"
    );
    // NB: Helm installs crds/ once and never upgrades it; the CRD must be a template.
    assert!(
        !repo_root().join(CHART).join("crds").exists(),
        "a crds/ directory in the chart would be installed beside the template"
    );
}

#[test]
fn crds_enabled_false_leaves_the_crd_out_and_crds_keep_false_drops_the_keep_policy() {
    let without = render(&["--set", "crds.enabled=false"]);
    assert!(of_kind(&without, "CustomResourceDefinition").is_empty());
    let unkept = render(&["--set", "crds.keep=false"]);
    let crd = only(&unkept, "CustomResourceDefinition");
    assert!(crd["metadata"]["annotations"]["helm.sh/resource-policy"].is_null());
}

#[test]
fn schema_rejects_bad_values_before_anything_renders() {
    let cases: &[(&str, &str)] = &[
        ("operator.mintBudget=300", "/operator/mintBudget"),
        ("operator.mintBudget=0", "/operator/mintBudget"),
        ("replicaCount=two", "/replicaCount"),
        ("operator.logFormat=yaml", "/operator/logFormat"),
        ("image.pullPolicy=Sometimes", "/image/pullPolicy"),
        ("watchNamespaces={Team_A}", "/watchNamespaces/0"),
        ("caBundle.enabled=true", "/caBundle/name"),
        ("caBundle.source=vault", "/caBundle/source"),
        ("metrics.port=70000", "/metrics/port"),
        ("operator.allowHtp=true", "allowHtp"),
        ("serviceMonitor.interval=soon", "/serviceMonitor/interval"),
        // The operator's own range (--concurrency 1..=1024).
        ("operator.concurrency=0", "/operator/concurrency"),
        ("operator.concurrency=1025", "/operator/concurrency"),
        (
            "operator.shutdownGraceSeconds=5",
            "/operator/shutdownGraceSeconds",
        ),
        (
            "terminationGracePeriodSeconds=-1",
            "/terminationGracePeriodSeconds",
        ),
        ("networkPolicy.restrictEgres=true", "restrictEgres"),
        (
            "prometheusRule.noLeaderFor=soon",
            "/prometheusRule/noLeaderFor",
        ),
        (
            "prometheusRule.clientSecretCallsToday=289",
            "/prometheusRule/clientSecretCallsToday",
        ),
        (
            // Matchers without their braces: the rule adds them.
            "prometheusRule.operatorSelector=job=\"x\"}",
            "/prometheusRule/operatorSelector",
        ),
    ];
    for (setting, path) in cases {
        let output = helm(&["template", RELEASE, CHART, "--set", setting]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "--set {setting} was accepted");
        assert!(
            stderr.contains("values don't meet the specifications of the schema")
                && stderr.contains(path),
            "--set {setting}: expected a schema error at {path}, got:\n{stderr}"
        );
    }
}

#[test]
fn install_notes_tell_the_next_steps() {
    let output = helm(&[
        "install",
        RELEASE,
        CHART,
        "--dry-run=client",
        "--namespace",
        RELEASE_NAMESPACE,
        "--set",
        IMAGE_SET,
    ]);
    let text = stdout_of(&output, "helm install --dry-run=client");
    let notes = text
        .split("NOTES:")
        .nth(1)
        .expect("helm prints the chart's NOTES");
    for expected in [
        "kubectl -n NAMESPACE create secret generic clear-client-secret",
        "kind: ClearApiClient",
        "clientSecretRef:",
        "kubectl -n NAMESPACE get cac",
        &format!("kubectl -n {RELEASE_NAMESPACE} rollout status deployment/{FULLNAME}"),
    ] {
        assert!(
            notes.contains(expected),
            "NOTES lack {expected:?}:\n{notes}"
        );
    }
    // The example users paste is a valid ClearApiClient, and its heredoc ends where bash
    // expects (the terminator alone at the start of a line).
    let example = notes
        .split_once("<<'YAML'\n")
        .and_then(|(_, rest)| rest.split_once("\nYAML\n"))
        .map(|(yaml, _)| yaml)
        .expect("NOTES carry a ClearApiClient heredoc ending in a bare YAML line");
    let resource: clear_operator::resource::ClearApiClient =
        serde_yaml::from_str(example).expect("the NOTES example is a valid ClearApiClient");
    assert_eq!(resource.spec.client_secret_ref.name, "clear-client-secret");
    assert_eq!(resource.target_secret_name(), "billing");
}

#[test]
fn install_notes_name_the_watched_namespace() {
    let output = helm(&[
        "install",
        RELEASE,
        CHART,
        "--dry-run=client",
        "--namespace",
        RELEASE_NAMESPACE,
        "--set",
        IMAGE_SET,
        "--set",
        "watchNamespaces={team-a,team-b}",
    ]);
    let text = stdout_of(&output, "helm install --dry-run=client");
    let notes = text.split("NOTES:").nth(1).expect("NOTES");
    assert!(
        notes.contains("It watches ClearApiClients in: team-a, team-b."),
        "{notes}"
    );
    assert!(notes.contains("kubectl -n team-a get cac"), "{notes}");
    assert!(!notes.contains("NAMESPACE"), "{notes}");
}

#[test]
fn hadolint_passes_on_the_dockerfile() {
    let output = Command::new(tool("hadolint"))
        .arg("Dockerfile")
        .current_dir(repo_root())
        .output()
        .expect("failed to run hadolint");
    stdout_of(&output, "hadolint Dockerfile");
}

/// The image runs as 65532 (the Dockerfile's USER, checked in tests/dockerfile.rs): the
/// chart's pod security context names the same user, so runAsNonRoot holds.
#[test]
fn the_chart_runs_the_pod_as_the_images_user() {
    let objects = render(&[]);
    assert_eq!(
        only(&objects, "Deployment")["spec"]["template"]["spec"]["securityContext"]["runAsUser"],
        65532
    );
}

/// Parses the rendered container arguments with the operator's own command line, so a flag
/// the chart passes that the binary does not know fails here rather than in a crash loop.
fn parse_run_args(
    objects: &[Value],
) -> (
    clear_operator::telemetry::LogFormat,
    clear_operator::cli::RunArgs,
) {
    use clap::Parser;
    use clear_operator::cli::{Cli, Command};
    let argv = std::iter::once("clear-operator".to_string()).chain(args(objects));
    let cli = Cli::try_parse_from(argv)
        .unwrap_or_else(|e| panic!("the chart's arguments do not parse: {e}"));
    match cli.command {
        Command::Run(run) => (cli.log_format, run),
        other => panic!("the chart runs {other:?}, not `run`"),
    }
}

#[test]
fn default_arguments_parse_with_the_operators_command_line() {
    let (log_format, run) = parse_run_args(&render(&[]));
    assert_eq!(log_format, clear_operator::telemetry::LogFormat::Json);
    assert_eq!(run.metrics_addr, "0.0.0.0:8080".parse().unwrap());
    assert_eq!(
        run.leader_election_namespace.as_deref(),
        Some(RELEASE_NAMESPACE)
    );
    assert_eq!(run.lease_name, FULLNAME);
    assert!(!run.no_leader_election);
    assert_eq!(run.mint_budget, 250);
    assert!(run.namespaces.is_empty());
    assert!(!run.clear.allow_http);
    assert!(run.metrics_secure.metrics_secure);
    assert_eq!(run.clear.ca_bundle, None);
    // NB: the chart passes --concurrency explicitly; a default install must get the same
    // figure as the binary's own default, which the scale benchmark measures.
    assert_eq!(run.concurrency, clear_operator::cli::DEFAULT_CONCURRENCY);
}

#[test]
fn api_priority_puts_the_lease_in_leader_election_and_the_rest_in_a_level_of_its_own() {
    let objects = render(&["--set", "apiPriority.enabled=true"]);
    let level = only(&objects, "PriorityLevelConfiguration");
    assert_eq!(level["apiVersion"], "flowcontrol.apiserver.k8s.io/v1");
    assert_eq!(level["metadata"]["name"], FULLNAME);
    assert_eq!(level["spec"]["type"], "Limited");
    assert_eq!(level["spec"]["limited"]["nominalConcurrencyShares"], 30);
    assert_eq!(
        level["spec"]["limited"]["limitResponse"]["type"], "Queue",
        "requests over the level's seats wait rather than being refused at once"
    );
    let schemas = of_kind(&objects, "FlowSchema");
    assert_eq!(schemas.len(), 2);
    let lease = schemas
        .iter()
        .find(|s| s["spec"]["priorityLevelConfiguration"]["name"] == "leader-election")
        .expect("a FlowSchema for the Lease");
    let rest = schemas
        .iter()
        .find(|s| s["spec"]["priorityLevelConfiguration"]["name"] == FULLNAME)
        .expect("a FlowSchema for everything else");
    let precedence = |s: &Value| s["spec"]["matchingPrecedence"].as_i64().unwrap();
    assert!(
        precedence(lease) < precedence(rest),
        "the Lease schema must match first"
    );
    assert!(
        precedence(rest) < 9000,
        "ahead of the built-in service-accounts schema"
    );
    let account = only(&objects, "ServiceAccount")["metadata"]["name"].clone();
    for schema in [lease, rest] {
        let subject = &schema["spec"]["rules"][0]["subjects"][0];
        assert_eq!(subject["kind"], "ServiceAccount");
        assert_eq!(subject["serviceAccount"]["name"], account);
        assert_eq!(subject["serviceAccount"]["namespace"], RELEASE_NAMESPACE);
    }
    let rule = &lease["spec"]["rules"][0]["resourceRules"][0];
    assert_eq!(rule["apiGroups"], json!(["coordination.k8s.io"]));
    assert_eq!(rule["resources"], json!(["leases"]));
    assert_eq!(rule["namespaces"], json!([RELEASE_NAMESPACE]));
}

#[test]
fn kube_api_concurrency_reaches_the_operator_apart_from_concurrency() {
    let (_, run) = parse_run_args(&render(&[
        "--set",
        "operator.concurrency=128,operator.kubeApiConcurrency=32",
    ]));
    assert_eq!(run.concurrency, 128);
    assert_eq!(run.kube_api_concurrency, 32);
    let (_, defaults) = parse_run_args(&render(&[]));
    assert_eq!(
        defaults.kube_api_concurrency,
        clear_operator::kube_client::DEFAULT_API_CONCURRENCY
    );
}

#[test]
fn the_highest_concurrency_the_schema_allows_parses_with_the_operators_command_line() {
    let (_, run) = parse_run_args(&render(&["--set", "operator.concurrency=1024"]));
    assert_eq!(run.concurrency, 1024);
}

#[test]
fn extra_base_urls_add_to_the_documented_hosts_unless_only_they_are_asked_for() {
    let (_, run) = parse_run_args(&render(&[
        "--set",
        "operator.allowedBaseUrls={https://proxy.internal/clear}",
    ]));
    assert!(!run.clear.no_documented_base_urls, "added by default");
    assert_eq!(run.clear.allowed_base_urls.len(), 1);
    let (_, run) = parse_run_args(&render(&[
        "--set",
        "operator.allowedBaseUrls={https://proxy.internal/clear}",
        "--set",
        "operator.onlyAllowedBaseUrls=true",
    ]));
    assert!(run.clear.no_documented_base_urls);
}

#[test]
fn standby_becomes_the_flag_and_is_off_by_default() {
    let (_, run) = parse_run_args(&render(&[]));
    assert!(!run.standby);
    let (_, run) = parse_run_args(&render(&["--set", "operator.standby=true"]));
    assert!(run.standby, "operator.standby=true passes --standby");
}

#[test]
fn every_optional_argument_parses_with_the_operators_command_line() {
    let mut extra = vec![
        "--set",
        "watchNamespaces={team-a,team-b}",
        "--set",
        "operator.logFormat=text",
    ];
    extra.extend_from_slice(EVERYTHING_ON);
    let (log_format, run) = parse_run_args(&render(&extra));
    assert_eq!(log_format, clear_operator::telemetry::LogFormat::Text);
    assert_eq!(run.namespaces, vec!["team-a", "team-b"]);
    assert_eq!(run.mint_budget, 120);
    assert!(run.clear.allow_http);
    assert_eq!(
        run.clear.ca_bundle,
        Some(PathBuf::from("/etc/clear-operator/ca/bundle.pem"))
    );
}

/// Every built-in object the chart renders, read into the Kubernetes API types and written
/// back: a misspelt field is dropped on the way (and so differs), a wrong type fails to read.
fn assert_round_trips_through_the_api_types(objects: &[Value]) {
    use k8s_openapi::api::{
        apps::v1::Deployment,
        core::v1::{Service, ServiceAccount},
        flowcontrol::v1::{FlowSchema, PriorityLevelConfiguration},
        networking::v1::NetworkPolicy,
        policy::v1::PodDisruptionBudget,
        rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding},
    };
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;

    fn round_trip<T: serde::de::DeserializeOwned + serde::Serialize>(object: &Value) -> Value {
        let typed: T = serde_json::from_value(object.clone()).unwrap_or_else(|e| {
            panic!(
                "{} does not read as its API type: {e}\n{object}",
                object["kind"]
            )
        });
        serde_json::to_value(typed).unwrap()
    }

    let mut checked = 0;
    for object in objects {
        let back = match object["kind"].as_str().unwrap() {
            "Deployment" => round_trip::<Deployment>(object),
            "Service" => round_trip::<Service>(object),
            "ServiceAccount" => round_trip::<ServiceAccount>(object),
            "NetworkPolicy" => round_trip::<NetworkPolicy>(object),
            "PodDisruptionBudget" => round_trip::<PodDisruptionBudget>(object),
            "FlowSchema" => round_trip::<FlowSchema>(object),
            "PriorityLevelConfiguration" => round_trip::<PriorityLevelConfiguration>(object),
            "ClusterRole" => round_trip::<ClusterRole>(object),
            "ClusterRoleBinding" => round_trip::<ClusterRoleBinding>(object),
            "Role" => round_trip::<Role>(object),
            "RoleBinding" => round_trip::<RoleBinding>(object),
            "CustomResourceDefinition" => round_trip::<CustomResourceDefinition>(object),
            // Prometheus Operator kinds have no types here; their fields are asserted above.
            "ServiceMonitor" | "PrometheusRule" => continue,
            other => panic!("the chart renders a {other} this test does not know"),
        };
        assert_eq!(
            &back, object,
            "{} has fields its API type does not know",
            object["kind"]
        );
        checked += 1;
    }
    assert!(checked >= 7, "only {checked} objects checked");
}

#[test]
fn default_render_uses_only_fields_the_kubernetes_api_knows() {
    assert_round_trips_through_the_api_types(&render(&[]));
}

#[test]
fn full_render_uses_only_fields_the_kubernetes_api_knows() {
    let mut extra = vec!["--set", "watchNamespaces={team-a,team-b}"];
    extra.extend_from_slice(EVERYTHING_ON);
    assert_round_trips_through_the_api_types(&render(&extra));
}

#[test]
fn allowed_base_urls_become_one_flag_each_and_parse_as_base_urls() {
    let none = render(&[]);
    assert!(flag_values(&args(&none), "--allowed-base-url").is_empty());
    let (_, run) = parse_run_args(&none);
    assert!(
        run.clear.allowed_base_urls.is_empty(),
        "no flag: the binary's default (Clear's documented hosts) applies"
    );

    let objects = render(&[
        "--set",
        "operator.allowedBaseUrls={https://api.clear.in,https://clear-proxy.internal:8443/clear}",
    ]);
    assert_eq!(
        flag_values(&args(&objects), "--allowed-base-url"),
        vec![
            "https://api.clear.in",
            "https://clear-proxy.internal:8443/clear"
        ]
    );
    let (_, run) = parse_run_args(&objects);
    let parsed: Vec<&str> = run
        .clear
        .allowed_base_urls
        .iter()
        .map(|u| u.as_str())
        .collect();
    assert_eq!(
        parsed,
        vec![
            "https://api.clear.in",
            "https://clear-proxy.internal:8443/clear"
        ]
    );
}

#[test]
fn an_allowed_base_url_that_is_not_a_url_is_refused_by_the_schema() {
    let mut args = vec!["template", RELEASE, CHART, "--namespace", RELEASE_NAMESPACE];
    args.extend_from_slice(&["--set", "operator.allowedBaseUrls={api.clear.in}"]);
    let output = helm(&args);
    assert!(
        !output.status.success(),
        "a host without a scheme was accepted"
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("allowedBaseUrls"), "{stderr}");
}

#[test]
fn the_placeholder_image_repository_is_refused_with_the_fix_in_the_message() {
    let output = helm(&["template", RELEASE, CHART, "--namespace", RELEASE_NAMESPACE]);
    assert!(
        !output.status.success(),
        "the placeholder image was accepted"
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("image.repository") && stderr.contains("Dockerfile"),
        "{stderr}"
    );
    let values = std::fs::read_to_string(repo_root().join(CHART).join("values.yaml")).unwrap();
    assert!(values.contains("repository: CHANGE-ME/clear-operator"));
}

#[test]
fn service_account_create_false_without_a_name_is_refused() {
    let stderr = render_error(&["--set", "serviceAccount.create=false"]);
    assert!(
        stderr.contains("serviceAccount.name") && stderr.contains("default ServiceAccount"),
        "{stderr}"
    );

    let objects = render(&[
        "--set",
        "serviceAccount.create=false,serviceAccount.name=platform-operator",
    ]);
    assert!(of_kind(&objects, "ServiceAccount").is_empty());
    assert_eq!(
        only(&objects, "Deployment")["spec"]["template"]["spec"]["serviceAccountName"],
        "platform-operator"
    );
    // Both bindings (the operator's rules and the secure metrics' reviews) name it.
    let bindings = of_kind(&objects, "ClusterRoleBinding");
    assert_eq!(bindings.len(), 2);
    for binding in bindings {
        assert_eq!(binding["subjects"][0]["name"], "platform-operator");
    }
}

#[test]
fn a_disruption_budget_that_would_block_every_drain_is_refused() {
    for (replicas, budget) in [
        ("1", "podDisruptionBudget.minAvailable=1"),
        ("2", "podDisruptionBudget.minAvailable=2"),
        ("2", "podDisruptionBudget.minAvailable=100%"),
        ("3", "podDisruptionBudget.minAvailable=67%"),
        ("2", "podDisruptionBudget.maxUnavailable=0"),
        ("2", "podDisruptionBudget.maxUnavailable=0%"),
    ] {
        let replica_count = format!("replicaCount={replicas}");
        let stderr = render_error(&[
            "--set",
            &replica_count,
            "--set",
            "podDisruptionBudget.enabled=true",
            "--set",
            budget,
        ]);
        assert!(
            stderr.contains("drain") && stderr.contains("podDisruptionBudget"),
            "{replicas} replicas, {budget}: {stderr}"
        );
    }
}

#[test]
fn a_disruption_budget_that_lets_one_pod_go_is_accepted() {
    for (replicas, budget, field, value) in [
        (
            "1",
            "podDisruptionBudget.maxUnavailable=1",
            "maxUnavailable",
            json!(1),
        ),
        (
            "2",
            "podDisruptionBudget.minAvailable=1",
            "minAvailable",
            json!(1),
        ),
        (
            "3",
            "podDisruptionBudget.minAvailable=50%",
            "minAvailable",
            json!("50%"),
        ),
    ] {
        let replica_count = format!("replicaCount={replicas}");
        let objects = render(&[
            "--set",
            &replica_count,
            "--set",
            "podDisruptionBudget.enabled=true",
            "--set",
            budget,
        ]);
        let pdb = only(&objects, "PodDisruptionBudget");
        assert_eq!(pdb["spec"][field], value, "{replicas} replicas, {budget}");
    }
}

#[test]
fn several_replicas_spread_softly_across_nodes_by_default() {
    let pod_spec =
        |objects: &[Value]| only(objects, "Deployment")["spec"]["template"]["spec"].clone();

    let single = pod_spec(&render(&[]));
    assert!(single["topologySpreadConstraints"].is_null());

    let spread = pod_spec(&render(&["--set", "replicaCount=2"]));
    assert_eq!(
        spread["topologySpreadConstraints"],
        json!([{
            "maxSkew": 1,
            "topologyKey": "kubernetes.io/hostname",
            "whenUnsatisfiable": "ScheduleAnyway",
            "labelSelector": {"matchLabels": {
                "app.kubernetes.io/name": "clear-operator",
                "app.kubernetes.io/instance": RELEASE,
            }},
            "matchLabelKeys": ["pod-template-hash"],
        }])
    );

    let own = pod_spec(&render(&[
        "--set",
        "replicaCount=2",
        "--set",
        "topologySpreadConstraints[0].maxSkew=1,topologySpreadConstraints[0].topologyKey=topology.kubernetes.io/zone,topologySpreadConstraints[0].whenUnsatisfiable=DoNotSchedule",
    ]));
    assert_eq!(
        own["topologySpreadConstraints"][0]["topologyKey"],
        "topology.kubernetes.io/zone"
    );
    assert_eq!(
        own["topologySpreadConstraints"].as_array().unwrap().len(),
        1
    );

    let off = pod_spec(&render(&[
        "--set",
        "replicaCount=2,spreadAcrossNodes=false",
    ]));
    assert!(off["topologySpreadConstraints"].is_null());
}

/// The oldest Kubernetes minor the chart accepts, from Chart.yaml's `kubeVersion`.
fn chart_minimum_minor() -> u32 {
    let chart: Value = serde_yaml::from_str(
        &std::fs::read_to_string(repo_root().join(CHART).join("Chart.yaml")).unwrap(),
    )
    .unwrap();
    let constraint = chart["kubeVersion"]
        .as_str()
        .expect("Chart.yaml has kubeVersion");
    let version = constraint
        .strip_prefix(">=")
        .and_then(|v| v.strip_suffix("-0"))
        .unwrap_or_else(|| panic!("kubeVersion {constraint} is not of the form >=1.N.0-0"));
    version.split('.').nth(1).unwrap().parse().unwrap()
}

#[test]
fn kube_version_covers_what_the_crd_uses() {
    let crd: Value = serde_yaml::from_str(&clear_operator::resource::crd_yaml()).unwrap();
    let text = crd.to_string();
    // NB: `reason` and `fieldPath` in x-kubernetes-validations are accepted from 1.28 on.
    let needs = if text.contains("\"fieldPath\"") || text.contains("\"reason\":\"Field") {
        28
    } else {
        25
    };
    assert!(
        chart_minimum_minor() >= needs,
        "the CRD needs Kubernetes 1.{needs}, Chart.yaml allows 1.{}",
        chart_minimum_minor()
    );
    let too_old = format!("1.{}.0", chart_minimum_minor() - 1);
    let stderr = render_error(&["--kube-version", &too_old]);
    assert!(stderr.contains("kubeVersion"), "{stderr}");
    let oldest = format!("1.{}.0", chart_minimum_minor());
    assert!(!render(&["--kube-version", &oldest]).is_empty());
}

#[test]
fn every_key_in_the_values_schema_has_a_description() {
    fn walk(node: &Value, path: &str, missing: &mut Vec<String>) {
        if let Some(props) = node["properties"].as_object() {
            for (key, child) in props {
                let here = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                if child["description"].as_str().is_none_or(str::is_empty) {
                    missing.push(here.clone());
                }
                walk(child, &here, missing);
            }
        }
    }
    let schema: Value = serde_json::from_str(
        &std::fs::read_to_string(repo_root().join(CHART).join("values.schema.json")).unwrap(),
    )
    .unwrap();
    let mut missing = Vec::new();
    walk(&schema, "", &mut missing);
    assert!(missing.is_empty(), "no description: {missing:?}");
}

#[test]
fn chart_metadata_names_maintainers_keywords_and_license() {
    let chart: Value = serde_yaml::from_str(
        &std::fs::read_to_string(repo_root().join(CHART).join("Chart.yaml")).unwrap(),
    )
    .unwrap();
    assert!(!chart["maintainers"].as_array().unwrap().is_empty());
    assert!(chart["keywords"].as_array().unwrap().len() >= 3);
    assert_eq!(chart["annotations"]["artifacthub.io/license"], "Apache-2.0");
    let example: Value = serde_yaml::from_str(
        chart["annotations"]["artifacthub.io/crdsExamples"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    let spec = &example[0]["spec"];
    let parsed: Result<clear_operator::resource::ClearApiClientSpec, _> =
        serde_json::from_value(spec.clone());
    assert!(
        parsed.is_ok(),
        "the example spec does not parse: {parsed:?}"
    );
}

/// Every metric name the operator exports, as Prometheus sees it (suffixes included), with
/// one sample in each family so that labelled families are printed too.
fn exported_metric_names() -> BTreeSet<String> {
    use clear_operator::metrics::{Metrics, render};
    let mut registry = prometheus_client::registry::Registry::default();
    let metrics = Metrics::register(&mut registry);
    metrics.observe_clear_call("issued", std::time::Duration::from_millis(80));
    metrics.set_token_expiry("team-a", "gst", Some(jiff::Timestamp::UNIX_EPOCH));
    metrics.set_token_expiry("team-a", "forever", None);
    metrics.set_ready("team-a", "gst", true);
    metrics.observe_reconcile("ok", std::time::Duration::from_millis(3));
    metrics.set_leader(true);
    metrics.record_rotation(
        "team-a",
        "gst",
        clear_operator::reason::Reason::Renewed,
        jiff::Timestamp::UNIX_EPOCH,
    );
    metrics.observe_event("RateLimited", "Warning");
    metrics.set_clear_circuit_open("https://api.clear.in/", false);
    metrics.set_client_secret_calls("0a1b2c3d4e5f", 3);
    render(&registry)
        .expect("metrics encode")
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| l.split(['{', ' ']).next().unwrap().to_string())
        .collect()
}

/// `clear_operator_...` identifiers in a PromQL expression.
fn metric_names_in(expr: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = expr;
    while let Some(at) = rest.find("clear_operator_") {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        names.insert(tail[..end].to_string());
        rest = &tail[end..];
    }
    names
}

#[test]
fn grafana_dashboard_is_opt_in_and_picked_up_by_the_sidecar_label() {
    assert!(of_kind(&render(&[]), "ConfigMap").is_empty());
    let objects = render(&["--set", "grafanaDashboard.enabled=true"]);
    let config_map = only(&objects, "ConfigMap");
    assert_eq!(config_map["metadata"]["labels"]["grafana_dashboard"], "1");
    assert_eq!(config_map["metadata"]["namespace"], RELEASE_NAMESPACE);
    let elsewhere = render(&[
        "--set",
        "grafanaDashboard.enabled=true,grafanaDashboard.namespace=monitoring",
    ]);
    assert_eq!(
        only(&elsewhere, "ConfigMap")["metadata"]["namespace"],
        "monitoring"
    );
}

#[test]
fn grafana_dashboard_shows_each_topic_with_metrics_the_operator_exports() {
    let objects = render(&["--set", "grafanaDashboard.enabled=true"]);
    let json = only(&objects, "ConfigMap")["data"]["clear-operator.json"]
        .as_str()
        .expect("the dashboard JSON")
        .to_string();
    let dashboard: Value = serde_json::from_str(&json).expect("the dashboard is valid JSON");
    let exported = exported_metric_names();
    let mut seen = BTreeSet::new();
    let mut titles = Vec::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        if panel["type"] == "row" {
            continue;
        }
        titles.push(panel["title"].as_str().unwrap().to_lowercase());
        let targets = panel["targets"].as_array().expect("a panel has targets");
        assert!(!targets.is_empty(), "{} has no query", panel["title"]);
        for target in targets {
            let expr = target["expr"].as_str().unwrap();
            for name in metric_names_in(expr) {
                assert!(
                    exported.contains(&name),
                    "{}: {name} is not a metric the operator exports ({exported:?})",
                    panel["title"]
                );
                seen.insert(name);
            }
        }
    }
    for topic in [
        "ready",
        "expir",
        "mints by result",
        "budget",
        "latency",
        "rotations",
        "warnings",
        "per client secret today",
    ] {
        assert!(
            titles.iter().any(|t| t.contains(topic)),
            "no panel about {topic}: {titles:?}"
        );
    }
    for needed in [
        "clear_operator_client_ready",
        "clear_operator_token_expiry_timestamp_seconds",
        "clear_operator_mints_total",
        "clear_operator_clear_request_duration_seconds_bucket",
        "clear_operator_token_rotations_total",
        "clear_operator_events_total",
        "clear_operator_client_secret_calls_today",
    ] {
        assert!(seen.contains(needed), "no panel queries {needed}");
    }
}

#[test]
fn prometheus_rule_expressions_use_metrics_the_operator_exports() {
    let objects = render(&["--set", "prometheusRule.enabled=true"]);
    let exported = exported_metric_names();
    let rules = only(&objects, "PrometheusRule")["spec"]["groups"][0]["rules"]
        .as_array()
        .unwrap()
        .clone();
    for rule in rules {
        for name in metric_names_in(rule["expr"].as_str().unwrap()) {
            assert!(exported.contains(&name), "{}: {name}", rule["alert"]);
        }
    }
}

#[test]
fn install_notes_say_where_client_secrets_may_go() {
    let notes_with = |extra: &[&str]| {
        let mut args = vec![
            "install",
            RELEASE,
            CHART,
            "--dry-run=client",
            "--namespace",
            RELEASE_NAMESPACE,
            "--set",
            IMAGE_SET,
        ];
        args.extend_from_slice(extra);
        let text = stdout_of(&helm(&args), "helm install --dry-run=client");
        text.split("NOTES:").nth(1).expect("NOTES").to_string()
    };
    let default = notes_with(&[]);
    assert!(
        default.contains("Client secrets are only sent to Clear's documented hosts"),
        "{default}"
    );
    let proxy = notes_with(&[
        "--set",
        "operator.allowedBaseUrls={https://clear-proxy.internal}",
    ]);
    assert!(
        proxy.contains(
            "Client secrets are only sent to Clear's documented hosts and https://clear-proxy.internal"
        ),
        "{proxy}"
    );
    let only = notes_with(&[
        "--set",
        "operator.allowedBaseUrls={https://clear-proxy.internal}",
        "--set",
        "operator.onlyAllowedBaseUrls=true",
    ]);
    assert!(
        only.contains("Client secrets are only sent to https://clear-proxy.internal"),
        "{only}"
    );
}

/// The ingress rule of the default NetworkPolicy: the metrics port, from the `monitoring`
/// namespace only.
fn default_metrics_ingress() -> Value {
    json!([{
        "ports": [{"port": "metrics", "protocol": "TCP"}],
        "from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}],
    }])
}

#[test]
fn network_policy_is_on_by_default_and_opens_metrics_to_the_monitoring_namespace_only() {
    let objects = render(&[]);
    let policy = &only(&objects, "NetworkPolicy")["spec"];
    assert_eq!(
        policy["podSelector"]["matchLabels"],
        only(&objects, "Deployment")["spec"]["selector"]["matchLabels"],
        "the policy covers the operator pods"
    );
    // NB: a NetworkPolicy selecting a pod denies all ingress not allowed by some rule.
    assert_eq!(policy["ingress"], default_metrics_ingress());
    assert_eq!(
        container(&objects)["ports"][0]["name"],
        "metrics",
        "the port the policy opens is the container's only port"
    );
    assert_eq!(
        policy["policyTypes"],
        json!(["Ingress"]),
        "egress is restricted only on request"
    );
    assert!(policy.get("egress").is_none(), "{policy}");

    let prometheus = json!([{
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "observability"}},
        "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}},
    }]);
    let set = format!("networkPolicy.metrics.from={prometheus}");
    let objects = render(&["--set-json", &set]);
    assert_eq!(
        only(&objects, "NetworkPolicy")["spec"]["ingress"][0]["from"],
        prometheus
    );

    assert!(
        of_kind(
            &render(&["--set", "networkPolicy.enabled=false"]),
            "NetworkPolicy"
        )
        .is_empty()
    );
}

/// (`--clear-timeout-secs`, `--shutdown-grace-secs`, `terminationGracePeriodSeconds`) as
/// rendered, the flags read back through the operator's own command line.
fn shutdown_timeouts(extra: &[&str]) -> (u64, u64, i64) {
    let objects = render(extra);
    let (_, run) = parse_run_args(&objects);
    let period =
        only(&objects, "Deployment")["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
            .as_i64()
            .expect("the chart sets terminationGracePeriodSeconds");
    (
        run.clear.clear_timeout_secs,
        run.shutdown_grace_secs,
        period,
    )
}

#[test]
fn shutdown_timeouts_are_derived_from_the_clear_timeout_unless_set() {
    // The defaults are the binary's own (20 s, 25 s) inside Kubernetes' usual 30 s.
    use clap::Parser;
    let binary = clear_operator::cli::Cli::try_parse_from(["clear-operator", "run"]).unwrap();
    let clear_operator::cli::Command::Run(defaults) = binary.command else {
        unreachable!()
    };
    assert_eq!(
        shutdown_timeouts(&[]),
        (
            defaults.clear.clear_timeout_secs,
            defaults.shutdown_grace_secs,
            30
        )
    );
    assert_eq!(
        shutdown_timeouts(&["--set", "operator.clearTimeoutSeconds=60"]),
        (60, 65, 70)
    );
    assert_eq!(
        shutdown_timeouts(&["--set", "operator.shutdownGraceSeconds=40"]),
        (20, 40, 45)
    );
    assert_eq!(
        shutdown_timeouts(&[
            "--set",
            "operator.clearTimeoutSeconds=10,operator.shutdownGraceSeconds=15",
            "--set",
            "terminationGracePeriodSeconds=120",
        ]),
        (10, 15, 120)
    );
}

#[test]
fn timeouts_that_would_cut_a_call_to_clear_short_are_refused_with_the_fix() {
    // A grace that does not cover a call and the writes after it: SIGTERM drops the call.
    let error = render_error(&["--set", "operator.shutdownGraceSeconds=24"]);
    assert!(
        error.contains(
            "operator.shutdownGraceSeconds=24 is shorter than operator.clearTimeoutSeconds=20"
        ) && error.contains("at least 25"),
        "{error}"
    );
    let error = render_error(&[
        "--set",
        "operator.clearTimeoutSeconds=40,operator.shutdownGraceSeconds=25",
    ]);
    assert!(error.contains("at least 45"), "{error}");
    // A termination grace period that does not cover the grace and the Lease's release:
    // the kubelet's SIGKILL lands mid-call.
    for (sets, at_least) in [
        (vec!["--set", "terminationGracePeriodSeconds=29"], 30),
        (vec!["--set", "terminationGracePeriodSeconds=0"], 30),
        (
            vec![
                "--set",
                "operator.clearTimeoutSeconds=60",
                "--set",
                "terminationGracePeriodSeconds=30",
            ],
            70,
        ),
    ] {
        let error = render_error(&sets);
        assert!(
            error.contains("SIGKILL") && error.contains(&format!("at least {at_least}")),
            "{sets:?}: {error}"
        );
    }
    // `helm install` stops before anything reaches a cluster, too.
    let output = helm(&[
        "install",
        RELEASE,
        CHART,
        "--dry-run=client",
        "--set",
        IMAGE_SET,
        "--set",
        "terminationGracePeriodSeconds=10",
    ]);
    assert!(!output.status.success());
}

/// The NOTES `helm install` prints, with `extra` values.
fn install_notes(extra: &[&str]) -> String {
    let mut args = vec![
        "install",
        RELEASE,
        CHART,
        "--dry-run=client",
        "--namespace",
        RELEASE_NAMESPACE,
        "--set",
        IMAGE_SET,
    ];
    args.extend_from_slice(extra);
    let text = stdout_of(&helm(&args), "helm install --dry-run=client");
    text.split("NOTES:").nth(1).expect("NOTES").to_string()
}

#[test]
fn install_notes_say_what_metrics_expose_and_who_may_read_them() {
    let exposure =
        "names every ClearApiClient (namespace and name labels) and has no authentication";
    let default = install_notes(&[]);
    assert!(!default.contains(exposure), "{default}");
    assert!(
        default.contains(&format!(
            "only ServiceAccounts bound to the ClusterRole {FULLNAME}-metrics-reader may read it"
        )),
        "{default}"
    );
    let plain = install_notes(&["--set", "metrics.secure.enabled=false"]);
    assert!(plain.contains(exposure), "{plain}");
    assert!(
        default.contains("only the peers in networkPolicy.metrics.from reach it"),
        "{default}"
    );
    assert!(!default.contains("WARNING"), "{default}");
    let open = install_notes(&["--set", "networkPolicy.enabled=false"]);
    assert!(
        open.contains(
            "WARNING: networkPolicy.enabled is false: every pod in the cluster may read it"
        ),
        "{open}"
    );
    let open = install_notes(&["--set-json", "networkPolicy.metrics.from=[]"]);
    assert!(
        open.contains("WARNING: networkPolicy.metrics.from is empty"),
        "{open}"
    );
}

/// The command that removes the revoke-on-delete finalizer once no operator runs; the
/// real-cluster suite runs this very file (tests/real_cluster/finalizers.rs).
fn finalizer_removal_command() -> String {
    std::fs::read_to_string(
        repo_root()
            .join(CHART)
            .join("files/remove-revoke-finalizers.sh"),
    )
    .expect("the finalizer removal command")
}

#[test]
fn the_finalizer_removal_command_names_the_operators_finalizer() {
    let command = finalizer_removal_command();
    let finalizer = clear_operator::resource::REVOKE_FINALIZER;
    assert_eq!(
        command.matches(finalizer).count(),
        2,
        "the command selects {finalizer}, then tests that the position it removes holds it:\n{command}"
    );
    assert!(
        !command.contains(r#"/metadata/finalizers\""#) && command.contains(r#"\"op\":\"test\""#),
        "only that finalizer goes, never the whole list (another controller's stays):\n{command}"
    );
}

#[test]
fn install_notes_and_both_readmes_carry_the_finalizer_removal_command_as_tested() {
    let command = finalizer_removal_command();
    let notes = install_notes(&[]);
    let indented: String = command
        .trim_end()
        .lines()
        .map(|l| format!("  {l}\n"))
        .collect();
    assert!(
        notes.contains(&indented),
        "NOTES lack the command (indented by two spaces):\n{notes}"
    );
    assert!(
        notes.contains("clear-operator.io/revoke-on-delete")
            && notes.contains("Before uninstalling"),
        "{notes}"
    );
    for readme in ["README.md", "charts/clear-operator/README.md"] {
        let text = std::fs::read_to_string(repo_root().join(readme)).unwrap();
        assert!(
            text.contains(&format!("```sh\n{command}```\n")),
            "{readme} lacks the tested command, verbatim in a sh block:\n{command}"
        );
    }
}

#[test]
fn extra_args_that_repeat_a_flag_the_chart_passes_are_refused() {
    // The binary refuses a flag given twice and would not start (a crash loop, e.g. after
    // an upgrade that began passing --shutdown-grace-secs itself).
    for (extra, value) in [
        (
            r#"operator.extraArgs=["--shutdown-grace-secs","60"]"#,
            "operator.shutdownGraceSeconds",
        ),
        (
            r#"operator.extraArgs=["--clear-timeout-secs=30"]"#,
            "operator.clearTimeoutSeconds",
        ),
        (
            r#"operator.extraArgs=["--mint-budget","10"]"#,
            "operator.mintBudget",
        ),
    ] {
        let error = render_error(&["--set-json", extra]);
        assert!(
            error.contains("which the chart already sets")
                && error.contains(&format!("Set {value} instead")),
            "{extra}: {error}"
        );
    }
    // Flags the chart does not pass still go through, and parse.
    let objects = render(&[
        "--set-json",
        r#"operator.extraArgs=["--reconcile-stall-secs","600"]"#,
    ]);
    assert_eq!(parse_run_args(&objects).1.reconcile_stall_secs, 600);
}
