//! `meta.k8s.io/v1` Table answers, which `kubectl get` asks for: apiserver's columns for the
//! common built-ins, Name/Age for the rest, the CRD's `additionalPrinterColumns` for custom
//! resources.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::jsonpath;
use crate::registry::ResourceType;

/// apiserver's human duration: 45s, 3m12s, 10m, 5h, 3d...
pub fn human_duration(secs: i64) -> String {
    let s = secs.max(0);
    if s < 120 {
        return format!("{s}s");
    }
    let m = s / 60;
    if m < 10 {
        let rem = s % 60;
        return if rem == 0 {
            format!("{m}m")
        } else {
            format!("{m}m{rem}s")
        };
    }
    if m < 180 {
        return format!("{m}m");
    }
    let h = s / 3600;
    if h < 8 {
        let rem = (s % 3600) / 60;
        return if rem == 0 {
            format!("{h}h")
        } else {
            format!("{h}h{rem}m")
        };
    }
    if h < 48 {
        return format!("{h}h");
    }
    let d = h / 24;
    if d < 8 {
        let rem = h % 24;
        return if rem == 0 {
            format!("{d}d")
        } else {
            format!("{d}d{rem}h")
        };
    }
    if d < 365 * 2 {
        return format!("{d}d");
    }
    format!("{}y", d / 365)
}

fn age(obj: &Value) -> Value {
    let Some(ts) = obj["metadata"]["creationTimestamp"].as_str() else {
        return json!("<unknown>");
    };
    match DateTime::parse_from_rfc3339(ts) {
        Ok(t) => json!(human_duration(
            (Utc::now() - t.with_timezone(&Utc)).num_seconds()
        )),
        Err(_) => json!("<unknown>"),
    }
}

fn column(name: &str, ty: &str, format: &str, description: &str, priority: i64) -> Value {
    json!({ "name": name, "type": ty, "format": format, "description": description, "priority": priority })
}

fn printer_columns(rt: &ResourceType, version: &str) -> Option<Vec<Value>> {
    let cols = &rt.crd_version(version)?.printer_columns;
    (!cols.is_empty()).then(|| cols.clone())
}

/// Column definitions for a type.
pub fn columns(rt: &ResourceType, version: &str) -> Vec<Value> {
    let name = column(
        "Name",
        "string",
        "name",
        "Name must be unique within a namespace.",
        0,
    );
    if let Some(cols) = printer_columns(rt, version) {
        let mut out = vec![name];
        for c in cols {
            out.push(column(
                c["name"].as_str().unwrap_or(""),
                c["type"].as_str().unwrap_or("string"),
                c["format"].as_str().unwrap_or(""),
                c["description"].as_str().unwrap_or(""),
                c["priority"].as_i64().unwrap_or(0),
            ));
        }
        return out;
    }
    let age = column(
        "Age",
        "string",
        "",
        "CreationTimestamp is a timestamp representing the server time when this object was created.",
        0,
    );
    match (rt.group.as_str(), rt.resource.as_str()) {
        ("", "namespaces") => vec![
            name,
            column("Status", "string", "", "The status of the namespace", 0),
            age,
        ],
        ("", "secrets") => vec![
            name,
            column("Type", "string", "", "The type of the secret", 0),
            column(
                "Data",
                "string",
                "",
                "The number of entries in the secret",
                0,
            ),
            age,
        ],
        ("", "configmaps") => vec![
            name,
            column("Data", "string", "", "The number of entries", 0),
            age,
        ],
        ("apps", "deployments") => vec![
            name,
            column(
                "Ready",
                "string",
                "",
                "Number of the pod with ready state",
                0,
            ),
            column(
                "Up-to-date",
                "integer",
                "",
                "Total number of non-terminated pods targeted by this deployment that have the desired template spec.",
                0,
            ),
            column(
                "Available",
                "integer",
                "",
                "Total number of available pods (ready for at least minReadySeconds) targeted by this deployment.",
                0,
            ),
            age,
        ],
        ("apps", "statefulsets") => vec![
            name,
            column(
                "Ready",
                "string",
                "",
                "Number of the pod with ready state",
                0,
            ),
            age,
        ],
        ("", "services") => vec![
            name,
            column("Type", "string", "", "The type of the service", 0),
            column(
                "Cluster-IP",
                "string",
                "",
                "The cluster IP of the service",
                0,
            ),
            column(
                "External-IP",
                "string",
                "",
                "The external IP of the service",
                0,
            ),
            column("Port(s)", "string", "", "The ports of the service", 0),
            age,
        ],
        ("", "pods") => vec![
            name,
            column(
                "Ready",
                "string",
                "",
                "The aggregate readiness state of this pod for accepting traffic.",
                0,
            ),
            column(
                "Status",
                "string",
                "",
                "The aggregate status of the containers in this pod.",
                0,
            ),
            column(
                "Restarts",
                "string",
                "",
                "The number of times the containers in this pod have been restarted.",
                0,
            ),
            age,
        ],
        ("", "serviceaccounts") => vec![
            name,
            column(
                "Secrets",
                "string",
                "",
                "The number of secrets referenced",
                0,
            ),
            age,
        ],
        ("coordination.k8s.io", "leases") => vec![
            name,
            column("Holder", "string", "", "The holder of the lease", 0),
            age,
        ],
        ("apiextensions.k8s.io", "customresourcedefinitions") => vec![
            name,
            column("Created At", "date", "", "The creation timestamp", 0),
        ],
        ("", "events") => vec![
            column(
                "Last Seen",
                "string",
                "",
                "Time since the event was last seen",
                0,
            ),
            column("Type", "string", "", "Normal or Warning", 0),
            column("Reason", "string", "", "Why the event happened", 0),
            column("Object", "string", "", "What the event is about", 0),
            column("Message", "string", "", "A human-readable description", 0),
        ],
        _ => vec![name, age],
    }
}

fn cells(rt: &ResourceType, version: &str, obj: &Value) -> Vec<Value> {
    let name = obj["metadata"]["name"].clone();
    if let Some(cols) = printer_columns(rt, version) {
        let mut out = vec![name];
        for c in cols {
            let path = c["jsonPath"].as_str().unwrap_or("");
            let v = jsonpath::cell(obj, path);
            let ty = c["type"].as_str().unwrap_or("string");
            out.push(match (v, ty) {
                (None, _) => Value::Null,
                (Some(Value::String(ts)), "date") => match DateTime::parse_from_rfc3339(&ts) {
                    Ok(t) => json!(human_duration(
                        (Utc::now() - t.with_timezone(&Utc)).num_seconds()
                    )),
                    Err(_) => json!(ts),
                },
                (Some(v @ (Value::Object(_) | Value::Array(_))), _) => json!(v.to_string()),
                (Some(v), _) => v,
            });
        }
        return out;
    }
    match (rt.group.as_str(), rt.resource.as_str()) {
        ("", "namespaces") => vec![name, obj["status"]["phase"].clone(), age(obj)],
        ("", "secrets") => vec![
            name,
            obj["type"].clone(),
            json!(obj["data"].as_object().map_or(0, |m| m.len())),
            age(obj),
        ],
        ("", "configmaps") => vec![
            name,
            json!(
                obj["data"].as_object().map_or(0, |m| m.len())
                    + obj["binaryData"].as_object().map_or(0, |m| m.len())
            ),
            age(obj),
        ],
        ("apps", "deployments") | ("apps", "statefulsets") => {
            let st = &obj["status"];
            let want = obj["spec"]["replicas"].as_i64().unwrap_or(1);
            let ready = json!(format!(
                "{}/{}",
                st["readyReplicas"].as_i64().unwrap_or(0),
                want
            ));
            if rt.resource == "statefulsets" {
                return vec![name, ready, age(obj)];
            }
            vec![
                name,
                ready,
                json!(st["updatedReplicas"].as_i64().unwrap_or(0)),
                json!(st["availableReplicas"].as_i64().unwrap_or(0)),
                age(obj),
            ]
        }
        ("", "services") => {
            let spec = &obj["spec"];
            let ports: Vec<String> = spec["ports"]
                .as_array()
                .map(|ps| {
                    ps.iter()
                        .map(|p| {
                            format!("{}/{}", p["port"], p["protocol"].as_str().unwrap_or("TCP"))
                        })
                        .collect()
                })
                .unwrap_or_default();
            vec![
                name,
                spec["type"].clone(),
                json!(spec["clusterIP"].as_str().unwrap_or("<none>")),
                json!("<none>"),
                json!(if ports.is_empty() {
                    "<none>".to_string()
                } else {
                    ports.join(",")
                }),
                age(obj),
            ]
        }
        ("", "pods") => {
            let n = obj["spec"]["containers"].as_array().map_or(0, Vec::len);
            vec![
                name,
                json!(format!("0/{n}")),
                obj["status"]["phase"].clone(),
                json!("0"),
                age(obj),
            ]
        }
        ("", "serviceaccounts") => vec![
            name,
            json!(obj["secrets"].as_array().map_or(0, Vec::len)),
            age(obj),
        ],
        ("coordination.k8s.io", "leases") => {
            vec![name, obj["spec"]["holderIdentity"].clone(), age(obj)]
        }
        ("apiextensions.k8s.io", "customresourcedefinitions") => {
            vec![name, obj["metadata"]["creationTimestamp"].clone()]
        }
        ("", "events") => {
            let md = &obj["metadata"];
            let seen = [
                &obj["series"]["lastObservedTime"],
                &obj["lastTimestamp"],
                &obj["eventTime"],
                &md["creationTimestamp"],
            ]
            .into_iter()
            .find_map(|v| v.as_str())
            .and_then(|ts| DateTime::parse_from_rfc3339(ts).ok())
            .map_or(json!("<unknown>"), |t| {
                json!(human_duration(
                    (Utc::now() - t.with_timezone(&Utc)).num_seconds()
                ))
            });
            let io = &obj["involvedObject"];
            let object = format!(
                "{}/{}",
                io["kind"].as_str().unwrap_or("").to_lowercase(),
                io["name"].as_str().unwrap_or("")
            );
            vec![
                seen,
                obj["type"].clone(),
                obj["reason"].clone(),
                json!(object),
                obj["message"].clone(),
            ]
        }
        _ => vec![name, age(obj)],
    }
}

/// One row; the object is its metadata, as apiserver sends with includeObject=Metadata.
pub fn row(rt: &ResourceType, version: &str, obj: &Value, include_object: &str) -> Value {
    let object = match include_object {
        "None" => Value::Null,
        "Object" => obj.clone(),
        _ => crate::form::partial(obj),
    };
    json!({ "cells": cells(rt, version, obj), "object": object })
}

/// A full Table for a list (or a single object).
pub fn table<'a>(
    rt: &ResourceType,
    version: &str,
    objs: impl Iterator<Item = &'a Value>,
    resource_version: &str,
    continue_token: Option<&str>,
    include_object: &str,
) -> Value {
    let rows: Vec<Value> = objs.map(|o| row(rt, version, o, include_object)).collect();
    let mut md = json!({ "resourceVersion": resource_version });
    if let Some(c) = continue_token {
        md["continue"] = json!(c);
    }
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": md,
        "columnDefinitions": columns(rt, version),
        "rows": rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_duration_follows_apiserver_buckets() {
        assert_eq!(human_duration(5), "5s");
        assert_eq!(human_duration(125), "2m5s");
        assert_eq!(human_duration(600), "10m");
        assert_eq!(human_duration(3 * 3600 + 60), "3h1m");
        assert_eq!(human_duration(30 * 3600), "30h");
        assert_eq!(human_duration(3 * 86400), "3d");
    }
}
