//! Istio's HTTP match conditions -> Envoy route matches.

use weft_envoy_api::pb::envoy::config::route::v3::{
    HeaderMatcher, QueryParameterMatcher, RouteMatch as PbRouteMatch,
    header_matcher::HeaderMatchSpecifier, query_parameter_matcher::QueryParameterMatchSpecifier,
    route_match::PathSpecifier,
};
use weft_envoy_api::pb::envoy::r#type::matcher::v3::{
    RegexMatcher, StringMatcher, string_matcher::MatchPattern,
};
use weft_envoy_api::pb::google::protobuf::BoolValue;

use weft_model::{RouteMatch, StringMatch};

pub(super) fn prefix_match(prefix: &str) -> PbRouteMatch {
    PbRouteMatch {
        path_specifier: Some(PathSpecifier::Prefix(prefix.to_string())),
        ..Default::default()
    }
}

/// The request conditions of `m`. Source and gateway conditions are not
/// here: they decide whether the route is built for a proxy at all.
pub(super) fn build_match(m: &RouteMatch) -> PbRouteMatch {
    let path_specifier = match &m.uri {
        None | Some(StringMatch::Present) => PathSpecifier::Prefix("/".to_string()),
        Some(StringMatch::Exact(p)) => PathSpecifier::Path(p.clone()),
        Some(StringMatch::Prefix(p)) => PathSpecifier::Prefix(p.clone()),
        Some(StringMatch::Regex(r)) => PathSpecifier::SafeRegex(regex_matcher(r)),
    };
    let mut headers: Vec<HeaderMatcher> = m
        .headers
        .iter()
        .map(|(name, value)| header_matcher(name, value, false))
        .collect();
    let pseudo = [
        (":method", &m.method),
        (":authority", &m.authority),
        (":scheme", &m.scheme),
    ];
    for (name, value) in pseudo {
        if let Some(value) = value {
            headers.push(header_matcher(name, value, false));
        }
    }
    headers.extend(
        m.without_headers
            .iter()
            .map(|(name, value)| header_matcher(name, value, true)),
    );
    let query_parameters = m
        .query_params
        .iter()
        .map(|(name, value)| QueryParameterMatcher {
            name: name.clone(),
            query_parameter_match_specifier: Some(match value {
                StringMatch::Present => QueryParameterMatchSpecifier::PresentMatch(true),
                other => QueryParameterMatchSpecifier::StringMatch(string_matcher(other)),
            }),
        })
        .collect();
    PbRouteMatch {
        path_specifier: Some(path_specifier),
        case_sensitive: m.ignore_uri_case.then_some(BoolValue { value: false }),
        headers,
        query_parameters,
        ..Default::default()
    }
}

/// `invert`: the header must not match (absent counts as not matching).
fn header_matcher(name: &str, value: &StringMatch, invert: bool) -> HeaderMatcher {
    let specifier = match value {
        // Envoy refuses an empty prefix; Istio means "present".
        StringMatch::Prefix(p) if p.is_empty() => HeaderMatchSpecifier::PresentMatch(true),
        StringMatch::Present => HeaderMatchSpecifier::PresentMatch(true),
        other => HeaderMatchSpecifier::StringMatch(string_matcher(other)),
    };
    HeaderMatcher {
        name: name.to_string(),
        header_match_specifier: Some(specifier),
        invert_match: invert,
        ..Default::default()
    }
}

pub(super) fn string_matcher(value: &StringMatch) -> StringMatcher {
    let pattern = match value {
        StringMatch::Exact(v) => MatchPattern::Exact(v.clone()),
        StringMatch::Prefix(v) => MatchPattern::Prefix(v.clone()),
        StringMatch::Regex(v) => MatchPattern::SafeRegex(regex_matcher(v)),
        // Any value: Envoy's `.*` regex.
        StringMatch::Present => MatchPattern::SafeRegex(regex_matcher(".*")),
    };
    StringMatcher {
        match_pattern: Some(pattern),
        ignore_case: false,
    }
}

pub(super) fn regex_matcher(regex: &str) -> RegexMatcher {
    RegexMatcher {
        regex: regex.to_string(),
        ..Default::default()
    }
}
