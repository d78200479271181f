//! `weft bootstrap`: print an Envoy bootstrap (the flags turned into
//! `weft_translate::bootstrap`'s parameters; `node.cluster` defaults to
//! Istio's `<canonical service>.<namespace>`).

use anyhow::Context;
use weft_translate::bootstrap::{
    BootstrapParams, HealthListener, build_bootstrap, default_node_cluster,
};

use std::collections::BTreeMap;
use std::net::IpAddr;

use crate::cli::{BootstrapArgs, ProxyRoleArg};

/// Renders the bootstrap YAML for `args`.
pub fn render(args: &BootstrapArgs) -> anyhow::Result<String> {
    Ok(serde_yaml::to_string(&build_bootstrap(&params(args)?))?)
}

/// What `args` say about the proxy, for [`build_bootstrap`].
pub fn params(args: &BootstrapArgs) -> anyhow::Result<BootstrapParams> {
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
    let gateway = args.role == ProxyRoleArg::Gateway;
    if gateway && args.capture {
        anyhow::bail!(
            "--capture is for sidecars; a gateway listens on the ports of its Gateway servers"
        );
    }
    for ip in args.instance_ip.iter().filter(|ip| !ip.is_empty()) {
        ip.parse::<IpAddr>()
            .with_context(|| format!("--instance-ip {ip:?} is not an IP address"))?;
    }
    if gateway && args.outbound_port.is_some() {
        anyhow::bail!(
            "--outbound-port is for sidecars; a gateway listens on the ports of the Gateway servers that select its --labels"
        );
    }
    let mut labels = BTreeMap::new();
    for label in args.labels.iter().filter(|l| !l.is_empty()) {
        let (key, value) = label
            .split_once('=')
            .with_context(|| format!("--labels {label:?} must be KEY=VALUE"))?;
        if key.is_empty() {
            anyhow::bail!("--labels {label:?}: the key must not be empty");
        }
        labels.insert(key.to_string(), value.to_string());
    }
    let workload_name = args.workload_name.clone().filter(|w| !w.is_empty());
    let node_cluster = match args.service_cluster.clone().filter(|c| !c.is_empty()) {
        Some(cluster) => cluster,
        None => default_node_cluster(
            &args.node_id,
            &args.namespace,
            &labels,
            workload_name.as_deref(),
        ),
    };
    let params = BootstrapParams {
        node_id: args.node_id.clone(),
        node_cluster,
        namespace: args.namespace.clone(),
        xds_host: host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string(),
        xds_port: port,
        admin_address: "127.0.0.1".to_string(),
        admin_port: args.admin_port,
        delta: args.delta,
        router: args
            .outbound_port
            .map(|p| (args.outbound_address.clone(), p)),
        gateway,
        labels,
        sds_socket: args.sds_socket.clone().filter(|p| !p.is_empty()),
        service_account: args.service_account.clone().filter(|s| !s.is_empty()),
        capture: args.capture,
        instance_ips: args
            .instance_ip
            .iter()
            .filter(|ip| !ip.is_empty())
            .cloned()
            .collect(),
        workload_name,
        prometheus_port: Some(args.prometheus_port).filter(|p| *p != 0),
        health: (args.health_port != 0 && args.status_port != 0).then_some(HealthListener {
            port: args.health_port,
            agent_status_port: args.status_port,
        }),
    };
    Ok(params)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::cli::{Cli, Command};

    fn args(argv: &[&str]) -> BootstrapArgs {
        let mut full = vec!["weft", "bootstrap", "--node-id", "p"];
        full.extend_from_slice(argv);
        match Cli::try_parse_from(full).unwrap().command {
            Command::Bootstrap(args) => args,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn sds_socket_and_service_account_flags_reach_the_bootstrap() {
        let yaml = render(&args(&[
            "--sds-socket",
            "/run/weft/sds.sock",
            "--service-account",
            "reviews",
        ]))
        .unwrap();
        let value: serde_yaml::Value = serde_yaml::from_str(&yaml).unwrap();
        assert_eq!(value["node"]["metadata"]["SERVICE_ACCOUNT"], "reviews");
        assert_eq!(value["static_resources"]["clusters"][1]["name"], "sds-grpc");
        assert!(yaml.contains("/run/weft/sds.sock"));
    }

    #[test]
    fn capture_and_instance_ips_reach_the_node_metadata() {
        let yaml = render(&args(&[
            "--capture",
            "--instance-ip",
            "10.0.0.2",
            "--instance-ip",
            "10.0.0.3",
        ]))
        .unwrap();
        let value: serde_yaml::Value = serde_yaml::from_str(&yaml).unwrap();
        assert_eq!(value["node"]["metadata"]["INTERCEPTION_MODE"], "REDIRECT");
        assert_eq!(
            value["node"]["metadata"]["INSTANCE_IPS"],
            "10.0.0.2,10.0.0.3"
        );
        let err = render(&args(&["--instance-ip", "pod"])).unwrap_err();
        assert!(err.to_string().contains("not an IP address"), "{err}");
        let err = render(&args(&["--role", "gateway", "--capture"])).unwrap_err();
        assert!(
            err.to_string().contains("--capture is for sidecars"),
            "{err}"
        );
        let plain = render(&args(&[])).unwrap();
        assert!(!plain.contains("INTERCEPTION_MODE"));
    }

    #[test]
    fn a_gateway_bootstrap_carries_role_and_labels_and_no_router() {
        let yaml = render(&args(&[
            "--role",
            "gateway",
            "--labels",
            "istio=ingressgateway,app=edge",
            "--labels",
            "tier=front",
        ]))
        .unwrap();
        let value: serde_yaml::Value = serde_yaml::from_str(&yaml).unwrap();
        let metadata = &value["node"]["metadata"];
        assert_eq!(metadata["WEFT_ROLE"], "gateway");
        assert_eq!(metadata["LABELS"]["istio"], "ingressgateway");
        assert_eq!(metadata["LABELS"]["app"], "edge");
        assert_eq!(metadata["LABELS"]["tier"], "front");
        assert!(metadata.get("WEFT_ROUTER_ADDRESS").is_none());
    }

    #[test]
    fn a_gateway_has_no_outbound_port_and_labels_need_a_key() {
        let err = render(&args(&["--role", "gateway", "--outbound-port", "15080"])).unwrap_err();
        assert!(
            err.to_string().contains("--outbound-port is for sidecars"),
            "{err}"
        );
        let err = render(&args(&["--labels", "novalue"])).unwrap_err();
        assert!(err.to_string().contains("must be KEY=VALUE"), "{err}");
        let err = render(&args(&["--labels", "=x"])).unwrap_err();
        assert!(
            err.to_string().contains("the key must not be empty"),
            "{err}"
        );
        let sidecar = render(&args(&["--outbound-port", "15080", "--labels", "app=web"])).unwrap();
        assert!(sidecar.contains("WEFT_ROUTER_ADDRESS"));
        assert!(!sidecar.contains("WEFT_ROLE"));
    }

    #[test]
    fn prometheus_port_workload_name_and_the_default_node_cluster() {
        let value = |argv: &[&str]| -> serde_yaml::Value {
            serde_yaml::from_str(&render(&args(argv)).unwrap()).unwrap()
        };
        let plain = value(&["--namespace", "prod"]);
        let listener = &plain["static_resources"]["listeners"][0];
        assert_eq!(listener["name"], "prometheus_stats");
        assert_eq!(
            listener["address"]["socket_address"]["port_value"],
            serde_yaml::Value::from(15090)
        );
        // Without labels or a workload name: the node id's first segment.
        assert_eq!(plain["node"]["cluster"], "p.prod");
        assert!(plain["node"]["metadata"].get("WORKLOAD_NAME").is_none());

        // Istio's health listener on 15021, forwarding to the agent's 15020.
        let health = &plain["static_resources"]["listeners"][1];
        assert_eq!(health["name"], "health");
        assert_eq!(
            health["address"]["socket_address"]["port_value"],
            serde_yaml::Value::from(15021)
        );
        let moved = value(&["--health-port", "16021", "--status-port", "16020"]);
        assert_eq!(
            moved["static_resources"]["listeners"][1]["address"]["socket_address"]["port_value"],
            serde_yaml::Value::from(16021)
        );
        assert!(
            serde_yaml::to_string(&moved["static_resources"]["clusters"])
                .unwrap()
                .contains("port_value: 16020")
        );
        let off = value(&["--prometheus-port", "0", "--health-port", "0"]);
        assert!(off["static_resources"].get("listeners").is_none());
        let no_agent = value(&["--prometheus-port", "0", "--status-port", "0"]);
        assert!(no_agent["static_resources"].get("listeners").is_none());

        let named = value(&["--workload-name", "reviews-v1", "--namespace", "prod"]);
        assert_eq!(named["node"]["metadata"]["WORKLOAD_NAME"], "reviews-v1");
        assert_eq!(named["node"]["cluster"], "reviews-v1.prod");
        let labelled = value(&[
            "--workload-name",
            "reviews-v1",
            "--labels",
            "app=reviews,service.istio.io/canonical-name=reviews-svc",
        ]);
        assert_eq!(labelled["node"]["cluster"], "reviews-svc.default");
        let explicit = value(&["--service-cluster", "mine", "--labels", "app=reviews"]);
        assert_eq!(explicit["node"]["cluster"], "mine");
    }
}
