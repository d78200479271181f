//! Envoy bootstrap configuration that connects a proxy to Weft over ADS.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde_json::{Value, json};

use crate::SDS_CLUSTER;
use crate::node::{
    META_INSTANCE_IPS, META_INTERCEPTION_MODE, META_LABELS, META_NAMESPACE, META_ROLE,
    META_ROUTER_ADDRESS, META_SERVICE_ACCOUNT,
};

/// What a bootstrap says about the proxy and where Weft is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BootstrapParams {
    pub node_id: String,
    /// The Envoy cluster name of the proxy (Istio: `<app>.<namespace>`).
    pub node_cluster: String,
    pub namespace: String,
    /// Weft's xDS address.
    pub xds_host: String,
    pub xds_port: u16,
    pub admin_address: String,
    pub admin_port: u16,
    /// Where the HTTP router listener binds, if wanted (sidecars only).
    pub router: Option<(String, u16)>,
    /// A gateway (its listeners come from the Gateways that select its
    /// labels) rather than a sidecar.
    pub gateway: bool,
    /// The workload's labels: what Gateway `selector` and Sidecar
    /// `workloadSelector` match.
    pub labels: BTreeMap<String, String>,
    /// Incremental (delta) xDS instead of state of the world.
    pub delta: bool,
    /// The Unix socket of the agent's SDS server: adds the static cluster
    /// `sds-grpc` that mesh mTLS certificates come from.
    pub sds_socket: Option<String>,
    /// The workload's service account (its mesh identity), sent as
    /// Istio's `SERVICE_ACCOUNT` node metadata.
    pub service_account: Option<String>,
    /// The pod's traffic is captured by `weft agent iptables`: sent as
    /// Istio's `INTERCEPTION_MODE: REDIRECT`.
    pub capture: bool,
    /// The workload's IPs, sent as Istio's `INSTANCE_IPS`.
    pub instance_ips: Vec<String>,
}

/// The name of the static cluster that points at Weft.
pub const XDS_CLUSTER: &str = "weft-xds";

/// Renders the bootstrap as a JSON value (Envoy reads it as YAML or JSON).
pub fn build_bootstrap(params: &BootstrapParams) -> Value {
    let mut metadata = serde_json::Map::new();
    metadata.insert(META_NAMESPACE.into(), json!(params.namespace));
    if let Some((host, port)) = &params.router {
        metadata.insert(META_ROUTER_ADDRESS.into(), json!(format!("{host}:{port}")));
    }
    if params.gateway {
        metadata.insert(META_ROLE.into(), json!("gateway"));
    }
    if !params.labels.is_empty() {
        metadata.insert(META_LABELS.into(), json!(params.labels));
    }
    if let Some(sa) = &params.service_account {
        metadata.insert(META_SERVICE_ACCOUNT.into(), json!(sa));
    }
    if params.capture {
        metadata.insert(META_INTERCEPTION_MODE.into(), json!("REDIRECT"));
    }
    if !params.instance_ips.is_empty() {
        metadata.insert(
            META_INSTANCE_IPS.into(),
            json!(params.instance_ips.join(",")),
        );
    }
    // An IP is used as is; a name is resolved by Envoy.
    let xds_type = if params.xds_host.parse::<IpAddr>().is_ok() {
        "STATIC"
    } else {
        "STRICT_DNS"
    };
    let ads = json!({ "ads": {}, "resource_api_version": "V3" });
    let mut clusters = vec![xds_cluster(params, xds_type)];
    clusters.extend(params.sds_socket.as_deref().map(sds_cluster));
    json!({
        "node": {
            "id": params.node_id,
            "cluster": params.node_cluster,
            "metadata": metadata,
        },
        "admin": {
            "address": socket_address(&params.admin_address, params.admin_port),
        },
        "dynamic_resources": {
            "ads_config": {
                "api_type": if params.delta { "DELTA_GRPC" } else { "GRPC" },
                "transport_api_version": "V3",
                "set_node_on_first_message_only": true,
                "grpc_services": [{ "envoy_grpc": { "cluster_name": XDS_CLUSTER } }],
            },
            "cds_config": ads,
            "lds_config": ads,
        },
        "static_resources": {
            "clusters": clusters,
        },
    })
}

fn xds_cluster(params: &BootstrapParams, xds_type: &str) -> Value {
    grpc_cluster(
        XDS_CLUSTER,
        xds_type,
        socket_address(&params.xds_host, params.xds_port),
    )
}

/// The agent's SDS server: HTTP/2 over a Unix socket (Istio's `sds-grpc`).
pub fn sds_cluster(path: &str) -> Value {
    grpc_cluster(SDS_CLUSTER, "STATIC", json!({ "pipe": { "path": path } }))
}

/// A static cluster `name` speaking HTTP/2 (gRPC) to one `address`.
fn grpc_cluster(name: &str, discovery_type: &str, address: Value) -> Value {
    json!({
        "name": name,
        "type": discovery_type,
        "connect_timeout": "1s",
        "typed_extension_protocol_options": {
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                "explicit_http_config": { "http2_protocol_options": {} },
            },
        },
        "load_assignment": {
            "cluster_name": name,
            "endpoints": [{ "lb_endpoints": [{ "endpoint": { "address": address } }]}],
        },
    })
}
fn socket_address(address: &str, port: u16) -> Value {
    json!({ "socket_address": { "address": address, "port_value": port } })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mk_params() -> BootstrapParams {
        BootstrapParams {
            node_id: "client-1".into(),
            node_cluster: "client.default".into(),
            namespace: "default".into(),
            xds_host: "127.0.0.1".into(),
            xds_port: 15010,
            admin_address: "127.0.0.1".into(),
            admin_port: 15000,
            router: Some(("127.0.0.1".into(), 15080)),
            gateway: false,
            labels: BTreeMap::new(),
            delta: false,
            sds_socket: None,
            service_account: None,
            capture: false,
            instance_ips: Vec::new(),
        }
    }

    #[test]
    fn an_sds_socket_adds_the_sds_cluster_and_the_service_account_its_metadata() {
        let plain = build_bootstrap(&mk_params());
        assert_eq!(
            plain["static_resources"]["clusters"]
                .as_array()
                .map(Vec::len),
            Some(1)
        );
        assert!(plain["node"]["metadata"].get("SERVICE_ACCOUNT").is_none());

        let mut params = mk_params();
        params.sds_socket = Some("/var/run/weft/sds.sock".into());
        params.service_account = Some("reviews".into());
        let b = build_bootstrap(&params);
        let sds = &b["static_resources"]["clusters"][1];
        assert_eq!(sds["name"], "sds-grpc");
        assert_eq!(
            sds["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]["pipe"]
                ["path"],
            "/var/run/weft/sds.sock"
        );
        assert!(
            sds["typed_extension_protocol_options"]
                .to_string()
                .contains("http2_protocol_options")
        );
        assert_eq!(b["node"]["metadata"]["SERVICE_ACCOUNT"], "reviews");
    }

    #[test]
    fn delta_asks_envoy_for_incremental_xds() {
        let mut params = mk_params();
        assert_eq!(
            build_bootstrap(&params)["dynamic_resources"]["ads_config"]["api_type"],
            "GRPC"
        );
        params.delta = true;
        assert_eq!(
            build_bootstrap(&params)["dynamic_resources"]["ads_config"]["api_type"],
            "DELTA_GRPC"
        );
    }

    #[test]
    fn points_ads_at_weft_and_asks_for_a_router() {
        let b = build_bootstrap(&mk_params());
        assert_eq!(
            b["node"]["metadata"]["WEFT_ROUTER_ADDRESS"],
            "127.0.0.1:15080"
        );
        assert_eq!(b["static_resources"]["clusters"][0]["type"], "STATIC");
        assert_eq!(
            b["dynamic_resources"]["ads_config"]["grpc_services"][0]["envoy_grpc"]["cluster_name"],
            XDS_CLUSTER
        );
    }

    #[test]
    fn a_gateway_says_its_role_and_labels() {
        let mut params = mk_params();
        params.router = None;
        params.gateway = true;
        params.labels = BTreeMap::from([("istio".to_string(), "ingressgateway".to_string())]);
        let b = build_bootstrap(&params);
        assert_eq!(b["node"]["metadata"]["WEFT_ROLE"], "gateway");
        assert_eq!(b["node"]["metadata"]["LABELS"]["istio"], "ingressgateway");
        assert!(b["node"]["metadata"].get("WEFT_ROUTER_ADDRESS").is_none());
        let sidecar = build_bootstrap(&mk_params());
        assert!(sidecar["node"]["metadata"].get("WEFT_ROLE").is_none());
        assert!(sidecar["node"]["metadata"].get("LABELS").is_none());
    }

    #[test]
    fn a_hostname_xds_address_is_resolved_by_envoy() {
        let mut params = mk_params();
        params.xds_host = "weft.weft-system.svc".into();
        params.router = None;
        let b = build_bootstrap(&params);
        assert_eq!(b["static_resources"]["clusters"][0]["type"], "STRICT_DNS");
        assert!(b["node"]["metadata"].get("WEFT_ROUTER_ADDRESS").is_none());
    }
}
