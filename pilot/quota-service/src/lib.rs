//! # weft-quota-service: the global quota
//!
//! Envoy's `envoy.service.ratelimit.v3.RateLimitService` for `scope:
//! Global` quotas, served next to xDS. It reads the quotas of the current
//! snapshot and the descriptor names weft-translate gives the rate limit
//! filter; it must not translate or read config.
//!
//! ```text
//!  destination Envoy ──ShouldRateLimit(domain weft, [quota=ns/name, override=oN])──▶
//!      service::QuotaService ── snapshot: the quota's amounts
//!                             └─ counter::Counter: fixed windows in memory
//! ```
//!
//! [`counter`] is the pure core: a fixed window per (quota, override,
//! window start), with time passed in, tested without gRPC. [`service`]
//! is the thin tonic handler and the metrics
//! (`weft_quota_requests_total{quota,override,allowed}`).
//!
//! **Several replicas.** Each replica counts alone, in memory: a proxy
//! asks the replica it holds its xDS connection to, so with N replicas the
//! mesh-wide budget is at most N times the amount (exactly the amount with
//! one replica, the default chart). Sharing counters would need a store
//! or leader forwarding on the request path; Weft chose availability and
//! no extra hop, and documents the bound instead.

pub mod counter;
pub mod service;

pub use counter::{Counter, Decision};
pub use service::{QuotaMetrics, QuotaService};
