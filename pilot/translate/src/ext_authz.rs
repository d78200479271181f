//! CUSTOM AuthorizationPolicies -> Envoy's RBAC in shadow mode plus its
//! `ext_authz` filter, as istiod builds them, one pair per provider:
//!
//! ```text
//!   rbac (shadow rules, action DENY, stat prefix istio_ext_authz_)
//!       a request a rule matches gets its policy's name,
//!       istio-ext-authz-<provider>-ns[NS]-policy[NAME]-rule[I], in dynamic
//!       metadata (istio_ext_authz_shadow_effective_policy_id)
//!   ext_authz (enabled by that metadata's prefix for this provider)
//!       asks the provider; its answer decides
//! ```
//!
//! so only the requests the rules select are checked. A provider that
//! cannot be asked from this proxy (not defined, not an external
//! authorizer, its service unknown or invisible) fails closed: the rules
//! become an enforcing DENY, each named `...-deny-due-to-bad-CUSTOM-action`.

use std::collections::BTreeMap;

use weft_envoy_api::pb::envoy::config::core::v3::{
    ApiVersion, GrpcService, HeaderValue, HttpUri, grpc_service, http_uri,
};
use weft_envoy_api::pb::envoy::config::rbac::v3::{Rbac, rbac::Action};
use weft_envoy_api::pb::envoy::extensions::filters::http::ext_authz::v3::{
    AuthorizationRequest, AuthorizationResponse, BufferSettings, ExtAuthz as ExtAuthzFilter,
    HttpService, ext_authz::Services,
};
use weft_envoy_api::pb::envoy::extensions::filters::http::rbac::v3::Rbac as RbacFilter;
use weft_envoy_api::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpFilter, http_filter,
};
use weft_envoy_api::pb::envoy::r#type::matcher::v3::{
    ListStringMatcher, MetadataMatcher, StringMatcher, ValueMatcher, metadata_matcher::PathSegment,
    metadata_matcher::path_segment::Segment, string_matcher::MatchPattern, value_matcher,
};
use weft_envoy_api::pb::envoy::r#type::v3::HttpStatus;
use weft_envoy_api::util::pack_any;

use super::ProxyView;
use super::authorization::{RBAC_FILTER, rule_policy};
use super::telemetry::tracing::provider_cluster;
use weft_model::{AuthorizationAction, AuthorizationPolicy, ExtAuthz, MeshSnapshot, Provider};

const EXT_AUTHZ_FILTER: &str = "envoy.filters.http.ext_authz";
/// The RBAC shadow rules' stat prefix, and so their metadata keys'.
const SHADOW_PREFIX: &str = "istio_ext_authz_";
const MATCH_PREFIX: &str = "istio-ext-authz";
const BAD_PROVIDER_SUFFIX: &str = "-deny-due-to-bad-CUSTOM-action";

/// The filters of the CUSTOM policies among `policies` (those of the
/// workload), by provider name.
pub(super) fn custom_filters(
    snapshot: &MeshSnapshot,
    view: &ProxyView,
    policies: &[&AuthorizationPolicy],
) -> Vec<HttpFilter> {
    let mut by_provider: BTreeMap<&str, Vec<&AuthorizationPolicy>> = BTreeMap::new();
    for policy in policies
        .iter()
        .filter(|p| p.action == AuthorizationAction::Custom)
    {
        if let Some(provider) = &policy.provider {
            by_provider.entry(provider).or_default().push(policy);
        }
    }
    let mut filters = Vec::new();
    for (provider, policies) in by_provider {
        let rules = |suffix: &str| Rbac {
            action: Action::Deny as i32,
            policies: policies
                .iter()
                .flat_map(|p| {
                    p.rules.iter().enumerate().map(move |(i, rule)| {
                        (
                            format!(
                                "{MATCH_PREFIX}-{provider}-ns[{}]-policy[{}]-rule[{i}]{suffix}",
                                p.id.namespace, p.id.name
                            ),
                            rule_policy(rule),
                        )
                    })
                })
                .collect(),
            ..Default::default()
        };
        match ext_authz_config(snapshot, view, provider) {
            Some(mut authz) => {
                authz.filter_enabled_metadata = Some(enabled_for(provider));
                filters.push(rbac_filter(RbacFilter {
                    shadow_rules: Some(rules("")),
                    shadow_rules_stat_prefix: SHADOW_PREFIX.to_string(),
                    ..Default::default()
                }));
                filters.push(HttpFilter {
                    name: EXT_AUTHZ_FILTER.to_string(),
                    config_type: Some(http_filter::ConfigType::TypedConfig(pack_any(authz))),
                    ..Default::default()
                });
            }
            None => filters.push(rbac_filter(RbacFilter {
                rules: Some(rules(BAD_PROVIDER_SUFFIX)),
                ..Default::default()
            })),
        }
    }
    filters
}

fn rbac_filter(config: RbacFilter) -> HttpFilter {
    HttpFilter {
        name: RBAC_FILTER.to_string(),
        config_type: Some(http_filter::ConfigType::TypedConfig(pack_any(config))),
        ..Default::default()
    }
}

/// The `ext_authz` config of provider `name`, if this proxy can ask it.
fn ext_authz_config(
    snapshot: &MeshSnapshot,
    view: &ProxyView,
    name: &str,
) -> Option<ExtAuthzFilter> {
    let authz = snapshot.ext_authz(name).ok()?;
    let grpc = matches!(
        snapshot.mesh_config.provider(name),
        Some(Provider::ExtAuthzGrpc(_))
    );
    let cluster = provider_cluster(snapshot, view, &authz.service, grpc)?;
    let timeout = Some(super::pb_duration(authz.timeout));
    let services = if grpc {
        Services::GrpcService(GrpcService {
            target_specifier: Some(grpc_service::TargetSpecifier::EnvoyGrpc(
                grpc_service::EnvoyGrpc {
                    cluster_name: cluster,
                    authority: authz.service.host.clone(),
                    ..Default::default()
                },
            )),
            timeout,
            ..Default::default()
        })
    } else {
        Services::HttpService(http_service(authz, cluster, timeout))
    };
    Some(ExtAuthzFilter {
        services: Some(services),
        transport_api_version: ApiVersion::V3 as i32,
        failure_mode_allow: authz.fail_open,
        status_on_error: authz.status_on_error.map(|code| HttpStatus {
            code: i32::from(code),
        }),
        with_request_body: authz.request_body.map(|b| BufferSettings {
            max_request_bytes: b.max_request_bytes,
            allow_partial_message: b.allow_partial_message,
            pack_as_bytes: b.pack_as_bytes,
        }),
        allowed_headers: if grpc {
            None
        } else {
            header_list(&authz.include_request_headers)
        },
        ..Default::default()
    })
}

fn http_service(
    authz: &ExtAuthz,
    cluster: String,
    timeout: Option<weft_envoy_api::pb::google::protobuf::Duration>,
) -> HttpService {
    let headers_to_add = authz
        .include_additional_headers
        .iter()
        .map(|(key, value)| HeaderValue {
            key: key.clone(),
            value: value.clone(),
            ..Default::default()
        })
        .collect::<Vec<_>>();
    let responses = [
        &authz.headers_to_upstream_on_allow,
        &authz.headers_to_downstream_on_deny,
        &authz.headers_to_downstream_on_allow,
    ];
    HttpService {
        server_uri: Some(HttpUri {
            uri: format!("http://{}", authz.service.host),
            timeout,
            http_upstream_type: Some(http_uri::HttpUpstreamType::Cluster(cluster)),
        }),
        path_prefix: authz.path_prefix.clone(),
        authorization_request: (!headers_to_add.is_empty()).then(|| AuthorizationRequest {
            headers_to_add,
            ..Default::default()
        }),
        authorization_response: responses.iter().any(|l| !l.is_empty()).then(|| {
            AuthorizationResponse {
                allowed_upstream_headers: header_list(&authz.headers_to_upstream_on_allow),
                allowed_client_headers: header_list(&authz.headers_to_downstream_on_deny),
                allowed_client_headers_on_success: header_list(
                    &authz.headers_to_downstream_on_allow,
                ),
                ..Default::default()
            }
        }),
        ..Default::default()
    }
}

/// Header names, case-insensitively, with Istio's `*` prefix / suffix.
fn header_list(headers: &[String]) -> Option<ListStringMatcher> {
    if headers.is_empty() {
        return None;
    }
    let patterns = headers
        .iter()
        .map(|h| {
            let pattern = if let Some(suffix) = h.strip_prefix('*') {
                MatchPattern::Suffix(suffix.to_string())
            } else if let Some(prefix) = h.strip_suffix('*') {
                MatchPattern::Prefix(prefix.to_string())
            } else {
                MatchPattern::Exact(h.clone())
            };
            StringMatcher {
                match_pattern: Some(pattern),
                ignore_case: true,
            }
        })
        .collect();
    Some(ListStringMatcher { patterns })
}

/// Enabled when the shadow rules named a policy of `provider`.
fn enabled_for(provider: &str) -> MetadataMatcher {
    MetadataMatcher {
        filter: RBAC_FILTER.to_string(),
        path: vec![PathSegment {
            segment: Some(Segment::Key(format!(
                "{SHADOW_PREFIX}shadow_effective_policy_id"
            ))),
        }],
        value: Some(ValueMatcher {
            match_pattern: Some(value_matcher::MatchPattern::StringMatch(StringMatcher {
                match_pattern: Some(MatchPattern::Prefix(format!("{MATCH_PREFIX}-{provider}"))),
                ignore_case: false,
            })),
        }),
        invert: false,
    }
}

#[cfg(test)]
#[path = "ext_authz_tests.rs"]
mod tests;
