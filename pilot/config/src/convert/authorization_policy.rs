//! AuthorizationPolicy -> model.
//!
//! Translated: `selector`, `targetRefs` (and `targetRef`) naming
//! Kubernetes Gateways, `action` ALLOW / DENY / AUDIT, and `rules` with
//! `from.source` (`principals`, `requestPrincipals`, `namespaces`,
//! `ipBlocks`, `remoteIpBlocks` and their `not` forms), `to.operation`
//! (`hosts`, `ports`, `methods`, `paths` and their `not` forms) and `when`
//! (`request.headers[...]`, `source.ip`, `remote.ip`, `source.namespace`,
//! `source.principal`, `destination.ip`, `destination.port`,
//! `connection.sni`, `request.auth.principal`, `request.auth.audiences`,
//! `request.auth.presenter`, `request.auth.claims[...]`), and `action:
//! CUSTOM` with `provider.name` (whether the mesh config defines that
//! external authorizer is the store's check).

use weft_crds::{
    AuthorizationAction as CrdAction, AuthorizationCondition, AuthorizationOperation,
    AuthorizationPolicySpec, AuthorizationSource,
};

use super::Errors;
use super::common::policy_target;
use weft_model::{
    AuthorizationAction, AuthorizationPolicy, AuthorizationRule, Cidr, ConditionKey,
    ConditionMatch, Matches, OperationMatch, Pattern, ResourceId, SourceMatch,
};

pub(super) fn convert(
    id: &ResourceId,
    spec: &AuthorizationPolicySpec,
    errors: &mut Errors,
) -> AuthorizationPolicy {
    let target = policy_target(
        "an AuthorizationPolicy",
        &id.namespace,
        spec.selector.as_ref(),
        spec.target_ref.as_ref(),
        &spec.target_refs,
        errors,
    );
    let action = match spec.action.unwrap_or_default() {
        CrdAction::Allow => AuthorizationAction::Allow,
        CrdAction::Deny => AuthorizationAction::Deny,
        CrdAction::Audit => AuthorizationAction::Audit,
        CrdAction::Custom => AuthorizationAction::Custom,
    };
    let provider = spec.provider.as_ref().map(|p| p.name.clone());
    match (action, &provider) {
        (AuthorizationAction::Custom, None) => errors.push(
            "spec.provider",
            "is required for action CUSTOM: the name of an extension provider (envoyExtAuthzHttp or envoyExtAuthzGrpc) of the mesh config",
        ),
        (AuthorizationAction::Custom, Some(name)) if name.is_empty() => {
            errors.push("spec.provider.name", "is required: the extension provider's name")
        }
        (AuthorizationAction::Custom, _) if spec.rules.is_empty() => errors.push(
            "spec.rules",
            "a CUSTOM policy without rules never asks its provider; give the rules of the requests to check",
        ),
        (AuthorizationAction::Custom, _) => {}
        (_, Some(_)) => errors.push("spec.provider", "is only for action CUSTOM"),
        (_, None) => {}
    }
    let rules = spec
        .rules
        .iter()
        .enumerate()
        .map(|(i, rule)| {
            let field = format!("spec.rules[{i}]");
            AuthorizationRule {
                from: rule
                    .from
                    .iter()
                    .enumerate()
                    .map(|(j, f)| source(&format!("{field}.from[{j}].source"), &f.source, errors))
                    .collect(),
                to: rule
                    .to
                    .iter()
                    .enumerate()
                    .map(|(j, t)| {
                        operation(&format!("{field}.to[{j}].operation"), &t.operation, errors)
                    })
                    .collect(),
                when: rule
                    .when
                    .iter()
                    .enumerate()
                    .filter_map(|(j, c)| condition(&format!("{field}.when[{j}]"), c, errors))
                    .collect(),
            }
        })
        .collect();
    AuthorizationPolicy {
        id: id.clone(),
        target,
        action,
        provider,
        rules,
    }
}

fn source(field: &str, s: &AuthorizationSource, errors: &mut Errors) -> SourceMatch {
    SourceMatch {
        request_principals: parsed(
            field,
            "requestPrincipals",
            &s.request_principals,
            &s.not_request_principals,
            |v| Pattern::parse(v).map(|_| v.to_string()),
            errors,
        ),
        principals: parsed(
            field,
            "principals",
            &s.principals,
            &s.not_principals,
            Pattern::parse,
            errors,
        ),
        namespaces: parsed(
            field,
            "namespaces",
            &s.namespaces,
            &s.not_namespaces,
            Pattern::parse,
            errors,
        ),
        ip_blocks: parsed(
            field,
            "ipBlocks",
            &s.ip_blocks,
            &s.not_ip_blocks,
            Cidr::parse,
            errors,
        ),
        remote_ip_blocks: parsed(
            field,
            "remoteIpBlocks",
            &s.remote_ip_blocks,
            &s.not_remote_ip_blocks,
            Cidr::parse,
            errors,
        ),
    }
}

fn operation(field: &str, o: &AuthorizationOperation, errors: &mut Errors) -> OperationMatch {
    OperationMatch {
        hosts: parsed(
            field,
            "hosts",
            &o.hosts,
            &o.not_hosts,
            Pattern::parse,
            errors,
        ),
        ports: parsed(field, "ports", &o.ports, &o.not_ports, parse_port, errors),
        methods: parsed(
            field,
            "methods",
            &o.methods,
            &o.not_methods,
            Pattern::parse,
            errors,
        ),
        paths: parsed(
            field,
            "paths",
            &o.paths,
            &o.not_paths,
            Pattern::parse,
            errors,
        ),
    }
}

fn condition(
    field: &str,
    c: &AuthorizationCondition,
    errors: &mut Errors,
) -> Option<ConditionMatch> {
    let key = match ConditionKey::parse(&c.key) {
        Ok(key) => key,
        Err(true) => {
            errors.unsupported(format!("{field}.key"));
            return None;
        }
        Err(false) => {
            errors.push(
                format!("{field}.key"),
                format!(
                    "{:?} is not a condition Istio defines (request.headers[NAME], source.ip, remote.ip, source.namespace, source.principal, destination.ip, destination.port, connection.sni, request.auth.principal, request.auth.audiences, request.auth.presenter, request.auth.claims[NAME])",
                    c.key
                ),
            );
            return None;
        }
    };
    if c.values.is_empty() && c.not_values.is_empty() {
        errors.push(field.to_string(), "a condition needs values or notValues");
        return None;
    }
    let check = |v: &str| -> Result<String, String> {
        match key {
            ConditionKey::SourceIp | ConditionKey::RemoteIp | ConditionKey::DestinationIp => {
                Cidr::parse(v).map(|_| v.to_string())
            }
            ConditionKey::DestinationPort => parse_port(v).map(|_| v.to_string()),
            ConditionKey::RequestPrincipal
            | ConditionKey::RequestAudiences
            | ConditionKey::RequestPresenter
            | ConditionKey::RequestClaim(_) => Pattern::parse(v).map(|_| v.to_string()),
            _ => Ok(v.to_string()),
        }
    };
    let values = parsed(field, "values", &c.values, &c.not_values, check, errors);
    Some(ConditionMatch { key, values })
}

fn parse_port(text: &str) -> Result<u16, String> {
    text.parse::<u16>()
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| format!("{text:?} is not a port number (1-65535)"))
}

/// `any` and `not` (Istio's `name` and `notName`) parsed; each bad value
/// is an error at `field.name[i]` / `field.notName[i]`.
fn parsed<T>(
    field: &str,
    name: &str,
    any: &[String],
    not: &[String],
    parse: impl Fn(&str) -> Result<T, String>,
    errors: &mut Errors,
) -> Matches<T> {
    let not_name = format!("not{}{}", name[..1].to_ascii_uppercase(), &name[1..]);
    let mut each = |list: &[String], name: &str| -> Vec<T> {
        list.iter()
            .enumerate()
            .filter_map(|(i, v)| match parse(v) {
                Ok(t) => Some(t),
                Err(message) => {
                    errors.push(format!("{field}.{name}[{i}]"), message);
                    None
                }
            })
            .collect()
    };
    Matches {
        any: each(any, name),
        not: each(not, &not_name),
    }
}
