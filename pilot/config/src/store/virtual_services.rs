//! Whole-mesh reports about VirtualServices once they are in the snapshot:
//! conflicts between VirtualServices for the same host (reported, never
//! silently dropped), then delegation ([`super::delegates`]).

use std::collections::{BTreeMap, BTreeSet};

use super::references::bound_gateways;
use super::{ConfigError, Origin, delegates, unresolved};
use weft_model::{MeshSnapshot, ResourceId, RouteMatch, StringMatch, VirtualService};

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
    delegates::resolve_delegates(snapshot, origins, errors);
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
    for (later, earlier) in sharing_a_host(&roots) {
        report_conflict(roots[later], roots[earlier], origins, errors);
    }
}

/// The pairs (later, earlier) of VirtualServices that share a host, by
/// index: only these are compared.
fn sharing_a_host(roots: &[&VirtualService]) -> BTreeSet<(usize, usize)> {
    let mut by_host: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, vs) in roots.iter().enumerate() {
        for host in &vs.hosts {
            let list = by_host.entry(host.as_str()).or_default();
            if list.last() != Some(&i) {
                list.push(i);
            }
        }
    }
    let mut pairs = BTreeSet::new();
    for list in by_host.values() {
        for (k, &later) in list.iter().enumerate() {
            pairs.extend(list[..k].iter().map(|&earlier| (later, earlier)));
        }
    }
    pairs
}

/// What `earlier` makes unreachable in `later`, where both apply: all of
/// it (a catch-all rule), or each match with the same conditions.
fn report_conflict(
    later: &VirtualService,
    earlier: &VirtualService,
    origins: &BTreeMap<ResourceId, Origin>,
    errors: &mut Vec<ConfigError>,
) {
    let Some(host) = later.hosts.iter().find(|h| earlier.hosts.contains(h)) else {
        return;
    };
    let later_gateways = bound_gateways(later);
    if !bound_gateways(earlier)
        .iter()
        .any(|g| later_gateways.contains(g))
        || later.http.is_empty()
    {
        return;
    }
    if let Some(k) = catch_all_rule(earlier) {
        errors.push(unresolved(
            origins,
            &later.id,
            "spec.http",
            format!(
                "rules for host {host} are unreachable: {}, merged before this one \
                 (namespace/name order), matches every request in spec.http[{k}]; \
                 merge the two VirtualServices or narrow that rule",
                earlier.id
            ),
        ));
        return;
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
                errors.push(unresolved(
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

fn same_conditions(a: &RouteMatch, b: &RouteMatch) -> bool {
    let mut a = a.clone();
    a.name = b.name.clone();
    a == *b
}
