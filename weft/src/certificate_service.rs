//! Serving citadel, the certificate service, from `weft standalone` and
//! `weft operator`: Istio's `IstioCertificateService/CreateCertificate`
//! over gRPC + TLS on `--ca-address` (15012), with a serving certificate
//! the CA issues to Weft itself. The two modes differ in where the CA's
//! root lives and how callers are authenticated:
//!
//! - standalone: the root in `--ca-dir` (created once, reused after
//!   restarts; a plug-in CA in `--plugin-ca-dir` wins), identities from
//!   `--token-file` (see `weft_citadel::auth`);
//! - operator: the root in Secret `weft-ca` (a plug-in `cacerts` Secret
//!   wins), tokens checked by TokenReview ([`weft_operator::cluster_ca`]).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use anyhow::Context;
use tokio::net::TcpListener;
use tracing::{info, warn};
use weft_citadel::{
    Authenticator, CertificateAuthority, CertificateService, CitadelMetrics, ValidityPolicy,
};

use crate::cli::CaArgs;
use crate::control_plane::shutdown_signal;

/// How long Weft's own serving certificate lives; it is issued at start.
const SERVING_CERT_TTL: std::time::Duration = std::time::Duration::from_secs(365 * 24 * 3600);

/// Binds `--ca-address` and serves the certificate service in the
/// background until SIGTERM / Ctrl-C; logs `certificate service listening
/// on ADDR` with the `trust_domain` it signs in (the mesh config's).
pub async fn start<A: Authenticator>(
    args: &CaArgs,
    trust_domain: &str,
    ca: CertificateAuthority,
    authenticator: A,
    metrics: CitadelMetrics,
) -> anyhow::Result<()> {
    let listener = TcpListener::bind(args.ca_address)
        .await
        .with_context(|| format!("cannot listen on {}", args.ca_address))?;
    let bound = listener.local_addr()?;
    let mut names: Vec<String> = ["localhost", "weft", "istiod"]
        .into_iter()
        .map(String::from)
        .collect();
    names.extend(args.ca_serving_names.iter().cloned());
    let mut ips = vec![
        IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(Ipv6Addr::LOCALHOST),
    ];
    if !bound.ip().is_unspecified() && !ips.contains(&bound.ip()) {
        ips.push(bound.ip());
    }
    let tls = ca
        .issue_serving_cert(&names, &ips, SERVING_CERT_TTL)
        .context("cannot issue the certificate service's serving certificate")?;
    let service = CertificateService::new(ca, authenticator)
        .with_validity(ValidityPolicy {
            default_ttl: args.cert_default_ttl.0,
            max_ttl: args.cert_max_ttl.0,
        })
        .with_metrics(metrics);
    info!(address = %bound, trust_domain, "certificate service listening on {bound}");
    tokio::spawn(async move {
        if let Err(err) = weft_citadel::serve(listener, tls, service, shutdown_signal()).await {
            warn!(%err, kind = err.kind(), "the certificate service stopped");
        }
    });
    Ok(())
}
