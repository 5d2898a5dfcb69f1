//! The stand-alone binary: reads a clients file, prints its URL first, serves, stops on
//! SIGTERM, and never writes a secret or token to its output.

mod common;

use std::path::PathBuf;
use std::process::Stdio;

use clear_sandbox::{AUTH_TOKEN_HEADER, CLIENT_SECRET_HEADER, TOKEN_PATH, WHOAMI_PATH};
use common::{http_client, into_answer};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::Command;

const SECRET: &str = "binary-test-secret-9f3a";

fn clients_file(text: &str, extension: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "clear-sandbox-bin-{}-{}",
        std::process::id(),
        rand::random::<u64>()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("clients.{extension}"));
    std::fs::write(&path, text).unwrap();
    path
}

#[tokio::test]
async fn binary_prints_its_url_serves_tokens_and_stops_on_sigterm() {
    let path = clients_file(
        &format!(
            "- name: demo\n  clientSecret: {SECRET}\n  workspace: acme\n  products: [GST]\n  environment: sandbox\n  tokenLifetime: 24h\n"
        ),
        "yaml",
    );
    let mut child = Command::new(env!("CARGO_BIN_EXE_clear-sandbox"))
        .args(["--listen", "127.0.0.1:0", "--clients"])
        .arg(&path)
        .env("RUST_LOG", "trace")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("binary starts");
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut url = String::new();
    stdout.read_line(&mut url).await.unwrap();
    let url = url.trim().to_owned();
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");

    let http = http_client();
    let minted = into_answer(
        http.get(format!("{url}{TOKEN_PATH}"))
            .header(CLIENT_SECRET_HEADER, SECRET)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(minted.status, 200);
    let token = minted.access_token();
    let whoami = into_answer(
        http.get(format!("{url}{WHOAMI_PATH}"))
            .header(AUTH_TOKEN_HEADER, &token)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(whoami.status, 200);
    assert_eq!(whoami.json()["workspace"], "acme");
    // The binary's clock can be moved through the admin API.
    let moved = into_answer(
        http.post(format!("{url}/_sandbox/clock"))
            .json(&serde_json::json!({"advance": "25h"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(moved.status, 200);
    let expired = http
        .get(format!("{url}{WHOAMI_PATH}"))
        .header(AUTH_TOKEN_HEADER, &token)
        .send()
        .await
        .unwrap();
    assert_eq!(expired.status().as_u16(), 401);

    let pid = child.id().unwrap().to_string();
    let terminated = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .await
        .is_ok_and(|status| status.success());
    if terminated {
        let status = child.wait().await.unwrap();
        assert!(status.success(), "graceful stop on SIGTERM: {status}");
    } else {
        // No `kill` utility on this machine: stop it the hard way.
        child.kill().await.unwrap();
    }
    let mut output = String::new();
    stdout.read_to_string(&mut output).await.unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut output)
        .await
        .unwrap();
    let _ = std::fs::remove_dir_all(path.parent().unwrap());
    assert!(output.contains("minted access token"), "{output}");
    assert!(!output.contains(SECRET), "secret leaked:\n{output}");
    assert!(!output.contains(&token), "token leaked:\n{output}");
}

#[tokio::test]
async fn binary_refuses_a_bad_clients_file_without_echoing_the_secret() {
    let path = clients_file(
        &format!(
            r#"[{{"clientSecret": "{SECRET}", "workspace": "w", "environment": "staging", "neverExpires": true}}]"#
        ),
        "json",
    );
    let output = Command::new(env!("CARGO_BIN_EXE_clear-sandbox"))
        .args(["--listen", "127.0.0.1:0", "--clients"])
        .arg(&path)
        .output()
        .await
        .unwrap();
    let _ = std::fs::remove_dir_all(path.parent().unwrap());
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("client #1"), "{stderr}");
    assert!(stderr.contains("staging"), "{stderr}");
    assert!(!stderr.contains(SECRET), "{stderr}");
    assert!(output.stdout.is_empty(), "no URL when not serving");
}
