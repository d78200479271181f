//! `weft agent`'s arguments: the sidecar agent's flags, and `weft agent
//! iptables`.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use weft_crds::IstioDuration;

use super::BootstrapArgs;

/// `weft agent`: run the agent (its flags), or a subcommand. Written by
/// hand because clap's derive cannot make the agent's flags optional when a
/// subcommand is given (`AgentArgs` flattens `BootstrapArgs`, so
/// `Option<AgentArgs>` is never `Some`).
#[derive(Debug)]
#[allow(clippy::large_enum_variant)] // parsed once, at startup
pub enum AgentCommand {
    /// `weft agent --node-id ... --ca-root ...`.
    Run(AgentArgs),
    /// `weft agent iptables ...`.
    Iptables(IptablesArgs),
}

impl clap::FromArgMatches for AgentCommand {
    fn from_arg_matches(matches: &clap::ArgMatches) -> Result<Self, clap::Error> {
        if matches.subcommand().is_some() {
            return match AgentSubcommand::from_arg_matches(matches)? {
                AgentSubcommand::Iptables(args) => Ok(Self::Iptables(args)),
            };
        }
        AgentArgs::from_arg_matches(matches).map(Self::Run)
    }

    fn update_from_arg_matches(&mut self, matches: &clap::ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(matches)?;
        Ok(())
    }
}

impl Args for AgentCommand {
    fn augment_args(cmd: clap::Command) -> clap::Command {
        AgentSubcommand::augment_subcommands(AgentArgs::augment_args(cmd))
            .args_conflicts_with_subcommands(true)
            .subcommand_negates_reqs(true)
    }

    fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
        Self::augment_args(cmd)
    }
}

#[derive(Debug, Subcommand)]
pub enum AgentSubcommand {
    /// Install the transparent-capture rules (Istio's `istio-iptables`,
    /// REDIRECT mode) in this network namespace: outbound TCP to
    /// `--outbound-capture-port`, inbound to `--inbound-capture-port`, the
    /// proxy's own UID excluded. Needs NET_ADMIN and `iptables-restore`.
    Iptables(IptablesArgs),
}

#[derive(Debug, Args)]
pub struct IptablesArgs {
    /// The UID Envoy runs as: its own connections are never redirected.
    #[arg(long, value_name = "UID", default_value_t = 1337)]
    pub proxy_uid: u32,
    /// Where inbound connections are redirected (Envoy's `virtualInbound`).
    #[arg(long, value_name = "PORT", default_value_t = 15006)]
    pub inbound_capture_port: u16,
    /// Where outbound connections are redirected (`virtualOutbound`).
    #[arg(long, value_name = "PORT", default_value_t = 15001)]
    pub outbound_capture_port: u16,
    /// Inbound ports to capture: `*` (all but 15000-15090) or
    /// `PORT[,PORT...]`.
    #[arg(long, value_name = "PORTS", default_value = "*")]
    pub include_inbound_ports: String,
    /// Inbound ports not to capture (with `--include-inbound-ports '*'`).
    #[arg(long, value_name = "PORTS", default_value = "")]
    pub exclude_inbound_ports: String,
    /// Outbound destination ports not to capture.
    #[arg(long, value_name = "PORTS", default_value = "")]
    pub exclude_outbound_ports: String,
    /// Outbound destination IPv4 ranges not to capture (`CIDR[,CIDR...]`).
    #[arg(long, value_name = "CIDRS", default_value = "")]
    pub exclude_outbound_ip_ranges: String,
    /// Print the `iptables-restore` input instead of applying it.
    #[arg(long)]
    pub dry_run: bool,
    /// The `iptables-restore` binary to run.
    #[arg(long, value_name = "PATH", default_value = "iptables-restore")]
    pub iptables_restore: String,
}

#[derive(Debug, Args)]
pub struct AgentArgs {
    /// Where the CA's certificate service (Istio's
    /// `IstioCertificateService`, gRPC over TLS) is.
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:15012")]
    pub ca_address: String,
    /// The name the CA's serving certificate must carry (DNS name or IP);
    /// defaults to the host of `--ca-address`.
    #[arg(long, value_name = "NAME")]
    pub ca_server_name: Option<String>,
    /// PEM root the CA's serving certificate chains to (Istio mounts the
    /// `istio-ca-root-cert` ConfigMap).
    #[arg(long, value_name = "FILE")]
    pub ca_root: PathBuf,
    /// The service-account token, re-read for every request and sent as
    /// `authorization: Bearer <token>`.
    #[arg(
        long,
        value_name = "FILE",
        default_value = "/var/run/secrets/tokens/istio-token"
    )]
    pub token_file: PathBuf,
    /// Requested certificate validity; `0s` lets the CA choose.
    #[arg(long, value_name = "DURATION", default_value = "0s")]
    pub cert_ttl: IstioDuration,
    /// The trust domain of the requested SPIFFE ID (the CA decides).
    #[arg(long, value_name = "DOMAIN", default_value = "cluster.local")]
    pub trust_domain: String,
    /// Only certificates and SDS: do not write a bootstrap or run Envoy.
    #[arg(long)]
    pub no_envoy: bool,
    /// The Envoy binary to run.
    #[arg(long, value_name = "PATH", default_value = "envoy")]
    pub envoy_binary: PathBuf,
    /// Where Envoy's bootstrap is written (`weft bootstrap`'s, plus the
    /// `sds-grpc` cluster on `--sds-socket`).
    #[arg(long, value_name = "FILE", required_unless_present = "no_envoy")]
    pub bootstrap_out: Option<PathBuf>,
    /// On SIGTERM, how long Envoy's listeners drain before Envoy is
    /// stopped.
    #[arg(long, value_name = "DURATION", default_value = "5s")]
    pub drain_duration: IstioDuration,
    /// The application's metrics, merged into the status port's
    /// `/stats/prometheus`; without it, those `ISTIO_PROMETHEUS_ANNOTATIONS`
    /// names (`{"scrape":"true","path":"/metrics","port":"8080"}`, the
    /// Pod's `prometheus.io/*` annotations moved there by injection).
    #[arg(long, value_name = "URL")]
    pub app_metrics_url: Option<String>,
    /// Also the agent's: `--sds-socket` (where it serves SDS; default
    /// [`AgentArgs::DEFAULT_SDS_SOCKET`]) and `--service-account` (of the
    /// requested SPIFFE ID, whose namespace is `--namespace`; the CA
    /// decides; default `default`).
    #[command(flatten)]
    pub bootstrap: BootstrapArgs,
}

impl AgentArgs {
    /// Where Istio's agent serves SDS.
    pub const DEFAULT_SDS_SOCKET: &str = "/var/run/secrets/workload-spiffe-uds/socket";

    /// The SDS socket: `--sds-socket`, else [`Self::DEFAULT_SDS_SOCKET`].
    pub fn sds_socket(&self) -> PathBuf {
        PathBuf::from(
            self.bootstrap
                .sds_socket
                .as_deref()
                .filter(|p| !p.is_empty())
                .unwrap_or(Self::DEFAULT_SDS_SOCKET),
        )
    }

    /// The requested identity's service account: `--service-account`,
    /// else `default`.
    pub fn service_account(&self) -> String {
        self.bootstrap
            .service_account
            .clone()
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "default".to_string())
    }
}
