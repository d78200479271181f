//! [`CertificateService`]: Istio's `IstioCertificateService/CreateCertificate`
//! — authenticate the caller's bearer token, clamp the requested validity,
//! sign the CSR for the *proven* identity, answer the chain ending with the
//! root. Refusals are logged (never with the token) and counted.

use std::sync::Arc;
use std::time::Duration;

use tonic::{Request, Response, Status};
use weft_proto::istio::v1::auth::istio_certificate_service_server::IstioCertificateService;
use weft_proto::istio::v1::auth::{IstioCertificateRequest, IstioCertificateResponse};

use crate::{AuthError, Authenticator, CaError, CertificateAuthority, CitadelMetrics};

/// Default certificate lifetime when the caller asks for none (Istio: 24 h).
pub const DEFAULT_TTL: Duration = Duration::from_secs(24 * 3600);
/// Longest certificate lifetime granted by default (90 days).
pub const MAX_TTL: Duration = Duration::from_secs(90 * 24 * 3600);

/// How long certificates live.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ValidityPolicy {
    /// Used when the request asks for 0 (or a negative) seconds.
    pub default_ttl: Duration,
    /// Requests for longer get this.
    pub max_ttl: Duration,
}

impl Default for ValidityPolicy {
    fn default() -> Self {
        ValidityPolicy {
            default_ttl: DEFAULT_TTL,
            max_ttl: MAX_TTL,
        }
    }
}

impl ValidityPolicy {
    /// The lifetime to grant for a request of `requested_secs`.
    pub fn clamp(&self, requested_secs: i64) -> Duration {
        let wanted = match u64::try_from(requested_secs) {
            Ok(0) | Err(_) => self.default_ttl,
            Ok(secs) => Duration::from_secs(secs),
        };
        wanted.min(self.max_ttl)
    }
}

/// Why a CreateCertificate request failed.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The caller did not prove an identity.
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// The CA refused the CSR or failed.
    #[error(transparent)]
    Ca(#[from] CaError),
    /// The signing task died.
    #[error("signing task failed: {0}")]
    Internal(String),
}

impl ServiceError {
    /// A short, fixed label for metrics and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            ServiceError::Auth(e) => e.kind(),
            ServiceError::Ca(e) => e.kind(),
            ServiceError::Internal(_) => "internal",
        }
    }
}

impl From<ServiceError> for Status {
    fn from(err: ServiceError) -> Self {
        let msg = err.to_string();
        match err {
            ServiceError::Auth(AuthError::Unavailable(_)) => Status::unavailable(msg),
            ServiceError::Auth(_) => Status::unauthenticated(msg),
            ServiceError::Ca(e) if e.is_bad_request() => Status::invalid_argument(msg),
            ServiceError::Ca(_) | ServiceError::Internal(_) => Status::internal(msg),
        }
    }
}

/// The gRPC certificate service, generic over how callers authenticate.
#[derive(Debug)]
pub struct CertificateService<A: Authenticator> {
    ca: CertificateAuthority,
    authenticator: Arc<A>,
    validity: ValidityPolicy,
    metrics: CitadelMetrics,
}

impl<A: Authenticator> CertificateService<A> {
    /// A service signing with `ca` for callers `authenticator` accepts, with
    /// the default validity policy and unregistered metrics.
    pub fn new(ca: CertificateAuthority, authenticator: A) -> Self {
        CertificateService {
            ca,
            authenticator: Arc::new(authenticator),
            validity: ValidityPolicy::default(),
            metrics: CitadelMetrics::default(),
        }
    }

    /// Uses `validity` instead of 24 h default / 90 d maximum.
    pub fn with_validity(mut self, validity: ValidityPolicy) -> Self {
        self.validity = validity;
        self
    }

    /// Counts into `metrics`.
    pub fn with_metrics(mut self, metrics: CitadelMetrics) -> Self {
        self.metrics = metrics;
        self
    }

    /// Authenticates, clamps and signs: the whole request, minus gRPC.
    pub async fn create(
        &self,
        authorization: Option<&str>,
        request: &IstioCertificateRequest,
    ) -> Result<(String, Vec<String>), ServiceError> {
        let token = bearer_token(authorization)?;
        let identity = self.authenticator.authenticate(token).await?;
        let ttl = self.validity.clamp(request.validity_duration);
        let ca = self.ca.clone();
        let csr = request.csr.clone();
        let spiffe_id = identity.spiffe_id();
        let chain = tokio::task::spawn_blocking(move || ca.sign_csr(&csr, &identity, ttl))
            .await
            .map_err(|e| ServiceError::Internal(e.to_string()))??;
        Ok((spiffe_id, chain))
    }
}

/// Extracts the token of an `authorization: Bearer <token>` value.
pub fn bearer_token(authorization: Option<&str>) -> Result<&str, AuthError> {
    let value = authorization.ok_or(AuthError::Missing)?.trim();
    let (scheme, token) = value
        .split_once(' ')
        .ok_or_else(|| AuthError::Malformed("expected `Bearer <token>`".into()))?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(AuthError::Malformed(format!(
            "authorization scheme {scheme:?} is not Bearer"
        )));
    }
    let token = token.trim();
    if token.is_empty() {
        return Err(AuthError::Missing);
    }
    Ok(token)
}

#[tonic::async_trait]
impl<A: Authenticator> IstioCertificateService for CertificateService<A> {
    async fn create_certificate(
        &self,
        request: Request<IstioCertificateRequest>,
    ) -> Result<Response<IstioCertificateResponse>, Status> {
        let peer = request.remote_addr();
        let authorization = match request.metadata().get("authorization") {
            None => None,
            Some(v) => Some(v.to_str().map_err(|_| {
                self.refuse(
                    AuthError::Malformed("authorization is not ASCII".into()).into(),
                    peer,
                )
            })?),
        };
        match self.create(authorization, request.get_ref()).await {
            Ok((spiffe_id, cert_chain)) => {
                self.metrics.issued();
                tracing::info!(%spiffe_id, ?peer, "issued workload certificate");
                Ok(Response::new(IstioCertificateResponse { cert_chain }))
            }
            Err(err) => Err(self.refuse(err, peer)),
        }
    }
}

impl<A: Authenticator> CertificateService<A> {
    fn refuse(&self, err: ServiceError, peer: Option<std::net::SocketAddr>) -> Status {
        self.metrics.refused(err.kind());
        tracing::warn!(reason = err.kind(), ?peer, error = %err, "refused CreateCertificate");
        err.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validity_is_clamped() {
        let p = ValidityPolicy::default();
        assert_eq!(p.clamp(0), DEFAULT_TTL);
        assert_eq!(p.clamp(-5), DEFAULT_TTL);
        assert_eq!(p.clamp(20), Duration::from_secs(20));
        assert_eq!(p.clamp(365 * 24 * 3600), MAX_TTL);
        let short = ValidityPolicy {
            default_ttl: Duration::from_secs(60),
            max_ttl: Duration::from_secs(120),
        };
        assert_eq!(short.clamp(0), Duration::from_secs(60));
        assert_eq!(short.clamp(3600), Duration::from_secs(120));
    }

    #[test]
    fn bearer_tokens_are_parsed_strictly() {
        assert_eq!(bearer_token(Some("Bearer abc")), Ok("abc"));
        assert_eq!(bearer_token(Some("bearer  abc ")), Ok("abc"));
        assert_eq!(bearer_token(None), Err(AuthError::Missing));
        assert_eq!(
            bearer_token(Some("Bearer ")),
            Err(AuthError::Malformed("expected `Bearer <token>`".into()))
        );
        assert!(matches!(
            bearer_token(Some("Basic abc")),
            Err(AuthError::Malformed(_))
        ));
    }
}
