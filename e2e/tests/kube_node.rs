//! Weft on a real node: kubelet, containerd and runc run the chart's pod
//! and injected pods from images built here ([`weft_e2e::node_mesh`]).
//!
//! - The chart installs, and the Weft pod becomes Ready through its probes.
//! - Injected pods start for real: `istio-init` (iptables in the pod's
//!   network namespace), then the native sidecar `istio-proxy`, then the
//!   app; the apps' rewritten readiness probes pass, the servers' under
//!   STRICT mTLS.
//! - The client calls the server through both sidecars: 200, and the
//!   server saw the client's SPIFFE ID.
//! - A VirtualService weight change applied with kubectl moves real
//!   pod-to-pod traffic.
//! - A pod with `sidecar.istio.io/inject: "false"` runs without a proxy.
//! - Deleting the Weft pod while traffic runs fails no request.
//!
//! Needs root, Debian's containerd and runc, and Go for the node's tools
//! (built once, cached): a missing one fails the test saying how to
//! install it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use weft_e2e::node::{KubeNode, MachineState, NodeImages};
use weft_e2e::node_mesh::{
    APP_NAMESPACE, APP_PORT, NodeMesh, SERVER_HOST, WEFT_NAMESPACE, WEFT_SELECTOR, server_split,
};
use weft_e2e::upstream::{ECHO_CLIENT_CERT_HEADER, IDENTITY_HEADER};
use weft_e2e::{http_get, wait_for};

/// How long a config change may take to reach the sidecars.
const CONVERGE_TIMEOUT: Duration = Duration::from_secs(60);

async fn start() -> Result<NodeMesh> {
    tokio::task::spawn_blocking(NodeMesh::start).await?
}

/// Tears the node down, checking it left nothing behind.
async fn shutdown(mesh: NodeMesh) -> Result<()> {
    tokio::task::spawn_blocking(move || mesh.shutdown()).await?
}

/// The target the client calls: the server Service by its DNS name.
fn server_target() -> String {
    format!("{SERVER_HOST}:{APP_PORT}/hello")
}

/// `n` calls from the client to the server: how many each server
/// identity answered (non-200s counted under `status <code>`).
async fn sample(client: SocketAddr, n: usize) -> Result<BTreeMap<String, usize>> {
    let mut counts = BTreeMap::new();
    for _ in 0..n {
        let reply = NodeMesh::call_from_client(client, &server_target()).await?;
        let key = if reply.status == 200 {
            reply.header(IDENTITY_HEADER).unwrap_or("none").to_string()
        } else {
            format!("status {}: {}", reply.status, reply.body)
        };
        *counts.entry(key).or_default() += 1;
    }
    Ok(counts)
}

/// A bare node runs a pod (Kubernetes' pause, as a container of its own),
/// and nothing of it survives the node: no container, mount, network
/// namespace, bridge, iptables chain, cgroup or process.
#[test]
fn a_pod_runs_on_the_node_and_nothing_survives_the_node() -> Result<()> {
    let images = tempfile::tempdir()?;
    let pause = weft_e2e::images::write_image(
        &weft_images::weft::pause(&weft_e2e::images::pause_binary()?)?,
        &images.path().join("pause.tar"),
    )?;
    let node = KubeNode::start(&NodeImages {
        archives: vec![pause.path.clone()],
        sandbox_image: pause.reference.clone(),
    })?;
    node.apply(&format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: paused, namespace: default}}\n\
         spec:\n  containers:\n  - {{name: pause, image: {}, imagePullPolicy: Never}}\n",
        pause.reference
    ))?;
    node.wait_pods_ready("default", "", 1, Duration::from_secs(120))?;
    let pod = node.pods("default", "")?.pop().context("no pod")?;
    let ip = pod.ip.context("the pod has no IP")?;
    assert!(
        ip.octets()[..3] == [10, 244, 0],
        "pod IP {ip} is not in {}",
        weft_e2e::node::POD_CIDR
    );
    let addresses = node.exec_in_pod_network("default", "paused", &["ip", "-4", "addr"])?;
    assert!(addresses.contains(&format!("inet {ip}/24")), "{addresses}");
    let machine = format!("{:?}", MachineState::capture());
    assert!(machine.contains("network namespace cni-"), "{machine}");
    // The teardown fails if anything survives it.
    node.shutdown()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_chart_runs_weft_and_injected_pods_talk_mtls_on_a_real_node() -> Result<()> {
    let mesh = start().await?;
    let node = &mesh.node;

    // Injection, as the kubelet ran it: the init container, then the native
    // sidecar, before the app; the opted-out pod has neither.
    let client = mesh.app_pod("app=client")?;
    assert_eq!(
        client.init_containers,
        ["istio-init", "istio-proxy"],
        "{client:?}"
    );
    assert_eq!(client.containers, ["app"], "{client:?}");
    assert_eq!(client.exit_codes.get("istio-init"), Some(&0), "{client:?}");
    let (proxy, app) = (&client.started_at["istio-proxy"], &client.started_at["app"]);
    assert!(
        proxy <= app,
        "the app started ({app}) before its sidecar ({proxy})"
    );
    let plain = node
        .pods(APP_NAMESPACE, "app=plain")?
        .into_iter()
        .next()
        .context("no plain pod")?;
    assert!(plain.init_containers.is_empty(), "{plain:?}");
    assert_eq!(plain.containers, ["app"], "{plain:?}");
    let plain_ip = plain.ip.context("the plain pod has no IP")?;
    let reply = http_get(
        SocketAddr::new(plain_ip.into(), APP_PORT),
        "plain",
        "/hello",
        &[],
    )
    .await?;
    assert_eq!((reply.status, reply.body.as_str()), (200, "plain"));

    // The iptables rules istio-init wrote are in the pod's network
    // namespace, not the host's.
    let rules =
        node.exec_in_pod_network(APP_NAMESPACE, &client.name, &["iptables-save", "-t", "nat"])?;
    for chain in ["ISTIO_INBOUND", "ISTIO_OUTPUT", "ISTIO_REDIRECT"] {
        assert!(
            rules.contains(chain),
            "no {chain} in the pod's nat table:\n{rules}"
        );
    }
    let host = std::process::Command::new("iptables-save")
        .args(["-t", "nat"])
        .output()?;
    assert!(!String::from_utf8_lossy(&host.stdout).contains("ISTIO_"));

    // Client -> server through both sidecars, over mTLS: the server's
    // sidecar forwarded the client's SPIFFE ID.
    let client_addr = mesh.client_addr()?;
    let reply = wait_for(
        "a 200 from the server through both sidecars",
        CONVERGE_TIMEOUT,
        || async {
            NodeMesh::call_from_client(client_addr, &server_target())
                .await
                .ok()
                .filter(|r| r.status == 200)
        },
    )
    .await?;
    let xfcc = reply.header(ECHO_CLIENT_CERT_HEADER).unwrap_or_default();
    assert!(
        xfcc.contains(&format!(
            "URI=spiffe://cluster.local/ns/{APP_NAMESPACE}/sa/client"
        )),
        "the server saw x-forwarded-client-cert {xfcc:?}"
    );
    assert!(
        xfcc.contains(&format!(
            "By=spiffe://cluster.local/ns/{APP_NAMESPACE}/sa/server"
        )),
        "{xfcc:?}"
    );

    // A weight change applied with kubectl moves the traffic: all to v1,
    // then all to v2.
    for (v1, expected) in [(100, "v1"), (0, "v2")] {
        node.apply(&server_split(v1))?;
        wait_for(
            &format!("every call answered by {expected}"),
            CONVERGE_TIMEOUT,
            || async {
                sample(client_addr, 10)
                    .await
                    .ok()
                    .filter(|c| c.len() == 1 && c.get(expected) == Some(&10))
            },
        )
        .await?;
        let counts = sample(client_addr, 40).await?;
        assert_eq!(counts, BTreeMap::from([(expected.to_string(), 40)]));
    }
    shutdown(mesh).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_the_weft_pod_fails_no_request() -> Result<()> {
    let mesh = start().await?;
    let node = &mesh.node;
    let client = mesh.client_addr()?;
    wait_for("a 200 from the server", CONVERGE_TIMEOUT, || async {
        NodeMesh::call_from_client(client, &server_target())
            .await
            .ok()
            .filter(|r| r.status == 200)
    })
    .await?;
    let old = node.pods(WEFT_NAMESPACE, WEFT_SELECTOR)?;

    // Traffic runs while the Weft pod is deleted and its Deployment starts
    // another.
    let stop = Arc::new(AtomicBool::new(false));
    let load = tokio::spawn({
        let stop = stop.clone();
        async move {
            let (mut ok, mut failures) = (0usize, Vec::new());
            while !stop.load(Ordering::SeqCst) {
                match NodeMesh::call_from_client(client, &server_target()).await {
                    Ok(reply) if reply.status == 200 => ok += 1,
                    Ok(reply) => failures.push(format!("{}: {}", reply.status, reply.body)),
                    Err(err) => failures.push(format!("{err:#}")),
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            (ok, failures)
        }
    });
    tokio::time::sleep(Duration::from_secs(2)).await;
    node.kubectl_ok(&[
        "delete",
        "pod",
        "-n",
        WEFT_NAMESPACE,
        "-l",
        WEFT_SELECTOR,
        "--wait=true",
    ])?;
    let new = tokio::task::block_in_place(|| mesh.wait_for_weft())?;
    if new.iter().any(|n| old.iter().any(|o| &o.name == n)) {
        bail!("the Weft pod was not replaced: {new:?}");
    }
    // The sidecars reconnect to the new pod; traffic goes on meanwhile.
    tokio::time::sleep(Duration::from_secs(5)).await;
    stop.store(true, Ordering::SeqCst);
    let (ok, failures) = load.await?;
    assert!(
        failures.is_empty(),
        "{} of {} requests failed: {:?}",
        failures.len(),
        ok + failures.len(),
        &failures[..failures.len().min(10)]
    );
    assert!(ok > 50, "only {ok} requests ran");
    // And config still applies through the new pod.
    node.apply(&server_split(0))?;
    wait_for("v2 answers every call", CONVERGE_TIMEOUT, || async {
        sample(client, 10)
            .await
            .ok()
            .filter(|c| c.get("v2") == Some(&10))
    })
    .await?;
    shutdown(mesh).await
}
