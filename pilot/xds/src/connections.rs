//! Who is connected, and how far each proxy's config has got: per stream
//! and resource type, the version and nonce last sent, the nonce last
//! acknowledged and the standing rejection (NACK). The ADS streams record
//! here; the debug endpoints (`/debug/syncz`, `/debug/connections`, Istio's
//! `istio.io/debug/syncz`) read it.
//!
//! A type's sync state follows istiod's rule ([`SyncState`]): ERROR while a
//! NACK stands, NOT SENT before the first response, SYNCED when the last
//! nonce sent is the last one acknowledged, STALE otherwise.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::SystemTime;

use weft_envoy_api::pb::envoy::config::core::v3::Node;
use weft_envoy_api::pb::envoy::config::core::v3::node::UserAgentVersionType;
use weft_envoy_api::pb::google::protobuf::value::Kind;
use weft_translate::ProxyView;

use super::TypeUrl;
use super::metrics::XdsProtocol;

/// A stream's number, unique for the life of the process.
pub type ConnectionId = u64;

/// Every open ADS stream of a server; cheap to clone.
#[derive(Clone, Debug, Default)]
pub struct Connections {
    open: Arc<Mutex<BTreeMap<ConnectionId, Connection>>>,
    next_id: Arc<AtomicU64>,
}

/// One open stream.
#[derive(Clone, Debug)]
pub struct Connection {
    pub id: ConnectionId,
    /// The Envoy node id (`sidecar~10.1.0.4~reviews-v1-7d9.default~...`).
    pub node_id: String,
    pub node: NodeInfo,
    /// What its config is computed from.
    pub view: ProxyView,
    /// The peer's address, as the transport saw it.
    pub peer: String,
    pub protocol: XdsProtocol,
    pub connected_at: SystemTime,
    pub types: BTreeMap<TypeUrl, TypeSync>,
}

/// What a proxy said about itself in its node metadata.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeInfo {
    /// Istio's `CLUSTER_ID` (`Kubernetes` by default).
    pub cluster_id: String,
    /// Istio's `ISTIO_VERSION`, or Envoy's user agent version.
    pub version: String,
}

/// One resource type of one stream.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TypeSync {
    pub sent: Option<Sent>,
    /// The nonce and version of the last response the proxy accepted.
    pub acked: Option<Acked>,
    /// The NACK that stands (no ACK of this type came after it).
    pub rejected: Option<Rejected>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sent {
    pub version: String,
    pub nonce: String,
    pub at: SystemTime,
    /// Resources in the response (updated plus removed, for delta).
    pub resources: usize,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Acked {
    pub version: String,
    pub nonce: String,
    pub at: SystemTime,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejected {
    pub version: String,
    /// Envoy's error text.
    pub message: String,
    pub at: SystemTime,
}

/// istiod's sync states (`istioctl proxy-status`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SyncState {
    Synced,
    NotSent,
    Stale,
    Error,
}

impl SyncState {
    pub fn as_str(self) -> &'static str {
        match self {
            SyncState::Synced => "SYNCED",
            SyncState::NotSent => "NOT SENT",
            SyncState::Stale => "STALE",
            SyncState::Error => "ERROR",
        }
    }
}

impl TypeSync {
    pub fn state(&self) -> SyncState {
        match (&self.rejected, &self.sent, &self.acked) {
            (Some(_), _, _) => SyncState::Error,
            (None, None, _) => SyncState::NotSent,
            (None, Some(sent), Some(acked)) if sent.nonce == acked.nonce => SyncState::Synced,
            (None, Some(_), _) => SyncState::Stale,
        }
    }
}

impl Connection {
    /// Istio's proxy id: `<pod>.<namespace>`, the third part of a
    /// `type~ip~pod.namespace~domain` node id, else the node id itself.
    pub fn proxy_id(&self) -> &str {
        proxy_id(&self.node_id)
    }

    /// Whether `name` names this proxy, by node id or by Istio's proxy id.
    pub fn is_named(&self, name: &str) -> bool {
        self.node_id == name || self.proxy_id() == name
    }
}

/// `<pod>.<namespace>` of a `type~ip~pod.namespace~domain` node id, else
/// the whole id.
pub fn proxy_id(node_id: &str) -> &str {
    let parts: Vec<&str> = node_id.split('~').collect();
    match parts.as_slice() {
        [_, _, id, _] if !id.is_empty() => id,
        _ => node_id,
    }
}

impl NodeInfo {
    pub fn from_node(node: &Node) -> NodeInfo {
        let field = |key: &str| {
            node.metadata
                .as_ref()
                .and_then(|m| m.fields.get(key))
                .and_then(|v| match &v.kind {
                    Some(Kind::StringValue(s)) => Some(s.clone()),
                    _ => None,
                })
        };
        NodeInfo {
            cluster_id: field("CLUSTER_ID").unwrap_or_else(|| "Kubernetes".to_string()),
            version: field("ISTIO_VERSION").unwrap_or_else(|| user_agent(node)),
        }
    }
}

/// `envoy 1.40.0`: the agent's name and version, as the node says them.
fn user_agent(node: &Node) -> String {
    let version = match &node.user_agent_version_type {
        Some(UserAgentVersionType::UserAgentVersion(v)) => v.clone(),
        Some(UserAgentVersionType::UserAgentBuildVersion(build)) => build
            .version
            .as_ref()
            .map(|v| format!("{}.{}.{}", v.major_number, v.minor_number, v.patch))
            .unwrap_or_default(),
        None => String::new(),
    };
    format!("{} {version}", node.user_agent_name)
        .trim()
        .to_string()
}

impl Connections {
    /// Records a new stream; the returned guard forgets it when dropped.
    pub fn open(
        &self,
        node: &Node,
        view: ProxyView,
        peer: String,
        protocol: XdsProtocol,
        now: SystemTime,
    ) -> OpenConnection {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let connection = Connection {
            id,
            node_id: node.id.clone(),
            node: NodeInfo::from_node(node),
            view,
            peer,
            protocol,
            connected_at: now,
            types: BTreeMap::new(),
        };
        self.lock().insert(id, connection);
        OpenConnection {
            connections: self.clone(),
            id,
        }
    }

    /// Every open stream, by id (oldest first).
    pub fn list(&self) -> Vec<Connection> {
        self.lock().values().cloned().collect()
    }

    /// The newest stream of the proxy `name` (node id or Istio's
    /// `<pod>.<namespace>`).
    pub fn find(&self, name: &str) -> Option<Connection> {
        self.lock()
            .values()
            .rev()
            .find(|c| c.is_named(name))
            .cloned()
    }

    fn update(&self, id: ConnectionId, type_url: TypeUrl, change: impl FnOnce(&mut TypeSync)) {
        if let Some(connection) = self.lock().get_mut(&id) {
            change(connection.types.entry(type_url).or_default());
        }
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<ConnectionId, Connection>> {
        // Each write is one insert, remove or field update: a panic while
        // holding the lock cannot leave the map inconsistent.
        self.open.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A stream's entry in [`Connections`]; dropping it removes the entry.
#[derive(Debug)]
pub struct OpenConnection {
    connections: Connections,
    id: ConnectionId,
}

impl OpenConnection {
    /// A response went out.
    pub fn sent(&self, type_url: TypeUrl, sent: Sent) {
        self.connections
            .update(self.id, type_url, |t| t.sent = Some(sent));
    }

    /// The proxy accepted the response with `nonce`.
    pub fn acked(&self, type_url: TypeUrl, acked: Acked) {
        self.connections.update(self.id, type_url, |t| {
            t.acked = Some(acked);
            t.rejected = None;
        });
    }

    /// The proxy rejected the response with `nonce`.
    pub fn rejected(&self, type_url: TypeUrl, rejected: Rejected) {
        self.connections
            .update(self.id, type_url, |t| t.rejected = Some(rejected));
    }

    /// The proxy subscribed to `type_url` (nothing sent yet).
    pub fn subscribed(&self, type_url: TypeUrl) {
        self.connections.update(self.id, type_url, |_| {});
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.connections.lock().remove(&self.id);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn at(seconds: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(seconds)
    }

    fn sent(nonce: &str) -> Sent {
        Sent {
            version: format!("v{nonce}"),
            nonce: nonce.to_string(),
            at: at(1),
            resources: 3,
        }
    }

    fn acked(nonce: &str) -> Acked {
        Acked {
            version: format!("v{nonce}"),
            nonce: nonce.to_string(),
            at: at(2),
        }
    }

    #[test]
    fn states_follow_istiods_rule() {
        let mut sync = TypeSync::default();
        assert_eq!(sync.state(), SyncState::NotSent);
        sync.sent = Some(sent("1"));
        assert_eq!(sync.state(), SyncState::Stale);
        sync.acked = Some(acked("1"));
        assert_eq!(sync.state(), SyncState::Synced);
        sync.sent = Some(sent("2"));
        assert_eq!(sync.state(), SyncState::Stale);
        sync.rejected = Some(Rejected {
            version: "v2".into(),
            message: "bad regex".into(),
            at: at(3),
        });
        assert_eq!(sync.state(), SyncState::Error);
    }

    #[test]
    fn an_ack_clears_a_rejection_and_a_closed_stream_is_forgotten() {
        let connections = Connections::default();
        let node = Node {
            id: "sidecar~10.0.0.1~reviews-v1.default~default.svc.cluster.local".into(),
            ..Default::default()
        };
        let open = connections.open(
            &node,
            ProxyView::default(),
            "127.0.0.1:5000".into(),
            XdsProtocol::Sotw,
            at(0),
        );
        open.sent(TypeUrl::Cluster, sent("1"));
        open.rejected(
            TypeUrl::Cluster,
            Rejected {
                version: "v1".into(),
                message: "no".into(),
                at: at(1),
            },
        );
        let found = connections.find("reviews-v1.default").map(|c| c.types);
        assert_eq!(
            found.as_ref().map(|t| t[&TypeUrl::Cluster].state()),
            Some(SyncState::Error)
        );
        open.sent(TypeUrl::Cluster, sent("2"));
        open.acked(TypeUrl::Cluster, acked("2"));
        let found = connections.find(&node.id).map(|c| c.types);
        assert_eq!(
            found.as_ref().map(|t| t[&TypeUrl::Cluster].state()),
            Some(SyncState::Synced)
        );
        drop(open);
        assert!(connections.list().is_empty());
    }

    #[test]
    fn proxy_ids_are_istios() {
        assert_eq!(
            proxy_id("sidecar~10.0.0.1~reviews-v1.default~default.svc.cluster.local"),
            "reviews-v1.default"
        );
        assert_eq!(proxy_id("plain-node"), "plain-node");
        assert_eq!(proxy_id("a~b~~d"), "a~b~~d");
    }
}
