//! One ADS stream's state: what the proxy subscribed to, what it was sent,
//! and what it accepted. Pure: requests and new resource sets in,
//! responses out; the server does the I/O.

use std::collections::{BTreeMap, BTreeSet};

use envoy_types::pb::envoy::service::discovery::v3::{DiscoveryRequest, DiscoveryResponse};

use super::resources::version_of;
use super::{TypeUrl, ViewResources};

#[derive(Debug)]
pub struct Connection {
    proxy: String,
    watches: BTreeMap<TypeUrl, Watch>,
    next_nonce: u64,
}

#[derive(Debug, Default)]
struct Watch {
    /// `None`: every resource of the type (wildcard).
    names: Option<BTreeSet<String>>,
    /// Version and nonce of the last response sent.
    sent: Option<(String, String)>,
    /// The last version the proxy accepted.
    acked: Option<String>,
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

impl Connection {
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
        let names = requested_names(type_url, &request.resource_names);
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
        let response = self.respond(type_url, resources);
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
                responses.push(self.respond(type_url, resources));
                sent.insert(type_url);
            }
        }
        responses
    }

    fn respond(&mut self, type_url: TypeUrl, resources: &ViewResources) -> DiscoveryResponse {
        self.next_nonce += 1;
        let nonce = self.next_nonce.to_string();
        let watch = self.watches.entry(type_url).or_default();
        let selected = resources.select(type_url, watch.names.as_ref());
        let version = version_of(&selected);
        let response = DiscoveryResponse {
            version_info: version.clone(),
            resources: selected.iter().map(|(_, r)| (*r.any).clone()).collect(),
            type_url: type_url.as_str().to_string(),
            nonce: nonce.clone(),
            ..Default::default()
        };
        watch.sent = Some((version, nonce));
        response
    }
}

/// `None` for a wildcard subscription: a wildcard type with no names, or
/// with `*` among them.
fn requested_names(type_url: TypeUrl, names: &[String]) -> Option<BTreeSet<String>> {
    if type_url.is_wildcard() && (names.is_empty() || names.iter().any(|n| n == "*")) {
        None
    } else {
        Some(names.iter().cloned().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{
        Endpoint, MeshSnapshot, Protocol, Resolution, ResourceId, Service, ServicePort,
    };
    use crate::translate::ProxyView;
    use envoy_types::pb::google::rpc::Status;

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
            origin: ResourceId::new("ServiceEntry", "default", "reviews"),
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
        let mut conn = Connection::new("p1");
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
        let mut conn = Connection::new("p1");
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

    #[test]
    fn a_nack_is_reported_and_keeps_the_acked_version() {
        let r = resources(&mk_snapshot(1, "10.0.0.1"));
        let mut conn = Connection::new("p1");
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
        let mut conn = Connection::new("p1");
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
