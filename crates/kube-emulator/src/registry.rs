//! The resource types the emulator serves: the built-in kinds and the ones CRDs register,
//! with what discovery, tables and the verbs need to know about each.

use std::collections::BTreeMap;
use std::sync::Arc;

use emulator_schema::StructuralSchema;
#[cfg(feature = "kubectl")]
use serde_json::Value;

/// Identifies a stored collection: API group ("" for core) and plural resource name.
pub type TypeKey = (String, String);

/// One served version of a custom resource: its schema (and, for kubectl, the schema as
/// written and the printer columns).
pub struct CrdVersion {
    pub name: String,
    pub schema: Option<Arc<StructuralSchema>>,
    #[cfg(feature = "kubectl")]
    pub raw_schema: Option<Value>,
    #[cfg(feature = "kubectl")]
    pub printer_columns: Vec<Value>,
    pub status_subresource: bool,
}

/// Everything known about one resource type.
pub struct ResourceType {
    pub group: String,
    /// Served versions, preferred (storage) first.
    pub versions: Vec<String>,
    pub resource: String,
    pub kind: String,
    pub singular: String,
    pub namespaced: bool,
    pub short_names: Vec<String>,
    pub categories: Vec<String>,
    pub has_status: bool,
    /// Kinds whose spec changes bump metadata.generation.
    pub tracks_generation: bool,
    /// Set for custom resources; holds per-version schemas.
    pub crd: Option<Vec<CrdVersion>>,
    /// Set when objects are stored in another type's collection.
    pub storage: Option<TypeKey>,
    /// A create-only review (access and identity reviews): answered, never stored.
    pub review: bool,
}

impl ResourceType {
    /// Identity in the registry: (group, resource).
    pub fn id(&self) -> TypeKey {
        (self.group.clone(), self.resource.clone())
    }

    /// Where its objects are stored: its own collection, or the one it shares (events.k8s.io
    /// Events live with core Events, as in apiserver).
    pub fn key(&self) -> TypeKey {
        self.storage.clone().unwrap_or_else(|| self.id())
    }

    /// Whether objects are converted between this type's form and a shared storage form.
    pub fn is_alias(&self) -> bool {
        self.storage.is_some()
    }

    pub fn api_version(&self, version: &str) -> String {
        if self.group.is_empty() {
            version.to_string()
        } else {
            format!("{}/{}", self.group, version)
        }
    }

    pub fn storage_version(&self) -> &str {
        &self.versions[0]
    }

    pub fn is_custom(&self) -> bool {
        self.crd.is_some()
    }

    pub fn crd_version(&self, version: &str) -> Option<&CrdVersion> {
        self.crd.as_ref()?.iter().find(|v| v.name == version)
    }

    /// `secrets` or `clearapiclients.clear-operator.io`, as apiserver names a resource in
    /// error messages.
    pub fn qualified_resource(&self) -> String {
        if self.group.is_empty() {
            self.resource.clone()
        } else {
            format!("{}.{}", self.resource, self.group)
        }
    }

    /// Whether the `/scale` subresource is served: Deployments, StatefulSets and
    /// ReplicaSets, with the `kubectl` feature (`kubectl scale`).
    pub fn has_scale(&self) -> bool {
        cfg!(feature = "kubectl")
            && self.group == "apps"
            && matches!(
                self.resource.as_str(),
                "deployments" | "statefulsets" | "replicasets"
            )
    }

    /// `Secret` or `ClearApiClient.clear-operator.io`, as apiserver names a kind in 422s.
    pub fn qualified_kind(&self) -> String {
        if self.group.is_empty() {
            self.kind.clone()
        } else {
            format!("{}.{}", self.kind, self.group)
        }
    }
}

struct Builtin {
    group: &'static str,
    version: &'static str,
    resource: &'static str,
    kind: &'static str,
    namespaced: bool,
    short: &'static [&'static str],
    status: bool,
    generation: bool,
}

#[allow(clippy::too_many_arguments)] // a table row, read positionally
const fn b(
    group: &'static str,
    version: &'static str,
    resource: &'static str,
    kind: &'static str,
    namespaced: bool,
    short: &'static [&'static str],
    status: bool,
    generation: bool,
) -> Builtin {
    Builtin {
        group,
        version,
        resource,
        kind,
        namespaced,
        short,
        status,
        generation,
    }
}

const BUILTINS: &[Builtin] = &[
    b(
        "",
        "v1",
        "namespaces",
        "Namespace",
        false,
        &["ns"],
        true,
        false,
    ),
    b("", "v1", "secrets", "Secret", true, &[], false, false),
    b(
        "",
        "v1",
        "configmaps",
        "ConfigMap",
        true,
        &["cm"],
        false,
        false,
    ),
    b(
        "",
        "v1",
        "serviceaccounts",
        "ServiceAccount",
        true,
        &["sa"],
        false,
        false,
    ),
    b("", "v1", "services", "Service", true, &["svc"], true, false),
    b("", "v1", "events", "Event", true, &["ev"], false, false),
    b("", "v1", "pods", "Pod", true, &["po"], true, false),
    b(
        "apps",
        "v1",
        "deployments",
        "Deployment",
        true,
        &["deploy"],
        true,
        true,
    ),
    b(
        "apps",
        "v1",
        "statefulsets",
        "StatefulSet",
        true,
        &["sts"],
        true,
        true,
    ),
    b(
        "apps",
        "v1",
        "daemonsets",
        "DaemonSet",
        true,
        &["ds"],
        true,
        true,
    ),
    b(
        "apps",
        "v1",
        "replicasets",
        "ReplicaSet",
        true,
        &["rs"],
        true,
        true,
    ),
    b(
        "rbac.authorization.k8s.io",
        "v1",
        "roles",
        "Role",
        true,
        &[],
        false,
        false,
    ),
    b(
        "rbac.authorization.k8s.io",
        "v1",
        "rolebindings",
        "RoleBinding",
        true,
        &[],
        false,
        false,
    ),
    b(
        "rbac.authorization.k8s.io",
        "v1",
        "clusterroles",
        "ClusterRole",
        false,
        &[],
        false,
        false,
    ),
    b(
        "rbac.authorization.k8s.io",
        "v1",
        "clusterrolebindings",
        "ClusterRoleBinding",
        false,
        &[],
        false,
        false,
    ),
    b(
        "coordination.k8s.io",
        "v1",
        "leases",
        "Lease",
        true,
        &[],
        false,
        false,
    ),
    b(
        "policy",
        "v1",
        "poddisruptionbudgets",
        "PodDisruptionBudget",
        true,
        &["pdb"],
        true,
        true,
    ),
    b(
        "networking.k8s.io",
        "v1",
        "networkpolicies",
        "NetworkPolicy",
        true,
        &["netpol"],
        false,
        true,
    ),
    b(
        "events.k8s.io",
        "v1",
        "events",
        "Event",
        true,
        // As upstream: only core Events answer to "ev", or kubectl warns of ambiguity.
        &[],
        false,
        false,
    ),
    b(
        "apiextensions.k8s.io",
        "v1",
        "customresourcedefinitions",
        "CustomResourceDefinition",
        false,
        &["crd", "crds"],
        true,
        true,
    ),
];

/// Reviews `kubectl auth can-i` and `kubectl auth whoami` create (the `kubectl` feature).
#[cfg(feature = "kubectl")]
const REVIEWS: [(&str, &str, &str); 3] = [
    (
        "authorization.k8s.io",
        "selfsubjectaccessreviews",
        "SelfSubjectAccessReview",
    ),
    (
        "authorization.k8s.io",
        "selfsubjectrulesreviews",
        "SelfSubjectRulesReview",
    ),
    (
        "authentication.k8s.io",
        "selfsubjectreviews",
        "SelfSubjectReview",
    ),
];

/// All served types, keyed by (group, resource).
#[derive(Default)]
pub struct Registry {
    types: BTreeMap<TypeKey, Arc<ResourceType>>,
}

impl Registry {
    pub fn with_builtins() -> Registry {
        let mut reg = Registry::default();
        for bt in BUILTINS {
            let categories = match bt.resource {
                "pods" | "services" | "deployments" | "statefulsets" | "daemonsets"
                | "replicasets" => vec!["all".to_string()],
                _ => Vec::new(),
            };
            reg.insert(ResourceType {
                group: bt.group.to_string(),
                versions: vec![bt.version.to_string()],
                resource: bt.resource.to_string(),
                kind: bt.kind.to_string(),
                singular: bt.kind.to_lowercase(),
                namespaced: bt.namespaced,
                short_names: bt.short.iter().map(|s| s.to_string()).collect(),
                categories,
                has_status: bt.status,
                tracks_generation: bt.generation,
                crd: None,
                storage: (bt.group == "events.k8s.io")
                    .then(|| (String::new(), "events".to_string())),
                review: false,
            });
        }
        #[cfg(feature = "kubectl")]
        for (group, resource, kind) in REVIEWS {
            reg.insert(ResourceType {
                group: group.to_string(),
                versions: vec!["v1".to_string()],
                resource: resource.to_string(),
                kind: kind.to_string(),
                singular: String::new(),
                namespaced: false,
                short_names: Vec::new(),
                categories: Vec::new(),
                has_status: false,
                tracks_generation: false,
                crd: None,
                storage: None,
                review: true,
            });
        }
        reg
    }

    pub fn insert(&mut self, rt: ResourceType) -> Arc<ResourceType> {
        let rt = Arc::new(rt);
        self.types.insert(rt.id(), rt.clone());
        rt
    }

    pub fn remove(&mut self, key: &TypeKey) -> Option<Arc<ResourceType>> {
        self.types.remove(key)
    }

    pub fn get(&self, group: &str, resource: &str) -> Option<&Arc<ResourceType>> {
        self.types.get(&(group.to_string(), resource.to_string()))
    }

    /// The type serving `group/version/resource`, if that version is served.
    pub fn lookup(&self, group: &str, version: &str, resource: &str) -> Option<Arc<ResourceType>> {
        let rt = self.get(group, resource)?;
        rt.versions.iter().any(|v| v == version).then(|| rt.clone())
    }

    /// Group names in the order discovery lists them (core first, then built-ins, then CRDs).
    pub fn groups(&self) -> Vec<String> {
        let mut groups: Vec<String> = Vec::new();
        for bt in BUILTINS {
            if !bt.group.is_empty() && !groups.iter().any(|g| g == bt.group) {
                groups.push(bt.group.to_string());
            }
        }
        for rt in self.types.values() {
            if !rt.group.is_empty() && !groups.contains(&rt.group) {
                groups.push(rt.group.clone());
            }
        }
        groups
    }

    /// Versions served in `group`, preferred first.
    pub fn group_versions(&self, group: &str) -> Vec<String> {
        let mut versions: Vec<String> = Vec::new();
        for rt in self.types.values().filter(|rt| rt.group == group) {
            for v in &rt.versions {
                if !versions.contains(v) {
                    versions.push(v.clone());
                }
            }
        }
        versions.sort_by_key(|v| std::cmp::Reverse(version_priority(v)));
        versions
    }

    pub fn types_in(&self, group: &str, version: &str) -> Vec<Arc<ResourceType>> {
        self.types
            .values()
            .filter(|rt| rt.group == group && rt.versions.iter().any(|v| v == version))
            .cloned()
            .collect()
    }
}

/// Kubernetes version ordering: GA > beta > alpha, higher numbers first.
pub fn version_priority(v: &str) -> (u8, u32, u32) {
    let rest = v.strip_prefix('v').unwrap_or(v);
    let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
    let major: u32 = digits.parse().unwrap_or(0);
    let tail = &rest[digits.len()..];
    if tail.is_empty() {
        return (3, major, 0);
    }
    let (stage, n) = if let Some(n) = tail.strip_prefix("beta") {
        (2, n)
    } else if let Some(n) = tail.strip_prefix("alpha") {
        (1, n)
    } else {
        (0, "")
    };
    (stage, major, n.parse().unwrap_or(0))
}
