//! The merge-relevant part of the built-in kinds' schemas: which lists merge by key, which are
//! sets of scalars, which structs are atomic or carry `retainKeys`. Both strategic merge patch
//! and server-side apply read this one table, so the two agree on list identity. Anything not
//! listed merges maps field by field and treats lists as atomic, which is also how custom
//! resources without list-type hints behave.

/// How the elements of a list relate to each other.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum List {
    /// The list is one value: a patch or apply replaces it whole.
    Atomic,
    /// A set of scalars (`finalizers`): merged as a union, owned per value (`v:"x"`).
    Set,
    /// Objects identified by key fields. `merge_key` is the strategic-merge-patch key;
    /// `keys` the server-side-apply `listMapKey`s (sometimes more than the patch key, e.g.
    /// container ports are keyed by `containerPort` and `protocol`).
    Map {
        merge_key: &'static str,
        keys: &'static [&'static str],
    },
}

/// The built-in kinds whose schema this crate knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Namespace,
    Secret,
    ConfigMap,
    ServiceAccount,
    Service,
    Event,
    Pod,
    Deployment,
    StatefulSet,
    DaemonSet,
    Role,
    ClusterRole,
    RoleBinding,
    ClusterRoleBinding,
    Lease,
    PodDisruptionBudget,
    NetworkPolicy,
    CustomResourceDefinition,
}

/// A node type in an object. Known struct types steer list merging; `Unknown` is the
/// schema-less default (maps granular, lists atomic).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Ty {
    Unknown,
    /// One leaf whatever its shape (`x-kubernetes-map-type: atomic`, e.g. label selectors).
    Atomic,
    Root(Kind),
    ObjectMeta,
    WorkloadSpec(Kind),
    DeploymentStrategy,
    PodTemplate,
    PodSpec,
    Container,
    Volume,
    Status,
    ServiceSpec,
    SelectorSpec,
}

/// What a field of a struct holds: its type (the element type for lists) and list semantics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Field {
    pub ty: Ty,
    pub list: List,
}

const fn plain(ty: Ty) -> Field {
    Field {
        ty,
        list: List::Atomic,
    }
}

const fn keyed(merge_key: &'static str, keys: &'static [&'static str], ty: Ty) -> Field {
    Field {
        ty,
        list: List::Map { merge_key, keys },
    }
}

const SET: Field = Field {
    ty: Ty::Atomic,
    list: List::Set,
};

/// The root type of `api_version`/`kind`, or None for kinds without a known schema.
pub(crate) fn root(api_version: &str, kind: &str) -> Option<Ty> {
    let group = match api_version.rsplit_once('/') {
        Some((group, _)) => group,
        None => "",
    };
    let known = match (group, kind) {
        ("", "Namespace") => Kind::Namespace,
        ("", "Secret") => Kind::Secret,
        ("", "ConfigMap") => Kind::ConfigMap,
        ("", "ServiceAccount") => Kind::ServiceAccount,
        ("", "Service") => Kind::Service,
        ("" | "events.k8s.io", "Event") => Kind::Event,
        ("", "Pod") => Kind::Pod,
        ("apps", "Deployment") => Kind::Deployment,
        ("apps", "StatefulSet") => Kind::StatefulSet,
        ("apps", "DaemonSet") => Kind::DaemonSet,
        ("rbac.authorization.k8s.io", "Role") => Kind::Role,
        ("rbac.authorization.k8s.io", "ClusterRole") => Kind::ClusterRole,
        ("rbac.authorization.k8s.io", "RoleBinding") => Kind::RoleBinding,
        ("rbac.authorization.k8s.io", "ClusterRoleBinding") => Kind::ClusterRoleBinding,
        ("coordination.k8s.io", "Lease") => Kind::Lease,
        ("policy", "PodDisruptionBudget") => Kind::PodDisruptionBudget,
        ("networking.k8s.io", "NetworkPolicy") => Kind::NetworkPolicy,
        ("apiextensions.k8s.io", "CustomResourceDefinition") => Kind::CustomResourceDefinition,
        _ => return None,
    };
    Some(Ty::Root(known))
}

/// The root type for server-side apply and field tracking: custom resources get `Unknown`.
pub(crate) fn root_or_unknown(object: &serde_json::Value) -> Ty {
    let text = |k: &str| object.get(k).and_then(|v| v.as_str()).unwrap_or("");
    root(text("apiVersion"), text("kind")).unwrap_or(Ty::Unknown)
}

impl Ty {
    /// The field `name` of a value of this type.
    pub(crate) fn field(self, name: &str) -> Field {
        match self {
            Ty::Unknown => plain(Ty::Unknown),
            Ty::Atomic => plain(Ty::Atomic),
            Ty::Root(kind) => root_field(kind, name),
            Ty::ObjectMeta => match name {
                "finalizers" => SET,
                "ownerReferences" => keyed("uid", &["uid"], Ty::Atomic),
                "managedFields" => plain(Ty::Atomic),
                _ => plain(Ty::Unknown),
            },
            Ty::WorkloadSpec(kind) => match name {
                "selector" => plain(Ty::Atomic),
                "template" => plain(Ty::PodTemplate),
                "strategy" if kind == Kind::Deployment => plain(Ty::DeploymentStrategy),
                _ => plain(Ty::Unknown),
            },
            Ty::PodTemplate => match name {
                "metadata" => plain(Ty::ObjectMeta),
                "spec" => plain(Ty::PodSpec),
                _ => plain(Ty::Unknown),
            },
            Ty::PodSpec => match name {
                "containers" | "initContainers" | "ephemeralContainers" => {
                    keyed("name", &["name"], Ty::Container)
                }
                "volumes" => keyed("name", &["name"], Ty::Volume),
                "imagePullSecrets" => keyed("name", &["name"], Ty::Atomic),
                "hostAliases" => keyed("ip", &["ip"], Ty::Unknown),
                "schedulingGates" | "resourceClaims" => keyed("name", &["name"], Ty::Unknown),
                "topologySpreadConstraints" => keyed(
                    "topologyKey",
                    &["topologyKey", "whenUnsatisfiable"],
                    Ty::Unknown,
                ),
                _ => plain(Ty::Unknown),
            },
            Ty::Container => match name {
                "ports" => keyed("containerPort", &["containerPort", "protocol"], Ty::Unknown),
                "env" => keyed("name", &["name"], Ty::Unknown),
                "volumeMounts" => keyed("mountPath", &["mountPath"], Ty::Unknown),
                "volumeDevices" => keyed("devicePath", &["devicePath"], Ty::Unknown),
                _ => plain(Ty::Unknown),
            },
            Ty::Status => match name {
                "conditions" => keyed("type", &["type"], Ty::Unknown),
                "podIPs" | "hostIPs" => keyed("ip", &["ip"], Ty::Unknown),
                _ => plain(Ty::Unknown),
            },
            Ty::ServiceSpec => match name {
                "ports" => keyed("port", &["port", "protocol"], Ty::Unknown),
                "selector" => plain(Ty::Atomic),
                _ => plain(Ty::Unknown),
            },
            Ty::SelectorSpec => match name {
                "selector" | "podSelector" => plain(Ty::Atomic),
                _ => plain(Ty::Unknown),
            },
            Ty::DeploymentStrategy | Ty::Volume => plain(Ty::Unknown),
        }
    }

    /// Whether a map of this type is one leaf for ownership and merging.
    pub(crate) fn is_atomic(self) -> bool {
        self == Ty::Atomic
    }

    /// Known non-pointer structs always exist in a typed object, so kube-apiserver never
    /// records them as added themselves (no `.` entry); schema-less maps do get one.
    pub(crate) fn is_value_struct(self) -> bool {
        !matches!(self, Ty::Unknown | Ty::Atomic)
    }
}

fn root_field(kind: Kind, name: &str) -> Field {
    match (kind, name) {
        (_, "metadata") => plain(Ty::ObjectMeta),
        (Kind::Pod, "spec") => plain(Ty::PodSpec),
        (Kind::Deployment | Kind::StatefulSet | Kind::DaemonSet, "spec") => {
            plain(Ty::WorkloadSpec(kind))
        }
        (Kind::Service, "spec") => plain(Ty::ServiceSpec),
        (Kind::PodDisruptionBudget | Kind::NetworkPolicy, "spec") => plain(Ty::SelectorSpec),
        (Kind::ServiceAccount, "secrets") => keyed("name", &["name"], Ty::Unknown),
        (Kind::RoleBinding | Kind::ClusterRoleBinding, "roleRef") => plain(Ty::Atomic),
        (
            Kind::Pod
            | Kind::Deployment
            | Kind::StatefulSet
            | Kind::DaemonSet
            | Kind::Service
            | Kind::Namespace
            | Kind::PodDisruptionBudget
            | Kind::CustomResourceDefinition,
            "status",
        ) => plain(Ty::Status),
        _ => plain(Ty::Unknown),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deployment_containers_merge_by_name_and_ports_by_container_port_and_protocol() {
        let deployment = root("apps/v1", "Deployment").expect("known kind");
        let pod_spec = deployment
            .field("spec")
            .ty
            .field("template")
            .ty
            .field("spec")
            .ty;
        let containers = pod_spec.field("containers");
        assert_eq!(
            containers.list,
            List::Map {
                merge_key: "name",
                keys: &["name"]
            }
        );
        let ports = containers.ty.field("ports").list;
        assert_eq!(
            ports,
            List::Map {
                merge_key: "containerPort",
                keys: &["containerPort", "protocol"]
            }
        );
    }

    #[test]
    fn custom_resources_and_wrong_groups_have_no_known_schema() {
        assert_eq!(root("example.com/v1", "Widget"), None);
        assert_eq!(root("example.com/v1", "Deployment"), None);
        assert_eq!(root("v1", "Deployment"), None);
        assert!(root("v1", "Secret").is_some());
        assert!(root("events.k8s.io/v1", "Event").is_some());
    }

    #[test]
    fn unknown_types_keep_lists_atomic() {
        assert_eq!(Ty::Unknown.field("items").list, List::Atomic);
        let rules = root("rbac.authorization.k8s.io/v1", "Role")
            .expect("known kind")
            .field("rules");
        assert_eq!(rules.list, List::Atomic);
    }
}
