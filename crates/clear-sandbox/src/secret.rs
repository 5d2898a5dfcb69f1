//! Newtypes for the two confidential values the simulator handles, client secrets and
//! access tokens, so that no `Debug`, `Display` or error path can print them by accident.

use std::fmt;

use rand::Rng;
use rand::distributions::Alphanumeric;
use serde::{Deserialize, Deserializer};

/// The secret of an API client; it can only mint access tokens.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct ClientSecret(String);

impl ClientSecret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The raw value, for sending it in a header. Never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ClientSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClientSecret(<redacted>)")
    }
}

impl From<&str> for ClientSecret {
    fn from(value: &str) -> Self {
        Self::new(value)
    }
}

impl From<String> for ClientSecret {
    fn from(value: String) -> Self {
        Self::new(value)
    }
}

impl<'de> Deserialize<'de> for ClientSecret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // NB: the original serde error quotes the offending value, which could be the
        // secret itself (a number, say), so it is replaced by a fixed message.
        let value = String::deserialize(deserializer)
            .map_err(|_| serde::de::Error::custom("clientSecret must be a string"))?;
        Ok(Self(value))
    }
}

/// An access token minted by the simulator: random, opaque, at most 256 characters.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct AccessToken(String);

/// The longest token Clear documents.
pub const MAX_TOKEN_LENGTH: usize = 256;

impl AccessToken {
    pub(crate) fn generate(length: usize) -> Self {
        let value = rand::thread_rng()
            .sample_iter(&Alphanumeric)
            .take(length)
            .map(char::from)
            .collect();
        Self(value)
    }

    /// The raw value, for sending it in a header. Never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AccessToken(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_hides_secret_and_token_values() {
        let secret = ClientSecret::new("very-secret-value");
        let token = AccessToken::generate(64);
        assert_eq!(format!("{secret:?}"), "ClientSecret(<redacted>)");
        assert!(!format!("{token:?}").contains(token.expose()));
    }

    #[test]
    fn generated_tokens_have_the_requested_length_and_differ() {
        let first = AccessToken::generate(MAX_TOKEN_LENGTH);
        let second = AccessToken::generate(MAX_TOKEN_LENGTH);
        assert_eq!(first.expose().len(), MAX_TOKEN_LENGTH);
        assert_ne!(first, second);
    }

    #[test]
    fn deserialization_error_does_not_quote_the_value() {
        let err = serde_json::from_str::<ClientSecret>("123456789").unwrap_err();
        assert!(!err.to_string().contains("123456789"), "{err}");
    }
}
