//! The operator's Kubernetes client: kube-rs's, without its retry layer.
//!
//! NB: kube-client re-sends a request on 429, 503 and 504 for minutes (honouring
//! Retry-After), behind the caller's back. For a reader that is harmless; for this operator
//! it is not: a token Secret write re-sent after the replica lost the Lease lands over the
//! new leader's token (issue 13: measured landing 8 s after the fence closed). Every write
//! is therefore one request, sent after the fence check, and retries are the reconciler's
//! own (the per-resource requeue, the kept token of a failed write): bounded, fenced at
//! every attempt, and visible in logs and status.

use kube::{Client, Config};

/// A client for `config`, with no hidden retries.
pub fn build(mut config: Config) -> Result<Client, kube::Error> {
    config.default_retry = false;
    Client::try_from(config)
}

/// A client from the environment (kubeconfig, or in-cluster), with no hidden retries.
pub async fn infer() -> Result<Client, kube::Error> {
    let config = Config::infer().await.map_err(kube::Error::InferConfig)?;
    build(config)
}
