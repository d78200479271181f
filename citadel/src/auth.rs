//! Who is asking: the [`Authenticator`] trait (Kubernetes TokenReview lives
//! in the operator, which owns the kube client) and [`TokenFileAuthenticator`]
//! for standalone mode.
//!
//! # Token file format (standalone mode)
//!
//! A YAML list; each entry maps one bearer token to one workload identity:
//!
//! ```yaml
//! - token: 3c1f0a...            # the bearer token a workload sends
//!   namespace: ns1
//!   serviceAccount: reviews
//!   expiresAt: 2027-01-01T00:00:00Z   # optional, RFC 3339; after it: Expired
//! ```
//!
//! The trust domain comes from the mesh configuration, not the file. The
//! file is re-read whenever its modification time or size changes, so tokens
//! can be added or revoked without a restart. Tokens are kept only as
//! SHA-256 digests and looked up by digest.

use std::collections::HashMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use serde::Deserialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::Identity;

/// Why a caller was not authenticated. Every variant but `Unavailable` is
/// the caller's fault (gRPC UNAUTHENTICATED); `Unavailable` means the
/// authenticator itself could not decide (gRPC UNAVAILABLE).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No `authorization: Bearer <token>` metadata.
    #[error("no credential: send `authorization: Bearer <service-account token>`")]
    Missing,
    /// The credential is not a bearer token or not a well-formed token.
    #[error("malformed credential: {0}")]
    Malformed(String),
    /// The token has expired.
    #[error("token has expired: request a fresh service-account token")]
    Expired,
    /// The token was issued for another audience.
    #[error("token audience is wrong: {0}")]
    WrongAudience(String),
    /// The token is unknown, forged or revoked.
    #[error("token rejected: {0}")]
    Rejected(String),
    /// The authenticator could not check the token (e.g. apiserver down).
    #[error("cannot check the token now: {0}")]
    Unavailable(String),
}

impl AuthError {
    /// A short, fixed label for metrics and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            AuthError::Missing => "missing_token",
            AuthError::Malformed(_) => "malformed_token",
            AuthError::Expired => "expired_token",
            AuthError::WrongAudience(_) => "wrong_audience",
            AuthError::Rejected(_) => "rejected_token",
            AuthError::Unavailable(_) => "authenticator_unavailable",
        }
    }
}

/// Turns a bearer token into the identity it proves.
pub trait Authenticator: Send + Sync + 'static {
    /// Authenticates `token` (the part after `Bearer `).
    fn authenticate<'a>(
        &'a self,
        token: &'a str,
    ) -> Pin<Box<dyn Future<Output = Result<Identity, AuthError>> + Send + 'a>>;
}

impl<A: Authenticator + ?Sized> Authenticator for Arc<A> {
    fn authenticate<'a>(
        &'a self,
        token: &'a str,
    ) -> Pin<Box<dyn Future<Output = Result<Identity, AuthError>> + Send + 'a>> {
        (**self).authenticate(token)
    }
}

/// One entry of the token file.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct TokenEntry {
    token: String,
    namespace: String,
    service_account: String,
    #[serde(default)]
    expires_at: Option<String>,
}

#[derive(Debug, Clone)]
struct Grant {
    namespace: String,
    service_account: String,
    expires_at: Option<OffsetDateTime>,
}

type Digest = [u8; 32];

#[derive(Debug)]
struct Loaded {
    stamp: (Option<SystemTime>, u64),
    grants: Arc<HashMap<Digest, Grant>>,
}

/// Standalone authenticator: identities from a token file (see the module
/// docs for its format), re-read when it changes.
#[derive(Debug)]
pub struct TokenFileAuthenticator {
    path: PathBuf,
    trust_domain: String,
    cache: Mutex<Option<Loaded>>,
}

impl TokenFileAuthenticator {
    /// Reads `path` once now (so a bad file fails at startup) and serves
    /// identities in `trust_domain`.
    pub fn new(
        path: impl Into<PathBuf>,
        trust_domain: impl Into<String>,
    ) -> Result<Self, AuthError> {
        let auth = TokenFileAuthenticator {
            path: path.into(),
            trust_domain: trust_domain.into(),
            cache: Mutex::new(None),
        };
        auth.grants()?;
        Ok(auth)
    }

    /// The current grants, re-reading the file if it changed.
    fn grants(&self) -> Result<Arc<HashMap<Digest, Grant>>, AuthError> {
        let meta = std::fs::metadata(&self.path).map_err(|e| {
            AuthError::Unavailable(format!("token file {}: {e}", self.path.display()))
        })?;
        let stamp = (meta.modified().ok(), meta.len());
        let mut cache = self
            .cache
            .lock()
            .map_err(|_| AuthError::Unavailable("token cache lock poisoned".into()))?;
        if let Some(loaded) = cache.as_ref()
            && loaded.stamp == stamp
        {
            return Ok(loaded.grants.clone());
        }
        let grants = Arc::new(parse_token_file(&self.path)?);
        *cache = Some(Loaded {
            stamp,
            grants: grants.clone(),
        });
        Ok(grants)
    }

    fn check(&self, token: &str) -> Result<Identity, AuthError> {
        if token.is_empty() {
            return Err(AuthError::Missing);
        }
        let grants = self.grants()?;
        let grant = grants
            .get(&digest(token))
            .ok_or_else(|| AuthError::Rejected("unknown token".into()))?;
        if grant
            .expires_at
            .is_some_and(|at| at <= OffsetDateTime::now_utc())
        {
            return Err(AuthError::Expired);
        }
        Ok(Identity {
            trust_domain: self.trust_domain.clone(),
            namespace: grant.namespace.clone(),
            service_account: grant.service_account.clone(),
        })
    }
}

impl Authenticator for TokenFileAuthenticator {
    fn authenticate<'a>(
        &'a self,
        token: &'a str,
    ) -> Pin<Box<dyn Future<Output = Result<Identity, AuthError>> + Send + 'a>> {
        // A small local file: reading it inline is cheaper than a blocking task.
        Box::pin(std::future::ready(self.check(token)))
    }
}

fn parse_token_file(path: &Path) -> Result<HashMap<Digest, Grant>, AuthError> {
    let unavailable =
        |msg: String| AuthError::Unavailable(format!("token file {}: {msg}", path.display()));
    let text = std::fs::read_to_string(path).map_err(|e| unavailable(e.to_string()))?;
    let entries: Vec<TokenEntry> = if text.trim().is_empty() {
        Vec::new()
    } else {
        serde_yaml::from_str(&text).map_err(|e| {
            unavailable(format!(
                "not a YAML list of {{token, namespace, serviceAccount, expiresAt?}}: {e}"
            ))
        })?
    };
    let mut grants = HashMap::with_capacity(entries.len());
    for (i, entry) in entries.into_iter().enumerate() {
        let at = |msg: &str| unavailable(format!("entry {i}: {msg}"));
        if entry.token.is_empty() {
            return Err(at("token is empty"));
        }
        let identity = Identity {
            trust_domain: "x".into(),
            namespace: entry.namespace.clone(),
            service_account: entry.service_account.clone(),
        };
        identity.validate().map_err(|e| at(&e))?;
        let expires_at = entry
            .expires_at
            .as_deref()
            .map(|s| OffsetDateTime::parse(s, &Rfc3339))
            .transpose()
            .map_err(|e| at(&format!("expiresAt is not RFC 3339: {e}")))?;
        let grant = Grant {
            namespace: entry.namespace,
            service_account: entry.service_account,
            expires_at,
        };
        if grants.insert(digest(&entry.token), grant).is_some() {
            return Err(at("token repeats an earlier entry's token"));
        }
    }
    Ok(grants)
}

fn digest(token: &str) -> Digest {
    let d = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(contents: &str) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        std::io::Write::write_all(&mut f, contents.as_bytes()).unwrap();
        f
    }

    const FILE: &str = "\
- token: good
  namespace: ns1
  serviceAccount: reviews
- token: old
  namespace: ns1
  serviceAccount: ratings
  expiresAt: 2020-01-01T00:00:00Z
";

    #[tokio::test]
    async fn known_token_maps_to_identity() {
        let f = file(FILE);
        let auth = TokenFileAuthenticator::new(f.path(), "cluster.local").unwrap();
        let id = auth.authenticate("good").await.unwrap();
        assert_eq!(id.spiffe_id(), "spiffe://cluster.local/ns/ns1/sa/reviews");
    }

    #[tokio::test]
    async fn refusals_are_typed() {
        let f = file(FILE);
        let auth = TokenFileAuthenticator::new(f.path(), "cluster.local").unwrap();
        assert!(matches!(
            auth.authenticate("forged").await,
            Err(AuthError::Rejected(_))
        ));
        assert_eq!(auth.authenticate("old").await, Err(AuthError::Expired));
        assert_eq!(auth.authenticate("").await, Err(AuthError::Missing));
    }

    #[tokio::test]
    async fn file_changes_are_picked_up() {
        let f = file(FILE);
        let auth = TokenFileAuthenticator::new(f.path(), "td").unwrap();
        assert!(auth.authenticate("new").await.is_err());
        std::fs::write(
            f.path(),
            format!("{FILE}- token: new\n  namespace: ns2\n  serviceAccount: web\n"),
        )
        .unwrap();
        let id = auth.authenticate("new").await.unwrap();
        assert_eq!(id.namespace, "ns2");
    }

    #[test]
    fn bad_files_fail_at_startup_with_the_reason() {
        let dup = file(
            "- {token: a, namespace: n, serviceAccount: s}\n- {token: a, namespace: n, serviceAccount: t}\n",
        );
        let err = TokenFileAuthenticator::new(dup.path(), "td").unwrap_err();
        assert!(err.to_string().contains("repeats"), "{err}");
        let bad_ns = file("- {token: a, namespace: 'n/sa/x', serviceAccount: s}\n");
        assert!(TokenFileAuthenticator::new(bad_ns.path(), "td").is_err());
        let missing = TokenFileAuthenticator::new("/nonexistent/tokens.yaml", "td").unwrap_err();
        assert!(matches!(missing, AuthError::Unavailable(_)));
    }
}
