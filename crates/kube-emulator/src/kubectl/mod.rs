//! What only the real kubectl and helm need of an API server, behind the `kubectl` feature
//! (enabled by `clear-operator dev`, where users run both against the emulator, and by the
//! emulator's kubectl suite): Table answers with printer columns (`kubectl get`), OpenAPI v3
//! documents (`kubectl explain`, and kubectl's check that the server validates fields),
//! protobuf request bodies (`kubectl create secret|configmap|namespace|serviceaccount`,
//! helm's release records), the `/scale` subresource (`kubectl scale`) and the access and
//! identity reviews (`kubectl auth can-i`, `auth whoami`). kube-rs uses none of them.

mod jsonpath;
pub mod openapi;
pub mod protobuf;
pub mod reviews;
pub mod scale;
pub mod table;
