//! Who a simulated Envoy says it is: the `Node` of its first request, with
//! an Istio-style sidecar id (`sidecar~IP~POD.NS~NS.svc.cluster.local`),
//! cluster and the node metadata istiod expects from a sidecar (NAMESPACE,
//! LABELS, SERVICE_ACCOUNT, INTERCEPTION_MODE, INSTANCE_IPS, ISTIO_VERSION,
//! CLUSTER_ID, NAME, WORKLOAD_NAME, MESH_ID), plus Weft's own
//! (WEFT_ROLE, WEFT_ROUTER_ADDRESS). Pure.

use std::collections::BTreeMap;

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::google::protobuf::{Struct, Value, value::Kind};

/// The Istio version a simulated sidecar claims.
pub const ISTIO_VERSION: &str = "1.27.0";

/// What one simulated proxy is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeSpec {
    /// Pod name.
    pub pod: String,
    pub namespace: String,
    /// The pod's IP (in the node id and INSTANCE_IPS).
    pub ip: String,
    pub labels: BTreeMap<String, String>,
    pub service_account: String,
    /// Istio's CLUSTER_ID (`Kubernetes` by default).
    pub cluster_id: String,
    /// `REDIRECT` for a captured sidecar, `NONE` for none.
    pub interception_mode: String,
    /// Weft's `host:port` router listener, if the proxy wants one.
    pub router_address: Option<String>,
}

impl NodeSpec {
    /// Simulated proxy number `index` in `namespace`: pod `loadgen-INDEX`,
    /// IP `10.A.B.C` derived from the index, labels `app=loadgen`,
    /// `version=v1`, service account `default`, captured (REDIRECT).
    pub fn numbered(index: u32, namespace: &str) -> Self {
        let [_, a, b, c] = (index + 1).to_be_bytes();
        Self {
            pod: format!("loadgen-{index}"),
            namespace: namespace.to_string(),
            ip: format!("10.{a}.{b}.{c}"),
            labels: BTreeMap::from([
                ("app".to_string(), "loadgen".to_string()),
                ("version".to_string(), "v1".to_string()),
            ]),
            service_account: "default".to_string(),
            cluster_id: "Kubernetes".to_string(),
            interception_mode: "REDIRECT".to_string(),
            router_address: None,
        }
    }

    /// Istio's sidecar node id.
    pub fn node_id(&self) -> String {
        format!(
            "sidecar~{}~{}.{}~{}.svc.cluster.local",
            self.ip, self.pod, self.namespace, self.namespace
        )
    }

    /// The `Node` sent on the first request of a stream.
    pub fn node(&self) -> Node {
        let string = |s: &str| Value {
            kind: Some(Kind::StringValue(s.to_string())),
        };
        let labels = Struct {
            fields: self
                .labels
                .iter()
                .map(|(k, v)| (k.clone(), string(v)))
                .collect(),
        };
        let mut fields = BTreeMap::from([
            ("NAMESPACE".to_string(), string(&self.namespace)),
            (
                "LABELS".to_string(),
                Value {
                    kind: Some(Kind::StructValue(labels)),
                },
            ),
            ("SERVICE_ACCOUNT".to_string(), string(&self.service_account)),
            (
                "INTERCEPTION_MODE".to_string(),
                string(&self.interception_mode),
            ),
            ("INSTANCE_IPS".to_string(), string(&self.ip)),
            ("ISTIO_VERSION".to_string(), string(ISTIO_VERSION)),
            ("CLUSTER_ID".to_string(), string(&self.cluster_id)),
            ("NAME".to_string(), string(&self.pod)),
            ("WORKLOAD_NAME".to_string(), string(&self.pod)),
            ("MESH_ID".to_string(), string("cluster.local")),
            ("WEFT_ROLE".to_string(), string("sidecar")),
        ]);
        if let Some(router) = &self.router_address {
            fields.insert("WEFT_ROUTER_ADDRESS".to_string(), string(router));
        }
        Node {
            id: self.node_id(),
            cluster: format!("{}.{}", self.pod, self.namespace),
            metadata: Some(Struct {
                fields: fields.into_iter().collect(),
            }),
            ..Default::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbered_nodes_have_distinct_istio_ids_and_sidecar_metadata() {
        let a = NodeSpec::numbered(0, "default");
        let b = NodeSpec::numbered(256, "default");
        assert_eq!(
            a.node_id(),
            "sidecar~10.0.0.1~loadgen-0.default~default.svc.cluster.local"
        );
        assert_eq!(b.ip, "10.0.1.1");
        let node = a.node();
        let meta = node.metadata.unwrap_or_default();
        for key in [
            "NAMESPACE",
            "LABELS",
            "SERVICE_ACCOUNT",
            "INTERCEPTION_MODE",
            "ISTIO_VERSION",
            "CLUSTER_ID",
        ] {
            assert!(meta.fields.contains_key(key), "{key} missing");
        }
        assert!(!meta.fields.contains_key("WEFT_ROUTER_ADDRESS"));
    }
}
