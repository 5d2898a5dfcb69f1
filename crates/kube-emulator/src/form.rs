//! The form an answer gives its objects: as stored, reduced to their metadata
//! (`as=PartialObjectMetadata[List]`, which kube-rs's metadata calls ask for), or, with the
//! `kubectl` feature, as a `meta.k8s.io/v1` Table (`as=Table`, which `kubectl get` asks for).
//! Without the feature a request for a Table is answered in the plain form, which the
//! Accept header of every Table-asking client also lists.

use serde_json::{Value, json};

use crate::registry::ResourceType;

#[derive(Clone, Debug, PartialEq)]
pub enum Form {
    Full,
    Metadata,
    /// `include_object` is the `includeObject` query parameter (None, Metadata, Object).
    #[cfg(feature = "kubectl")]
    Table {
        include_object: String,
    },
}

impl Form {
    /// What the first media type of the Accept header asks for.
    #[cfg_attr(not(feature = "kubectl"), allow(unused_variables))]
    pub fn from_request(accept: &str, include_object: Option<&str>) -> Form {
        let first = accept.split(',').next().unwrap_or("");
        #[cfg(feature = "kubectl")]
        if first.contains("as=Table") {
            return Form::Table {
                include_object: include_object.unwrap_or("Metadata").to_string(),
            };
        }
        if first.contains("as=PartialObjectMetadata") {
            Form::Metadata
        } else {
            Form::Full
        }
    }

    /// The Table of `objects`, when one was asked for.
    #[cfg_attr(not(feature = "kubectl"), allow(unused_variables))]
    pub fn table<'a>(
        &self,
        rt: &ResourceType,
        version: &str,
        objects: impl Iterator<Item = &'a Value>,
        resource_version: &str,
        continue_token: Option<&str>,
    ) -> Option<Value> {
        #[cfg(feature = "kubectl")]
        if let Form::Table { include_object } = self {
            return Some(crate::kubectl::table::table(
                rt,
                version,
                objects,
                resource_version,
                continue_token,
                include_object,
            ));
        }
        None
    }
}

/// An object reduced to its metadata.
pub fn partial(obj: &Value) -> Value {
    json!({
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": obj["metadata"].clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_media_type_decides_the_form() {
        let metadata =
            "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json";
        assert_eq!(Form::from_request(metadata, None), Form::Metadata);
        assert_eq!(Form::from_request("application/json", None), Form::Full);
        // kubectl get's
        let table = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";
        #[cfg(feature = "kubectl")]
        assert_eq!(
            Form::from_request(table, None),
            Form::Table {
                include_object: "Metadata".into()
            }
        );
        #[cfg(not(feature = "kubectl"))]
        assert_eq!(Form::from_request(table, None), Form::Full);
    }
}
