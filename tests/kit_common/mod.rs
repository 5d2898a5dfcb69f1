//! The vocabulary both scenario kits share: `tests/scenario_kit` (the reconciler driven by a
//! manual clock, in process) and `tests/e2e_support` (the real `operator::run` against the
//! emulator or a real API server). One resource spec, one client-secret Secret, one way to
//! read Ready, one leak check, one call count and one poll, so that a scenario reads the same
//! in both suites.
//!
//! Included by both kits with `#[path = "../kit_common/mod.rs"] mod common;`.
#![allow(dead_code)]

use std::{
    future::Future,
    time::{Duration, Instant},
};

use clear_operator::{
    reconcile::status,
    resource::{ClearApiClient, GROUP},
};
use clear_sandbox::SandboxHandle;
use k8s_openapi::{api::core::v1::Secret, apimachinery::pkg::apis::meta::v1::Condition};
use kube::{
    Api,
    api::{Patch, PatchParams},
};
use serde_json::{Value, json};

/// The products every kit's simulator client is created for and every spec asks for.
pub const PRODUCTS: [&str; 2] = ["GST", "E_INVOICE"];

/// A spec pointing at `base_url` (the simulator), reading the client secret from the Secret
/// `secret_name`.
pub fn spec(base_url: &str, workspace: &str, secret_name: &str) -> Value {
    json!({
        "environment": "sandbox",
        "baseUrl": base_url,
        "workspace": workspace,
        "products": PRODUCTS,
        "clientSecretRef": {"name": secret_name},
    })
}

/// A ClearApiClient object `name` (in `namespace`, or the one of the Api it is created
/// with), with `meta` merged into its metadata.
pub fn resource(name: &str, namespace: Option<&str>, meta: Value, spec: Value) -> ClearApiClient {
    let mut metadata = json!({"name": name});
    if let Some(ns) = namespace {
        metadata["namespace"] = json!(ns);
    }
    if let (Some(m), Some(extra)) = (metadata.as_object_mut(), meta.as_object()) {
        m.extend(extra.clone());
    }
    serde_json::from_value(json!({
        "apiVersion": format!("{GROUP}/v1alpha1"), "kind": "ClearApiClient",
        "metadata": metadata, "spec": spec,
    }))
    .expect("a ClearApiClient object")
}

/// Merges `spec` into the spec of the resource `name`.
pub async fn patch_spec(cacs: &Api<ClearApiClient>, name: &str, spec: Value) {
    cacs.patch(
        name,
        &PatchParams::default(),
        &Patch::Merge(&json!({"spec": spec})),
    )
    .await
    .expect("the spec is patched");
}

/// A Secret `name` holding a client secret under `key`.
pub fn client_secret(name: &str, namespace: Option<&str>, key: &str, value: &str) -> Secret {
    let mut metadata = json!({"name": name});
    if let Some(ns) = namespace {
        metadata["namespace"] = json!(ns);
    }
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": metadata,
        "stringData": {key: value},
    }))
    .expect("a Secret object")
}

/// A value of the Secret's `data`, as text.
pub fn data(secret: &Secret, key: &str) -> Option<String> {
    let bytes = secret.data.as_ref()?.get(key)?;
    Some(String::from_utf8_lossy(&bytes.0).into_owned())
}

/// The Ready condition, if any.
pub fn ready_condition(cac: &ClearApiClient) -> Option<&Condition> {
    status::ready_condition(cac.status.as_ref())
}

/// Whether the resource's Ready condition has this status.
pub fn is_ready(cac: &ClearApiClient, status: &str) -> bool {
    ready_condition(cac).is_some_and(|c| c.status == status)
}

/// Whether the Ready condition has this status and reason.
pub fn is_ready_with(cac: &ClearApiClient, status: &str, reason: &str) -> bool {
    ready_condition(cac).is_some_and(|c| c.status == status && c.reason == reason)
}

/// The Ready condition's message ("" without one).
pub fn ready_message(cac: &ClearApiClient) -> String {
    ready_condition(cac)
        .map(|c| c.message.clone())
        .unwrap_or_default()
}

/// Calls to Clear's token endpoint made with `client_secret`.
pub fn calls(sandbox: &SandboxHandle, client_secret: &str) -> u64 {
    sandbox.call_counts(client_secret).total
}

/// The leak check: no confidential value appears in any of the `visible` texts, each named
/// by where a reader would see it ("the logs", "an Event", ...).
pub fn assert_not_shown(confidential: &[String], visible: &[(&str, String)]) {
    for value in confidential {
        for (place, text) in visible {
            assert!(
                !text.contains(value.as_str()),
                "a confidential value appears in {place}"
            );
        }
    }
}

/// Tries `attempt` every `interval` until it returns something or `timeout` has passed.
pub async fn poll<T, Fut>(
    timeout: Duration,
    interval: Duration,
    mut attempt: impl FnMut() -> Fut,
) -> Option<T>
where
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(found) = attempt().await {
            return Some(found);
        }
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(interval).await;
    }
}
