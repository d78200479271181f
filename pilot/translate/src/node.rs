//! A proxy's view, read from the `Node` it sends on its first request.

use std::collections::BTreeMap;

use weft_envoy_api::pb::envoy::config::core::v3::Node;
use weft_envoy_api::pb::google::protobuf::{Struct, Value, value::Kind};

use crate::{ProxyRole, ProxyView};

/// Node metadata keys (Istio's, where Istio has one).
pub const META_NAMESPACE: &str = "NAMESPACE";
pub const META_LABELS: &str = "LABELS";
pub const META_SERVICE_ACCOUNT: &str = "SERVICE_ACCOUNT";
/// `host:port` of the HTTP router listener the proxy wants.
pub const META_ROUTER_ADDRESS: &str = "WEFT_ROUTER_ADDRESS";
/// `sidecar` or `gateway` (`weft bootstrap --role`); Istio says it with the
/// node id's first part (`router~...` for gateways), which is read too.
pub const META_ROLE: &str = "WEFT_ROLE";
/// Istio's: `REDIRECT` when iptables sends the pod's traffic to Envoy.
pub const META_INTERCEPTION_MODE: &str = "INTERCEPTION_MODE";
/// Istio's: the workload's IPs, comma-separated.
pub const META_INSTANCE_IPS: &str = "INSTANCE_IPS";
/// Node metadata key: the workload the proxy belongs to (Istio's).
pub const META_WORKLOAD_NAME: &str = "WORKLOAD_NAME";

/// Reads a proxy's view from its node. Istio-style node ids
/// (`sidecar~10.1.2.3~pod.ns~ns.svc.cluster.local`, `router~...` for
/// gateways) are understood; metadata wins where both say something.
pub fn proxy_view(node: &Node) -> ProxyView {
    let mut view = ProxyView::default();
    let parts: Vec<&str> = node.id.split('~').collect();
    if let [role, _ip, pod_ns, _domain] = parts.as_slice() {
        if *role == "router" {
            view.role = ProxyRole::Gateway;
        }
        if let Some((_, ns)) = pod_ns.rsplit_once('.') {
            view.namespace = ns.to_string();
        }
    }
    let Some(metadata) = &node.metadata else {
        return view;
    };
    if let Some(ns) = string_field(metadata, META_NAMESPACE) {
        view.namespace = ns.to_string();
    }
    if let Some(Value {
        kind: Some(Kind::StructValue(labels)),
    }) = metadata.fields.get(META_LABELS)
    {
        view.labels = labels
            .fields
            .iter()
            .filter_map(|(k, v)| match &v.kind {
                Some(Kind::StringValue(s)) => Some((k.clone(), s.clone())),
                _ => None,
            })
            .collect::<BTreeMap<_, _>>();
    }
    match string_field(metadata, META_ROLE) {
        Some("gateway") => view.role = ProxyRole::Gateway,
        Some("sidecar") => view.role = ProxyRole::Sidecar,
        _ => {}
    }
    view.service_account = string_field(metadata, META_SERVICE_ACCOUNT).map(str::to_string);
    view.workload_name = string_field(metadata, META_WORKLOAD_NAME).map(str::to_string);
    view.router_address = string_field(metadata, META_ROUTER_ADDRESS).and_then(parse_host_port);
    view.capture = string_field(metadata, META_INTERCEPTION_MODE) == Some("REDIRECT");
    let mut ips: Vec<String> = string_field(metadata, META_INSTANCE_IPS)
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|ip| !ip.is_empty())
        .map(str::to_string)
        .collect();
    ips.sort();
    ips.dedup();
    view.instance_ips = ips;
    if view.role == ProxyRole::Gateway {
        // A gateway's listeners come from its Gateways; it has no router
        // and no capture listeners.
        view.router_address = None;
        view.capture = false;
    }
    view
}

fn string_field<'a>(metadata: &'a Struct, key: &str) -> Option<&'a str> {
    match &metadata.fields.get(key)?.kind {
        Some(Kind::StringValue(s)) if !s.is_empty() => Some(s),
        _ => None,
    }
}

fn parse_host_port(text: &str) -> Option<(String, u16)> {
    let (host, port) = text.rsplit_once(':')?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    Some((host.to_string(), port.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mk_node(id: &str, fields: &[(&str, &str)]) -> Node {
        Node {
            id: id.to_string(),
            metadata: Some(Struct {
                fields: fields
                    .iter()
                    .map(|(k, v)| {
                        (
                            k.to_string(),
                            Value {
                                kind: Some(Kind::StringValue(v.to_string())),
                            },
                        )
                    })
                    .collect(),
            }),
            ..Default::default()
        }
    }

    #[test]
    fn reads_namespace_and_router_from_metadata() {
        let view = proxy_view(&mk_node(
            "client",
            &[
                ("NAMESPACE", "prod"),
                ("WEFT_ROUTER_ADDRESS", "127.0.0.1:15080"),
            ],
        ));
        assert_eq!(view.namespace, "prod");
        assert_eq!(view.router_address, Some(("127.0.0.1".to_string(), 15080)));
        assert_eq!(view.role, ProxyRole::Sidecar);
    }

    #[test]
    fn reads_istio_style_node_ids() {
        let view = proxy_view(&mk_node(
            "router~10.0.0.1~gw-1.ingress~ingress.svc.cluster.local",
            &[],
        ));
        assert_eq!(view.role, ProxyRole::Gateway);
        assert_eq!(view.namespace, "ingress");
    }

    #[test]
    fn reads_the_gateway_role_and_labels_from_metadata() {
        let mut node = mk_node(
            "gw",
            &[
                ("WEFT_ROLE", "gateway"),
                ("WEFT_ROUTER_ADDRESS", "127.0.0.1:15080"),
            ],
        );
        if let Some(metadata) = node.metadata.as_mut() {
            let labels = Struct {
                fields: [("istio", "ingressgateway"), ("app", "edge")]
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
            metadata.fields.insert(
                META_LABELS.to_string(),
                Value {
                    kind: Some(Kind::StructValue(labels)),
                },
            );
        }
        let view = proxy_view(&node);
        assert_eq!(view.role, ProxyRole::Gateway);
        assert_eq!(view.router_address, None);
        assert_eq!(view.labels["istio"], "ingressgateway");
        assert_eq!(view.labels["app"], "edge");
        let view = proxy_view(&mk_node(
            "router~10.0.0.1~gw-1.ingress~ingress.svc.cluster.local",
            &[("WEFT_ROLE", "sidecar")],
        ));
        assert_eq!(view.role, ProxyRole::Sidecar, "metadata wins");
    }

    #[test]
    fn capture_reads_istios_interception_mode_and_instance_ips() {
        let view = proxy_view(&mk_node(
            "sidecar~10.0.0.2~pod.ns1~ns1.svc.cluster.local",
            &[
                ("INTERCEPTION_MODE", "REDIRECT"),
                ("INSTANCE_IPS", "10.0.0.2, 10.0.0.1,10.0.0.2"),
            ],
        ));
        assert!(view.capture);
        assert_eq!(view.instance_ips, ["10.0.0.1", "10.0.0.2"]);
        let view = proxy_view(&mk_node("x", &[("INTERCEPTION_MODE", "NONE")]));
        assert!(!view.capture);
        let view = proxy_view(&mk_node(
            "x",
            &[("INTERCEPTION_MODE", "REDIRECT"), ("WEFT_ROLE", "gateway")],
        ));
        assert!(!view.capture, "gateways are not captured");
    }

    #[test]
    fn a_bad_router_address_is_ignored() {
        let view = proxy_view(&mk_node("x", &[("WEFT_ROUTER_ADDRESS", "nonsense")]));
        assert_eq!(view.router_address, None);
    }
}
