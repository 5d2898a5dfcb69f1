//! Sets of field paths in the `FieldsV1` shape kube-apiserver stores in managedFields:
//! `f:name` fields, `k:{"name":"x"}` keyed list items, `v:"x"` set values, `i:0` indexes, and
//! `.` marking that a node with children is itself a member.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

/// One node of a field set: `member` when the path itself is in the set; children by their
/// path-element text (`f:spec`, `k:{"name":"app"}`, ...).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct FieldSet {
    pub member: bool,
    pub children: BTreeMap<String, FieldSet>,
}

impl FieldSet {
    pub(crate) fn leaf() -> Self {
        FieldSet {
            member: true,
            children: BTreeMap::new(),
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        !self.member && self.children.is_empty()
    }

    pub(crate) fn child(&self, element: &str) -> Option<&FieldSet> {
        self.children.get(element)
    }

    pub(crate) fn child_mut(&mut self, element: &str) -> &mut FieldSet {
        self.children.entry(element.to_string()).or_default()
    }

    /// Drops children that hold nothing, bottom-up.
    pub(crate) fn compact(&mut self) {
        for child in self.children.values_mut() {
            child.compact();
        }
        self.children.retain(|_, child| !child.is_empty());
    }

    pub(crate) fn union_with(&mut self, other: &FieldSet) {
        self.member |= other.member;
        for (element, child) in &other.children {
            self.child_mut(element).union_with(child);
        }
    }

    /// Removes every member of `other` from `self`.
    pub(crate) fn subtract(&mut self, other: &FieldSet) {
        if other.member {
            self.member = false;
        }
        for (element, child) in &other.children {
            if let Some(mine) = self.children.get_mut(element) {
                mine.subtract(child);
                if mine.is_empty() {
                    self.children.remove(element);
                }
            }
        }
    }

    /// The members present in both sets.
    pub(crate) fn intersection(&self, other: &FieldSet) -> FieldSet {
        let mut out = FieldSet {
            member: self.member && other.member,
            children: BTreeMap::new(),
        };
        for (element, child) in &self.children {
            if let Some(theirs) = other.children.get(element) {
                let both = child.intersection(theirs);
                if !both.is_empty() {
                    out.children.insert(element.clone(), both);
                }
            }
        }
        out
    }

    /// Every member path, each as its list of path elements, in set order.
    pub(crate) fn paths(&self) -> Vec<Vec<String>> {
        let mut out = Vec::new();
        let mut prefix = Vec::new();
        self.collect_paths(&mut prefix, &mut out);
        out
    }

    fn collect_paths(&self, prefix: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
        if self.member && !prefix.is_empty() {
            out.push(prefix.clone());
        }
        for (element, child) in &self.children {
            prefix.push(element.clone());
            child.collect_paths(prefix, out);
            prefix.pop();
        }
    }

    /// Whether the set has `element` as a member or holds anything beneath it.
    pub(crate) fn touches(&self, element: &str) -> bool {
        self.children.get(element).is_some_and(|c| !c.is_empty())
    }

    /// The `fieldsV1` JSON of this set.
    pub(crate) fn to_json(&self) -> Value {
        let mut map = Map::new();
        if self.member && !self.children.is_empty() {
            map.insert(".".to_string(), Value::Object(Map::new()));
        }
        for (element, child) in &self.children {
            map.insert(element.clone(), child.to_json());
        }
        Value::Object(map)
    }

    /// Reads a `fieldsV1` object; None when it is not one.
    pub(crate) fn from_json(value: &Value) -> Option<FieldSet> {
        let map = value.as_object()?;
        let mut set = FieldSet {
            member: map.is_empty(),
            children: BTreeMap::new(),
        };
        for (element, child) in map {
            if element == "." {
                set.member = true;
                continue;
            }
            if !matches!(element.get(..2), Some("f:" | "k:" | "v:" | "i:")) {
                return None;
            }
            set.children
                .insert(element.clone(), FieldSet::from_json(child)?);
        }
        Some(set)
    }
}

/// The path element of a struct or map field.
pub(crate) fn field_element(name: &str) -> String {
    format!("f:{name}")
}

/// The path element of a set value.
pub(crate) fn value_element(value: &Value) -> String {
    format!("v:{value}")
}

/// Key fields with a schema default: kube-apiserver keys items by the defaulted value, so an
/// applied port without `protocol` is the same item as the stored, defaulted `TCP` one.
const KEY_DEFAULTS: [(&str, &str); 1] = [("protocol", "TCP")];

/// The path element of a keyed list item: its key fields, sorted by name. Absent keys take
/// their default when they have one and are left out otherwise.
pub(crate) fn key_element(item: &Value, keys: &[&str]) -> Option<String> {
    let mut names: Vec<&str> = keys.to_vec();
    names.sort_unstable();
    let mut parts = Vec::new();
    let mut given = false;
    for name in names {
        let value = match item.get(name).filter(|v| !v.is_null()) {
            Some(value) => {
                given = true;
                value.clone()
            }
            None => match KEY_DEFAULTS.iter().find(|(key, _)| *key == name) {
                Some((_, default)) => Value::String((*default).to_string()),
                None => continue,
            },
        };
        parts.push(format!("{}:{value}", Value::String(name.to_string())));
    }
    if !given {
        return None;
    }
    Some(format!("k:{{{}}}", parts.join(",")))
}

/// A path as kube-apiserver prints it in conflict messages:
/// `.spec.template.spec.containers[name="app"].image`.
pub(crate) fn display_path(path: &[String]) -> String {
    let mut out = String::new();
    for element in path {
        let (kind, rest) = element.split_at(2.min(element.len()));
        match kind {
            "f:" => {
                out.push('.');
                out.push_str(rest);
            }
            "v:" => {
                out.push_str("[=");
                out.push_str(rest);
                out.push(']');
            }
            "i:" => {
                out.push('[');
                out.push_str(rest);
                out.push(']');
            }
            "k:" => match serde_json::from_str::<Map<String, Value>>(rest) {
                Ok(keys) => {
                    let mut pairs: Vec<(String, Value)> = keys.into_iter().collect();
                    pairs.sort_by(|a, b| a.0.cmp(&b.0));
                    let shown: Vec<String> =
                        pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
                    out.push('[');
                    out.push_str(&shown.join(","));
                    out.push(']');
                }
                Err(_) => out.push_str(element),
            },
            _ => out.push_str(element),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn fields_v1_round_trips_with_dot_for_members_that_have_children() {
        let fields = json!({
            "f:metadata": {"f:labels": {".": {}, "f:app": {}}},
            "f:spec": {"f:template": {"f:spec": {"f:containers": {
                "k:{\"name\":\"app\"}": {".": {}, "f:image": {}, "f:name": {}}
            }}}}
        });
        let set = FieldSet::from_json(&fields).expect("valid fieldsV1");
        assert!(
            set.child("f:metadata")
                .expect("metadata")
                .child("f:labels")
                .expect("labels")
                .member
        );
        assert!(!set.child("f:spec").expect("spec").member);
        assert_eq!(set.to_json(), fields);
    }

    #[test]
    fn fields_v1_with_foreign_element_prefixes_is_rejected() {
        assert_eq!(FieldSet::from_json(&json!({"spec": {}})), None);
        assert_eq!(FieldSet::from_json(&json!(["f:spec"])), None);
    }

    #[test]
    fn subtracting_the_only_member_of_a_branch_removes_the_branch() {
        let mut set = FieldSet::from_json(&json!({"f:spec": {"f:replicas": {}, "f:paused": {}}}))
            .expect("valid");
        let gone = FieldSet::from_json(&json!({"f:spec": {"f:replicas": {}}})).expect("valid");
        set.subtract(&gone);
        assert_eq!(set.to_json(), json!({"f:spec": {"f:paused": {}}}));
        set.subtract(&FieldSet::from_json(&json!({"f:spec": {"f:paused": {}}})).expect("valid"));
        assert!(set.is_empty());
    }

    #[test]
    fn key_elements_sort_key_fields_and_paths_print_like_the_apiserver() {
        let port = json!({"protocol": "TCP", "containerPort": 80, "name": "http"});
        let key = key_element(&port, &["protocol", "containerPort"]).expect("has keys");
        assert_eq!(key, r#"k:{"containerPort":80,"protocol":"TCP"}"#);
        let path = vec![
            "f:spec".to_string(),
            "f:ports".to_string(),
            key,
            "f:name".to_string(),
        ];
        assert_eq!(
            display_path(&path),
            r#".spec.ports[containerPort=80,protocol="TCP"].name"#
        );
        let defaulted = json!({"containerPort": 80});
        assert_eq!(
            key_element(&defaulted, &["containerPort", "protocol"]).as_deref(),
            Some(r#"k:{"containerPort":80,"protocol":"TCP"}"#)
        );
        assert_eq!(key_element(&json!({"name": "x"}), &["protocol"]), None);
        let finalizer = vec![
            "f:metadata".to_string(),
            "f:finalizers".to_string(),
            value_element(&json!("x")),
        ];
        assert_eq!(display_path(&finalizer), r#".metadata.finalizers[="x"]"#);
    }
}
