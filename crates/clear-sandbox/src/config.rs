//! Configuration of simulated API clients: the in-code builder and the clients file
//! (YAML or JSON) the binary reads.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::duration::{DurationError, parse_duration};
use crate::secret::{ClientSecret, MAX_TOKEN_LENGTH};

/// Clear's documented quota: 288 token calls per client secret per UTC day.
pub const DEFAULT_DAILY_QUOTA: u32 = 288;
/// Length of minted tokens unless a client asks for another.
pub const DEFAULT_TOKEN_LENGTH: usize = 64;
/// Token lifetime of [`ClientConfig::new`]; Clear makes the creator pick one.
pub const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(24 * 3_600);

/// The Clear environment an API client is bound to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Environment {
    Sandbox,
    Production,
}

/// How long the tokens of a client live.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenExpiry {
    After(Duration),
    /// `valid_till: null`: the token lives until replaced or its client is removed.
    Never,
}

/// How the 200 body spells the token field; one Clear product documents the hyphen.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum TokenField {
    #[default]
    #[serde(rename = "access_token")]
    Underscore,
    #[serde(rename = "access-token")]
    Hyphen,
}

impl TokenField {
    pub fn json_name(self) -> &'static str {
        match self {
            Self::Underscore => "access_token",
            Self::Hyphen => "access-token",
        }
    }
}

/// One simulated API client.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// Label used in logs and the admin API (never the secret); generated when absent.
    pub name: Option<String>,
    pub client_secret: ClientSecret,
    pub workspace: String,
    pub products: Vec<String>,
    pub environment: Environment,
    pub expiry: TokenExpiry,
    pub daily_quota: u32,
    pub token_field: TokenField,
    pub token_length: usize,
}

impl ClientConfig {
    /// A sandbox client with 24h tokens, the default quota and no products.
    pub fn new(client_secret: impl Into<ClientSecret>, workspace: impl Into<String>) -> Self {
        Self {
            name: None,
            client_secret: client_secret.into(),
            workspace: workspace.into(),
            products: Vec::new(),
            environment: Environment::Sandbox,
            expiry: TokenExpiry::After(DEFAULT_TOKEN_LIFETIME),
            daily_quota: DEFAULT_DAILY_QUOTA,
            token_field: TokenField::default(),
            token_length: DEFAULT_TOKEN_LENGTH,
        }
    }

    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    pub fn with_products<I, S>(mut self, products: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.products = products.into_iter().map(Into::into).collect();
        self
    }

    pub fn with_environment(mut self, environment: Environment) -> Self {
        self.environment = environment;
        self
    }

    pub fn with_lifetime(mut self, lifetime: Duration) -> Self {
        self.expiry = TokenExpiry::After(lifetime);
        self
    }

    pub fn never_expires(mut self) -> Self {
        self.expiry = TokenExpiry::Never;
        self
    }

    pub fn with_daily_quota(mut self, quota: u32) -> Self {
        self.daily_quota = quota;
        self
    }

    pub fn with_token_field(mut self, field: TokenField) -> Self {
        self.token_field = field;
        self
    }

    pub fn with_token_length(mut self, length: usize) -> Self {
        self.token_length = length;
        self
    }

    /// Checks what the builder cannot: a non-empty secret, a positive lifetime, a
    /// token length Clear allows.
    pub fn validate(&self) -> Result<(), InvalidClient> {
        if self.client_secret.expose().trim().is_empty() {
            return Err(InvalidClient::EmptySecret);
        }
        // NB: valid_till is reported to the second, so a shorter lifetime would hand
        // out tokens that are already expired.
        if matches!(self.expiry, TokenExpiry::After(lifetime) if lifetime < Duration::from_secs(1))
        {
            return Err(InvalidClient::LifetimeUnderOneSecond);
        }
        if self.token_length == 0 || self.token_length > MAX_TOKEN_LENGTH {
            return Err(InvalidClient::TokenLength(self.token_length));
        }
        Ok(())
    }
}

/// A client configuration the simulator refuses.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum InvalidClient {
    #[error("failed to accept client: the client secret is empty")]
    EmptySecret,
    #[error("failed to accept client: the token lifetime is shorter than one second")]
    LifetimeUnderOneSecond,
    #[error("failed to accept client: token length {0} is outside 1..=256")]
    TokenLength(usize),
}

/// Errors reading the clients file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("failed to read clients file {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("failed to parse clients file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("failed to parse client #{index} in {path}")]
    Client {
        path: PathBuf,
        index: usize,
        #[source]
        source: EntryError,
    },
}

/// Why one client entry (of the file or of the admin API) was refused.
#[derive(Debug, thiserror::Error)]
pub enum EntryError {
    #[error("failed to decode the client: {0}")]
    Decode(String),
    #[error(
        "failed to choose a token expiry: tokenLifetime and neverExpires: true exclude each other"
    )]
    ConflictingExpiry,
    #[error(
        "failed to choose a token expiry: set tokenLifetime (e.g. \"24h\") or neverExpires: true"
    )]
    MissingExpiry,
    #[error(transparent)]
    Lifetime(#[from] DurationError),
    #[error(transparent)]
    Invalid(#[from] InvalidClient),
}

/// A client as written in the clients file and in the admin API.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct ClientEntry {
    name: Option<String>,
    client_secret: ClientSecret,
    workspace: String,
    #[serde(default)]
    products: Vec<String>,
    environment: Environment,
    token_lifetime: Option<LifetimeEntry>,
    #[serde(default)]
    never_expires: bool,
    daily_quota: Option<u32>,
    token_field: Option<TokenField>,
    token_length: Option<usize>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum LifetimeEntry {
    Seconds(u64),
    Text(String),
}

impl ClientEntry {
    pub(crate) fn into_config(self) -> Result<ClientConfig, EntryError> {
        let expiry = match (self.token_lifetime, self.never_expires) {
            (Some(_), true) => return Err(EntryError::ConflictingExpiry),
            (None, false) => return Err(EntryError::MissingExpiry),
            (None, true) => TokenExpiry::Never,
            (Some(LifetimeEntry::Seconds(seconds)), false) => {
                TokenExpiry::After(Duration::from_secs(seconds))
            }
            (Some(LifetimeEntry::Text(text)), false) => TokenExpiry::After(parse_duration(&text)?),
        };
        let client = ClientConfig {
            name: self.name,
            client_secret: self.client_secret,
            workspace: self.workspace,
            products: self.products,
            environment: self.environment,
            expiry,
            daily_quota: self.daily_quota.unwrap_or(DEFAULT_DAILY_QUOTA),
            token_field: self.token_field.unwrap_or_default(),
            token_length: self.token_length.unwrap_or(DEFAULT_TOKEN_LENGTH),
        };
        client.validate()?;
        Ok(client)
    }
}

/// Reads a clients file: a list of clients, or a mapping with a `clients` list.
/// Files ending in `.json` are read as JSON, everything else as YAML.
pub fn load_clients_file(path: &Path) -> Result<Vec<ClientConfig>, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    let is_json = path
        .extension()
        .is_some_and(|ext| ext.eq_ignore_ascii_case("json"));
    if is_json {
        parse_clients::<serde_json::Value>(path, &text, |t| {
            serde_json::from_str(t).map_err(|e| e.to_string())
        })
    } else {
        parse_clients::<serde_yaml::Value>(path, &text, |t| {
            serde_yaml::from_str(t).map_err(|e| e.to_string())
        })
    }
}

/// Parses the document, then each client on its own so errors can name the client.
fn parse_clients<V: DocumentValue>(
    path: &Path,
    text: &str,
    parse: impl Fn(&str) -> Result<V, String>,
) -> Result<Vec<ClientConfig>, ConfigError> {
    let parse_error = |message: String| ConfigError::Parse {
        path: path.to_owned(),
        message,
    };
    let document = parse(text).map_err(parse_error)?;
    let items = document.client_list().ok_or_else(|| {
        parse_error("expected a list of clients or a mapping with a `clients` list".into())
    })?;
    items
        .into_iter()
        .enumerate()
        .map(|(index, item)| {
            item.decode()
                .map_err(EntryError::Decode)
                .and_then(ClientEntry::into_config)
                .map_err(|source| ConfigError::Client {
                    path: path.to_owned(),
                    index: index + 1,
                    source,
                })
        })
        .collect()
}

/// The two document models (YAML and JSON) seen the same way.
trait DocumentValue: Sized {
    fn client_list(self) -> Option<Vec<Self>>;
    fn decode(self) -> Result<ClientEntry, String>;
}

impl DocumentValue for serde_yaml::Value {
    fn client_list(self) -> Option<Vec<Self>> {
        match self {
            Self::Sequence(items) => Some(items),
            Self::Mapping(mut map) => match map.remove("clients")? {
                Self::Sequence(items) => Some(items),
                _ => None,
            },
            _ => None,
        }
    }

    fn decode(self) -> Result<ClientEntry, String> {
        serde_yaml::from_value(self).map_err(|e| e.to_string())
    }
}

impl DocumentValue for serde_json::Value {
    fn client_list(self) -> Option<Vec<Self>> {
        match self {
            Self::Array(items) => Some(items),
            Self::Object(mut map) => match map.remove("clients")? {
                Self::Array(items) => Some(items),
                _ => None,
            },
            _ => None,
        }
    }

    fn decode(self) -> Result<ClientEntry, String> {
        serde_json::from_value(self).map_err(|e| e.to_string())
    }
}

/// Formats an error with its whole source chain, for messages shown to people.
pub(crate) fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_temp(name: &str, text: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "clear-sandbox-config-{}-{}",
            std::process::id(),
            rand::random::<u64>()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    fn remove_temp(path: &Path) {
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
    }

    #[test]
    fn yaml_list_with_every_field_is_read() {
        let path = write_temp(
            "clients.yaml",
            r#"
- name: gst-prod
  clientSecret: s3cr3t-one
  workspace: acme
  products: [GST, EINVOICE]
  environment: production
  tokenLifetime: 30d
  dailyQuota: 10
  tokenField: access-token
  tokenLength: 256
- clientSecret: s3cr3t-two
  workspace: acme
  environment: sandbox
  neverExpires: true
- clientSecret: s3cr3t-three
  workspace: other
  environment: sandbox
  tokenLifetime: 600
"#,
        );
        let clients = load_clients_file(&path).unwrap();
        remove_temp(&path);
        assert_eq!(clients.len(), 3);
        let first = &clients[0];
        assert_eq!(first.name.as_deref(), Some("gst-prod"));
        assert_eq!(first.client_secret.expose(), "s3cr3t-one");
        assert_eq!(first.products, ["GST", "EINVOICE"]);
        assert_eq!(first.environment, Environment::Production);
        assert_eq!(
            first.expiry,
            TokenExpiry::After(Duration::from_secs(30 * 86_400))
        );
        assert_eq!(first.daily_quota, 10);
        assert_eq!(first.token_field, TokenField::Hyphen);
        assert_eq!(first.token_length, 256);
        assert_eq!(clients[1].expiry, TokenExpiry::Never);
        assert_eq!(clients[1].daily_quota, DEFAULT_DAILY_QUOTA);
        assert_eq!(
            clients[2].expiry,
            TokenExpiry::After(Duration::from_secs(600))
        );
    }

    #[test]
    fn example_clients_file_in_the_crate_loads() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("clients.example.yaml");
        let clients = load_clients_file(&path).unwrap();
        assert_eq!(clients.len(), 3);
        assert_eq!(clients[1].expiry, TokenExpiry::Never);
        assert_eq!(clients[2].token_field, TokenField::Hyphen);
    }

    #[test]
    fn json_mapping_with_clients_key_is_read() {
        let path = write_temp(
            "clients.json",
            r#"{"clients": [{"clientSecret": "abc", "workspace": "w", "environment": "sandbox", "tokenLifetime": "10m"}]}"#,
        );
        let clients = load_clients_file(&path).unwrap();
        remove_temp(&path);
        assert_eq!(
            clients[0].expiry,
            TokenExpiry::After(Duration::from_secs(600))
        );
    }

    #[test]
    fn client_without_expiry_setting_is_rejected_with_its_index() {
        let path = write_temp(
            "clients.yaml",
            "- clientSecret: abc\n  workspace: w\n  environment: sandbox\n",
        );
        let err = error_chain(&load_clients_file(&path).unwrap_err());
        remove_temp(&path);
        assert!(err.contains("client #1"), "{err}");
        assert!(err.contains("tokenLifetime"), "{err}");
    }

    #[test]
    fn misspelled_field_is_rejected() {
        let path = write_temp(
            "clients.yaml",
            "- clientSecret: abc\n  workspace: w\n  environment: sandbox\n  tokenLifetme: 1h\n",
        );
        let err = error_chain(&load_clients_file(&path).unwrap_err());
        remove_temp(&path);
        assert!(err.contains("tokenLifetme"), "{err}");
    }

    #[test]
    fn numeric_secret_is_rejected_without_echoing_it() {
        let path = write_temp(
            "clients.yaml",
            "- clientSecret: 987654321\n  workspace: w\n  environment: sandbox\n  neverExpires: true\n",
        );
        let err = load_clients_file(&path).unwrap_err();
        remove_temp(&path);
        let text = format!("{} {err:?}", error_chain(&err));
        assert!(!text.contains("987654321"), "{text}");
    }

    #[test]
    fn empty_secret_and_oversized_tokens_are_rejected() {
        assert_eq!(
            ClientConfig::new("", "w").validate(),
            Err(InvalidClient::EmptySecret)
        );
        assert_eq!(
            ClientConfig::new("s", "w")
                .with_token_length(257)
                .validate(),
            Err(InvalidClient::TokenLength(257))
        );
        assert_eq!(
            ClientConfig::new("s", "w")
                .with_lifetime(Duration::from_millis(999))
                .validate(),
            Err(InvalidClient::LifetimeUnderOneSecond)
        );
    }
}
