//! `weft bootstrap`: print an Envoy bootstrap.

use anyhow::Context;
use weft_pilot::bootstrap::{BootstrapParams, build_bootstrap};

use crate::cli::BootstrapArgs;

/// Renders the bootstrap YAML for `args`.
pub fn render(args: &BootstrapArgs) -> anyhow::Result<String> {
    let (host, port) = args
        .xds_address
        .rsplit_once(':')
        .with_context(|| format!("--xds-address {:?} must be HOST:PORT", args.xds_address))?;
    let port: u16 = port.parse().with_context(|| {
        format!(
            "--xds-address {:?}: {port:?} is not a port",
            args.xds_address
        )
    })?;
    let params = BootstrapParams {
        node_id: args.node_id.clone(),
        node_cluster: args
            .service_cluster
            .clone()
            .unwrap_or_else(|| args.node_id.clone()),
        namespace: args.namespace.clone(),
        xds_host: host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string(),
        xds_port: port,
        admin_address: "127.0.0.1".to_string(),
        admin_port: args.admin_port,
        router: args
            .outbound_port
            .map(|p| (args.outbound_address.clone(), p)),
    };
    Ok(serde_yaml::to_string(&build_bootstrap(&params))?)
}
