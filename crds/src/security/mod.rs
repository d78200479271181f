//! The `security.istio.io` kinds Weft serves: PeerAuthentication,
//! RequestAuthentication and AuthorizationPolicy (served as `v1beta1` and `v1`, stored as `v1`). Same conventions as
//! [`crate::networking`]: plain serde + schemars specs, camelCase on the
//! wire, unknown fields ignored, and with the `kube` feature the
//! `CustomResource` root type.

pub mod authorization_policy;
pub mod peer_authentication;
pub mod request_authentication;

pub use authorization_policy::*;
pub use peer_authentication::*;
pub use request_authentication::*;

/// The API group of the security kinds.
pub const SECURITY_GROUP: &str = "security.istio.io";
/// Versions of [`SECURITY_GROUP`] that are served; all share one schema.
pub const SECURITY_SERVED_VERSIONS: [&str; 2] = ["v1beta1", "v1"];
