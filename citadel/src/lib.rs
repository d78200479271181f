//! weft-citadel: Weft's certificate authority and its Istio-compatible
//! certificate service.
//!
//! ```text
//!   workload (weft agent / istio-agent)
//!     │  CreateCertificate{csr, validity}     authorization: Bearer <token>
//!     ▼
//!   server::serve ── gRPC over TLS (Weft's serving cert, chained to the root)
//!     │
//!   service::CertificateService
//!     ├─ Authenticator::authenticate(token) ──► Identity {td, ns, sa}
//!     │     TokenFileAuthenticator (standalone) | TokenReview (operator)
//!     ├─ ValidityPolicy::clamp (0 → 24 h, ≤ 90 d)
//!     └─ CertificateAuthority::sign_csr(csr, identity, ttl)
//!           key from the CSR (self-signature checked), SAN = the
//!           identity's SPIFFE URI only ──► [leaf, intermediates.., root]
//! ```
//!
//! - [`ca`]: the CA itself: generate a root (ECDSA P-256 or RSA 2048),
//!   load a root or intermediate, sign CSRs and serving certificates.
//! - [`store`]: CA files in Istio's `cacerts` layout (plug-in CA; the
//!   standalone root persisted across restarts).
//! - [`auth`]: who the caller is ([`Authenticator`], token file).
//! - [`service`], [`server`]: the gRPC surface (the client,
//!   [`connect`], lives in `weft-proto`).
//! - [`metrics`]: issued and refused counts.
//!
//! This crate knows nothing of Kubernetes: the operator supplies a
//! TokenReview [`Authenticator`] and keeps the root in a Secret.

pub mod auth;
pub mod ca;
mod error;
mod key_type;
mod keys;
pub mod metrics;
pub mod server;
pub mod service;
pub mod store;

pub use auth::{AuthError, Authenticator, TokenFileAuthenticator};
pub use ca::{CaMaterial, CertificateAuthority};
pub use error::CaError;
pub use key_type::KeyType;
pub use metrics::CitadelMetrics;
pub use server::{ServeError, serve};
pub use service::{CertificateService, ServiceError, ValidityPolicy};
pub use weft_identity::Identity;
pub use weft_proto::{ConnectError, connect};
