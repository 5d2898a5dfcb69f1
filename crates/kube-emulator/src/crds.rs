//! CustomResourceDefinitions: turning a CRD object into a served resource type (with its
//! compiled schemas) and the status apiserver reports for an accepted CRD.

use std::sync::Arc;

use emulator_schema::{SchemaError, StructuralSchema};
use serde_json::{Value, json};

use crate::registry::{CrdVersion, ResourceType, version_priority};
use crate::status::{ApiError, Cause};

fn cause(field: &str, message: String) -> Cause {
    Cause {
        reason: "FieldValueInvalid".into(),
        message,
        field: field.into(),
    }
}

/// The cause apiserver gives for an unusable schema: the error's own location under
/// `schema_at`, and its message without the location.
fn schema_cause(schema_at: &str, e: &SchemaError) -> Cause {
    let detail = e.detail();
    Cause {
        reason: if detail.starts_with("Unsupported value") {
            "FieldValueNotSupported".into()
        } else {
            "FieldValueInvalid".into()
        },
        field: format!("{schema_at}.{}", e.field()),
        message: detail,
    }
}

/// Build the resource type a CRD declares, rejecting CRDs apiserver would reject.
pub fn resource_type(crd_rt: &ResourceType, crd: &Value) -> Result<ResourceType, ApiError> {
    let name = crd["metadata"]["name"].as_str().unwrap_or("");
    let spec = &crd["spec"];
    let group = spec["group"].as_str().unwrap_or("");
    let names = &spec["names"];
    let plural = names["plural"].as_str().unwrap_or("");
    let kind = names["kind"].as_str().unwrap_or("");
    let mut causes = Vec::new();
    if group.is_empty() {
        causes.push(Cause {
            reason: "FieldValueRequired".into(),
            message: "Required value".into(),
            field: "spec.group".into(),
        });
    }
    if plural.is_empty() {
        causes.push(Cause {
            reason: "FieldValueRequired".into(),
            message: "Required value".into(),
            field: "spec.names.plural".into(),
        });
    }
    if kind.is_empty() {
        causes.push(Cause {
            reason: "FieldValueRequired".into(),
            message: "Required value".into(),
            field: "spec.names.kind".into(),
        });
    }
    if !plural.is_empty() && !group.is_empty() && name != format!("{plural}.{group}") {
        causes.push(cause(
            "metadata.name",
            format!("Invalid value: \"{name}\": must be spec.names.plural+\".\"+spec.group"),
        ));
    }
    let scope = spec["scope"].as_str().unwrap_or("");
    if scope != "Namespaced" && scope != "Cluster" {
        causes.push(Cause {
            reason: "FieldValueNotSupported".into(),
            message: format!(
                "Unsupported value: \"{scope}\": supported values: \"Cluster\", \"Namespaced\""
            ),
            field: "spec.scope".into(),
        });
    }
    let mut versions = Vec::new();
    let mut storage: Option<String> = None;
    let raw_versions = spec["versions"].as_array().cloned().unwrap_or_default();
    if raw_versions.is_empty() {
        causes.push(Cause {
            reason: "FieldValueRequired".into(),
            message: "Required value: must have exactly one version marked as storage version"
                .into(),
            field: "spec.versions".into(),
        });
    }
    // apiserver validates its internal form of the CRD, where a schema every version shares
    // moved to `spec.validation` (one error then, not one per version).
    let shared_schema = raw_versions
        .iter()
        .all(|v| v.get("schema") == raw_versions[0].get("schema"));
    let mut shared_schema_reported = false;
    for (i, v) in raw_versions.iter().enumerate() {
        let vname = v["name"].as_str().unwrap_or("").to_string();
        if v["storage"].as_bool() == Some(true) {
            if storage.is_some() {
                causes.push(cause(
                    "spec.versions",
                    "Invalid value: must have exactly one version marked as storage version".into(),
                ));
            }
            storage = Some(vname.clone());
        }
        if v["served"].as_bool() != Some(true) {
            continue;
        }
        let raw_schema = v.pointer("/schema/openAPIV3Schema").cloned();
        let schema = match &raw_schema {
            Some(s) => match StructuralSchema::new(s) {
                Ok(compiled) => Some(Arc::new(compiled)),
                Err(e) => {
                    if !shared_schema {
                        causes.push(schema_cause(&format!("spec.versions[{i}].schema"), &e));
                    } else if !shared_schema_reported {
                        shared_schema_reported = true;
                        causes.push(schema_cause("spec.validation", &e));
                    }
                    None
                }
            },
            None => None,
        };
        versions.push(CrdVersion {
            name: vname,
            schema,
            #[cfg(feature = "kubectl")]
            raw_schema,
            #[cfg(feature = "kubectl")]
            printer_columns: v["additionalPrinterColumns"]
                .as_array()
                .cloned()
                .unwrap_or_default(),
            status_subresource: v.pointer("/subresources/status").is_some(),
        });
    }
    if storage.is_none() && !raw_versions.is_empty() {
        causes.push(cause(
            "spec.versions",
            "Invalid value: must have exactly one version marked as storage version".into(),
        ));
    }
    if !causes.is_empty() {
        return Err(ApiError::invalid(crd_rt, name, &causes));
    }
    let storage = storage.unwrap_or_default();
    versions.sort_by(|a, b| {
        (b.name == storage)
            .cmp(&(a.name == storage))
            .then(version_priority(&b.name).cmp(&version_priority(&a.name)))
    });
    let strs = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    let has_status = versions.iter().any(|v| v.status_subresource);
    Ok(ResourceType {
        group: group.to_string(),
        versions: versions.iter().map(|v| v.name.clone()).collect(),
        resource: plural.to_string(),
        kind: kind.to_string(),
        singular: names["singular"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| kind.to_lowercase()),
        namespaced: scope == "Namespaced",
        short_names: strs(&names["shortNames"]),
        categories: strs(&names["categories"]),
        has_status,
        tracks_generation: true,
        crd: Some(versions),
        storage: None,
        review: false,
    })
}

/// The status of an accepted, established CRD.
pub fn accepted_status(crd: &Value, now: &str) -> Value {
    let names = crd["spec"]["names"].clone();
    let mut accepted = names.clone();
    if accepted["singular"].is_null() {
        accepted["singular"] = json!(names["kind"].as_str().unwrap_or("").to_lowercase());
    }
    if accepted["listKind"].is_null() {
        accepted["listKind"] = json!(format!("{}List", names["kind"].as_str().unwrap_or("")));
    }
    let storage: Vec<Value> = crd["spec"]["versions"]
        .as_array()
        .map(|vs| {
            vs.iter()
                .filter(|v| v["storage"].as_bool() == Some(true))
                .map(|v| v["name"].clone())
                .collect()
        })
        .unwrap_or_default();
    let prev_time = |t: &str| {
        crd["status"]["conditions"]
            .as_array()
            .and_then(|cs| cs.iter().find(|c| c["type"] == json!(t)))
            .and_then(|c| c["lastTransitionTime"].as_str().map(str::to_string))
            .unwrap_or_else(|| now.to_string())
    };
    json!({
        "acceptedNames": accepted,
        "conditions": [
            {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts",
             "message": "no conflicts found", "lastTransitionTime": prev_time("NamesAccepted")},
            {"type": "Established", "status": "True", "reason": "InitialNamesAccepted",
             "message": "the initial names have been accepted", "lastTransitionTime": prev_time("Established")},
        ],
        "storedVersions": storage,
    })
}
