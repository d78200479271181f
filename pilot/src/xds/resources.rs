//! A view's Envoy resources, encoded once, each with a content hash.

use std::collections::BTreeMap;
use std::hash::{DefaultHasher, Hash, Hasher};

use envoy_types::pb::google::protobuf::Any;
use envoy_types::util::pack_any;

use crate::model::MeshSnapshot;
use crate::translate::{self, ProxyView};

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
    pub any: Any,
    pub hash: u64,
}

/// Every resource of one view, by type and name.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ViewResources {
    by_type: BTreeMap<TypeUrl, BTreeMap<String, Resource>>,
}

impl ViewResources {
    /// Translates `snapshot` for `view` and encodes the result.
    pub fn build(snapshot: &MeshSnapshot, view: &ProxyView) -> ViewResources {
        let mut by_type = BTreeMap::new();
        by_type.insert(
            TypeUrl::Cluster,
            encode(translate::build_clusters(snapshot, view), |c| {
                c.name.clone()
            }),
        );
        by_type.insert(
            TypeUrl::ClusterLoadAssignment,
            encode(translate::build_load_assignments(snapshot, view), |c| {
                c.cluster_name.clone()
            }),
        );
        by_type.insert(
            TypeUrl::Listener,
            encode(translate::build_listeners(snapshot, view), |l| {
                l.name.clone()
            }),
        );
        by_type.insert(
            TypeUrl::RouteConfiguration,
            encode(translate::build_route_configs(snapshot, view), |r| {
                r.name.clone()
            }),
        );
        ViewResources { by_type }
    }

    /// The resources of `type_url` a request for `names` gets: all of them
    /// for a wildcard request, else those named that exist.
    pub fn select<'a>(
        &'a self,
        type_url: TypeUrl,
        names: Option<&'a std::collections::BTreeSet<String>>,
    ) -> Vec<(&'a str, &'a Resource)> {
        let Some(all) = self.by_type.get(&type_url) else {
            return Vec::new();
        };
        match names {
            None => all.iter().map(|(n, r)| (n.as_str(), r)).collect(),
            Some(names) => names
                .iter()
                .filter_map(|n| all.get_key_value(n))
                .map(|(n, r)| (n.as_str(), r))
                .collect(),
        }
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

fn encode<T: prost::Name + prost::Message>(
    items: Vec<T>,
    name: impl Fn(&T) -> String,
) -> BTreeMap<String, Resource> {
    items
        .into_iter()
        .map(|item| {
            let key = name(&item);
            let any = pack_any(item);
            let mut hasher = DefaultHasher::new();
            any.value.hash(&mut hasher);
            let hash = hasher.finish();
            (key, Resource { any, hash })
        })
        .collect()
}
