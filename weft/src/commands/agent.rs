//! `weft agent`: turns the flags into `weft_agent`'s configuration (the
//! Envoy bootstrap is `weft bootstrap`'s plus the `sds-grpc` cluster; the
//! status port's app metrics come from `--app-metrics-url`, else Istio's
//! `ISTIO_PROMETHEUS_ANNOTATIONS`; the app's rewritten probes from
//! `ISTIO_KUBE_APP_PROBERS`, sent to the first `--instance-ip`) and runs the agent until SIGTERM or
//! Ctrl-C; `weft agent iptables` turns its flags into
//! `weft_agent::iptables`'s options and installs (or prints) the capture
//! rules.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use anyhow::Context;
use weft_agent::status::probers::{APP_PROBERS_ENV, AppProbes};
use weft_agent::status::scrape::ScrapeTarget;
use weft_agent::{AgentConfig, CaClientConfig, EnvoyConfig, Identity, StatusConfig};

use crate::cli::{AgentArgs, IptablesArgs};
use crate::commands::bootstrap;
use weft_agent::iptables::{self as capture, CaptureOptions};

/// Runs the agent (and Envoy unless `--no-envoy`) until SIGTERM / Ctrl-C.
pub async fn run(args: AgentArgs) -> anyhow::Result<()> {
    let root_pem = std::fs::read(&args.ca_root).with_context(|| {
        format!(
            "cannot read --ca-root {:?} (the CA's root certificate, PEM)",
            args.ca_root
        )
    })?;
    let env = AgentEnv {
        prometheus_annotations: std::env::var(PROMETHEUS_ANNOTATIONS_ENV).ok(),
        app_probers: std::env::var(APP_PROBERS_ENV).ok(),
    };
    let config = agent_config(&args, root_pem, &env)?;
    let envoy = envoy_config(&args)?;
    weft_agent::run(config, envoy, crate::control_plane::shutdown_signal()).await?;
    Ok(())
}

/// `weft agent iptables`: prints the rules (`--dry-run`) or installs them.
pub fn iptables(args: &IptablesArgs) -> anyhow::Result<()> {
    let rules = capture::render_rules(&capture_options(args)?);
    if args.dry_run {
        print!("{rules}");
        return Ok(());
    }
    capture::apply(&args.iptables_restore, &rules)?;
    Ok(())
}

/// The capture options the flags say.
pub fn capture_options(args: &IptablesArgs) -> anyhow::Result<CaptureOptions> {
    Ok(CaptureOptions {
        proxy_uid: args.proxy_uid,
        inbound_capture_port: args.inbound_capture_port,
        outbound_capture_port: args.outbound_capture_port,
        include_inbound_ports: capture::parse_inbound_ports(&args.include_inbound_ports)?,
        exclude_inbound_ports: capture::parse_ports(
            "--exclude-inbound-ports",
            &args.exclude_inbound_ports,
        )?,
        exclude_outbound_ports: capture::parse_ports(
            "--exclude-outbound-ports",
            &args.exclude_outbound_ports,
        )?,
        exclude_outbound_ip_ranges: capture::parse_cidrs(
            "--exclude-outbound-ip-ranges",
            &args.exclude_outbound_ip_ranges,
        )?,
    })
}

/// Where injection leaves the Pod's own `prometheus.io/*` annotations
/// (Istio's name): the app's metrics the status port merges.
pub const PROMETHEUS_ANNOTATIONS_ENV: &str = "ISTIO_PROMETHEUS_ANNOTATIONS";

/// What injection leaves the agent in its environment.
#[derive(Clone, Debug, Default)]
pub struct AgentEnv {
    /// [`PROMETHEUS_ANNOTATIONS_ENV`]: where the app's metrics are.
    pub prometheus_annotations: Option<String>,
    /// [`APP_PROBERS_ENV`]: the app's original probes.
    pub app_probers: Option<String>,
}

/// The agent's configuration.
pub fn agent_config(
    args: &AgentArgs,
    root_pem: Vec<u8>,
    env: &AgentEnv,
) -> anyhow::Result<AgentConfig> {
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
        status: status_config(args, env)?,
    })
}

/// The status port's configuration, `None` with `--status-port 0`.
pub fn status_config(args: &AgentArgs, env: &AgentEnv) -> anyhow::Result<Option<StatusConfig>> {
    let status_port = args.bootstrap.status_port;
    if status_port == 0 {
        return Ok(None);
    }
    let annotations = env.prometheus_annotations.as_deref();
    let app_metrics = match (&args.app_metrics_url, annotations) {
        (Some(url), _) if !url.is_empty() => {
            Some(ScrapeTarget::from_url(url).context("--app-metrics-url")?)
        }
        (_, Some(json)) if !json.trim().is_empty() => Some(ScrapeTarget::from_annotations(json)?),
        _ => None,
    };
    let app_probes = AppProbes::parse(env.app_probers.as_deref().unwrap_or(""))?;
    // The kubelet probes the pod's IP; so does the agent (Istio's default).
    let probe_address = args
        .bootstrap
        .instance_ip
        .iter()
        .find_map(|ip| ip.parse::<IpAddr>().ok())
        .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST));
    Ok(Some(StatusConfig {
        address: SocketAddr::from((Ipv4Addr::UNSPECIFIED, status_port)),
        envoy_admin_port: (!args.no_envoy).then_some(args.bootstrap.admin_port),
        app_metrics,
        app_probes,
        probe_address,
    }))
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
    Ok(weft_translate::bootstrap::build_bootstrap(&params))
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
    use crate::cli::{AgentCommand, Cli, Command};

    fn args(argv: &[&str]) -> AgentArgs {
        let mut full = vec!["weft", "agent", "--node-id", "p", "--ca-root", "/root.pem"];
        full.extend_from_slice(argv);
        match Cli::try_parse_from(full).unwrap().command {
            Command::Agent(AgentCommand::Run(args)) => args,
            other => panic!("{other:?}"),
        }
    }

    fn iptables_args(argv: &[&str]) -> IptablesArgs {
        let mut full = vec!["weft", "agent", "iptables"];
        full.extend_from_slice(argv);
        match Cli::try_parse_from(full).unwrap().command {
            Command::Agent(AgentCommand::Iptables(args)) => args,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn iptables_is_a_subcommand_with_istios_defaults() {
        let options = capture_options(&iptables_args(&["--dry-run"])).unwrap();
        assert_eq!(options, CaptureOptions::default());
        let options = capture_options(&iptables_args(&[
            "--proxy-uid",
            "2000",
            "--exclude-outbound-ip-ranges",
            "10.0.0.0/8",
            "--include-inbound-ports",
            "9080",
        ]))
        .unwrap();
        assert_eq!(options.proxy_uid, 2000);
        assert_eq!(options.exclude_outbound_ip_ranges.len(), 1);
        assert_eq!(
            options.include_inbound_ports,
            capture::InboundPorts::Only(vec![9080])
        );
        let err = capture_options(&iptables_args(&["--exclude-inbound-ports", "ssh"])).unwrap_err();
        assert!(err.to_string().contains("--exclude-inbound-ports"), "{err}");
        // The agent's own flags and the subcommand do not mix.
        let err = Cli::try_parse_from(["weft", "agent", "--node-id", "p", "iptables"]).unwrap_err();
        assert!(!err.to_string().is_empty());
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
        let config = agent_config(&args, b"PEM".to_vec(), &AgentEnv::default()).unwrap();
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
        assert_eq!(names, ["weft-xds", "sds-grpc", "prometheus_stats", "agent"]);
        let config = agent_config(&args, Vec::new(), &AgentEnv::default()).unwrap();
        assert_eq!(config.ca.server_name, "istiod.istio-system.svc");
        assert_eq!(config.cert_ttl, Duration::from_secs(3600));
    }

    fn metrics_env(annotations: &str) -> AgentEnv {
        AgentEnv {
            prometheus_annotations: Some(annotations.to_string()),
            app_probers: None,
        }
    }

    #[test]
    fn the_status_port_and_where_the_apps_metrics_are() {
        let plain = args(&["--no-envoy"]);
        let status = status_config(&plain, &AgentEnv::default())
            .unwrap()
            .unwrap();
        assert_eq!(status.address, "0.0.0.0:15020".parse().unwrap());
        assert_eq!(status.envoy_admin_port, None);
        assert_eq!(status.app_metrics, None);

        let with_envoy = args(&["--bootstrap-out", "/b", "--admin-port", "15100"]);
        let annotations = r#"{"scrape":"true","path":"/m","port":"8080"}"#;
        let status = status_config(&with_envoy, &metrics_env(annotations))
            .unwrap()
            .unwrap();
        assert_eq!(status.envoy_admin_port, Some(15100));
        assert_eq!(
            status.app_metrics,
            Some(ScrapeTarget::local("localhost", 8080, "/m"))
        );
        // The flag wins over the environment.
        let flagged = args(&["--no-envoy", "--app-metrics-url", "http://127.0.0.1:9/x"]);
        let status = status_config(&flagged, &metrics_env(annotations))
            .unwrap()
            .unwrap();
        assert_eq!(
            status.app_metrics,
            Some(ScrapeTarget::local("127.0.0.1", 9, "/x"))
        );
        let err = status_config(&args(&["--no-envoy"]), &metrics_env("{port")).unwrap_err();
        assert!(
            err.to_string().contains("ISTIO_PROMETHEUS_ANNOTATIONS"),
            "{err}"
        );
        let off = args(&["--no-envoy", "--status-port", "0"]);
        assert!(
            status_config(&off, &metrics_env(annotations))
                .unwrap()
                .is_none()
        );
        // The agent's bootstrap carries the workload name and 15090.
        let named = args(&["--bootstrap-out", "/b", "--workload-name", "reviews-v1"]);
        let envoy = envoy_config(&named).unwrap().unwrap();
        assert_eq!(
            envoy.bootstrap["node"]["metadata"]["WORKLOAD_NAME"],
            "reviews-v1"
        );
        assert_eq!(
            envoy.bootstrap["static_resources"]["listeners"][0]["address"]["socket_address"]["port_value"],
            15090
        );
        // And Istio's health listener, 15021, to the agent's status port.
        assert_eq!(
            envoy.bootstrap["static_resources"]["listeners"][1]["address"]["socket_address"]["port_value"],
            15021
        );
    }

    #[test]
    fn the_apps_probes_come_from_the_environment_and_go_to_the_pod_ip() {
        let probers = r#"{"/app-health/web/readyz":{"httpGet":{"path":"/ready","port":8080}}}"#;
        let env = AgentEnv {
            prometheus_annotations: None,
            app_probers: Some(probers.to_string()),
        };
        let in_pod = args(&["--no-envoy", "--instance-ip", "10.1.2.3"]);
        let status = status_config(&in_pod, &env).unwrap().unwrap();
        assert_eq!(status.probe_address, "10.1.2.3".parse::<IpAddr>().unwrap());
        assert!(status.app_probes.get("/app-health/web/readyz").is_some());
        let plain = status_config(&args(&["--no-envoy"]), &AgentEnv::default())
            .unwrap()
            .unwrap();
        assert_eq!(plain.probe_address, IpAddr::V4(Ipv4Addr::LOCALHOST));
        assert!(plain.app_probes.is_empty());
        let bad = AgentEnv {
            prometheus_annotations: None,
            app_probers: Some(r#"{"/healthz":{}}"#.to_string()),
        };
        let err = status_config(&in_pod, &bad).unwrap_err();
        assert!(err.to_string().contains("ISTIO_KUBE_APP_PROBERS"), "{err}");
    }
}
