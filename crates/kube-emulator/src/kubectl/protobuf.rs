//! Decoding of the protobuf request bodies kubectl's typed clients send (`kubectl create
//! secret|configmap|namespace|serviceaccount`), for those few kinds only: the
//! `k8s\0` envelope around a `runtime.Unknown`, then the object's own message. Answers
//! are always JSON, which kubectl accepts.

use base64::Engine;
use serde_json::{Map, Value, json};

use crate::status::ApiError;

pub const CONTENT_TYPE: &str = "application/vnd.kubernetes.protobuf";

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

enum Field<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
    Skip,
}

fn malformed() -> ApiError {
    ApiError::bad_request("failed to decode protobuf body: malformed message")
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Reader<'a> {
        Reader { buf, pos: 0 }
    }

    fn varint(&mut self) -> Result<u64, ApiError> {
        let mut out = 0u64;
        for shift in (0..64).step_by(7) {
            let b = *self.buf.get(self.pos).ok_or_else(malformed)?;
            self.pos += 1;
            out |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(out);
            }
        }
        Err(malformed())
    }

    fn next(&mut self) -> Result<Option<(u64, Field<'a>)>, ApiError> {
        if self.pos >= self.buf.len() {
            return Ok(None);
        }
        let key = self.varint()?;
        let field = key >> 3;
        let value = match key & 7 {
            0 => Field::Varint(self.varint()?),
            1 => {
                self.pos += 8;
                Field::Skip
            }
            2 => {
                let len = usize::try_from(self.varint()?).map_err(|_| malformed())?;
                let end = self
                    .pos
                    .checked_add(len)
                    .filter(|e| *e <= self.buf.len())
                    .ok_or_else(malformed)?;
                let bytes = &self.buf[self.pos..end];
                self.pos = end;
                Field::Bytes(bytes)
            }
            5 => {
                self.pos += 4;
                Field::Skip
            }
            _ => return Err(malformed()),
        };
        if self.pos > self.buf.len() {
            return Err(malformed());
        }
        Ok(Some((field, value)))
    }
}

fn string(b: &[u8]) -> Result<String, ApiError> {
    String::from_utf8(b.to_vec()).map_err(|_| malformed())
}

/// A map entry (key = 1, value = 2); `bytes_value` base64-encodes the value as JSON does.
fn map_entry(b: &[u8], bytes_value: bool) -> Result<(String, Value), ApiError> {
    let mut r = Reader::new(b);
    let (mut k, mut v) = (String::new(), Value::String(String::new()));
    while let Some((f, val)) = r.next()? {
        match (f, val) {
            (1, Field::Bytes(x)) => k = string(x)?,
            (2, Field::Bytes(x)) if bytes_value => {
                v = json!(base64::engine::general_purpose::STANDARD.encode(x));
            }
            (2, Field::Bytes(x)) => v = json!(string(x)?),
            _ => {}
        }
    }
    Ok((k, v))
}

fn insert_entry(obj: &mut Map<String, Value>, field: &str, entry: (String, Value)) {
    let m = obj.entry(field).or_insert_with(|| json!({}));
    if let Some(m) = m.as_object_mut() {
        m.insert(entry.0, entry.1);
    }
}

fn push(obj: &mut Map<String, Value>, field: &str, v: Value) {
    let a = obj.entry(field).or_insert_with(|| json!([]));
    if let Some(a) = a.as_array_mut() {
        a.push(v);
    }
}

/// gogo-protobuf writes optional strings even when empty; JSON omits them.
fn set_nonempty(obj: &mut Map<String, Value>, field: &str, b: &[u8]) -> Result<(), ApiError> {
    if !b.is_empty() {
        obj.insert(field.into(), json!(string(b)?));
    }
    Ok(())
}

fn object_meta(b: &[u8]) -> Result<Value, ApiError> {
    let mut r = Reader::new(b);
    let mut md = Map::new();
    while let Some((f, val)) = r.next()? {
        match (f, val) {
            (1, Field::Bytes(x)) => set_nonempty(&mut md, "name", x)?,
            (2, Field::Bytes(x)) => set_nonempty(&mut md, "generateName", x)?,
            (3, Field::Bytes(x)) => set_nonempty(&mut md, "namespace", x)?,
            (6, Field::Bytes(x)) => set_nonempty(&mut md, "resourceVersion", x)?,
            (11, Field::Bytes(x)) => insert_entry(&mut md, "labels", map_entry(x, false)?),
            (12, Field::Bytes(x)) => insert_entry(&mut md, "annotations", map_entry(x, false)?),
            (14, Field::Bytes(x)) => push(&mut md, "finalizers", json!(string(x)?)),
            _ => {}
        }
    }
    Ok(Value::Object(md))
}

fn name_only(b: &[u8]) -> Result<Value, ApiError> {
    let mut r = Reader::new(b);
    let mut name = String::new();
    while let Some((f, val)) = r.next()? {
        if let (1, Field::Bytes(x)) = (f, val) {
            name = string(x)?;
        }
    }
    Ok(json!({ "name": name }))
}

fn typed(kind: &str, raw: &[u8]) -> Result<Map<String, Value>, ApiError> {
    let mut r = Reader::new(raw);
    let mut obj = Map::new();
    while let Some((f, val)) = r.next()? {
        match (kind, f, val) {
            (_, 1, Field::Bytes(x)) => {
                obj.insert("metadata".into(), object_meta(x)?);
            }
            ("Secret", 2, Field::Bytes(x)) => insert_entry(&mut obj, "data", map_entry(x, true)?),
            ("Secret", 3, Field::Bytes(x)) => set_nonempty(&mut obj, "type", x)?,
            ("Secret", 4, Field::Bytes(x)) => {
                insert_entry(&mut obj, "stringData", map_entry(x, false)?)
            }
            ("Secret", 5, Field::Varint(v)) | ("ConfigMap", 4, Field::Varint(v)) => {
                obj.insert("immutable".into(), json!(v != 0));
            }
            ("ConfigMap", 2, Field::Bytes(x)) => {
                insert_entry(&mut obj, "data", map_entry(x, false)?)
            }
            ("ConfigMap", 3, Field::Bytes(x)) => {
                insert_entry(&mut obj, "binaryData", map_entry(x, true)?)
            }
            ("Namespace", 2, Field::Bytes(x)) => {
                let mut spec = Map::new();
                let mut sr = Reader::new(x);
                while let Some((sf, sv)) = sr.next()? {
                    if let (1, Field::Bytes(s)) = (sf, sv) {
                        push(&mut spec, "finalizers", json!(string(s)?));
                    }
                }
                obj.insert("spec".into(), Value::Object(spec));
            }
            ("ServiceAccount", 3, Field::Bytes(x)) => {
                push(&mut obj, "imagePullSecrets", name_only(x)?)
            }
            ("ServiceAccount", 4, Field::Varint(v)) => {
                obj.insert("automountServiceAccountToken".into(), json!(v != 0));
            }
            _ => {}
        }
    }
    Ok(obj)
}

/// The type and raw message inside a `k8s\0` envelope.
fn envelope(body: &[u8]) -> Result<(String, String, &[u8]), ApiError> {
    let unknown = body.strip_prefix(b"k8s\0").ok_or_else(|| {
        ApiError::bad_request("failed to decode protobuf body: missing k8s envelope")
    })?;
    let mut r = Reader::new(unknown);
    let (mut api_version, mut kind, mut raw) = (String::new(), String::new(), &[][..]);
    while let Some((f, val)) = r.next()? {
        match (f, val) {
            (1, Field::Bytes(tm)) => {
                let mut tr = Reader::new(tm);
                while let Some((tf, tv)) = tr.next()? {
                    match (tf, tv) {
                        (1, Field::Bytes(x)) => api_version = string(x)?,
                        (2, Field::Bytes(x)) => kind = string(x)?,
                        _ => {}
                    }
                }
            }
            (2, Field::Bytes(x)) => raw = x,
            _ => {}
        }
    }
    Ok((api_version, kind, raw))
}

/// A protobuf DeleteOptions (typed clients such as helm's send them) as its JSON form.
pub fn decode_delete_options(body: &[u8]) -> Result<Value, ApiError> {
    let (_, _, raw) = envelope(body)?;
    let mut r = Reader::new(raw);
    let mut out = Map::new();
    while let Some((f, val)) = r.next()? {
        match (f, val) {
            (1, Field::Varint(v)) => {
                out.insert("gracePeriodSeconds".into(), json!(v as i64));
            }
            (2, Field::Bytes(x)) => {
                let mut pre = Map::new();
                let mut pr = Reader::new(x);
                while let Some((pf, pv)) = pr.next()? {
                    match (pf, pv) {
                        (1, Field::Bytes(u)) => set_nonempty(&mut pre, "uid", u)?,
                        (2, Field::Bytes(u)) => set_nonempty(&mut pre, "resourceVersion", u)?,
                        _ => {}
                    }
                }
                out.insert("preconditions".into(), Value::Object(pre));
            }
            (3, Field::Varint(v)) => {
                out.insert("orphanDependents".into(), json!(v != 0));
            }
            (4, Field::Bytes(x)) => set_nonempty(&mut out, "propagationPolicy", x)?,
            (5, Field::Bytes(x)) => push(&mut out, "dryRun", json!(string(x)?)),
            _ => {}
        }
    }
    Ok(Value::Object(out))
}

/// Decode a protobuf-encoded object of one of the supported kinds into its JSON form.
pub fn decode(body: &[u8]) -> Result<Value, ApiError> {
    let (api_version, kind, raw) = envelope(body)?;
    if api_version != "v1"
        || !matches!(
            kind.as_str(),
            "Secret" | "ConfigMap" | "Namespace" | "ServiceAccount"
        )
    {
        return Err(ApiError::unsupported_media_type(&format!(
            "{CONTENT_TYPE} (only v1 Secret, ConfigMap, Namespace and ServiceAccount bodies are decoded; send JSON)"
        )));
    }
    let mut obj = typed(&kind, raw)?;
    obj.insert("apiVersion".into(), json!(api_version));
    obj.insert("kind".into(), json!(kind));
    Ok(Value::Object(obj))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(n: u64, bytes: &[u8]) -> Vec<u8> {
        let mut out = vec![((n << 3) | 2) as u8, bytes.len() as u8];
        out.extend_from_slice(bytes);
        out
    }

    fn entry(k: &str, v: &[u8]) -> Vec<u8> {
        [field(1, k.as_bytes()), field(2, v)].concat()
    }

    #[test]
    fn secret_envelope_decodes_to_json_with_base64_data() {
        let meta = [
            field(1, b"s1"),
            field(3, b"default"),
            field(11, &entry("app", b"x")),
        ]
        .concat();
        let secret = [
            field(1, &meta),
            field(2, &entry("token", b"abc")),
            field(3, b"Opaque"),
        ]
        .concat();
        let type_meta = [field(1, b"v1"), field(2, b"Secret")].concat();
        let body = [b"k8s\0".to_vec(), field(1, &type_meta), field(2, &secret)].concat();
        let v = decode(&body).unwrap();
        assert_eq!(
            v,
            json!({"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                   "metadata": {"name": "s1", "namespace": "default", "labels": {"app": "x"}},
                   "data": {"token": "YWJj"}})
        );
    }

    #[test]
    fn unsupported_kind_is_415() {
        let type_meta = [field(1, b"apps/v1"), field(2, b"Deployment")].concat();
        let body = [b"k8s\0".to_vec(), field(1, &type_meta)].concat();
        assert_eq!(decode(&body).unwrap_err().code, 415);
    }
}
