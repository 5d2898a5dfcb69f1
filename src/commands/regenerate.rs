//! `clear-operator regenerate NAME`: asks for one new token by setting the
//! `clear-operator.io/regenerate` annotation to a fresh value (like `cmctl renew`).
//! The operator honours each distinct value once and records it in status.

use kube::{
    Api, Client,
    api::{Patch, PatchParams},
};

use crate::resource::{ClearApiClient, REGENERATE_ANNOTATION};

#[derive(Debug, thiserror::Error)]
pub enum RegenerateError {
    #[error("failed to find ClearApiClient {namespace}/{name}")]
    NotFound { namespace: String, name: String },
    #[error("failed to annotate ClearApiClient {namespace}/{name}")]
    Patch {
        namespace: String,
        name: String,
        #[source]
        source: kube::Error,
    },
}

/// Sets the regenerate annotation and returns the value written. Without an explicit value
/// the current time is used, so every call is a new request.
pub async fn request_regeneration(
    client: Client,
    namespace: &str,
    name: &str,
    value: Option<String>,
) -> Result<String, RegenerateError> {
    let value = value.unwrap_or_else(|| jiff::Timestamp::now().to_string());
    let api: Api<ClearApiClient> = Api::namespaced(client, namespace);
    let patch =
        serde_json::json!({ "metadata": { "annotations": { REGENERATE_ANNOTATION: value } } });
    match api
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(_) => Ok(value),
        Err(kube::Error::Api(status)) if status.code == 404 => Err(RegenerateError::NotFound {
            namespace: namespace.to_string(),
            name: name.to_string(),
        }),
        Err(source) => Err(RegenerateError::Patch {
            namespace: namespace.to_string(),
            name: name.to_string(),
            source,
        }),
    }
}
