//! The actions and settings of an HTTP rule: header rules, redirect,
//! rewrite, retries, fault injection, CORS, and `directResponse` bytes.

use std::collections::BTreeMap;

use weft_crds::{
    Abort as CrdFaultAbort, CorsPolicy as CrdCorsPolicy, Delay as CrdFaultDelay,
    HeaderOperations as CrdHeaderOperations, Headers as CrdHeaders, HttpBody, HttpDirectResponse,
    HttpFaultInjection, HttpRedirect, HttpRetry, HttpRewrite, Percent, RedirectPortSelection,
    UnmatchedPreflights,
};

use super::super::{Errors, port_number};
use super::{is_header_name, string_match};
use weft_model::{
    AbortError, Body, CorsPolicy, DirectResponse, Fault, FaultAbort, FaultDelay, HeaderOperations,
    HeaderRules, MAX_DIRECT_RESPONSE_BODY_BYTES, Redirect, RedirectPort, RetryPolicy, Rewrite,
    StringMatch,
};

/// The retry conditions Envoy knows (`x-envoy-retry-on` and gRPC ones).
const RETRY_CONDITIONS: &[&str] = &[
    "5xx",
    "gateway-error",
    "reset",
    "reset-before-request",
    "connect-failure",
    "envoy-ratelimited",
    "retriable-4xx",
    "refused-stream",
    "retriable-status-codes",
    "retriable-headers",
    "http3-post-connect-failure",
    "cancelled",
    "deadline-exceeded",
    "internal",
    "resource-exhausted",
    "unavailable",
];

/// gRPC status names, by code.
const GRPC_STATUSES: &[&str] = &[
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
];

/// The redirect codes Envoy can send.
const REDIRECT_CODES: &[u16] = &[301, 302, 303, 307, 308];

pub(super) fn header_rules(
    path: &str,
    headers: Option<&CrdHeaders>,
    errors: &mut Errors,
) -> HeaderRules {
    let Some(headers) = headers else {
        return HeaderRules::default();
    };
    HeaderRules {
        request: header_operations(
            &format!("{path}.request"),
            headers.request.as_ref(),
            true,
            errors,
        ),
        response: header_operations(
            &format!("{path}.response"),
            headers.response.as_ref(),
            false,
            errors,
        ),
    }
}

fn header_operations(
    path: &str,
    ops: Option<&CrdHeaderOperations>,
    request: bool,
    errors: &mut Errors,
) -> HeaderOperations {
    let Some(ops) = ops else {
        return HeaderOperations::default();
    };
    for (kind, values) in [("set", &ops.set), ("add", &ops.add)] {
        for (name, value) in values {
            if value.bytes().any(|b| matches!(b, b'\r' | b'\n' | 0)) {
                errors.push(
                    format!("{path}.{kind}.{name}"),
                    "a header value cannot contain line breaks or NUL",
                );
            }
        }
    }
    let mut check = |field: String, name: &str| {
        let lower = name.to_ascii_lowercase();
        if !is_header_name(name) {
            errors.push(field, format!("{name:?} is not a valid HTTP header name"));
        } else if request && lower == "host" {
            errors.push(
                field,
                "the Host header cannot be changed here; use rewrite.authority",
            );
        }
        lower
    };
    let mut set = BTreeMap::new();
    for (name, value) in &ops.set {
        set.insert(check(format!("{path}.set.{name}"), name), value.clone());
    }
    let mut add = BTreeMap::new();
    for (name, value) in &ops.add {
        add.insert(check(format!("{path}.add.{name}"), name), value.clone());
    }
    let mut remove: Vec<String> = ops
        .remove
        .iter()
        .enumerate()
        .map(|(i, name)| check(format!("{path}.remove[{i}]"), name))
        .collect();
    remove.sort();
    remove.dedup();
    HeaderOperations { set, add, remove }
}

pub(super) fn redirect(path: &str, r: &HttpRedirect, errors: &mut Errors) -> Option<Redirect> {
    let code = match r.redirect_code {
        None | Some(0) => 301,
        Some(c) => match u16::try_from(c).ok().filter(|c| REDIRECT_CODES.contains(c)) {
            Some(c) => c,
            None => {
                errors.push(
                    format!("{path}.redirectCode"),
                    format!("{c} is not a redirect code Envoy can send (301, 302, 303, 307, 308)"),
                );
                return None;
            }
        },
    };
    let port = match (r.port, r.derive_port) {
        (Some(_), Some(_)) => {
            errors.push(path, "set port or derivePort, not both");
            return None;
        }
        (Some(p), None) => RedirectPort::Fixed(port_number(&format!("{path}.port"), p, errors)?),
        (None, Some(RedirectPortSelection::FromProtocolDefault)) => {
            RedirectPort::FromProtocolDefault
        }
        (None, Some(RedirectPortSelection::FromRequestPort)) => RedirectPort::FromRequestPort,
        (None, None) => RedirectPort::Unset,
    };
    if let Some(uri) = &r.uri
        && !uri.starts_with('/')
    {
        errors.push(format!("{path}.uri"), "must be a path starting with /");
    }
    if let Some(scheme) = &r.scheme
        && !matches!(scheme.as_str(), "http" | "https")
    {
        errors.push(format!("{path}.scheme"), "must be http or https");
    }
    Some(Redirect {
        uri: r.uri.clone().filter(|u| !u.is_empty()),
        authority: r.authority.clone().filter(|a| !a.is_empty()),
        port,
        scheme: r.scheme.clone().filter(|s| !s.is_empty()),
        code,
    })
}

pub(super) fn rewrite(path: &str, r: &HttpRewrite, errors: &mut Errors) -> Option<Rewrite> {
    let uri_regex = match &r.uri_regex_rewrite {
        None => None,
        Some(rr) => {
            let field = format!("{path}.uriRegexRewrite");
            let pattern = rr.pattern.clone().unwrap_or_default();
            if pattern.is_empty() {
                errors.push(format!("{field}.match"), "a regular expression is required");
                return None;
            }
            if let Err(err) = regex::Regex::new(&pattern) {
                errors.push(
                    format!("{field}.match"),
                    format!("invalid regular expression: {err}"),
                );
                return None;
            }
            Some((pattern, rr.rewrite.clone().unwrap_or_default()))
        }
    };
    let uri = r.uri.clone().filter(|u| !u.is_empty());
    if uri.is_some() && uri_regex.is_some() {
        errors.push(path, "set uri or uriRegexRewrite, not both");
        return None;
    }
    Some(Rewrite {
        uri,
        authority: r.authority.clone().filter(|a| !a.is_empty()),
        uri_regex,
    })
}

pub(super) fn retry_policy(path: &str, retry: &HttpRetry, errors: &mut Errors) -> RetryPolicy {
    if retry.attempts < 0 {
        errors.push(format!("{path}.attempts"), "attempts must not be negative");
    }
    let retry_on: Vec<String> = retry
        .retry_on
        .as_deref()
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(str::to_string)
        .collect();
    for condition in &retry_on {
        let known = RETRY_CONDITIONS.contains(&condition.as_str())
            || condition
                .parse::<u16>()
                .is_ok_and(|c| (100..600).contains(&c));
        if !known {
            errors.push(
                format!("{path}.retryOn"),
                format!(
                    "unknown retry condition {condition:?}; use HTTP status codes or one of {}",
                    RETRY_CONDITIONS.join(", ")
                ),
            );
        }
    }
    RetryPolicy {
        attempts: u32::try_from(retry.attempts).unwrap_or(0),
        per_try_timeout: retry.per_try_timeout.map(|t| t.0).filter(|t| !t.is_zero()),
        retry_on,
        retry_remote_localities: retry.retry_remote_localities.unwrap_or(false),
        ignore_previous_hosts: retry.retry_ignore_previous_hosts.unwrap_or(true),
        backoff: retry.backoff.map(|t| t.0).filter(|t| !t.is_zero()),
    }
}

/// A percentage in [0, 100]; unset is 100 (Istio).
pub(super) fn percent(path: &str, p: Option<Percent>, errors: &mut Errors) -> f64 {
    let Some(p) = p else { return 100.0 };
    if !(0.0..=100.0).contains(&p.value) {
        errors.push(
            format!("{path}.value"),
            format!("{} is not a percentage (0-100)", p.value),
        );
        return 0.0;
    }
    p.value
}

/// A percentage set as a `Percent` at `field`, or in its deprecated whole
/// number form at `deprecated_field`; the first wins, unset is 100.
pub(super) fn percent_or_deprecated(
    field: &str,
    value: Option<Percent>,
    deprecated_field: &str,
    deprecated: Option<f64>,
    errors: &mut Errors,
) -> f64 {
    match (value, deprecated) {
        (Some(p), _) => percent(field, Some(p), errors),
        (None, Some(value)) => percent(deprecated_field, Some(Percent { value }), errors),
        (None, None) => 100.0,
    }
}

pub(super) fn fault(path: &str, f: &HttpFaultInjection, errors: &mut Errors) -> Fault {
    if f.delay.is_none() && f.abort.is_none() {
        errors.push(path, "set delay, abort or both");
    }
    let delay = f
        .delay
        .as_ref()
        .and_then(|d| fault_delay(&format!("{path}.delay"), d, errors));
    let abort = f
        .abort
        .as_ref()
        .and_then(|a| fault_abort(&format!("{path}.abort"), a, errors));
    Fault { delay, abort }
}

fn fault_delay(path: &str, d: &CrdFaultDelay, errors: &mut Errors) -> Option<FaultDelay> {
    if d.exponential_delay.is_some() {
        errors.unsupported_because(
            format!("{path}.exponentialDelay"),
            "not supported by Weft yet: Istio does not translate it either (Envoy's fault filter has fixed delays only); use fixedDelay",
        );
    }
    let percentage = percent_or_deprecated(
        &format!("{path}.percentage"),
        d.percentage,
        &format!("{path}.percent"),
        d.percent.map(f64::from),
        errors,
    );
    let Some(fixed) = d.fixed_delay.map(|d| d.0) else {
        errors.push(format!("{path}.fixedDelay"), "a fixedDelay is required");
        return None;
    };
    if fixed.is_zero() {
        errors.push(format!("{path}.fixedDelay"), "must be more than 0s");
    }
    Some(FaultDelay {
        fixed_delay: fixed,
        percentage,
    })
}

fn fault_abort(path: &str, a: &CrdFaultAbort, errors: &mut Errors) -> Option<FaultAbort> {
    let percentage = percent(&format!("{path}.percentage"), a.percentage, errors);
    let error = match (a.http_status, &a.grpc_status, &a.http2_error) {
        (Some(s), None, None) => match u16::try_from(s).ok().filter(|s| (200..600).contains(s)) {
            Some(s) => AbortError::HttpStatus(s),
            None => {
                errors.push(
                    format!("{path}.httpStatus"),
                    format!("{s} is not an HTTP status (200-599)"),
                );
                return None;
            }
        },
        (None, Some(name), None) => AbortError::GrpcStatus(grpc_status(path, name, errors)?),
        (None, None, Some(_)) => {
            errors.unsupported_because(
                format!("{path}.http2Error"),
                "not supported by Weft yet: Envoy's fault filter cannot abort with an HTTP/2 error (Istio does not translate it either); use httpStatus or grpcStatus",
            );
            return None;
        }
        (None, None, None) => {
            errors.push(
                path,
                "one of httpStatus, grpcStatus or http2Error is required",
            );
            return None;
        }
        _ => {
            errors.push(path, "set only one of httpStatus, grpcStatus, http2Error");
            return None;
        }
    };
    Some(FaultAbort { error, percentage })
}

/// The code of a gRPC status name.
fn grpc_status(path: &str, name: &str, errors: &mut Errors) -> Option<u32> {
    let Some(code) = GRPC_STATUSES.iter().position(|g| *g == name) else {
        errors.push(
            format!("{path}.grpcStatus"),
            format!(
                "unknown gRPC status {name:?}; use one of {}",
                GRPC_STATUSES.join(", ")
            ),
        );
        return None;
    };
    Some(u32::try_from(code).unwrap_or(2))
}

pub(super) fn cors(path: &str, c: &CrdCorsPolicy, errors: &mut Errors) -> CorsPolicy {
    let mut allow_origins: Vec<StringMatch> = c
        .allow_origin
        .iter()
        .map(|o| StringMatch::Exact(o.clone()))
        .collect();
    for (i, o) in c.allow_origins.iter().enumerate() {
        if let Some(m) = string_match(&format!("{path}.allowOrigins[{i}]"), o, false, errors) {
            allow_origins.push(m);
        }
    }
    for (i, h) in c.allow_headers.iter().chain(&c.expose_headers).enumerate() {
        if !is_header_name(h) && h != "*" {
            let field = if i < c.allow_headers.len() {
                format!("{path}.allowHeaders[{i}]")
            } else {
                format!("{path}.exposeHeaders[{}]", i - c.allow_headers.len())
            };
            errors.push(field, format!("{h:?} is not a valid HTTP header name"));
        }
    }
    CorsPolicy {
        allow_origins,
        allow_methods: c.allow_methods.clone(),
        allow_headers: c.allow_headers.clone(),
        expose_headers: c.expose_headers.clone(),
        max_age: c.max_age.map(|d| d.0),
        allow_credentials: c.allow_credentials,
        forward_unmatched_preflights: !matches!(
            c.unmatched_preflights,
            Some(UnmatchedPreflights::Ignore)
        ),
    }
}

pub(super) fn direct_response(
    path: &str,
    d: &HttpDirectResponse,
    errors: &mut Errors,
) -> Option<DirectResponse> {
    let status = u16::try_from(d.status)
        .ok()
        .filter(|s| (200..=599).contains(s));
    if status.is_none() {
        errors.push(
            format!("{path}.status"),
            format!("{} is not an HTTP status (200-599)", d.status),
        );
    }
    let body = d
        .body
        .as_ref()
        .and_then(|b| direct_response_body(&format!("{path}.body"), b, errors));
    let size = body.as_ref().map_or(0, |b| match b {
        Body::Text(t) => t.len(),
        Body::Bytes(b) => b.len(),
    });
    if u32::try_from(size).map_or(true, |s| s > MAX_DIRECT_RESPONSE_BODY_BYTES) {
        errors.push(
            format!("{path}.body"),
            format!(
                "the body has {size} bytes; at most {MAX_DIRECT_RESPONSE_BODY_BYTES} (1 MiB) are allowed"
            ),
        );
    }
    Some(DirectResponse {
        status: status?,
        body,
    })
}

fn direct_response_body(path: &str, b: &HttpBody, errors: &mut Errors) -> Option<Body> {
    match (&b.string, &b.bytes) {
        (Some(_), Some(_)) => {
            errors.push(path, "set string or bytes, not both");
            None
        }
        (Some(s), None) => Some(Body::Text(s.clone())),
        (None, Some(encoded)) => match decode_base64(encoded) {
            Some(bytes) => Some(Body::Bytes(bytes)),
            None => {
                errors.push(format!("{path}.bytes"), "not valid base64");
                None
            }
        },
        (None, None) => None,
    }
}

/// Standard base64 (with or without padding), as Kubernetes encodes bytes.
fn decode_base64(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let mut buffer = 0u32;
    let mut bits = 0u32;
    for c in text.trim_end_matches('=').bytes() {
        let value = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        };
        buffer = (buffer << 6) | u32::from(value);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push(u8::try_from((buffer >> bits) & 0xff).ok()?);
        }
    }
    Some(out)
}

#[cfg(test)]
mod base64_tests {
    #[test]
    fn decodes_standard_base64() {
        assert_eq!(
            super::decode_base64("aGVsbG8=").as_deref(),
            Some(&b"hello"[..])
        );
        assert_eq!(super::decode_base64("aGk").as_deref(), Some(&b"hi"[..]));
        assert_eq!(super::decode_base64("a$"), None);
    }
}
