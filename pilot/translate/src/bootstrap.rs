//! Envoy bootstrap configuration that connects a proxy to Weft over ADS.
//!
//! Besides ADS (and the agent's `sds-grpc` cluster), a bootstrap carries
//! what Istio's does for telemetry:
//!
//! - the `prometheus_stats` listener on `0.0.0.0:<prometheus_port>`
//!   (Istio's 15090), whose only route, `/stats/prometheus`, goes to the
//!   `prometheus_stats` cluster: Envoy's own admin address;
//! - `stats_config.histogram_bucket_settings` pinning the buckets of the
//!   Istio request histograms ([`ISTIO_DURATION_BUCKETS_MS`],
//!   [`ISTIO_SIZE_BUCKETS_BYTES`]); every other stat keeps Envoy's name,
//!   tags and buckets;
//! - the workload's name as node metadata `WORKLOAD_NAME`
//!   ([`META_WORKLOAD_NAME`]), and a `node.cluster` that defaults to
//!   Istio's `<canonical service>.<namespace>` ([`default_node_cluster`]),
//!   the service name tracers report.
//!
//! And what Istio's has for health: the listener on
//! `0.0.0.0:<health port>` (Istio's 15021) whose only route,
//! `/healthz/ready`, goes to the `agent` cluster: the sidecar agent's
//! status port on the admin address, which answers for Envoy, its config
//! and the certificate ([`HealthListener`]). Kubelets probe it, so it is
//! never captured.

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
    /// The workload (Deployment, StatefulSet, ...) the proxy belongs to,
    /// sent as Istio's `WORKLOAD_NAME`.
    pub workload_name: Option<String>,
    /// The port of the `prometheus_stats` listener (Istio's 15090) on
    /// 0.0.0.0, serving Envoy's `/stats/prometheus`; `None` for none.
    pub prometheus_port: Option<u16>,
    /// Istio's health listener (15021) and where the agent answers it;
    /// `None` for none.
    pub health: Option<HealthListener>,
}

/// Istio's health listener: `0.0.0.0:port` routes `/healthz/ready` to the
/// agent's status port on the admin address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HealthListener {
    /// Where Envoy listens (Istio: 15021).
    pub port: u16,
    /// The agent's status port (Istio: 15020), the `agent` cluster.
    pub agent_status_port: u16,
}

/// The name of the static cluster that points at Weft.
pub const XDS_CLUSTER: &str = "weft-xds";
/// The listener serving `/stats/prometheus` and the cluster it routes to
/// (Envoy's admin), both named as in Istio's bootstrap.
pub const PROMETHEUS_STATS: &str = "prometheus_stats";
/// The cluster of the agent's status port (Istio's name).
pub const AGENT_CLUSTER: &str = "agent";
/// The health listener's name and its one route's path.
pub const HEALTH_LISTENER: &str = "health";
pub const READY_PATH: &str = "/healthz/ready";
/// Istio's node metadata key for the workload's name.
pub const META_WORKLOAD_NAME: &str = "WORKLOAD_NAME";
/// The label that names a workload's canonical service.
pub const CANONICAL_NAME_LABEL: &str = "service.istio.io/canonical-name";

/// The buckets of `istio_request_duration_milliseconds`. Istio's bootstrap
/// sets none, so Istio's proxies report Envoy's default buckets; these are
/// those, pinned, so that Weft's and Istio's series aggregate together.
pub const ISTIO_DURATION_BUCKETS_MS: [f64; 19] = [
    0.5, 1.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0, 30000.0,
    60000.0, 300000.0, 600000.0, 1800000.0, 3600000.0,
];
/// The buckets of `istio_request_bytes` and `istio_response_bytes`: in
/// Istio, too, Envoy's defaults (the same list), for the same reason.
pub const ISTIO_SIZE_BUCKETS_BYTES: [f64; 19] = ISTIO_DURATION_BUCKETS_MS;

/// Istio's `node.cluster` when none is given: `<canonical service>.<namespace>`,
/// the canonical service being the first of the labels
/// `service.istio.io/canonical-name`, `app.kubernetes.io/name`, `app`, else
/// the workload's name, else the pod part of the node id up to its first
/// `.` (`reviews-1` of `reviews-1.default`, `pod` of
/// `sidecar~10.0.0.1~pod.ns~ns.svc.cluster.local`).
pub fn default_node_cluster(
    node_id: &str,
    namespace: &str,
    labels: &BTreeMap<String, String>,
    workload_name: Option<&str>,
) -> String {
    let label = [CANONICAL_NAME_LABEL, "app.kubernetes.io/name", "app"]
        .iter()
        .find_map(|key| labels.get(*key).filter(|v| !v.is_empty()));
    let service = match (label, workload_name.filter(|w| !w.is_empty())) {
        (Some(label), _) => label.as_str(),
        (None, Some(workload)) => workload,
        (None, None) => {
            let pod = node_id.split('~').nth(2).unwrap_or(node_id);
            pod.split('.').next().unwrap_or(pod)
        }
    };
    format!("{service}.{namespace}")
}

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
    if let Some(workload) = &params.workload_name {
        metadata.insert(META_WORKLOAD_NAME.into(), json!(workload));
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
    let mut static_resources = json!({});
    let mut listeners = Vec::new();
    if let Some(port) = params.prometheus_port {
        clusters.push(prometheus_stats_cluster(params));
        listeners.push(prometheus_stats_listener(port));
    }
    if let Some(health) = params.health {
        clusters.push(local_cluster(
            AGENT_CLUSTER,
            &params.admin_address,
            health.agent_status_port,
        ));
        listeners.push(health_listener(health.port));
    }
    if !listeners.is_empty() {
        static_resources["listeners"] = json!(listeners);
    }
    static_resources["clusters"] = json!(clusters);
    json!({
        "node": {
            "id": params.node_id,
            "cluster": params.node_cluster,
            "metadata": metadata,
        },
        "stats_config": stats_config(),
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
        "static_resources": static_resources,
    })
}

/// Pins the buckets of the Istio request histograms, whatever Envoy's
/// defaults become. The stats access logger (stat prefix `istio`) names
/// them `istio.<metric>` followed by `.<tag>.<value>` pairs, so each
/// pattern matches the metric with any tags. Nothing else is configured:
/// Envoy's own stats keep their names and tags.
fn stats_config() -> Value {
    let bucket = |metric: &str, buckets: &[f64]| {
        json!({
            "match": { "safe_regex": { "regex": format!(r"istio\.{metric}(\..*)?") } },
            "buckets": buckets,
        })
    };
    json!({
        "histogram_bucket_settings": [
            bucket("request_duration_milliseconds", &ISTIO_DURATION_BUCKETS_MS),
            bucket("(request|response)_bytes", &ISTIO_SIZE_BUCKETS_BYTES),
        ],
    })
}

/// Istio's 15090: `/stats/prometheus` on every address, proxied to the
/// admin listener (which stays on 127.0.0.1).
fn prometheus_stats_listener(port: u16) -> Value {
    one_route_listener(
        PROMETHEUS_STATS,
        port,
        "stats",
        "/stats/prometheus",
        PROMETHEUS_STATS,
    )
}

/// Istio's 15021: `/healthz/ready` on every address, proxied to the
/// agent's status port.
fn health_listener(port: u16) -> Value {
    one_route_listener(HEALTH_LISTENER, port, "agent", READY_PATH, AGENT_CLUSTER)
}

/// A plain-HTTP listener on `0.0.0.0:port` routing the `prefix` to `cluster`
/// (and nothing else), as Istio's bootstrap listeners are.
fn one_route_listener(
    name: &str,
    port: u16,
    stat_prefix: &str,
    prefix: &str,
    cluster: &str,
) -> Value {
    json!({
        "name": name,
        "address": socket_address("0.0.0.0", port),
        "filter_chains": [{
            "filters": [{
                "name": "envoy.filters.network.http_connection_manager",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                    "codec_type": "AUTO",
                    "stat_prefix": stat_prefix,
                    "route_config": {
                        "virtual_hosts": [{
                            "name": "backend",
                            "domains": ["*"],
                            "routes": [{
                                "match": { "prefix": prefix },
                                "route": { "cluster": cluster },
                            }],
                        }],
                    },
                    "http_filters": [{
                        "name": "envoy.filters.http.router",
                        "typed_config": {
                            "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router",
                        },
                    }],
                },
            }],
        }],
    })
}

/// Envoy's own admin listener, as the `prometheus_stats` listener's upstream.
fn prometheus_stats_cluster(params: &BootstrapParams) -> Value {
    local_cluster(PROMETHEUS_STATS, &params.admin_address, params.admin_port)
}

/// A static plain-HTTP cluster `name` of one local `address:port`.
fn local_cluster(name: &str, address: &str, port: u16) -> Value {
    json!({
        "name": name,
        "type": "STATIC",
        "connect_timeout": "0.250s",
        "load_assignment": {
            "cluster_name": name,
            "endpoints": [{ "lb_endpoints": [{ "endpoint": {
                "address": socket_address(address, port),
            }}]}],
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
#[allow(clippy::unwrap_used)]
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
            workload_name: None,
            prometheus_port: None,
            health: None,
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

    #[test]
    fn a_prometheus_port_adds_istios_stats_listener_and_cluster() {
        let mut params = mk_params();
        params.prometheus_port = Some(15090);
        params.workload_name = Some("reviews-v1".into());
        let b = build_bootstrap(&params);
        assert_eq!(b["node"]["metadata"]["WORKLOAD_NAME"], "reviews-v1");
        insta::assert_yaml_snapshot!(b);

        let plain = build_bootstrap(&mk_params());
        assert!(plain["static_resources"].get("listeners").is_none());
        assert!(plain["node"]["metadata"].get("WORKLOAD_NAME").is_none());
        // The buckets are there with or without the listener.
        assert_eq!(plain["stats_config"], b["stats_config"]);
    }

    #[test]
    fn a_health_port_adds_istios_health_listener_to_the_agent() {
        let mut params = mk_params();
        params.prometheus_port = Some(15090);
        params.health = Some(HealthListener {
            port: 15021,
            agent_status_port: 15020,
        });
        let b = build_bootstrap(&params);
        let listeners = b["static_resources"]["listeners"].as_array().unwrap();
        let names: Vec<&str> = listeners
            .iter()
            .filter_map(|l| l["name"].as_str())
            .collect();
        assert_eq!(names, [PROMETHEUS_STATS, HEALTH_LISTENER]);
        let health = &listeners[1];
        assert_eq!(health["address"]["socket_address"]["address"], "0.0.0.0");
        assert_eq!(health["address"]["socket_address"]["port_value"], 15021);
        let hcm = &health["filter_chains"][0]["filters"][0]["typed_config"];
        let route = &hcm["route_config"]["virtual_hosts"][0]["routes"][0];
        assert_eq!(route["match"]["prefix"], READY_PATH);
        assert_eq!(route["route"]["cluster"], AGENT_CLUSTER);
        let agent = b["static_resources"]["clusters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == AGENT_CLUSTER)
            .unwrap();
        let address = &agent["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]
            ["socket_address"];
        assert_eq!(address["address"], "127.0.0.1");
        assert_eq!(address["port_value"], 15020);
        // Without it, neither the listener nor the cluster.
        let plain = build_bootstrap(&mk_params());
        assert!(!plain.to_string().contains(AGENT_CLUSTER));
    }

    /// Envoy matches `safe_regex` against the whole stat name, which the
    /// stats access logger writes as `istio.<metric>[.<tag>.<value>]...`.
    #[test]
    fn the_bucket_settings_select_exactly_the_istio_request_histograms() {
        let b = build_bootstrap(&mk_params());
        let settings = b["stats_config"]["histogram_bucket_settings"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let buckets_of = |name: &str| -> Option<Vec<f64>> {
            settings.iter().find_map(|s| {
                let pattern = s["match"]["safe_regex"]["regex"].as_str()?;
                let whole = regex::Regex::new(&format!("^(?:{pattern})$")).ok()?;
                whole.is_match(name).then(|| {
                    s["buckets"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(Value::as_f64)
                        .collect()
                })
            })
        };
        for name in [
            "istio.request_duration_milliseconds",
            "istio.request_duration_milliseconds.reporter.destination.response_code.200",
        ] {
            assert_eq!(
                buckets_of(name),
                Some(ISTIO_DURATION_BUCKETS_MS.to_vec()),
                "{name}"
            );
        }
        for name in [
            "istio.request_bytes",
            "istio.response_bytes.reporter.source",
        ] {
            assert_eq!(
                buckets_of(name),
                Some(ISTIO_SIZE_BUCKETS_BYTES.to_vec()),
                "{name}"
            );
        }
        for name in [
            "istio.requests_total",
            "istio.request_bytes_other",
            "cluster.outbound|9080||reviews.upstream_rq_time",
            "http.inbound.downstream_rq_time",
        ] {
            assert_eq!(buckets_of(name), None, "{name}");
        }
        // Istio's request duration buckets, which are Envoy's defaults.
        assert_eq!(ISTIO_DURATION_BUCKETS_MS.first(), Some(&0.5));
        assert_eq!(ISTIO_DURATION_BUCKETS_MS.last(), Some(&3_600_000.0));
    }

    #[test]
    fn the_default_node_cluster_is_the_canonical_service_and_namespace() {
        let labels = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let all = labels(&[
            ("app", "app"),
            ("app.kubernetes.io/name", "kube-name"),
            (CANONICAL_NAME_LABEL, "canonical"),
        ]);
        let cluster = |labels: &BTreeMap<String, String>, workload: Option<&str>| {
            default_node_cluster("reviews-1.prod", "prod", labels, workload)
        };
        assert_eq!(cluster(&all, Some("w")), "canonical.prod");
        let no_canonical = labels(&[("app", "app"), ("app.kubernetes.io/name", "kube-name")]);
        assert_eq!(cluster(&no_canonical, None), "kube-name.prod");
        assert_eq!(cluster(&labels(&[("app", "app")]), None), "app.prod");
        assert_eq!(
            cluster(&labels(&[("app", "")]), Some("reviews")),
            "reviews.prod"
        );
        assert_eq!(cluster(&BTreeMap::new(), None), "reviews-1.prod");
        assert_eq!(
            default_node_cluster(
                "sidecar~10.0.0.1~reviews-v1-abc.prod~prod.svc.cluster.local",
                "prod",
                &BTreeMap::new(),
                None
            ),
            "reviews-v1-abc.prod"
        );
    }
}
