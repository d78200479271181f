//! The `CapturedPair` fixture: two "pods" whose traffic `weft agent
//! iptables` captures, talking through their sidecars without knowing it:
//!
//! ```text
//!   client pod (netns)                         server pod (netns)
//!   test code ─connect(VIP:9080)─┐             ┌─▶ app (echo, 0.0.0.0:9080)
//!     iptables OUTPUT ─▶ :15001  │             │    ▲ 127.0.0.1:9080
//!     Envoy (uid 1337) ══════════ mTLS ═══════▶ iptables PREROUTING ─▶ :15006 Envoy (uid 1337)
//!     weft agent --capture ──┐   (veth, pod IPs)        weft agent --capture ──┐
//!                            └──▶ weft standalone (this namespace, 0.0.0.0) ◀──┘
//! ```
//!
//! Each pod is a [`TestHost`] (its veth to this namespace carries xDS and
//! the CA); the two are linked to each other ([`TestHost::link_to`]), the
//! pod IPs being that link's. The client pod routes the service VIP to the
//! server pod, so a connection that was not captured would go nowhere
//! useful. The sidecars are [`crate::sidecars::Sidecar`]s started in the
//! pods; weft is the same standalone with CA as the `SidecarPair`'s.
//! The server's app is the in-process echo [`Upstream`], bound inside the
//! server pod, so tests see the `x-forwarded-client-cert` it received.
//!
//! This namespace plays the node: [`CapturedPair::get_from_node`] sends a
//! plain-text request to the server pod's address (its veth's,
//! [`TestHost::ip`]) from outside the pod, as the kubelet sends probes.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use anyhow::{Context, Result};
use tempfile::TempDir;

use crate::client::{Reply, http_get, wait_for};
use crate::mesh::{APPLY_TIMEOUT, ENVOY_READY_TIMEOUT, write_atomically};
use crate::netns::TestHost;
use crate::procs::Weft;
use crate::sidecars::{
    PodNet, Sidecar, SidecarSpec, namespace_peer_authentication, standalone_token,
    start_standalone_ca,
};
use crate::tools::{envoy_binary, weft_binary};
use crate::upstream::Upstream;

/// The namespace both workloads live in.
pub const NAMESPACE: &str = "ns1";
/// The server's service.
pub const SERVER_HOST: &str = "reviews.ns1.svc.cluster.local";
/// The service's virtual IP (routed to the server pod in the client pod).
pub const VIP: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 10);
/// The service addresses the client pod routes to the server pod (as a
/// node routes cluster IPs): [`VIP`] and any a test gives other services.
pub const SERVICE_RANGE: &str = "10.96.0.0/24";
/// The service and application port.
pub const PORT: u16 = 9080;
/// The client workload's mesh identity.
pub const CLIENT_ID: &str = "spiffe://cluster.local/ns/ns1/sa/sleep";
/// The server workload's mesh identity.
pub const SERVER_ID: &str = "spiffe://cluster.local/ns/ns1/sa/reviews";

/// Two captured pods, their sidecars, the server's app and weft. Dropping
/// it stops the sidecars, the app, weft, then removes the namespaces.
#[derive(Debug)]
pub struct CapturedPair {
    // Field order is drop order.
    client: Sidecar,
    server: Sidecar,
    app: Upstream,
    weft: Weft,
    client_pod: TestHost,
    server_pod: TestHost,
    server_ip: Ipv4Addr,
    config_dir: TempDir,
    _state_dir: TempDir,
}

impl CapturedPair {
    /// Creates the pods, applies `weft agent iptables` in both, starts
    /// weft (STRICT mTLS in the namespace), the app and both sidecars, and
    /// waits until a request from the client pod reaches the app.
    pub async fn start() -> Result<Self> {
        Self::start_with(None).await
    }

    /// [`CapturedPair::start`] with the server's sidecar given the app's
    /// original probes (`ISTIO_KUBE_APP_PROBERS`, as injection writes it).
    pub async fn start_with(server_app_probers: Option<&str>) -> Result<Self> {
        let envoy = tokio::task::spawn_blocking(envoy_binary).await??;
        let client_pod = TestHost::create()?;
        let server_pod = TestHost::create()?;
        let (client_ip, server_ip) = client_pod.link_to(&server_pod)?;

        let config_dir = tempfile::Builder::new()
            .prefix("weft-e2e-capture-config-")
            .tempdir()?;
        write_atomically(config_dir.path(), "reviews.yaml", &server_config(server_ip))?;
        write_atomically(
            config_dir.path(),
            "peer-authentication.yaml",
            &namespace_peer_authentication(NAMESPACE, "STRICT"),
        )?;
        // The agents run as the proxy UID: they must reach their files.
        let state_dir = tempfile::Builder::new()
            .prefix("weft-e2e-capture-")
            .tempdir()?;
        std::fs::set_permissions(state_dir.path(), std::fs::Permissions::from_mode(0o755))?;
        let (weft, root) = start_standalone_ca(
            config_dir.path(),
            state_dir.path(),
            NAMESPACE,
            Ipv4Addr::UNSPECIFIED.into(),
            None,
            &[],
        )
        .await?;
        let readable_root = state_dir.path().join("root-cert.pem");
        std::fs::copy(&root, &readable_root)
            .with_context(|| format!("copying {}", root.display()))?;
        std::fs::set_permissions(&readable_root, std::fs::Permissions::from_mode(0o644))?;

        let weft_path = weft_binary()?;
        for pod in [&client_pod, &server_pod] {
            pod.exec(&weft_path, &["agent", "iptables"])?;
        }
        client_pod.exec(
            std::path::Path::new("ip"),
            &["route", "add", SERVICE_RANGE, "via", &server_ip.to_string()],
        )?;
        let app = server_pod.block_on(Upstream::bind(
            "reviews-app",
            SocketAddr::from((Ipv4Addr::UNSPECIFIED, PORT)),
        ))??;

        let xds_port = weft.xds_addr().port();
        let ca_port = weft
            .ca_addr()
            .context("this weft serves no certificate service")?
            .port();
        let start =
            |name: &str, labels: &str, pod: &TestHost, ip: Ipv4Addr, app_probers: Option<&str>| {
                Sidecar::start(&SidecarSpec {
                    name,
                    replica: 1,
                    namespace: NAMESPACE,
                    pod: Some(PodNet { host: pod, ip }),
                    labels,
                    token: &standalone_token(name),
                    xds_addr: SocketAddr::new(IpAddr::V4(pod.gateway_ip), xds_port),
                    ca_addr: SocketAddr::new(IpAddr::V4(pod.gateway_ip), ca_port),
                    ca_root: &readable_root,
                    envoy: &envoy,
                    cert_ttl: None,
                    dir: state_dir.path(),
                    app_metrics: None,
                    app_probers,
                })
            };
        let server = start(
            "reviews",
            "app=reviews",
            &server_pod,
            server_ip,
            server_app_probers,
        )?;
        let client = start("sleep", "app=sleep", &client_pod, client_ip, None)?;
        let pair = CapturedPair {
            client,
            server,
            app,
            weft,
            client_pod,
            server_pod,
            server_ip,
            config_dir,
            _state_dir: state_dir,
        };
        for sidecar in [&pair.client, &pair.server] {
            sidecar
                .wait_ready()
                .await
                .map_err(|e| e.context(pair.logs()))?;
        }
        wait_for(
            "a request from the client pod to reach the app through both sidecars",
            ENVOY_READY_TIMEOUT,
            || async { pair.call().await.ok().filter(|r| r.status == 200) },
        )
        .await
        .map_err(|err| err.context(pair.logs()))?;
        Ok(pair)
    }

    /// `GET http://reviews.ns1.svc.cluster.local:9080/` from the client
    /// pod, as its app would: a plain connection to the service VIP, no
    /// proxy settings.
    pub async fn call(&self) -> Result<Reply> {
        let host = format!("{SERVER_HOST}:{PORT}");
        self.client_pod.block_on(async {
            tokio::time::timeout(
                Duration::from_secs(10),
                http_get(SocketAddr::from((VIP, PORT)), &host, "/", &[]),
            )
            .await
            .context("the request timed out")?
        })?
    }

    /// A plain-text `GET path` to the server pod's `port`, sent from this
    /// namespace (the node), as the kubelet sends a probe; `None` when the
    /// connection fails or is refused without an HTTP answer.
    pub async fn get_from_node(&self, port: u16, path: &str) -> Option<Reply> {
        let addr = SocketAddr::from((self.server_pod.ip, port));
        let host = addr.to_string();
        tokio::time::timeout(Duration::from_secs(10), http_get(addr, &host, path, &[]))
            .await
            .ok()?
            .ok()
    }

    /// The app's requests so far.
    pub fn app(&self) -> &Upstream {
        &self.app
    }

    pub fn client(&self) -> &Sidecar {
        &self.client
    }

    pub fn server(&self) -> &Sidecar {
        &self.server
    }

    pub fn server_pod(&self) -> &TestHost {
        &self.server_pod
    }

    /// The node's address as the client pod reaches it (its veth's peer):
    /// a destination outside every pod and service.
    pub fn node_ip_from_client(&self) -> Ipv4Addr {
        self.client_pod.gateway_ip
    }

    /// The server pod's address (endpoints of services it serves).
    pub fn server_ip(&self) -> Ipv4Addr {
        self.server_ip
    }

    /// Runs `future` in the client pod, as its app would (connections to
    /// service addresses are captured).
    pub fn in_client_pod<F>(&self, future: F) -> Result<F::Output>
    where
        F: std::future::Future + Send,
        F::Output: Send,
    {
        self.client_pod.block_on(future)
    }

    /// Writes `yaml` as `name` into weft's config directory and waits until
    /// weft applied it.
    pub async fn write_config(&self, name: &str, yaml: &str) -> Result<()> {
        let mark = self.weft.log_mark();
        write_atomically(self.config_dir.path(), name, yaml)?;
        self.weft
            .wait_for_log_since(mark, "config applied", APPLY_TIMEOUT)
            .await?;
        Ok(())
    }

    /// The last lines of weft's and both agents' output.
    pub fn logs(&self) -> String {
        format!(
            "weft:\n{}\nsleep's agent:\n{}\nreviews' agent:\n{}",
            self.weft.log_tail(20),
            self.client.process().log_tail(30),
            self.server.process().log_tail(30)
        )
    }
}

/// `reviews`: a ServiceEntry with the VIP, whose endpoint is the server
/// pod and has a sidecar (`security.istio.io/tlsMode: istio`).
fn server_config(server_ip: Ipv4Addr) -> String {
    format!(
        "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: reviews, namespace: {NAMESPACE}}}
spec:
  hosts: [{SERVER_HOST}]
  addresses: [{VIP}]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{{number: {PORT}, name: http, protocol: HTTP}}]
  endpoints:
  - address: {server_ip}
    serviceAccount: reviews
    labels: {{app: reviews, security.istio.io/tlsMode: istio}}
"
    )
}
