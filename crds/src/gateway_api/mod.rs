//! The Kubernetes Gateway API (`gateway.networking.k8s.io`), as
//! `sigs.k8s.io/gateway-api` v1.5.1 defines it (the version Istio 1.30
//! pins): GatewayClass, Gateway, HTTPRoute and ReferenceGrant, with their
//! complete standard-channel field sets (a test checks them against the
//! CRDs the chart vendors, `charts/weft/gateway-api/`).
//!
//! Conventions, as in [`crate::networking`]: plain serde + schemars types,
//! camelCase on the wire, unknown fields ignored, and no defaults applied
//! beyond what serde needs: a field the API defaults (a `kind` of
//! `Service`, a path match of `PathPrefix /`) is an `Option` here, and
//! weft-config applies the API's default. The CRDs are upstream's, never
//! generated from these types.

mod common;
mod gateway;
mod http_route;
mod reference_grant;

pub use common::*;
pub use gateway::*;
pub use http_route::*;
pub use reference_grant::*;

/// The API group of the Gateway API's standard kinds.
pub const GATEWAY_API_GROUP: &str = "gateway.networking.k8s.io";
