//! Whole-mesh rules for VirtualServices: delegation (a root's `delegate`
//! rule replaced by the delegate's rules, merged as Istio merges them) and
//! conflicts between VirtualServices for the same host (reported, never
//! silently dropped).

use std::collections::BTreeMap;

use super::{ConfigError, ErrorReason, FieldError, Origin};
use weft_model::{
    HttpRoute, MESH_GATEWAY, MeshSnapshot, ResourceId, RouteMatch, StringMatch, VirtualService,
    is_exported, qualify_gateway,
};

/// Replaces every `delegate` rule of the snapshot's root VirtualServices
/// with the delegate's rules, then reports rules that other VirtualServices
/// for the same host make unreachable.
pub(super) fn finish(
    snapshot: &mut MeshSnapshot,
    origins: &BTreeMap<ResourceId, Origin>,
    errors: &mut Vec<ConfigError>,
) {
    // Conflicts first: their messages name rules as the user wrote them.
    report_conflicts(snapshot, origins, errors);
    resolve_delegates(snapshot, origins, errors);
}

fn report(
    origins: &BTreeMap<ResourceId, Origin>,
    id: &ResourceId,
    field: String,
    message: String,
) -> ConfigError {
    ConfigError {
        origin: origins.get(id).cloned().unwrap_or_else(|| Origin {
            source: id.to_string(),
            document: None,
        }),
        resource: Some(id.clone()),
        error: FieldError::new(ErrorReason::UnresolvedReference, field, message),
    }
}

fn resolve_delegates(
    snapshot: &mut MeshSnapshot,
    origins: &BTreeMap<ResourceId, Origin>,
    errors: &mut Vec<ConfigError>,
) {
    let referenced: std::collections::BTreeSet<&ResourceId> = snapshot
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
        let mut merged = Vec::new();
        for (i, rule) in root.http.iter().enumerate() {
            let Some(target) = &rule.delegate else {
                merged.push(rule.clone());
                continue;
            };
            let field = format!("spec.http[{i}].delegate");
            let problem = match delegates.get(target) {
                None => Some(format!(
                    "delegate {target} does not exist (or is not valid); this rule routes nothing"
                )),
                Some(d) if !d.is_delegate() => Some(format!(
                    "{target} has hosts, so it is not a delegate; a delegate VirtualService has no hosts"
                )),
                Some(d)
                    if !is_exported(
                        d.export_to.as_slice(),
                        &d.id.namespace,
                        &root.id.namespace,
                    ) =>
                {
                    Some(format!(
                        "delegate {target} is not exported to namespace {} (its exportTo)",
                        root.id.namespace
                    ))
                }
                Some(_) => None,
            };
            if let Some(message) = problem {
                errors.push(report(origins, &root.id, field, message));
                continue;
            }
            let Some(delegate) = delegates.get(target) else {
                continue;
            };
            for (j, sub) in delegate.http.iter().enumerate() {
                match merge_rule(rule, sub) {
                    Some(mut m) => {
                        let answers_itself = m.redirect.is_some() || m.direct_response.is_some();
                        if answers_itself && m.fault.is_some() && m.cors.is_some() {
                            errors.push(report(
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
                    None => errors.push(report(
                        origins,
                        &delegate.id,
                        format!("spec.http[{j}].match"),
                        format!(
                            "conflicts with every match of {} spec.http[{i}], which delegates to it \
                             (a delegate's match must narrow its root's); this rule is not used",
                            root.id
                        ),
                    )),
                }
            }
        }
        root.http = merged;
    }
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

/// Whether `m` holds for every request (wherever the rule applies).
fn is_unconditional(m: &RouteMatch) -> bool {
    let uri_all = match &m.uri {
        None => true,
        Some(StringMatch::Prefix(p)) => p.is_empty() || p == "/",
        _ => false,
    };
    uri_all
        && m.scheme.is_none()
        && m.method.is_none()
        && m.authority.is_none()
        && m.headers.is_empty()
        && m.without_headers.is_empty()
        && m.query_params.is_empty()
        && m.port.is_none()
        && m.source_labels.is_empty()
        && m.source_namespace.is_none()
        && m.gateways.is_empty()
}

fn catch_all_rule(vs: &VirtualService) -> Option<usize> {
    vs.http
        .iter()
        .position(|r| r.matches.is_empty() || r.matches.iter().any(is_unconditional))
}

fn bound_gateways(vs: &VirtualService) -> Vec<String> {
    if vs.gateways.is_empty() {
        return vec![MESH_GATEWAY.to_string()];
    }
    vs.gateways
        .iter()
        .map(|g| qualify_gateway(g, &vs.id.namespace))
        .collect()
}

/// Several VirtualServices for one host are merged in namespace/name order,
/// as Istio appends their rules; rules a previous one makes unreachable are
/// reported on the later resource, naming the earlier.
fn report_conflicts(
    snapshot: &MeshSnapshot,
    origins: &BTreeMap<ResourceId, Origin>,
    errors: &mut Vec<ConfigError>,
) {
    let roots: Vec<&VirtualService> = snapshot
        .virtual_services
        .iter()
        .filter(|vs| !vs.is_delegate())
        .collect();
    // Only VirtualServices sharing a host are compared: (later, earlier).
    let mut by_host: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, vs) in roots.iter().enumerate() {
        for host in &vs.hosts {
            let list = by_host.entry(host.as_str()).or_default();
            if list.last() != Some(&i) {
                list.push(i);
            }
        }
    }
    let mut pairs = std::collections::BTreeSet::new();
    for list in by_host.values() {
        for (k, &later) in list.iter().enumerate() {
            pairs.extend(list[..k].iter().map(|&earlier| (later, earlier)));
        }
    }
    for (later_index, earlier_index) in pairs {
        let (later, earlier) = (roots[later_index], roots[earlier_index]);
        let later_gateways = bound_gateways(later);
        {
            let Some(host) = later.hosts.iter().find(|h| earlier.hosts.contains(h)) else {
                continue;
            };
            if !bound_gateways(earlier)
                .iter()
                .any(|g| later_gateways.contains(g))
            {
                continue;
            }
            if later.http.is_empty() {
                continue;
            }
            if let Some(k) = catch_all_rule(earlier) {
                errors.push(report(
                    origins,
                    &later.id,
                    "spec.http".to_string(),
                    format!(
                        "rules for host {host} are unreachable: {}, merged before this one \
                         (namespace/name order), matches every request in spec.http[{k}]; \
                         merge the two VirtualServices or narrow that rule",
                        earlier.id
                    ),
                ));
                continue;
            }
            for (i, rule) in later.http.iter().enumerate() {
                for (j, m) in rule.matches.iter().enumerate() {
                    let shadowing = earlier.http.iter().enumerate().find_map(|(k, r)| {
                        r.matches
                            .iter()
                            .position(|e| same_conditions(e, m))
                            .map(|l| (k, l))
                    });
                    if let Some((k, l)) = shadowing {
                        errors.push(report(
                            origins,
                            &later.id,
                            format!("spec.http[{i}].match[{j}]"),
                            format!(
                                "is unreachable for host {host}: {} spec.http[{k}].match[{l}], \
                                 merged before it (namespace/name order), has the same conditions",
                                earlier.id
                            ),
                        ));
                    }
                }
            }
        }
    }
}

fn same_conditions(a: &RouteMatch, b: &RouteMatch) -> bool {
    let mut a = a.clone();
    a.name = b.name.clone();
    a == *b
}
