//! One ADS stream's state: what the proxy subscribed to, what it was sent,
//! and what it accepted. Pure: requests and new resource sets in,
//! responses out; the server does the I/O.
//!
//! Clusters and listeners are sent whole: a state-of-the-world response
//! for a wildcard type removes what it leaves out. Load assignments and
//! route configurations are named, and a response need not repeat the ones
//! the proxy already holds, so a push sends only those whose content
//! changed (as istiod does for endpoints): churn in one service no longer
//! re-sends every service's endpoints to every proxy.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;

use weft_envoy_api::pb::envoy::service::discovery::v3::{DiscoveryRequest, DiscoveryResponse};

use super::resources::{Resource, version_of};
use super::{TypeUrl, ViewResources};

#[derive(Debug)]
pub struct SotwConnection {
    proxy: String,
    watches: BTreeMap<TypeUrl, Watch>,
    next_nonce: u64,
}

#[derive(Debug, Default)]
struct Watch {
    /// `None`: every resource of the type (wildcard).
    /// The names are the resource sets' own strings (see `delta::Held`).
    names: Option<BTreeSet<Arc<str>>>,
    /// Version and nonce of the last response sent.
    sent: Option<(String, String)>,
    /// The last version the proxy accepted.
    acked: Option<String>,
    /// Of a named type, the content hash of each resource sent, by a hash
    /// of its name; empty when the next response must be whole.
    held: HashMap<u64, u64>,
}

/// What a request meant, for logs and metrics.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RequestOutcome {
    /// A new or changed subscription.
    Subscribe,
    Ack {
        version: String,
    },
    /// The proxy rejected `version`; it stays on `kept` (if any).
    Nack {
        version: String,
        kept: Option<String>,
        message: String,
    },
    /// A reply to a response that a newer one replaced.
    Stale,
    UnknownType,
}

impl SotwConnection {
    pub fn new(proxy: impl Into<String>) -> Self {
        Self {
            proxy: proxy.into(),
            watches: BTreeMap::new(),
            next_nonce: 0,
        }
    }

    pub fn proxy(&self) -> &str {
        &self.proxy
    }

    /// The version of `type_url` the proxy last accepted.
    pub fn acked_version(&self, type_url: TypeUrl) -> Option<&str> {
        self.watches.get(&type_url)?.acked.as_deref()
    }

    /// Handles one request; returns what it meant and the responses due.
    pub fn on_request(
        &mut self,
        request: &DiscoveryRequest,
        resources: &ViewResources,
    ) -> (RequestOutcome, Vec<DiscoveryResponse>) {
        let Some(type_url) = TypeUrl::parse(&request.type_url) else {
            return (RequestOutcome::UnknownType, Vec::new());
        };
        let names = requested_names(type_url, &request.resource_names, resources);
        let watch = self.watches.entry(type_url).or_default();
        let first = watch.sent.is_none();
        if !request.response_nonce.is_empty() {
            let current = watch.sent.as_ref().map(|(_, nonce)| nonce.as_str());
            if current != Some(request.response_nonce.as_str()) {
                return (RequestOutcome::Stale, Vec::new());
            }
            if let Some(status) = &request.error_detail {
                let rejected = watch
                    .sent
                    .as_ref()
                    .map(|(v, _)| v.clone())
                    .unwrap_or_default();
                watch.names = names;
                // What it kept is unknown: the next response is whole.
                watch.held.clear();
                let outcome = RequestOutcome::Nack {
                    version: rejected,
                    kept: watch.acked.clone(),
                    message: status.message.clone(),
                };
                return (outcome, Vec::new());
            }
        }
        let changed = first || watch.names != names;
        watch.names = names;
        if !changed {
            watch.acked = Some(request.version_info.clone());
            let version = request.version_info.clone();
            return (RequestOutcome::Ack { version }, Vec::new());
        }
        if !request.response_nonce.is_empty() {
            watch.acked = Some(request.version_info.clone());
        }
        let response = self.respond(type_url, resources, Content::All);
        (RequestOutcome::Subscribe, vec![response])
    }

    /// The responses due after the proxy's resources changed: each watched
    /// type whose content changed, in CDS, EDS, LDS, RDS order. Endpoints
    /// follow a cluster update and routes a listener update even when they
    /// did not change, since Envoy waits for them to warm the new ones.
    pub fn on_resources(&mut self, resources: &ViewResources) -> Vec<DiscoveryResponse> {
        let mut sent = BTreeSet::new();
        let mut responses = Vec::new();
        for type_url in TypeUrl::ALL {
            let Some(watch) = self.watches.get(&type_url) else {
                continue;
            };
            let version = version_of(&resources.select(type_url, watch.names.as_ref()));
            let changed = watch.sent.as_ref().map(|(v, _)| v) != Some(&version);
            let follows = type_url.follows().is_some_and(|t| sent.contains(&t));
            if changed || follows {
                // Clusters and listeners being replaced wait for all of
                // their endpoints and routes: send those whole.
                let content = if follows {
                    Content::All
                } else {
                    Content::Changed
                };
                responses.push(self.respond(type_url, resources, content));
                sent.insert(type_url);
            }
        }
        responses
    }

    fn respond(
        &mut self,
        type_url: TypeUrl,
        resources: &ViewResources,
        content: Content,
    ) -> DiscoveryResponse {
        self.next_nonce += 1;
        let nonce = self.next_nonce.to_string();
        let watch = self.watches.entry(type_url).or_default();
        let selected = resources.select(type_url, watch.names.as_ref());
        let version = version_of(&selected);
        let included: Vec<&Resource> = if type_url.is_wildcard() {
            selected.iter().map(|(_, r)| *r).collect()
        } else {
            let held = std::mem::take(&mut watch.held);
            watch.held = selected
                .iter()
                .map(|(name, r)| (name_hash(name), r.hash))
                .collect();
            selected
                .iter()
                .filter(|(name, r)| {
                    content == Content::All || held.get(&name_hash(name)) != Some(&r.hash)
                })
                .map(|(_, r)| *r)
                .collect()
        };
        let response = DiscoveryResponse {
            version_info: version.clone(),
            resources: included.iter().map(|r| (*r.any).clone()).collect(),
            type_url: type_url.as_str().to_string(),
            nonce: nonce.clone(),
            ..Default::default()
        };
        watch.sent = Some((version, nonce));
        response
    }
}

/// Whether a response of a named type repeats what the proxy holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Content {
    All,
    Changed,
}

fn name_hash(name: &str) -> u64 {
    let mut hasher = DefaultHasher::new();
    name.hash(&mut hasher);
    hasher.finish()
}

/// `None` for a wildcard subscription: a wildcard type with no names, or
/// with `*` among them.
fn requested_names(
    type_url: TypeUrl,
    names: &[String],
    resources: &ViewResources,
) -> Option<BTreeSet<Arc<str>>> {
    if type_url.is_wildcard() && (names.is_empty() || names.iter().any(|n| n == "*")) {
        None
    } else {
        Some(
            names
                .iter()
                .map(|n| resources.shared_name(type_url, n))
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use weft_envoy_api::pb::google::rpc::Status;
    use weft_model::{
        Endpoint, MeshSnapshot, Protocol, Resolution, ResourceId, Service, ServicePort,
    };
    use weft_translate::ProxyView;

    fn mk_snapshot(version: u64, endpoint: &str) -> MeshSnapshot {
        let service = Service {
            hostname: "reviews.default.svc.cluster.local".into(),
            namespace: "default".into(),
            ports: vec![ServicePort {
                name: "http".into(),
                number: 9080,
                protocol: Protocol::Http,
                target_port: None,
            }],
            resolution: Resolution::Static,
            endpoints: vec![Endpoint {
                address: endpoint.into(),
                ports: Default::default(),
                labels: Default::default(),
                weight: None,
                ..Default::default()
            }],
            export_to: Vec::new(),
            origin: ResourceId::new(weft_model::Kind::ServiceEntry, "default", "reviews"),
            ..Default::default()
        };
        MeshSnapshot {
            version,
            services: [(service.hostname.clone(), service)].into(),
            ..Default::default()
        }
    }

    fn mk_request(
        type_url: TypeUrl,
        names: &[&str],
        reply_to: Option<&DiscoveryResponse>,
    ) -> DiscoveryRequest {
        DiscoveryRequest {
            type_url: type_url.as_str().into(),
            resource_names: names.iter().map(|n| n.to_string()).collect(),
            version_info: reply_to.map(|r| r.version_info.clone()).unwrap_or_default(),
            response_nonce: reply_to.map(|r| r.nonce.clone()).unwrap_or_default(),
            ..Default::default()
        }
    }

    fn resources(snapshot: &MeshSnapshot) -> ViewResources {
        ViewResources::build(snapshot, &ProxyView::default())
    }

    const EDS_NAME: &str = "outbound|9080||reviews.default.svc.cluster.local";

    #[test]
    fn first_request_is_answered_and_ack_is_not() {
        let r = resources(&mk_snapshot(1, "10.0.0.1"));
        let mut conn = SotwConnection::new("p1");
        let (outcome, out) = conn.on_request(&mk_request(TypeUrl::Cluster, &[], None), &r);
        assert_eq!(outcome, RequestOutcome::Subscribe);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].resources.len(), 1);
        let (outcome, out2) =
            conn.on_request(&mk_request(TypeUrl::Cluster, &[], Some(&out[0])), &r);
        assert_eq!(
            outcome,
            RequestOutcome::Ack {
                version: out[0].version_info.clone()
            }
        );
        assert!(out2.is_empty());
        assert_eq!(
            conn.acked_version(TypeUrl::Cluster),
            Some(out[0].version_info.as_str())
        );
    }

    #[test]
    fn only_changed_types_are_pushed() {
        let r1 = resources(&mk_snapshot(1, "10.0.0.1"));
        let mut conn = SotwConnection::new("p1");
        let (_, cds) = conn.on_request(&mk_request(TypeUrl::Cluster, &[], None), &r1);
        let (_, eds) = conn.on_request(
            &mk_request(TypeUrl::ClusterLoadAssignment, &[EDS_NAME], None),
            &r1,
        );
        conn.on_request(&mk_request(TypeUrl::Cluster, &[], Some(&cds[0])), &r1);
        conn.on_request(
            &mk_request(TypeUrl::ClusterLoadAssignment, &[EDS_NAME], Some(&eds[0])),
            &r1,
        );
        assert!(conn.on_resources(&r1).is_empty(), "nothing changed");

        let r2 = resources(&mk_snapshot(2, "10.0.0.2"));
        let pushed = conn.on_resources(&r2);
        let types: Vec<&str> = pushed.iter().map(|r| r.type_url.as_str()).collect();
        assert_eq!(
            types,
            vec![TypeUrl::ClusterLoadAssignment.as_str()],
            "endpoint churn touches EDS only"
        );
    }

    /// Two services, `ratings` always at 10.0.1.1.
    fn two_services(version: u64, reviews_at: &str) -> MeshSnapshot {
        let mut snapshot = mk_snapshot(version, reviews_at);
        let mut ratings = snapshot.services[REVIEWS].clone();
        ratings.hostname = "ratings.default.svc.cluster.local".into();
        ratings.endpoints[0].address = "10.0.1.1".into();
        snapshot.services.insert(ratings.hostname.clone(), ratings);
        snapshot
    }

    const REVIEWS: &str = "reviews.default.svc.cluster.local";
    const RATINGS_EDS: &str = "outbound|9080||ratings.default.svc.cluster.local";

    fn eds_names(response: &DiscoveryResponse) -> Vec<String> {
        response
            .resources
            .iter()
            .map(|any| {
                use prost::Message;
                weft_envoy_api::pb::envoy::config::endpoint::v3::ClusterLoadAssignment::decode(
                    any.value.as_slice(),
                )
                .unwrap()
                .cluster_name
            })
            .collect()
    }

    /// Subscribes to both services' endpoints and ACKs; returns the EDS
    /// response.
    fn subscribed(conn: &mut SotwConnection, r: &ViewResources) -> DiscoveryResponse {
        let names = [EDS_NAME, RATINGS_EDS];
        let (_, cds) = conn.on_request(&mk_request(TypeUrl::Cluster, &[], None), r);
        conn.on_request(&mk_request(TypeUrl::Cluster, &[], Some(&cds[0])), r);
        let (_, eds) =
            conn.on_request(&mk_request(TypeUrl::ClusterLoadAssignment, &names, None), r);
        conn.on_request(
            &mk_request(TypeUrl::ClusterLoadAssignment, &names, Some(&eds[0])),
            r,
        );
        eds[0].clone()
    }

    #[test]
    fn an_endpoint_push_sends_only_the_load_assignments_that_changed() {
        let r1 = resources(&two_services(1, "10.0.0.1"));
        let mut conn = SotwConnection::new("p1");
        let first = subscribed(&mut conn, &r1);
        assert_eq!(eds_names(&first).len(), 2, "the first response is whole");

        let r2 = resources(&two_services(2, "10.0.0.2"));
        let pushed = conn.on_resources(&r2);
        assert_eq!(pushed.len(), 1);
        assert_eq!(eds_names(&pushed[0]), [EDS_NAME]);
        assert_ne!(pushed[0].version_info, first.version_info);
    }

    #[test]
    fn after_a_nack_the_next_endpoint_push_is_whole() {
        let r1 = resources(&two_services(1, "10.0.0.1"));
        let mut conn = SotwConnection::new("p1");
        subscribed(&mut conn, &r1);
        let r2 = resources(&two_services(2, "10.0.0.2"));
        let pushed = conn.on_resources(&r2);
        let mut nack = mk_request(
            TypeUrl::ClusterLoadAssignment,
            &[EDS_NAME, RATINGS_EDS],
            Some(&pushed[0]),
        );
        nack.error_detail = Some(Status {
            code: 3,
            message: "bad endpoints".into(),
            details: vec![],
        });
        conn.on_request(&nack, &r2);

        let r3 = resources(&two_services(3, "10.0.0.3"));
        let pushed = conn.on_resources(&r3);
        assert_eq!(eds_names(&pushed[0]).len(), 2);
    }

    #[test]
    fn a_nack_is_reported_and_keeps_the_acked_version() {
        let r = resources(&mk_snapshot(1, "10.0.0.1"));
        let mut conn = SotwConnection::new("p1");
        let (_, first) = conn.on_request(&mk_request(TypeUrl::Cluster, &[], None), &r);
        conn.on_request(&mk_request(TypeUrl::Cluster, &[], Some(&first[0])), &r);
        let r2 = resources(&mk_snapshot(2, "10.0.0.1").tap_add_port());
        let pushed = conn.on_resources(&r2);
        assert_eq!(pushed.len(), 1);
        let mut nack = mk_request(TypeUrl::Cluster, &[], Some(&pushed[0]));
        nack.version_info = first[0].version_info.clone();
        nack.error_detail = Some(Status {
            code: 3,
            message: "bad cluster".into(),
            details: vec![],
        });
        let (outcome, out) = conn.on_request(&nack, &r2);
        assert_eq!(
            outcome,
            RequestOutcome::Nack {
                version: pushed[0].version_info.clone(),
                kept: Some(first[0].version_info.clone()),
                message: "bad cluster".into()
            }
        );
        assert!(
            out.is_empty(),
            "a NACK is not answered with the same config"
        );
        assert!(
            conn.on_resources(&r2).is_empty(),
            "and not re-sent until the config changes"
        );
    }

    #[test]
    fn stale_nonces_are_ignored() {
        let r = resources(&mk_snapshot(1, "10.0.0.1"));
        let mut conn = SotwConnection::new("p1");
        let (_, first) = conn.on_request(&mk_request(TypeUrl::Cluster, &[], None), &r);
        let r2 = resources(&mk_snapshot(2, "10.0.0.1").tap_add_port());
        let _second = conn.on_resources(&r2);
        let (outcome, out) =
            conn.on_request(&mk_request(TypeUrl::Cluster, &[], Some(&first[0])), &r2);
        assert_eq!(outcome, RequestOutcome::Stale);
        assert!(out.is_empty());
    }

    trait TapAddPort {
        fn tap_add_port(self) -> Self;
    }
    impl TapAddPort for MeshSnapshot {
        fn tap_add_port(mut self) -> Self {
            for s in self.services.values_mut() {
                s.ports.push(ServicePort {
                    name: "grpc".into(),
                    number: 9090,
                    protocol: Protocol::Grpc,
                    target_port: None,
                });
            }
            self
        }
    }
}
