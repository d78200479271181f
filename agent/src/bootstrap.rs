//! The agent's addition to Envoy's bootstrap: the static `sds-grpc`
//! cluster, HTTP/2 over the agent's SDS Unix socket, which SDS configs in
//! xDS (`sds_config` with `envoy_grpc.cluster_name: sds-grpc`) refer to.

use std::path::Path;

use serde_json::{Value, json};

/// The name of the SDS cluster (Istio's).
pub const SDS_CLUSTER: &str = "sds-grpc";

/// Why the bootstrap cannot take the cluster.
#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    #[error("the bootstrap has no static_resources.clusters list to add {SDS_CLUSTER:?} to")]
    NoClusters,
    #[error("the bootstrap already has a cluster named {SDS_CLUSTER:?}")]
    Duplicate,
}

impl BootstrapError {
    pub fn kind(&self) -> &'static str {
        match self {
            BootstrapError::NoClusters => "no_clusters",
            BootstrapError::Duplicate => "duplicate",
        }
    }
}

/// The `sds-grpc` cluster for the socket at `socket`.
pub fn sds_cluster(socket: &Path) -> Value {
    json!({
        "name": SDS_CLUSTER,
        "type": "STATIC",
        "connect_timeout": "1s",
        "typed_extension_protocol_options": {
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                "explicit_http_config": { "http2_protocol_options": {} },
            },
        },
        "load_assignment": {
            "cluster_name": SDS_CLUSTER,
            "endpoints": [{ "lb_endpoints": [{ "endpoint": {
                "address": { "pipe": { "path": socket.display().to_string() } },
            }}]}],
        },
    })
}

/// Adds the `sds-grpc` cluster to a bootstrap (as `weft bootstrap` renders
/// it: `static_resources.clusters` exists).
pub fn add_sds_cluster(bootstrap: &mut Value, socket: &Path) -> Result<(), BootstrapError> {
    let clusters = bootstrap
        .get_mut("static_resources")
        .and_then(|s| s.get_mut("clusters"))
        .and_then(Value::as_array_mut)
        .ok_or(BootstrapError::NoClusters)?;
    if clusters.iter().any(|c| c["name"] == SDS_CLUSTER) {
        return Err(BootstrapError::Duplicate);
    }
    clusters.push(sds_cluster(socket));
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn adds_an_http2_pipe_cluster_once() {
        let mut bootstrap = json!({ "static_resources": { "clusters": [{ "name": "weft-xds" }] } });
        add_sds_cluster(&mut bootstrap, Path::new("/run/sds.sock")).unwrap();
        let cluster = &bootstrap["static_resources"]["clusters"][1];
        assert_eq!(cluster["name"], SDS_CLUSTER);
        assert_eq!(
            cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]["pipe"]
                ["path"],
            "/run/sds.sock"
        );
        assert!(
            cluster["typed_extension_protocol_options"]
                ["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]["explicit_http_config"]
                .get("http2_protocol_options")
                .is_some()
        );
        let err = add_sds_cluster(&mut bootstrap, Path::new("/x")).unwrap_err();
        assert_eq!(err.kind(), "duplicate");
        let err = add_sds_cluster(&mut json!({}), Path::new("/x")).unwrap_err();
        assert_eq!(err.kind(), "no_clusters");
    }
}
