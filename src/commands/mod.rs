//! The `clear-operator` subcommands other than the controller itself.

pub mod check;
pub mod regenerate;
pub mod status;

use kube::{Api, Client};

use crate::resource::ClearApiClient;

/// Why a command could not read the ClearApiClient it was asked about.
#[derive(Debug, thiserror::Error)]
pub enum ReadResourceError {
    #[error("failed to find ClearApiClient {namespace}/{name}")]
    NotFound { namespace: String, name: String },
    #[error("failed to read ClearApiClient {namespace}/{name}")]
    Read {
        namespace: String,
        name: String,
        #[source]
        source: kube::Error,
    },
}

/// Reads the ClearApiClient `namespace/name`; its absence is an error that names it.
pub async fn read_resource(
    client: Client,
    namespace: &str,
    name: &str,
) -> Result<ClearApiClient, ReadResourceError> {
    let api: Api<ClearApiClient> = Api::namespaced(client, namespace);
    match api.get_opt(name).await {
        Ok(Some(cac)) => Ok(cac),
        Ok(None) => Err(ReadResourceError::NotFound {
            namespace: namespace.to_string(),
            name: name.to_string(),
        }),
        Err(source) => Err(ReadResourceError::Read {
            namespace: namespace.to_string(),
            name: name.to_string(),
            source,
        }),
    }
}
