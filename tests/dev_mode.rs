//! The README's first Quick-start command, end to end: `clear-operator dev` as a user runs
//! it, then the real kubectl and `clear-operator regenerate` against its kubeconfig.

use std::{
    io::{BufRead, BufReader},
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

const BIN: &str = env!("CARGO_BIN_EXE_clear-operator");

/// The dev process, killed on drop so a failing assertion never leaks it.
struct Dev {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Dev {
    fn start(args: &[&str]) -> Dev {
        let mut child = Command::new(BIN)
            .arg("dev")
            .args(args)
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("clear-operator dev starts");
        let (tx, rx) = mpsc::channel();
        for stream in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            });
        }
        Dev {
            child,
            lines: rx,
            seen: Vec::new(),
        }
    }

    /// Waits for a line containing `needle`, returning it.
    fn wait_for(&mut self, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        if let Some(line) = self.seen.iter().find(|l| l.contains(needle)) {
            return line.clone();
        }
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(_) => break,
            }
        }
        panic!(
            "no line containing {needle:?} within {timeout:?}; output so far:\n{}",
            self.seen.join("\n")
        );
    }

    fn drain(&mut self) {
        while let Ok(line) = self.lines.recv_timeout(Duration::from_millis(200)) {
            self.seen.push(line);
        }
    }
}

impl Drop for Dev {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn kubectl(kubeconfig: &std::path::Path, args: &[&str]) -> (bool, String) {
    let out = Command::new("kubectl")
        .args(args)
        .env("KUBECONFIG", kubeconfig)
        .output()
        .expect("kubectl runs (it comes with the machine image)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// The demo's client secret is random: `demo-` and 32 alphanumerics. Finds any such string.
fn contains_demo_secret(text: &str) -> bool {
    text.match_indices("demo-").any(|(i, _)| {
        let rest = &text[i + 5..];
        rest.len() >= 32 && rest[..32].chars().all(|c| c.is_ascii_alphanumeric())
    })
}

#[test]
fn dev_exit_when_ready_issues_a_live_token_and_exits_zero() {
    let dir = tempdir();
    let kubeconfig = dir.join("kubeconfig");
    let out = Command::new(BIN)
        .args(["dev", "--exit-when-ready", "--ready-timeout-secs", "60"])
        .arg("--kubeconfig-out")
        .arg(&kubeconfig)
        .output()
        .expect("dev runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "dev failed:\n{stdout}\n{stderr}");
    for expected in [
        "CRD clearapiclients.clear-operator.io installed",
        "Token issued",
        "Secret demo/gst-demo written",
        "Renewal due at",
        "Ready=True (Issued)",
        "Clear simulator confirms the token in the Secret is live",
    ] {
        assert!(
            stdout.contains(expected),
            "missing {expected:?} in:\n{stdout}"
        );
    }
    assert!(kubeconfig.exists(), "kubeconfig written for kubectl");
    assert!(
        !contains_demo_secret(&stdout) && !contains_demo_secret(&stderr),
        "the client secret leaked into dev output"
    );
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn kubectl_and_regenerate_work_against_a_running_dev() {
    let dir = tempdir();
    let kubeconfig = dir.join("kubeconfig");
    let mut dev = Dev::start(&[
        "--kubeconfig-out",
        kubeconfig.to_str().unwrap(),
        "--token-lifetime-secs",
        "3600",
    ]);
    dev.wait_for(
        "Clear simulator: the token in the Secret is live",
        Duration::from_secs(60),
    );
    let first = dev.wait_for("Token issued", Duration::from_secs(1));

    let (ok, text) = kubectl(
        &kubeconfig,
        &[
            "wait",
            "--for=condition=Ready",
            "-n",
            "demo",
            "cac/gst-demo",
            "--timeout=20s",
        ],
    );
    assert!(ok, "kubectl wait failed: {text}");
    let (ok, text) = kubectl(&kubeconfig, &["get", "clearapiclients", "-A"]);
    assert!(ok, "kubectl get failed: {text}");
    assert!(
        text.contains("gst-demo") && text.contains("True") && text.contains("sandbox"),
        "{text}"
    );
    let (ok, text) = kubectl(
        &kubeconfig,
        &[
            "get",
            "secret",
            "-n",
            "demo",
            "gst-demo",
            "-o",
            "jsonpath={.data}",
        ],
    );
    assert!(ok, "{text}");
    for key in [
        "accessToken",
        "validTill",
        "baseUrl",
        "environment",
        "workspace",
        "products",
    ] {
        assert!(text.contains(key), "Secret lacks {key}: {text}");
    }

    let regen = Command::new(BIN)
        .args(["regenerate", "gst-demo", "-n", "demo"])
        .env("KUBECONFIG", &kubeconfig)
        .output()
        .expect("regenerate runs");
    assert!(
        regen.status.success(),
        "regenerate failed: {}",
        String::from_utf8_lossy(&regen.stderr)
    );
    let renewed = dev.wait_for("Token renewed", Duration::from_secs(30));
    assert_ne!(first, renewed);
    dev.wait_for(
        "Clear simulator: the token in the Secret is live",
        Duration::from_secs(10),
    );

    let (ok, text) = kubectl(
        &kubeconfig,
        &["get", "cac", "-n", "demo", "gst-demo", "-o", "yaml"],
    );
    assert!(ok, "{text}");
    assert!(text.contains("lastRegenerateRequest"), "{text}");
    dev.drain();
    let all = dev.seen.join("\n");
    assert!(
        !contains_demo_secret(&all),
        "the client secret leaked into dev output"
    );
    std::fs::remove_dir_all(dir).ok();
}

fn tempdir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "clear-operator-dev-test-{}-{}",
        std::process::id(),
        rand_suffix()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn rand_suffix() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one(Instant::now())
}
