//! The `SidecarPair` fixture: two workloads with mesh identities talking
//! through their sidecars, everything real:
//!
//! ```text
//!  test ──HTTP──▶ sleep's Envoy ══mTLS══▶ reviews' Envoy ──HTTP──▶ app (echo)
//!                 (outbound router)        (inbound listener,      sees x-forwarded-client-cert
//!                      ▲ SDS                ▲ SDS  PeerAuthentication)
//!                 weft agent (sleep)      weft agent (reviews)
//!                      └──── CSR + token ───┴──▶ weft standalone: xDS + CA
//! ```
//!
//! `weft standalone` runs with `--token-file` (the two workloads' tokens)
//! and `--ca-dir` ([`SidecarPair::start`]), or `weft operator` on a real
//! apiserver with TokenRequest tokens ([`SidecarPair::start_on`]); each
//! sidecar is `weft agent` with its own token file,
//! SDS socket and `--cert-ttl`, starting and supervising its Envoy. The
//! config dir holds a ServiceEntry for `reviews` whose endpoint carries
//! Istio's sidecar label (so the client uses auto mTLS and checks the
//! server's SPIFFE ID), a Sidecar giving the server its inbound listener
//! in front of the app, and a namespace-wide PeerAuthentication whose
//! mode tests rewrite with [`SidecarPair::set_mtls_mode`].

use std::ffi::OsStr;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use tempfile::TempDir;

use crate::client::{Reply, http_get, wait_for};
use crate::control_plane::ControlPlane;
use crate::kube_mesh::{apply, operator_identity, published_root};
use crate::mesh::{ENVOY_READY_TIMEOUT, TrafficDriver, WEFT_READY_TIMEOUT, write_atomically};
use crate::procs::{Weft, free_port};
use crate::tools::envoy_binary;
use crate::upstream::Upstream;

pub use crate::sidecar::{PROXY_UID, Sidecar, xfcc_values};
pub(crate) use crate::sidecar::{PodNet, SidecarSpec};

/// The namespace both workloads live in.
pub const NAMESPACE: &str = "default";
/// The server's service.
pub const SERVER_HOST: &str = "reviews.default.svc.cluster.local";
/// The server workload's mesh identity.
pub const SERVER_ID: &str = "spiffe://cluster.local/ns/default/sa/reviews";
/// The client workload's mesh identity.
pub const CLIENT_ID: &str = "spiffe://cluster.local/ns/default/sa/sleep";
/// The file holding `reviews`' ServiceEntry and Sidecars.
const SERVER_FILE: &str = "reviews.yaml";
/// The file holding the PeerAuthentication.
const PEER_AUTHENTICATION_FILE: &str = "peer-authentication.yaml";

/// How to start a [`SidecarPair`].
#[derive(Clone, Debug)]
pub struct SidecarOptions {
    /// The namespace-wide PeerAuthentication's mode: `STRICT`,
    /// `PERMISSIVE` or `DISABLE`.
    pub mtls_mode: String,
    /// The certificate lifetime both agents ask for; `None` lets the CA
    /// choose (24 h).
    pub cert_ttl: Option<Duration>,
    /// Istio's MeshConfig YAML for `weft standalone --mesh-config`
    /// (standalone only); `None`: Istio's defaults.
    pub mesh_config: Option<String>,
    /// More `weft standalone` arguments (standalone only).
    pub weft_args: Vec<std::ffi::OsString>,
}

impl Default for SidecarOptions {
    fn default() -> Self {
        Self {
            mtls_mode: "STRICT".to_string(),
            cert_ttl: None,
            mesh_config: None,
            weft_args: Vec::new(),
        }
    }
}

/// weft, two sidecars and the server's app. Dropping it stops the
/// sidecars (SIGTERM, so each agent stops its Envoy), then weft.
#[derive(Debug)]
pub struct SidecarPair {
    // Field order is drop order.
    client: Sidecar,
    server: Sidecar,
    app: Upstream,
    weft: Weft,
    inbound_addr: SocketAddr,
    /// Standalone's config dir; `None` on Kubernetes (config is applied).
    config_dir: Option<TempDir>,
    /// What [`SidecarPair::start_client`] needs to start more sidecars.
    envoy: std::path::PathBuf,
    ca_root: std::path::PathBuf,
    cert_ttl: Option<Duration>,
    _state_dir: TempDir,
}

impl SidecarPair {
    /// Starts `weft standalone` with its CA (identities from a token file,
    /// the root in a directory), the app, and both sidecars, and waits
    /// until a request from the client reaches the app.
    pub async fn start(options: SidecarOptions) -> Result<Self> {
        let parts = Parts::new().await?;
        let config_dir = tempfile::Builder::new()
            .prefix("weft-e2e-sidecars-config-")
            .tempdir()?;
        write_atomically(config_dir.path(), SERVER_FILE, &parts.server_config())?;
        write_atomically(
            config_dir.path(),
            PEER_AUTHENTICATION_FILE,
            &peer_authentication(&options.mtls_mode),
        )?;
        let mesh_config = match &options.mesh_config {
            Some(yaml) => {
                let path = parts.state_dir.path().join("mesh.yaml");
                std::fs::write(&path, yaml)?;
                Some(path)
            }
            None => None,
        };
        let (weft, root) = start_standalone_ca(
            config_dir.path(),
            parts.state_dir.path(),
            NAMESPACE,
            Ipv4Addr::LOCALHOST.into(),
            mesh_config.as_deref(),
            &options.weft_args,
        )
        .await?;
        parts
            .start_sidecars(weft, &root, standalone_token, &options, Some(config_dir))
            .await
    }

    /// The same on a real apiserver holding Weft's CRDs: the config is
    /// `kubectl apply`d, `weft operator` runs as the chart's ServiceAccount,
    /// each workload's token comes from the TokenRequest API (audience
    /// `istio-ca`, checked by TokenReview) and the agents trust the root
    /// Weft published in ConfigMap `istio-ca-root-cert`.
    pub async fn start_on(plane: &ControlPlane, options: SidecarOptions) -> Result<Self> {
        let parts = Parts::new().await?;
        apply(plane, &parts.server_config())?;
        apply(plane, &peer_authentication(&options.mtls_mode))?;
        let mut tokens = Vec::new();
        for sa in WORKLOADS {
            plane.create_service_account(NAMESPACE, sa)?;
            let token = plane.kubectl_ok(&[
                "create",
                "token",
                sa,
                "-n",
                NAMESPACE,
                "--audience",
                "istio-ca",
                "--duration",
                "1h",
            ])?;
            tokens.push((sa, token.trim().to_string()));
        }
        let identity = tokio::task::block_in_place(|| operator_identity(plane))?;
        let weft = Weft::start_operator_with(&identity, WEFT_READY_TIMEOUT).await?;
        let root = parts.state_dir.path().join("root-cert.pem");
        std::fs::write(
            &root,
            published_root(plane, NAMESPACE, "istio-ca-root-cert").await?,
        )?;
        let token_of = |sa: &str| {
            tokens
                .iter()
                .find(|(name, _)| *name == sa)
                .map(|(_, token)| token.clone())
                .unwrap_or_default()
        };
        parts
            .start_sidecars(weft, &root, token_of, &options, None)
            .await
    }

    /// `GET /` from the client workload: to its sidecar's outbound router
    /// with `Host: reviews.default.svc.cluster.local`.
    pub async fn call(&self) -> Result<Reply> {
        http_get(self.client.outbound, SERVER_HOST, "/", &[]).await
    }

    /// A plain-text `GET /` straight to the server's inbound listener, as
    /// a workload without a sidecar would call it.
    pub async fn call_without_sidecar(&self) -> Result<Reply> {
        http_get(self.inbound_addr, SERVER_HOST, "/", &[]).await
    }

    /// Requests from the client workload, continuously, in the background.
    pub fn drive_traffic(&self) -> TrafficDriver {
        TrafficDriver::start(self.client.outbound, SERVER_HOST, "/")
    }

    /// The `x-forwarded-client-cert` of the last request the app received
    /// (what the server's sidecar says of its caller).
    pub fn last_client_cert_header(&self) -> Option<String> {
        self.app
            .last_received()?
            .header("x-forwarded-client-cert")
            .map(str::to_string)
    }

    /// `GET /` from `client` (one of [`SidecarPair::start_client`]'s).
    pub async fn call_from(&self, client: &Sidecar) -> Result<Reply> {
        self.get_from(client, "/").await
    }

    /// `GET path` to the server from `client`'s sidecar.
    pub async fn get_from(&self, client: &Sidecar, path: &str) -> Result<Reply> {
        self.get_from_with(client, path, &[]).await
    }

    /// Waits until `GET path` from `client` with `headers` answers
    /// `status` five times in a row (up to [`crate::APPLY_TIMEOUT`]), then
    /// until the server's previous filter chains have drained: connections
    /// the client's Envoy opened before a change stay on them until the
    /// agent's 5 s drain time closes them.
    pub async fn wait_for_status(
        &self,
        client: &Sidecar,
        path: &str,
        headers: &[(&str, &str)],
        status: u16,
    ) -> Result<()> {
        crate::client::wait_until(
            &format!("GET {path} to answer {status}, five times in a row"),
            crate::APPLY_TIMEOUT,
            || async {
                for _ in 0..5 {
                    if !self
                        .get_from_with(client, path, headers)
                        .await
                        .is_ok_and(|r| r.status == status)
                    {
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        return false;
                    }
                }
                true
            },
        )
        .await
        .map_err(|e| e.context(self.logs()))?;
        tokio::time::sleep(Duration::from_secs(6)).await;
        Ok(())
    }

    /// [`SidecarPair::get_from`] with request `headers`.
    pub async fn get_from_with(
        &self,
        client: &Sidecar,
        path: &str,
        headers: &[(&str, &str)],
    ) -> Result<Reply> {
        http_get(client.outbound, SERVER_HOST, path, headers).await
    }

    /// Starts another client workload with service account `name` (one
    /// of [`EXTRA_CLIENTS`]) and `labels` (`k=v,k=v`), and waits until its
    /// Envoy is ready. Standalone only (its token is in the token file).
    pub async fn start_client(&self, name: &str, labels: &str) -> Result<Sidecar> {
        self.start_client_in(NAMESPACE, name, labels).await
    }

    /// [`SidecarPair::start_client`] for a workload whose app serves
    /// metrics where `annotations` says (Istio's
    /// `ISTIO_PROMETHEUS_ANNOTATIONS` JSON): its agent merges them.
    pub async fn start_client_with_app_metrics(
        &self,
        name: &str,
        labels: &str,
        annotations: &str,
    ) -> Result<Sidecar> {
        self.start_extra_client(NAMESPACE, name, labels, Some(annotations))
            .await
    }

    /// [`SidecarPair::start_client`] for a client in `namespace` (one of
    /// [`EXTRA_CLIENTS`] or [`OTHER_NAMESPACE_CLIENTS`]).
    pub async fn start_client_in(
        &self,
        namespace: &str,
        name: &str,
        labels: &str,
    ) -> Result<Sidecar> {
        self.start_extra_client(namespace, name, labels, None).await
    }

    async fn start_extra_client(
        &self,
        namespace: &str,
        name: &str,
        labels: &str,
        app_metrics: Option<&str>,
    ) -> Result<Sidecar> {
        let known = if namespace == NAMESPACE {
            EXTRA_CLIENTS.contains(&name)
        } else {
            OTHER_NAMESPACE_CLIENTS.contains(&(namespace, name))
        };
        if self.config_dir.is_none() || !known {
            bail!(
                "start_client needs a standalone pair and a client of EXTRA_CLIENTS or OTHER_NAMESPACE_CLIENTS, not {namespace}/{name}"
            );
        }
        let ca_addr = self
            .weft
            .ca_addr()
            .context("this weft serves no certificate service")?;
        let sidecar = Sidecar::start(&SidecarSpec {
            name,
            replica: 1,
            namespace,
            pod: None,
            labels,
            token: &other_namespace_token(namespace, name),
            xds_addr: self.weft.xds_addr(),
            ca_addr,
            ca_root: &self.ca_root,
            envoy: &self.envoy,
            cert_ttl: self.cert_ttl,
            dir: self._state_dir.path(),
            app_metrics,
            app_probers: None,
        })?;
        sidecar.wait_ready().await?;
        Ok(sidecar)
    }

    /// Writes `yaml` as file `name` of standalone's config dir and waits
    /// until weft has applied it. Standalone only.
    pub async fn write_config(&self, name: &str, yaml: &str) -> Result<()> {
        let Some(config_dir) = &self.config_dir else {
            bail!("this pair's weft runs on Kubernetes: kubectl apply the config");
        };
        let mark = self.weft.log_mark();
        write_atomically(config_dir.path(), name, yaml)?;
        self.weft
            .wait_for_log_since(mark, "config applied", WEFT_READY_TIMEOUT)
            .await?;
        Ok(())
    }

    /// Starts a second instance of `reviews`: its own app and sidecar
    /// (labels `app=reviews,version=v1,instance=2`, its own inbound port)
    /// as a second endpoint of the ServiceEntry, and waits until a request
    /// from the client reaches its app. Standalone only.
    pub async fn start_server_instance(&self) -> Result<ServerInstance> {
        let Some(config_dir) = &self.config_dir else {
            bail!("start_server_instance needs a standalone pair (its config is a directory)");
        };
        let ca_addr = self
            .weft
            .ca_addr()
            .context("this weft serves no certificate service")?;
        let app = Upstream::start("reviews-app-2", Ipv4Addr::LOCALHOST.into()).await?;
        let inbound_port = free_port()?;
        let instances = [
            (self.inbound_addr.port(), self.app.port()),
            (inbound_port, app.port()),
        ];
        let mark = self.weft.log_mark();
        write_atomically(config_dir.path(), SERVER_FILE, &server_config(&instances))?;
        self.weft
            .wait_for_log_since(mark, "config applied", WEFT_READY_TIMEOUT)
            .await?;
        let sidecar = Sidecar::start(&SidecarSpec {
            name: "reviews",
            replica: 2,
            namespace: NAMESPACE,
            pod: None,
            labels: "app=reviews,version=v1,instance=2",
            token: &standalone_token("reviews"),
            xds_addr: self.weft.xds_addr(),
            ca_addr,
            ca_root: &self.ca_root,
            envoy: &self.envoy,
            cert_ttl: self.cert_ttl,
            dir: self._state_dir.path(),
            app_metrics: None,
            app_probers: None,
        })?;
        sidecar.wait_ready().await?;
        let instance = ServerInstance { sidecar, app };
        wait_for(
            "a request from sleep to reach the second instance's app",
            ENVOY_READY_TIMEOUT,
            || async {
                let _ = self.call().await;
                (instance.app.requests() > 0).then_some(())
            },
        )
        .await
        .map_err(|err| {
            err.context(format!(
                "{}\nreviews-2's agent:\n{}",
                self.logs(),
                instance.sidecar.process.log_tail(20)
            ))
        })?;
        Ok(instance)
    }

    /// Every request the app received so far.
    pub fn app(&self) -> &Upstream {
        &self.app
    }

    /// Rewrites the namespace-wide PeerAuthentication's mode and waits
    /// until weft has applied it.
    /// Standalone only: on Kubernetes, `kubectl apply` one.
    pub async fn set_mtls_mode(&self, mode: &str) -> Result<()> {
        let Some(config_dir) = &self.config_dir else {
            bail!("this pair's weft runs on Kubernetes: kubectl apply the PeerAuthentication");
        };
        let mark = self.weft.log_mark();
        write_atomically(
            config_dir.path(),
            PEER_AUTHENTICATION_FILE,
            &peer_authentication(mode),
        )?;
        self.weft
            .wait_for_log_since(mark, "config applied", WEFT_READY_TIMEOUT)
            .await?;
        Ok(())
    }

    /// The serial numbers of the certificates Envoy serves as the server's
    /// own identity (from its admin `/certs`).
    pub async fn server_cert_serials(&self) -> Result<Vec<String>> {
        self.server.cert_serials(SERVER_ID).await
    }

    pub fn client(&self) -> &Sidecar {
        &self.client
    }

    pub fn server(&self) -> &Sidecar {
        &self.server
    }

    pub fn weft(&self) -> &Weft {
        &self.weft
    }

    /// The last lines of weft's and both agents' output.
    pub fn logs(&self) -> String {
        format!(
            "weft:\n{}\nsleep's agent:\n{}\nreviews' agent:\n{}",
            self.weft.log_tail(20),
            self.client.process.log_tail(20),
            self.server.process.log_tail(20)
        )
    }
}

/// Another instance of the server ([`SidecarPair::start_server_instance`]).
/// Dropping it stops its sidecar.
#[derive(Debug)]
pub struct ServerInstance {
    // Field order is drop order.
    sidecar: Sidecar,
    app: Upstream,
}

impl ServerInstance {
    pub fn sidecar(&self) -> &Sidecar {
        &self.sidecar
    }

    /// Every request this instance's app received so far.
    pub fn app(&self) -> &Upstream {
        &self.app
    }
}

/// The workloads' service accounts: the client, then the server.
pub(crate) const WORKLOADS: [&str; 2] = ["sleep", "reviews"];
/// Service accounts [`SidecarPair::start_client`] can start (standalone's
/// token file has their tokens).
pub const EXTRA_CLIENTS: [&str; 2] = ["sleep-v3", "sleep-2"];
/// Clients of other namespaces [`SidecarPair::start_client_in`] can start:
/// (namespace, service account).
pub const OTHER_NAMESPACE_CLIENTS: [(&str, &str); 1] = [("ns2", "sleep")];

/// The token of a client started by [`SidecarPair::start_client_in`].
fn other_namespace_token(namespace: &str, service_account: &str) -> String {
    if namespace == NAMESPACE {
        standalone_token(service_account)
    } else {
        format!("token-of-{namespace}-{service_account}")
    }
}

/// A workload's token in standalone's token file.
pub(crate) fn standalone_token(service_account: &str) -> String {
    format!("token-of-{service_account}")
}

/// `weft standalone` on `config_dir` with its CA (xDS and the certificate
/// service on `ip`): the [`WORKLOADS`] of `namespace` authenticated by
/// [`standalone_token`], the root kept in `state/ca`, and `mesh_config`
/// as `--mesh-config`. Returns weft and the root's path.
pub(crate) async fn start_standalone_ca(
    config_dir: &Path,
    state: &Path,
    namespace: &str,
    ip: std::net::IpAddr,
    mesh_config: Option<&Path>,
    more_args: &[std::ffi::OsString],
) -> Result<(Weft, std::path::PathBuf)> {
    let token_file: String = WORKLOADS
        .iter()
        .chain(EXTRA_CLIENTS.iter())
        .map(|sa| {
            format!(
                "- {{token: {}, namespace: {namespace}, serviceAccount: {sa}}}\n",
                standalone_token(sa)
            )
        })
        .chain(OTHER_NAMESPACE_CLIENTS.iter().map(|(ns, sa)| {
            format!(
                "- {{token: {}, namespace: {ns}, serviceAccount: {sa}}}\n",
                other_namespace_token(ns, sa)
            )
        }))
        .collect();
    std::fs::write(state.join("tokens.yaml"), token_file)?;
    let ca_dir = state.join("ca");
    let tokens = state.join("tokens.yaml");
    let mut args = vec![
        OsStr::new("--token-file"),
        tokens.as_os_str(),
        OsStr::new("--ca-dir"),
        ca_dir.as_os_str(),
    ];
    if let Some(path) = mesh_config {
        args.extend([OsStr::new("--mesh-config"), path.as_os_str()]);
    }
    args.extend(more_args.iter().map(|a| a.as_os_str()));
    let weft = Weft::start_standalone_on(config_dir, &args, ip, WEFT_READY_TIMEOUT).await?;
    Ok((weft, ca_dir.join("root-cert.pem")))
}

/// What both setups make before weft starts: Envoy installed, the app,
/// the server's inbound port and a directory for the sidecars' files.
struct Parts {
    envoy: std::path::PathBuf,
    app: Upstream,
    inbound_port: u16,
    state_dir: TempDir,
}

impl Parts {
    async fn new() -> Result<Self> {
        Ok(Self {
            envoy: tokio::task::spawn_blocking(envoy_binary).await??,
            app: Upstream::start("reviews-app", Ipv4Addr::LOCALHOST.into()).await?,
            inbound_port: free_port()?,
            state_dir: tempfile::Builder::new()
                .prefix("weft-e2e-sidecars-")
                .tempdir()?,
        })
    }

    fn server_config(&self) -> String {
        server_config(&[(self.inbound_port, self.app.port())])
    }

    /// Starts the server's sidecar, then the client's, and waits until a
    /// request from the client reaches the app.
    async fn start_sidecars(
        self,
        weft: Weft,
        ca_root: &Path,
        token_of: impl Fn(&str) -> String,
        options: &SidecarOptions,
        config_dir: Option<TempDir>,
    ) -> Result<SidecarPair> {
        let ca_addr = weft
            .ca_addr()
            .context("this weft serves no certificate service")?;
        let start = |name: &str, labels: &str| {
            Sidecar::start(&SidecarSpec {
                name,
                replica: 1,
                namespace: NAMESPACE,
                pod: None,
                labels,
                token: &token_of(name),
                xds_addr: weft.xds_addr(),
                ca_addr,
                ca_root,
                envoy: &self.envoy,
                cert_ttl: options.cert_ttl,
                dir: self.state_dir.path(),
                app_metrics: None,
                app_probers: None,
            })
        };
        let server = start("reviews", "app=reviews,version=v1")?;
        let client = start("sleep", "app=sleep")?;
        let pair = SidecarPair {
            client,
            server,
            app: self.app,
            weft,
            inbound_addr: SocketAddr::from((Ipv4Addr::LOCALHOST, self.inbound_port)),
            config_dir,
            envoy: self.envoy.clone(),
            ca_root: ca_root.to_path_buf(),
            cert_ttl: options.cert_ttl,
            _state_dir: self.state_dir,
        };
        for sidecar in [&pair.client, &pair.server] {
            sidecar.wait_ready().await?;
        }
        wait_for(
            "a request from sleep to reach the app through both sidecars",
            ENVOY_READY_TIMEOUT,
            || async { pair.call().await.ok().filter(|r| r.status == 200) },
        )
        .await
        .map_err(|err| err.context(pair.logs()))?;
        Ok(pair)
    }
}

/// `reviews`: a ServiceEntry with one endpoint per instance, each the
/// instance's inbound listener with a sidecar
/// (`security.istio.io/tlsMode: istio`), and a Sidecar per instance giving
/// it that listener in front of its app. `instances` are (inbound port,
/// app port); instance N > 1 is labelled `instance: "N"` and its Sidecar,
/// `instance-N`, selects that label: it sorts before `reviews` (whose
/// selector matches every instance), and Weft picks the first matching
/// Sidecar by name.
fn server_config(instances: &[(u16, u16)]) -> String {
    let endpoints: String = instances
        .iter()
        .map(|(inbound_port, _)| {
            format!(
                "  - address: 127.0.0.1
    ports: {{http: {inbound_port}}}
    serviceAccount: reviews
    labels: {{app: reviews, version: v1, security.istio.io/tlsMode: istio}}
"
            )
        })
        .collect();
    let sidecars: String = instances
        .iter()
        .enumerate()
        .map(|(i, (inbound_port, app_port))| {
            let (name, selector) = match i {
                0 => ("reviews".to_string(), "{app: reviews}".to_string()),
                i => (
                    format!("instance-{}", i + 1),
                    format!("{{app: reviews, instance: \"{}\"}}", i + 1),
                ),
            };
            format!(
                "---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {{name: {name}, namespace: {NAMESPACE}}}
spec:
  workloadSelector: {{labels: {selector}}}
  ingress:
  - port: {{number: {inbound_port}, protocol: HTTP, name: http}}
    bind: 127.0.0.1
    defaultEndpoint: 127.0.0.1:{app_port}
"
            )
        })
        .collect();
    format!(
        "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: reviews, namespace: {NAMESPACE}}}
spec:
  hosts: [{SERVER_HOST}]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{{number: 9080, name: http, protocol: HTTP}}]
  endpoints:
{endpoints}{sidecars}"
    )
}

/// The namespace-wide PeerAuthentication with `mode`.
fn peer_authentication(mode: &str) -> String {
    namespace_peer_authentication(NAMESPACE, mode)
}

/// `namespace`'s PeerAuthentication with `mode`.
pub(crate) fn namespace_peer_authentication(namespace: &str, mode: &str) -> String {
    format!(
        "apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {{name: default, namespace: {namespace}}}
spec:
  mtls: {{mode: {mode}}}
"
    )
}
