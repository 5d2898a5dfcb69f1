//! List requests: selection, limit/continue paging, and the answer serialised item by
//! item outside the store lock (objects are shared `Arc`s, never deep-copied).

use std::sync::{Arc, Mutex};

use base64::Engine;
use serde_json::{Value, json};

use crate::form::{self, Form};
use crate::status::ApiError;
use crate::store::{ObjKey, State};
use crate::verbs::{self, Selection, Target};

/// Paging state carried in `continue`.
#[derive(serde::Serialize, serde::Deserialize)]
struct ContinueToken {
    rv: u64,
    ns: String,
    name: String,
}

fn encode_continue(rv: u64, key: &ObjKey) -> String {
    let tok = ContinueToken {
        rv,
        ns: key.0.clone(),
        name: key.1.clone(),
    };
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(serde_json::to_vec(&tok).unwrap_or_default())
}

fn decode_continue(s: &str) -> Result<ContinueToken, ApiError> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(|| ApiError::bad_request(format!("invalid continue token: {s}")))
}

/// A collected page, ready to serialise.
pub struct Page {
    pub items: Vec<Arc<Value>>,
    pub resource_version: String,
    pub continue_token: Option<String>,
    pub remaining: Option<usize>,
}

pub fn collect(
    state: &Mutex<State>,
    t: &Target,
    sel: &Selection,
    limit: Option<usize>,
    continue_token: Option<&str>,
) -> Result<Page, ApiError> {
    let token = continue_token
        .filter(|c| !c.is_empty())
        .map(decode_continue)
        .transpose()?;
    let state = state.lock().expect("store lock");
    let rv = token.as_ref().map_or(state.rv, |t| t.rv);
    let after = token.map(|t| (t.ns, t.name));
    let Some(coll) = state.collection(&t.rt.key()) else {
        return Ok(Page {
            items: Vec::new(),
            resource_version: rv.to_string(),
            continue_token: None,
            remaining: None,
        });
    };
    let exact_name = sel.fields.exact_name();
    let mut items = Vec::new();
    let mut next = None;
    let mut remaining = 0usize;
    let ns = t.namespace.as_deref();
    let mut iter = coll
        .range(ns, after.as_ref())
        .filter(|(k, _)| exact_name.is_none_or(|n| k.1 == n))
        .filter(|(_, o)| sel.matches(o));
    for (k, o) in iter.by_ref() {
        items.push(o.clone());
        if limit.is_some_and(|l| l > 0 && items.len() >= l) {
            next = Some(k.clone());
            break;
        }
    }
    if let Some(k) = &next {
        remaining = iter.count();
        if remaining == 0 {
            next = None;
        } else {
            next = Some(k.clone());
        }
    }
    Ok(Page {
        items,
        resource_version: rv.to_string(),
        continue_token: next.as_ref().map(|k| encode_continue(rv, k)),
        remaining: (remaining > 0).then_some(remaining),
    })
}

/// The list answer as bytes: `{kind: XList, ..., items: [...]}`, or the Table asked for.
pub fn serialize(t: &Target, page: &Page, answer_form: &Form) -> Vec<u8> {
    if let Some(tbl) = answer_form.table(
        &t.rt,
        &t.version,
        page.items.iter().map(|a| a.as_ref()),
        &page.resource_version,
        page.continue_token.as_deref(),
    ) {
        return serde_json::to_vec(&tbl).unwrap_or_default();
    }
    let metadata_only = *answer_form == Form::Metadata;
    let api_version = if metadata_only {
        "meta.k8s.io/v1".to_string()
    } else {
        t.rt.api_version(&t.version)
    };
    let same_version = t.version == t.rt.storage_version() && !t.rt.is_alias();
    let mut md = json!({ "resourceVersion": page.resource_version });
    if let Some(c) = &page.continue_token {
        md["continue"] = json!(c);
    }
    if let Some(r) = page.remaining {
        md["remainingItemCount"] = json!(r);
    }
    let mut out = Vec::with_capacity(256 + page.items.len() * 512);
    out.extend_from_slice(b"{\"kind\":");
    let list_kind = if metadata_only {
        "PartialObjectMetadataList".to_string()
    } else {
        format!("{}List", t.rt.kind)
    };
    serde_json::to_writer(&mut out, &list_kind).ok();
    out.extend_from_slice(b",\"apiVersion\":");
    serde_json::to_writer(&mut out, &api_version).ok();
    out.extend_from_slice(b",\"metadata\":");
    serde_json::to_writer(&mut out, &md).ok();
    out.extend_from_slice(b",\"items\":[");
    for (i, item) in page.items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        if metadata_only {
            serde_json::to_writer(&mut out, &form::partial(item)).ok();
        } else if same_version {
            serde_json::to_writer(&mut out, item.as_ref()).ok();
        } else {
            serde_json::to_writer(&mut out, &verbs::present(&t.rt, &t.version, item)).ok();
        }
    }
    out.extend_from_slice(b"]}");
    out
}
