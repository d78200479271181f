//! The whole-mesh passes of a reload: from the resources it applies to a
//! snapshot, with the errors of what does not fit.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::{
    Accepted, ConfigError, ConvertedResource, FieldError, LastGood, ext_authz, gateways, hosts,
    jwks, origin_of, quotas, references, sidecars, tcp_policies, telemetries, virtual_services,
};
use weft_model::{
    AuthorizationPolicy, DestinationRule, FetchedJwks, Gateway, JwksLocation, MeshConfig,
    MeshSnapshot, PeerAuthentication, Quota, RequestAuthentication, ResourceId, Service, Sidecar,
    Telemetry, VirtualService,
};

/// A resource of the reload in model form, with the id it is applied
/// under.
pub(super) type Resource<'a, T> = (&'a ResourceId, &'a T);

/// What a whole-mesh pass made of the resources of one kind.
#[derive(Default)]
pub(super) struct Checked<T> {
    /// What the snapshot serves.
    pub(super) served: T,
    /// What is wrong, each with its resource, in the order users see it.
    pub(super) errors: Vec<(ResourceId, FieldError)>,
    /// Resources left out whole, in resource order.
    pub(super) rejected: Vec<ResourceId>,
}

impl<T> Checked<T> {
    /// Leaves `id` out for `problems`.
    pub(super) fn reject(&mut self, id: &ResourceId, problems: Vec<FieldError>) {
        self.errors
            .extend(problems.into_iter().map(|problem| (id.clone(), problem)));
        self.rejected.push(id.clone());
    }
}

/// What a reload makes of its resources.
pub(super) struct Assembled {
    pub(super) snapshot: MeshSnapshot,
    /// The errors of the whole-mesh passes and reports, in order.
    pub(super) errors: Vec<ConfigError>,
    /// The resources applied, at the version served: the last good
    /// versions of the next reload.
    pub(super) accepted: BTreeMap<ResourceId, Accepted>,
}

/// Checks what needs the whole mesh and builds the snapshot. Each pass
/// serves or rejects the resources of its kind; a rejected VirtualService
/// is served at its last good version when that one passes, any other
/// rejected resource is dropped. Reports that leave everything in place
/// (merging, conflicts, missing gateways) come last.
pub(super) fn assemble(
    version: u64,
    mesh_config: &Arc<MeshConfig>,
    fetched_jwks: &Arc<BTreeMap<JwksLocation, FetchedJwks>>,
    mut resources: BTreeMap<ResourceId, Accepted>,
    last_good: &mut LastGood<'_>,
) -> Assembled {
    let Passed {
        mut snapshot,
        mut errors,
        rejected,
        stand_ins,
    } = run_passes(version, mesh_config, &resources, last_good);
    snapshot.fetched_jwks = fetched_jwks.clone();
    for id in rejected {
        resources.remove(&id);
    }
    resources.extend(stand_ins);
    let origins = resources
        .iter()
        .map(|(id, a)| (id.clone(), a.origin.clone()))
        .collect();
    virtual_services::finish(&mut snapshot, &origins, &mut errors);
    gateways::report_missing_gateways(&snapshot, &origins, &mut errors);
    ext_authz::report_unusable_providers(&snapshot, &origins, &mut errors);
    jwks::report_unfetched_keys(&snapshot, &origins, &mut errors);
    tcp_policies::report_http_terms_on_tcp(&snapshot, &origins, &mut errors);
    gateways::report_port_conflicts(&snapshot.gateways, &origins, &mut errors);
    Assembled {
        snapshot,
        errors,
        accepted: resources,
    }
}

/// What the passes made of a reload's resources.
struct Passed {
    snapshot: MeshSnapshot,
    errors: Vec<ConfigError>,
    /// Resources no version of which is served.
    rejected: Vec<ResourceId>,
    /// Resources served at their last good version instead.
    stand_ins: Vec<(ResourceId, Accepted)>,
}

/// One pass per kind, in the order users see their errors.
fn run_passes(
    version: u64,
    mesh_config: &Arc<MeshConfig>,
    resources: &BTreeMap<ResourceId, Accepted>,
    last_good: &mut LastGood<'_>,
) -> Passed {
    let by_kind = ByKind::sort(resources);
    let mut settled = Settled {
        resources,
        last_good,
        errors: Vec::new(),
        rejected: Vec::new(),
        stand_ins: Vec::new(),
    };
    // Kinds whose resources conflict with each other, in the order of
    // their kinds' names, which is the order resources are sorted in.
    let destination_rules = settled.settle(
        hosts::one_rule_per_host(&by_kind.destination_rules),
        no_stand_in,
    );
    let services = settled.settle(hosts::declare_services(&by_kind.services), no_stand_in);
    let sidecars = settled.settle(sidecars::one_namespace_wide(&by_kind.sidecars), no_stand_in);
    let quotas = settled.settle(quotas::resolve(&by_kind.quotas, &services), no_stand_in);
    let telemetries = settled.settle(
        telemetries::resolve(&by_kind.telemetries, mesh_config),
        no_stand_in,
    );
    let mut snapshot = MeshSnapshot {
        version,
        services,
        virtual_services: Vec::new(),
        destination_rules,
        gateways: cloned(&by_kind.gateways),
        sidecars,
        peer_authentications: cloned(&by_kind.peer_authentications),
        request_authentications: cloned(&by_kind.request_authentications),
        authorization_policies: cloned(&by_kind.authorization_policies),
        quotas,
        telemetries,
        mesh_config: mesh_config.clone(),
        // Set once the passes are done: none of them reads them.
        fetched_jwks: Default::default(),
    };
    let checked = references::resolve(&by_kind.virtual_services, &snapshot);
    let virtual_services = settled.settle(checked, |served, id, previous| {
        let ConvertedResource::VirtualService(vs) = previous.resource.as_ref() else {
            return false;
        };
        let passes = references::unresolved(&snapshot, vs).is_empty();
        if passes {
            served.insert(id.clone(), (**vs).clone());
        }
        passes
    });
    snapshot.virtual_services = virtual_services.into_values().collect();
    Passed {
        snapshot,
        errors: settled.errors,
        rejected: settled.rejected,
        stand_ins: settled.stand_ins,
    }
}

/// The passes' results so far: their errors, and what they rejected.
struct Settled<'r, 'l> {
    resources: &'r BTreeMap<ResourceId, Accepted>,
    last_good: &'r mut LastGood<'l>,
    errors: Vec<ConfigError>,
    rejected: Vec<ResourceId>,
    stand_ins: Vec<(ResourceId, Accepted)>,
}

impl Settled<'_, '_> {
    /// Reports a pass's errors and settles what it rejected, the same way
    /// for every kind: a resource whose last good version `stand_in`
    /// accepts (it adds that version to what the pass serves if it passes
    /// now) is kept at that version; any other is dropped.
    fn settle<T>(
        &mut self,
        checked: Checked<T>,
        mut stand_in: impl FnMut(&mut T, &ResourceId, &Accepted) -> bool,
    ) -> T {
        let Checked {
            mut served,
            errors,
            rejected,
        } = checked;
        for (id, error) in errors {
            let origin = origin_of(self.resources.get(&id).map(|a| &a.origin), &id);
            self.errors.push(ConfigError {
                origin,
                resource: Some(id),
                error,
            });
        }
        for id in rejected {
            match self
                .last_good
                .stand_in(&id, |previous| stand_in(&mut served, &id, previous))
            {
                Some(previous) => self.stand_ins.push((id, previous)),
                None => self.rejected.push(id),
            }
        }
        served
    }
}

/// For kinds whose rejected resources are dropped, not kept at their last
/// good version: DestinationRules and ServiceEntries (never rejected
/// whole: what conflicts is left out of the snapshot), Sidecars, Quotas
/// and Telemetries.
fn no_stand_in<T>(_: &mut T, _: &ResourceId, _: &Accepted) -> bool {
    false
}

fn cloned<T: Clone>(list: &[&T]) -> Vec<T> {
    list.iter().map(|t| (*t).clone()).collect()
}

/// The resources of a reload by kind, each in resource order.
#[derive(Default)]
struct ByKind<'a> {
    services: Vec<Resource<'a, [Service]>>,
    virtual_services: Vec<Resource<'a, VirtualService>>,
    destination_rules: Vec<Resource<'a, DestinationRule>>,
    gateways: Vec<&'a Gateway>,
    sidecars: Vec<Resource<'a, Sidecar>>,
    peer_authentications: Vec<&'a PeerAuthentication>,
    request_authentications: Vec<&'a RequestAuthentication>,
    authorization_policies: Vec<&'a AuthorizationPolicy>,
    quotas: Vec<Resource<'a, Quota>>,
    telemetries: Vec<Resource<'a, Telemetry>>,
}

impl<'a> ByKind<'a> {
    fn sort(resources: &'a BTreeMap<ResourceId, Accepted>) -> Self {
        let mut by_kind = Self::default();
        for (id, accepted) in resources {
            match accepted.resource.as_ref() {
                ConvertedResource::Services(list) => by_kind.services.push((id, list)),
                ConvertedResource::VirtualService(vs) => by_kind.virtual_services.push((id, vs)),
                ConvertedResource::DestinationRule(rule) => {
                    by_kind.destination_rules.push((id, rule))
                }
                ConvertedResource::Gateway(gateway) => by_kind.gateways.push(gateway),
                ConvertedResource::Sidecar(sidecar) => by_kind.sidecars.push((id, sidecar)),
                ConvertedResource::PeerAuthentication(policy) => {
                    by_kind.peer_authentications.push(policy)
                }
                ConvertedResource::RequestAuthentication(policy) => {
                    by_kind.request_authentications.push(policy)
                }
                ConvertedResource::AuthorizationPolicy(policy) => {
                    by_kind.authorization_policies.push(policy)
                }
                ConvertedResource::Quota(quota) => by_kind.quotas.push((id, quota)),
                ConvertedResource::Telemetry(telemetry) => {
                    by_kind.telemetries.push((id, telemetry))
                }
            }
        }
        by_kind
    }
}
