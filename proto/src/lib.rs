//! weft-proto: the gRPC APIs Weft serves besides xDS (which comes from
//! `envoy-types`), generated at build time from the `.proto` files in this
//! crate by protox and tonic-prost-build.
//!
//! - [`istio::v1::auth`]: Istio's `IstioCertificateService`, which
//!   citadel serves and `weft agent` calls; [`connect`] opens a client of
//!   it over TLS trusting only the mesh root.

mod client;

pub use client::{ConnectError, connect};

/// Generated code: clippy's pedantry does not apply.
#[allow(clippy::all, missing_docs)]
pub mod istio {
    pub mod v1 {
        pub mod auth {
            tonic::include_proto!("istio.v1.auth");
        }
    }
}
