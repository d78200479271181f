//! DestinationRule -> model.

use std::collections::BTreeSet;

use weft_crds::{DestinationRuleSpec, LoadBalancerSettings, SimpleLb, TrafficPolicy};

use super::{Errors, export_to};
use crate::model::{DestinationRule, LoadBalancer, ResourceId, Subset, qualify_host};

pub(super) fn convert(
    id: &ResourceId,
    spec: &DestinationRuleSpec,
    errors: &mut Errors,
) -> DestinationRule {
    if spec.host.is_empty() {
        errors.push("spec.host", "a host is required");
    }
    export_to("spec", &spec.export_to, errors);
    if spec.workload_selector.is_some() {
        errors.unsupported("spec.workloadSelector");
    }
    let load_balancer = spec
        .traffic_policy
        .as_ref()
        .and_then(|p| traffic_policy("spec.trafficPolicy", p, errors));
    let mut names = BTreeSet::new();
    let subsets = spec
        .subsets
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let path = format!("spec.subsets[{i}]");
            if s.name.is_empty() {
                errors.push(format!("{path}.name"), "a subset name is required");
            } else if !names.insert(s.name.as_str()) {
                errors.push(
                    format!("{path}.name"),
                    format!("subset {} is defined twice", s.name),
                );
            }
            Subset {
                name: s.name.clone(),
                labels: s.labels.clone(),
                load_balancer: s
                    .traffic_policy
                    .as_ref()
                    .and_then(|p| traffic_policy(&format!("{path}.trafficPolicy"), p, errors)),
            }
        })
        .collect();
    DestinationRule {
        id: id.clone(),
        host: qualify_host(&spec.host, &id.namespace),
        load_balancer,
        subsets,
    }
}

fn traffic_policy(path: &str, policy: &TrafficPolicy, errors: &mut Errors) -> Option<LoadBalancer> {
    let unsupported = [
        ("connectionPool", policy.connection_pool.is_some()),
        ("outlierDetection", policy.outlier_detection.is_some()),
        ("tls", policy.tls.is_some()),
        ("portLevelSettings", !policy.port_level_settings.is_empty()),
        ("tunnel", policy.tunnel.is_some()),
        ("proxyProtocol", policy.proxy_protocol.is_some()),
    ];
    for (field, present) in unsupported {
        if present {
            errors.unsupported(format!("{path}.{field}"));
        }
    }
    policy
        .load_balancer
        .as_ref()
        .and_then(|lb| load_balancer(&format!("{path}.loadBalancer"), lb, errors))
}

fn load_balancer(
    path: &str,
    lb: &LoadBalancerSettings,
    errors: &mut Errors,
) -> Option<LoadBalancer> {
    let unsupported = [
        ("consistentHash", lb.consistent_hash.is_some()),
        ("localityLbSetting", lb.locality_lb_setting.is_some()),
        ("warmupDurationSecs", lb.warmup_duration_secs.is_some()),
        ("warmup", lb.warmup.is_some()),
    ];
    for (field, present) in unsupported {
        if present {
            errors.unsupported(format!("{path}.{field}"));
        }
    }
    match lb.simple? {
        SimpleLb::Unspecified => None,
        SimpleLb::RoundRobin => Some(LoadBalancer::RoundRobin),
        SimpleLb::LeastConn | SimpleLb::LeastRequest => Some(LoadBalancer::LeastRequest),
        SimpleLb::Random => Some(LoadBalancer::Random),
        SimpleLb::Passthrough => Some(LoadBalancer::Passthrough),
    }
}
