//! Confidential values (the client secret, the access token) in wrappers that never print
//! themselves: Debug and Display say `<redacted>`, there is no `Serialize`, and the only
//! thing that may be shown about them is a short one-way fingerprint.

use std::fmt;

use sha2::{Digest, Sha256};

/// Text shown wherever a confidential value would otherwise be printed.
pub const REDACTED: &str = "<redacted>";

/// Hex characters of SHA-256 kept in a fingerprint: enough to tell values apart, far too
/// few to help anyone recover them.
pub const FINGERPRINT_HEX_CHARS: usize = 12;

/// First [`FINGERPRINT_HEX_CHARS`] hex characters of the SHA-256 of `value`.
pub fn fingerprint_of(value: &str) -> String {
    let digest = Sha256::digest(value.as_bytes());
    let mut hex = hex::encode(digest);
    hex.truncate(FINGERPRINT_HEX_CHARS);
    hex
}

macro_rules! confidential {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq)]
        pub struct $name(String);

        impl $name {
            pub fn new(value: String) -> Self {
                Self(value)
            }

            /// The value itself: only for the one place that must send or store it.
            pub fn expose(&self) -> &str {
                &self.0
            }

            /// Short one-way hash of the value: the only thing about it that may be shown.
            pub fn fingerprint(&self) -> String {
                fingerprint_of(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(REDACTED)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(REDACTED)
            }
        }
    };
}

confidential!(
    /// A Clear client secret: it can mint access tokens (and so revoke the current one).
    ClientSecret
);

confidential!(
    /// A Clear access token, sent by consumers as `x-cleartax-auth-token`.
    AccessToken
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_never_show_the_value() {
        let secret = ClientSecret::new("s3cr3t-value".to_string());
        let token = AccessToken::new("t0ken-value".to_string());
        for shown in [
            format!("{secret:?}"),
            format!("{secret}"),
            format!("{secret:#?}"),
            format!("{token:?}"),
            format!("{token}"),
            format!("{:?}", Some(&token)),
        ] {
            assert!(!shown.contains("s3cr3t"), "{shown}");
            assert!(!shown.contains("t0ken"), "{shown}");
            assert!(shown.contains(REDACTED), "{shown}");
        }
    }

    #[test]
    fn expose_returns_the_value_unchanged() {
        let secret = ClientSecret::new(" with spaces\n".to_string());
        assert_eq!(secret.expose(), " with spaces\n");
    }

    #[test]
    fn fingerprint_is_the_first_twelve_hex_chars_of_sha256() {
        // sha256("abc") = ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad
        assert_eq!(
            ClientSecret::new("abc".into()).fingerprint(),
            "ba7816bf8f01"
        );
        assert_eq!(AccessToken::new("abc".into()).fingerprint(), "ba7816bf8f01");
    }

    #[test]
    fn different_values_have_different_fingerprints() {
        let a = ClientSecret::new("secret-a".into()).fingerprint();
        let b = ClientSecret::new("secret-b".into()).fingerprint();
        assert_ne!(a, b);
        assert_eq!(a.len(), FINGERPRINT_HEX_CHARS);
        assert!(
            a.chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        );
    }
}
