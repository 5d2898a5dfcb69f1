//! The write and read verbs on single objects (get, create, update, patch, delete,
//! deletecollection), all running under the store lock so each is atomic.

use std::sync::Arc;

use emulator_patch::{ApplyOptions, PatchError};
use rand::Rng;
use serde_json::{Map, Value, json};

use crate::registry::ResourceType;
use crate::selectors::{FieldSelector, LabelSelector};
use crate::status::{ApiError, Cause};
use crate::store::{ObjKey, State};
use crate::{crds, gc, kinds};

/// The object (or collection) a request addresses.
#[derive(Clone)]
pub struct Target {
    pub rt: Arc<ResourceType>,
    pub version: String,
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub subresource: Option<String>,
}

impl Target {
    fn okey(&self) -> ObjKey {
        (
            self.namespace.clone().unwrap_or_default(),
            self.name.clone().unwrap_or_default(),
        )
    }

    fn name(&self) -> &str {
        self.name.as_deref().unwrap_or("")
    }

    fn is_status(&self) -> bool {
        self.subresource.as_deref() == Some("status")
    }
}

/// Query parameters of a write.
#[derive(Default, Clone)]
pub struct WriteParams {
    pub dry_run: bool,
    /// `fieldManager`, or the manager apiserver derives from the User-Agent.
    pub manager: String,
    pub explicit_manager: bool,
    pub force: bool,
    /// `fieldValidation=Strict` (kubectl's default): unknown fields are an error instead
    /// of being pruned silently.
    pub strict: bool,
}

pub fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

pub fn new_uid() -> String {
    let mut b: [u8; 16] = rand::thread_rng().r#gen();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

fn random_suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut rng = rand::thread_rng();
    (0..5)
        .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
        .collect()
}

/// The stored object as the requested version presents it.
pub fn present(rt: &ResourceType, version: &str, obj: &Value) -> Value {
    if rt.is_alias() {
        return crate::events::from_core(obj);
    }
    let mut out = obj.clone();
    out["apiVersion"] = json!(rt.api_version(version));
    out
}

fn metadata_mut(obj: &mut Value) -> Result<&mut Map<String, Value>, ApiError> {
    let map = obj
        .as_object_mut()
        .ok_or_else(|| ApiError::bad_request("the body of the request must be a JSON object"))?;
    let md = map.entry("metadata").or_insert_with(|| json!({}));
    if md.is_null() {
        *md = json!({});
    }
    md.as_object_mut()
        .ok_or_else(|| ApiError::bad_request("metadata must be an object"))
}

fn required(field: &str, detail: &str) -> Cause {
    Cause {
        reason: "FieldValueRequired".into(),
        message: if detail.is_empty() {
            "Required value".into()
        } else {
            format!("Required value: {detail}")
        },
        field: field.into(),
    }
}

fn invalid_value(field: &str, value: &str, detail: &str) -> Cause {
    Cause {
        reason: "FieldValueInvalid".into(),
        message: format!("Invalid value: \"{value}\": {detail}"),
        field: field.into(),
    }
}

fn is_dns_subdomain(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|part| {
            !part.is_empty()
                && part
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                && !part.starts_with('-')
                && !part.ends_with('-')
        })
}

fn is_dns_label(s: &str) -> bool {
    is_dns_subdomain(s) && !s.contains('.') && s.len() <= 63
}

/// Empty metadata lists and maps are absent in apiserver's answers (Go's omitempty).
fn tidy_metadata(obj: &mut Value) {
    if let Some(md) = obj["metadata"].as_object_mut() {
        for k in [
            "finalizers",
            "ownerReferences",
            "labels",
            "annotations",
            "managedFields",
        ] {
            let empty = match md.get(k) {
                Some(Value::Array(a)) => a.is_empty(),
                Some(Value::Object(m)) => m.is_empty(),
                Some(Value::Null) => true,
                _ => false,
            };
            if empty {
                md.remove(k);
            }
        }
    }
}

/// Light validation of metadata apiserver would reject: name format, label and
/// annotation keys, label values.
fn validate_metadata(rt: &ResourceType, obj: &Value) -> Vec<Cause> {
    let md = &obj["metadata"];
    let name = md["name"].as_str().unwrap_or("");
    let mut causes = Vec::new();
    let name_ok = if rt.resource == "namespaces" {
        is_dns_label(name)
    } else if rt.group == "rbac.authorization.k8s.io" {
        !name.is_empty() && !name.contains('/') && !name.contains('%')
    } else {
        is_dns_subdomain(name)
    };
    if !name_ok && !name.is_empty() {
        causes.push(invalid_value(
            "metadata.name",
            name,
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')",
        ));
    }
    let key_ok = |k: &str| {
        let (prefix, n) = match k.rsplit_once('/') {
            Some((p, n)) => (Some(p), n),
            None => (None, k),
        };
        prefix.is_none_or(is_dns_subdomain)
            && !n.is_empty()
            && n.len() <= 63
            && n.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
            && n.starts_with(|c: char| c.is_ascii_alphanumeric())
            && n.ends_with(|c: char| c.is_ascii_alphanumeric())
    };
    for (field, map) in [
        ("metadata.labels", &md["labels"]),
        ("metadata.annotations", &md["annotations"]),
    ] {
        if let Some(m) = map.as_object() {
            for (k, v) in m {
                if !key_ok(k) {
                    causes.push(invalid_value(
                        field,
                        k,
                        "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character",
                    ));
                }
                if !v.is_string() {
                    causes.push(Cause {
                        reason: "FieldValueTypeInvalid".into(),
                        message: "Invalid value: must be a string".into(),
                        field: format!("{field}[{k}]"),
                    });
                } else if field == "metadata.labels" {
                    let s = v.as_str().unwrap_or("");
                    let ok = s.is_empty()
                        || (s.len() <= 63
                            && s.chars().all(|c| {
                                c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.'
                            })
                            && s.starts_with(|c: char| c.is_ascii_alphanumeric())
                            && s.ends_with(|c: char| c.is_ascii_alphanumeric()));
                    if !ok {
                        causes.push(invalid_value(
                            field,
                            s,
                            "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character",
                        ));
                    }
                }
            }
        }
    }
    causes
}

/// Paths present in `before` that pruning removed, as apiserver names them (`spec.foo`,
/// `spec.items[0].bar`).
fn unknown_fields(before: &Value, after: &Value, path: &str, out: &mut Vec<String>) {
    let join = |k: &str| {
        if path.is_empty() {
            k.to_string()
        } else {
            format!("{path}.{k}")
        }
    };
    match (before, after) {
        (Value::Object(b), Value::Object(a)) => {
            for (k, bv) in b {
                match a.get(k) {
                    Some(av) => unknown_fields(bv, av, &join(k), out),
                    None => out.push(join(k)),
                }
            }
        }
        (Value::Array(b), Value::Array(a)) if a.len() == b.len() => {
            for (i, (bv, av)) in b.iter().zip(a).enumerate() {
                unknown_fields(bv, av, &format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

fn strict_decoding_error(t: &Target, unknown: &[String]) -> ApiError {
    let list: Vec<String> = unknown
        .iter()
        .map(|f| format!("unknown field \"{f}\""))
        .collect();
    ApiError::bad_request(format!(
        "{kind} in version \"{version}\" cannot be handled as a {kind}: strict decoding error: {}",
        list.join(", "),
        kind = t.rt.kind,
        version = t.version,
    ))
}

/// Fields a built-in kind does not have: an error under strict field validation, else
/// dropped, as apiserver's typed decoding does.
fn builtin_fields(t: &Target, obj: &mut Value, strict: bool) -> Result<(), ApiError> {
    // Stored objects are in storage form (core/v1 for events.k8s.io Events).
    let group = if t.rt.is_alias() {
        ""
    } else {
        t.rt.group.as_str()
    };
    let unknown = crate::builtin_schemas::unknown_fields(group, &t.rt.kind, obj, true);
    if strict && !unknown.is_empty() {
        return Err(strict_decoding_error(t, &unknown));
    }
    Ok(())
}

/// Pruning, defaulting and schema validation of a custom resource, in apiserver's order
/// (so strict field validation judges only what the request carried, never a default).
fn custom_schema(
    t: &Target,
    obj: &mut Value,
    old: Option<&Value>,
    strict: bool,
) -> Result<(), ApiError> {
    let Some(v) = t.rt.crd_version(&t.version) else {
        return Ok(());
    };
    let Some(schema) = &v.schema else {
        return Ok(());
    };
    let before = strict.then(|| obj.clone());
    schema.prune(obj);
    if let Some(before) = before {
        let mut unknown = Vec::new();
        unknown_fields(&before, obj, "", &mut unknown);
        if !unknown.is_empty() {
            return Err(strict_decoding_error(t, &unknown));
        }
    }
    schema.apply_defaults(obj);
    let errors = schema.validate(obj, old);
    if errors.is_empty() {
        return Ok(());
    }
    let causes: Vec<Cause> = errors
        .iter()
        .map(|e| Cause {
            reason: e.reason.to_string(),
            message: e.message.clone(),
            field: e.field.clone(),
        })
        .collect();
    let name = obj["metadata"]["name"].as_str().unwrap_or("");
    Err(ApiError::invalid(&t.rt, name, &causes))
}

fn check_kind(t: &Target, obj: &mut Value) -> Result<(), ApiError> {
    let expected_api = t.rt.api_version(&t.version);
    if let Some(api) = obj.get("apiVersion").and_then(Value::as_str)
        && api != expected_api
    {
        return Err(ApiError::bad_request(format!(
            "the API version in the data ({api}) does not match the expected API version ({expected_api})"
        )));
    }
    if let Some(kind) = obj.get("kind").and_then(Value::as_str)
        && kind != t.rt.kind
    {
        return Err(ApiError::bad_request(format!(
            "the kind in the data ({kind}) does not match the expected kind ({})",
            t.rt.kind
        )));
    }
    Ok(())
}

/// The form objects are stored in: the storage version, or core/v1 for events.k8s.io Events.
fn storage_form(rt: &ResourceType, obj: &mut Value) {
    if rt.is_alias() {
        crate::events::to_core(obj);
    } else {
        obj["apiVersion"] = json!(rt.api_version(rt.storage_version()));
        obj["kind"] = json!(rt.kind);
    }
}

fn check_namespace(t: &Target, obj: &mut Value) -> Result<(), ApiError> {
    let md = metadata_mut(obj)?;
    if t.rt.namespaced {
        let ns = t.namespace.clone().unwrap_or_default();
        match md.get("namespace").and_then(Value::as_str) {
            Some(body_ns) if !body_ns.is_empty() && body_ns != ns => {
                return Err(ApiError::bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                ));
            }
            _ => {
                md.insert("namespace".into(), json!(ns));
            }
        }
    } else {
        md.remove("namespace");
    }
    Ok(())
}

fn require_namespace(state: &State, t: &Target, verb_creates: bool) -> Result<(), ApiError> {
    if !t.rt.namespaced {
        return Ok(());
    }
    let ns = t.namespace.as_deref().unwrap_or("");
    match state.namespace_exists(ns) {
        None => Err(ApiError::namespace_not_found(ns)),
        Some(n) if verb_creates && n["metadata"].get("deletionTimestamp").is_some() => {
            let name = t.name();
            Err(ApiError {
                code: 403,
                reason: "Forbidden",
                message: format!(
                    "{} \"{}\" is forbidden: unable to create new content in namespace {} because it is being terminated",
                    t.rt.qualified_resource(),
                    name,
                    ns
                ),
                details: Some(
                    json!({"name": name, "kind": t.rt.resource, "causes": [{"reason": "NamespaceTerminating", "message": format!("namespace {ns} is being terminated"), "field": "metadata.namespace"}]}),
                ),
            })
        }
        Some(_) => Ok(()),
    }
}

pub fn get(state: &State, t: &Target) -> Result<Arc<Value>, ApiError> {
    state
        .get(&t.rt.key(), &t.okey())
        .cloned()
        .ok_or_else(|| ApiError::not_found(&t.rt, t.name()))
}

/// POST: create a new object.
pub fn create(
    state: &mut State,
    t: &Target,
    body: Value,
    p: &WriteParams,
) -> Result<Value, ApiError> {
    if t.subresource.is_some() {
        return Err(ApiError::method_not_allowed(
            "the server does not allow this method on the requested resource".to_string(),
        ));
    }
    create_object(state, t, body, p, false)
}

fn create_object(
    state: &mut State,
    t: &Target,
    mut obj: Value,
    p: &WriteParams,
    managed_done: bool,
) -> Result<Value, ApiError> {
    let rt = t.rt.clone();
    check_kind(t, &mut obj)?;
    storage_form(&rt, &mut obj);
    check_namespace(t, &mut obj)?;
    let md = metadata_mut(&mut obj)?;
    let mut name = md
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    if name.is_empty() {
        match md.get("generateName").and_then(Value::as_str) {
            Some(prefix) if !prefix.is_empty() => {
                name = format!("{prefix}{}", random_suffix());
                md.insert("name".into(), json!(name));
            }
            _ => {
                return Err(ApiError::invalid(
                    &rt,
                    "",
                    &[required(
                        "metadata.name",
                        "name or generateName is required",
                    )],
                ));
            }
        }
    }
    let mut t = t.clone();
    t.name = Some(name.clone());
    require_namespace(state, &t, true)?;
    if rt.is_custom() && crd_terminating(state, &rt) {
        return Err(ApiError::method_not_allowed(
            "create not allowed while custom resource definition is terminating",
        ));
    }
    if state.get(&rt.key(), &t.okey()).is_some() {
        return Err(ApiError::already_exists(&rt, &name));
    }
    let now = now();
    let md = metadata_mut(&mut obj)?;
    md.remove("resourceVersion");
    md.remove("deletionTimestamp");
    md.remove("deletionGracePeriodSeconds");
    md.insert("uid".into(), json!(new_uid()));
    md.insert("creationTimestamp".into(), json!(now));
    if rt.tracks_generation {
        md.insert("generation".into(), json!(1));
    } else {
        md.remove("generation");
    }
    if rt.has_status
        && rt.resource != "pods"
        && let Some(m) = obj.as_object_mut()
    {
        m.remove("status");
    }
    tidy_metadata(&mut obj);
    let causes = validate_metadata(&rt, &obj);
    if !causes.is_empty() {
        return Err(ApiError::invalid(&rt, &name, &causes));
    }
    if rt.is_custom() {
        custom_schema(&t, &mut obj, None, p.strict)?;
    } else {
        builtin_fields(&t, &mut obj, p.strict)?;
        kinds::normalize(&rt, &mut obj, None, state)?;
    }
    let crd_type =
        if rt.group == "apiextensions.k8s.io" && rt.resource == "customresourcedefinitions" {
            let new_rt = crds::resource_type(&rt, &obj)?;
            if let Some(existing) = state.registry.get(&new_rt.group, &new_rt.resource)
                && !existing.is_custom()
            {
                return Err(ApiError::invalid(
                    &rt,
                    &name,
                    &[invalid_value(
                        "spec.names.plural",
                        &new_rt.resource,
                        "resource is already served by a built-in type",
                    )],
                ));
            }
            obj["status"] = crds::accepted_status(&obj, &now);
            Some(new_rt)
        } else {
            None
        };
    if !managed_done {
        emulator_patch::record_update(None, &mut obj, &p.manager, None, &now);
    }
    if state.ready_workloads {
        kinds::roll_out(&rt, &mut obj);
    }
    if p.dry_run {
        obj["metadata"]["resourceVersion"] = json!("");
        return Ok(present(&rt, &t.version, &obj));
    }
    let stored = state.put(&rt, obj);
    if let Some(new_rt) = crd_type {
        state.registry.insert(new_rt);
    }
    gc::collect(state, &now);
    Ok(present(&rt, &t.version, &stored))
}

/// PUT: replace an object (or its status).
pub fn update(
    state: &mut State,
    t: &Target,
    mut body: Value,
    p: &WriteParams,
) -> Result<Value, ApiError> {
    let name = t.name();
    check_kind(t, &mut body)?;
    check_namespace(t, &mut body)?;
    let body_name = body["metadata"]["name"].as_str().unwrap_or("").to_string();
    if body_name.is_empty() {
        body["metadata"]["name"] = json!(name);
    } else if body_name != name {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({body_name}) does not match the name on the URL ({name})"
        )));
    }
    require_namespace(state, t, false)?;
    let old = get(state, t)?;
    let rv = body["metadata"]["resourceVersion"].as_str().unwrap_or("");
    if rv.is_empty() && t.rt.is_custom() {
        return Err(ApiError::invalid(
            &t.rt,
            name,
            &[Cause {
                reason: "FieldValueInvalid".into(),
                message: "Invalid value: 0x0: must be specified for an update".into(),
                field: "metadata.resourceVersion".into(),
            }],
        ));
    }
    commit_update(state, t, old, body, p, false)
}

/// Store `new` in place of `old` through the ordinary update path (used by `/scale`).
pub fn replace(
    state: &mut State,
    t: &Target,
    old: Arc<Value>,
    new: Value,
    p: &WriteParams,
) -> Result<Value, ApiError> {
    commit_update(state, t, old, new, p, false)
}

/// The shared tail of update and patch: subresource handling, defaulting, validation,
/// managedFields, generation, no-op detection, finalization, storing.
fn commit_update(
    state: &mut State,
    t: &Target,
    old: Arc<Value>,
    mut new: Value,
    p: &WriteParams,
    managed_done: bool,
) -> Result<Value, ApiError> {
    let rt = t.rt.clone();
    let name = t.name().to_string();
    let old_rv = old["metadata"]["resourceVersion"].as_str().unwrap_or("");
    let new_rv = new["metadata"]["resourceVersion"].as_str().unwrap_or("");
    if !new_rv.is_empty() && new_rv != old_rv {
        return Err(ApiError::conflict(&rt, &name));
    }
    metadata_mut(&mut new)?;
    storage_form(&rt, &mut new);
    if t.is_status() {
        let mut merged = (*old).clone();
        match new.get("status") {
            Some(s) => merged["status"] = s.clone(),
            None => {
                merged.as_object_mut().map(|m| m.remove("status"));
            }
        }
        if managed_done {
            merged["metadata"]["managedFields"] = new["metadata"]["managedFields"].clone();
        }
        new = merged;
    } else if rt.has_status {
        match old.get("status") {
            Some(s) => new["status"] = s.clone(),
            None => {
                new.as_object_mut().map(|m| m.remove("status"));
            }
        }
    }
    {
        let md = metadata_mut(&mut new)?;
        for k in [
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generation",
        ] {
            match old["metadata"].get(k) {
                Some(v) => {
                    md.insert(k.into(), v.clone());
                }
                None => {
                    md.remove(k);
                }
            }
        }
        md.insert("name".into(), json!(name));
        md.insert("resourceVersion".into(), json!(old_rv));
        if md.get("managedFields").is_some_and(Value::is_null) {
            md.remove("managedFields");
        }
    }
    tidy_metadata(&mut new);
    let causes = validate_metadata(&rt, &new);
    if !causes.is_empty() {
        return Err(ApiError::invalid(&rt, &name, &causes));
    }
    if rt.is_custom() {
        custom_schema(t, &mut new, Some(&old), p.strict)?;
    } else {
        builtin_fields(t, &mut new, p.strict)?;
        kinds::normalize(&rt, &mut new, Some(&old), state)?;
    }
    let now = now();
    let is_crd = rt.group == "apiextensions.k8s.io" && rt.resource == "customresourcedefinitions";
    let crd_type = if is_crd {
        let new_rt = crds::resource_type(&rt, &new)?;
        new["status"] = crds::accepted_status(&new, &now);
        Some(new_rt)
    } else {
        None
    };
    if !managed_done {
        emulator_patch::record_update(
            Some(&old),
            &mut new,
            &p.manager,
            t.subresource.as_deref(),
            &now,
        );
    }
    if rt.tracks_generation && spec_changed(&old, &new) {
        let g = old["metadata"]["generation"].as_i64().unwrap_or(0);
        new["metadata"]["generation"] = json!(g + 1);
    }
    if state.ready_workloads && !t.is_status() {
        kinds::roll_out(&rt, &mut new);
    }
    if same_object(&old, &new) {
        return Ok(present(&rt, &t.version, &old));
    }
    let deleting = new["metadata"].get("deletionTimestamp").is_some();
    let no_finalizers = new["metadata"]["finalizers"]
        .as_array()
        .is_none_or(Vec::is_empty);
    if p.dry_run {
        return Ok(present(&rt, &t.version, &new));
    }
    if deleting && no_finalizers && rt.resource != "namespaces" {
        // The last finalizer went away: the object is gone, apiserver answers with
        // its final state.
        state.put(&rt, new);
        let last = state
            .remove(&rt.key(), &t.okey())
            .expect("object present under lock");
        gc::collect(state, &now);
        return Ok(present(&rt, &t.version, &last));
    }
    let stored = state.put(&rt, new);
    if let Some(new_rt) = crd_type {
        state.registry.insert(new_rt);
    }
    gc::collect(state, &now);
    Ok(present(&rt, &t.version, &stored))
}

fn without(obj: &Value, keys: &[&str]) -> Value {
    let mut o = obj.clone();
    if let Some(m) = o.as_object_mut() {
        for k in keys {
            m.remove(*k);
        }
    }
    o
}

fn spec_changed(old: &Value, new: &Value) -> bool {
    without(old, &["metadata", "status"]) != without(new, &["metadata", "status"])
}

/// Whether a write changes nothing: the same object, and the same field ownership (a new
/// manager taking over fields is a change; a refreshed timestamp alone is not).
fn same_object(old: &Value, new: &Value) -> bool {
    let strip = |v: &Value| {
        let mut o = v.clone();
        if let Some(md) = o["metadata"].as_object_mut() {
            md.remove("resourceVersion");
            if let Some(Value::Array(entries)) = md.get_mut("managedFields") {
                for e in entries.iter_mut() {
                    if let Some(m) = e.as_object_mut() {
                        m.remove("time");
                    }
                }
                entries.sort_by_key(|e| e.to_string());
            }
        }
        o
    };
    strip(old) == strip(new)
}

/// How a PATCH body is to be read, from its Content-Type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchType {
    Merge,
    Json,
    Strategic,
    Apply,
}

impl PatchType {
    pub fn from_content_type(ct: &str) -> Option<PatchType> {
        let base = ct.split(';').next().unwrap_or("").trim();
        match base {
            "application/merge-patch+json" => Some(PatchType::Merge),
            "application/json-patch+json" => Some(PatchType::Json),
            "application/strategic-merge-patch+json" => Some(PatchType::Strategic),
            "application/apply-patch+yaml" | "application/apply-patch+cbor" => {
                Some(PatchType::Apply)
            }
            _ => None,
        }
    }
}

/// What apiserver says when a well-formed JSON patch does not apply (its generic 422).
const JSON_PATCH_REFUSED: &str = "the server rejected our request due to an error in our request";

fn patch_error(t: &Target, e: PatchError) -> ApiError {
    let code = e.status_code();
    match e {
        // apiserver answers a patch that does not apply with a bare generic 422, without
        // the json-patch library's reason; the log keeps it for whoever debugs a test.
        PatchError::Invalid(m) if code == 422 => {
            tracing::debug!(reason = %m, "json patch did not apply");
            let mut refused = ApiError::new(422, "Invalid", JSON_PATCH_REFUSED);
            refused.details = Some(json!({}));
            refused
        }
        PatchError::Invalid(m) => ApiError::bad_request(m),
        PatchError::Unsupported(m) => ApiError::new(415, "UnsupportedMediaType", m),
        PatchError::Conflict { message, causes } => {
            let causes: Vec<Cause> = causes
                .into_iter()
                .map(|c| Cause {
                    reason: "FieldManagerConflict".into(),
                    message: format!("conflict with \"{}\"", c.manager),
                    field: c.field,
                })
                .collect();
            ApiError::conflict_with(&t.rt, t.name(), message, &causes)
        }
    }
}

/// As apiserver, an apply to the main endpoint of a custom resource with a status
/// subresource neither sets nor claims `status` (emulator-patch knows this only for
/// built-in kinds).
fn drop_status_of_main_apply(t: &Target, applied: &mut Value) {
    if t.subresource.is_none()
        && t.rt.is_custom()
        && t.rt
            .crd_version(&t.version)
            .is_some_and(|v| v.status_subresource)
        && let Some(obj) = applied.as_object_mut()
    {
        obj.remove("status");
    }
}

/// PATCH in any of the four patch types; apply creates a missing object.
pub fn patch(
    state: &mut State,
    t: &Target,
    ptype: PatchType,
    body: &[u8],
    p: &WriteParams,
) -> Result<Value, ApiError> {
    let patch_doc: Value = match ptype {
        PatchType::Apply => serde_yaml::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))?,
        _ => serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?,
    };
    if ptype == PatchType::Apply && !p.explicit_manager {
        return Err(ApiError::bad_request(
            "PATCH, application/apply-patch+yaml requires fieldManager parameter",
        ));
    }
    if ptype == PatchType::Strategic && t.rt.is_custom() {
        return Err(ApiError::unsupported_media_type(
            "application/strategic-merge-patch+json",
        ));
    }
    let existing = state.get(&t.rt.key(), &t.okey()).cloned();
    let old = match existing {
        Some(o) => o,
        None if ptype == PatchType::Apply && !t.is_status() => {
            require_namespace(state, t, true)?;
            let mut applied = patch_doc;
            check_kind(t, &mut applied)?;
            let applied_name = applied["metadata"]["name"].as_str().unwrap_or("");
            if !applied_name.is_empty() && applied_name != t.name() {
                return Err(ApiError::bad_request(format!(
                    "the name of the object ({applied_name}) does not match the name on the URL ({})",
                    t.name()
                )));
            }
            applied["metadata"]["name"] = json!(t.name());
            drop_status_of_main_apply(t, &mut applied);
            let now = now();
            let opts = ApplyOptions {
                manager: &p.manager,
                force: p.force,
                subresource: None,
                now: &now,
            };
            let merged = emulator_patch::server_side_apply(None, &applied, &opts)
                .map_err(|e| patch_error(t, e))?;
            return create_object(state, t, merged, p, true);
        }
        None => return Err(ApiError::not_found(&t.rt, t.name())),
    };
    let mut base = present(&t.rt, &t.version, &old);
    let managed_done = match ptype {
        PatchType::Merge => {
            emulator_patch::apply_merge_patch(&mut base, &patch_doc);
            false
        }
        PatchType::Json => {
            emulator_patch::apply_json_patch(&mut base, &patch_doc)
                .map_err(|e| patch_error(t, e))?;
            false
        }
        PatchType::Strategic => {
            let api_version = t.rt.api_version(&t.version);
            match emulator_patch::apply_strategic_merge_patch(
                &mut base,
                &patch_doc,
                &api_version,
                &t.rt.kind,
            ) {
                Ok(()) => {}
                // Until strategic merge knows this kind, a merge patch is the closest answer.
                Err(PatchError::Unsupported(_)) => {
                    emulator_patch::apply_merge_patch(&mut base, &patch_doc)
                }
                Err(e) => return Err(patch_error(t, e)),
            }
            false
        }
        PatchType::Apply => {
            let mut applied = patch_doc;
            check_kind(t, &mut applied)?;
            applied["apiVersion"] = json!(t.rt.api_version(&t.version));
            drop_status_of_main_apply(t, &mut applied);
            let now = now();
            let opts = ApplyOptions {
                manager: &p.manager,
                force: p.force,
                subresource: t.subresource.as_deref(),
                now: &now,
            };
            base = emulator_patch::server_side_apply(Some(&base), &applied, &opts)
                .map_err(|e| patch_error(t, e))?;
            true
        }
    };
    if !base.is_object() {
        return Err(ApiError::bad_request("the patch did not produce an object"));
    }
    commit_update(state, t, old, base, p, managed_done)
}

/// Options of a DELETE, from the body (DeleteOptions) and the query.
#[derive(Default, Clone)]
pub struct DeleteParams {
    pub dry_run: bool,
    pub propagation: Option<String>,
    pub precondition_uid: Option<String>,
    pub precondition_rv: Option<String>,
}

impl DeleteParams {
    pub fn from_body(body: &[u8], mut base: DeleteParams) -> Result<DeleteParams, ApiError> {
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(base);
        }
        let v: Value = if body.starts_with(b"k8s\0") {
            crate::protobuf::decode_delete_options(body)?
        } else {
            serde_json::from_slice(body).map_err(|e| {
                ApiError::bad_request(format!("failed to decode DeleteOptions: {e}"))
            })?
        };
        if let Some(p) = v["propagationPolicy"].as_str() {
            base.propagation = Some(p.to_string());
        }
        if v["orphanDependents"].as_bool() == Some(true) {
            base.propagation = Some("Orphan".into());
        }
        if v["dryRun"]
            .as_array()
            .is_some_and(|a| a.iter().any(|x| x == "All"))
        {
            base.dry_run = true;
        }
        if let Some(u) = v["preconditions"]["uid"].as_str() {
            base.precondition_uid = Some(u.to_string());
        }
        if let Some(r) = v["preconditions"]["resourceVersion"].as_str() {
            base.precondition_rv = Some(r.to_string());
        }
        Ok(base)
    }
}

/// DELETE of one object: finalizers first, then removal and garbage collection.
pub fn delete(state: &mut State, t: &Target, d: &DeleteParams) -> Result<Value, ApiError> {
    let rt = t.rt.clone();
    let name = t.name().to_string();
    if t.subresource.is_some() {
        return Err(ApiError::method_not_allowed(
            "the server does not allow this method on the requested resource",
        ));
    }
    let old = get(state, t)?;
    if rt.resource == "namespaces"
        && rt.group.is_empty()
        && matches!(name.as_str(), "default" | "kube-system" | "kube-public")
    {
        return Err(ApiError {
            code: 403,
            reason: "Forbidden",
            message: format!(
                "namespaces \"{name}\" is forbidden: this namespace may not be deleted"
            ),
            details: Some(json!({"name": name, "kind": "namespaces"})),
        });
    }
    if let Some(uid) = &d.precondition_uid {
        let actual = old["metadata"]["uid"].as_str().unwrap_or("");
        if uid != actual {
            return Err(ApiError::conflict_with(
                &rt,
                &name,
                format!(
                    "Precondition failed: UID in precondition: {uid}, UID in object meta: {actual}"
                ),
                &[],
            ));
        }
    }
    if let Some(rv) = &d.precondition_rv {
        let actual = old["metadata"]["resourceVersion"].as_str().unwrap_or("");
        if rv != actual {
            return Err(ApiError::conflict_with(
                &rt,
                &name,
                format!(
                    "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {actual}"
                ),
                &[],
            ));
        }
    }
    if d.dry_run {
        return Ok(present(&rt, &t.version, &old));
    }
    let now = now();
    let uid = old["metadata"]["uid"].as_str().unwrap_or("").to_string();
    let propagation = d.propagation.clone().unwrap_or_else(|| "Background".into());
    if propagation == "Orphan" {
        orphan_dependents(state, &uid);
    }
    let is_crd = rt.group == "apiextensions.k8s.io" && rt.resource == "customresourcedefinitions";
    let mut finalizers: Vec<Value> = old["metadata"]["finalizers"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if is_crd {
        // As apiserver: the CRD stays (terminating) until its objects are gone, which
        // waits for their own finalizers; the collector then stops serving the type.
        delete_custom_objects(state, &old, &now);
        if !finalizers.iter().any(|f| f == CRD_CLEANUP_FINALIZER) {
            finalizers.push(json!(CRD_CLEANUP_FINALIZER));
        }
    }
    if propagation == "Foreground" && !finalizers.iter().any(|f| f == "foregroundDeletion") {
        finalizers.push(json!("foregroundDeletion"));
    }
    let is_namespace = rt.resource == "namespaces" && rt.group.is_empty();
    if finalizers.is_empty() && !is_namespace {
        let last = state
            .remove(&rt.key(), &t.okey())
            .expect("object present under lock");
        gc::collect(state, &now);
        return Ok(deleted_answer(&rt, &t.version, &last));
    }
    let mut obj = (*old).clone();
    let already = obj["metadata"].get("deletionTimestamp").is_some();
    if !already {
        obj["metadata"]["deletionTimestamp"] = json!(now);
        obj["metadata"]["deletionGracePeriodSeconds"] = json!(0);
    }
    if finalizers.is_empty() {
        obj["metadata"]
            .as_object_mut()
            .map(|m| m.remove("finalizers"));
    } else {
        obj["metadata"]["finalizers"] = Value::Array(finalizers);
    }
    if is_namespace {
        obj["status"]["phase"] = json!("Terminating");
    }
    let stored = if same_object(&old, &obj) {
        old
    } else {
        state.put(&rt, obj)
    };
    state.gc_pending = true;
    gc::collect(state, &now);
    let current = state.get(&rt.key(), &t.okey()).cloned().unwrap_or(stored);
    Ok(present(&rt, &t.version, &current))
}

/// What an immediate delete answers: the deleted object for custom resources and Pods
/// (apiserver's ReturnDeletedObject), a Success Status for other built-ins. kube-rs reads
/// the Status as "gone now" and an object as "deletion in progress or done".
fn deleted_answer(rt: &ResourceType, version: &str, last: &Value) -> Value {
    if rt.is_custom() || (rt.group.is_empty() && rt.resource == "pods") {
        return present(rt, version, last);
    }
    let mut details = json!({
        "name": last["metadata"]["name"],
        "kind": rt.resource,
        "uid": last["metadata"]["uid"],
    });
    if !rt.group.is_empty() {
        details["group"] = json!(rt.group);
    }
    json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "details": details,
    })
}

fn orphan_dependents(state: &mut State, uid: &str) {
    let mut changes = Vec::new();
    for (key, coll) in &state.collections {
        for obj in coll.objects.values() {
            if let Some(refs) = obj["metadata"]["ownerReferences"].as_array()
                && refs.iter().any(|r| r["uid"] == json!(uid))
            {
                let mut o = (**obj).clone();
                let kept: Vec<Value> = refs
                    .iter()
                    .filter(|r| r["uid"] != json!(uid))
                    .cloned()
                    .collect();
                if kept.is_empty() {
                    o["metadata"]
                        .as_object_mut()
                        .map(|m| m.remove("ownerReferences"));
                } else {
                    o["metadata"]["ownerReferences"] = Value::Array(kept);
                }
                changes.push((key.clone(), o));
            }
        }
    }
    for (key, o) in changes {
        if let Some(rt) = state.registry.get(&key.0, &key.1).cloned() {
            state.put(&rt, o);
        }
    }
}

/// A CRD is being deleted: its objects go (DELETED events), then the type stops being served.
/// Finalizer apiserver puts on a deleted CRD until its objects are gone.
pub const CRD_CLEANUP_FINALIZER: &str = "customresourcecleanup.apiextensions.k8s.io";

/// The (group, plural) a CRD serves.
pub fn crd_type_key(crd: &Value) -> (String, String) {
    (
        crd["spec"]["group"].as_str().unwrap_or("").to_string(),
        crd["spec"]["names"]["plural"]
            .as_str()
            .unwrap_or("")
            .to_string(),
    )
}

/// Delete every object of a CRD's type: at once when it has no finalizers, else mark it.
fn delete_custom_objects(state: &mut State, crd: &Value, now: &str) {
    let key = crd_type_key(crd);
    let Some(rt) = state.registry.get(&key.0, &key.1).cloned() else {
        return;
    };
    let objects: Vec<(ObjKey, Arc<Value>)> = state
        .collection(&key)
        .map(|c| {
            c.objects
                .iter()
                .map(|(k, o)| (k.clone(), o.clone()))
                .collect()
        })
        .unwrap_or_default();
    for (k, o) in objects {
        if o["metadata"]["finalizers"]
            .as_array()
            .is_none_or(Vec::is_empty)
        {
            state.remove(&key, &k);
        } else if o["metadata"].get("deletionTimestamp").is_none() {
            let mut marked = (*o).clone();
            marked["metadata"]["deletionTimestamp"] = json!(now);
            marked["metadata"]["deletionGracePeriodSeconds"] = json!(0);
            state.put(&rt, marked);
        }
    }
}

/// Whether the CRD serving this custom type is being deleted.
fn crd_terminating(state: &State, rt: &ResourceType) -> bool {
    let crd_key = (
        "apiextensions.k8s.io".to_string(),
        "customresourcedefinitions".to_string(),
    );
    state
        .get(
            &crd_key,
            &(String::new(), format!("{}.{}", rt.resource, rt.group)),
        )
        .is_some_and(|c| c["metadata"].get("deletionTimestamp").is_some())
}

/// Selection of a list, watch or deletecollection.
#[derive(Default, Clone)]
pub struct Selection {
    pub labels: LabelSelector,
    pub fields: FieldSelector,
}

impl Selection {
    pub fn matches(&self, obj: &Value) -> bool {
        self.labels.matches(obj) && self.fields.matches(obj)
    }
}

/// DELETE on a collection: each selected object as a single delete would.
pub fn delete_collection(
    state: &mut State,
    t: &Target,
    sel: &Selection,
    d: &DeleteParams,
) -> Result<Value, ApiError> {
    if t.rt.namespaced && t.namespace.is_some() {
        require_namespace(state, t, false)?;
    }
    let keys: Vec<ObjKey> = state
        .collection(&t.rt.key())
        .map(|c| {
            c.range(t.namespace.as_deref(), None)
                .filter(|(_, o)| sel.matches(o))
                .map(|(k, _)| k.clone())
                .collect()
        })
        .unwrap_or_default();
    let mut items = Vec::new();
    for (ns, name) in keys {
        let mut one = t.clone();
        one.namespace = (!ns.is_empty()).then_some(ns);
        one.name = Some(name);
        let before = state
            .get(&one.rt.key(), &one.okey())
            .map(|o| present(&one.rt, &one.version, o));
        match delete(state, &one, d) {
            // The list names what was deleted, even when a single delete answers a Status.
            Ok(o) if o["kind"] == "Status" => items.extend(before),
            Ok(o) => items.push(o),
            Err(e) if e.code == 404 => {}
            Err(e) => return Err(e),
        }
    }
    Ok(json!({
        "kind": format!("{}List", t.rt.kind),
        "apiVersion": t.rt.api_version(&t.version),
        "metadata": {"resourceVersion": state.rv.to_string()},
        "items": items,
    }))
}
