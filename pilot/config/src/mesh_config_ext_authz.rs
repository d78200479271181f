//! `envoyExtAuthzHttp` / `envoyExtAuthzGrpc` extension providers: the
//! external authorizers CUSTOM AuthorizationPolicies name.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;
use weft_crds::IstioDuration;
use weft_model::{ExtAuthz, ExtAuthzRequestBody};

use super::{invalid, parse_or_push, provider_service, refuse_unknown_fields};
use crate::FieldError;

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawExtAuthz {
    #[serde(default)]
    service: Option<String>,
    #[serde(default)]
    port: Option<u32>,
    #[serde(default)]
    timeout: Option<IstioDuration>,
    #[serde(default)]
    fail_open: bool,
    #[serde(default)]
    status_on_error: Option<String>,
    #[serde(default)]
    path_prefix: Option<String>,
    #[serde(default)]
    include_request_headers_in_check: Vec<String>,
    #[serde(default)]
    include_headers_in_check: Vec<String>,
    #[serde(default)]
    include_additional_headers_in_check: BTreeMap<String, String>,
    #[serde(default)]
    headers_to_upstream_on_allow: Vec<String>,
    #[serde(default)]
    headers_to_downstream_on_deny: Vec<String>,
    #[serde(default)]
    headers_to_downstream_on_allow: Vec<String>,
    #[serde(default)]
    include_request_body_in_check: Option<RawRequestBody>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawRequestBody {
    #[serde(default)]
    max_request_bytes: u32,
    #[serde(default)]
    allow_partial_message: bool,
    #[serde(default)]
    pack_as_bytes: bool,
}

/// `envoyExtAuthzHttp` (`http`) or `envoyExtAuthzGrpc`, with Istio's
/// checks: a port, a known `statusOnError`, a `pathPrefix` starting with
/// `/`, no lone `*` among the header names.
pub(super) fn ext_authz(
    field: &str,
    config: &Value,
    http: bool,
    errors: &mut Vec<FieldError>,
) -> Option<ExtAuthz> {
    const COMMON: [&str; 6] = [
        "service",
        "port",
        "timeout",
        "failOpen",
        "statusOnError",
        "includeRequestBodyInCheck",
    ];
    const HTTP_ONLY: [&str; 7] = [
        "pathPrefix",
        "includeRequestHeadersInCheck",
        "includeHeadersInCheck",
        "includeAdditionalHeadersInCheck",
        "headersToUpstreamOnAllow",
        "headersToDownstreamOnDeny",
        "headersToDownstreamOnAllow",
    ];
    let known: Vec<&str> = if http {
        COMMON.iter().chain(&HTTP_ONLY).copied().collect()
    } else {
        COMMON.to_vec()
    };
    refuse_unknown_fields(field, config, &known, errors);
    let raw: RawExtAuthz = parse_or_push(field, config, errors)?;
    let mut ok = true;
    let status_on_error = match raw.status_on_error.as_deref().filter(|s| !s.is_empty()) {
        None => None,
        Some(text) => match text.parse::<u16>() {
            Ok(code @ 100..=599) => Some(code),
            _ => {
                errors.push(invalid(
                    format!("{field}.statusOnError"),
                    format!("{text:?} is not an HTTP status code (100-599)"),
                ));
                ok = false;
                None
            }
        },
    };
    let path_prefix = raw.path_prefix.unwrap_or_default();
    if !path_prefix.is_empty() && !path_prefix.starts_with('/') {
        errors.push(invalid(
            format!("{field}.pathPrefix"),
            format!("{path_prefix:?} must begin with `/`"),
        ));
        ok = false;
    }
    let include_request_headers = if raw.include_request_headers_in_check.is_empty() {
        raw.include_headers_in_check
    } else {
        raw.include_request_headers_in_check
    };
    for (name, list) in [
        ("includeRequestHeadersInCheck", &include_request_headers),
        (
            "headersToUpstreamOnAllow",
            &raw.headers_to_upstream_on_allow,
        ),
        (
            "headersToDownstreamOnDeny",
            &raw.headers_to_downstream_on_deny,
        ),
        (
            "headersToDownstreamOnAllow",
            &raw.headers_to_downstream_on_allow,
        ),
    ] {
        for (i, header) in list.iter().enumerate() {
            if header == "*" || header.is_empty() {
                errors.push(invalid(
                    format!("{field}.{name}[{i}]"),
                    "a lone `*` (or nothing) is not a header name; use a prefix* or *suffix",
                ));
                ok = false;
            }
        }
    }
    let timeout = match raw.timeout {
        Some(t) if t.0.is_zero() => {
            errors.push(invalid(
                format!("{field}.timeout"),
                "must be longer than 0s",
            ));
            ok = false;
            std::time::Duration::ZERO
        }
        Some(t) => t.0,
        None => std::time::Duration::from_secs(600),
    };
    let service = provider_service(field, raw.service.as_deref(), raw.port, errors)?;
    ok.then(|| ExtAuthz {
        service,
        timeout,
        fail_open: raw.fail_open,
        status_on_error,
        path_prefix,
        include_request_headers,
        include_additional_headers: raw.include_additional_headers_in_check,
        headers_to_upstream_on_allow: raw.headers_to_upstream_on_allow,
        headers_to_downstream_on_deny: raw.headers_to_downstream_on_deny,
        headers_to_downstream_on_allow: raw.headers_to_downstream_on_allow,
        request_body: raw
            .include_request_body_in_check
            .map(|b| ExtAuthzRequestBody {
                max_request_bytes: b.max_request_bytes,
                allow_partial_message: b.allow_partial_message,
                pack_as_bytes: b.pack_as_bytes,
            }),
    })
}
