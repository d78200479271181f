//! The [`KubeMesh`] fixture: `weft operator` on a real kube-apiserver, a
//! real Envoy bootstrapped to it, and a `reviews` Service whose v1 and v2
//! endpoints are echo upstreams.
//!
//! What stands in for a cluster's workloads, since no kubelet or
//! controller-manager runs: the `reviews` Service has no selector (the
//! documented way to give a Service endpoints by hand), and the fixture
//! writes its EndpointSlices, one per echo upstream (an EndpointSlice's
//! ports are per slice).
//!
//! The upstreams do not listen on 127.0.x.y as in the standalone tests:
//! the apiserver refuses EndpointSlice addresses in the loopback range
//! (`may not be in the loopback range (127.0.0.0/8, ::1/128)`). They run
//! as `weft-echo` processes inside a network namespace (a [`TestHost`]
//! with its own 10.213.x.y address on a veth link), so no traffic leaves
//! this machine or reaches an address the test does not own. Each
//! endpoint's `targetRef` names a Pod with `app: reviews, version: v1|v2`
//! labels; no process is behind the Pod objects, but Weft reads the
//! endpoint labels the DestinationRule subsets select from them, as it
//! would in a cluster.
//!
//! `weft operator` runs least-privileged, as the chart's ServiceAccount
//! `weft-system/weft` with only the chart's RBAC ([`operator_identity`]):
//! the apiserver authorizes with RBAC, so a permission the chart lacks
//! fails the tests.

use std::net::Ipv4Addr;

use anyhow::{Context, Result};

use crate::control_plane::ControlPlane;
use crate::k8s_tools::helm_binary;
use crate::mesh::{APPLY_TIMEOUT, Mesh, WEFT_READY_TIMEOUT};
use crate::netns::TestHost;
use crate::procs::{OperatorOptions, Process, Weft};
use crate::tools::{workspace_binary, workspace_dir};
use crate::yaml::{fqdn, mk_destination_rule, mk_weighted_virtual_service};

/// The CRDs `charts/weft/crds/` ships.
pub const CRDS: [&str; 10] = [
    "destinationrules.networking.istio.io",
    "gateways.networking.istio.io",
    "serviceentries.networking.istio.io",
    "sidecars.networking.istio.io",
    "virtualservices.networking.istio.io",
    "quotas.policy.weft.dev",
    "authorizationpolicies.security.istio.io",
    "peerauthentications.security.istio.io",
    "requestauthentications.security.istio.io",
    "telemetries.telemetry.istio.io",
];

/// The `reviews` versions the fixture runs, and their upstreams' ports.
pub const VERSIONS: [(&str, u16); 2] = [("v1", 19081), ("v2", 19082)];

/// The `reviews` Service, without a selector.
pub const REVIEWS_SERVICE: &str = "\
apiVersion: v1
kind: Service
metadata:
  name: reviews
  namespace: default
spec:
  ports:
  - name: http
    port: 9080
    protocol: TCP
";

/// A Pod object for `reviews` `version` (no process: there is no kubelet).
pub fn mk_pod(version: &str) -> String {
    format!(
        "\
apiVersion: v1
kind: Pod
metadata:
  name: reviews-{version}
  namespace: default
  labels:
    app: reviews
    version: {version}
spec:
  containers:
  - name: reviews
    image: example.invalid/reviews:{version}
"
    )
}

/// The EndpointSlice `reviews-<slice>` of `reviews` holding `ip:port`,
/// whose endpoint is the Pod `reviews-<version>`.
pub fn mk_endpoint_slice(slice: &str, version: &str, ip: Ipv4Addr, port: u16) -> String {
    format!(
        "\
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: reviews-{slice}
  namespace: default
  labels:
    kubernetes.io/service-name: reviews
    endpointslice.kubernetes.io/managed-by: weft-e2e
addressType: IPv4
ports:
- name: http
  port: {port}
  protocol: TCP
endpoints:
- addresses:
  - {ip}
  conditions:
    ready: true
  targetRef:
    kind: Pod
    name: reviews-{version}
    namespace: default
",
    )
}

/// Starts a control plane and installs the chart's CRDs, waiting until the
/// apiserver reports each one Established (and so serves its kind).
pub async fn start_control_plane_with_crds() -> Result<ControlPlane> {
    let plane = tokio::task::spawn_blocking(ControlPlane::start).await??;
    plane.kubectl_ok(&["apply", "--server-side", "-f", "charts/weft/crds/"])?;
    let mut wait = vec!["wait", "--for=condition=Established", "--timeout=60s"];
    let names: Vec<String> = CRDS.iter().map(|crd| format!("crd/{crd}")).collect();
    wait.extend(names.iter().map(String::as_str));
    plane.kubectl_ok(&wait)?;
    Ok(plane)
}

/// Installs one CRD of `charts/weft/crds/` (`file`, e.g.
/// `policy.weft.dev_quotas.yaml`) and waits until it is Established.
pub fn install_chart_crd(plane: &ControlPlane, file: &str) -> Result<()> {
    let crd = workspace_dir().join("charts/weft/crds").join(file);
    let crd = crd.to_string_lossy();
    plane.kubectl_ok(&["apply", "--server-side", "-f", &crd])?;
    plane.kubectl_ok(&[
        "wait",
        "--for=condition=Established",
        "--timeout=60s",
        "-f",
        &crd,
    ])?;
    Ok(())
}

/// A running setup: Envoy and `weft operator` on a real apiserver holding
/// the CRDs, the `reviews` Service with v1 and v2 endpoints (upstreams in
/// a test host), its DestinationRule (subsets v1, v2) and a VirtualService
/// sending everything to v1. Fields drop in order: proxies and Weft first.
#[derive(Debug)]
pub struct KubeMesh {
    pub mesh: Mesh,
    pub plane: ControlPlane,
    pub host: TestHost,
    _upstreams: Vec<Process>,
}

/// The namespace the chart is installed in (and the leader Lease lives in).
pub const OPERATOR_NAMESPACE: &str = "weft-system";

/// The ServiceAccount the chart creates, which `weft operator` runs as.
pub const OPERATOR_SERVICE_ACCOUNT: &str = "weft";

/// The chart's templates `weft operator`'s identity needs: its
/// ServiceAccount and RBAC (not the Deployment, Service or webhook
/// configurations, which would call a Weft that is not there).
pub const IDENTITY_TEMPLATES: [&str; 5] = [
    "templates/serviceaccount.yaml",
    "templates/clusterrole.yaml",
    "templates/clusterrolebinding.yaml",
    "templates/role.yaml",
    "templates/rolebinding.yaml",
];

/// `helm template weft charts/weft --namespace weft-system ARGS...` (in
/// the workspace root): the rendered manifests.
pub fn helm_template(args: &[&str]) -> Result<String> {
    let helm = helm_binary()?;
    let mut all = vec![
        "template",
        "weft",
        "charts/weft",
        "--namespace",
        OPERATOR_NAMESPACE,
    ];
    all.extend_from_slice(args);
    let out = std::process::Command::new(&helm)
        .args(&all)
        .current_dir(workspace_dir())
        .output()
        .with_context(|| format!("running {} {}", helm.display(), all.join(" ")))?;
    if !out.status.success() {
        anyhow::bail!(
            "helm {} failed ({}):\n{}",
            all.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    String::from_utf8(out.stdout).context("helm printed non-UTF-8")
}

/// Installs the chart's ServiceAccount and RBAC ([`IDENTITY_TEMPLATES`] of
/// `helm template weft charts/weft --namespace weft-system`, applied with
/// kubectl) in a new namespace `weft-system`, and returns options running
/// `weft operator` as that ServiceAccount, with its Lease in
/// `weft-system`.
pub fn operator_identity(plane: &ControlPlane) -> Result<OperatorOptions> {
    plane.kubectl_ok(&["create", "namespace", OPERATOR_NAMESPACE])?;
    let mut args = Vec::new();
    for template in IDENTITY_TEMPLATES {
        args.extend(["--show-only", template]);
    }
    let rendered = helm_template(&args)?;
    apply(plane, &rendered)?;
    let kubeconfig =
        plane.service_account_kubeconfig(OPERATOR_NAMESPACE, OPERATOR_SERVICE_ACCOUNT)?;
    Ok(OperatorOptions::new(&kubeconfig).args(["--control-plane-namespace", OPERATOR_NAMESPACE]))
}

impl KubeMesh {
    /// Starts the setup with `weft operator` as the chart's ServiceAccount
    /// ([`operator_identity`]).
    pub async fn start() -> Result<Self> {
        Self::start_with(operator_identity).await
    }

    /// Starts the setup with `weft operator` run as `operator` says, once
    /// the apiserver holds the CRDs and the `reviews` objects.
    pub async fn start_with(
        operator: impl FnOnce(&ControlPlane) -> Result<OperatorOptions>,
    ) -> Result<Self> {
        let plane = start_control_plane_with_crds().await?;
        Self::start_on(plane, operator).await
    }

    /// [`KubeMesh::start_with`] on `plane`, which holds whatever CRDs the
    /// caller installed (Istio's, for a migration from istiod).
    pub async fn start_on(
        plane: ControlPlane,
        operator: impl FnOnce(&ControlPlane) -> Result<OperatorOptions>,
    ) -> Result<Self> {
        let host = TestHost::create()?;
        let echo = workspace_binary("weft-echo", "cargo build -p weft-e2e --bin weft-echo")?;
        let mut upstreams = Vec::new();
        for (version, port) in VERSIONS {
            let listen = format!("{}:{port}", host.ip);
            let process = host.spawn(
                version,
                &echo,
                &["--listen", &listen, "--identity", version],
            )?;
            process.wait_for_log("listening on", APPLY_TIMEOUT).await?;
            upstreams.push(process);
        }
        apply(&plane, REVIEWS_SERVICE)?;
        for (version, port) in VERSIONS {
            apply(&plane, &mk_pod(version))?;
            apply(&plane, &mk_endpoint_slice(version, version, host.ip, port))?;
        }
        apply(
            &plane,
            &mk_destination_rule("reviews", "default", &["v1", "v2"]),
        )?;
        apply(
            &plane,
            &mk_weighted_virtual_service("reviews", "default", &[("v1", 100)]),
        )?;

        let options = operator(&plane)?;
        let weft = Weft::start_operator_with(&options, WEFT_READY_TIMEOUT).await?;
        let mesh = Mesh::builder().start_with_weft(weft).await?;
        Ok(Self {
            mesh,
            plane,
            host,
            _upstreams: upstreams,
        })
    }

    /// `kubectl apply --server-side -f -` of `yaml`.
    pub fn apply(&self, yaml: &str) -> Result<()> {
        apply(&self.plane, yaml)
    }
}

/// `kubectl apply`s a VirtualService sending all of `reviews` to
/// `version`, and waits until Envoy routes there (within `timeout`).
pub async fn route_all_to(
    plane: &ControlPlane,
    mesh: &Mesh,
    version: &str,
    timeout: std::time::Duration,
) -> Result<()> {
    apply(
        plane,
        &mk_weighted_virtual_service("reviews", "default", &[(version, 100)]),
    )?;
    mesh.wait_for_body(&fqdn("reviews", "default"), "/", &[], version, timeout)
        .await
}

/// `kubectl apply --server-side -f -` of `yaml` on `plane`.
pub fn apply(plane: &ControlPlane, yaml: &str) -> Result<()> {
    plane
        .kubectl_stdin_ok(&["apply", "--server-side", "-f", "-"], yaml)
        .map(drop)
        .with_context(|| format!("kubectl apply of\n{yaml}"))
}

/// The object `kind` `default/name` as the apiserver holds it (JSON read
/// as YAML, which it is).
pub fn get_object(plane: &ControlPlane, kind: &str, name: &str) -> Result<serde_yaml::Value> {
    let json = plane.kubectl_ok(&["get", kind, name, "-n", "default", "-o", "json"])?;
    Ok(serde_yaml::from_str(&json)?)
}

/// The condition `type_` of `object`'s status: (status, reason, message).
pub fn condition(object: &serde_yaml::Value, type_: &str) -> Option<(String, String, String)> {
    let text = |c: &serde_yaml::Value, key: &str| c[key].as_str().unwrap_or_default().to_string();
    object["status"]["conditions"]
        .as_sequence()?
        .iter()
        .find(|c| c["type"].as_str() == Some(type_))
        .map(|c| (text(c, "status"), text(c, "reason"), text(c, "message")))
}

/// The root certificate (PEM) Weft published in `namespace`'s ConfigMap
/// `name` (`istio-ca-root-cert` or `weft-ca-root-cert`), once it is there.
pub async fn published_root(plane: &ControlPlane, namespace: &str, name: &str) -> Result<String> {
    crate::client::wait_for(
        &format!("the root in ConfigMap {namespace}/{name}"),
        APPLY_TIMEOUT,
        || async {
            plane
                .kubectl_ok(&[
                    "get",
                    "configmap",
                    name,
                    "-n",
                    namespace,
                    "-o",
                    "jsonpath={.data.root-cert\\.pem}",
                ])
                .ok()
                .filter(|pem| pem.contains("BEGIN CERTIFICATE"))
        },
    )
    .await
}
