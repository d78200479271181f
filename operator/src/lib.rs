//! # weft-operator: Weft's runtime
//!
//! This crate wires the libraries into the `weft` binary. It owns the
//! command line, process concerns (logging, signals, sockets), the
//! Kubernetes adapter ([`k8s`]: every Kubernetes type stays here) and the
//! validating admission webhook ([`webhook`]). It holds no
//! translation or xDS logic of its own: that is `weft-pilot`'s.
//!
//! ```text
//! weft standalone --config-dir DIR
//!     files ─▶ pilot::source::files ─▶ pilot::config::ConfigStore ─▶ watch<MeshSnapshot>
//!                                                                      │
//!                                            pilot::xds::AdsServer ◀───┘ ─▶ Envoy (ADS, :15010)
//!     monitoring (:15014): /metrics (XdsMetrics, ConfigMetrics), /healthz, /readyz
//! weft operator [--kubeconfig F]
//!     kube-apiserver watches ─▶ k8s::Stores ─▶ (debounce) ─▶ the same ConfigStore,
//!     xDS and monitoring as standalone (server.rs holds what both share)
//!     webhook (:15017, HTTPS, with --webhook-tls-cert/key, or --webhook-service: a certificate
//!     from Weft's CA, renewed, caBundle kept current by k8s::webhook_certs): POST /validate,
//!     the candidate checked with the cluster's inputs by validate_inputs
//! weft bootstrap ...   prints the Envoy bootstrap that points at that server
//! weft validate -f F   runs the same source + ConfigStore checks once and prints the errors
//! weft inject -f F     prints the Pod with the sidecar the webhook's POST /inject adds (inject)
//! weft agent ...       the sidecar agent (weft-agent): certificates from the CA, SDS on a
//!                      Unix socket, Envoy started with bootstrap + sds-grpc and supervised
//! ```

pub mod agent;
pub mod bootstrap;
pub mod ca;
pub mod cli;
pub mod inject;
pub mod k8s;
pub mod monitoring;
pub mod operator;
pub mod server;
pub mod standalone;
pub mod telemetry;
pub mod validate;
pub mod webhook;
