//! The validating admission webhook of `weft operator`: an HTTPS server
//! (axum over rustls) whose `POST /validate` answers `admission.k8s.io/v1`
//! AdmissionReviews for VirtualService, DestinationRule, ServiceEntry,
//! Gateway and Sidecar, so that `kubectl apply` of a resource Weft would
//! reject fails at once, with the field and the reason.
//!
//! ```text
//! kube-apiserver ──HTTPS POST /validate──▶ server.rs (TLS, axum; thin)
//!                                            │ body
//!                                            ▼
//!                             review.rs: AdmissionReview ⇄ Decision
//!                                            │ request + Stores::observe().inputs
//!                                            ▼
//!            decide.rs: candidate ─▶ k8s::mesh (as the watches) ─▶ validate::validate_inputs
//! ```
//!
//! What is denied and what only warns is [`decide`]'s to say. The server
//! is started by [`crate::operator`] once the watches listed every kind,
//! with the certificate files `--webhook-tls-cert` / `--webhook-tls-key`,
//! or, given `--webhook-service`, with a certificate Weft's CA issues for
//! that Service and renews in place ([`cert`],
//! [`crate::k8s::webhook_certs`]).
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
pub use metrics::WebhookMetrics;
pub use server::{ClusterInputs, Error, Injection, NamespaceLabels, ServingCert, TlsFiles, start};

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tls_tests;
