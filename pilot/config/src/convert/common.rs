//! Checks that several kinds or rules share: `exportTo` lists,
//! `[namespace/]host` selectors, selector labels, and the weights of route
//! destinations.

use std::collections::BTreeMap;

use super::Errors;
use weft_model::{HostSelector, NamespaceSelector, RouteDestination};

/// `exportTo` entries: `*`, `.`, `~` or a namespace name.
pub(super) fn export_to(path: &str, export_to: &[String], errors: &mut Errors) {
    for (i, e) in export_to.iter().enumerate() {
        let valid = matches!(e.as_str(), "*" | "." | "~")
            || (!e.is_empty()
                && e.len() <= 63
                && e.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'));
        if !valid {
            errors.push(
                format!("{path}[{i}]"),
                format!("{e:?} is not \"*\", \".\", \"~\" or a namespace name"),
            );
        }
    }
}

/// Parses `[namespace/]dnsName`: `*/` (or none) any namespace, `./` the
/// resource's own, `~/` none (Sidecar only).
pub(super) fn host_selector(
    path: &str,
    text: &str,
    own_namespace: &str,
    allow_nowhere: bool,
    errors: &mut Errors,
) -> Option<HostSelector> {
    let (namespace, host) = match text.split_once('/') {
        None => (NamespaceSelector::Any, text),
        Some(("*", host)) => (NamespaceSelector::Any, host),
        Some((".", host)) => (NamespaceSelector::Named(own_namespace.to_string()), host),
        Some(("~", host)) if allow_nowhere => (NamespaceSelector::Nowhere, host),
        Some((ns, host)) if is_dns_label(ns) => (NamespaceSelector::Named(ns.to_string()), host),
        Some((ns, _)) => {
            errors.push(
                path,
                format!(
                    "{ns:?} is not a namespace; use a namespace name, `*` or `.`{}",
                    if allow_nowhere { " or `~`" } else { "" }
                ),
            );
            return None;
        }
    };
    let host = host.to_ascii_lowercase();
    let name = host.strip_prefix("*.").unwrap_or(&host);
    let valid = host == "*"
        || (!name.is_empty()
            && name.split('.').all(|l| {
                !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            }));
    if !valid {
        errors.push(
            path,
            format!("{host:?} is not a host: use a DNS name, `*.suffix` or `*`"),
        );
        return None;
    }
    Some(HostSelector { namespace, host })
}

/// A namespace name (an RFC 1123 label).
pub(crate) fn is_dns_label(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 63
        && text
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// A selector's labels (`None` when the selector is not set). An empty
/// selector is an error: leaving out `selector` (the field's name) selects
/// the whole namespace.
pub(super) fn selector_labels(
    path: &str,
    selector: &str,
    labels: Option<&BTreeMap<String, String>>,
    errors: &mut Errors,
) -> Option<BTreeMap<String, String>> {
    if labels.is_some_and(BTreeMap::is_empty) {
        errors.push(
            path,
            format!(
                "at least one label is required; omit {selector} to apply to the whole namespace"
            ),
        );
    }
    labels.cloned()
}

/// A route destination's weight; a negative one is an error (and 0).
pub(super) fn route_weight(field: &str, weight: i32, errors: &mut Errors) -> u32 {
    if weight < 0 {
        errors.push(
            format!("{field}.weight"),
            format!("weight {weight} is negative"),
        );
    }
    u32::try_from(weight).unwrap_or(0)
}

/// Istio's rules for the weights of a rule's destinations: a single
/// destination without a weight takes all traffic; otherwise they must sum
/// to 100, checked when `complete` (every destination converted).
pub(super) fn settle_weights(
    path: &str,
    destinations: &mut [RouteDestination],
    complete: bool,
    errors: &mut Errors,
) {
    if let [only] = destinations
        && only.weight == 0
    {
        only.weight = 100;
    }
    let total: u64 = destinations.iter().map(|d| u64::from(d.weight)).sum();
    if total != 100 && complete {
        errors.push(
            format!("{path}.route"),
            format!("destination weights sum to {total}; they must sum to 100"),
        );
    }
}
