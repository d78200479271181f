//! Selectors that select nothing or too much: a DestinationRule subset no
//! endpoint of its host carries, a Sidecar or AuthorizationPolicy whose
//! selector matches no pod, two Sidecars selecting one pod, and an
//! AuthorizationPolicy source namespace that does not exist. Pod checks run
//! only when the analysis read pods; the namespace check only when it read
//! Namespaces.

use std::collections::{BTreeMap, BTreeSet};

use weft_model::{AuthorizationPolicy, DestinationRule, Pattern, ResourceId, Sidecar};

use super::{Code, Context, Converted, Finding, Resource};
use crate::ConvertedResource;

pub(super) fn check(context: &Context<'_>) -> Vec<Finding> {
    let mut findings = Vec::new();
    let mut sidecars = Vec::new();
    for converted in &context.resources {
        match converted.resource {
            ConvertedResource::DestinationRule(rule) => {
                findings.extend(subsets(context, converted, rule));
            }
            ConvertedResource::Sidecar(sidecar) => {
                findings.extend(sidecar_selects_nothing(context, converted, sidecar));
                sidecars.push((converted, sidecar));
            }
            ConvertedResource::AuthorizationPolicy(policy) => {
                findings.extend(policy_selects_nothing(context, converted, policy));
                findings.extend(unknown_namespaces(context, converted, policy));
            }
            _ => {}
        }
    }
    findings.extend(conflicting_sidecars(context, &sidecars));
    findings
}

fn finding(
    converted: &Converted<'_>,
    code: Code,
    field: &str,
    message: String,
    fix: &str,
) -> Finding {
    Finding::new(code, Resource::of(converted.id), field, message, fix).at(converted.origin)
}

fn selects(selector: &BTreeMap<String, String>, labels: &BTreeMap<String, String>) -> bool {
    selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// A subset whose labels no endpoint of the host carries (judged only when
/// the host has endpoints: a Service's pods, a ServiceEntry's endpoints).
fn subsets(
    context: &Context<'_>,
    converted: &Converted<'_>,
    rule: &DestinationRule,
) -> Vec<Finding> {
    let Some(service) = context.snapshot.services.get(&rule.host) else {
        return Vec::new();
    };
    if service.endpoints.is_empty() {
        return Vec::new();
    }
    rule.subsets
        .iter()
        .enumerate()
        .filter(|(_, subset)| {
            !subset.labels.is_empty()
                && !service.endpoints.iter().any(|e| selects(&subset.labels, &e.labels))
        })
        .map(|(j, subset)| {
            finding(
                converted,
                Code::SubsetSelectsNoWorkload,
                &format!("spec.subsets[{j}].labels"),
                format!(
                    "subset {} selects no endpoint of {} ({} endpoints, none with labels {})",
                    subset.name,
                    rule.host,
                    service.endpoints.len(),
                    show(&subset.labels)
                ),
                "fix the subset's labels to match the pods' labels (e.g. version), or deploy the pods it names",
            )
        })
        .collect()
}

fn show(labels: &BTreeMap<String, String>) -> String {
    let pairs: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    pairs.join(",")
}

/// Pods of `namespace` (any namespace for the root namespace's resources)
/// that `selector` selects.
fn selected<'a>(
    context: &'a Context<'_>,
    namespace: &'a str,
    selector: &'a BTreeMap<String, String>,
) -> impl Iterator<Item = &'a super::cluster::KubePod> + 'a {
    let everywhere = namespace == context.root_namespace;
    context.cluster.pods.iter().filter(move |pod| {
        (everywhere || pod.meta.namespace == namespace) && selects(selector, &pod.meta.labels)
    })
}

fn sidecar_selects_nothing(
    context: &Context<'_>,
    converted: &Converted<'_>,
    sidecar: &Sidecar,
) -> Option<Finding> {
    let selector = sidecar
        .workload_selector
        .as_ref()
        .filter(|s| !s.is_empty())?;
    if !context.knows_workloads()
        || selected(context, &sidecar.id.namespace, selector)
            .next()
            .is_some()
    {
        return None;
    }
    Some(finding(
        converted,
        Code::SidecarSelectsNoWorkload,
        "spec.workloadSelector.labels",
        format!(
            "no pod in namespace {} has labels {}",
            sidecar.id.namespace,
            show(selector)
        ),
        "fix the workloadSelector's labels to match the pods' labels, or remove the Sidecar",
    ))
}

/// Two Sidecars with selectors that select one pod: Istio picks one of them
/// arbitrarily. Reported on the later (namespace/name order).
fn conflicting_sidecars(
    context: &Context<'_>,
    sidecars: &[(&Converted<'_>, &Sidecar)],
) -> Vec<Finding> {
    let mut findings = Vec::new();
    let mut reported = BTreeSet::<(&ResourceId, &ResourceId)>::new();
    for pod in &context.cluster.pods {
        let mut matching: Vec<&(&Converted<'_>, &Sidecar)> = sidecars
            .iter()
            .filter(|(_, s)| {
                s.id.namespace == pod.meta.namespace
                    && s.workload_selector
                        .as_ref()
                        .is_some_and(|sel| !sel.is_empty() && selects(sel, &pod.meta.labels))
            })
            .collect();
        matching.sort_by_key(|(_, s)| &s.id);
        let Some(((_, first), rest)) = matching.split_first() else {
            continue;
        };
        for (converted, later) in rest {
            if reported.insert((&first.id, &later.id)) {
                findings.push(finding(
                    converted,
                    Code::ConflictingSidecarWorkloadSelectors,
                    "spec.workloadSelector.labels",
                    format!(
                        "{} {} is selected by this Sidecar and by {}; only one Sidecar applies to a workload",
                        pod.meta.kind, pod.meta.name, first.id
                    ),
                    "make the Sidecars' workloadSelectors disjoint, or merge the two Sidecars",
                ));
            }
        }
    }
    findings
}

fn policy_selects_nothing(
    context: &Context<'_>,
    converted: &Converted<'_>,
    policy: &AuthorizationPolicy,
) -> Option<Finding> {
    let selector = policy.target.selector.as_ref().filter(|s| !s.is_empty())?;
    if !context.knows_workloads()
        || selected(context, &policy.id.namespace, selector)
            .next()
            .is_some()
    {
        return None;
    }
    Some(finding(
        converted,
        Code::AuthorizationPolicySelectsNoWorkload,
        "spec.selector.matchLabels",
        format!(
            "no pod in namespace {} has labels {}; the policy applies to nothing",
            policy.id.namespace,
            show(selector)
        ),
        "fix the selector's labels to match the pods' labels, or move the policy to the pods' namespace",
    ))
}

fn unknown_namespaces(
    context: &Context<'_>,
    converted: &Converted<'_>,
    policy: &AuthorizationPolicy,
) -> Vec<Finding> {
    let known = &context.cluster.namespaces;
    if known.is_empty() {
        return Vec::new();
    }
    let mut findings = Vec::new();
    for (i, rule) in policy.rules.iter().enumerate() {
        for (j, source) in rule.from.iter().enumerate() {
            let lists = [
                ("namespaces", &source.namespaces.any),
                ("notNamespaces", &source.namespaces.not),
            ];
            for (list, patterns) in lists {
                for (k, pattern) in patterns.iter().enumerate() {
                    let Pattern::Exact(namespace) = pattern else {
                        continue;
                    };
                    if known.contains_key(namespace) {
                        continue;
                    }
                    findings.push(finding(
                        converted,
                        Code::AuthorizationPolicyUnknownNamespace,
                        &format!("spec.rules[{i}].from[{j}].source.{list}[{k}]"),
                        format!(
                            "namespace {namespace} does not exist; this source matches no request"
                        ),
                        "name an existing namespace (kubectl get namespaces), or create it",
                    ));
                }
            }
        }
    }
    findings
}
