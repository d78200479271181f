//! # weft-crds: the user-facing API types
//!
//! This crate owns the Rust types for the Istio API that Weft serves —
//! `VirtualService`, `DestinationRule`, `ServiceEntry`, `Gateway` and
//! `Sidecar` in group `networking.istio.io`, `PeerAuthentication`,
//! `RequestAuthentication` and `AuthorizationPolicy` in `security.istio.io`, `Telemetry` in
//! `telemetry.istio.io`, and Weft's own `Quota` in `policy.weft.dev` — and
//! [`Kind`], the one list of those kinds, with
//! Istio's complete field sets, so that YAML
//! written for Istio parses here unchanged, including fields Weft does not
//! translate yet. It is a leaf crate: parsing only, no translation, no I/O,
//! no defaults applied beyond what serde needs.
//!
//! ```text
//!   YAML / JSON ──serde──▶ *Spec types ──▶ weft-config (conversion to the model)
//!        │                     ▲
//!        │ MeshDocument::from_value (standalone files, no kube)
//!        ▼
//!   kube feature: CustomResource roots (v1) ──▶ weft-operator (watches)
//!                 crds() / crdgen ──▶ charts/weft/crds/*.yaml
//! ```
//!
//! What lives where:
//!
//! - [`kind`]: [`Kind`], every served kind with its group and versions.
//!   Matches over it are exhaustive everywhere, so a new kind is a compile
//!   error wherever it must be handled.
//! - [`networking`]: the `*Spec` types and every nested message, named after
//!   Istio's messages in Rust case (`HttpRoute`, `StringMatch`, ...).
//! - [`security`]: `PeerAuthenticationSpec`, `RequestAuthenticationSpec` and
//!   `AuthorizationPolicySpec`
//!   (security.istio.io, served as `v1beta1` and `v1`, stored as `v1`).
//! - [`policy`]: `QuotaSpec` (policy.weft.dev, Weft's own, served as
//!   `v1alpha1`).
//! - [`telemetry`]: `TelemetrySpec` (telemetry.istio.io, served as
//!   `v1alpha1` and `v1`, stored as `v1`).
//! - [`gateway_api`]: the Kubernetes Gateway API's types (v1.5.1: Gateway
//!   class, Gateway, HTTPRoute, ReferenceGrant); not served yet, so not in
//!   [`Kind`], and their CRDs are upstream's (`charts/weft/gateway-api/`).
//! - [`duration`]: [`IstioDuration`], Go-syntax durations (`1.5s`).
//! - [`document`]: [`MeshDocument`], one object from a plain YAML/JSON
//!   document, with errors that name the failing field's path.
//! - [`status`]: [`ResourceStatus`], the status Weft writes.
//! - `crd` (feature `kube`, on by default): the CRDs. The API is served as
//!   `v1alpha3`, `v1beta1` and `v1` with one schema; `v1` is the storage
//!   version and the version of the Rust root types. [`crds`] returns the
//!   CRD of every [`Kind`] (the security kinds serve `v1beta1` and `v1`,
//!   Telemetry `v1alpha1` and `v1`), [`render_crd_yaml`] the text `crdgen`
//!   writes.
//!
//! Without the `kube` feature (as weft-model and weft-config use it) the
//! crate depends on
//! serde, serde_json, schemars and thiserror only.

pub mod document;
pub mod duration;
pub mod gateway_api;
pub mod kind;
pub mod networking;
pub mod policy;
pub mod security;
pub mod status;
pub mod telemetry;

#[cfg(feature = "kube")]
pub mod crd;

#[cfg(feature = "kube")]
pub use crd::{CrdError, crd_file_name, crd_of, crds, render_crd_yaml};
pub use document::*;
pub use duration::{DurationParseError, IstioDuration};
pub use kind::Kind;
pub use networking::*;
pub use policy::*;
pub use security::*;
pub use status::*;
pub use telemetry::*;
