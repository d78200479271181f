//! A view's Envoy resources, encoded once, each with a content hash.

use std::collections::BTreeMap;
use std::hash::{DefaultHasher, Hash, Hasher};

use weft_envoy_api::pb::google::protobuf::Any;
use weft_envoy_api::util::pack_any;

use std::collections::BTreeSet;
use std::sync::Arc;

use prost::{Message, Name};
use weft_envoy_api::pb::envoy::config::route::v3::{RouteConfiguration, VirtualHost};

use super::incremental::{ChangeSet, diff, narrowed_to_hosts, narrowed_to_routes};
use weft_model::MeshSnapshot;
use weft_translate::{ProxyView, ROUTER_ROUTE_CONFIG};

/// The resource types Weft serves, in the order a push sends them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TypeUrl {
    Cluster,
    ClusterLoadAssignment,
    Listener,
    RouteConfiguration,
}

impl TypeUrl {
    pub const ALL: [TypeUrl; 4] = [
        TypeUrl::Cluster,
        TypeUrl::ClusterLoadAssignment,
        TypeUrl::Listener,
        TypeUrl::RouteConfiguration,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TypeUrl::Cluster => "type.googleapis.com/envoy.config.cluster.v3.Cluster",
            TypeUrl::ClusterLoadAssignment => {
                "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
            }
            TypeUrl::Listener => "type.googleapis.com/envoy.config.listener.v3.Listener",
            TypeUrl::RouteConfiguration => {
                "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"
            }
        }
    }

    pub fn parse(url: &str) -> Option<TypeUrl> {
        TypeUrl::ALL.into_iter().find(|t| t.as_str() == url)
    }

    /// Wildcard types send every resource; the others only those named.
    pub fn is_wildcard(self) -> bool {
        matches!(self, TypeUrl::Cluster | TypeUrl::Listener)
    }

    /// The type whose update makes Envoy wait for this one: clusters warm on
    /// their endpoints, listeners on their routes.
    pub fn follows(self) -> Option<TypeUrl> {
        match self {
            TypeUrl::ClusterLoadAssignment => Some(TypeUrl::Cluster),
            TypeUrl::RouteConfiguration => Some(TypeUrl::Listener),
            TypeUrl::Cluster | TypeUrl::Listener => None,
        }
    }
}

/// One encoded resource.
#[derive(Clone, Debug, PartialEq)]
pub struct Resource {
    /// Shared: resource sets of many views and snapshots hold the same one.
    pub any: Arc<Any>,
    pub hash: u64,
}

/// Resources by name. The names are shared, so that connections can keep
/// the names they were sent without copies of their own.
type Named = BTreeMap<Arc<str>, Resource>;

/// Every resource of one view, by type and name, plus the router's virtual
/// hosts by service host, so that an update can replace some of them.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ViewResources {
    by_type: BTreeMap<TypeUrl, Named>,
    router_hosts: BTreeMap<String, Arc<RouterHost>>,
    router_template: Option<RouteConfiguration>,
}

impl ViewResources {
    /// Translates `snapshot` for `view` and encodes the result.
    pub fn build(snapshot: &MeshSnapshot, view: &ProxyView) -> ViewResources {
        let mut resources = ViewResources::default();
        resources.set(
            TypeUrl::Cluster,
            encode(weft_translate::build_clusters(snapshot, view), |c| {
                c.name.clone()
            }),
        );
        resources.set(
            TypeUrl::ClusterLoadAssignment,
            encode(
                weft_translate::build_load_assignments(snapshot, view),
                |c| c.cluster_name.clone(),
            ),
        );
        resources.set(
            TypeUrl::Listener,
            encode(weft_translate::build_listeners(snapshot, view), |l| {
                l.name.clone()
            }),
        );
        resources.set_routes(weft_translate::build_route_configs(snapshot, view), None);
        resources
    }

    /// The resources of `view` after the change from `transition.old` to
    /// `transition.new`, rebuilding only what the change touches.
    pub fn update(&self, transition: &Transition, view: &ProxyView) -> ViewResources {
        let changes = &transition.changes;
        // A captured proxy's listeners and inbound clusters depend on
        // endpoints (which are its own), which the narrowing below does not
        // track: rebuild it whole.
        if changes.full || view.capture {
            return ViewResources::build(&transition.new, view);
        }
        let mut next = self.clone();
        if !changes.clusters.is_empty() {
            let built = weft_translate::build_clusters(&transition.clusters_input, view);
            next.replace_hosts(
                TypeUrl::Cluster,
                &changes.clusters,
                encode(built, |c| c.name.clone()),
            );
        }
        if !changes.endpoints.is_empty() {
            let built = weft_translate::build_load_assignments(&transition.endpoints_input, view);
            next.replace_hosts(
                TypeUrl::ClusterLoadAssignment,
                &changes.endpoints,
                encode(built, |c| c.cluster_name.clone()),
            );
        }
        if changes.listeners {
            next.set(
                TypeUrl::Listener,
                encode(
                    weft_translate::build_listeners(&transition.new, view),
                    |l| l.name.clone(),
                ),
            );
        }
        if changes.all_routes || view.role != weft_translate::ProxyRole::Sidecar {
            if changes.all_routes || !changes.routes.is_empty() {
                next.set_routes(
                    weft_translate::build_route_configs(&transition.new, view),
                    None,
                );
            }
        } else if !changes.routes.is_empty() {
            let built = weft_translate::build_route_configs(&transition.routes_input, view);
            next.set_routes(built, Some(&changes.routes));
        }
        next
    }

    fn set(&mut self, type_url: TypeUrl, resources: Named) {
        self.by_type.insert(type_url, resources);
    }

    /// Replaces the resources of `hosts` (by the host their name ends
    /// with, `outbound|port|subset|host`) with `built`'s.
    fn replace_hosts(&mut self, type_url: TypeUrl, hosts: &BTreeSet<String>, built: Named) {
        let current = self.by_type.entry(type_url).or_default();
        current.retain(|name, _| !cluster_host(name).is_some_and(|h| hosts.contains(h)));
        current.extend(
            built
                .into_iter()
                .filter(|(name, _)| cluster_host(name).is_some_and(|h| hosts.contains(h))),
        );
    }

    /// The resources of `type_url` a request for `names` gets: all of them
    /// for a wildcard request, else those named that exist.
    pub fn select<'a>(
        &'a self,
        type_url: TypeUrl,
        names: Option<&BTreeSet<Arc<str>>>,
    ) -> Vec<(&'a str, &'a Resource)> {
        self.select_shared(type_url, names)
            .into_iter()
            .map(|(n, r)| (&**n, r))
            .collect()
    }

    /// [`ViewResources::select`], with the names as the set holds them.
    pub fn select_shared<'a>(
        &'a self,
        type_url: TypeUrl,
        names: Option<&BTreeSet<Arc<str>>>,
    ) -> Vec<(&'a Arc<str>, &'a Resource)> {
        let Some(all) = self.by_type.get(&type_url) else {
            return Vec::new();
        };
        match names {
            None => all.iter().collect(),
            Some(names) => names
                .iter()
                .filter_map(|n| all.get_key_value(&**n))
                .collect(),
        }
    }

    /// `name` as the set holds it, if it holds a `type_url` of that name;
    /// else a string of its own.
    pub fn shared_name(&self, type_url: TypeUrl, name: &str) -> Arc<str> {
        self.by_type
            .get(&type_url)
            .and_then(|all| all.get_key_value(name))
            .map_or_else(|| Arc::from(name), |(n, _)| n.clone())
    }

    /// Takes route configurations; with `only`, just the router's virtual
    /// hosts of those hosts are taken from `built` and the rest kept.
    fn set_routes(&mut self, built: Vec<RouteConfiguration>, only: Option<&BTreeSet<String>>) {
        if only.is_none() {
            self.router_hosts.clear();
            self.router_template = None;
        }
        let mut others = Vec::new();
        for config in built {
            if config.name != ROUTER_ROUTE_CONFIG {
                others.push(config);
                continue;
            }
            let mut by_host: BTreeMap<String, Vec<VirtualHost>> = BTreeMap::new();
            for vhost in &config.virtual_hosts {
                by_host
                    .entry(vhost_host(&vhost.name).to_string())
                    .or_default()
                    .push(vhost.clone());
            }
            match only {
                None => {
                    self.router_hosts = by_host
                        .into_iter()
                        .map(|(h, v)| (h, Arc::new(RouterHost::new(v))))
                        .collect()
                }
                Some(hosts) => {
                    for host in hosts {
                        match by_host.remove(host) {
                            Some(vhosts) => self
                                .router_hosts
                                .insert(host.clone(), Arc::new(RouterHost::new(vhosts))),
                            None => self.router_hosts.remove(host),
                        };
                    }
                }
            }
            self.router_template = Some(RouteConfiguration {
                virtual_hosts: Vec::new(),
                ..config
            });
        }
        // With `only`, the other configurations are kept as they were.
        let configs = if only.is_some() { Vec::new() } else { others };
        let mut encoded = encode(configs, |r| r.name.clone());
        if let Some(template) = &self.router_template {
            encoded.insert(
                template.name.as_str().into(),
                assemble_router(template, &self.router_hosts),
            );
        }
        match only {
            None => self.set(TypeUrl::RouteConfiguration, encoded),
            Some(_) => self
                .by_type
                .entry(TypeUrl::RouteConfiguration)
                .or_default()
                .extend(encoded),
        }
    }
}

fn resource(any: Any) -> Resource {
    let mut hasher = DefaultHasher::new();
    any.value.hash(&mut hasher);
    Resource {
        hash: hasher.finish(),
        any: Arc::new(any),
    }
}

/// The version of a set of resources: a hash of their names and contents.
pub fn version_of(selected: &[(&str, &Resource)]) -> String {
    let mut hasher = DefaultHasher::new();
    for (name, resource) in selected {
        name.hash(&mut hasher);
        resource.hash.hash(&mut hasher);
    }
    format!("{:016x}", hasher.finish())
}

fn encode<T: prost::Name + prost::Message>(items: Vec<T>, name: impl Fn(&T) -> String) -> Named {
    items
        .into_iter()
        .map(|item| {
            let key: Arc<str> = name(&item).into();
            let any = pack_any(item);
            let mut hasher = DefaultHasher::new();
            any.value.hash(&mut hasher);
            let hash = hasher.finish();
            (
                key,
                Resource {
                    any: Arc::new(any),
                    hash,
                },
            )
        })
        .collect()
}

/// One snapshot change, with the narrowed inputs every view's update
/// shares: computed once per change, not once per view.
#[derive(Debug)]
pub struct Transition {
    pub new: std::sync::Arc<MeshSnapshot>,
    pub changes: ChangeSet,
    clusters_input: MeshSnapshot,
    endpoints_input: MeshSnapshot,
    routes_input: MeshSnapshot,
}

impl Transition {
    pub fn new(old: &MeshSnapshot, new: std::sync::Arc<MeshSnapshot>) -> Transition {
        let changes = diff(old, &new);
        let empty = || MeshSnapshot::default();
        let (clusters_input, endpoints_input, routes_input) = if changes.full {
            (empty(), empty(), empty())
        } else {
            (
                narrowed_to_hosts(&new, &changes.clusters),
                narrowed_to_hosts(&new, &changes.endpoints),
                narrowed_to_routes(&new, &changes.routes),
            )
        };
        Transition {
            new,
            changes,
            clusters_input,
            endpoints_input,
            routes_input,
        }
    }
}

/// The host a cluster or load assignment is for (`outbound|9080|v1|host`).
fn cluster_host(name: &str) -> Option<&str> {
    name.strip_prefix("outbound|")
        .and_then(|rest| rest.rsplit_once('|'))
        .map(|(_, host)| host)
}

/// The service host of a router virtual host (`host:port`).
fn vhost_host(name: &str) -> &str {
    name.rsplit_once(':').map_or(name, |(host, _)| host)
}

/// One service's router virtual hosts, typed and encoded.
#[derive(Debug, PartialEq)]
struct RouterHost {
    vhosts: Vec<VirtualHost>,
    encoded: Vec<Vec<u8>>,
}

impl RouterHost {
    fn new(vhosts: Vec<VirtualHost>) -> Self {
        let encoded = vhosts.iter().map(Message::encode_to_vec).collect();
        Self { vhosts, encoded }
    }
}

/// The router configuration from its virtual hosts in host order; a domain
/// is kept by the first virtual host that claims it, as in a full build.
/// Protobuf encodes a repeated field as its elements one after the other,
/// so the unchanged virtual hosts are appended as the bytes encoded when
/// they were built, not encoded again.
fn assemble_router(
    template: &RouteConfiguration,
    hosts: &BTreeMap<String, Arc<RouterHost>>,
) -> Resource {
    const VIRTUAL_HOSTS_FIELD: u32 = 2;
    let mut bytes = template.encode_to_vec();
    let mut append = |message: &[u8]| {
        prost::encoding::encode_key(
            VIRTUAL_HOSTS_FIELD,
            prost::encoding::WireType::LengthDelimited,
            &mut bytes,
        );
        prost::encoding::encode_varint(message.len() as u64, &mut bytes);
        bytes.extend_from_slice(message);
    };
    let mut taken = BTreeSet::new();
    for host in hosts.values() {
        for (vhost, encoded) in host.vhosts.iter().zip(&host.encoded) {
            let domains: Vec<String> = vhost
                .domains
                .iter()
                .filter(|d| taken.insert((*d).clone()))
                .cloned()
                .collect();
            if domains.len() == vhost.domains.len() {
                append(encoded);
            } else if !domains.is_empty() {
                append(
                    &VirtualHost {
                        domains,
                        ..vhost.clone()
                    }
                    .encode_to_vec(),
                );
            }
        }
    }
    resource(Any {
        type_url: RouteConfiguration::type_url(),
        value: bytes,
    })
}
