//! Shared fixture of the integration tests: a simulator on a manual clock and a plain
//! HTTP client that speaks to it.
#![allow(dead_code)]

use std::sync::Arc;

use chrono::{DateTime, Utc};
use clear_sandbox::{
    AUTH_TOKEN_HEADER, CLIENT_SECRET_HEADER, ClientConfig, ManualClock, Sandbox, SandboxConfig,
    SandboxHandle, TOKEN_PATH, WHOAMI_PATH,
};
use serde_json::Value;

pub fn at(text: &str) -> DateTime<Utc> {
    text.parse().expect("valid RFC 3339 instant")
}

/// An HTTP answer reduced to what the tests look at.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: String,
}

impl Answer {
    /// The single value of a header, as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(name)
            .map(|v| v.to_str().expect("visible ASCII"))
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).expect("JSON body")
    }

    pub fn access_token(&self) -> String {
        self.json()["access_token"]
            .as_str()
            .expect("access_token field")
            .to_owned()
    }
}

pub struct Fixture {
    pub sandbox: SandboxHandle,
    pub clock: Arc<ManualClock>,
    pub http: reqwest::Client,
}

/// NB: redirects are not followed, so a test sees the 3xx itself (as the operator does).
pub fn http_client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("HTTP client")
}

pub async fn start(clients: Vec<ClientConfig>) -> Fixture {
    start_at("2026-11-25T10:00:00Z", clients).await
}

pub async fn start_at(now: &str, clients: Vec<ClientConfig>) -> Fixture {
    let clock = Arc::new(ManualClock::new(at(now)));
    let config = SandboxConfig::new(clients).with_clock(clock.clone());
    let sandbox = Sandbox::start(config).await.expect("sandbox starts");
    Fixture {
        sandbox,
        clock,
        http: http_client(),
    }
}

impl Fixture {
    pub async fn token(&self, secret: Option<&str>) -> Answer {
        let mut request = self.http.get(format!("{}{TOKEN_PATH}", self.sandbox.url()));
        if let Some(secret) = secret {
            request = request.header(CLIENT_SECRET_HEADER, secret);
        }
        into_answer(request.send().await.expect("token call")).await
    }

    pub async fn whoami(&self, token: Option<&str>) -> Answer {
        let mut request = self
            .http
            .get(format!("{}{WHOAMI_PATH}", self.sandbox.url()));
        if let Some(token) = token {
            request = request.header(AUTH_TOKEN_HEADER, token);
        }
        into_answer(request.send().await.expect("whoami call")).await
    }

    pub async fn admin_get(&self, path: &str) -> Answer {
        let response = self
            .http
            .get(format!("{}{path}", self.sandbox.url()))
            .send()
            .await
            .expect("admin call");
        into_answer(response).await
    }

    pub async fn admin_send(&self, method: reqwest::Method, path: &str, body: Value) -> Answer {
        let response = self
            .http
            .request(method, format!("{}{path}", self.sandbox.url()))
            .json(&body)
            .send()
            .await
            .expect("admin call");
        into_answer(response).await
    }

    pub async fn stop(self) {
        self.sandbox.shutdown().await.expect("clean shutdown");
    }
}

pub async fn into_answer(response: reqwest::Response) -> Answer {
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.text().await.expect("body");
    Answer {
        status,
        headers,
        body,
    }
}

/// Asserts the documented error shape and returns the first error object.
pub fn assert_errors_body(answer: &Answer) -> Value {
    let body = answer.json();
    let errors = body["errors"].as_array().expect("errors array");
    assert_eq!(errors.len(), 1, "{body}");
    let error = errors[0].clone();
    assert!(error["error_code"].as_str().is_some_and(|c| !c.is_empty()));
    assert!(
        error["error_message"]
            .as_str()
            .is_some_and(|m| !m.is_empty())
    );
    assert_eq!(error["error_source"], "CLEAR");
    assert!(body.get("access_token").is_none() && body.get("valid_till").is_none());
    error
}
