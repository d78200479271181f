//! The validating admission webhook of `weft operator`: an HTTPS server
//! (axum over rustls) whose `POST /validate` answers `admission.k8s.io/v1`
//! AdmissionReviews for every mesh kind ([`weft_crds::Kind`]), so that `kubectl apply` of a resource Weft would
//! reject fails at once, with the field and the reason.
//!
//! ```text
//! kube-apiserver ──HTTPS POST /validate──▶ server.rs (TLS, axum; thin)
//!                                            │ body
//!                                            ▼
//!                             review.rs: AdmissionReview ⇄ Decision
//!                                            │ request + Stores::observe().inputs
//!                                            ▼
//!            decide.rs: candidate ─▶ crate::mesh (as the watches) ─▶ weft_config::validate_inputs
//! ```
//!
//! What is denied and what only warns is [`decide`]'s to say. The server
//! is started by `weft operator` once the watches listed every kind,
//! with certificate files, or with a certificate Weft's CA issues for
//! that Service and renews in place ([`cert`],
//! [`crate::webhook_certs`]).
//! Each answer is counted in `weft_webhook_reviews_total{kind,allowed}`.
//!
//! The same server answers `POST /inject`, the mutating webhook of sidecar
//! injection; its logic is [`crate::inject`]'s.

pub mod cert;
pub mod decide;
pub mod metrics;
pub mod review;
pub mod server;

pub use cert::RotatingCert;
pub use decide::ClusterState;
pub use metrics::WebhookMetrics;
pub use server::{ClusterInputs, Error, Injection, NamespaceLabels, ServingCert, TlsFiles, start};

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tls_tests;
