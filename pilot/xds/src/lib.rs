//! # weft-xds: the xDS server
//!
//! Serves each connected proxy the resources of its view, over ADS, state
//! of the world ([`SotwConnection`]) or incremental ([`DeltaConnection`]),
//! from a watch channel of snapshots. It owns serving (streams, versions,
//! ACK/NACK, per-view resource sets and their incremental updates) and
//! calls weft-translate for every resource; it must not translate or read
//! config itself.
//!
//! ```text
//!  watch<Arc<MeshSnapshot>> ──> ResourceCache (one set per ProxyView) ──> SotwConnection (per stream)
//!                                                                          │ CDS → EDS → LDS → RDS
//!                                                                          └─> Envoy
//! ```
//!
//! Each resource set carries a version that is a hash of its content, so a
//! proxy is sent a type only when what it would receive changed. A NACK
//! leaves the proxy on its last good version and is logged with Envoy's
//! error text, counted in [`XdsMetrics`], and stands in [`Rejections`] until
//! the proxy accepts a newer version. [`Connections`] holds each open
//! stream's sync state per type and [`Pushes`] the recent pushes, for the
//! debug endpoints; istiod's debug types (`istio.io/debug/syncz`,
//! `istio.io/debug/config_dump`, see [`debug`]) are answered on the same
//! port to callers [`DebugAccess`] admits. Each stream runs in its own task and reads the newest
//! snapshot when it is ready: a slow proxy delays only itself, and never
//! receives versions that a newer one has replaced.

mod cache;
pub mod connections;
pub mod debug;
mod delta;
mod grpc;
mod incremental;
pub mod metrics;
pub mod pushes;
mod rejections;
mod resources;
mod server;
mod sotw;

pub use cache::ResourceCache;
pub use connections::{Connection, Connections, SyncState, TypeSync};
pub use debug::{AccessDenied, DebugAccess, LoopbackOnly};
pub use delta::DeltaConnection;
pub use grpc::AdsService;
pub use incremental::{ChangeSet, diff};
pub use metrics::XdsMetrics;
pub use pushes::{PushRecord, Pushes};
pub use rejections::{Rejection, RejectionMap, Rejections};
pub use resources::{Transition, TypeUrl, ViewResources};
pub use server::{AdsServer, Caller};
pub use sotw::{RequestOutcome, SotwConnection};
