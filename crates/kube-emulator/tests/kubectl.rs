//! The real kubectl against the emulator (or, with KUBE_EMULATOR_CONFORMANCE_KUBECONFIG, a
//! real server): apply (client- and server-side), get, describe, label, annotate, delete,
//! get -w, wait, api-resources, explain, and schema/CEL rejections of custom resources,
//! each asserting what kubectl prints. kubectl is `KUBECTL`, else the repository's
//! `.tools/bin/kubectl` (scripts/install-tools.sh), else `kubectl` on PATH; none → failure.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::process::Command;

mod common;
use common::{Cluster, kubectl};

const CRD_YAML: &str = include_str!("fixtures/clearapiclient-crd.yaml");

struct Out {
    ok: bool,
    stdout: String,
    stderr: String,
}

/// kubectl against the test's cluster: its kubeconfig (namespace: the test's), its own
/// cache directory and HOME.
trait Kubectl {
    fn command(&self, args: &[&str]) -> Command;
    async fn run(&self, args: &[&str]) -> Out;
    async fn ok(&self, args: &[&str]) -> String;
    async fn fails(&self, args: &[&str]) -> String;
    fn write(&self, name: &str, content: &str) -> String;
    /// Registers the fixture CRD (in the test's group) and waits until it is Established.
    async fn apply_crd(&self);
}

impl Kubectl for Cluster {
    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(kubectl());
        cmd.args(args)
            .arg(format!("--cache-dir={}", self.dir.join("cache").display()))
            .env("KUBECONFIG", &self.kubeconfig)
            .env("HOME", &self.dir)
            .stdin(Stdio::null())
            .kill_on_drop(true);
        cmd
    }

    async fn run(&self, args: &[&str]) -> Out {
        let out = tokio::time::timeout(Duration::from_secs(60), self.command(args).output())
            .await
            .expect("kubectl finished in time")
            .expect("kubectl runs");
        Out {
            ok: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    async fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args).await;
        assert!(
            out.ok,
            "kubectl {args:?} failed:\n{}\n{}",
            out.stdout, out.stderr
        );
        out.stdout
    }

    async fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args).await;
        assert!(!out.ok, "kubectl {args:?} should fail:\n{}", out.stdout);
        out.stderr
    }

    fn write(&self, name: &str, content: &str) -> String {
        let p = self.dir.join(name);
        std::fs::write(&p, content).unwrap();
        p.display().to_string()
    }

    async fn apply_crd(&self) {
        let crd = self.crd(CRD_YAML);
        let f = self.write("crd.yaml", &self.sub(CRD_YAML));
        self.ok(&["apply", "-f", &f]).await;
        self.ok(&[
            "wait",
            "--for=condition=Established",
            &format!("crd/{}", crd.metadata.name.unwrap()),
            "--timeout=60s",
        ])
        .await;
    }
}

const SECRET_AND_CM: &str = "apiVersion: v1
kind: Secret
metadata:
  name: s1
  labels: {app: demo}
stringData:
  token: abc
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: c1
data:
  k: v
";

const VALID_CR: &str = "apiVersion: clear-operator.io/v1alpha1
kind: ClearApiClient
metadata:
  name: demo
spec:
  environment: sandbox
  workspace: ws-1
  products: [GST, E_INVOICE]
";

/// How a test names the fixture's custom resource to kubectl: as given (a short, singular
/// or plural name) on the emulator; fully qualified on a real server, where other tests'
/// CRDs of the same kind in other groups exist at the same time and kubectl would pick
/// the first group for an unqualified name.
fn cr_arg(c: &Cluster, name: &str) -> String {
    if c.is_real() {
        format!("clearapiclients.{}", c.group)
    } else {
        name.to_string()
    }
}

async fn rv_of(c: &Cluster, resource: &str, name: &str) -> String {
    c.object(resource, name).await.unwrap()["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn client_side_apply_twice_reports_unchanged_and_keeps_resource_version() {
    let c = Cluster::start().await;
    let cm = c.write(
        "cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c1\ndata:\n  k: v\n",
    );
    assert_eq!(
        c.ok(&["apply", "-f", &cm]).await.trim(),
        "configmap/c1 created"
    );
    let rv = rv_of(&c, "configmaps", "c1").await;
    assert_eq!(
        c.ok(&["apply", "-f", &cm]).await.trim(),
        "configmap/c1 unchanged"
    );
    assert_eq!(rv_of(&c, "configmaps", "c1").await, rv);
    let changed = c.write(
        "cm2.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c1\ndata:\n  k: w\n",
    );
    assert_eq!(
        c.ok(&["apply", "-f", &changed]).await.trim(),
        "configmap/c1 configured"
    );
    assert_ne!(rv_of(&c, "configmaps", "c1").await, rv);
    c.stop().await;
}

#[tokio::test]
async fn server_side_apply_twice_keeps_resource_version() {
    let c = Cluster::start().await;
    let f = c.write("objs.yaml", SECRET_AND_CM);
    let out = c.ok(&["apply", "--server-side", "-f", &f]).await;
    assert!(out.contains("secret/s1 serverside-applied"), "{out}");
    assert!(out.contains("configmap/c1 serverside-applied"), "{out}");
    let rv = rv_of(&c, "secrets", "s1").await;
    c.ok(&["apply", "--server-side", "-f", &f]).await;
    assert_eq!(
        rv_of(&c, "secrets", "s1").await,
        rv,
        "a second identical apply writes nothing"
    );
    let secret = c.object("secrets", "s1").await.unwrap();
    assert_eq!(secret["data"]["token"], "YWJj");
    let managers: Vec<&str> = secret["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["manager"].as_str().unwrap())
        .collect();
    assert!(managers.contains(&"kubectl"), "{managers:?}");
    c.stop().await;
}

#[tokio::test]
async fn get_describe_label_annotate_and_delete_work_on_builtins() {
    let c = Cluster::start().await;
    let f = c.write("objs.yaml", SECRET_AND_CM);
    c.ok(&["apply", "-f", &f]).await;
    let table = c.ok(&["get", "secrets"]).await;
    let mut lines = table.lines();
    assert_eq!(
        lines.next().unwrap().split_whitespace().collect::<Vec<_>>(),
        ["NAME", "TYPE", "DATA", "AGE"]
    );
    let row: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(&row[..3], ["s1", "Opaque", "1"]);

    let yaml = c.ok(&["get", "secret", "s1", "-o", "yaml"]).await;
    assert!(yaml.contains("token: YWJj"), "{yaml}");
    assert!(yaml.contains("app: demo"), "{yaml}");

    let described = c.ok(&["describe", "secret", "s1"]).await;
    assert!(described.contains("Name:         s1"), "{described}");
    assert!(described.contains("token:  3 bytes"), "{described}");

    assert_eq!(
        c.ok(&["label", "secret", "s1", "tier=backend"])
            .await
            .trim(),
        "secret/s1 labeled"
    );
    assert_eq!(
        c.ok(&["annotate", "secret", "s1", "note=one"]).await.trim(),
        "secret/s1 annotated"
    );
    let err = c.fails(&["annotate", "secret", "s1", "note=two"]).await;
    assert!(err.contains("already has a value (one)"), "{err}");
    c.ok(&["annotate", "--overwrite", "secret", "s1", "note=two"])
        .await;
    let s = c.object("secrets", "s1").await.unwrap();
    assert_eq!(s["metadata"]["labels"]["tier"], "backend");
    assert_eq!(s["metadata"]["annotations"]["note"], "two");
    let selected = c
        .ok(&["get", "secrets", "-l", "tier=backend", "-o", "name"])
        .await;
    assert_eq!(selected.trim(), "secret/s1");

    // kubectl 1.35 names a namespace other than "default"; 1.32 does not
    let deleted = c.ok(&["delete", "secret", "s1"]).await;
    assert!(
        [
            "secret \"s1\" deleted".to_string(),
            format!("secret \"s1\" deleted from {} namespace", c.ns)
        ]
        .contains(&deleted.trim().to_string()),
        "{deleted}"
    );
    let err = c.fails(&["get", "secret", "s1"]).await;
    assert!(
        err.contains("Error from server (NotFound): secrets \"s1\" not found"),
        "{err}"
    );
    c.stop().await;
}

#[tokio::test]
async fn get_watch_prints_each_change() {
    let c = Cluster::start().await;
    let f = c.write(
        "cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: w1\ndata:\n  k: v\n",
    );
    c.ok(&["apply", "-f", &f]).await;
    let mut child = c
        .command(&["get", "configmaps", "-w", "--output-watch-events"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    // Wait for the initial listing before changing anything.
    let mut seen = String::new();
    let mut buf = [0u8; 4096];
    while !seen.contains("w1") {
        let n = tokio::time::timeout(Duration::from_secs(10), stdout.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0, "kubectl get -w ended early: {seen}");
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    c.ok(&["label", "configmap", "w1", "x=y"]).await;
    c.ok(&["delete", "configmap", "w1"]).await;
    while !seen.contains("DELETED") {
        let n = tokio::time::timeout(Duration::from_secs(10), stdout.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0, "kubectl get -w ended early: {seen}");
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    child.kill().await.unwrap();
    let events: Vec<&str> = seen
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|w| ["ADDED", "MODIFIED", "DELETED"].contains(w))
        .collect();
    assert_eq!(events, ["ADDED", "MODIFIED", "DELETED"], "{seen}");
    c.stop().await;
}

#[tokio::test]
async fn custom_resources_get_printer_columns_wait_and_explain() {
    let c = Cluster::start().await;
    c.apply_crd().await;
    let cr = c.write("cr.yaml", &c.sub(VALID_CR));
    assert_eq!(
        c.ok(&["apply", "-f", &cr]).await.trim(),
        c.sub("clearapiclient.clear-operator.io/demo created")
    );
    assert_eq!(
        c.ok(&["apply", "-f", &cr]).await.trim(),
        c.sub("clearapiclient.clear-operator.io/demo unchanged")
    );
    let cac = cr_arg(&c, "cac");
    let table = c.ok(&["get", &cac]).await;
    let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["NAME", "READY", "ENVIRONMENT", "WORKSPACE", "AGE"]);

    let mut waiter = c
        .command(&[
            "wait",
            "--for=condition=Ready",
            &format!("{}/demo", cr_arg(&c, "clearapiclient")),
            "--timeout=20s",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    c.ok(&[
        "patch",
        &cr_arg(&c, "clearapiclient"),
        "demo",
        "--subresource=status",
        "--type=merge",
        "-p",
        r#"{"status":{"conditions":[{"type":"Ready","status":"True","reason":"Issued"}]}}"#,
    ])
    .await;
    let mut out = String::new();
    waiter
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .await
        .unwrap();
    assert!(waiter.wait().await.unwrap().success());
    assert_eq!(
        out.trim(),
        c.sub("clearapiclient.clear-operator.io/demo condition met")
    );
    let row = c.ok(&["get", &cac, "demo", "--no-headers"]).await;
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(&cells[..4], ["demo", "True", "sandbox", "ws-1"]);

    let api_version = format!("--api-version={}/v1alpha1", c.group);
    let explained = c
        .ok(&["explain", "clearapiclients.spec", &api_version])
        .await;
    assert!(
        explained.contains("What token to keep and where."),
        "{explained}"
    );
    assert!(
        explained.contains("environment\t<string> -required-"),
        "{explained}"
    );

    let mut deleter = c
        .command(&[
            "wait",
            "--for=delete",
            &format!("{}/demo", cr_arg(&c, "clearapiclient")),
            "--timeout=20s",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    c.ok(&[
        "delete",
        &cr_arg(&c, "clearapiclient"),
        "demo",
        "--wait=false",
    ])
    .await;
    let mut out = String::new();
    deleter
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .await
        .unwrap();
    assert!(deleter.wait().await.unwrap().success());
    assert_eq!(
        out.trim(),
        c.sub("clearapiclient.clear-operator.io/demo condition met")
    );
    c.stop().await;
}

#[tokio::test]
async fn invalid_custom_resources_are_rejected_with_schema_and_cel_messages() {
    let c = Cluster::start().await;
    c.apply_crd().await;
    let cel = c.write(
        "cel.yaml",
        &c.sub("apiVersion: clear-operator.io/v1alpha1\nkind: ClearApiClient\nmetadata:\n  name: bad\nspec:\n  environment: sandbox\n  workspace: ws\n  region: eu\n  products: [GST]\n"),
    );
    let err = c.fails(&["apply", "-f", &cel]).await;
    assert_eq!(
        err.trim(),
        "The ClearApiClient \"bad\" is invalid: spec: Invalid value: baseUrl is required outside the india region"
    );
    let schema = c.write(
        "schema.yaml",
        &c.sub("apiVersion: clear-operator.io/v1alpha1\nkind: ClearApiClient\nmetadata:\n  name: bad2\nspec:\n  environment: prod\n  products: [GST]\n"),
    );
    for args in [
        vec!["apply", "-f", &schema],
        vec!["apply", "--server-side", "-f", &schema],
        vec!["create", "-f", &schema],
    ] {
        let err = c.fails(&args).await;
        assert!(
            err.contains("The ClearApiClient \"bad2\" is invalid: "),
            "{err}"
        );
        assert!(
            err.contains("* spec.environment: Unsupported value: \"prod\": supported values: \"sandbox\", \"production\""),
            "{err}"
        );
        assert!(err.contains("* spec.workspace: Required value"), "{err}");
    }
    assert!(
        c.objects(&format!("{}/v1alpha1/clearapiclients", c.group))
            .await
            .is_empty()
    );
    c.stop().await;
}

#[tokio::test]
async fn api_resources_lists_builtins_and_registered_crds() {
    let c = Cluster::start().await;
    c.apply_crd().await;
    let out = c.ok(&["api-resources", "--no-headers"]).await;
    let rows: Vec<Vec<&str>> = out
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    let has = |name: &str, api: &str| rows.iter().any(|r| r[0] == name && r.contains(&api));
    for (name, api) in [
        ("secrets", "v1"),
        ("namespaces", "v1"),
        ("deployments", "apps/v1"),
        ("leases", "coordination.k8s.io/v1"),
        ("events", "events.k8s.io/v1"),
        ("customresourcedefinitions", "apiextensions.k8s.io/v1"),
        ("clearapiclients", &c.sub("clear-operator.io/v1alpha1")),
    ] {
        assert!(has(name, api), "{name} {api} missing from:\n{out}");
    }
    c.stop().await;
}

#[tokio::test]
async fn create_generators_send_protobuf_that_the_emulator_decodes() {
    let c = Cluster::start().await;
    let team = c.unique("team");
    c.cleanup_later(&format!("/api/v1/namespaces/{team}"));
    assert_eq!(
        c.ok(&["create", "namespace", &team]).await.trim(),
        format!("namespace/{team} created")
    );
    assert_eq!(
        c.ok(&[
            "create",
            "secret",
            "generic",
            "cs",
            "-n",
            &team,
            "--from-literal=clientSecret=abc"
        ])
        .await
        .trim(),
        "secret/cs created"
    );
    c.ok(&[
        "create",
        "configmap",
        "cm",
        "-n",
        &team,
        "--from-literal=a=b",
    ])
    .await;
    c.ok(&["create", "serviceaccount", "bot", "-n", &team])
        .await;
    let secret = c
        .get_json(&format!("/api/v1/namespaces/{team}/secrets/cs"))
        .await
        .unwrap();
    assert_eq!(secret["data"]["clientSecret"], "YWJj");
    assert_eq!(secret["type"], "Opaque");
    let cm = c
        .get_json(&format!("/api/v1/namespaces/{team}/configmaps/cm"))
        .await
        .unwrap();
    assert_eq!(cm["data"]["a"], "b");
    assert!(
        c.get_json(&format!("/api/v1/namespaces/{team}/serviceaccounts/bot"))
            .await
            .is_some()
    );
    let ns = c
        .get_json(&format!("/api/v1/namespaces/{team}"))
        .await
        .unwrap();
    assert!(ns["metadata"].get("generateName").is_none(), "{ns}");

    // kubectl waits until the namespace is gone (apiserver's namespace controller empties
    // it first)
    assert_eq!(
        c.ok(&["delete", "namespace", &team]).await.trim(),
        format!("namespace \"{team}\" deleted")
    );
    assert!(
        c.get_json(&format!("/api/v1/namespaces/{team}"))
            .await
            .is_none()
    );
    let secrets = c
        .get_json(&format!("/api/v1/namespaces/{team}/secrets"))
        .await
        .unwrap();
    assert_eq!(secrets["items"], serde_json::json!([]));
    c.stop().await;
}

#[tokio::test]
async fn events_from_the_kube_rs_recorder_show_in_get_events_and_describe() {
    use k8s_openapi::api::core::v1::ObjectReference;
    use kube::runtime::events::{Event, EventType, Recorder, Reporter};
    let c = Cluster::start().await;
    c.apply_crd().await;
    let cr = c.write("cr.yaml", &c.sub(VALID_CR));
    c.ok(&["apply", "-f", &cr]).await;
    let stored = c
        .object(&format!("{}/v1alpha1/clearapiclients", c.group), "demo")
        .await
        .unwrap();
    let reference = ObjectReference {
        api_version: Some(c.sub("clear-operator.io/v1alpha1")),
        kind: Some("ClearApiClient".into()),
        name: Some("demo".into()),
        namespace: Some(c.ns.clone()),
        uid: stored["metadata"]["uid"].as_str().map(str::to_string),
        ..ObjectReference::default()
    };
    let reporter = Reporter {
        controller: "clear-operator".into(),
        instance: None,
    };
    let recorder = Recorder::new(c.client.clone(), reporter);
    let ev = Event {
        type_: EventType::Normal,
        reason: "Issued".into(),
        note: Some("token issued, valid till tomorrow".into()),
        action: "Mint".into(),
        secondary: None,
    };
    recorder.publish(&ev, &reference).await.unwrap();

    let events = c.ok(&["get", "events"]).await;
    let header: Vec<&str> = events.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        ["LAST", "SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"]
    );
    assert!(
        events
            .contains("Normal   Issued   clearapiclient/demo   token issued, valid till tomorrow"),
        "{events}"
    );
    let described = c
        .ok(&["describe", &cr_arg(&c, "clearapiclient"), "demo"])
        .await;
    assert!(described.contains("Issued"), "{described}");
    assert!(
        described.contains("token issued, valid till tomorrow"),
        "{described}"
    );
    c.stop().await;
}

#[tokio::test]
async fn get_prints_apiserver_columns_for_workloads_and_services() {
    let c = Cluster::start().await;
    let f = c.write(
        "web.yaml",
        "apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: a, image: nginx, ports: [{containerPort: 80}]}]}
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{port: 80}]
",
    );
    c.ok(&["apply", "-f", &f]).await;
    let out = c.ok(&["get", "deployments,services"]).await;
    let words: Vec<Vec<&str>> = out
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        words[0],
        ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"],
        "{out}"
    );
    assert_eq!(
        &words[1][..4],
        ["deployment.apps/web", "0/1", "0", "0"],
        "{out}"
    );
    assert_eq!(
        words[3],
        [
            "NAME",
            "TYPE",
            "CLUSTER-IP",
            "EXTERNAL-IP",
            "PORT(S)",
            "AGE"
        ],
        "{out}"
    );
    assert_eq!(words[4][1], "ClusterIP", "{out}");
    // the range is the server's configuration (the emulator's is kubeadm's 10.96.0.0/12)
    assert!(words[4][2].parse::<std::net::Ipv4Addr>().is_ok(), "{out}");
    if !c.is_real() {
        assert!(words[4][2].starts_with("10.96."), "{out}");
    }
    assert_eq!(words[4][4], "80/TCP", "{out}");
    c.stop().await;
}

#[tokio::test]
async fn explain_describes_builtin_kinds_from_upstream_schemas() {
    let c = Cluster::start().await;
    let out = c.ok(&["explain", "secret"]).await;
    assert!(out.contains("KIND:       Secret"), "{out}");
    assert!(
        out.contains("Secret holds secret data of a certain type."),
        "{out}"
    );
    assert!(out.contains("stringData\t<map[string]string>"), "{out}");
    let nested = c
        .ok(&["explain", "deployment.spec.template.spec.containers.ports"])
        .await;
    assert!(
        nested.contains("containerPort\t<integer> -required-"),
        "{nested}"
    );
    c.stop().await;
}

#[tokio::test]
async fn scale_sets_replicas_through_the_scale_subresource() {
    let c = Cluster::start().await;
    let f = c.write(
        "web.yaml",
        "apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: a, image: nginx}]}
",
    );
    c.ok(&["apply", "-f", &f]).await;
    assert_eq!(
        c.ok(&["scale", "deployment", "web", "--replicas=3"])
            .await
            .trim(),
        "deployment.apps/web scaled"
    );
    let d = c.object("apps/v1/deployments", "web").await.unwrap();
    assert_eq!(d["spec"]["replicas"], 3);
    assert_eq!(d["metadata"]["generation"], 2);
    if let Some(emu) = &c.emu {
        assert_eq!(emu.requests().count("patch", "deployments/scale"), 1);
    }
    c.stop().await;
}

#[tokio::test]
async fn misspelt_builtin_fields_are_rejected_under_strict_validation_and_dropped_otherwise() {
    let c = Cluster::start().await;
    let f = c.write(
        "typo.yaml",
        "apiVersion: v1
kind: ConfigMap
metadata: {name: typo}
dta: {k: v}
",
    );
    let err = c.fails(&["apply", "-f", &f]).await;
    assert!(
        err.contains("ConfigMap in version \"v1\" cannot be handled as a ConfigMap: strict decoding error: unknown field \"dta\""),
        "{err}"
    );
    c.ok(&["apply", "--validate=false", "-f", &f]).await;
    let stored = c.object("configmaps", "typo").await.unwrap();
    assert!(stored.get("dta").is_none(), "{stored}");
    c.stop().await;
}

#[tokio::test]
async fn auth_can_i_and_whoami_say_everything_is_allowed_for_the_one_user() {
    let c = Cluster::start().await;
    if let Some(emu) = &c.emu {
        emu.requests().reset(); // the test namespace's creation aside
    }
    assert_eq!(
        c.ok(&["auth", "can-i", "delete", "secrets"]).await.trim(),
        "yes"
    );
    let who = c.ok(&["auth", "whoami"]).await;
    match &c.emu {
        // the emulator's one user; reviews are answered, never stored
        Some(emu) => {
            assert!(who.contains("Username    kube-emulator"), "{who}");
            assert!(
                emu.requests()
                    .writes()
                    .iter()
                    .all(|w| w.resource.ends_with("reviews"))
            );
            assert!(
                emu.objects("authorization.k8s.io/selfsubjectaccessreviews", None)
                    .is_empty()
            );
        }
        // the real server names the kubeconfig's (cluster-admin) user
        None => assert!(who.contains("system:masters"), "{who}"),
    }
    c.stop().await;
}

fn deployment_yaml(env: &[(&str, &str)]) -> String {
    let env: String = env
        .iter()
        .map(|(k, v)| format!("        - name: {k}\n          value: \"{v}\"\n"))
        .collect();
    format!(
        "apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  selector:
    matchLabels: {{app: web}}
  template:
    metadata:
      labels: {{app: web}}
    spec:
      containers:
      - name: web
        image: nginx:1.27
        env:
{env}"
    )
}

#[tokio::test]
async fn server_side_apply_after_client_side_apply_takes_ownership_and_later_prunes() {
    let c = Cluster::start().await;
    let both = c.write("both.yaml", &deployment_yaml(&[("A", "1"), ("B", "2")]));
    c.ok(&["apply", "-f", &both]).await;
    let rv = rv_of(&c, "apps/v1/deployments", "web").await;
    // kubectl migrates client-side ownership with a JSON patch of managedFields, then
    // applies the same manifest: only ownership changes, and that must be stored.
    c.ok(&["apply", "--server-side", "-f", &both]).await;
    let migrated = c.object("apps/v1/deployments", "web").await.unwrap();
    assert_ne!(
        migrated["metadata"]["resourceVersion"], rv,
        "ownership changed"
    );
    let csa_owns_env = migrated["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .any(|m| {
            m["manager"] == "kubectl-client-side-apply"
                && m["fieldsV1"].to_string().contains("f:env")
        });
    assert!(!csa_owns_env, "{}", migrated["metadata"]["managedFields"]);
    let only_a = c.write("a.yaml", &deployment_yaml(&[("A", "1")]));
    c.ok(&["apply", "--server-side", "-f", &only_a]).await;
    let pruned = c.object("apps/v1/deployments", "web").await.unwrap();
    let env = &pruned["spec"]["template"]["spec"]["containers"][0]["env"];
    assert_eq!(*env, serde_json::json!([{"name": "A", "value": "1"}]));
    // Fields apiserver defaults come back after the apply pruned them.
    assert_eq!(pruned["spec"]["progressDeadlineSeconds"], 600, "{pruned}");
    assert_eq!(pruned["spec"]["revisionHistoryLimit"], 10, "{pruned}");
    let rv = pruned["metadata"]["resourceVersion"].clone();
    c.ok(&["apply", "--server-side", "-f", &only_a]).await;
    assert_eq!(
        rv_of(&c, "apps/v1/deployments", "web").await,
        rv,
        "identical re-apply"
    );
    c.stop().await;
}
