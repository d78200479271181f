//! `weft agent`: turns the flags into `weft_agent`'s configuration (the
//! Envoy bootstrap is `weft bootstrap`'s plus the `sds-grpc` cluster) and
//! runs the agent until SIGTERM or Ctrl-C.

use std::time::Duration;

use anyhow::Context;
use weft_agent::{AgentConfig, CaClientConfig, EnvoyConfig, Identity};

use crate::bootstrap;
use crate::cli::AgentArgs;

/// Runs the agent (and Envoy unless `--no-envoy`) until SIGTERM / Ctrl-C.
pub async fn run(args: AgentArgs) -> anyhow::Result<()> {
    let root_pem = std::fs::read(&args.ca_root).with_context(|| {
        format!(
            "cannot read --ca-root {:?} (the CA's root certificate, PEM)",
            args.ca_root
        )
    })?;
    let config = agent_config(&args, root_pem)?;
    let envoy = envoy_config(&args)?;
    weft_agent::run(config, envoy, crate::server::shutdown_signal()).await?;
    Ok(())
}

/// The certificate side's configuration.
pub fn agent_config(args: &AgentArgs, root_pem: Vec<u8>) -> anyhow::Result<AgentConfig> {
    let server_name = match &args.ca_server_name {
        Some(name) => name.clone(),
        None => host_of(&args.ca_address)?,
    };
    Ok(AgentConfig {
        ca: CaClientConfig {
            address: args.ca_address.clone(),
            server_name,
            root_pem,
            token_file: args.token_file.clone(),
        },
        identity: Identity {
            trust_domain: args.trust_domain.clone(),
            namespace: args.bootstrap.namespace.clone(),
            service_account: args.service_account(),
        },
        cert_ttl: args.cert_ttl.into(),
        sds_socket: args.sds_socket(),
        retry_initial: Duration::from_secs(1),
        retry_max: Duration::from_secs(60),
    })
}

/// Envoy's configuration, `None` with `--no-envoy`.
pub fn envoy_config(args: &AgentArgs) -> anyhow::Result<Option<EnvoyConfig>> {
    if args.no_envoy {
        return Ok(None);
    }
    let bootstrap_path = args
        .bootstrap_out
        .clone()
        .context("--bootstrap-out FILE is required unless --no-envoy is given")?;
    Ok(Some(EnvoyConfig {
        binary: args.envoy_binary.clone(),
        bootstrap_path,
        bootstrap: render_bootstrap(args)?,
        admin_port: args.bootstrap.admin_port,
        drain_duration: args.drain_duration.into(),
        extra_args: Vec::new(),
    }))
}

/// `weft bootstrap`'s bootstrap, its `sds-grpc` cluster on the agent's
/// socket.
fn render_bootstrap(args: &AgentArgs) -> anyhow::Result<serde_json::Value> {
    let mut params = bootstrap::params(&args.bootstrap)?;
    params.sds_socket = Some(args.sds_socket().display().to_string());
    Ok(weft_pilot::bootstrap::build_bootstrap(&params))
}

fn host_of(address: &str) -> anyhow::Result<String> {
    let (host, _port) = address
        .rsplit_once(':')
        .with_context(|| format!("--ca-address {address:?} must be HOST:PORT"))?;
    Ok(host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::cli::{Cli, Command};

    fn args(argv: &[&str]) -> AgentArgs {
        let mut full = vec!["weft", "agent", "--node-id", "p", "--ca-root", "/root.pem"];
        full.extend_from_slice(argv);
        match Cli::try_parse_from(full).unwrap().command {
            Command::Agent(args) => args,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn defaults_follow_istio_and_the_identity_uses_the_namespace() {
        let args = args(&[
            "--no-envoy",
            "--namespace",
            "ns1",
            "--service-account",
            "reviews",
        ]);
        let config = agent_config(&args, b"PEM".to_vec()).unwrap();
        assert_eq!(config.ca.address, "127.0.0.1:15012");
        assert_eq!(config.ca.server_name, "127.0.0.1");
        assert_eq!(config.cert_ttl, Duration::ZERO);
        assert_eq!(
            config.identity.spiffe_id(),
            "spiffe://cluster.local/ns/ns1/sa/reviews"
        );
        assert!(envoy_config(&args).unwrap().is_none());
    }

    #[test]
    fn envoy_needs_a_bootstrap_path_and_gets_the_sds_cluster() {
        let err =
            Cli::try_parse_from(["weft", "agent", "--node-id", "p", "--ca-root", "r"]).unwrap_err();
        assert!(err.to_string().contains("--bootstrap-out"), "{err}");
        let args = args(&[
            "--bootstrap-out",
            "/tmp/b.yaml",
            "--sds-socket",
            "/run/sds",
            "--admin-port",
            "15001",
            "--ca-address",
            "istiod.istio-system.svc:15012",
            "--cert-ttl",
            "1h",
        ]);
        let envoy = envoy_config(&args).unwrap().unwrap();
        assert_eq!(envoy.admin_port, 15001);
        let clusters = envoy.bootstrap["static_resources"]["clusters"]
            .as_array()
            .unwrap();
        let names: Vec<&str> = clusters
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["weft-xds", "sds-grpc"]);
        let config = agent_config(&args, Vec::new()).unwrap();
        assert_eq!(config.ca.server_name, "istiod.istio-system.svc");
        assert_eq!(config.cert_ttl, Duration::from_secs(3600));
    }
}
