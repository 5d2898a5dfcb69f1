//! Reading Clear's answers: the 200 token body (`access_token` or `access-token`,
//! `valid_till` with an offset or null) and the best-effort `errors` body. Nothing here
//! ever copies body text into an error: serde messages can quote values, and a token body
//! is full of them.

use std::time::Instant;

use jiff::Timestamp;
use serde_json::Value;

use super::error::ClearError;
use super::secret::AccessToken;

/// Longest token Clear documents.
pub const MAX_TOKEN_CHARS: usize = 256;
/// Longest token accepted. A 200 with a token is a minted token (which revoked the previous
/// one): throwing it away because it is longer than documented would leave no live token
/// and call again, revoking again. So anything header-safe up to this size is kept.
pub const MAX_ACCEPTED_TOKEN_CHARS: usize = 4096;

/// Longest `error_code`/`error_id` kept; longer ones are dropped as noise.
const MAX_ID_CHARS: usize = 128;

/// A freshly minted token and when it stops working.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedToken {
    pub token: AccessToken,
    /// `None`: the API client's tokens never expire (or, with `expiry_unknown`, Clear did
    /// not say in a readable way).
    pub valid_till: Option<Timestamp>,
    /// Why the token's expiry is unknown: `valid_till` is absent or unreadable. The caller
    /// then assumes a short, stated lifetime rather than "never expires".
    pub expiry_unknown: Option<&'static str>,
    /// Clear's clock when it answered: its `Date` header (an HTTP-date), `None` when absent,
    /// unreadable or sent twice with different values. `valid_till - server_date` is the
    /// token's lifetime as Clear counts it, whatever the skew of the local clock.
    pub server_date: Option<Timestamp>,
    /// The local monotonic instant the answer's status and headers arrived (the moment
    /// `server_date` is closest to). From [`parse_token_body`] alone: when it parsed.
    pub received_at: Instant,
}

/// The parts of an `errors` body worth keeping as they are: codes to quote to support. The
/// `error_message` is not among them because it may echo what was sent: it is read on its
/// own and shown only through `sanitize_error_message`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ErrorDetails {
    pub code: Option<String>,
    pub error_id: Option<String>,
}

fn malformed(detail: &str) -> ClearError {
    ClearError::Malformed {
        detail: detail.to_string(),
    }
}

/// Parses a 200 body into a token (`server_date: None`, `received_at`: now; the client
/// fills both in from the response).
pub fn parse_token_body(body: &[u8]) -> Result<IssuedToken, ClearError> {
    let value: Value = serde_json::from_slice(body).map_err(|e| ClearError::Malformed {
        // NB: only the category and position; serde_json's text for syntax errors carries
        // no input, but data errors could, so none is used.
        detail: format!(
            "body is not JSON (line {}, column {})",
            e.line(),
            e.column()
        ),
    })?;
    let Value::Object(fields) = value else {
        return Err(malformed("body is not a JSON object"));
    };
    let token = validate_token(find_field(&fields, "accesstoken", "access_token")?)?;
    // NB: from here on the body holds a minted token: nothing odd about the rest of it is a
    // reason to throw the token away.
    let (valid_till, expiry_unknown) = match find_field(&fields, "validtill", "valid_till") {
        Ok(Value::Null) => (None, None),
        Ok(Value::String(s)) => match parse_valid_till(s) {
            Ok(till) => (Some(till), None),
            Err(_) => (None, Some("valid_till is not a date with a UTC offset")),
        },
        Ok(_) => (None, Some("valid_till is not a date")),
        Err(_) => (None, Some("valid_till is missing")),
    };
    Ok(IssuedToken {
        token,
        valid_till,
        expiry_unknown,
        server_date: None,
        received_at: Instant::now(),
    })
}

/// The one value of the field `documented` names, also when Clear spells its key otherwise
/// (`access-token`, `accessToken`, `ACCESS_TOKEN`: keys compared without case, `-` and `_`,
/// as `normalized`), at the top level or under `data`. Two different values are no answer.
fn find_field<'a>(
    fields: &'a serde_json::Map<String, Value>,
    normalized: &str,
    documented: &str,
) -> Result<&'a Value, ClearError> {
    let nested = fields.get("data").and_then(Value::as_object);
    let mut found: Option<&Value> = None;
    for (key, value) in fields.iter().chain(nested.into_iter().flatten()) {
        let key: String = key
            .chars()
            .filter(|c| !matches!(c, '-' | '_'))
            .flat_map(char::to_lowercase)
            .collect();
        if key != normalized {
            continue;
        }
        match found {
            Some(seen) if seen != value => {
                return Err(malformed(&format!(
                    "body carries two different values for {documented}"
                )));
            }
            _ => found = Some(value),
        }
    }
    found.ok_or_else(|| malformed(&format!("{documented} is missing")))
}

fn validate_token(value: &Value) -> Result<AccessToken, ClearError> {
    let Value::String(token) = value else {
        return Err(malformed("access_token is not a string"));
    };
    if token.is_empty() {
        return Err(malformed("access_token is empty"));
    }
    if token.chars().count() > MAX_ACCEPTED_TOKEN_CHARS {
        return Err(malformed("access_token is longer than 4096 characters"));
    }
    // NB: consumers send the token as a header value; control characters would break the
    // header (or smuggle a second one).
    if token.chars().any(char::is_control) {
        return Err(malformed("access_token contains control characters"));
    }
    if token.trim() != token {
        return Err(malformed("access_token has leading or trailing whitespace"));
    }
    Ok(AccessToken::new(token.clone()))
}

/// RFC 3339 / ISO 8601 with an offset (`+00:00`, `Z`, `+0530`); a date-time without an
/// offset is rejected because its instant would be a guess.
pub fn parse_valid_till(raw: &str) -> Result<Timestamp, ClearError> {
    raw.trim()
        .parse::<Timestamp>()
        .map_err(|_| malformed("valid_till is not a date with a UTC offset"))
}

/// Best-effort read of `{"errors":[{"error_code", "error_id", ...}]}`: the first entry's
/// codes, when they look like codes.
pub fn parse_error_body(body: &[u8]) -> ErrorDetails {
    let Ok(value) = serde_json::from_slice::<Value>(body) else {
        return ErrorDetails::default();
    };
    let Some(first) = value
        .get("errors")
        .and_then(Value::as_array)
        .and_then(|a| a.first())
    else {
        return ErrorDetails::default();
    };
    ErrorDetails {
        code: first.get("error_code").and_then(code_like),
        error_id: first.get("error_id").and_then(code_like),
    }
}

/// The first entry's `error_message` of an `errors` body, as sent: free text that may echo
/// input, so only for `sanitize_error_message`.
pub(crate) fn parse_error_message(body: &[u8]) -> Option<String> {
    let value = serde_json::from_slice::<Value>(body).ok()?;
    let first = value.get("errors")?.as_array()?.first()?;
    first
        .get("error_message")
        .and_then(Value::as_str)
        .map(str::to_owned)
}

/// Keeps short identifier-like strings (or numbers) only, so an error field can never
/// carry free text into conditions and logs.
fn code_like(value: &Value) -> Option<String> {
    let text = match value {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => return None,
    };
    let ok = !text.is_empty()
        && text.chars().count() <= MAX_ID_CHARS
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':' | '/'));
    ok.then_some(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn detail(err: ClearError) -> String {
        match err {
            ClearError::Malformed { detail } => detail,
            other => panic!("expected Malformed, got {other:?}"),
        }
    }

    #[test]
    fn parses_access_token_with_underscore() {
        let got = parse_token_body(
            br#"{"access_token":"tok-1","valid_till":"2026-11-25T18:30:00+00:00"}"#,
        )
        .unwrap();
        assert_eq!(got.token.expose(), "tok-1");
        assert_eq!(got.valid_till, Some(ts("2026-11-25T18:30:00Z")));
    }

    #[test]
    fn parses_access_token_with_hyphen() {
        let got = parse_token_body(
            br#"{"access-token":"tok-2","valid_till":"2026-11-25T18:30:00+00:00"}"#,
        )
        .unwrap();
        assert_eq!(got.token.expose(), "tok-2");
    }

    #[test]
    fn both_spellings_with_the_same_token_are_fine_but_different_ones_are_not() {
        let same =
            parse_token_body(br#"{"access_token":"t","access-token":"t","valid_till":null}"#)
                .unwrap();
        assert_eq!(same.token.expose(), "t");
        let err = parse_token_body(br#"{"access_token":"t1","access-token":"t2"}"#).unwrap_err();
        assert_eq!(
            detail(err),
            "body carries two different values for access_token"
        );
    }

    #[test]
    fn undocumented_spellings_of_the_keys_still_give_the_token_and_its_expiry() {
        for body in [
            br#"{"accessToken":"t","validTill":"2026-11-25T18:30:00Z"}"#.as_slice(),
            br#"{"ACCESS_TOKEN":"t","VALID_TILL":"2026-11-25T18:30:00Z"}"#,
            br#"{"data":{"access_token":"t","valid_till":"2026-11-25T18:30:00Z"}}"#,
            br#"{"access-token":"t","valid-till":"2026-11-25T18:30:00Z","extra":1}"#,
        ] {
            let got = parse_token_body(body).unwrap();
            assert_eq!(got.token.expose(), "t");
            assert_eq!(got.valid_till, Some(ts("2026-11-25T18:30:00Z")));
            assert_eq!(got.expiry_unknown, None);
        }
    }

    #[test]
    fn null_valid_till_means_never_expires_and_absent_means_unknown() {
        let null = parse_token_body(br#"{"access_token":"t","valid_till":null}"#).unwrap();
        assert_eq!((null.valid_till, null.expiry_unknown), (None, None));
        let absent = parse_token_body(br#"{"access_token":"t"}"#).unwrap();
        assert_eq!(
            (absent.valid_till, absent.expiry_unknown),
            (None, Some("valid_till is missing"))
        );
    }

    #[test]
    fn valid_till_accepts_offsets_z_and_no_colon_offsets() {
        let want = ts("2026-11-25T18:30:00Z");
        for raw in [
            "2026-11-25T18:30:00+00:00",
            "2026-11-25T18:30:00Z",
            "2026-11-25T18:30:00z",
            "2026-11-26T00:00:00+05:30",
            "2026-11-26T00:00:00+0530",
            "2026-11-25T13:30:00-05:00",
            "2026-11-25T18:30:00.000+00:00",
        ] {
            assert_eq!(parse_valid_till(raw).unwrap(), want, "{raw}");
        }
    }

    #[test]
    fn valid_till_without_offset_or_not_a_date_is_malformed() {
        for raw in [
            "2026-11-25T18:30:00",
            "2026-11-25",
            "tomorrow",
            "",
            "1764095400",
        ] {
            let err = parse_valid_till(raw).unwrap_err();
            assert_eq!(
                detail(err),
                "valid_till is not a date with a UTC offset",
                "{raw}"
            );
        }
        // NB: in a 200 that carries a token, an unreadable valid_till never costs the token.
        let got = parse_token_body(br#"{"access_token":"t","valid_till":1764095400}"#).unwrap();
        assert_eq!(got.expiry_unknown, Some("valid_till is not a date"));
        let got = parse_token_body(br#"{"access_token":"t","valid_till":"2026-11-25T18:30:00"}"#)
            .unwrap();
        assert_eq!(
            (got.token.expose(), got.valid_till, got.expiry_unknown),
            (
                "t",
                None,
                Some("valid_till is not a date with a UTC offset")
            )
        );
    }

    #[test]
    fn empty_missing_or_non_string_token_is_malformed() {
        assert_eq!(
            detail(parse_token_body(br#"{"access_token":""}"#).unwrap_err()),
            "access_token is empty"
        );
        assert_eq!(
            detail(parse_token_body(br#"{"valid_till":null}"#).unwrap_err()),
            "access_token is missing"
        );
        assert_eq!(
            detail(parse_token_body(br#"{"access_token":42}"#).unwrap_err()),
            "access_token is not a string"
        );
    }

    #[test]
    fn tokens_longer_than_documented_are_kept_up_to_the_bound() {
        for length in [256, 302, MAX_ACCEPTED_TOKEN_CHARS] {
            let ok = format!(r#"{{"access_token":"{}"}}"#, "a".repeat(length));
            let got = parse_token_body(ok.as_bytes()).unwrap();
            assert_eq!(got.token.expose().len(), length);
        }
        let long = format!(
            r#"{{"access_token":"{}"}}"#,
            "a".repeat(MAX_ACCEPTED_TOKEN_CHARS + 1)
        );
        let err = parse_token_body(long.as_bytes()).unwrap_err();
        assert_eq!(detail(err), "access_token is longer than 4096 characters");
    }

    #[test]
    fn token_with_control_characters_or_edge_whitespace_is_malformed() {
        let err = parse_token_body(br#"{"access_token":"abc\r\nx-evil: 1"}"#).unwrap_err();
        assert_eq!(detail(err), "access_token contains control characters");
        let err = parse_token_body(br#"{"access_token":" abc"}"#).unwrap_err();
        assert_eq!(
            detail(err),
            "access_token has leading or trailing whitespace"
        );
    }

    #[test]
    fn bad_json_is_malformed_without_quoting_the_body() {
        let err = parse_token_body(br#"{"access_token":"SECRETTOKEN""#).unwrap_err();
        let text = detail(err);
        assert!(text.starts_with("body is not JSON"), "{text}");
        assert!(!text.contains("SECRETTOKEN"), "{text}");
        let err = parse_token_body(br#"["SECRETTOKEN"]"#).unwrap_err();
        assert_eq!(detail(err), "body is not a JSON object");
        let err = parse_token_body(b"").unwrap_err();
        assert!(detail(err).starts_with("body is not JSON"));
    }

    #[test]
    fn malformed_details_never_contain_the_token() {
        let bodies: [&[u8]; 3] = [
            br#"{"access_token":"SECRETTOKEN","access-token":"SECRETTOKEN2"}"#,
            br#"{"access_token":"SECRETTOKEN\u0000"}"#,
            br#"{"access_token":["SECRETTOKEN"]}"#,
        ];
        for body in bodies {
            let err = parse_token_body(body).unwrap_err();
            assert!(!format!("{err} {err:?}").contains("SECRETTOKEN"), "{err:?}");
        }
    }

    #[test]
    fn error_body_keeps_code_and_id_and_drops_the_message() {
        let body = br#"{"errors":[{"error_code":"AUTH_401","error_message":"secret abc is wrong","error_source":"CLEAR","error_id":"7f3e-11"}]}"#;
        assert_eq!(
            parse_error_body(body),
            ErrorDetails {
                code: Some("AUTH_401".into()),
                error_id: Some("7f3e-11".into())
            }
        );
    }

    #[test]
    fn error_body_that_is_missing_odd_or_free_text_yields_nothing() {
        assert_eq!(
            parse_error_body(b"<html>oops</html>"),
            ErrorDetails::default()
        );
        assert_eq!(
            parse_error_body(br#"{"errors":[]}"#),
            ErrorDetails::default()
        );
        assert_eq!(
            parse_error_body(br#"{"message":"x"}"#),
            ErrorDetails::default()
        );
        let free_text = br#"{"errors":[{"error_code":"bad secret: abc def","error_id":""}]}"#;
        assert_eq!(parse_error_body(free_text), ErrorDetails::default());
        let numeric = br#"{"errors":[{"error_code":401}]}"#;
        assert_eq!(parse_error_body(numeric).code.as_deref(), Some("401"));
    }

    #[test]
    fn error_message_is_read_raw_from_the_first_entry_only() {
        let body = br#"{"errors":[{"error_code":"E","error_message":"IP 10.1.2.3 is not allowed"},{"error_message":"second"}]}"#;
        assert_eq!(
            parse_error_message(body).as_deref(),
            Some("IP 10.1.2.3 is not allowed")
        );
        for body in [
            &br#"{"errors":[{"error_code":"E"}]}"#[..],
            br#"{"errors":[{"error_message":42}]}"#,
            br#"{"errors":[]}"#,
            b"<html>denied</html>",
        ] {
            assert_eq!(parse_error_message(body), None);
        }
    }
}
