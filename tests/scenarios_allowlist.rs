//! The confused-deputy attempt: a tenant who may create ClearApiClients, but not read
//! Secrets, points one at a host of their choosing and names a Secret they want to read.
//! The operator's allow-list (here: only the kit's simulator, as in `dev`) must make it send
//! nothing anywhere, never read that Secret, and say why in the Ready condition.

mod scenario_kit;

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use clear_sandbox::ClientConfig;
use scenario_kit::Kit;
use serde_json::json;
use tokio::{io::AsyncReadExt, net::TcpListener};

const SECRET: &str = "cs-allowlist-0001";
const DATABASE_PASSWORD: &str = "db-password-of-another-team-0001";

fn client() -> ClientConfig {
    ClientConfig::new(SECRET, "ws-1").with_lifetime(Duration::from_secs(12 * 3600))
}

/// A host that is not on the allow-list: counts every TCP connection and every byte that
/// reaches it, whatever the protocol.
struct ForeignHost {
    url: String,
    connections: Arc<AtomicUsize>,
    bytes: Arc<AtomicUsize>,
}

impl ForeignHost {
    async fn start() -> ForeignHost {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let connections = Arc::new(AtomicUsize::new(0));
        let bytes = Arc::new(AtomicUsize::new(0));
        let (c, b) = (connections.clone(), bytes.clone());
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                c.fetch_add(1, Ordering::SeqCst);
                let b = b.clone();
                tokio::spawn(async move {
                    let mut buf = [0u8; 4096];
                    while let Ok(n) = stream.read(&mut buf).await {
                        if n == 0 {
                            break;
                        }
                        b.fetch_add(n, Ordering::SeqCst);
                    }
                });
            }
        });
        ForeignHost {
            url,
            connections,
            bytes,
        }
    }

    fn received(&self) -> (usize, usize) {
        (
            self.connections.load(Ordering::SeqCst),
            self.bytes.load(Ordering::SeqCst),
        )
    }
}

/// GETs of the Secret `name` that reached the Kubernetes API (the only way to read a value:
/// the operator's watches of Secrets are metadata only).
fn gets_of_secret(kit: &Kit, name: &str) -> usize {
    kit.emulator
        .requests()
        .entries()
        .iter()
        .filter(|r| r.verb == "get" && r.resource == "secrets" && r.name.as_deref() == Some(name))
        .count()
}

#[tokio::test]
async fn a_foreign_base_url_gets_no_request_and_the_named_secret_is_never_read() {
    let kit = Kit::start(vec![client()]).await;
    let foreign = ForeignHost::start().await;
    kit.put_client_secret("database", "password", DATABASE_PASSWORD)
        .await;
    let mut spec = kit.spec("database");
    spec["baseUrl"] = json!(foreign.url);
    spec["clientSecretRef"] = json!({"name": "database", "key": "password"});
    kit.create("exfiltrate", spec).await;

    kit.reconcile_times("exfiltrate", 3).await;

    assert_eq!(foreign.received(), (0, 0), "the foreign host was contacted");
    assert_eq!(kit.all_calls(), 0, "the simulator was called");
    assert_eq!(
        gets_of_secret(&kit, "database"),
        0,
        "the operator read the named Secret's value"
    );
    assert_eq!(
        kit.ready("exfiltrate").await,
        ("False".into(), "BaseUrlNotAllowed".into())
    );
    let (_, _, message) = kit.ready_with_message("exfiltrate").await;
    assert!(message.contains(&foreign.url), "{message}");
    assert!(message.contains("--allowed-base-url"), "{message}");
    assert!(kit.target("exfiltrate").await.is_none());
    let warnings = kit.warnings("exfiltrate", "BaseUrlNotAllowed");
    assert_eq!(warnings.len(), 1, "one Warning per change of reason");
    kit.finish().await;
}

#[tokio::test]
async fn moving_an_issued_resource_to_a_foreign_host_sends_nothing_and_keeps_the_old_secret() {
    let kit = Kit::with_resource(vec![client()], SECRET).await;
    let foreign = ForeignHost::start().await;
    kit.reconcile("billing").await;
    assert_eq!(kit.calls(SECRET), 1);
    let token = kit.token_in("billing").await;
    let reads_before = gets_of_secret(&kit, "clear-secret");

    kit.patch_spec("billing", json!({"baseUrl": foreign.url}))
        .await;
    kit.reconcile_times("billing", 3).await;

    assert_eq!(foreign.received(), (0, 0), "the foreign host was contacted");
    assert_eq!(
        kit.calls(SECRET),
        1,
        "a config change to a refused host minted"
    );
    assert_eq!(gets_of_secret(&kit, "clear-secret"), reads_before);
    assert_eq!(
        kit.ready("billing").await,
        ("False".into(), "BaseUrlNotAllowed".into())
    );
    assert_eq!(
        kit.token_in("billing").await,
        token,
        "the Secret was touched"
    );

    // Back on the allowed host: the stored token matches the config again, nothing to mint.
    kit.patch_spec("billing", json!({"baseUrl": kit.url()}))
        .await;
    kit.reconcile_times("billing", 2).await;
    assert_eq!(kit.calls(SECRET), 1);
    assert_eq!(kit.ready("billing").await, ("True".into(), "Issued".into()));
    kit.finish().await;
}

#[tokio::test]
async fn revoke_on_delete_with_a_foreign_base_url_sends_nothing() {
    let kit = Kit::start(vec![client()]).await;
    let foreign = ForeignHost::start().await;
    kit.put_client_secret("clear-secret", "clientSecret", SECRET)
        .await;
    let mut spec = kit.spec("clear-secret");
    spec["revokeOnDelete"] = json!(true);
    kit.create("billing", spec).await;
    kit.reconcile_times("billing", 2).await;
    assert_eq!(kit.calls(SECRET), 1);
    kit.patch_spec("billing", json!({"baseUrl": foreign.url}))
        .await;
    kit.reconcile("billing").await;

    kit.delete("billing").await;
    kit.reconcile("billing").await;

    assert_eq!(foreign.received(), (0, 0), "the foreign host was contacted");
    assert_eq!(kit.calls(SECRET), 1, "revoking went to the simulator");
    assert!(
        kit.cacs.get_opt("billing").await.unwrap().is_none(),
        "the finalizer held the resource"
    );
    assert!(
        kit.event_reasons("billing")
            .contains(&"RevokeSkipped".to_string())
    );
    kit.finish().await;
}
