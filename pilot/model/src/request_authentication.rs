//! Which JSON Web Tokens a workload accepts (Istio's
//! RequestAuthentication), validated, and where each issuer's keys come
//! from.
//!
//! A request with no token passes; one with a token must carry a valid
//! token of one of the issuers of every RequestAuthentication that applies
//! (Istio merges their rules per workload, sorted by issuer). Who may then
//! call is AuthorizationPolicy's business (`requestPrincipals`,
//! `request.auth.*`).

use std::collections::BTreeMap;
use std::time::Duration;

use super::{PolicyTarget, ResourceId};

/// How long fetching a `jwksUri` may take when the rule does not say.
pub const DEFAULT_JWKS_TIMEOUT: Duration = Duration::from_secs(5);

/// Claims always matched value by value when they hold a space-separated
/// string (Istio's defaults), besides a rule's `spaceDelimitedClaims`.
pub const DEFAULT_SPACE_DELIMITED_CLAIMS: [&str; 2] = ["permission", "scope"];

/// One RequestAuthentication.
#[derive(Clone, Debug, PartialEq)]
pub struct RequestAuthentication {
    pub id: ResourceId,
    pub target: PolicyTarget,
    pub jwt_rules: Vec<JwtRule>,
}

/// The rules of the RequestAuthentications of `policies` that apply to a
/// workload of `namespace` with `labels`, sorted by issuer (Istio's
/// order; the sort is stable, so equal issuers keep the policies' order).
pub fn jwt_rules_for<'a>(
    policies: &'a [RequestAuthentication],
    root_namespace: &str,
    namespace: &str,
    labels: &BTreeMap<String, String>,
) -> Vec<&'a JwtRule> {
    let mut rules: Vec<&JwtRule> = policies
        .iter()
        .filter(|p| {
            p.target
                .applies_to(&p.id.namespace, root_namespace, namespace, labels)
        })
        .flat_map(|p| &p.jwt_rules)
        .collect();
    rules.sort_by(|a, b| a.issuer.cmp(&b.issuer));
    rules
}

/// Istio's `JWTRule`, validated.
#[derive(Clone, Debug, PartialEq)]
pub struct JwtRule {
    pub issuer: String,
    /// Accepted `aud` values; empty: any.
    pub audiences: Vec<String>,
    pub keys: JwksSource,
    /// Where the token is looked for; all empty: Envoy's defaults
    /// (`Authorization: Bearer`, then the `access_token` parameter).
    pub from_headers: Vec<JwtHeader>,
    pub from_params: Vec<String>,
    pub from_cookies: Vec<String>,
    /// The header the verified payload goes upstream in.
    pub output_payload_to_header: Option<String>,
    pub forward_original_token: bool,
    pub output_claim_to_headers: Vec<ClaimToHeader>,
    /// How long fetching the keys may take.
    pub timeout: Duration,
    /// Claims matched value by value (the defaults included), sorted.
    pub space_delimited_claims: Vec<String>,
}

/// Where an issuer's JSON Web Key Set comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JwksSource {
    /// `jwks`: the set itself.
    Inline(String),
    /// `jwksUri`, or OpenID discovery on the issuer: fetched.
    Remote(JwksLocation),
}

/// A key set fetched by the control plane, named by where it is found.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum JwksLocation {
    /// `jwksUri`.
    Uri(String),
    /// Neither `jwks` nor `jwksUri`: the `jwks_uri` of the issuer's
    /// `/.well-known/openid-configuration`.
    Discovery { issuer: String },
}

impl JwksLocation {
    /// The URL fetched first: the key set's, or the discovery document's.
    pub fn url(&self) -> String {
        match self {
            JwksLocation::Uri(uri) => uri.clone(),
            JwksLocation::Discovery { issuer } => format!(
                "{}/.well-known/openid-configuration",
                issuer.trim_end_matches('/')
            ),
        }
    }
}

/// The host and port of an `http(s)://host[:port]/...` URL (80 and 443
/// by default); `None` for anything else.
pub fn url_host_port(url: &str) -> Option<(String, u16)> {
    let (rest, default_port) = if let Some(rest) = url.strip_prefix("https://") {
        (rest, 443)
    } else {
        (url.strip_prefix("http://")?, 80)
    };
    let authority = rest.split(['/', '?', '#']).next()?;
    let authority = authority.rsplit_once('@').map_or(authority, |(_, a)| a);
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (host, after) = v6.split_once(']')?;
        (host, after.strip_prefix(':'))
    } else {
        match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    let port = match port {
        Some(p) => p.parse().ok()?,
        None => default_port,
    };
    (!host.is_empty()).then(|| (host.to_ascii_lowercase(), port))
}

/// `fromHeaders[]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JwtHeader {
    pub name: String,
    pub prefix: String,
}

/// `outputClaimToHeaders[]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClaimToHeader {
    pub header: String,
    pub claim: String,
}

/// What the control plane holds of one remote key set.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FetchedJwks {
    /// The last key set fetched and parsed (JWKS JSON); kept when a later
    /// refresh fails.
    pub keys: Option<String>,
    /// Why the last fetch failed, if it did.
    pub error: Option<String>,
}

/// A JSON Web Key Set: `{"keys": [...]}`, each key of a type Envoy
/// verifies with (RSA, EC, oct, OKP) and with that type's public parts.
pub fn check_jwks(text: &str) -> Result<(), String> {
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format!("is not JSON (a JSON Web Key Set): {e}"))?;
    let keys = value
        .get("keys")
        .and_then(serde_json::Value::as_array)
        .ok_or("is not a JSON Web Key Set: it needs a \"keys\" list")?;
    if keys.is_empty() {
        return Err("the key set has no keys".to_string());
    }
    for (i, key) in keys.iter().enumerate() {
        let kty = key
            .get("kty")
            .and_then(serde_json::Value::as_str)
            .ok_or(format!("keys[{i}] has no \"kty\""))?;
        let needs: &[&str] = match kty {
            "RSA" => &["n", "e"],
            "EC" => &["crv", "x", "y"],
            "OKP" => &["crv", "x"],
            "oct" => &["k"],
            other => {
                return Err(format!(
                    "keys[{i}]: key type {other:?} is not one Envoy verifies with (RSA, EC, OKP, oct)"
                ));
            }
        };
        if let Some(missing) = needs.iter().find(|part| {
            key.get(**part)
                .and_then(serde_json::Value::as_str)
                .is_none()
        }) {
            return Err(format!("keys[{i}] ({kty}) has no {missing:?}"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{DEFAULT_ROOT_NAMESPACE as ROOT, Kind};

    fn rule(issuer: &str) -> JwtRule {
        JwtRule {
            issuer: issuer.into(),
            audiences: Vec::new(),
            keys: JwksSource::Inline("{}".into()),
            from_headers: Vec::new(),
            from_params: Vec::new(),
            from_cookies: Vec::new(),
            output_payload_to_header: None,
            forward_original_token: false,
            output_claim_to_headers: Vec::new(),
            timeout: DEFAULT_JWKS_TIMEOUT,
            space_delimited_claims: Vec::new(),
        }
    }

    fn policy(namespace: &str, app: Option<&str>, issuers: &[&str]) -> RequestAuthentication {
        RequestAuthentication {
            id: ResourceId::new(Kind::RequestAuthentication, namespace, issuers.join("-")),
            target: PolicyTarget {
                selector: app.map(|a| BTreeMap::from([("app".to_string(), a.to_string())])),
                ..Default::default()
            },
            jwt_rules: issuers.iter().map(|i| rule(i)).collect(),
        }
    }

    #[test]
    fn rules_merge_across_policies_sorted_by_issuer() {
        let policies = [
            policy(ROOT, None, &["mesh"]),
            policy("prod", None, &["zeta", "alpha"]),
            policy("prod", Some("api"), &["beta"]),
            policy("prod", Some("web"), &["web"]),
            policy("other", None, &["other"]),
        ];
        let labels = BTreeMap::from([("app".to_string(), "api".to_string())]);
        let issuers: Vec<&str> = jwt_rules_for(&policies, ROOT, "prod", &labels)
            .iter()
            .map(|r| r.issuer.as_str())
            .collect();
        assert_eq!(issuers, ["alpha", "beta", "mesh", "zeta"]);
    }

    #[test]
    fn urls_give_their_host_and_port() {
        assert_eq!(
            url_host_port("https://Keys.Example.com/jwks"),
            Some(("keys.example.com".into(), 443))
        );
        assert_eq!(
            url_host_port("http://keys.prod.svc.cluster.local:8080/jwks?x=1"),
            Some(("keys.prod.svc.cluster.local".into(), 8080))
        );
        assert_eq!(url_host_port("http://[::1]:9/k"), Some(("::1".into(), 9)));
        assert_eq!(url_host_port("http://k"), Some(("k".into(), 80)));
        assert_eq!(url_host_port("ftp://k/x"), None);
        assert_eq!(url_host_port("http://k:nope/x"), None);
    }

    #[test]
    fn discovery_is_under_the_issuer() {
        let location = JwksLocation::Discovery {
            issuer: "https://id.example.com/".into(),
        };
        assert_eq!(
            location.url(),
            "https://id.example.com/.well-known/openid-configuration"
        );
        assert_eq!(JwksLocation::Uri("https://k/j".into()).url(), "https://k/j");
    }

    #[test]
    fn key_sets_need_keys_with_their_public_parts() {
        assert!(check_jwks(r#"{"keys":[{"kty":"RSA","n":"AQAB","e":"AQAB"}]}"#).is_ok());
        assert!(check_jwks(r#"{"keys":[{"kty":"EC","crv":"P-256","x":"a","y":"b"}]}"#).is_ok());
        assert!(check_jwks(r#"{"keys":[]}"#).is_err());
        assert!(check_jwks(r#"{"keys":[{"kty":"RSA","n":"AQAB"}]}"#).is_err());
        assert!(check_jwks(r#"{"keys":[{"kty":"XYZ"}]}"#).is_err());
        assert!(check_jwks("[]").is_err());
        assert!(check_jwks("{").is_err());
    }
}
