//! clear-operator: keeps Clear (ClearTax) API access tokens alive in Kubernetes Secrets.
#![forbid(unsafe_code)]

pub mod clear;
pub mod cli;
pub mod clock;
pub mod commands;
pub mod controller;
#[cfg(feature = "dev")]
pub mod dev;
pub mod fence;
pub mod http;
pub mod kube_client;
pub mod leader;
pub mod metrics;
pub mod operator;
pub mod reason;
pub mod reconcile;
pub mod resource;
pub mod secure_metrics;
pub mod services;
pub mod telemetry;
pub mod watchdog;
