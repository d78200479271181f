//! The [`NodeMesh`] fixture: Weft installed by its Helm chart on a real
//! node ([`KubeNode`]), from images built here ([`crate::images`]), and an
//! injected app whose pods run for real.
//!
//! ```text
//!  helm install weft charts/weft -n weft-system   (1 replica, the chart's default images)
//!  namespace demo (istio-injection=enabled)
//!    client      Deployment, ServiceAccount client    weft-echo "client"
//!    server-v1   Deployment, ServiceAccount server    weft-echo "v1"   } Service server:8080
//!    server-v2   Deployment, ServiceAccount server    weft-echo "v2"   } (STRICT mTLS)
//!    plain       Pod, sidecar.istio.io/inject: "false"  weft-echo "plain"
//!
//!  test ──GET http://<client pod>:8080/forward/server.demo.svc.cluster.local:8080/──▶
//!      client's sidecar (inbound, PERMISSIVE) ─▶ client app ─▶ (captured) client's sidecar
//!      ──mTLS, SPIFFE ids──▶ server's sidecar ─▶ server app: 200, its identity, and the
//!      x-forwarded-client-cert it saw
//! ```
//!
//! The apps' readiness probes are the kubelet's, rewritten by the injector
//! to the agent's status port; the servers' run under STRICT mTLS.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use tempfile::TempDir;

use crate::client::{Reply, http_get};
use crate::helm::helm_ok;
use crate::images::build_test_images;
use crate::node::{KubeNode, NodeImages, PodState};

/// The chart's release and namespace.
pub const RELEASE: &str = "weft";
pub const WEFT_NAMESPACE: &str = "weft-system";
/// The label selector of Weft's pods.
pub const WEFT_SELECTOR: &str = "app.kubernetes.io/name=weft";
/// The app's namespace.
pub const APP_NAMESPACE: &str = "demo";
/// The port every app container listens on.
pub const APP_PORT: u16 = 8080;
/// The server Service's name as the client calls it.
pub const SERVER_HOST: &str = "server.demo.svc.cluster.local";
/// How long pods may take to be Ready (images are local; the first sidecar
/// waits for its certificate and config).
pub const POD_READY_TIMEOUT: Duration = Duration::from_secs(300);

/// A real node with Weft installed and the app deployed; torn down on drop
/// (the node first, then the image archives).
#[derive(Debug)]
pub struct NodeMesh {
    pub node: KubeNode,
    _helm_home: TempDir,
    images: TempDir,
}

impl NodeMesh {
    /// Builds the images, starts the node, installs the chart, waits for
    /// Weft to be Ready and for its webhooks to be trusted, then deploys the
    /// app and waits for its pods. Blocks: call it in `spawn_blocking`.
    pub fn start() -> Result<Self> {
        let images_dir = tempfile::Builder::new()
            .prefix("weft-e2e-images-")
            .tempdir()
            .context("creating the images dir")?;
        let archives = build_test_images(images_dir.path())?;
        let sandbox_image = archives
            .iter()
            .find(|a| a.reference.contains("/pause:"))
            .map(|a| a.reference.clone())
            .context("the test images have no pause image")?;
        let node = KubeNode::start(&NodeImages {
            archives: archives.iter().map(|a| a.path.clone()).collect(),
            sandbox_image,
        })?;
        let helm_home = tempfile::Builder::new()
            .prefix("weft-e2e-helm-")
            .tempdir()
            .context("creating helm's home")?;
        let kubeconfig = node.plane().kubeconfig().to_path_buf();
        helm_ok(
            &[
                "install",
                RELEASE,
                "charts/weft",
                "--namespace",
                WEFT_NAMESPACE,
                "--create-namespace",
                "--set",
                "replicaCount=1",
                "--set",
                "logLevel=info\\,weft=debug",
            ],
            helm_home.path(),
            Some(&kubeconfig),
        )?;
        let mesh = Self {
            node,
            _helm_home: helm_home,
            images: images_dir,
        };
        mesh.wait_for_weft()?;
        mesh.node
            .apply(&app_manifests(&crate::images::chart_tag()?))?;
        for selector in [
            "app=client",
            "app=server,version=v1",
            "app=server,version=v2",
        ] {
            mesh.node
                .wait_pods_ready(APP_NAMESPACE, selector, 1, POD_READY_TIMEOUT)?;
        }
        mesh.node
            .wait_pods_ready(APP_NAMESPACE, "app=plain", 1, POD_READY_TIMEOUT)?;
        Ok(mesh)
    }

    /// Weft's pod Ready, and both webhook configurations carrying its CA.
    pub fn wait_for_weft(&self) -> Result<Vec<String>> {
        let pods =
            self.node
                .wait_pods_ready(WEFT_NAMESPACE, WEFT_SELECTOR, 1, POD_READY_TIMEOUT)?;
        let started = std::time::Instant::now();
        for kind in [
            "mutatingwebhookconfiguration",
            "validatingwebhookconfiguration",
        ] {
            loop {
                let bundle = self.node.kubectl_ok(&[
                    "get",
                    kind,
                    "-o",
                    "jsonpath={.items[*].webhooks[*].clientConfig.caBundle}",
                ])?;
                if !bundle.trim().is_empty() {
                    break;
                }
                if started.elapsed() > POD_READY_TIMEOUT {
                    bail!("Weft did not set the caBundle of its {kind}");
                }
                std::thread::sleep(Duration::from_millis(500));
            }
        }
        Ok(pods)
    }

    /// The one pod `selector` picks in the app's namespace.
    pub fn app_pod(&self, selector: &str) -> Result<PodState> {
        let pods = self.node.pods(APP_NAMESPACE, selector)?;
        pods.into_iter()
            .find(|p| p.ready && !p.terminating)
            .with_context(|| format!("no Ready pod {selector} in {APP_NAMESPACE}"))
    }

    /// The client pod's address.
    pub fn client_addr(&self) -> Result<SocketAddr> {
        let ip: Ipv4Addr = self
            .app_pod("app=client")?
            .ip
            .context("the client pod has no IP")?;
        Ok(SocketAddr::new(ip.into(), APP_PORT))
    }

    /// The client app calls `http://<target>` (host:port/path) from inside
    /// its pod, through its sidecar; the reply is what it got.
    pub async fn call_from_client(client: SocketAddr, target: &str) -> Result<Reply> {
        http_get(
            client,
            &client.to_string(),
            &format!("{}{target}", crate::upstream::FORWARD_PREFIX),
            &[],
        )
        .await
    }

    /// Tears the node down and checks it left nothing behind
    /// ([`KubeNode::shutdown`]). Blocks.
    pub fn shutdown(self) -> Result<()> {
        self.node.shutdown()
    }

    /// The directory of the image archives.
    pub fn images_dir(&self) -> PathBuf {
        self.images.path().to_path_buf()
    }
}

/// The app (see the module docs).
pub fn app_manifests(tag: &str) -> String {
    let image = format!("{}/weft-echo:{tag}", weft_images::weft::REGISTRY);
    let deployment = |name: &str, app: &str, version: &str, account: &str, identity: &str| {
        format!(
            r#"---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
  namespace: {APP_NAMESPACE}
spec:
  replicas: 1
  selector:
    matchLabels: {{app: {app}, version: {version}}}
  template:
    metadata:
      labels: {{app: {app}, version: {version}}}
    spec:
      serviceAccountName: {account}
      terminationGracePeriodSeconds: 5
      containers:
      - name: app
        image: {image}
        imagePullPolicy: Never
        args: ["--listen", "0.0.0.0:{APP_PORT}", "--identity", "{identity}"]
        ports:
        - {{name: http, containerPort: {APP_PORT}}}
        readinessProbe:
          httpGet: {{path: /healthz, port: {APP_PORT}}}
          periodSeconds: 2
"#
        )
    };
    let mut yaml = format!(
        r#"apiVersion: v1
kind: Namespace
metadata:
  name: {APP_NAMESPACE}
  labels: {{istio-injection: enabled}}
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {{name: server-strict, namespace: {APP_NAMESPACE}}}
spec:
  selector:
    matchLabels: {{app: server}}
  mtls: {{mode: STRICT}}
---
apiVersion: v1
kind: Pod
metadata:
  name: plain
  namespace: {APP_NAMESPACE}
  labels: {{app: plain}}
  annotations: {{sidecar.istio.io/inject: "false"}}
spec:
  terminationGracePeriodSeconds: 5
  containers:
  - name: app
    image: {image}
    imagePullPolicy: Never
    args: ["--listen", "0.0.0.0:{APP_PORT}", "--identity", "plain"]
    readinessProbe:
      httpGet: {{path: /healthz, port: {APP_PORT}}}
      periodSeconds: 2
"#
    );
    for app in ["client", "server"] {
        yaml.push_str(&format!(
            r#"---
apiVersion: v1
kind: ServiceAccount
metadata: {{name: {app}, namespace: {APP_NAMESPACE}}}
---
apiVersion: v1
kind: Service
metadata: {{name: {app}, namespace: {APP_NAMESPACE}}}
spec:
  selector: {{app: {app}}}
  ports:
  - {{name: http, port: {APP_PORT}, targetPort: {APP_PORT}}}
"#
        ));
    }
    yaml.push_str(&deployment("client", "client", "v1", "client", "client"));
    yaml.push_str(&deployment("server-v1", "server", "v1", "server", "v1"));
    yaml.push_str(&deployment("server-v2", "server", "v2", "server", "v2"));
    yaml
}

/// A DestinationRule with subsets v1 and v2 of the server, and a
/// VirtualService splitting its traffic `v1`% / `100 - v1`%.
pub fn server_split(v1: u32) -> String {
    let v2 = 100 - v1.min(100);
    format!(
        r#"apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: server, namespace: {APP_NAMESPACE}}}
spec:
  host: {SERVER_HOST}
  subsets:
  - {{name: v1, labels: {{version: v1}}}}
  - {{name: v2, labels: {{version: v2}}}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: server, namespace: {APP_NAMESPACE}}}
spec:
  hosts: [{SERVER_HOST}]
  http:
  - route:
    - destination: {{host: {SERVER_HOST}, subset: v1}}
      weight: {v1}
    - destination: {{host: {SERVER_HOST}, subset: v2}}
      weight: {v2}
"#,
        v1 = v1.min(100)
    )
}
