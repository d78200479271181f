//! # weft-pilot: the mesh model, its translation to Envoy, and xDS serving
//!
//! Pilot owns everything between "the user's mesh config" and "bytes on an
//! Envoy's ADS stream", and nothing that talks to Kubernetes (it does not
//! depend on `kube`; the operator adapts Kubernetes objects into the same
//! inputs the file source produces).
//!
//! ```text
//!  YAML files ──source::files──┐
//!  (operator: kube watches) ───┴─> config::Input ──config::ConfigStore──> model::MeshSnapshot (Arc, versioned)
//!                                   convert + validate,                          │
//!                                   keep last good                               │ watch channel
//!                                                                                ▼
//!        xds::AdsServer ── xds::ResourceCache ── translate::build_* (pure) ── per ProxyView
//!             │ CDS → EDS → LDS → RDS, content-hash versions, ACK/NACK
//!             ▼
//!           Envoy
//! ```
//!
//! - [`model`]: platform-neutral services, endpoints, routing rules and
//!   traffic policy; validated, immutable.
//! - [`config`]: user resources (`weft-crds` types) to model, every error
//!   with its resource, field path and reason; assembly into snapshots.
//! - [`source`]: where resources come from (a watched directory).
//! - [`translate`]: `(MeshSnapshot, ProxyView) -> Envoy resources`, pure
//!   and deterministic; Istio's names (`outbound|9080|v1|reviews...`).
//! - [`xds`]: the ADS server (state of the world), one resource set per
//!   view shared by every proxy with that view.
//! - [`bootstrap`]: the Envoy bootstrap that points a proxy at Weft.

pub mod bootstrap;
pub mod config;
pub mod model;
pub mod quota_service;
pub mod source;
pub mod translate;
pub mod xds;

#[cfg(test)]
mod testing;
