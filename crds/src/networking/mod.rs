//! The `networking.istio.io` kinds Weft serves: VirtualService,
//! DestinationRule, ServiceEntry, Gateway and Sidecar, with every message of
//! Istio's API for them. Each kind's `*Spec` is plain serde + schemars; with
//! the `kube` feature, the same file also derives the `CustomResource` root
//! type (`VirtualService`, `DestinationRule`, `ServiceEntry`, `Gateway`,
//! `Sidecar`, version `v1`).
//!
//! Conventions: fields are the snake_case of the proto field and serialize
//! in Istio's camelCase; optional scalars and messages are `Option`, repeated
//! fields `Vec`, maps `BTreeMap`; durations are [`crate::IstioDuration`].
//! A proto `oneof` other than `StringMatch` is kept as sibling `Option`
//! fields (as Istio's own CRD schema does); translators pick the one set.
//! Unknown fields are ignored when parsing, so YAML written for a newer
//! Istio still parses.

pub mod common;
pub mod destination_rule;
pub mod gateway;
pub mod service_entry;
pub mod sidecar;
pub mod virtual_service;

pub use common::*;
pub use destination_rule::*;
pub use gateway::*;
pub use service_entry::*;
pub use sidecar::*;
pub use virtual_service::*;
