//! The little per-kind behaviour of built-in types: Secret `stringData`, Namespace phase,
//! Service cluster IPs, workload replica defaults, Pod phase.

use base64::Engine;
use serde_json::{Value, json};

use crate::registry::ResourceType;
use crate::status::{ApiError, Cause};
use crate::store::State;

/// Defaulting and folding done on every write of a built-in kind (create and update).
pub fn normalize(
    rt: &ResourceType,
    obj: &mut Value,
    old: Option<&Value>,
    state: &mut State,
) -> Result<(), ApiError> {
    match (rt.group.as_str(), rt.resource.as_str()) {
        ("", "secrets") => {
            secret(rt, obj)?;
            immutable(rt, obj, old, &["data", "type"])?;
        }
        ("", "configmaps") => immutable(rt, obj, old, &["data", "binaryData"])?,
        ("", "namespaces") => {
            let name = obj["metadata"]["name"].as_str().unwrap_or("").to_string();
            obj["metadata"]["labels"]["kubernetes.io/metadata.name"] = json!(name);
            if obj["spec"]["finalizers"].is_null() {
                obj["spec"]["finalizers"] = json!(["kubernetes"]);
            }
            let terminating = obj["metadata"].get("deletionTimestamp").is_some();
            obj["status"]["phase"] = json!(if terminating { "Terminating" } else { "Active" });
        }
        ("", "services") => service(obj, old, state),
        ("", "pods") => {
            pod_spec(&mut obj["spec"]);
            if obj["status"]["phase"].is_null() {
                obj["status"]["phase"] = json!("Pending");
            }
        }
        ("apps", _) => {
            if obj["spec"]["template"]["spec"].is_object() {
                pod_spec(&mut obj["spec"]["template"]["spec"]);
            }
            workload(rt, obj);
            // apiserver serialises a workload's status struct even before any controller
            // fills it: its non-omitempty fields at zero
            if obj["status"].is_null() {
                let empty = match rt.resource.as_str() {
                    "deployments" => Some(json!({})),
                    "statefulsets" => Some(json!({"replicas": 0, "availableReplicas": 0})),
                    "replicasets" => Some(json!({"replicas": 0})),
                    "daemonsets" => Some(json!({"currentNumberScheduled": 0,
                        "numberMisscheduled": 0, "desiredNumberScheduled": 0, "numberReady": 0})),
                    _ => None,
                };
                if let Some(empty) = empty {
                    obj["status"] = empty;
                }
            }
        }
        _ => {}
    }
    Ok(())
}

fn workload(rt: &ResourceType, obj: &mut Value) {
    match rt.resource.as_str() {
        "deployments" => {
            default(obj, "/spec/replicas", json!(1));
            default(obj, "/spec/revisionHistoryLimit", json!(10));
            default(obj, "/spec/progressDeadlineSeconds", json!(600));
            if obj["spec"]["strategy"].is_null() {
                obj["spec"]["strategy"] = json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}});
            }
        }
        "statefulsets" | "replicasets" => {
            default(obj, "/spec/replicas", json!(1));
        }
        _ => {}
    }
}

/// The pod-spec defaults apiserver fills in, which `kubectl describe` shows.
fn pod_spec(spec: &mut Value) {
    if !spec.is_object() {
        return;
    }
    default(spec, "/restartPolicy", json!("Always"));
    default(spec, "/dnsPolicy", json!("ClusterFirst"));
    default(spec, "/schedulerName", json!("default-scheduler"));
    default(spec, "/terminationGracePeriodSeconds", json!(30));
    default(spec, "/securityContext", json!({}));
    for list in ["containers", "initContainers"] {
        if let Some(cs) = spec.get_mut(list).and_then(Value::as_array_mut) {
            for c in cs {
                let image = c["image"].as_str().unwrap_or("");
                let latest = !image.rsplit('/').next().unwrap_or("").contains(':')
                    || image.ends_with(":latest");
                default(
                    c,
                    "/imagePullPolicy",
                    json!(if latest { "Always" } else { "IfNotPresent" }),
                );
                default(c, "/terminationMessagePath", json!("/dev/termination-log"));
                default(c, "/terminationMessagePolicy", json!("File"));
                if let Some(ports) = c.get_mut("ports").and_then(Value::as_array_mut) {
                    for p in ports {
                        default(p, "/protocol", json!("TCP"));
                    }
                }
            }
        }
    }
}

fn default(obj: &mut Value, pointer: &str, value: Value) {
    let parts: Vec<&str> = pointer.split('/').skip(1).collect();
    let mut cur = obj;
    for (i, p) in parts.iter().enumerate() {
        if !cur.is_object() {
            *cur = json!({});
        }
        let map = cur.as_object_mut().expect("object");
        if i == parts.len() - 1 {
            map.entry(p.to_string()).or_insert(value);
            return;
        }
        cur = map.entry(p.to_string()).or_insert_with(|| json!({}));
    }
}

/// Secrets and ConfigMaps marked `immutable: true` keep their contents (and the mark).
fn immutable(
    rt: &ResourceType,
    obj: &Value,
    old: Option<&Value>,
    fields: &[&str],
) -> Result<(), ApiError> {
    let Some(old) = old.filter(|o| o["immutable"] == json!(true)) else {
        return Ok(());
    };
    let name = obj["metadata"]["name"].as_str().unwrap_or("");
    let mut causes = Vec::new();
    for f in fields {
        if old.get(*f) != obj.get(*f) {
            causes.push(Cause {
                reason: "FieldValueForbidden".into(),
                message: "Forbidden: field is immutable when `immutable` is set".into(),
                field: (*f).to_string(),
            });
        }
    }
    if obj["immutable"] != json!(true) {
        causes.push(Cause {
            reason: "FieldValueForbidden".into(),
            message: "Forbidden: field is immutable when `immutable` is set".into(),
            field: "immutable".into(),
        });
    }
    if causes.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid(rt, name, &causes))
    }
}

fn secret(rt: &ResourceType, obj: &mut Value) -> Result<(), ApiError> {
    if let Some(Value::Object(string_data)) =
        obj.as_object_mut().and_then(|m| m.remove("stringData"))
    {
        let data = obj["data"].as_object().cloned().unwrap_or_default();
        let mut data = data;
        for (k, v) in string_data {
            let s = v.as_str().unwrap_or_default();
            data.insert(
                k,
                json!(base64::engine::general_purpose::STANDARD.encode(s)),
            );
        }
        obj["data"] = Value::Object(data);
    }
    if obj["type"].is_null() {
        obj["type"] = json!("Opaque");
    }
    if let Some(data) = obj["data"].as_object() {
        let name = obj["metadata"]["name"].as_str().unwrap_or("").to_string();
        let mut causes = Vec::new();
        for (k, v) in data {
            let ok = v
                .as_str()
                .is_some_and(|s| base64::engine::general_purpose::STANDARD.decode(s).is_ok());
            if !ok {
                causes.push(Cause {
                    reason: "FieldValueInvalid".into(),
                    message: "Invalid value: illegal base64 data".into(),
                    field: format!("data[{k}]"),
                });
            }
        }
        if !causes.is_empty() {
            return Err(ApiError::invalid(rt, &name, &causes));
        }
        if data.is_empty() {
            obj.as_object_mut().map(|m| m.remove("data"));
        }
    }
    Ok(())
}

fn service(obj: &mut Value, old: Option<&Value>, state: &mut State) {
    let spec = &mut obj["spec"];
    if spec["type"].is_null() {
        spec["type"] = json!("ClusterIP");
    }
    if spec["sessionAffinity"].is_null() {
        spec["sessionAffinity"] = json!("None");
    }
    if let Some(ports) = spec.get_mut("ports").and_then(Value::as_array_mut) {
        for p in ports {
            if p["protocol"].is_null() {
                p["protocol"] = json!("TCP");
            }
            if p["targetPort"].is_null() {
                p["targetPort"] = p["port"].clone();
            }
        }
    }
    let old_ip = old
        .map(|o| o["spec"]["clusterIP"].clone())
        .filter(|v| v.is_string());
    if spec["clusterIP"].is_null() || spec["clusterIP"] == json!("") {
        spec["clusterIP"] = match old_ip {
            Some(ip) => ip,
            None if spec["type"] == json!("ExternalName") => Value::Null,
            None => {
                let n = state.next_cluster_ip;
                state.next_cluster_ip += 1;
                json!(format!("10.96.{}.{}", (n >> 8) & 0xff, n & 0xff))
            }
        };
        if spec["clusterIP"].is_null() {
            spec.as_object_mut().map(|m| m.remove("clusterIP"));
        }
    }
    if spec["clusterIPs"].is_null() && spec["clusterIP"].is_string() {
        spec["clusterIPs"] = json!([spec["clusterIP"].clone()]);
    }
    if spec["type"] != json!("ExternalName") {
        if spec["ipFamilies"].is_null() {
            spec["ipFamilies"] = json!(["IPv4"]);
        }
        if spec["ipFamilyPolicy"].is_null() {
            spec["ipFamilyPolicy"] = json!("SingleStack");
        }
        if spec["internalTrafficPolicy"].is_null() {
            spec["internalTrafficPolicy"] = json!("Cluster");
        }
    }
    if obj["status"].is_null() {
        obj["status"] = json!({"loadBalancer": {}});
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::Registry;

    #[test]
    fn secret_string_data_is_folded_into_base64_data() {
        let reg = Registry::with_builtins();
        let rt = reg.get("", "secrets").unwrap().clone();
        let mut state = State::new(10);
        let mut obj =
            json!({"metadata": {"name": "s"}, "data": {"a": "eA=="}, "stringData": {"b": "hello"}});
        normalize(&rt, &mut obj, None, &mut state).unwrap();
        assert_eq!(obj["data"]["b"], json!("aGVsbG8="));
        assert_eq!(obj["data"]["a"], json!("eA=="));
        assert!(obj.get("stringData").is_none());
        assert_eq!(obj["type"], json!("Opaque"));
    }

    #[test]
    fn immutable_secret_rejects_data_changes_but_not_label_changes() {
        let reg = Registry::with_builtins();
        let rt = reg.get("", "secrets").unwrap().clone();
        let mut state = State::new(10);
        let old = json!({"metadata": {"name": "s"}, "type": "Opaque", "immutable": true, "data": {"a": "eA=="}});
        let mut relabelled = old.clone();
        relabelled["metadata"]["labels"] = json!({"x": "y"});
        normalize(&rt, &mut relabelled, Some(&old), &mut state).unwrap();
        let mut changed = old.clone();
        changed["data"]["a"] = json!("eQ==");
        let err = normalize(&rt, &mut changed, Some(&old), &mut state).unwrap_err();
        assert_eq!(
            err.message,
            "Secret \"s\" is invalid: data: Forbidden: field is immutable when `immutable` is set"
        );
    }

    #[test]
    fn secret_with_bad_base64_is_invalid() {
        let reg = Registry::with_builtins();
        let rt = reg.get("", "secrets").unwrap().clone();
        let mut state = State::new(10);
        let mut obj = json!({"metadata": {"name": "s"}, "data": {"a": "not base64!"}});
        let err = normalize(&rt, &mut obj, None, &mut state).unwrap_err();
        assert_eq!(err.code, 422);
    }
}
