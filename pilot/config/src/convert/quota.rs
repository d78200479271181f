//! Quota -> model.
//!
//! Every field is translated. Rules: `destination.host` is required (a
//! short name is in the Quota's namespace; whether it exists is checked by
//! the store, which sees the whole mesh), amounts must be > 0, windows at
//! least 1 s (and a whole number of milliseconds, Envoy's resolution), a
//! `match` must name at least one field, and `failureMode` is only for
//! `scope: Global`.

use std::time::Duration;

use weft_crds::{
    IstioDuration, QuotaFailureMode, QuotaOverride as CrdQuotaOverride, QuotaScope as CrdScope,
    QuotaSpec,
};

use super::{Errors, port_number};
use weft_model::{
    Amount, CallerMatch, FailureMode, Quota, QuotaOverride, QuotaScope, ResourceId, qualify_host,
};

pub(super) fn convert(id: &ResourceId, spec: &QuotaSpec, errors: &mut Errors) -> Quota {
    let destination = &spec.destination;
    if destination.host.is_empty() {
        errors.push(
            "spec.destination.host",
            "is required: the service whose calls this quota counts",
        );
    }
    let port = destination
        .port
        .and_then(|p| port_number("spec.destination.port", p, errors));
    if let Some(prefix) = &destination.path_prefix
        && !prefix.starts_with('/')
    {
        errors.push(
            "spec.destination.pathPrefix",
            format!("{prefix:?} must start with /"),
        );
    }
    let default = amount(
        "spec",
        spec.max_amount,
        spec.valid_duration.as_ref(),
        errors,
    );
    let overrides = spec
        .overrides
        .iter()
        .enumerate()
        .map(|(i, o)| quota_override(&format!("spec.overrides[{i}]"), o, errors))
        .collect();
    let scope = match spec.scope.unwrap_or_default() {
        CrdScope::Local => QuotaScope::Local,
        CrdScope::Global => QuotaScope::Global,
    };
    if scope == QuotaScope::Local && spec.failure_mode.is_some() {
        errors.push(
            "spec.failureMode",
            "only applies to scope: Global (a Local quota needs no service); remove it or set scope: Global",
        );
    }
    Quota {
        id: id.clone(),
        host: qualify_host(&destination.host, &id.namespace),
        port,
        path_prefix: destination.path_prefix.clone(),
        default,
        overrides,
        scope,
        failure_mode: match spec.failure_mode.unwrap_or_default() {
            QuotaFailureMode::Open => FailureMode::Open,
            QuotaFailureMode::Closed => FailureMode::Closed,
        },
    }
}

/// A caller-specific amount; the match must name a caller.
fn quota_override(field: &str, o: &CrdQuotaOverride, errors: &mut Errors) -> QuotaOverride {
    let m = &o.match_;
    if m.source_labels.is_empty() && m.source_namespace.is_none() && m.source_principal.is_none() {
        errors.push(
            format!("{field}.match"),
            "name at least one of sourceLabels, sourceNamespace, sourcePrincipal (the default applies to everyone else)",
        );
    }
    if let Some(p) = &m.source_principal
        && !p.starts_with("spiffe://")
    {
        errors.push(
            format!("{field}.match.sourcePrincipal"),
            format!("{p:?} is not a SPIFFE ID (spiffe://cluster.local/ns/NS/sa/SA)"),
        );
    }
    QuotaOverride {
        caller: CallerMatch {
            labels: m.source_labels.clone(),
            namespace: m.source_namespace.clone(),
            principal: m.source_principal.clone(),
        },
        amount: amount(field, o.max_amount, o.valid_duration.as_ref(), errors),
    }
}

fn amount(
    field: &str,
    max_amount: u32,
    valid_duration: Option<&IstioDuration>,
    errors: &mut Errors,
) -> Amount {
    if max_amount == 0 {
        errors.push(format!("{field}.maxAmount"), "must be > 0");
    }
    let valid_duration = match valid_duration {
        None => {
            errors.push(
                format!("{field}.validDuration"),
                "is required (e.g. 1s, 10s, 1m)",
            );
            Duration::from_secs(1)
        }
        Some(d) => {
            let d = Duration::from(*d);
            if d < Duration::from_secs(1) {
                errors.push(
                    format!("{field}.validDuration"),
                    format!("{} must be >= 1s", IstioDuration::from(d)),
                );
            } else if d.subsec_nanos() % 1_000_000 != 0 {
                errors.push(
                    format!("{field}.validDuration"),
                    format!(
                        "{} must be a whole number of milliseconds",
                        IstioDuration::from(d)
                    ),
                );
            }
            d
        }
    };
    Amount {
        max_amount,
        valid_duration,
    }
}
