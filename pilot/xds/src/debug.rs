//! What Weft tells about the proxies it serves, in Envoy's and Istio's own
//! messages: each proxy's sync state as CSDS `ClientConfig`s (istiod's
//! `istio.io/debug/syncz`), and the config served to one proxy as an
//! admin `ConfigDump` (istiod's `istio.io/debug/config_dump`). Both are
//! served on the xDS port to Istio's own tools (`istioctl proxy-status`)
//! and, as JSON, on the monitoring port's `/debug/*`.
//!
//! Who may ask is [`DebugAccess`]'s call: the xDS port answers debug types
//! only to callers it admits, with `UNAUTHENTICATED` or
//! `PERMISSION_DENIED` otherwise.

use std::fmt;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::time::SystemTime;

use weft_envoy_api::pb::envoy::admin::v3::{
    ClustersConfigDump, ConfigDump, EndpointsConfigDump, ListenersConfigDump, RoutesConfigDump,
    UpdateFailureState,
    clusters_config_dump::DynamicCluster,
    endpoints_config_dump::DynamicEndpointConfig,
    listeners_config_dump::{DynamicListener, DynamicListenerState},
    routes_config_dump::DynamicRouteConfig,
};
use weft_envoy_api::pb::envoy::config::core::v3::{ControlPlane, Node};
use weft_envoy_api::pb::envoy::service::status::v3::{
    ClientConfig, ConfigStatus, client_config::GenericXdsConfig,
};
use weft_envoy_api::pb::google::protobuf::{Any, Struct, Timestamp, Value, value::Kind};
use weft_envoy_api::util::pack_any;

use super::connections::{Connection, SyncState, TypeSync};
use super::{TypeUrl, ViewResources};

/// istiod's type of every proxy's sync state.
pub const DEBUG_SYNCZ: &str = "istio.io/debug/syncz";
/// istiod's type of one proxy's config (the resource name is the proxy).
pub const DEBUG_CONFIG_DUMP: &str = "istio.io/debug/config_dump";
/// The prefix of istiod's debug types.
pub const DEBUG_PREFIX: &str = "istio.io/debug/";

/// Why a debug request is refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AccessDenied {
    /// No credentials, or ones that prove nothing (401, `UNAUTHENTICATED`).
    Unauthenticated(String),
    /// A proven caller without the right (403, `PERMISSION_DENIED`).
    Forbidden(String),
}

impl fmt::Display for AccessDenied {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AccessDenied::Unauthenticated(m) | AccessDenied::Forbidden(m) => f.write_str(m),
        }
    }
}

/// Decides who sees the debug data: the control plane's own rule (loopback
/// callers, or a token of its namespace).
pub trait DebugAccess: Send + Sync + fmt::Debug + 'static {
    /// `peer` is the caller's address (`None`: unknown), `bearer` the token
    /// of its `Authorization: Bearer` header.
    fn check<'a>(
        &'a self,
        peer: Option<IpAddr>,
        bearer: Option<&'a str>,
    ) -> Pin<Box<dyn Future<Output = Result<(), AccessDenied>> + Send + 'a>>;
}

/// Admits loopback callers only: the rule without a way to prove tokens.
#[derive(Clone, Copy, Debug, Default)]
pub struct LoopbackOnly;

impl DebugAccess for LoopbackOnly {
    fn check<'a>(
        &'a self,
        peer: Option<IpAddr>,
        _bearer: Option<&'a str>,
    ) -> Pin<Box<dyn Future<Output = Result<(), AccessDenied>> + Send + 'a>> {
        let verdict = if peer.is_some_and(|ip| ip.is_loopback()) {
            Ok(())
        } else {
            Err(AccessDenied::Unauthenticated(
                "debug data is served to loopback callers only here (no token authority is \
                 configured)"
                    .to_string(),
            ))
        };
        Box::pin(std::future::ready(verdict))
    }
}

/// Who answers: istiod's `IstioControlPlaneInstance`, as JSON in
/// `ControlPlane.identifier` (istioctl prints its `ID`).
pub fn control_plane(id: &str, version: &str) -> ControlPlane {
    let identifier = serde_json::json!({
        "Component": "weft",
        "ID": id,
        "Info": { "version": version },
    });
    ControlPlane {
        identifier: identifier.to_string(),
    }
}

/// Each connection's sync state, as istiod reports it: a node with Istio's
/// proxy id and its `CLUSTER_ID`, `NAMESPACE` and `ISTIO_VERSION`, and a
/// `GenericXdsConfig` per type it subscribed to.
pub fn client_configs(connections: &[Connection]) -> Vec<ClientConfig> {
    connections.iter().map(client_config).collect()
}

fn client_config(connection: &Connection) -> ClientConfig {
    let metadata = Struct {
        fields: [
            ("CLUSTER_ID", connection.node.cluster_id.as_str()),
            ("NAMESPACE", connection.view.namespace.as_str()),
            ("ISTIO_VERSION", connection.node.version.as_str()),
        ]
        .into_iter()
        .map(|(k, v)| {
            (
                k.to_string(),
                Value {
                    kind: Some(Kind::StringValue(v.to_string())),
                },
            )
        })
        .collect(),
    };
    ClientConfig {
        node: Some(Node {
            id: connection.proxy_id().to_string(),
            metadata: Some(metadata),
            ..Default::default()
        }),
        generic_xds_configs: connection
            .types
            .iter()
            .map(|(type_url, sync)| generic_xds_config(*type_url, sync))
            .collect(),
        ..Default::default()
    }
}

fn generic_xds_config(type_url: TypeUrl, sync: &TypeSync) -> GenericXdsConfig {
    let status = match sync.state() {
        SyncState::Synced => ConfigStatus::Synced,
        SyncState::NotSent => ConfigStatus::NotSent,
        SyncState::Stale => ConfigStatus::Stale,
        SyncState::Error => ConfigStatus::Error,
    };
    GenericXdsConfig {
        type_url: type_url.as_str().to_string(),
        version_info: sync
            .sent
            .as_ref()
            .map(|s| s.version.clone())
            .unwrap_or_default(),
        last_updated: sync.sent.as_ref().map(|s| timestamp(s.at)),
        config_status: status as i32,
        error_state: sync.rejected.as_ref().map(|r| UpdateFailureState {
            last_update_attempt: Some(timestamp(r.at)),
            details: r.message.clone(),
            version_info: r.version.clone(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The config Weft serves `connection` (its view's `resources`), as Envoy's
/// admin `/config_dump` lays it out: dynamic clusters, listeners, route
/// configurations and endpoints. Each section's `version_info` is the
/// version of the last response of its type sent to the proxy; each
/// resource carries that version too (for delta streams, its own).
pub fn config_dump(connection: &Connection, resources: &ViewResources) -> ConfigDump {
    let sent = |type_url: TypeUrl| {
        connection
            .types
            .get(&type_url)
            .and_then(|t| t.sent.as_ref())
            .map(|s| (s.version.clone(), Some(timestamp(s.at))))
            .unwrap_or_default()
    };
    let all = |type_url: TypeUrl| -> Vec<Any> {
        resources
            .select(type_url, None)
            .into_iter()
            .map(|(_, r)| (*r.any).clone())
            .collect()
    };
    let (clusters_version, clusters_at) = sent(TypeUrl::Cluster);
    let (listeners_version, listeners_at) = sent(TypeUrl::Listener);
    let (routes_version, routes_at) = sent(TypeUrl::RouteConfiguration);
    let (endpoints_version, endpoints_at) = sent(TypeUrl::ClusterLoadAssignment);
    let clusters = ClustersConfigDump {
        version_info: clusters_version.clone(),
        dynamic_active_clusters: all(TypeUrl::Cluster)
            .into_iter()
            .map(|cluster| DynamicCluster {
                version_info: clusters_version.clone(),
                cluster: Some(cluster),
                last_updated: clusters_at,
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    };
    let listeners = ListenersConfigDump {
        version_info: listeners_version.clone(),
        dynamic_listeners: resources
            .select(TypeUrl::Listener, None)
            .into_iter()
            .map(|(name, r)| DynamicListener {
                name: name.to_string(),
                active_state: Some(DynamicListenerState {
                    version_info: listeners_version.clone(),
                    listener: Some((*r.any).clone()),
                    last_updated: listeners_at,
                }),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    };
    let routes = RoutesConfigDump {
        dynamic_route_configs: all(TypeUrl::RouteConfiguration)
            .into_iter()
            .map(|route_config| DynamicRouteConfig {
                version_info: routes_version.clone(),
                route_config: Some(route_config),
                last_updated: routes_at,
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    };
    let endpoints = EndpointsConfigDump {
        dynamic_endpoint_configs: all(TypeUrl::ClusterLoadAssignment)
            .into_iter()
            .map(|endpoint_config| DynamicEndpointConfig {
                version_info: endpoints_version.clone(),
                endpoint_config: Some(endpoint_config),
                last_updated: endpoints_at,
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    };
    ConfigDump {
        configs: vec![
            pack_any(clusters),
            pack_any(listeners),
            pack_any(routes),
            pack_any(endpoints),
        ],
    }
}

fn timestamp(at: SystemTime) -> Timestamp {
    let since = at
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    Timestamp {
        seconds: i64::try_from(since.as_secs()).unwrap_or(i64::MAX),
        nanos: i32::try_from(since.subsec_nanos()).unwrap_or(0),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use prost::Message;

    use super::super::connections::{Acked, Connections, Rejected, Sent};
    use super::super::metrics::XdsProtocol;
    use super::*;

    #[test]
    fn the_control_plane_identifier_is_istios_json() {
        let cp = control_plane("weft-0", "0.1.0 \"x\"");
        assert_eq!(
            cp.identifier,
            r#"{"Component":"weft","ID":"weft-0","Info":{"version":"0.1.0 \"x\""}}"#
        );
    }

    #[test]
    fn client_configs_carry_istios_node_and_states() {
        let connections = Connections::default();
        let node = Node {
            id: "sidecar~10.0.0.1~reviews-v1.shop~shop.svc.cluster.local".into(),
            ..Default::default()
        };
        let view = weft_translate::ProxyView {
            namespace: "shop".into(),
            ..Default::default()
        };
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(100);
        let open = connections.open(&node, view, String::new(), XdsProtocol::Sotw, at);
        open.sent(
            TypeUrl::Cluster,
            Sent {
                version: "v1".into(),
                nonce: "1".into(),
                at,
                resources: 2,
            },
        );
        open.acked(
            TypeUrl::Cluster,
            Acked {
                version: "v1".into(),
                nonce: "1".into(),
                at,
            },
        );
        open.sent(
            TypeUrl::Listener,
            Sent {
                version: "v2".into(),
                nonce: "2".into(),
                at,
                resources: 1,
            },
        );
        open.rejected(
            TypeUrl::Listener,
            Rejected {
                version: "v2".into(),
                message: "bad listener".into(),
                at,
            },
        );
        let configs = client_configs(&connections.list());
        let config = &configs[0];
        let node = config.node.as_ref().map(|n| n.id.as_str());
        assert_eq!(node, Some("reviews-v1.shop"));
        let states: Vec<(String, i32, String)> = config
            .generic_xds_configs
            .iter()
            .map(|c| {
                (
                    c.type_url.clone(),
                    c.config_status,
                    c.error_state
                        .as_ref()
                        .map(|e| e.details.clone())
                        .unwrap_or_default(),
                )
            })
            .collect();
        assert_eq!(
            states,
            [
                (
                    TypeUrl::Cluster.as_str().to_string(),
                    ConfigStatus::Synced as i32,
                    String::new()
                ),
                (
                    TypeUrl::Listener.as_str().to_string(),
                    ConfigStatus::Error as i32,
                    "bad listener".to_string()
                ),
            ]
        );
        // It encodes (what the xDS port sends).
        assert!(!config.encode_to_vec().is_empty());
    }
}
