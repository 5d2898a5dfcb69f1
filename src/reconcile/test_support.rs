//! Small fixtures for the reconciler's unit tests.

use jiff::Timestamp;

use crate::resource::{ClearApiClient, ClearApiClientSpec};

pub fn ts(s: &str) -> Timestamp {
    s.parse().expect("test timestamps are valid RFC 3339")
}

/// A sandbox ClearApiClient in namespace `default` with two products.
pub fn client(name: &str) -> ClearApiClient {
    let spec: ClearApiClientSpec = serde_json::from_value(serde_json::json!({
        "environment": "sandbox",
        "workspace": "ws-1",
        "products": ["GST", "E_INVOICE"],
        "clientSecretRef": {"name": "clear-secret"}
    }))
    .expect("fixture spec is valid");
    let mut cac = ClearApiClient::new(name, spec);
    cac.metadata.namespace = Some("default".into());
    cac.metadata.uid = Some(format!("uid-{name}"));
    cac
}
