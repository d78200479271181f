//! RequestAuthentication -> Envoy's `jwt_authn` HTTP filter, as istiod
//! builds it.
//!
//! Each JWT rule that applies to the workload (merged across its
//! RequestAuthentications, sorted by issuer) is one provider
//! `origins-<i>`. A request without a token passes; one with a token must
//! carry a valid token of some provider:
//!
//! ```text
//!   one provider:  origins-0 OR allow_missing
//!   several:       origins-0 OR origins-1 OR ... OR
//!                  AND(origins-0 OR allow_missing, origins-1 OR allow_missing, ...)
//! ```
//!
//! (the outer OR admits providers that share a token location). The
//! verified payload goes into dynamic metadata under `payload`, where the
//! RBAC filters read `request.auth.*` ([`super::authorization`]). CORS
//! preflights pass unchecked.
//!
//! Keys are inline: the rule's `jwks`, or the set the control plane
//! fetched (the snapshot's `fetched_jwks`). A remote set never fetched is
//! [`FAIL_CLOSED_JWKS`], a key whose private half no one holds, so every
//! token is refused until the keys arrive. In hybrid mode a `jwksUri` on a
//! mesh service is Envoy's to fetch (`remote_jwks` through the service's
//! outbound cluster, cached 5 minutes).
//!
//! A token for another audience gets 401 (`error="invalid_token"`), as
//! RFC 6750 says and like every other invalid token; Envoy's filter alone
//! answers it with 403, and so does Istio ([`local_reply_config`]).

use weft_envoy_api::pb::envoy::config::core::v3::{DataSource, HttpUri, data_source, http_uri};
use weft_envoy_api::pb::envoy::config::route::v3::{RouteMatch, route_match::PathSpecifier};
use weft_envoy_api::pb::envoy::extensions::filters::http::jwt_authn::v3::{
    JwtAuthentication, JwtClaimToHeader, JwtHeader, JwtProvider, JwtRequirement,
    JwtRequirementAndList, JwtRequirementOrList, RemoteJwks, RequirementRule, jwt_provider,
    jwt_requirement::RequiresType, requirement_rule::RequirementType,
};
use weft_envoy_api::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpFilter, LocalReplyConfig, ResponseMapper, http_filter,
};
use weft_envoy_api::pb::google::protobuf::{Empty, UInt32Value};
use weft_envoy_api::util::pack_any;

use crate::{outbound_cluster_name, pb_duration};
use weft_model::{JwksLocation, JwksSource, JwtRule, MeshSnapshot};

/// How long Envoy keeps a key set it fetched itself (Istio's 5 minutes).
const REMOTE_JWKS_CACHE: std::time::Duration = std::time::Duration::from_secs(5 * 60);

/// Envoy's JWT filter: also the metadata namespace of the payload.
pub const JWT_AUTHN_FILTER: &str = "envoy.filters.http.jwt_authn";
/// The key of the verified payload in the filter's dynamic metadata.
pub const PAYLOAD_KEY: &str = "payload";

/// A JSON Web Key Set whose one RSA key has no private half anywhere:
/// what a provider verifies with while its remote keys were never
/// fetched, so that every token fails (Istio's fake JWKS, with a key of
/// Weft's own).
pub const FAIL_CLOSED_JWKS: &str = r#"{"keys":[{"kty":"RSA","kid":"weft-keys-not-fetched","alg":"RS256","e":"AQAB","n":"1E3qhkjka9NmyawaJHPWmQVYenWVlWUh9APYn5nCQeI0u0tYnEIObglqxOrJqJVNTcb9qsK2JCwpT90i-YY4_m0c7dd2V-kkfH7JZ3mWO6lzBU5JTRyrIGnE0ATWd5TRZg2kGd4Gv0zUhc65zsrU46FhsxZs8qVRWFEIJo67gGvyBqIVLCxkI0tw_InZsVz6VTa97Py5muX8SG-R3XAwLsj_QRiPTca0C4tRBO0JJDgwdq_sGbDkrvZWEGosKaMsRK6qN7OQdj73vPMf1eTTEA3EPOHJnDes8IIwWRAESbd2AFm0TsgNpv58Y3ey78oISWaXVif-hjBYGYFZgvVDMQ"}]}"#;

/// The filter for `rules` (those of the workload, sorted by issuer); none
/// without rules.
pub(super) fn jwt_authn_filter(snapshot: &MeshSnapshot, rules: &[&JwtRule]) -> Option<HttpFilter> {
    if rules.is_empty() {
        return None;
    }
    let names: Vec<String> = (0..rules.len()).map(|i| format!("origins-{i}")).collect();
    let providers = names
        .iter()
        .zip(rules)
        .map(|(name, rule)| (name.clone(), provider(snapshot, rule)))
        .collect();
    let token_or_none = |name: &String| {
        any_of(vec![
            requirement(RequiresType::ProviderName(name.clone())),
            requirement(RequiresType::AllowMissing(Empty::default())),
        ])
    };
    let requires = match names.as_slice() {
        [only] => token_or_none(only),
        _ => {
            let mut any: Vec<JwtRequirement> = names
                .iter()
                .map(|n| requirement(RequiresType::ProviderName(n.clone())))
                .collect();
            any.push(requirement(RequiresType::RequiresAll(
                JwtRequirementAndList {
                    requirements: names.iter().map(token_or_none).collect(),
                },
            )));
            any_of(any)
        }
    };
    let config = JwtAuthentication {
        providers,
        rules: vec![RequirementRule {
            r#match: Some(RouteMatch {
                path_specifier: Some(PathSpecifier::Prefix("/".to_string())),
                ..Default::default()
            }),
            requirement_type: Some(RequirementType::Requires(requires)),
        }],
        bypass_cors_preflight: true,
        ..Default::default()
    };
    Some(HttpFilter {
        name: JWT_AUTHN_FILTER.to_string(),
        config_type: Some(http_filter::ConfigType::TypedConfig(pack_any(config))),
        ..Default::default()
    })
}

/// Where a provider's keys come from: inline (the rule's, or those the
/// control plane fetched, or [`FAIL_CLOSED_JWKS`]), or fetched by Envoy
/// through a mesh service's outbound cluster (hybrid mode).
fn keys(snapshot: &MeshSnapshot, rule: &JwtRule) -> jwt_provider::JwksSourceSpecifier {
    let inline = |keys: String| {
        jwt_provider::JwksSourceSpecifier::LocalJwks(DataSource {
            specifier: Some(data_source::Specifier::InlineString(keys)),
            ..Default::default()
        })
    };
    let location = match &rule.keys {
        JwksSource::Inline(jwks) => return inline(jwks.clone()),
        JwksSource::Remote(location) => location,
    };
    if let JwksLocation::Uri(uri) = location
        && let Some((host, port)) = snapshot.envoy_fetched_jwks(uri)
    {
        return jwt_provider::JwksSourceSpecifier::RemoteJwks(RemoteJwks {
            http_uri: Some(HttpUri {
                uri: uri.clone(),
                timeout: Some(pb_duration(rule.timeout)),
                http_upstream_type: Some(http_uri::HttpUpstreamType::Cluster(
                    outbound_cluster_name(port, None, &host),
                )),
            }),
            cache_duration: Some(pb_duration(REMOTE_JWKS_CACHE)),
            ..Default::default()
        });
    }
    inline(
        snapshot
            .fetched_jwks
            .get(location)
            .and_then(|fetched| fetched.keys.clone())
            .unwrap_or_else(|| FAIL_CLOSED_JWKS.to_string()),
    )
}

fn provider(snapshot: &MeshSnapshot, rule: &JwtRule) -> JwtProvider {
    JwtProvider {
        issuer: rule.issuer.clone(),
        audiences: rule.audiences.clone(),
        forward: rule.forward_original_token,
        from_headers: rule
            .from_headers
            .iter()
            .map(|h| JwtHeader {
                name: h.name.clone(),
                value_prefix: h.prefix.clone(),
            })
            .collect(),
        from_params: rule.from_params.clone(),
        from_cookies: rule.from_cookies.clone(),
        forward_payload_header: rule.output_payload_to_header.clone().unwrap_or_default(),
        payload_in_metadata: PAYLOAD_KEY.to_string(),
        normalize_payload_in_metadata: Some(jwt_provider::NormalizePayload {
            space_delimited_claims: rule.space_delimited_claims.clone(),
        }),
        claim_to_headers: rule
            .output_claim_to_headers
            .iter()
            .map(|c| JwtClaimToHeader {
                header_name: c.header.clone(),
                claim_name: c.claim.clone(),
                ..Default::default()
            })
            .collect(),
        jwks_source_specifier: Some(keys(snapshot, rule)),
        ..Default::default()
    }
}

/// The local replies of a connection manager running `filters`: when they
/// include the JWT filter, its 403 for a token of another audience becomes
/// 401 (the `www-authenticate: Bearer ... error="invalid_token"` header it
/// sets stays), told apart from RBAC's and ext_authz's 403 by the reply's
/// details. None otherwise.
pub(crate) fn local_reply_config(filters: &[HttpFilter]) -> Option<LocalReplyConfig> {
    filters
        .iter()
        .any(|f| f.name == JWT_AUTHN_FILTER)
        .then(|| LocalReplyConfig {
            mappers: vec![ResponseMapper {
                filter: Some(crate::telemetry::access_log::cel_filter(
                    "response.code == 403 && \
                     response.code_details.startsWith('jwt_authn_access_denied')",
                )),
                status_code: Some(UInt32Value { value: 401 }),
                ..Default::default()
            }],
            ..Default::default()
        })
}

fn requirement(requires: RequiresType) -> JwtRequirement {
    JwtRequirement {
        requires_type: Some(requires),
    }
}

fn any_of(requirements: Vec<JwtRequirement>) -> JwtRequirement {
    requirement(RequiresType::RequiresAny(JwtRequirementOrList {
        requirements,
    }))
}

#[cfg(test)]
#[path = "jwt_authn_tests.rs"]
mod tests;
