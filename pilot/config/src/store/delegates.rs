//! Delegation: a root VirtualService's `delegate` rule is replaced by the
//! delegate's rules, merged as Istio merges them (`mergeHTTPRoute`,
//! `hasConflict`). A delegate that is missing, has hosts or is not
//! exported to the root, and delegate rules whose match conflicts with the
//! root's, are reported.

use std::collections::{BTreeMap, BTreeSet};

use super::{ConfigError, Origin, unresolved};
use weft_model::{
    HttpRoute, MeshSnapshot, ResourceId, RouteMatch, StringMatch, VirtualService, is_exported,
};

/// Replaces the `delegate` rules of root VirtualServices with the
/// delegates' rules, merged as Istio merges them.
pub(super) fn resolve_delegates(
    snapshot: &mut MeshSnapshot,
    origins: &BTreeMap<ResourceId, Origin>,
    errors: &mut Vec<ConfigError>,
) {
    let referenced: BTreeSet<&ResourceId> = snapshot
        .virtual_services
        .iter()
        .flat_map(|vs| vs.http.iter().filter_map(|r| r.delegate.as_ref()))
        .collect();
    if referenced.is_empty() {
        return;
    }
    let delegates: BTreeMap<ResourceId, VirtualService> = snapshot
        .virtual_services
        .iter()
        .filter(|vs| referenced.contains(&vs.id))
        .map(|vs| (vs.id.clone(), vs.clone()))
        .collect();
    for root in snapshot.virtual_services.iter_mut() {
        if root.is_delegate() || root.http.iter().all(|r| r.delegate.is_none()) {
            continue;
        }
        let merged = root_rules(root, &delegates, origins, errors);
        root.http = merged;
    }
}

/// A root's rules with each `delegate` rule replaced by the delegate's
/// rules; a delegate that cannot be used is reported and routes nothing.
fn root_rules(
    root: &VirtualService,
    delegates: &BTreeMap<ResourceId, VirtualService>,
    origins: &BTreeMap<ResourceId, Origin>,
    errors: &mut Vec<ConfigError>,
) -> Vec<HttpRoute> {
    let mut merged = Vec::new();
    for (i, rule) in root.http.iter().enumerate() {
        let Some(target) = &rule.delegate else {
            merged.push(rule.clone());
            continue;
        };
        match usable_delegate(root, target, delegates) {
            Ok(delegate) => {
                merged.extend(merge_delegate(root, i, rule, delegate, origins, errors));
            }
            Err(message) => errors.push(unresolved(
                origins,
                &root.id,
                format!("spec.http[{i}].delegate"),
                message,
            )),
        }
    }
    merged
}

/// The delegate `target` of a rule of `root`, or why it cannot be used:
/// it must exist, have no hosts, and be exported to the root's namespace.
fn usable_delegate<'a>(
    root: &VirtualService,
    target: &ResourceId,
    delegates: &'a BTreeMap<ResourceId, VirtualService>,
) -> Result<&'a VirtualService, String> {
    match delegates.get(target) {
        None => Err(format!(
            "delegate {target} does not exist (or is not valid); this rule routes nothing"
        )),
        Some(d) if !d.is_delegate() => Err(format!(
            "{target} has hosts, so it is not a delegate; a delegate VirtualService has no hosts"
        )),
        Some(d) if !is_exported(d.export_to.as_slice(), &d.id.namespace, &root.id.namespace) => {
            Err(format!(
                "delegate {target} is not exported to namespace {} (its exportTo)",
                root.id.namespace
            ))
        }
        Some(d) => Ok(d),
    }
}

/// The delegate's rules merged with rule `i` of `root`; a rule whose
/// match conflicts with the root's is reported and left out.
fn merge_delegate(
    root: &VirtualService,
    i: usize,
    rule: &HttpRoute,
    delegate: &VirtualService,
    origins: &BTreeMap<ResourceId, Origin>,
    errors: &mut Vec<ConfigError>,
) -> Vec<HttpRoute> {
    let mut merged = Vec::new();
    for (j, sub) in delegate.http.iter().enumerate() {
        let Some(mut m) = merge_rule(rule, sub) else {
            errors.push(unresolved(
                origins,
                &delegate.id,
                format!("spec.http[{j}].match"),
                format!(
                    "conflicts with every match of {} spec.http[{i}], which delegates to it \
                     (a delegate's match must narrow its root's); this rule is not used",
                    root.id
                ),
            ));
            continue;
        };
        let answers_itself = m.redirect.is_some() || m.direct_response.is_some();
        if answers_itself && m.fault.is_some() && m.cors.is_some() {
            errors.push(unresolved(
                origins,
                &delegate.id,
                format!("spec.http[{j}]"),
                format!(
                    "with the fault and corsPolicy it inherits from {} spec.http[{i}], \
                     this rule answers itself with both, which Weft does not support yet; \
                     the fault is not applied",
                    root.id
                ),
            ));
            m.fault = None;
        }
        merged.push(m);
    }
    merged
}

/// Istio's `mergeHTTPRoute`: the delegate's rule, with the root's matches
/// merged in and the root's settings where the delegate has none. `None`
/// when the matches conflict.
fn merge_rule(root: &HttpRoute, sub: &HttpRoute) -> Option<HttpRoute> {
    let matches = merge_matches(&root.matches, &sub.matches)?;
    let mut out = sub.clone();
    out.matches = matches;
    out.name = match (&root.name, &sub.name) {
        (Some(r), Some(s)) => Some(format!("{r}-{s}")),
        (r, s) => s.clone().or_else(|| r.clone()),
    };
    if out.rewrite.is_none() {
        out.rewrite = root.rewrite.clone();
    }
    if out.direct_response.is_none() && out.destinations.is_empty() && out.redirect.is_none() {
        out.direct_response = root.direct_response.clone();
    }
    if out.timeout.is_none() {
        out.timeout = root.timeout;
    }
    if out.retries.is_none() {
        out.retries = root.retries.clone();
    }
    if out.fault.is_none() {
        out.fault = root.fault.clone();
    }
    if out.mirrors.is_empty() {
        out.mirrors = root.mirrors.clone();
    }
    if out.cors.is_none() {
        out.cors = root.cors.clone();
    }
    if out.headers.is_empty() {
        out.headers = root.headers.clone();
    }
    Some(out)
}

fn merge_matches(root: &[RouteMatch], sub: &[RouteMatch]) -> Option<Vec<RouteMatch>> {
    if root.is_empty() {
        return Some(sub.to_vec());
    }
    if sub.is_empty() {
        return Some(root.to_vec());
    }
    let mut out = Vec::new();
    for leaf in sub {
        let before = out.len();
        for r in root.iter().filter(|r| !match_conflict(r, leaf)) {
            out.push(merge_match(r, leaf));
        }
        if out.len() == before {
            return None;
        }
    }
    Some(out)
}

fn merge_pairs(
    root: &[(String, StringMatch)],
    leaf: &[(String, StringMatch)],
) -> Vec<(String, StringMatch)> {
    let mut map: BTreeMap<String, StringMatch> = root.iter().cloned().collect();
    map.extend(leaf.iter().cloned());
    map.into_iter().collect()
}

fn merge_match(root: &RouteMatch, leaf: &RouteMatch) -> RouteMatch {
    let mut out = leaf.clone();
    out.name = match (&root.name, &leaf.name) {
        (Some(r), Some(l)) => Some(format!("{r}-{l}")),
        (r, l) => l.clone().or_else(|| r.clone()),
    };
    out.uri = leaf.uri.clone().or_else(|| root.uri.clone());
    out.scheme = leaf.scheme.clone().or_else(|| root.scheme.clone());
    out.method = leaf.method.clone().or_else(|| root.method.clone());
    out.authority = leaf.authority.clone().or_else(|| root.authority.clone());
    out.headers = merge_pairs(&root.headers, &leaf.headers);
    out.without_headers = merge_pairs(&root.without_headers, &leaf.without_headers);
    out.query_params = merge_pairs(&root.query_params, &leaf.query_params);
    out.port = leaf.port.or(root.port);
    out.stat_prefix = leaf
        .stat_prefix
        .clone()
        .or_else(|| root.stat_prefix.clone());
    let mut labels = root.source_labels.clone();
    labels.extend(leaf.source_labels.clone());
    out.source_labels = labels;
    out.source_namespace = leaf
        .source_namespace
        .clone()
        .or_else(|| root.source_namespace.clone());
    if out.gateways.is_empty() {
        out.gateways = root.gateways.clone();
    }
    out
}

fn lookup<'a>(pairs: &'a [(String, StringMatch)], key: &str) -> Option<&'a StringMatch> {
    pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v)
}

/// Istio's `hasConflict`: whether `leaf` can not narrow `root`.
fn match_conflict(root: &RouteMatch, leaf: &RouteMatch) -> bool {
    let pairs = [
        (&root.uri, &leaf.uri),
        (&root.scheme, &leaf.scheme),
        (&root.method, &leaf.method),
        (&root.authority, &leaf.authority),
    ];
    if pairs
        .iter()
        .any(|(r, l)| string_conflict(r.as_ref(), l.as_ref()))
    {
        return true;
    }
    let maps = [
        (&root.headers, &leaf.headers),
        (&root.without_headers, &leaf.without_headers),
        (&root.query_params, &leaf.query_params),
    ];
    for (r, l) in maps {
        if l.iter()
            .any(|(k, v)| string_conflict(lookup(r, k), Some(v)))
        {
            return true;
        }
    }
    if root.ignore_uri_case != leaf.ignore_uri_case {
        return true;
    }
    if let (Some(r), Some(l)) = (root.port, leaf.port)
        && r != l
    {
        return true;
    }
    if let Some(ns) = &root.source_namespace
        && leaf.source_namespace.as_ref() != Some(ns)
    {
        return true;
    }
    if leaf
        .source_labels
        .iter()
        .any(|(k, v)| root.source_labels.get(k).is_some_and(|r| r != v))
    {
        return true;
    }
    !root.gateways.is_empty()
        && !leaf.gateways.is_empty()
        && !leaf.gateways.iter().all(|g| root.gateways.contains(g))
}

/// Istio's `stringMatchConflict`.
fn string_conflict(root: Option<&StringMatch>, leaf: Option<&StringMatch>) -> bool {
    let (Some(root), Some(leaf)) = (root, leaf) else {
        return false;
    };
    match (root, leaf) {
        (StringMatch::Regex(_), _) | (_, StringMatch::Regex(_)) => true,
        (StringMatch::Exact(r), StringMatch::Exact(l)) => r != l,
        (StringMatch::Exact(_), _) => true,
        (StringMatch::Prefix(r), StringMatch::Prefix(l) | StringMatch::Exact(l)) => {
            !l.starts_with(r.as_str())
        }
        (StringMatch::Prefix(_), StringMatch::Present) => true,
        (StringMatch::Present, _) => false,
    }
}
