//! Access and identity reviews (`kubectl auth can-i`, `kubectl auth whoami`). The
//! emulator enforces no RBAC, so every action is allowed and every caller is the one
//! kubeconfig user; the answers say exactly that.

use serde_json::{Value, json};

use crate::registry::ResourceType;

pub const USER: &str = "kube-emulator";

/// The review with its status filled in; nothing is stored.
pub fn answer(rt: &ResourceType, mut review: Value) -> Value {
    review["apiVersion"] = json!(rt.api_version("v1"));
    review["kind"] = json!(rt.kind);
    if review["metadata"].is_null() {
        review["metadata"] = json!({});
    }
    review["status"] = match rt.resource.as_str() {
        "selfsubjectaccessreviews" => json!({
            "allowed": true,
            "reason": "kube-emulator enforces no RBAC",
        }),
        "selfsubjectrulesreviews" => json!({
            "resourceRules": [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}],
            "nonResourceRules": [{"verbs": ["*"], "nonResourceURLs": ["*"]}],
            "incomplete": false,
        }),
        _ => json!({
            "userInfo": {"username": USER, "groups": ["system:masters", "system:authenticated"]},
        }),
    };
    review
}
