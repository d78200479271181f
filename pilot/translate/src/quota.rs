//! Quotas on a destination workload's inbound HTTP chains: one rate-limit
//! filter per Quota whose destination service this workload is an
//! instance of (same namespace, an endpoint with the workload's labels or
//! service account, on this listener's port).
//!
//! `Local` quotas use Envoy's `envoy.filters.http.local_ratelimit` (a token
//! bucket per instance: each destination instance admits the amount on
//! its own). `Global` quotas use `envoy.filters.http.ratelimit`, asking
//! Weft's quota service over the bootstrap's xDS cluster (`weft-xds`) (domain
//! [`QUOTA_DOMAIN`]); `failureMode: Closed` sets `failure_mode_deny`, and
//! a call the service could not decide on is answered
//! [`STATUS_ON_ERROR`] (503: the quota could not be checked, try later;
//! not 429, which says the caller is over quota, nor Envoy's default 500).
//!
//! **Descriptors.** Each request yields at most one descriptor per quota,
//! chosen in the model's precedence order ([`Quota::ranked`]):
//!
//! ```text
//!   [quota=<ns>/<name>, (path), override=o<i>, not=o<j> for every j ranked above i]
//!   [quota=<ns>/<name>, (path), not=o<j> for every override j]   -> the default
//! ```
//!
//! **Who the caller is.** The principal and namespace come from the
//! caller's mTLS certificate: the inbound connection manager sets
//! `x-forwarded-client-cert: URI=<spiffe id>` on mTLS chains and strips
//! any incoming one on plain-text chains, so it cannot be forged. Labels
//! come from [`SOURCE_HEADER`], which every sidecar's outbound router sets
//! (overwriting what the app sent); it is trusted only together with an
//! `x-forwarded-client-cert`, i.e. from mesh callers over mTLS.

use std::collections::BTreeMap;

use weft_envoy_api::pb::envoy::config::core::v3::{
    GrpcService, RuntimeFractionalPercent, grpc_service::EnvoyGrpc, grpc_service::TargetSpecifier,
};
use weft_envoy_api::pb::envoy::config::ratelimit::v3::RateLimitServiceConfig;
use weft_envoy_api::pb::envoy::config::route::v3::{
    HeaderMatcher, RateLimit,
    header_matcher::HeaderMatchSpecifier,
    rate_limit::{Action, action::ActionSpecifier, action::GenericKey, action::HeaderValueMatch},
};
use weft_envoy_api::pb::envoy::extensions::common::ratelimit::v3::{
    LocalRateLimitDescriptor, XRateLimitHeadersRfcVersion, rate_limit_descriptor::Entry,
};
use weft_envoy_api::pb::envoy::extensions::filters::http::local_ratelimit::v3::LocalRateLimit;
use weft_envoy_api::pb::envoy::extensions::filters::http::ratelimit::v3::RateLimit as RateLimitFilter;
use weft_envoy_api::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpFilter, http_filter,
};
use weft_envoy_api::pb::envoy::r#type::matcher::v3::{
    RegexMatcher, StringMatcher, string_matcher::MatchPattern,
};
use weft_envoy_api::pb::envoy::r#type::v3::{
    FractionalPercent, HttpStatus, StatusCode, TokenBucket,
};
use weft_envoy_api::pb::google::protobuf::{BoolValue, UInt32Value};
use weft_envoy_api::util::pack_any;

use super::{ProxyView, pb_duration};
use weft_model::{CallerMatch, MeshSnapshot, Quota, QuotaScope, Service};

/// The request header a sidecar's outbound router sets to its workload's
/// labels: `k1=v1;k2=v2` (sorted by key).
pub const SOURCE_HEADER: &str = "x-weft-source";
/// The rate-limit domain of Global quotas.
pub const QUOTA_DOMAIN: &str = "weft";
/// The cluster of the control plane (in every bootstrap); it serves the
/// quota service next to xDS.
pub const QUOTA_SERVICE_CLUSTER: &str = crate::bootstrap::XDS_CLUSTER;
/// Descriptor entry keys.
pub const KEY_QUOTA: &str = "quota";
pub const KEY_OVERRIDE: &str = "override";
pub const KEY_NOT: &str = "not";
const KEY_PATH: &str = "path";
const XFCC: &str = "x-forwarded-client-cert";
/// What a destination answers when `failureMode: Closed` and the quota
/// service cannot be reached or fails.
pub const STATUS_ON_ERROR: StatusCode = StatusCode::ServiceUnavailable;
const LOCAL_FILTER: &str = "envoy.filters.http.local_ratelimit";
const GLOBAL_FILTER: &str = "envoy.filters.http.ratelimit";

/// `x-weft-source`'s value for a workload with `labels`.
pub fn source_header_value(labels: &BTreeMap<String, String>) -> String {
    labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(";")
}

/// The override name in descriptors: `o<index as written>`.
pub fn override_name(index: usize) -> String {
    format!("o{index}")
}

/// The rate-limit filters of the proxy's inbound HTTP chains on `port`.
pub(super) fn quota_filters(
    snapshot: &MeshSnapshot,
    view: &ProxyView,
    port: u16,
) -> Vec<HttpFilter> {
    snapshot
        .quotas
        .iter()
        .filter(|q| {
            snapshot
                .services
                .get(&q.host)
                .is_some_and(|s| serves(s, q.port, view, port))
        })
        .map(|q| match q.scope {
            QuotaScope::Local => local_filter(q),
            QuotaScope::Global => global_filter(q),
        })
        .collect()
}

/// Whether the workload of `view`, on its `listener_port`, is an instance
/// of `service` (on `service_port`, or any HTTP port).
fn serves(
    service: &Service,
    service_port: Option<u16>,
    view: &ProxyView,
    listener_port: u16,
) -> bool {
    if service.namespace != view.namespace {
        return false;
    }
    let ports: Vec<_> = service
        .ports
        .iter()
        .filter(|p| p.protocol.is_http() && service_port.is_none_or(|n| n == p.number))
        .collect();
    service.endpoints.iter().any(|e| {
        let own_labels: Vec<_> = e
            .labels
            .iter()
            .filter(|(k, _)| !k.starts_with("security.istio.io/"))
            .collect();
        let same_workload = (!own_labels.is_empty()
            && own_labels
                .iter()
                .all(|(k, v)| view.labels.get(*k) == Some(v)))
            || (e.service_account.is_some() && e.service_account == view.service_account);
        same_workload && ports.iter().any(|p| e.port_for(p) == listener_port)
    })
}

/// One descriptor's entries and the actions that produce them, per quota:
/// the overrides in precedence order, then the default.
fn descriptors(q: &Quota) -> Vec<(Option<usize>, Vec<Action>)> {
    let ranked = q.ranked();
    let base = || {
        let mut actions = vec![action(ActionSpecifier::GenericKey(GenericKey {
            descriptor_key: KEY_QUOTA.to_string(),
            descriptor_value: q.key(),
            ..Default::default()
        }))];
        if let Some(prefix) = &q.path_prefix {
            actions.push(header_match(
                KEY_PATH,
                "prefix",
                vec![string_header(":path", MatchPattern::Prefix(prefix.clone()))],
                true,
            ));
        }
        actions
    };
    let not = |j: usize| {
        header_match(
            KEY_NOT,
            &override_name(j),
            caller_headers(&q.overrides[j].caller),
            false,
        )
    };
    let mut out = Vec::new();
    for (rank, &i) in ranked.iter().enumerate() {
        let mut actions = base();
        actions.push(header_match(
            KEY_OVERRIDE,
            &override_name(i),
            caller_headers(&q.overrides[i].caller),
            true,
        ));
        actions.extend(ranked[..rank].iter().map(|&j| not(j)));
        out.push((Some(i), actions));
    }
    let mut actions = base();
    actions.extend(ranked.iter().map(|&j| not(j)));
    out.push((None, actions));
    out
}

/// The entries Envoy generates from `actions` when they all apply.
fn entries(actions: &[Action]) -> Vec<Entry> {
    actions
        .iter()
        .filter_map(|a| match &a.action_specifier {
            Some(ActionSpecifier::GenericKey(g)) => Some(Entry {
                key: g.descriptor_key.clone(),
                value: g.descriptor_value.clone(),
            }),
            Some(ActionSpecifier::HeaderValueMatch(h)) => Some(Entry {
                key: h.descriptor_key.clone(),
                value: h.descriptor_value.clone(),
            }),
            _ => None,
        })
        .collect()
}

/// Headers that all match exactly when a request comes from the callers
/// `m` selects.
fn caller_headers(m: &CallerMatch) -> Vec<HeaderMatcher> {
    let mut headers = Vec::new();
    match (&m.principal, &m.namespace) {
        (Some(p), _) => headers.push(string_header(XFCC, MatchPattern::Exact(format!("URI={p}")))),
        (None, Some(ns)) => headers.push(string_header(
            XFCC,
            MatchPattern::Contains(format!("/ns/{ns}/sa/")),
        )),
        (None, None) => headers.push(HeaderMatcher {
            name: XFCC.to_string(),
            header_match_specifier: Some(HeaderMatchSpecifier::PresentMatch(true)),
            ..Default::default()
        }),
    }
    if let (Some(_), Some(ns)) = (&m.principal, &m.namespace) {
        headers.push(string_header(
            XFCC,
            MatchPattern::Contains(format!("/ns/{ns}/sa/")),
        ));
    }
    for (k, v) in &m.labels {
        let label = format!("{}={}", regex_escape(k), regex_escape(v));
        headers.push(string_header(
            SOURCE_HEADER,
            MatchPattern::SafeRegex(RegexMatcher {
                regex: format!("(.*;)?{label}(;.*)?"),
                ..Default::default()
            }),
        ));
    }
    headers
}

fn regex_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn string_header(name: &str, pattern: MatchPattern) -> HeaderMatcher {
    HeaderMatcher {
        name: name.to_string(),
        header_match_specifier: Some(HeaderMatchSpecifier::StringMatch(StringMatcher {
            match_pattern: Some(pattern),
            ignore_case: false,
        })),
        ..Default::default()
    }
}

fn header_match(key: &str, value: &str, headers: Vec<HeaderMatcher>, expect: bool) -> Action {
    action(ActionSpecifier::HeaderValueMatch(HeaderValueMatch {
        descriptor_key: key.to_string(),
        descriptor_value: value.to_string(),
        expect_match: Some(BoolValue { value: expect }),
        headers,
        ..Default::default()
    }))
}

fn action(specifier: ActionSpecifier) -> Action {
    Action {
        action_specifier: Some(specifier),
    }
}

fn full_percent() -> Option<RuntimeFractionalPercent> {
    Some(RuntimeFractionalPercent {
        default_value: Some(FractionalPercent {
            numerator: 100,
            denominator: 0,
        }),
        runtime_key: String::new(),
    })
}

fn token_bucket(max_amount: u32, window: std::time::Duration) -> TokenBucket {
    TokenBucket {
        max_tokens: max_amount,
        tokens_per_fill: Some(UInt32Value { value: max_amount }),
        fill_interval: Some(pb_duration(window)),
    }
}

fn stat_prefix(q: &Quota) -> String {
    format!("quota_{}_{}", q.id.namespace, q.id.name)
}

fn local_filter(q: &Quota) -> HttpFilter {
    let descriptors = descriptors(q);
    let config = LocalRateLimit {
        stat_prefix: stat_prefix(q),
        // Requests outside the destination (other paths) match no
        // descriptor and take this bucket, which never runs dry.
        token_bucket: Some(token_bucket(u32::MAX, std::time::Duration::from_secs(1))),
        filter_enabled: full_percent(),
        filter_enforced: full_percent(),
        always_consume_default_token_bucket: Some(BoolValue { value: false }),
        enable_x_ratelimit_headers: XRateLimitHeadersRfcVersion::DraftVersion03 as i32,
        descriptors: descriptors
            .iter()
            .map(|(index, actions)| {
                let amount = q.amount(*index);
                LocalRateLimitDescriptor {
                    entries: entries(actions),
                    token_bucket: Some(token_bucket(amount.max_amount, amount.valid_duration)),
                    ..Default::default()
                }
            })
            .collect(),
        rate_limits: rate_limits(descriptors),
        ..Default::default()
    };
    filter(LOCAL_FILTER, pack_any(config))
}

fn global_filter(q: &Quota) -> HttpFilter {
    let config = RateLimitFilter {
        domain: QUOTA_DOMAIN.to_string(),
        failure_mode_deny: q.failure_mode == weft_model::FailureMode::Closed,
        status_on_error: Some(HttpStatus {
            code: STATUS_ON_ERROR as i32,
        }),
        timeout: Some(pb_duration(std::time::Duration::from_secs(1))),
        enable_x_ratelimit_headers: XRateLimitHeadersRfcVersion::DraftVersion03 as i32,
        rate_limit_service: Some(RateLimitServiceConfig {
            grpc_service: Some(GrpcService {
                target_specifier: Some(TargetSpecifier::EnvoyGrpc(EnvoyGrpc {
                    cluster_name: QUOTA_SERVICE_CLUSTER.to_string(),
                    ..Default::default()
                })),
                ..Default::default()
            }),
            transport_api_version: 2, // V3
        }),
        stat_prefix: stat_prefix(q),
        rate_limits: rate_limits(descriptors(q)),
        ..Default::default()
    };
    filter(GLOBAL_FILTER, pack_any(config))
}

/// The rate limit actions that build each descriptor.
fn rate_limits(descriptors: Vec<(Option<usize>, Vec<Action>)>) -> Vec<RateLimit> {
    descriptors
        .into_iter()
        .map(|(_, actions)| RateLimit {
            actions,
            ..Default::default()
        })
        .collect()
}

fn filter(name: &str, config: weft_envoy_api::pb::google::protobuf::Any) -> HttpFilter {
    HttpFilter {
        name: name.to_string(),
        config_type: Some(http_filter::ConfigType::TypedConfig(config)),
        ..Default::default()
    }
}

/// A descriptor of a request as the quota service receives it, as its
/// entries' (key, value) pairs: the quota's key and the override index
/// (`None`: the default), or `None` when the descriptor is not a quota's.
pub fn parse_descriptor<'a>(
    entries: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Option<(String, Option<usize>)> {
    let mut quota = None;
    let mut index = None;
    for (key, value) in entries {
        match key {
            KEY_QUOTA => quota = Some(value.to_string()),
            KEY_OVERRIDE => index = value.strip_prefix('o')?.parse().ok(),
            _ => {}
        }
    }
    Some((quota?, index))
}

#[cfg(test)]
#[path = "quota_tests.rs"]
mod tests;
