//! The HTTP front: parses Kubernetes API paths, applies injected faults, logs requests,
//! and hands each verb to its handler.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::Request;
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::faults::{FaultAction, Faults, RequestEntry, RequestLog};
use crate::form::{self, Form};
#[cfg(feature = "kubectl")]
use crate::kubectl::{openapi, protobuf, reviews, scale};
use crate::status::ApiError;
use crate::store::State;
use crate::verbs::{self, DeleteParams, PatchType, Selection, Target, WriteParams};
use crate::watch::{self, WatchParams};
use crate::{discovery, list};

/// Everything a request handler needs.
pub struct Shared {
    pub state: Arc<Mutex<State>>,
    pub faults: Faults,
    pub log: RequestLog,
    pub server_address: String,
    pub bookmark_interval: Duration,
    pub shutdown: CancellationToken,
}

fn json_response(code: StatusCode, v: &Value) -> Response {
    bytes_response(
        code,
        serde_json::to_vec(v).unwrap_or_default(),
        "application/json",
    )
}

fn bytes_response(code: StatusCode, body: Vec<u8>, content_type: &'static str) -> Response {
    let mut resp = (code, body).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static(content_type),
    );
    resp
}

fn header_str(h: &HeaderMap, name: header::HeaderName) -> &str {
    h.get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
}

/// A parsed resource path.
struct ResourcePath {
    group: String,
    version: String,
    resource: String,
    namespace: Option<String>,
    name: Option<String>,
    subresource: Option<String>,
}

fn parse_resource_path(group: &str, version: &str, rest: &[&str]) -> Option<ResourcePath> {
    let mk = |resource: &str, namespace: Option<&str>, name: Option<&str>, sub: Option<&str>| {
        ResourcePath {
            group: group.to_string(),
            version: version.to_string(),
            resource: resource.to_string(),
            namespace: namespace.map(str::to_string),
            name: name.map(str::to_string),
            subresource: sub.map(str::to_string),
        }
    };
    match rest {
        // /namespaces/{ns}/{resource}[/{name}[/{sub}]], but /namespaces/{name}/status|finalize
        // addresses the Namespace itself.
        ["namespaces", ns, res] if group.is_empty() && (*res == "status" || *res == "finalize") => {
            Some(mk("namespaces", None, Some(ns), Some(res)))
        }
        ["namespaces", ns, res] => Some(mk(res, Some(ns), None, None)),
        ["namespaces", ns, res, name] => Some(mk(res, Some(ns), Some(name), None)),
        ["namespaces", ns, res, name, sub] => Some(mk(res, Some(ns), Some(name), Some(sub))),
        [res] => Some(mk(res, None, None, None)),
        [res, name] => Some(mk(res, None, Some(name), None)),
        [res, name, sub] => Some(mk(res, None, Some(name), Some(sub))),
        _ => None,
    }
}

fn query_map(uri: &axum::http::Uri) -> HashMap<String, String> {
    uri.query()
        .map(|q| {
            url_pairs(q)
                .into_iter()
                .collect::<HashMap<String, String>>()
        })
        .unwrap_or_default()
}

fn url_pairs(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter(|s| !s.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (decode(k), decode(v))
        })
        .collect()
}

fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'+' {
            out.push(b' ');
        } else if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
            if let Ok(b) = u8::from_str_radix(hex, 16) {
                out.push(b);
                i += 3;
                continue;
            }
            out.push(b'%');
        } else {
            out.push(bytes[i]);
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn manager_from_user_agent(ua: &str) -> String {
    let prefix = ua.split('/').next().unwrap_or("").trim();
    if prefix.is_empty() {
        "unknown".to_string()
    } else {
        prefix.chars().take(128).collect()
    }
}

/// The single entry point of every request.
pub async fn handle(shared: Arc<Shared>, req: Request) -> Response {
    match route(shared, req).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn route(shared: Arc<Shared>, req: Request) -> Result<Response, ApiError> {
    let (parts, body) = req.into_parts();
    let path = parts.uri.path().to_string();
    let segs: Vec<&str> = path
        .trim_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    let accept = header_str(&parts.headers, header::ACCEPT).to_string();
    let is_get = parts.method == Method::GET;
    // Discovery and OpenAPI.
    match segs.as_slice() {
        ["version"] if is_get => return Ok(json_response(StatusCode::OK, &discovery::version())),
        ["healthz"] | ["livez"] | ["readyz"] if is_get => {
            return Ok(bytes_response(StatusCode::OK, b"ok".to_vec(), "text/plain"));
        }
        ["api"] if is_get => {
            if let Some(ct) = discovery::aggregated_type(&accept) {
                let st = shared.state.lock().expect("store lock");
                let body = discovery::aggregated(&st.registry, true, ct);
                return Ok(bytes_response(
                    StatusCode::OK,
                    serde_json::to_vec(&body).unwrap_or_default(),
                    ct,
                ));
            }
            return Ok(json_response(
                StatusCode::OK,
                &discovery::core_versions(&shared.server_address),
            ));
        }
        ["apis"] if is_get => {
            let st = shared.state.lock().expect("store lock");
            if let Some(ct) = discovery::aggregated_type(&accept) {
                let body = discovery::aggregated(&st.registry, false, ct);
                return Ok(bytes_response(
                    StatusCode::OK,
                    serde_json::to_vec(&body).unwrap_or_default(),
                    ct,
                ));
            }
            return Ok(json_response(
                StatusCode::OK,
                &discovery::groups(&st.registry),
            ));
        }
        ["api", v] if is_get => {
            let st = shared.state.lock().expect("store lock");
            return discovery::resource_list(&st.registry, "", v)
                .map(|b| json_response(StatusCode::OK, &b))
                .ok_or_else(ApiError::path_not_found);
        }
        ["apis", g] if is_get => {
            let st = shared.state.lock().expect("store lock");
            return discovery::group(&st.registry, g)
                .map(|b| json_response(StatusCode::OK, &b))
                .ok_or_else(ApiError::path_not_found);
        }
        ["apis", g, v] if is_get => {
            let st = shared.state.lock().expect("store lock");
            return discovery::resource_list(&st.registry, g, v)
                .map(|b| json_response(StatusCode::OK, &b))
                .ok_or_else(ApiError::path_not_found);
        }
        #[cfg(feature = "kubectl")]
        ["openapi", rest @ ..] if is_get => {
            let st = shared.state.lock().expect("store lock");
            return openapi::serve(&st.registry, rest, &accept);
        }
        _ => {}
    }
    let rp = match segs.as_slice() {
        ["api", v, rest @ ..] => parse_resource_path("", v, rest),
        ["apis", g, v, rest @ ..] => parse_resource_path(g, v, rest),
        _ => None,
    }
    .ok_or_else(ApiError::path_not_found)?;
    let query = query_map(&parts.uri);
    let q = |k: &str| query.get(k).map(String::as_str);
    let rt = {
        let st = shared.state.lock().expect("store lock");
        st.registry.lookup(&rp.group, &rp.version, &rp.resource)
    }
    .ok_or_else(ApiError::path_not_found)?;
    if rp.namespace.is_some() && !rt.namespaced {
        return Err(ApiError::path_not_found());
    }
    if rp.name.is_some() && rp.namespace.is_none() && rt.namespaced {
        return Err(ApiError::path_not_found());
    }
    if let Some(sub) = &rp.subresource {
        let ok = match sub.as_str() {
            "status" => match rt.crd_version(&rp.version) {
                Some(v) => v.status_subresource,
                None => rt.has_status,
            },
            "finalize" => rt.resource == "namespaces" && rt.group.is_empty(),
            "scale" => rt.has_scale(),
            _ => false,
        };
        if !ok {
            return Err(ApiError::path_not_found());
        }
    }
    let watch_flag = matches!(q("watch"), Some("true") | Some("1"));
    let verb = match (&parts.method, rp.name.is_some()) {
        (&Method::GET, true) => "get",
        (&Method::GET, false) if watch_flag => "watch",
        (&Method::GET, false) => "list",
        (&Method::POST, false) => "create",
        (&Method::PUT, true) => "update",
        (&Method::PATCH, true) => "patch",
        (&Method::DELETE, true) => "delete",
        (&Method::DELETE, false) => "deletecollection",
        _ => {
            return Err(ApiError::method_not_allowed(
                "the server does not allow this method on the requested resource",
            ));
        }
    };
    let entry = RequestEntry {
        verb: verb.to_string(),
        resource: rt.resource.clone(),
        subresource: rp.subresource.clone(),
        group: rt.group.clone(),
        namespace: rp.namespace.clone(),
        name: rp.name.clone(),
    };
    let resource_path = entry.resource_path();
    shared.log.record(entry);
    match shared.faults.take(verb, &resource_path) {
        Some(FaultAction::Fail(code)) => return Err(ApiError::injected(code)),
        Some(FaultAction::Delay(d)) => tokio::time::sleep(d).await,
        None => {}
    }
    let target = Target {
        rt: rt.clone(),
        version: rp.version.clone(),
        namespace: rp.namespace.clone(),
        name: rp.name.clone(),
        subresource: rp.subresource.clone().filter(|s| s != "finalize"),
    };
    let selection = || -> Result<Selection, ApiError> {
        Ok(Selection {
            labels: crate::selectors::LabelSelector::parse(q("labelSelector").unwrap_or(""))?,
            fields: {
                let raw = q("fieldSelector").unwrap_or("");
                if rt.is_alias() {
                    crate::selectors::FieldSelector::parse(&crate::events::field_selector_to_core(
                        raw,
                    ))?
                } else {
                    crate::selectors::FieldSelector::parse(raw)?
                }
            },
        })
    };
    let answer_form = Form::from_request(&accept, q("includeObject"));
    let body = axum::body::to_bytes(body, 256 * 1024 * 1024)
        .await
        .map_err(|e| ApiError::bad_request(format!("failed to read request body: {e}")))?;
    let ua = header_str(&parts.headers, header::USER_AGENT);
    let dry_run = query.iter().any(|(k, v)| k == "dryRun" && v == "All");
    let write = WriteParams {
        dry_run,
        manager: q("fieldManager")
            .filter(|m| !m.is_empty())
            .map(str::to_string)
            .unwrap_or_else(|| manager_from_user_agent(ua)),
        explicit_manager: q("fieldManager").is_some_and(|m| !m.is_empty()),
        force: q("force") == Some("true"),
        strict: q("fieldValidation") == Some("Strict"),
    };
    let body_type = header_str(&parts.headers, header::CONTENT_TYPE).to_string();
    let parse_body = || -> Result<Value, ApiError> {
        let base = body_type.split(';').next().unwrap_or("").trim();
        #[cfg(feature = "kubectl")]
        if base == protobuf::CONTENT_TYPE {
            return protobuf::decode(&body);
        }
        if !matches!(base, "" | "application/json" | "application/yaml" | "*/*") {
            return Err(ApiError::unsupported_media_type(base));
        }
        serde_json::from_slice::<Value>(&body)
            .or_else(|_| serde_yaml::from_slice::<Value>(&body))
            .map_err(|e| ApiError::bad_request(format!("failed to decode request body: {e}")))
    };
    let ok_object = |code: StatusCode, obj: &Value| -> Response {
        if answer_form == Form::Metadata {
            return json_response(code, &form::partial(obj));
        }
        if code == StatusCode::OK {
            let rv = obj["metadata"]["resourceVersion"].as_str().unwrap_or("");
            if let Some(tbl) = answer_form.table(&rt, &rp.version, std::iter::once(obj), rv, None) {
                return json_response(code, &tbl);
            }
        }
        json_response(code, obj)
    };
    #[cfg(feature = "kubectl")]
    if rt.review {
        if verb != "create" {
            return Err(ApiError::method_not_allowed(
                "the server does not allow this method on the requested resource",
            ));
        }
        // Typed clients send reviews as protobuf; the answer does not depend on the spec.
        let review = if body_type.starts_with(protobuf::CONTENT_TYPE) {
            serde_json::json!({})
        } else {
            parse_body()?
        };
        return Ok(json_response(
            StatusCode::CREATED,
            &reviews::answer(&rt, review),
        ));
    }
    #[cfg(feature = "kubectl")]
    if target.subresource.as_deref() == Some("scale") {
        let mut st = shared.state.lock().expect("store lock");
        let out = match verb {
            "get" => scale::get(&st, &target)?,
            "update" => scale::write(&mut st, &target, &body, None, &write)?,
            "patch" => {
                let ct = header_str(&parts.headers, header::CONTENT_TYPE);
                let ptype = PatchType::from_content_type(ct)
                    .ok_or_else(|| ApiError::unsupported_media_type(ct))?;
                scale::write(&mut st, &target, &body, Some(ptype), &write)?
            }
            _ => {
                return Err(ApiError::method_not_allowed(
                    "the server does not allow this method on the requested resource",
                ));
            }
        };
        return Ok(json_response(StatusCode::OK, &out));
    }
    match verb {
        "get" => {
            let st = shared.state.lock().expect("store lock");
            let obj = verbs::get(&st, &target)?;
            drop(st);
            let obj = verbs::present(&rt, &rp.version, &obj);
            Ok(ok_object(StatusCode::OK, &obj))
        }
        "list" => {
            let limit = q("limit").and_then(|l| l.parse::<usize>().ok());
            let page = list::collect(&shared.state, &target, &selection()?, limit, q("continue"))?;
            let body = list::serialize(&target, &page, &answer_form);
            Ok(bytes_response(StatusCode::OK, body, "application/json"))
        }
        "watch" => {
            let timeout = q("timeoutSeconds")
                .and_then(|s| s.parse::<u64>().ok())
                .map(Duration::from_secs);
            let p = WatchParams {
                selection: selection()?,
                resource_version: q("resourceVersion").map(str::to_string),
                bookmarks: q("allowWatchBookmarks") == Some("true"),
                send_initial_events: q("sendInitialEvents") == Some("true"),
                timeout,
                form: answer_form.clone(),
                bookmark_interval: shared.bookmark_interval,
            };
            watch::start(shared.state.clone(), target, p, shared.shutdown.clone())
        }
        "create" => {
            let obj = parse_body()?;
            let mut st = shared.state.lock().expect("store lock");
            let out = verbs::create(&mut st, &target, obj, &write)?;
            Ok(ok_object(StatusCode::CREATED, &out))
        }
        "update" => {
            let obj = parse_body()?;
            let mut st = shared.state.lock().expect("store lock");
            let out = verbs::update(&mut st, &target, obj, &write)?;
            Ok(ok_object(StatusCode::OK, &out))
        }
        "patch" => {
            let ct = header_str(&parts.headers, header::CONTENT_TYPE);
            let ptype = PatchType::from_content_type(ct)
                .ok_or_else(|| ApiError::unsupported_media_type(ct))?;
            let mut st = shared.state.lock().expect("store lock");
            let existed = st
                .get(
                    &rt.key(),
                    &(
                        rp.namespace.clone().unwrap_or_default(),
                        rp.name.clone().unwrap_or_default(),
                    ),
                )
                .is_some();
            let out = verbs::patch(&mut st, &target, ptype, &body, &write)?;
            let code = if existed || dry_run {
                StatusCode::OK
            } else {
                StatusCode::CREATED
            };
            Ok(ok_object(code, &out))
        }
        "delete" | "deletecollection" => {
            let base = DeleteParams {
                dry_run,
                propagation: q("propagationPolicy").map(str::to_string),
                ..DeleteParams::default()
            };
            let d = DeleteParams::from_body(&body, base)?;
            let mut st = shared.state.lock().expect("store lock");
            let out = if verb == "delete" {
                verbs::delete(&mut st, &target, &d)?
            } else {
                verbs::delete_collection(&mut st, &target, &selection()?, &d)?
            };
            Ok(json_response(StatusCode::OK, &out))
        }
        _ => Err(ApiError::method_not_allowed("unsupported verb")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_are_percent_and_plus_decoded() {
        let pairs =
            url_pairs("labelSelector=app+in+%28a%2Cb%29,x&fieldSelector=metadata.name%3Dn&watch");
        assert_eq!(pairs[0], ("labelSelector".into(), "app in (a,b),x".into()));
        assert_eq!(pairs[1], ("fieldSelector".into(), "metadata.name=n".into()));
        assert_eq!(pairs[2], ("watch".into(), String::new()));
        assert_eq!(decode("100%"), "100%");
    }

    #[test]
    fn namespace_paths_distinguish_the_namespace_itself_from_its_contents() {
        let status = parse_resource_path("", "v1", &["namespaces", "team", "status"]).unwrap();
        assert_eq!(
            (
                status.resource.as_str(),
                status.name.as_deref(),
                status.subresource.as_deref()
            ),
            ("namespaces", Some("team"), Some("status"))
        );
        let secrets = parse_resource_path("", "v1", &["namespaces", "team", "secrets"]).unwrap();
        assert_eq!(
            (
                secrets.resource.as_str(),
                secrets.namespace.as_deref(),
                secrets.name
            ),
            ("secrets", Some("team"), None)
        );
        let scale = parse_resource_path(
            "apps",
            "v1",
            &["namespaces", "d", "deployments", "web", "scale"],
        )
        .unwrap();
        assert_eq!(scale.subresource.as_deref(), Some("scale"));
        assert!(parse_resource_path("", "v1", &["a", "b", "c", "d"]).is_none());
    }

    #[test]
    fn field_manager_defaults_to_the_user_agent_prefix() {
        assert_eq!(
            manager_from_user_agent("kubectl/v1.32.4 (linux/amd64) kubernetes/abc"),
            "kubectl"
        );
        assert_eq!(manager_from_user_agent(""), "unknown");
    }
}
