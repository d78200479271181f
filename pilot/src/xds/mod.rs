//! The xDS server: serves each connected proxy the resources of its view,
//! over ADS, state of the world ([`Connection`]) or incremental
//! ([`DeltaConnection`]).
//!
//! ```text
//!  watch<Arc<MeshSnapshot>> ──> ResourceCache (one set per ProxyView) ──> Connection (per stream)
//!                                                                          │ CDS → EDS → LDS → RDS
//!                                                                          └─> Envoy
//! ```
//!
//! Each resource set carries a version that is a hash of its content, so a
//! proxy is sent a type only when what it would receive changed. A NACK
//! leaves the proxy on its last good version and is logged with Envoy's
//! error text, counted in [`XdsMetrics`], and stands in [`Rejections`] until
//! the proxy accepts a newer version. Each stream runs in its own task and reads the newest
//! snapshot when it is ready: a slow proxy delays only itself, and never
//! receives versions that a newer one has replaced.

mod cache;
mod connection;
mod delta;
mod grpc;
mod incremental;
pub mod metrics;
pub mod node;
mod rejections;
mod resources;
mod server;

pub use cache::ResourceCache;
pub use connection::{Connection, RequestOutcome};
pub use delta::DeltaConnection;
pub use grpc::AdsService;
pub use incremental::{ChangeSet, diff};
pub use metrics::XdsMetrics;
pub use node::proxy_view;
pub use rejections::{Rejection, RejectionMap, Rejections};
pub use resources::{Transition, TypeUrl, ViewResources};
pub use server::AdsServer;
