//! The `weft` command line.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use weft_crds::IstioDuration;

use weft_citadel::KeyType;
use weft_operator::leader::{self, LeaseConfig};

mod agent;
pub use agent::{AgentArgs, AgentCommand, IptablesArgs};

/// Weft: an Istio-compatible service-mesh control plane.
#[derive(Debug, Parser)]
#[command(name = "weft", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve xDS from a directory of Istio YAML files, without a cluster.
    Standalone(StandaloneArgs),
    /// Serve xDS from a Kubernetes cluster's Istio resources, Services,
    /// EndpointSlices and Pods; write their status; validate them (webhook).
    Operator(OperatorArgs),
    /// Print an Envoy bootstrap (YAML) that connects Envoy to Weft over ADS.
    Bootstrap(BootstrapArgs),
    /// Check Istio YAML files or directories with the same code standalone
    /// runs: print every error and warning, exit 1 if there is an error.
    /// Documents of other kinds (Deployments, Services, ...) are skipped
    /// and counted; a reference a later apply may fix is a warning.
    Validate(ValidateArgs),
    /// The sidecar agent: an in-memory key, a certificate from the CA,
    /// SDS to Envoy on a Unix socket, rotation; starts and supervises Envoy
    /// (unless `--no-envoy`). `weft agent iptables` installs the
    /// transparent-capture rules instead (the injected init container).
    Agent(AgentCommand),
    /// Print a Pod (YAML) with the sidecar the injection webhook would add,
    /// or unchanged with the reason on stderr.
    Inject(InjectArgs),
    /// Is every proxy in sync? Each connected proxy's state per xDS type
    /// (SYNCED, NOT SENT, STALE, ERROR with Envoy's NACK), from a running
    /// control plane's `/debug/syncz`.
    ProxyStatus(crate::commands::proxy_status::ProxyStatusArgs),
    /// What config does this proxy have? Its clusters, listeners, routes,
    /// endpoints or secrets, from the control plane or Envoy's own dump.
    ProxyConfig(crate::commands::proxy_config::ProxyConfigArgs),
    /// Find problems in a mesh (Istio's `istioctl analyze`): files and
    /// directories, or a live cluster (`--kubeconfig`); each finding with a
    /// code (WA....), a severity, the resource, the field and a fix. Exits
    /// 79 when a finding reaches `--failure-threshold` (Error).
    Analyze(AnalyzeArgs),
}

#[derive(Debug, Args)]
pub struct StandaloneArgs {
    /// Directory of `*.yaml` files (VirtualService, DestinationRule,
    /// ServiceEntry; multi-document), watched for changes.
    #[arg(long, value_name = "DIR")]
    pub config_dir: PathBuf,
    /// Istio's MeshConfig (YAML, what ConfigMap `istio` holds under
    /// `mesh`): root namespace, trust domain, telemetry providers; watched,
    /// a bad version is refused and the last good one kept. Not inside
    /// `--config-dir`. Without it, Istio's defaults.
    #[arg(long, value_name = "FILE")]
    pub mesh_config: Option<PathBuf>,
    /// Address of the plaintext xDS (ADS) server.
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:15010")]
    pub xds_address: SocketAddr,
    /// Address of the monitoring server: `/metrics` (Prometheus),
    /// `/healthz`, `/readyz`.
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:15014")]
    pub monitoring_address: SocketAddr,
    /// Changes are applied once the directory was quiet this long.
    #[arg(long, value_name = "DURATION", default_value = "100ms")]
    pub debounce_quiet: IstioDuration,
    /// ... but no later than this after the first change of a burst.
    #[arg(long, value_name = "DURATION", default_value = "10s")]
    pub debounce_max: IstioDuration,
    /// Serve the certificate service, authenticating callers by the tokens
    /// in this YAML file (a list of `{token, namespace, serviceAccount,
    /// expiresAt?}`; re-read when it changes).
    #[arg(long, value_name = "FILE", requires = "ca_dir")]
    pub token_file: Option<PathBuf>,
    /// Where the CA's root is kept (created on first start, reused after
    /// restarts; Istio's `cacerts` layout; `root-cert.pem` is what agents
    /// trust).
    #[arg(long, value_name = "DIR")]
    pub ca_dir: Option<PathBuf>,
    /// A plug-in CA in Istio's `cacerts` layout (`ca-cert.pem`,
    /// `ca-key.pem`, `root-cert.pem`, `cert-chain.pem`); used instead of
    /// `--ca-dir`'s root when present.
    #[arg(long, value_name = "DIR")]
    pub plugin_ca_dir: Option<PathBuf>,
    #[command(flatten)]
    pub ca: CaArgs,
    #[command(flatten)]
    pub jwks: JwksArgs,
}

#[derive(Debug, Args)]
pub struct OperatorArgs {
    /// The kubeconfig to use (its current context); without it, the
    /// in-cluster config or `$KUBECONFIG` / `~/.kube/config`.
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// Address of the plaintext xDS (ADS) server.
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:15010")]
    pub xds_address: SocketAddr,
    /// Address of the monitoring server: `/metrics` (Prometheus),
    /// `/healthz`, `/readyz`.
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:15014")]
    pub monitoring_address: SocketAddr,
    /// Changes are applied once the cluster was quiet this long.
    #[arg(long, value_name = "DURATION", default_value = "100ms")]
    pub debounce_quiet: IstioDuration,
    /// ... but no later than this after the first change of a burst.
    #[arg(long, value_name = "DURATION", default_value = "10s")]
    pub debounce_max: IstioDuration,
    /// Address of the admission webhook (HTTPS, `POST /validate`); served
    /// only with `--webhook-tls-cert` and `--webhook-tls-key`, or with
    /// `--webhook-service`.
    #[arg(long, value_name = "HOST:PORT", default_value = "0.0.0.0:15017")]
    pub webhook_address: SocketAddr,
    /// The webhook's certificate chain (PEM); its SANs must match the
    /// address the apiserver calls.
    #[arg(long, value_name = "FILE", requires = "webhook_tls_key")]
    pub webhook_tls_cert: Option<PathBuf>,
    /// The webhook's private key (PEM).
    #[arg(long, value_name = "FILE", requires = "webhook_tls_cert")]
    pub webhook_tls_key: Option<PathBuf>,
    /// The Service (in `--control-plane-namespace`) the apiserver calls the
    /// webhook through. Instead of certificate files: Weft's CA issues the
    /// webhook's certificate for `NAME.NS.svc` (and `NAME`, `NAME.NS`,
    /// `NAME.NS.svc.cluster.local`) and renews it, and the leader keeps
    /// the `caBundle` of `--mutating-webhook-name` and
    /// `--validating-webhook-name` set to the CA's root.
    #[arg(long, value_name = "NAME", conflicts_with = "webhook_tls_cert")]
    pub webhook_service: Option<String>,
    /// How long a webhook certificate issued for `--webhook-service` is
    /// valid; it is renewed after two thirds of that.
    #[arg(long, value_name = "DURATION", default_value = "24h")]
    pub webhook_cert_ttl: IstioDuration,
    /// The MutatingWebhookConfiguration whose webhooks' `caBundle` Weft
    /// keeps set to its root (with `--webhook-service`).
    #[arg(long, value_name = "NAME", requires = "webhook_service")]
    pub mutating_webhook_name: Option<String>,
    /// The ValidatingWebhookConfiguration whose webhooks' `caBundle` Weft
    /// keeps set to its root (with `--webhook-service`).
    #[arg(long, value_name = "NAME", requires = "webhook_service")]
    pub validating_webhook_name: Option<String>,
    /// Istio's `discoverySelectors`: only namespaces carrying all these
    /// labels (`key=value[,key=value...]`) contribute Services,
    /// EndpointSlices and Pods; repeat for alternatives. Without it, every
    /// namespace does.
    #[arg(long, value_name = "LABELS")]
    pub discovery_selector: Vec<String>,
    #[command(flatten)]
    pub ca: CaArgs,
    #[command(flatten)]
    pub jwks: JwksArgs,
    /// The control plane's namespace: where the leader-election Lease,
    /// the CA's Secret, the webhook's Service and the injection config
    /// live (only the leader writes status; every replica serves xDS).
    /// `--lease-namespace` is its old name.
    #[arg(
        long,
        visible_alias = "lease-namespace",
        value_name = "NS",
        env = "POD_NAMESPACE",
        default_value = "weft-system"
    )]
    pub control_plane_namespace: String,
    /// Name of the leader-election Lease.
    #[arg(long, value_name = "NAME", default_value = "weft-leader")]
    pub lease_name: String,
    /// This replica's name in the Lease, unique among the replicas;
    /// without it and `POD_NAME`, `<hostname>-<pid>`.
    #[arg(long, value_name = "ID", env = "POD_NAME")]
    pub identity: Option<String>,
    /// How long the Lease holds without renewal (whole seconds, at least
    /// 2s): how long a crashed leader's status writes wait for a successor.
    #[arg(long, value_name = "DURATION", default_value = "15s")]
    pub lease_duration: IstioDuration,
    /// The sidecar the injection webhook (`POST /inject`) adds.
    #[command(flatten)]
    pub proxy: Box<ProxyArgs>,
}

impl OperatorArgs {
    /// What to issue the webhook's certificate for, when
    /// `--webhook-service` was given.
    pub fn webhook_cert(&self) -> Option<weft_operator::webhook_certs::WebhookCertConfig> {
        Some(weft_operator::webhook_certs::WebhookCertConfig {
            service: self.webhook_service.clone()?,
            namespace: self.control_plane_namespace.clone(),
            ttl: self.webhook_cert_ttl.0,
            mutating: self.mutating_webhook_name.clone(),
            validating: self.validating_webhook_name.clone(),
        })
    }

    /// The leader-election Lease to hold; without `--identity` (or
    /// `POD_NAME`), this process's default identity.
    pub fn lease_config(&self) -> Result<LeaseConfig, leader::Error> {
        LeaseConfig::for_this_process(
            &self.control_plane_namespace,
            &self.lease_name,
            self.identity.as_deref(),
            self.lease_duration.0,
        )
    }

    /// The webhook's certificate and key, when both were given.
    pub fn webhook_tls(&self) -> Option<weft_operator::webhook::TlsFiles> {
        Some(weft_operator::webhook::TlsFiles {
            cert: self.webhook_tls_cert.clone()?,
            key: self.webhook_tls_key.clone()?,
        })
    }
}

/// The injected sidecar's image, resources and addresses (`weft operator`
/// and `weft inject`).
#[derive(Debug, Args)]
pub struct ProxyArgs {
    /// The proxy image (`weft` and Envoy); a Pod's
    /// `sidecar.istio.io/proxyImage` overrides it.
    #[arg(long, value_name = "IMAGE", default_value = weft_operator::inject::DEFAULT_PROXY_IMAGE)]
    pub proxy_image: String,
    /// The proxy's CPU request (`sidecar.istio.io/proxyCPU` overrides).
    #[arg(long, value_name = "QUANTITY", default_value = "100m")]
    pub proxy_cpu: String,
    /// The proxy's memory request (`sidecar.istio.io/proxyMemory`).
    #[arg(long, value_name = "QUANTITY", default_value = "128Mi")]
    pub proxy_memory: String,
    /// The proxy's CPU limit (`sidecar.istio.io/proxyCPULimit`).
    #[arg(long, value_name = "QUANTITY", default_value = "2000m")]
    pub proxy_cpu_limit: String,
    /// The proxy's memory limit (`sidecar.istio.io/proxyMemoryLimit`).
    #[arg(long, value_name = "QUANTITY", default_value = "1024Mi")]
    pub proxy_memory_limit: String,
    /// The CA's certificate service as proxies reach it.
    #[arg(
        long,
        value_name = "HOST:PORT",
        default_value = "weft.weft-system.svc:15012"
    )]
    pub proxy_ca_address: String,
    /// The xDS server as proxies reach it.
    #[arg(
        long,
        value_name = "HOST:PORT",
        default_value = "weft.weft-system.svc:15010"
    )]
    pub proxy_xds_address: String,
    /// Outbound ports no proxy captures (comma-separated), besides a
    /// Pod's `traffic.sidecar.istio.io/excludeOutboundPorts`.
    #[arg(long, value_name = "PORT,...", value_delimiter = ',')]
    pub proxy_exclude_outbound_ports: Vec<u16>,
    /// Outbound CIDRs no proxy captures (comma-separated), besides a Pod's
    /// `traffic.sidecar.istio.io/excludeOutboundIPRanges`.
    #[arg(long, value_name = "CIDR,...", value_delimiter = ',')]
    pub proxy_exclude_outbound_cidrs: Vec<String>,
    /// Rewrite the app containers' liveness, readiness and startup probes
    /// to the agent's status port (`/app-health/...`), so they pass STRICT
    /// mTLS (Istio's mesh-wide default); a Pod's
    /// `sidecar.istio.io/rewriteAppHTTPProbers` overrides it.
    #[arg(long, value_name = "BOOL", default_value_t = true, action = clap::ArgAction::Set)]
    pub rewrite_app_probers: bool,
}

impl ProxyArgs {
    /// The injection config, with the mesh's trust domain and the control
    /// plane's namespace.
    pub fn inject_config(
        &self,
        trust_domain: &str,
        control_plane_namespace: &str,
    ) -> weft_operator::inject::InjectConfig {
        use weft_operator::inject::{InjectConfig, Resources};
        InjectConfig {
            proxy_image: self.proxy_image.clone(),
            requests: Resources {
                cpu: self.proxy_cpu.clone(),
                memory: self.proxy_memory.clone(),
            },
            limits: Resources {
                cpu: self.proxy_cpu_limit.clone(),
                memory: self.proxy_memory_limit.clone(),
            },
            ca_address: self.proxy_ca_address.clone(),
            xds_address: self.proxy_xds_address.clone(),
            trust_domain: trust_domain.to_string(),
            control_plane_namespace: control_plane_namespace.to_string(),
            exclude_outbound_ports: self.proxy_exclude_outbound_ports.clone(),
            exclude_outbound_cidrs: self.proxy_exclude_outbound_cidrs.clone(),
            rewrite_app_probers: self.rewrite_app_probers,
            ..InjectConfig::default()
        }
    }
}

#[derive(Debug, Args)]
pub struct InjectArgs {
    /// The Pod (YAML or JSON; several `---`-separated documents allowed,
    /// non-Pods are printed unchanged); `-` reads stdin.
    #[arg(short = 'f', long = "filename", value_name = "FILE|-")]
    pub file: PathBuf,
    /// The namespace of Pods that name none.
    #[arg(long, value_name = "NS", default_value = "default")]
    pub namespace: String,
    /// The namespace's labels, `key=value[,key=value...]`, as the webhook
    /// would see them.
    #[arg(
        long,
        value_name = "KEY=VALUE,...",
        value_delimiter = ',',
        default_value = "weft-injection=enabled"
    )]
    pub namespace_labels: Vec<String>,
    /// The mesh's trust domain.
    #[arg(long, value_name = "DOMAIN", default_value = "cluster.local")]
    pub trust_domain: String,
    /// The control plane's namespace (its own Pods are never injected).
    #[arg(long, value_name = "NS", default_value = "weft-system")]
    pub control_plane_namespace: String,
    #[command(flatten)]
    pub proxy: Box<ProxyArgs>,
}

#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// A `*.yaml` file (multi-document), or a directory whose `*.yaml` /
    /// `*.yml` files are read as `weft standalone --config-dir` reads them.
    /// Repeatable; all of them are checked together, as one mesh.
    #[arg(
        short = 'f',
        long = "filename",
        value_name = "FILE|DIR",
        required = true
    )]
    pub files: Vec<PathBuf>,
    /// The mesh config to check them with (`weft standalone
    /// --mesh-config`): the providers Telemetry resources may name. It is
    /// checked too. Without it, Istio's defaults.
    #[arg(long, value_name = "FILE")]
    pub mesh_config: Option<PathBuf>,
    /// Fail on warnings too, and on documents of kinds Weft does not
    /// serve (the behaviour before warnings existed), for CI pipelines.
    #[arg(long)]
    pub strict: bool,
}

#[derive(Debug, Args)]
pub struct AnalyzeArgs {
    /// Files (multi-document YAML) and directories (their `*.yaml` /
    /// `*.yml` files) to analyse together; with `--kubeconfig`, on top of
    /// the cluster's objects.
    #[arg(value_name = "FILE|DIR")]
    pub files: Vec<PathBuf>,
    /// Analyse the cluster of this kubeconfig (its current context): its
    /// mesh resources, Services, Pods, Namespaces and mesh config.
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// Only this namespace of the cluster (default: every namespace).
    #[arg(short = 'n', long, value_name = "NS", requires = "kubeconfig")]
    pub namespace: Option<String>,
    /// Where the cluster's mesh config is (ConfigMap `istio`, key `mesh`).
    #[arg(long, value_name = "NS", default_value = "weft-system")]
    pub control_plane_namespace: String,
    /// The mesh config (YAML) to analyse with; overrides the cluster's.
    #[arg(long, value_name = "FILE")]
    pub mesh_config: Option<PathBuf>,
    /// How to print the findings.
    #[arg(short = 'o', long, value_enum, default_value = "human")]
    pub output: AnalyzeOutput,
    /// The lowest severity that makes the command fail (exit 79).
    #[arg(long, value_enum, default_value = "error")]
    pub failure_threshold: FailureThreshold,
}

/// `weft analyze -o`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum AnalyzeOutput {
    /// One line per finding, as `istioctl analyze` prints.
    Human,
    Json,
    Yaml,
}

/// `weft analyze --failure-threshold`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum FailureThreshold {
    Error,
    Warning,
    Info,
}

#[derive(Debug, Args)]
pub struct BootstrapArgs {
    /// The proxy's node id (Istio style `sidecar~IP~POD.NS~NS.svc.cluster.local`
    /// also sets the namespace).
    #[arg(long, value_name = "ID")]
    pub node_id: String,
    /// Where Weft's xDS server is.
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:15010")]
    pub xds_address: String,
    /// Port of the HTTP listener that routes by Host to mesh services.
    #[arg(long, value_name = "PORT")]
    pub outbound_port: Option<u16>,
    /// Address the outbound listener binds to.
    #[arg(long, value_name = "IP", default_value = "127.0.0.1")]
    pub outbound_address: String,
    /// Envoy's admin port (bound to 127.0.0.1).
    #[arg(long, value_name = "PORT", default_value_t = 15000)]
    pub admin_port: u16,
    /// The proxy's namespace: short service names resolve in it.
    #[arg(long, value_name = "NS", default_value = "default")]
    pub namespace: String,
    /// Envoy's `node.cluster`, the service name tracers report; defaults
    /// to Istio's `<canonical service>.<namespace>`: the label
    /// `service.istio.io/canonical-name`, `app.kubernetes.io/name` or
    /// `app` of `--labels`, else `--workload-name`, else the node id's
    /// first segment.
    #[arg(long, value_name = "NAME")]
    pub service_cluster: Option<String>,
    /// The workload (Deployment, StatefulSet, ...) the proxy belongs to,
    /// sent as Istio's node metadata `WORKLOAD_NAME` (the
    /// `source_workload` / `destination_workload` of Istio's metrics).
    #[arg(long, value_name = "NAME")]
    pub workload_name: Option<String>,
    /// Port of the listener serving Envoy's `/stats/prometheus` on 0.0.0.0
    /// (Istio's 15090); 0 disables it.
    #[arg(long, value_name = "PORT", default_value_t = 15090)]
    pub prometheus_port: u16,
    /// The sidecar agent's status port on 0.0.0.0 (Istio's 15020):
    /// `/stats/prometheus` (the agent's, Envoy's and the app's metrics
    /// merged), `/healthz/ready` and the rewritten app probes
    /// `/app-health/<container>/livez|readyz|startupz`; `weft agent`
    /// serves it, the health listener forwards to it; 0 disables it.
    #[arg(long, value_name = "PORT", default_value_t = 15020)]
    pub status_port: u16,
    /// Port of Envoy's health listener on 0.0.0.0 (Istio's 15021): its
    /// `/healthz/ready` is the agent's (`--status-port`), which answers
    /// 200 once Envoy is LIVE with its first clusters and listeners and
    /// the agent holds a certificate; 0 (or `--status-port 0`) disables it.
    #[arg(long, value_name = "PORT", default_value_t = 15021)]
    pub health_port: u16,
    /// What the proxy is: a sidecar (the HTTP router listener) or a gateway
    /// (listeners from the Gateways whose `selector` matches `--labels`).
    #[arg(long, value_enum, default_value_t = ProxyRoleArg::Sidecar)]
    pub role: ProxyRoleArg,
    /// The workload's labels, `key=value[,key=value...]` (repeatable):
    /// matched by Gateway `selector` and Sidecar `workloadSelector`, e.g.
    /// `--labels istio=ingressgateway`.
    #[arg(long, value_name = "KEY=VALUE,...", value_delimiter = ',')]
    pub labels: Vec<String>,
    /// Use incremental (delta) xDS: Envoy is sent only what changed.
    #[arg(long)]
    pub delta: bool,
    /// The Unix socket of the sidecar agent's SDS server: adds the static
    /// cluster `sds-grpc` that mesh mTLS certificates (`default`, `ROOTCA`)
    /// are fetched from.
    #[arg(long, value_name = "PATH")]
    pub sds_socket: Option<String>,
    /// The workload's Kubernetes service account (its mesh identity
    /// `spiffe://cluster.local/ns/NS/sa/SA`), sent as node metadata
    /// `SERVICE_ACCOUNT`, as Istio does.
    #[arg(long, value_name = "SA")]
    pub service_account: Option<String>,
    /// The pod's traffic is captured (`weft agent iptables` ran in its
    /// network namespace): Envoy gets the `virtualOutbound` listener on
    /// 15001 and `virtualInbound` on 15006 (Istio's
    /// `INTERCEPTION_MODE: REDIRECT`).
    #[arg(long)]
    pub capture: bool,
    /// The workload's IP (repeatable), Istio's `INSTANCE_IPS`: the service
    /// endpoints with this address are this proxy's (their ports get
    /// `virtualInbound` filter chains). Without it, the endpoints that
    /// carry all of `--labels` are.
    #[arg(long, value_name = "IP", value_delimiter = ',')]
    pub instance_ip: Vec<String>,
}

/// `weft bootstrap --role`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ProxyRoleArg {
    /// An application's proxy.
    Sidecar,
    /// An ingress or egress gateway.
    Gateway,
}

/// The certificate service's options, shared by both modes.
#[derive(Debug, Clone, Args)]
pub struct CaArgs {
    /// Address of the certificate service (gRPC over TLS).
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:15012")]
    pub ca_address: SocketAddr,
    /// The mesh's trust domain when the mesh config sets no
    /// `trustDomain` (default `cluster.local`): identities are
    /// `spiffe://<trust-domain>/ns/<ns>/sa/<sa>`. The mesh config is the
    /// one source: if both are set and differ, startup fails.
    #[arg(long, value_name = "DOMAIN")]
    pub trust_domain: Option<String>,
    /// The key of a root Weft generates (a plug-in CA brings its own).
    #[arg(long, value_enum, default_value_t = KeyTypeArg::EcdsaP256)]
    pub ca_key_type: KeyTypeArg,
    /// Workload certificate lifetime when the caller asks for none.
    #[arg(long, value_name = "DURATION", default_value = "24h")]
    pub cert_default_ttl: IstioDuration,
    /// The longest workload certificate lifetime granted.
    #[arg(long, value_name = "DURATION", default_value = "2160h")]
    pub cert_max_ttl: IstioDuration,
    /// More DNS names for the certificate service's serving certificate
    /// (it always has `localhost`, `weft`, `istiod` and the address's IP).
    #[arg(long, value_name = "NAME,...", value_delimiter = ',')]
    pub ca_serving_names: Vec<String>,
}

/// How the control plane fetches the key sets RequestAuthentications name
/// by `jwksUri` or issuer, shared by both modes.
#[derive(Debug, Clone, Args)]
pub struct JwksArgs {
    /// How often a fetched JSON Web Key Set is fetched again.
    #[arg(long, value_name = "DURATION", default_value = "20m")]
    pub jwks_refresh_interval: IstioDuration,
    /// How soon a failed fetch is tried again (the last good keys are
    /// kept meanwhile).
    #[arg(long, value_name = "DURATION", default_value = "1m")]
    pub jwks_retry_interval: IstioDuration,
    /// Address ranges never fetched from (IP or CIDR, comma-separated);
    /// replaces the default of link-local and cloud metadata addresses.
    #[arg(
        long,
        value_name = "CIDR,...",
        value_delimiter = ',',
        default_value = "169.254.0.0/16,fe80::/10,fd00:ec2::254/128,100.100.100.200/32"
    )]
    pub jwks_blocked_ranges: Vec<String>,
    /// CA certificates (PEM) trusted for HTTPS key sets besides the
    /// system's roots.
    #[arg(long, value_name = "FILE")]
    pub jwks_ca_bundle: Option<PathBuf>,
    /// Who fetches a `jwksUri`: `control-plane` (always; the keys are
    /// inlined into Envoy's config), or `hybrid` (Envoy itself, through
    /// the service's outbound cluster, when the URL's host and port are a
    /// service of the mesh; the control plane for the rest).
    #[arg(long, value_enum, default_value_t = JwksFetchModeArg::ControlPlane)]
    pub jwks_fetch_mode: JwksFetchModeArg,
}

/// `--jwks-fetch-mode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum JwksFetchModeArg {
    ControlPlane,
    Hybrid,
}

impl JwksArgs {
    pub fn fetch_mode(&self) -> weft_model::JwksFetchMode {
        match self.jwks_fetch_mode {
            JwksFetchModeArg::ControlPlane => weft_model::JwksFetchMode::ControlPlane,
            JwksFetchModeArg::Hybrid => weft_model::JwksFetchMode::Hybrid,
        }
    }

    /// The fetcher's options; a bad range or unreadable bundle is an error.
    pub fn options(&self) -> anyhow::Result<weft_jwks::JwksOptions> {
        let blocked = self
            .jwks_blocked_ranges
            .iter()
            .filter(|r| !r.is_empty())
            .map(|r| {
                weft_model::Cidr::parse(r)
                    .map_err(|e| anyhow::anyhow!("--jwks-blocked-ranges: {e}"))
            })
            .collect::<anyhow::Result<_>>()?;
        let extra_roots_pem = match &self.jwks_ca_bundle {
            Some(path) => Some(std::fs::read(path).map_err(|e| {
                anyhow::anyhow!("cannot read --jwks-ca-bundle {}: {e}", path.display())
            })?),
            None => None,
        };
        Ok(weft_jwks::JwksOptions {
            refresh: self.jwks_refresh_interval.0,
            retry: self.jwks_retry_interval.0,
            blocked,
            extra_roots_pem,
        })
    }
}

/// `--ca-key-type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum KeyTypeArg {
    EcdsaP256,
    Rsa2048,
}

impl From<KeyTypeArg> for KeyType {
    fn from(arg: KeyTypeArg) -> Self {
        match arg {
            KeyTypeArg::EcdsaP256 => KeyType::EcdsaP256,
            KeyTypeArg::Rsa2048 => KeyType::Rsa2048,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use clap::{CommandFactory, Parser};
    use serde_json::json;
    use weft_operator::inject::{InjectConfig, Outcome, inject_pod};

    use super::*;

    /// clap's own checks of every subcommand (e.g. two flattened structs
    /// both defining a flag), which otherwise run only when that
    /// subcommand is parsed.
    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    /// `--lease-namespace`, the option's old name, still sets the control
    /// plane's namespace.
    #[test]
    fn the_lease_namespace_flag_is_an_alias_of_the_control_plane_namespace() {
        for flag in ["--control-plane-namespace", "--lease-namespace"] {
            let cli = Cli::try_parse_from(["weft", "operator", flag, "mesh-system"]);
            match cli.map(|cli| cli.command) {
                Ok(Command::Operator(args)) => {
                    assert_eq!(args.control_plane_namespace, "mesh-system", "{flag}")
                }
                other => panic!("{flag}: {other:?}"),
            }
        }
    }

    /// The injected init container and proxy run `weft agent` commands
    /// this command line parses.
    #[test]
    fn the_injected_containers_run_commands_weft_understands() {
        let pod = json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": "reviews-v1",
                "namespace": "bookinfo",
                "labels": {"app": "reviews", "version": "v1"},
                "annotations": {
                    "traffic.sidecar.istio.io/excludeOutboundIPRanges": "10.0.0.0/8",
                    "traffic.sidecar.istio.io/excludeOutboundPorts": "3306",
                },
            },
            "spec": {"containers": [{"name": "reviews", "image": "reviews:1"}]},
        });
        let labels = BTreeMap::from([("istio-injection".to_string(), "enabled".to_string())]);
        let pod = match inject_pod(&pod, "bookinfo", &labels, &InjectConfig::default()).unwrap() {
            Outcome::Injected(pod) => pod,
            Outcome::Skipped(skip) => panic!("skipped: {}", skip.reason()),
        };
        let args_of = |i: usize| -> Vec<String> {
            let container = &pod["spec"]["initContainers"][i];
            let mut argv = vec![container["command"][0].as_str().unwrap().to_string()];
            argv.extend(
                container["args"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|a| a.as_str().unwrap().to_string()),
            );
            argv
        };
        let init = Cli::try_parse_from(args_of(0)).map_err(|e| e.to_string());
        assert!(
            matches!(
                init,
                Ok(Cli {
                    command: Command::Agent(AgentCommand::Iptables(_)),
                    ..
                })
            ),
            "{init:?}"
        );
        let proxy = Cli::try_parse_from(args_of(1)).map_err(|e| e.to_string());
        match proxy {
            Ok(Cli {
                command: Command::Agent(AgentCommand::Run(args)),
                ..
            }) => assert!(
                args.bootstrap.capture,
                "the proxy gets the capture listeners"
            ),
            other => panic!("{other:?}"),
        }
    }
}
