//! OpenAPI documents, as much as kubectl needs: the v3 index of group-versions and one
//! document per group-version, carrying the built-in kinds' upstream schemas and each
//! CRD's own, so `kubectl explain` works on both. The v2 document is not served (404),
//! which kubectl tolerates.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::registry::Registry;
use crate::status::ApiError;

fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

fn index(reg: &Registry) -> Value {
    let mut paths = serde_json::Map::new();
    let mut gvs: Vec<(String, String)> = vec![(String::new(), "v1".to_string())];
    for g in reg.groups() {
        for v in reg.group_versions(&g) {
            gvs.push((g.clone(), v));
        }
    }
    for (g, v) in gvs {
        let p = gv_path(&g, &v);
        let hash = document_hash(reg, &g, &v);
        paths.insert(
            p.clone(),
            json!({ "serverRelativeURL": format!("/openapi/v3/{p}?hash={hash}") }),
        );
    }
    json!({ "paths": paths })
}

/// Changes when the group-version's types or CRD schemas change, so kubectl refetches.
fn document_hash(reg: &Registry, group: &str, version: &str) -> String {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for rt in reg.types_in(group, version) {
        rt.kind.hash(&mut h);
        rt.resource.hash(&mut h);
        if let Some(v) = rt.crd_version(version) {
            v.raw_schema.as_ref().map(Value::to_string).hash(&mut h);
        }
    }
    format!("{:016X}", h.finish())
}

fn schema_name(group: &str, version: &str, kind: &str) -> String {
    let g = if group.is_empty() {
        "core".to_string()
    } else {
        group.split('.').rev().collect::<Vec<_>>().join(".")
    };
    format!("io.k8s.api.{g}.{version}.{kind}")
}

fn document(reg: &Registry, group: &str, version: &str) -> Value {
    let mut schemas = serde_json::Map::new();
    let mut paths = serde_json::Map::new();
    for rt in reg.types_in(group, version) {
        let gvk = json!([{ "group": group, "version": version, "kind": rt.kind }]);
        let name = if rt.is_custom() {
            let mut schema = rt
                .crd_version(version)
                .and_then(|v| v.raw_schema.clone())
                .unwrap_or_else(|| json!({ "type": "object" }));
            if let Some(m) = schema.as_object_mut() {
                m.insert("x-kubernetes-group-version-kind".into(), gvk);
                let props = m.entry("properties").or_insert_with(|| json!({}));
                if let Some(p) = props.as_object_mut() {
                    p.entry("apiVersion").or_insert_with(|| json!({"type": "string", "description": "APIVersion defines the versioned schema of this representation of an object."}));
                    p.entry("kind").or_insert_with(|| json!({"type": "string", "description": "Kind is a string value representing the REST resource this object represents."}));
                    p.entry("metadata").or_insert_with(
                        || json!({"type": "object", "description": "Standard object's metadata."}),
                    );
                }
            }
            let name = schema_name(group, version, &rt.kind);
            schemas.insert(name.clone(), schema);
            name
        } else if let Some((root, defs)) =
            crate::builtin_schemas::for_kind(group, version, &rt.kind)
        {
            schemas.extend(defs);
            root
        } else {
            let name = schema_name(group, version, &rt.kind);
            schemas.insert(
                name.clone(),
                json!({"type": "object", "x-kubernetes-group-version-kind": gvk}),
            );
            name
        };
        let base = if rt.namespaced {
            format!(
                "/{}/namespaces/{{namespace}}/{}/{{name}}",
                gv_path(group, version),
                rt.resource
            )
        } else {
            format!("/{}/{}/{{name}}", gv_path(group, version), rt.resource)
        };
        let params = json!([
            {"name": "dryRun", "in": "query", "schema": {"type": "string", "uniqueItems": true}},
            {"name": "fieldManager", "in": "query", "schema": {"type": "string", "uniqueItems": true}},
            {"name": "fieldValidation", "in": "query", "schema": {"type": "string", "uniqueItems": true}},
            {"name": "force", "in": "query", "schema": {"type": "boolean", "uniqueItems": true}},
        ]);
        let gvk_op = json!({ "group": group, "version": version, "kind": rt.kind });
        let reference = json!({"$ref": format!("#/components/schemas/{name}")});
        paths.insert(
            base,
            json!({
                "get": {"responses": {"200": {"content": {"application/json": {"schema": reference}}}}, "x-kubernetes-action": "get", "x-kubernetes-group-version-kind": gvk_op},
                "put": {"parameters": params, "responses": {"200": {"content": {"application/json": {"schema": reference}}}}, "x-kubernetes-action": "put", "x-kubernetes-group-version-kind": gvk_op},
                "patch": {"parameters": params, "responses": {"200": {"content": {"application/json": {"schema": reference}}}}, "x-kubernetes-action": "patch", "x-kubernetes-group-version-kind": gvk_op},
            }),
        );
    }
    json!({
        "openapi": "3.0.0",
        "info": { "title": "Kubernetes", "version": "v1.34.0" },
        "paths": paths,
        "components": { "schemas": schemas },
    })
}

/// Serve `/openapi/...`.
pub fn serve(reg: &Registry, rest: &[&str], _accept: &str) -> Result<Response, ApiError> {
    let body = match rest {
        ["v3"] => index(reg),
        ["v3", "api", v] => document(reg, "", v),
        ["v3", "apis", g, v] if !reg.types_in(g, v).is_empty() => document(reg, g, v),
        _ => return Err(ApiError::path_not_found()),
    };
    let mut resp = (
        StatusCode::OK,
        serde_json::to_vec(&body).unwrap_or_default(),
    )
        .into_response();
    resp.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static("application/json"),
    );
    Ok(resp)
}
