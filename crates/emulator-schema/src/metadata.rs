//! The only metadata check kube-apiserver's custom-resource validation adds beyond the
//! schema that this crate owns: `metadata.name` must be a DNS-1123 subdomain.

use std::sync::LazyLock;

use regex::Regex;
use serde_json::Value;

use crate::error::{self, FieldError};

const DNS1123_SUBDOMAIN_MAX_LENGTH: usize = 253;
const DNS1123_SUBDOMAIN_FMT: &str =
    r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*";

static DNS1123_SUBDOMAIN: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(&format!("^{DNS1123_SUBDOMAIN_FMT}$")).expect("the DNS-1123 pattern is valid")
});

/// Check `metadata.name` of the custom resource `obj`.
pub(crate) fn validate_name(obj: &Value, out: &mut Vec<FieldError>) {
    let meta = obj.get("metadata");
    let name = meta
        .and_then(|m| m.get("name"))
        .and_then(Value::as_str)
        .unwrap_or("");
    if name.is_empty() {
        let generate_name = meta
            .and_then(|m| m.get("generateName"))
            .and_then(Value::as_str)
            .unwrap_or("");
        if generate_name.is_empty() {
            out.push(error::required(
                "metadata.name".to_string(),
                "name or generateName is required",
            ));
        }
        return;
    }
    let shown = Value::String(name.to_string());
    if name.len() > DNS1123_SUBDOMAIN_MAX_LENGTH {
        let detail = format!("must be no more than {DNS1123_SUBDOMAIN_MAX_LENGTH} characters");
        out.push(error::invalid("metadata.name".to_string(), &shown, &detail));
    }
    if !DNS1123_SUBDOMAIN.is_match(name) {
        let detail = format!(
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', \
             and must start and end with an alphanumeric character (e.g. 'example.com', regex used for \
             validation is '{DNS1123_SUBDOMAIN_FMT}')"
        );
        out.push(error::invalid("metadata.name".to_string(), &shown, &detail));
    }
}
