//! The Clear-facing HTTP endpoints: `GET /integration/v1/authz/token` as Clear documents
//! it, and `GET /integration/v1/authz/whoami`, the simulator's own liveness check for a
//! token. Turns registry answers into status codes, bodies, headers and log lines.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router, routing::get};
use rand::Rng;
use serde_json::{Map, Value, json};
use tracing::{debug, info, warn};

use crate::faults::{Fault, OddBody};
use crate::registry::{TokenAnswer, TokenRefusal};
use crate::server::Shared;

pub const TOKEN_PATH: &str = "/integration/v1/authz/token";
pub const WHOAMI_PATH: &str = "/integration/v1/authz/whoami";
pub const CLIENT_SECRET_HEADER: &str = "x-clear-client-secret";
pub const AUTH_TOKEN_HEADER: &str = "x-cleartax-auth-token";

/// Body of an injected malformed answer: JSON cut off mid-value.
const MALFORMED_BODY: &str = "{\"access_token\": \"";

/// A 200 for a minted token whose body departs from the documented shape.
fn odd_body(
    odd: OddBody,
    mut body: Map<String, Value>,
    valid_till: Option<chrono::DateTime<chrono::Utc>>,
    now: chrono::DateTime<chrono::Utc>,
) -> Response {
    let json = |body: Map<String, Value>| Json(Value::Object(body)).into_response();
    let mut response = match odd {
        OddBody::NoOffset => {
            if let Some(till) = valid_till {
                let naive = till.naive_utc().format("%Y-%m-%dT%H:%M:%S").to_string();
                body.insert("valid_till".into(), naive.into());
            }
            json(body)
        }
        OddBody::CamelCaseKey => {
            let token = body
                .remove("access_token")
                .or_else(|| body.remove("access-token"))
                .unwrap_or(Value::Null);
            body.insert("accessToken".into(), token);
            json(body)
        }
        OddBody::NoValidTill => {
            body.remove("valid_till");
            json(body)
        }
        OddBody::NoToken => {
            body.remove("access_token");
            body.remove("access-token");
            json(body)
        }
        OddBody::Html => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, HeaderValue::from_static("text/html"))],
            "<html><body><h1>OK</h1></body></html>",
        )
            .into_response(),
        OddBody::Empty => StatusCode::OK.into_response(),
        OddBody::LongToken => json(body),
    };
    response
        .headers_mut()
        .insert(header::DATE, http_date_header(now));
    response
}

pub(crate) fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route(TOKEN_PATH, get(get_token))
        .route(WHOAMI_PATH, get(get_whoami))
}

async fn get_token(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    let secret = header_text(&headers, CLIENT_SECRET_HEADER);
    let now = shared.clock.now();
    let answer = shared.registry().request_token(secret.as_deref(), now);
    let status = answer.status();
    let mut response = match answer {
        TokenAnswer::Minted {
            client,
            issued,
            field,
            revoked_previous,
            delay,
            odd,
        } => {
            info!(
                %client,
                status = status.as_u16(),
                valid_till = ?issued.valid_till,
                revoked_previous,
                "minted access token"
            );
            let mut body = Map::new();
            body.insert(field.json_name().into(), issued.token.expose().into());
            body.insert(
                "valid_till".into(),
                issued
                    .valid_till
                    .map(|till| Value::String(format_valid_till(till)))
                    .unwrap_or(Value::Null),
            );
            if let Some(odd) = odd {
                info!(%client, odd = ?odd, "answering in an undocumented shape (injected)");
                return odd_body(odd, body, issued.valid_till, now);
            }
            if let Some(delay) = delay {
                info!(%client, delay_ms = delay.as_millis() as u64, "holding answer back (injected delay)");
                // NB: the mint already happened; a client that gives up meanwhile has
                // lost its previous token, as with a slow real server.
                tokio::select! {
                    () = tokio::time::sleep(delay) => {}
                    () = shared.cancel.cancelled() => {}
                }
            }
            (status, Json(Value::Object(body))).into_response()
        }
        TokenAnswer::MissingSecret => {
            warn!(
                status = status.as_u16(),
                "refused token request: client secret header missing or empty"
            );
            error_response(
                status,
                "UNAUTHORIZED",
                "x-clear-client-secret header is missing or empty",
            )
        }
        TokenAnswer::UnknownSecret => {
            warn!(
                status = status.as_u16(),
                "refused token request: unknown client secret"
            );
            error_response(
                status,
                "UNAUTHORIZED",
                "client secret is invalid or revoked",
            )
        }
        TokenAnswer::QuotaExceeded { client, quota } => {
            warn!(%client, status = status.as_u16(), quota, "refused token request: daily quota exhausted");
            error_response(
                status,
                "RATE_LIMIT_EXCEEDED",
                &format!(
                    "more than {quota} token requests today for this client secret; the limit resets at 00:00 UTC"
                ),
            )
        }
        TokenAnswer::Faulted { client, fault } => {
            warn!(%client, status = status.as_u16(), fault = ?fault, "answering with injected fault");
            match fault {
                Fault::MalformedBody => (
                    status,
                    [(
                        header::CONTENT_TYPE,
                        HeaderValue::from_static("application/json"),
                    )],
                    MALFORMED_BODY,
                )
                    .into_response(),
                Fault::TooManyRequests {
                    retry_after,
                    quota_body,
                } => {
                    let mut response = if quota_body {
                        error_response(
                            status,
                            "QUOTA_EXHAUSTED",
                            "daily quota of token requests exhausted for this client secret (injected by clear-sandbox)",
                        )
                    } else {
                        error_response(
                            status,
                            "TOO_MANY_REQUESTS",
                            "too many requests, slow down (injected by clear-sandbox)",
                        )
                    };
                    if let Some(value) = retry_after {
                        match HeaderValue::from_str(&value) {
                            Ok(value) => {
                                response.headers_mut().insert(header::RETRY_AFTER, value);
                            }
                            Err(_) => {
                                warn!("injected Retry-After is not a valid header value; left out");
                            }
                        }
                    }
                    response
                }
                _ => {
                    let mut response = error_response(
                        status,
                        &error_code_for(status),
                        "unhandled error on the Clear side (injected by clear-sandbox)",
                    );
                    if status.is_redirection() {
                        // NB: back to this very endpoint: a client that follows it sends
                        // the secret again and mints, which a test can count.
                        response
                            .headers_mut()
                            .insert(header::LOCATION, HeaderValue::from_static(TOKEN_PATH));
                    }
                    response
                }
            }
        }
    };
    // NB: the simulator's clock, not the system's (which hyper would add): `valid_till` and
    // `Date` then agree, as they do at Clear, also when a test moves the clock.
    response
        .headers_mut()
        .insert(header::DATE, http_date_header(now));
    response
}

async fn get_whoami(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    let token = header_text(&headers, AUTH_TOKEN_HEADER);
    let now = shared.clock.now();
    match shared.registry().identify(token.as_deref(), now) {
        Ok(identity) => {
            debug!(client = %identity.client, "token is live");
            let body = json!({
                "workspace": identity.workspace,
                "products": identity.products,
                "environment": identity.environment,
                "valid_till": identity.valid_till.map(format_valid_till),
            });
            (StatusCode::OK, Json(body)).into_response()
        }
        Err(refusal) => {
            let message = match refusal {
                TokenRefusal::Missing => "x-cleartax-auth-token header is missing or empty",
                TokenRefusal::UnknownOrRevoked => "access token is invalid or revoked",
                TokenRefusal::Expired => "access token has expired",
            };
            debug!(reason = message, "token refused");
            error_response(StatusCode::UNAUTHORIZED, "UNAUTHORIZED", message)
        }
    }
}

fn header_text(headers: &HeaderMap, name: &str) -> Option<String> {
    // NB: a value that is not visible ASCII is still a (wrong) secret, not a missing one.
    headers
        .get(name)
        .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned())
}

/// `2026-11-25T18:30:00+00:00`, the shape Clear documents.
pub(crate) fn format_valid_till(till: chrono::DateTime<chrono::Utc>) -> String {
    till.to_rfc3339_opts(chrono::SecondsFormat::Secs, false)
}

/// `Date` as HTTP sends it (IMF-fixdate): `Wed, 25 Nov 2026 18:30:00 GMT`.
pub(crate) fn format_http_date(now: chrono::DateTime<chrono::Utc>) -> String {
    now.format("%a, %d %b %Y %H:%M:%S GMT").to_string()
}

fn http_date_header(now: chrono::DateTime<chrono::Utc>) -> HeaderValue {
    HeaderValue::from_str(&format_http_date(now)).expect("an HTTP-date is a valid header value")
}

/// An `errors` body; Clear adds an `error_id` for unhandled errors, so 5xx carry one.
fn error_response(status: StatusCode, code: &str, message: &str) -> Response {
    let mut error = json!({
        "error_code": code,
        "error_message": message,
        "error_source": "CLEAR",
    });
    if status.is_server_error() {
        error["error_id"] = Value::String(generate_error_id());
    }
    (status, Json(json!({ "errors": [error] }))).into_response()
}

fn error_code_for(status: StatusCode) -> String {
    match status.canonical_reason() {
        Some(reason) => reason.to_ascii_uppercase().replace([' ', '-'], "_"),
        None => format!("HTTP_{}", status.as_u16()),
    }
}

/// A random UUID-shaped id, unique per error.
fn generate_error_id() -> String {
    let bytes: [u8; 16] = rand::thread_rng().r#gen();
    let hex = hex::encode(bytes);
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_till_uses_the_documented_offset_form() {
        let till: chrono::DateTime<chrono::Utc> = "2026-11-25T18:30:00Z".parse().unwrap();
        assert_eq!(format_valid_till(till), "2026-11-25T18:30:00+00:00");
    }

    #[test]
    fn date_header_is_an_imf_fixdate() {
        let now: chrono::DateTime<chrono::Utc> = "2026-11-05T08:09:07.9Z".parse().unwrap();
        assert_eq!(format_http_date(now), "Thu, 05 Nov 2026 08:09:07 GMT");
    }

    #[test]
    fn error_codes_derive_from_the_status_reason() {
        assert_eq!(error_code_for(StatusCode::BAD_GATEWAY), "BAD_GATEWAY");
        assert_eq!(
            error_code_for(StatusCode::from_u16(599).unwrap()),
            "HTTP_599"
        );
    }

    #[test]
    fn error_ids_are_unique_and_uuid_shaped() {
        let first = generate_error_id();
        assert_eq!(first.len(), 36);
        assert_ne!(first, generate_error_id());
    }
}
