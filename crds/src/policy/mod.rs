//! The `policy.weft.dev` kinds: Weft's own policy API, not Istio's.
//! Quota (served as `v1alpha1`) is the only one. Same conventions as
//! [`crate::networking`]: plain serde + schemars specs, camelCase on the
//! wire, unknown fields ignored, and with the `kube` feature the
//! `CustomResource` root type.

pub mod quota;

pub use quota::*;

/// The API group of the policy kinds.
pub const POLICY_GROUP: &str = "policy.weft.dev";
/// Versions of [`POLICY_GROUP`] that are served.
pub const POLICY_SERVED_VERSIONS: [&str; 1] = ["v1alpha1"];
