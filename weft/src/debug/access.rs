//! Who sees the debug endpoints (HTTP and istiod's debug xDS types):
//! loopback callers (including `kubectl port-forward`) always; anyone else
//! with a service-account token that the control plane's token authority
//! (TokenReview in the operator, `--token-file` standalone) proves belongs
//! to its own namespace. No token, or one that proves nothing: 401; a
//! proven identity from another namespace: 403.

use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;

use weft_citadel::Authenticator;
use weft_xds::{AccessDenied, DebugAccess};

/// Loopback, or a token of `namespace`.
pub struct NamespaceAccess {
    namespace: String,
    authenticator: Option<Arc<dyn Authenticator>>,
}

impl std::fmt::Debug for NamespaceAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NamespaceAccess")
            .field("namespace", &self.namespace)
            .field("authenticator", &self.authenticator.is_some())
            .finish()
    }
}

impl NamespaceAccess {
    /// Tokens are checked by `authenticator`; without one, only loopback
    /// callers are admitted.
    pub fn new(
        namespace: impl Into<String>,
        authenticator: Option<Arc<dyn Authenticator>>,
    ) -> Self {
        Self {
            namespace: namespace.into(),
            authenticator,
        }
    }

    async fn decide(&self, peer: Option<IpAddr>, bearer: Option<&str>) -> Result<(), AccessDenied> {
        if peer.is_some_and(|ip| ip.is_loopback()) {
            return Ok(());
        }
        let namespace = &self.namespace;
        let Some(authenticator) = &self.authenticator else {
            return Err(AccessDenied::Unauthenticated(format!(
                "debug data is served to loopback callers only: this control plane has no token \
                 authority (standalone: start it with --token-file to admit tokens of namespace \
                 {namespace})"
            )));
        };
        let Some(token) = bearer.filter(|t| !t.is_empty()) else {
            return Err(AccessDenied::Unauthenticated(format!(
                "send `Authorization: Bearer <token>` with a service-account token of namespace \
                 {namespace} (audience istio-ca), or connect from loopback (kubectl port-forward)"
            )));
        };
        let identity = authenticator
            .authenticate(token)
            .await
            .map_err(|err| AccessDenied::Unauthenticated(format!("the token is refused: {err}")))?;
        if identity.namespace == *namespace {
            Ok(())
        } else {
            Err(AccessDenied::Forbidden(format!(
                "{}/{} may not read debug data: only service accounts of namespace {namespace} may",
                identity.namespace, identity.service_account
            )))
        }
    }
}

impl DebugAccess for NamespaceAccess {
    fn check<'a>(
        &'a self,
        peer: Option<IpAddr>,
        bearer: Option<&'a str>,
    ) -> Pin<Box<dyn Future<Output = Result<(), AccessDenied>> + Send + 'a>> {
        Box::pin(self.decide(peer, bearer))
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use weft_citadel::{AuthError, Identity};

    use super::*;

    /// Knows two tokens: one of `weft-system`, one of `default`.
    struct TwoTokens;

    impl Authenticator for TwoTokens {
        fn authenticate<'a>(
            &'a self,
            token: &'a str,
        ) -> Pin<Box<dyn Future<Output = Result<Identity, AuthError>> + Send + 'a>> {
            let identity = |namespace: &str| Identity {
                trust_domain: "cluster.local".into(),
                namespace: namespace.into(),
                service_account: "sa".into(),
            };
            let result = match token {
                "system" => Ok(identity("weft-system")),
                "app" => Ok(identity("default")),
                _ => Err(AuthError::Malformed("unknown".into())),
            };
            Box::pin(std::future::ready(result))
        }
    }

    fn remote() -> Option<IpAddr> {
        Some(IpAddr::V4(Ipv4Addr::new(10, 1, 2, 3)))
    }

    #[tokio::test]
    async fn loopback_or_a_token_of_the_namespace() {
        let access = NamespaceAccess::new("weft-system", Some(Arc::new(TwoTokens)));
        assert_eq!(
            access
                .decide(Some(IpAddr::V4(Ipv4Addr::LOCALHOST)), None)
                .await,
            Ok(())
        );
        assert_eq!(access.decide(remote(), Some("system")).await, Ok(()));
        assert!(matches!(
            access.decide(remote(), None).await,
            Err(AccessDenied::Unauthenticated(_))
        ));
        assert!(matches!(
            access.decide(remote(), Some("forged")).await,
            Err(AccessDenied::Unauthenticated(_))
        ));
        assert!(matches!(
            access.decide(remote(), Some("app")).await,
            Err(AccessDenied::Forbidden(_))
        ));
        assert!(matches!(
            access.decide(None, Some("app")).await,
            Err(AccessDenied::Forbidden(_))
        ));
    }

    #[tokio::test]
    async fn without_a_token_authority_only_loopback() {
        let access = NamespaceAccess::new("istio-system", None);
        assert!(matches!(
            access.decide(remote(), Some("system")).await,
            Err(AccessDenied::Unauthenticated(_))
        ));
    }
}
