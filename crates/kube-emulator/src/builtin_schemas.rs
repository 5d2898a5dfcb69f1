//! OpenAPI v3 schemas of the built-in kinds, generated once from k8s-openapi's JSON
//! schemas (the upstream descriptions): the fields a built-in object may have (strict field
//! validation, and the pruning of typed decoding) and, with the `kubectl` feature, the
//! documents `kubectl explain secret` reads.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use k8s_openapi::api::{apps, coordination, core, events, networking, policy, rbac};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use schemars::JsonSchema;
use schemars::generate::{SchemaGenerator, SchemaSettings};
use serde_json::{Map, Value};

/// Every generated definition, and the definition name of each (group, kind).
struct Schemas {
    definitions: Map<String, Value>,
    roots: BTreeMap<(&'static str, &'static str), String>,
}

fn add<T: JsonSchema>(
    g: &mut SchemaGenerator,
    roots: &mut BTreeMap<(&'static str, &'static str), String>,
    group: &'static str,
    kind: &'static str,
) {
    g.subschema_for::<T>();
    roots.insert((group, kind), T::schema_name().into_owned());
}

fn schemas() -> &'static Schemas {
    static SCHEMAS: OnceLock<Schemas> = OnceLock::new();
    SCHEMAS.get_or_init(|| {
        let mut g = SchemaSettings::openapi3().into_generator();
        let mut roots = BTreeMap::new();
        let r = &mut roots;
        add::<core::v1::Namespace>(&mut g, r, "", "Namespace");
        add::<core::v1::Secret>(&mut g, r, "", "Secret");
        add::<core::v1::ConfigMap>(&mut g, r, "", "ConfigMap");
        add::<core::v1::ServiceAccount>(&mut g, r, "", "ServiceAccount");
        add::<core::v1::Service>(&mut g, r, "", "Service");
        add::<core::v1::Event>(&mut g, r, "", "Event");
        add::<core::v1::Pod>(&mut g, r, "", "Pod");
        add::<apps::v1::Deployment>(&mut g, r, "apps", "Deployment");
        add::<apps::v1::StatefulSet>(&mut g, r, "apps", "StatefulSet");
        add::<apps::v1::DaemonSet>(&mut g, r, "apps", "DaemonSet");
        add::<apps::v1::ReplicaSet>(&mut g, r, "apps", "ReplicaSet");
        add::<rbac::v1::Role>(&mut g, r, "rbac.authorization.k8s.io", "Role");
        add::<rbac::v1::RoleBinding>(&mut g, r, "rbac.authorization.k8s.io", "RoleBinding");
        add::<rbac::v1::ClusterRole>(&mut g, r, "rbac.authorization.k8s.io", "ClusterRole");
        add::<rbac::v1::ClusterRoleBinding>(
            &mut g,
            r,
            "rbac.authorization.k8s.io",
            "ClusterRoleBinding",
        );
        add::<coordination::v1::Lease>(&mut g, r, "coordination.k8s.io", "Lease");
        add::<policy::v1::PodDisruptionBudget>(&mut g, r, "policy", "PodDisruptionBudget");
        add::<networking::v1::NetworkPolicy>(&mut g, r, "networking.k8s.io", "NetworkPolicy");
        add::<events::v1::Event>(&mut g, r, "events.k8s.io", "Event");
        add::<CustomResourceDefinition>(
            &mut g,
            r,
            "apiextensions.k8s.io",
            "CustomResourceDefinition",
        );
        let definitions = g
            .take_definitions(true)
            .into_iter()
            .collect::<Map<String, Value>>();
        Schemas { definitions, roots }
    })
}

#[cfg(feature = "kubectl")]
fn refs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                if k == "$ref" {
                    if let Some(name) = x
                        .as_str()
                        .and_then(|s| s.strip_prefix("#/components/schemas/"))
                    {
                        out.push(name.to_string());
                    }
                } else {
                    refs(x, out);
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|x| refs(x, out)),
        _ => {}
    }
}

#[cfg(feature = "kubectl")]
/// The root definition name of a built-in kind and every definition it reaches, with the
/// root marked by `x-kubernetes-group-version-kind`.
pub fn for_kind(group: &str, version: &str, kind: &str) -> Option<(String, Map<String, Value>)> {
    let s = schemas();
    let root = s
        .roots
        .iter()
        .find(|((g, k), _)| *g == group && *k == kind)
        .map(|(_, name)| name.clone())?;
    let mut seen = std::collections::BTreeSet::new();
    let mut todo = vec![root.clone()];
    let mut out = Map::new();
    while let Some(name) = todo.pop() {
        if !seen.insert(name.clone()) {
            continue;
        }
        let Some(def) = s.definitions.get(&name) else {
            continue;
        };
        refs(def, &mut todo);
        out.insert(name, def.clone());
    }
    if let Some(Value::Object(m)) = out.get_mut(&root) {
        m.insert(
            "x-kubernetes-group-version-kind".into(),
            serde_json::json!([{ "group": group, "version": version, "kind": kind }]),
        );
    }
    Some((root, out))
}

/// Follow `$ref` (also wrapped in a one-element `allOf`, as schemars writes a reference
/// that carries its own description) to the definition.
fn resolve<'a>(defs: &'a Map<String, Value>, schema: &'a Value) -> &'a Value {
    let mut cur = schema;
    for _ in 0..16 {
        if let Some(name) = cur["$ref"]
            .as_str()
            .and_then(|r| r.strip_prefix("#/components/schemas/"))
        {
            match defs.get(name) {
                Some(d) => cur = d,
                None => return cur,
            }
        } else if let Some([only]) = cur["allOf"].as_array().map(Vec::as_slice) {
            cur = only;
        } else {
            return cur;
        }
    }
    cur
}

fn walk(
    defs: &Map<String, Value>,
    schema: &Value,
    value: &mut Value,
    path: &str,
    prune: bool,
    out: &mut Vec<String>,
) {
    let s = resolve(defs, schema);
    let join = |k: &str| {
        if path.is_empty() {
            k.to_string()
        } else {
            format!("{path}.{k}")
        }
    };
    match value {
        Value::Object(m) => {
            let props = s["properties"].as_object();
            let additional = s["additionalProperties"]
                .as_object()
                .map(|_| &s["additionalProperties"]);
            let mut unknown = Vec::new();
            for (k, v) in m.iter_mut() {
                match (props.and_then(|p| p.get(k)), additional) {
                    (Some(sub), _) => walk(defs, sub, v, &join(k), prune, out),
                    (None, Some(add)) => walk(defs, add, v, &join(k), prune, out),
                    (None, None) if props.is_some() => unknown.push(k.clone()),
                    (None, None) => {}
                }
            }
            for k in unknown {
                out.push(join(&k));
                if prune {
                    m.remove(&k);
                }
            }
        }
        Value::Array(a) if s.get("items").is_some() => {
            for (i, v) in a.iter_mut().enumerate() {
                walk(defs, &s["items"], v, &format!("{path}[{i}]"), prune, out);
            }
        }
        _ => {}
    }
}

/// Fields of a built-in object its schema does not declare (`spec.replica`), as apiserver's
/// strict decoding names them; with `prune`, they are also dropped, as typed decoding does.
pub fn unknown_fields(group: &str, kind: &str, obj: &mut Value, prune: bool) -> Vec<String> {
    let s = schemas();
    let Some(root) = s
        .roots
        .iter()
        .find(|((g, k), _)| *g == group && *k == kind)
        .map(|(_, n)| n)
    else {
        return Vec::new();
    };
    let Some(schema) = s.definitions.get(root) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    walk(&s.definitions, schema, obj, "", prune, &mut out);
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(feature = "kubectl")]
    #[test]
    fn secret_schema_carries_upstream_descriptions_and_reaches_object_meta() {
        let (root, defs) = for_kind("", "v1", "Secret").unwrap();
        assert_eq!(root, "io.k8s.api.core.v1.Secret");
        let secret = &defs[&root];
        assert!(
            secret["description"]
                .as_str()
                .unwrap()
                .starts_with("Secret holds secret data")
        );
        assert!(defs.contains_key("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"));
        assert_eq!(
            secret["x-kubernetes-group-version-kind"][0]["kind"],
            "Secret"
        );
    }

    #[test]
    fn unknown_fields_are_found_through_refs_maps_and_lists() {
        let mut d = serde_json::json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "d", "labels": {"any": "label"}, "bogus": 1},
            "spec": {"replica": 2, "selector": {"matchLabels": {"a": "b"}},
                     "template": {"spec": {"containers": [{"name": "c", "image": "i", "imagePullPolicy": "Always", "colour": "red"}]}}},
        });
        let found = unknown_fields("apps", "Deployment", &mut d, true);
        assert_eq!(
            found,
            [
                "metadata.bogus",
                "spec.replica",
                "spec.template.spec.containers[0].colour"
            ]
        );
        assert!(d["spec"].get("replica").is_none());
        assert_eq!(d["metadata"]["labels"]["any"], "label");
        assert_eq!(
            d["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"],
            "Always"
        );
    }
}
