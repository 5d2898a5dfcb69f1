//! kube-apiserver's audit log, read as the record of what a user asked and what the
//! server answered. The control plane writes it as JSON lines at Metadata level.

use std::path::Path;

use kube_emulator::RequestEntry;
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Event {
    stage: String,
    verb: String,
    user: User,
    object_ref: Option<ObjectRef>,
    response_status: Option<ResponseStatus>,
    #[serde(default)]
    annotations: std::collections::BTreeMap<String, String>,
}

#[derive(Deserialize)]
struct User {
    username: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ObjectRef {
    resource: Option<String>,
    subresource: Option<String>,
    namespace: Option<String>,
    name: Option<String>,
    api_group: Option<String>,
}

#[derive(Deserialize)]
struct ResponseStatus {
    code: Option<u16>,
}

/// One resource request as the server recorded it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub request: RequestEntry,
    pub code: u16,
    /// The authorizer's own verdict (`authorization.k8s.io/decision: forbid`). Not every
    /// 403 is one: a write into a namespace being deleted is refused by admission.
    pub forbidden_by_rbac: bool,
}

/// The resource requests `username` made, from the end of the log as it was at `from`
/// (a byte offset, see [`len`]). Discovery and other non-resource requests are left out:
/// every authenticated user may make them (system:discovery).
pub fn requests_of(path: &Path, from: u64, username: &str) -> Vec<Recorded> {
    let text = std::fs::read(path)
        .unwrap_or_else(|e| panic!("failed to read the audit log {}: {e}", path.display()));
    let text = String::from_utf8_lossy(&text[from as usize..]);
    text.lines()
        .filter_map(|line| serde_json::from_str::<Event>(line).ok())
        // NB: a watch is logged when its response starts and again when it ends; the
        // start is enough, and is there even while the watch is still open.
        .filter(|e| e.stage == "ResponseComplete" || e.stage == "ResponseStarted")
        .filter(|e| e.user.username == username)
        .filter_map(|e| {
            let forbidden_by_rbac = e
                .annotations
                .get("authorization.k8s.io/decision")
                .map(String::as_str)
                == Some("forbid");
            let object = e.object_ref?;
            Some(Recorded {
                request: RequestEntry {
                    verb: e.verb,
                    resource: object.resource?,
                    subresource: object.subresource,
                    group: object.api_group.unwrap_or_default(),
                    namespace: object.namespace,
                    name: object.name,
                },
                code: e.response_status.and_then(|s| s.code).unwrap_or(0),
                forbidden_by_rbac,
            })
        })
        .collect()
}

/// The log's current length: where the requests of what follows begin.
pub fn len(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}
