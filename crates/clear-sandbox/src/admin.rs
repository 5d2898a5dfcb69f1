//! The HTTP admin API under `/_sandbox/`, so scripts can drive the stand-alone binary as
//! tests drive the library handle: clients, call counts, faults and the clock. It never
//! shows a client secret or a token.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tracing::info;

use crate::api::format_valid_till;
use crate::config::{ClientEntry, error_chain};
use crate::counts::CallCounts;
use crate::duration::parse_duration;
use crate::faults::{Fault, FaultScope};
use crate::registry::AdminError;
use crate::secret::ClientSecret;
use crate::server::Shared;

pub(crate) fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/_sandbox/clients", get(list_clients).post(add_client))
        .route(
            "/_sandbox/clients/{name}",
            axum::routing::delete(remove_client),
        )
        .route("/_sandbox/clients/{name}/rotate", post(rotate_client))
        .route("/_sandbox/counts", get(get_counts))
        .route("/_sandbox/faults", post(inject_fault).delete(clear_faults))
        .route("/_sandbox/clock", get(get_clock).post(set_clock))
}

/// An admin request the simulator refuses, answered as `{"error": "..."}`.
struct AdminFailure {
    status: StatusCode,
    message: String,
}

impl AdminFailure {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }
}

impl From<AdminError> for AdminFailure {
    fn from(err: AdminError) -> Self {
        let status = match err {
            AdminError::UnknownClient => StatusCode::NOT_FOUND,
            AdminError::DuplicateSecret | AdminError::DuplicateName(_) => StatusCode::CONFLICT,
            AdminError::Invalid(_) => StatusCode::BAD_REQUEST,
        };
        Self::new(status, error_chain(&err))
    }
}

impl IntoResponse for AdminFailure {
    fn into_response(self) -> Response {
        (self.status, Json(json!({ "error": self.message }))).into_response()
    }
}

async fn list_clients(State(shared): State<Arc<Shared>>) -> Response {
    let now = shared.clock.now();
    Json(shared.registry().client_views(now)).into_response()
}

async fn add_client(
    State(shared): State<Arc<Shared>>,
    Json(entry): Json<ClientEntry>,
) -> Result<Response, AdminFailure> {
    let client = entry
        .into_config()
        .map_err(|err| AdminFailure::new(StatusCode::BAD_REQUEST, error_chain(&err)))?;
    let name = shared.registry().add_client(client)?;
    info!(client = %name, "client added through the admin API");
    Ok((StatusCode::CREATED, Json(json!({ "name": name }))).into_response())
}

async fn remove_client(
    State(shared): State<Arc<Shared>>,
    Path(name): Path<String>,
) -> Result<StatusCode, AdminFailure> {
    let mut registry = shared.registry();
    let secret = registry.secret_of(&name).ok_or(AdminError::UnknownClient)?;
    registry.remove_client(secret.expose())?;
    info!(client = %name, "client removed through the admin API; its token is revoked");
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RotateRequest {
    client_secret: ClientSecret,
}

async fn rotate_client(
    State(shared): State<Arc<Shared>>,
    Path(name): Path<String>,
    Json(request): Json<RotateRequest>,
) -> Result<StatusCode, AdminFailure> {
    let mut registry = shared.registry();
    let secret = registry.secret_of(&name).ok_or(AdminError::UnknownClient)?;
    registry.rotate_secret(secret.expose(), request.client_secret)?;
    info!(client = %name, "client secret rotated through the admin API");
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CountsReport {
    total: CallCounts,
    anonymous: CallCounts,
    unknown_secrets: CallCounts,
    clients: BTreeMap<String, CallCounts>,
}

async fn get_counts(State(shared): State<Arc<Shared>>) -> Response {
    let now = shared.clock.now();
    let registry = shared.registry();
    let report = CountsReport {
        total: registry.total_counts(),
        anonymous: registry.anonymous_counts(),
        unknown_secrets: registry.unknown_secret_counts(),
        clients: registry
            .client_views(now)
            .into_iter()
            .map(|view| (view.name, view.counts))
            .collect(),
    };
    Json(report).into_response()
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
enum FaultKind {
    ServerError,
    Status,
    MalformedBody,
    Delay,
    TooManyRequests,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct FaultRequest {
    /// Client name; absent means every client.
    client: Option<String>,
    fault: FaultKind,
    status: Option<u16>,
    delay: Option<String>,
    /// `too-many-requests`: the `Retry-After` value, sent as is.
    retry_after: Option<String>,
    /// `too-many-requests`: the body says the daily quota is exhausted.
    #[serde(default)]
    quota_body: bool,
    #[serde(default = "one")]
    times: u32,
}

fn one() -> u32 {
    1
}

async fn inject_fault(
    State(shared): State<Arc<Shared>>,
    Json(request): Json<FaultRequest>,
) -> Result<StatusCode, AdminFailure> {
    let bad_request = |message: &str| AdminFailure::new(StatusCode::BAD_REQUEST, message);
    let fault = match request.fault {
        FaultKind::ServerError => Fault::ServerError,
        FaultKind::MalformedBody => Fault::MalformedBody,
        FaultKind::Status => {
            let code = request
                .status
                .ok_or_else(|| bad_request("failed to inject fault: `status` is required"))?;
            let status = StatusCode::from_u16(code).map_err(|_| {
                bad_request("failed to inject fault: `status` is not an HTTP status")
            })?;
            Fault::Status(status)
        }
        FaultKind::Delay => {
            let text = request
                .delay
                .ok_or_else(|| bad_request("failed to inject fault: `delay` is required"))?;
            let delay = parse_duration(&text)
                .map_err(|err| AdminFailure::new(StatusCode::BAD_REQUEST, err.to_string()))?;
            Fault::Delay(delay)
        }
        FaultKind::TooManyRequests => {
            if let Some(value) = &request.retry_after
                && axum::http::HeaderValue::from_str(value).is_err()
            {
                return Err(bad_request(
                    "failed to inject fault: `retryAfter` is not a valid header value",
                ));
            }
            Fault::TooManyRequests {
                retry_after: request.retry_after,
                quota_body: request.quota_body,
            }
        }
    };
    let mut registry = shared.registry();
    let scope = match &request.client {
        Some(name) => {
            FaultScope::Secret(registry.secret_of(name).ok_or(AdminError::UnknownClient)?)
        }
        None => FaultScope::Global,
    };
    info!(client = ?request.client, fault = ?fault, times = request.times, "fault injected through the admin API");
    registry.inject_fault(scope, fault, request.times);
    Ok(StatusCode::NO_CONTENT)
}

async fn clear_faults(State(shared): State<Arc<Shared>>) -> StatusCode {
    shared.registry().clear_faults();
    StatusCode::NO_CONTENT
}

fn clock_report(now: DateTime<Utc>) -> Response {
    Json(json!({ "now": format_valid_till(now), "day": now.date_naive() })).into_response()
}

async fn get_clock(State(shared): State<Arc<Shared>>) -> Response {
    clock_report(shared.clock.now())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ClockRequest {
    set: Option<DateTime<Utc>>,
    advance: Option<String>,
}

async fn set_clock(
    State(shared): State<Arc<Shared>>,
    Json(request): Json<ClockRequest>,
) -> Result<Response, AdminFailure> {
    let clock_failure =
        |err: crate::clock::ClockError| AdminFailure::new(StatusCode::CONFLICT, err.to_string());
    if let Some(now) = request.set {
        shared.clock.set(now).map_err(clock_failure)?;
    }
    if let Some(text) = request.advance {
        let by = parse_duration(&text)
            .map_err(|err| AdminFailure::new(StatusCode::BAD_REQUEST, err.to_string()))?;
        shared.clock.advance(by).map_err(clock_failure)?;
    }
    let now = shared.clock.now();
    info!(now = %format_valid_till(now), "clock moved through the admin API");
    Ok(clock_report(now))
}
