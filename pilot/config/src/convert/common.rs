//! Checks that several kinds or rules share: `exportTo` lists,
//! `[namespace/]host` selectors, selector labels and policy targets, the
//! weights of route destinations, header names and timeouts.

use std::collections::BTreeMap;
use std::time::Duration;

use weft_crds::{IstioDuration, PolicyTargetReference, WorkloadLabelSelector};

use super::Errors;
use weft_model::{HostSelector, NamespaceSelector, PolicyTarget, RouteDestination};

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

/// The API group of the Kubernetes Gateways `targetRefs` may name.
const GATEWAY_API_GROUP: &str = "gateway.networking.k8s.io";

/// Which workloads a policy (`kind`, e.g. "a Telemetry") of `namespace`
/// applies to: `selector`, or `targetRefs` (and the older `targetRef`)
/// naming Kubernetes Gateways of `namespace`; at most one of them.
pub(super) fn policy_target(
    kind: &str,
    namespace: &str,
    selector: Option<&WorkloadLabelSelector>,
    target_ref: Option<&PolicyTargetReference>,
    target_refs: &[PolicyTargetReference],
    errors: &mut Errors,
) -> PolicyTarget {
    let selector = selector_labels(
        "spec.selector.matchLabels",
        "selector",
        selector.map(|s| &s.match_labels),
        errors,
    );
    let targeted = target_ref.is_some() || !target_refs.is_empty();
    if selector.is_some() && targeted {
        errors.push(
            "spec.selector",
            "selector and targetRefs cannot both be set: select workloads by labels, or name Gateways",
        );
    }
    if target_ref.is_some() && !target_refs.is_empty() {
        errors.push(
            "spec.targetRef",
            "targetRef and targetRefs cannot both be set; move the target into targetRefs",
        );
    }
    let refs = target_ref
        .map(|r| ("spec.targetRef".to_string(), r))
        .into_iter()
        .chain(
            target_refs
                .iter()
                .enumerate()
                .map(|(i, r)| (format!("spec.targetRefs[{i}]"), r)),
        );
    let gateways = refs
        .filter_map(|(path, r)| target_gateway(kind, &path, namespace, r, errors))
        .collect();
    PolicyTarget { selector, gateways }
}

fn target_gateway(
    kind: &str,
    path: &str,
    namespace: &str,
    target: &PolicyTargetReference,
    errors: &mut Errors,
) -> Option<String> {
    let mut ok = true;
    if target.group != GATEWAY_API_GROUP || target.kind != "Gateway" {
        let (field, found) = if target.group != GATEWAY_API_GROUP {
            ("group", format!("group {:?}", target.group))
        } else {
            ("kind", format!("kind {:?}", target.kind))
        };
        errors.push(
            format!("{path}.{field}"),
            format!(
                "{found}: {kind} can target only Kubernetes Gateways (kind Gateway, group {GATEWAY_API_GROUP})"
            ),
        );
        ok = false;
    }
    if target.name.is_empty() {
        errors.push(format!("{path}.name"), "is required: the Gateway's name");
        ok = false;
    }
    if let Some(other) = target.namespace.as_deref().filter(|ns| !ns.is_empty())
        && other != namespace
    {
        errors.push(
            format!("{path}.namespace"),
            format!(
                "{other:?}: {kind} can target only Gateways of its own namespace ({namespace}); leave namespace out"
            ),
        );
        ok = false;
    }
    ok.then(|| target.name.clone())
}

/// RFC 7230 token characters.
pub(super) fn is_header_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// A duration of at least 1ms, as Istio requires for most timeouts.
pub(super) fn at_least_1ms(
    path: String,
    value: Option<IstioDuration>,
    errors: &mut Errors,
) -> Option<Duration> {
    let d = value?.0;
    if d < Duration::from_millis(1) {
        errors.push(path, format!("{d:?} is shorter than the minimum of 1ms"));
        return None;
    }
    Some(d)
}
