//! Assembling converted resources into snapshots, keeping last good ones.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;

use super::{ConfigError, ConvertedResource, ErrorReason, FieldError};
use weft_model::{
    AuthorizationPolicy, DestinationRule, Gateway, MeshSnapshot, PeerAuthentication, Quota,
    ResourceId, Service, Sidecar, VirtualService,
};

mod gateways;
mod quotas;
mod virtual_services;

/// Where a resource came from: a file and the index of the document in it
/// (0-based), or another source's name for its objects.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Origin {
    pub source: String,
    pub document: Option<usize>,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.document {
            Some(n) => write!(f, "{}: document {n}", self.source),
            None => f.write_str(&self.source),
        }
    }
}

/// One input of a reload.
#[derive(Clone, Debug)]
pub enum Input {
    /// A resource, converted or not.
    Resource {
        origin: Origin,
        id: ResourceId,
        result: Result<ConvertedResource, Vec<FieldError>>,
    },
    /// Something that does not name a resource: an unreadable file, a
    /// document that is not YAML or lacks a kind or name. Resources that its
    /// source held before keep their last good version.
    Broken { origin: Origin, error: FieldError },
    /// A document of a kind this source does not serve (yet): reported,
    /// and otherwise left alone.
    Unserved { origin: Origin, error: FieldError },
}

/// The result of a reload.
#[derive(Clone, Debug)]
pub struct Applied {
    pub snapshot: Arc<MeshSnapshot>,
    /// Whether the snapshot differs from the one before.
    pub changed: bool,
    pub errors: Vec<ConfigError>,
    /// Resources served at their last good version because the current one
    /// is bad.
    pub kept: Vec<ResourceId>,
}

#[derive(Clone, Debug)]
struct Accepted {
    origin: Origin,
    resource: ConvertedResource,
}

/// The whole configuration as last applied. Each reload hands it every
/// input again (state of the world); it answers with a new snapshot.
#[derive(Debug, Default)]
pub struct ConfigStore {
    last_good: BTreeMap<ResourceId, Accepted>,
    current: Arc<MeshSnapshot>,
}

impl ConfigStore {
    pub fn snapshot(&self) -> Arc<MeshSnapshot> {
        self.current.clone()
    }

    pub fn apply(&mut self, inputs: Vec<Input>) -> Applied {
        let mut errors = Vec::new();
        let mut accepted: BTreeMap<ResourceId, Accepted> = BTreeMap::new();
        let mut failed = Vec::new();
        let mut broken_sources = BTreeSet::new();
        for input in inputs {
            match input {
                Input::Resource {
                    origin,
                    id,
                    result: Ok(resource),
                } => {
                    if let Some(first) = accepted.get(&id) {
                        let message = format!(
                            "{id} is defined twice; the first one, at {}, is used",
                            first.origin
                        );
                        errors.push(error(
                            origin,
                            Some(id),
                            ErrorReason::Invalid,
                            "metadata.name",
                            message,
                        ));
                    } else {
                        accepted.insert(id, Accepted { origin, resource });
                    }
                }
                Input::Resource {
                    origin,
                    id,
                    result: Err(field_errors),
                } => {
                    errors.extend(field_errors.into_iter().map(|e| ConfigError {
                        origin: origin.clone(),
                        resource: Some(id.clone()),
                        error: e,
                    }));
                    failed.push(id);
                }
                Input::Broken { origin, error } => {
                    broken_sources.insert(origin.source.clone());
                    errors.push(ConfigError {
                        origin,
                        resource: None,
                        error,
                    });
                }
                Input::Unserved { origin, error } => errors.push(ConfigError {
                    origin,
                    resource: None,
                    error,
                }),
            }
        }
        let mut kept = Vec::new();
        for (id, previous) in &self.last_good {
            let fallback = failed.contains(id) || broken_sources.contains(&previous.origin.source);
            if fallback && !accepted.contains_key(id) {
                accepted.insert(id.clone(), previous.clone());
                kept.push(id.clone());
            }
        }
        let snapshot = self.assemble(&mut accepted, &mut errors, &mut kept);
        let changed = {
            let mut previous = (*self.current).clone();
            previous.version = snapshot.version;
            previous != snapshot
        };
        if changed {
            self.current = Arc::new(snapshot);
        }
        self.last_good = accepted;
        Applied {
            snapshot: self.current.clone(),
            changed,
            errors,
            kept,
        }
    }

    /// Checks what needs the whole mesh and builds the snapshot. Resources
    /// that fail are replaced by their last good version when that one
    /// passes, and dropped otherwise.
    fn assemble(
        &self,
        accepted: &mut BTreeMap<ResourceId, Accepted>,
        errors: &mut Vec<ConfigError>,
        kept: &mut Vec<ResourceId>,
    ) -> MeshSnapshot {
        let mut services: BTreeMap<String, Service> = BTreeMap::new();
        let mut destination_rules: BTreeMap<String, DestinationRule> = BTreeMap::new();
        let mut gateways: Vec<Gateway> = Vec::new();
        let mut sidecars: Vec<Sidecar> = Vec::new();
        let mut peer_authentications: Vec<PeerAuthentication> = Vec::new();
        let mut authorization_policies: Vec<AuthorizationPolicy> = Vec::new();
        let mut quotas: Vec<Quota> = Vec::new();
        let mut bad_sidecars = Vec::new();
        for (id, a) in accepted.iter() {
            match &a.resource {
                ConvertedResource::Services(list) => {
                    for (i, service) in list.iter().enumerate() {
                        if let Some(other) = services.get(&service.hostname) {
                            let message = format!(
                                "host {} is already declared by {}",
                                service.hostname, other.origin
                            );
                            errors.push(error(
                                a.origin.clone(),
                                Some(id.clone()),
                                ErrorReason::UnresolvedReference,
                                format!("spec.hosts[{i}]"),
                                message,
                            ));
                        } else {
                            services.insert(service.hostname.clone(), service.clone());
                        }
                    }
                }
                ConvertedResource::DestinationRule(rule) => {
                    if let Some(other) = destination_rules.get(&rule.host) {
                        let message = format!(
                            "host {} already has {}; one DestinationRule applies per host",
                            rule.host, other.id
                        );
                        errors.push(error(
                            a.origin.clone(),
                            Some(id.clone()),
                            ErrorReason::UnresolvedReference,
                            "spec.host",
                            message,
                        ));
                    } else {
                        destination_rules.insert(rule.host.clone(), rule.clone());
                    }
                }
                ConvertedResource::VirtualService(_) => {}
                ConvertedResource::PeerAuthentication(policy) => {
                    peer_authentications.push(policy.clone())
                }
                ConvertedResource::AuthorizationPolicy(policy) => {
                    authorization_policies.push(policy.clone())
                }
                ConvertedResource::Quota(quota) => quotas.push(quota.clone()),
                ConvertedResource::Gateway(gateway) => gateways.push(gateway.clone()),
                ConvertedResource::Sidecar(sidecar) => {
                    match gateways::sidecar_conflict(&sidecars, sidecar) {
                        Some(problem) => {
                            errors.push(ConfigError {
                                origin: a.origin.clone(),
                                resource: Some(id.clone()),
                                error: problem,
                            });
                            bad_sidecars.push(id.clone());
                        }
                        None => sidecars.push(sidecar.clone()),
                    }
                }
            }
        }
        for id in bad_sidecars {
            accepted.remove(&id);
        }
        let mut quotas_out = Vec::new();
        for quota in quotas {
            match quotas::unresolved(&quota, &services) {
                None => quotas_out.push(quota),
                Some(problem) => {
                    if let Some(a) = accepted.remove(&quota.id) {
                        errors.push(ConfigError {
                            origin: a.origin,
                            resource: Some(quota.id.clone()),
                            error: problem,
                        });
                    }
                }
            }
        }
        let quotas = quotas_out;
        let mut snapshot = MeshSnapshot {
            version: self.current.version + 1,
            services,
            virtual_services: Vec::new(),
            destination_rules,
            gateways,
            sidecars,
            peer_authentications,
            authorization_policies,
            quotas,
        };
        let mut rejected = Vec::new();
        for (id, a) in accepted.iter_mut() {
            let ConvertedResource::VirtualService(vs) = &a.resource else {
                continue;
            };
            let problems = unresolved_references(&snapshot, vs);
            if problems.is_empty() {
                snapshot.virtual_services.push((**vs).clone());
                continue;
            }
            errors.extend(problems.into_iter().map(|e| ConfigError {
                origin: a.origin.clone(),
                resource: Some(id.clone()),
                error: e,
            }));
            match self.last_good.get(id) {
                Some(previous) if previous_passes(&snapshot, previous) => {
                    if let ConvertedResource::VirtualService(vs) = &previous.resource {
                        snapshot.virtual_services.push((**vs).clone());
                    }
                    *a = previous.clone();
                    if !kept.contains(id) {
                        kept.push(id.clone());
                    }
                }
                _ => rejected.push(id.clone()),
            }
        }
        for id in rejected {
            accepted.remove(&id);
        }
        let origins = accepted
            .iter()
            .map(|(id, a)| (id.clone(), a.origin.clone()))
            .collect();
        virtual_services::finish(&mut snapshot, &origins, errors);
        gateways::report_missing_gateways(&snapshot, &origins, errors);
        gateways::report_port_conflicts(&snapshot.gateways, &origins, errors);
        snapshot
    }
}

fn previous_passes(snapshot: &MeshSnapshot, previous: &Accepted) -> bool {
    match &previous.resource {
        ConvertedResource::VirtualService(vs) => unresolved_references(snapshot, vs).is_empty(),
        _ => false,
    }
}

/// References a virtual service makes that the mesh cannot satisfy.
fn unresolved_references(snapshot: &MeshSnapshot, vs: &VirtualService) -> Vec<FieldError> {
    let mut problems = gateways::gateway_references(snapshot, vs);
    for (i, route) in vs.http.iter().enumerate() {
        let destinations = route
            .destinations
            .iter()
            .enumerate()
            .map(|(k, d)| (format!("spec.http[{i}].route[{k}].destination.subset"), d));
        let mirrors = route.mirrors.iter().enumerate().map(|(k, m)| {
            (
                format!("spec.http[{i}].mirrors[{k}].destination.subset"),
                &m.destination,
            )
        });
        for (field, d) in destinations.chain(mirrors) {
            let Some(subset) = &d.subset else { continue };
            if snapshot.subset(&d.host, subset).is_none() {
                let message = match snapshot.destination_rules.get(&d.host) {
                    Some(rule) => format!(
                        "subset {subset} is not defined by {} for {}",
                        rule.id, d.host
                    ),
                    None => format!(
                        "subset {subset} is not defined by any DestinationRule for {}",
                        d.host
                    ),
                };
                problems.push(FieldError::new(
                    ErrorReason::UnresolvedReference,
                    field,
                    message,
                ));
            }
        }
    }
    problems
}

fn error(
    origin: Origin,
    resource: Option<ResourceId>,
    reason: ErrorReason,
    field: impl Into<String>,
    message: String,
) -> ConfigError {
    ConfigError {
        origin,
        resource,
        error: FieldError::new(reason, field, message),
    }
}
