//! A real istiod against the test apiserver, with Istio's own CRDs: it
//! serves the load generator's simulated sidecars (their node metadata is
//! enough for istiod), and they ACK a VirtualService weight change without
//! NACKs, over state-of-the-world and delta ADS. Then, on the same
//! apiserver and objects, `weft operator` reads Istio's CRDs (instead of
//! the ones Weft's chart ships, without Weft's own Quota CRD) and serves
//! the same subset cluster.
//!
//! The world: Service `reviews` (port 9080, no selector), Pods
//! `reviews-v1` / `reviews-v2` whose status is patched with a pod IP (no
//! kubelet runs; istiod maps endpoints to pods by IP), one EndpointSlice
//! per pod, a DestinationRule with subsets v1 and v2, and a VirtualService
//! splitting 90/10.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::Ipv4Addr;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use weft_e2e::kube_mesh::{REVIEWS_SERVICE, apply, mk_endpoint_slice, mk_pod};
use weft_e2e::yaml::{mk_destination_rule, mk_weighted_virtual_service};
use weft_e2e::{ControlPlane, Istiod, Process, Weft, install_istio_crds};
use weft_loadgen::fleet::{Fleet, Protocol};
use weft_loadgen::measure::{cluster_exists, endpoint_address, route_weight};
use weft_loadgen::node::NodeSpec;

const TIMEOUT: Duration = Duration::from_secs(30);
const V1_CLUSTER: &str = "outbound|9080|v1|reviews.default.svc.cluster.local";
const CHANGE: &str = "reviews v2 at 70";
/// The pods' IPs (not loopback: the apiserver refuses those in
/// EndpointSlices; no traffic is sent to them).
const POD_IPS: [(&str, Ipv4Addr); 2] = [
    ("v1", Ipv4Addr::new(10, 213, 77, 1)),
    ("v2", Ipv4Addr::new(10, 213, 77, 2)),
];
const PORT: u16 = 9080;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn istiod_serves_loadgen_sidecars_and_weft_reads_istios_crds() -> Result<()> {
    let plane = tokio::task::spawn_blocking(ControlPlane::start).await??;
    install_istio_crds(&plane)?;
    create_world(&plane)?;

    let istiod = Istiod::start(&plane, TIMEOUT).await?;
    let fleet = start_fleet(&istiod.xds_addr().to_string());
    fleet
        .wait_synced(TIMEOUT)
        .await
        .with_context(|| log_of(istiod.process()))?;
    assert_eq!(fleet.clients.iter().filter(|c| c.delta).count(), 1);
    for client in &fleet.clients {
        let shared = client.lock();
        ensure!(
            cluster_exists(V1_CLUSTER)(&shared.state),
            "{} (delta: {}) has no {V1_CLUSTER} from istiod; it has {:?}",
            client.spec.node_id(),
            client.delta,
            shared.state.clusters().map(|c| &c.name).collect::<Vec<_>>()
        );
        // istiod found the pods by IP: each subset holds its pod's address.
        for (version, ip) in POD_IPS {
            let cluster = format!("outbound|{PORT}|{version}|reviews.default.svc.cluster.local");
            ensure!(
                endpoint_address(&cluster, &ip.to_string())(&shared.state),
                "{} has no endpoint {ip} in {cluster}",
                client.spec.node_id()
            );
        }
        ensure!(
            route_weight(None, "v1", 90)(&shared.state),
            "{} has no 90% route to v1 before the change",
            client.spec.node_id()
        );
        ensure!(!route_weight(None, "v2", 70)(&shared.state));
    }

    fleet.mark(CHANGE, &route_weight(None, "v2", 70));
    apply(
        &plane,
        &mk_weighted_virtual_service("reviews", "default", &[("v1", 30), ("v2", 70)]),
    )?;
    fleet
        .wait_probe(CHANGE, TIMEOUT)
        .await
        .with_context(|| log_of(istiod.process()))?;
    let nacks = fleet.nacks();
    assert!(nacks.is_empty(), "clients NACKed istiod: {nacks:#?}");
    for client in &fleet.clients {
        assert!(
            client.ended().is_none(),
            "stream ended: {:?}",
            client.ended()
        );
    }
    // Quiet by default: no line per connection, so a benchmark's thousand
    // proxies cannot fill the test's memory with istiod's log.
    let per_connection = istiod
        .process()
        .logs()
        .into_iter()
        .filter(|l| l.contains("new connection") || l.contains("PUSH request"))
        .collect::<Vec<_>>();
    assert!(
        per_connection.is_empty(),
        "istiod logs each connection: {per_connection:#?}"
    );
    drop(fleet);
    istiod.process().kill()?;
    drop(istiod);

    // The same world, served by weft from Istio's CRDs alone: Weft's own
    // Quota kind (policy.weft.dev), which Istio does not define, is
    // reported missing and not waited for. Its leader Lease lives in
    // weft-system.
    apply(
        &plane,
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: weft-system\n",
    )?;
    let weft = Weft::start_operator(plane.kubeconfig(), TIMEOUT).await?;
    let fleet = start_fleet(&weft.xds_addr().to_string());
    fleet
        .wait_synced(TIMEOUT)
        .await
        .with_context(|| log_of(weft.process()))?;
    for client in &fleet.clients {
        let shared = client.lock();
        ensure!(
            cluster_exists(V1_CLUSTER)(&shared.state),
            "{} (delta: {}) has no {V1_CLUSTER} from weft on Istio's CRDs; it has {:?}",
            client.spec.node_id(),
            client.delta,
            shared.state.clusters().map(|c| &c.name).collect::<Vec<_>>()
        );
    }
    let nacks = fleet.nacks();
    assert!(nacks.is_empty(), "clients NACKed weft: {nacks:#?}");
    Ok(())
}

/// Two simulated sidecars in `default`: one SotW, one delta.
fn start_fleet(address: &str) -> Fleet {
    let specs = (0..2).map(|i| NodeSpec::numbered(i, "default")).collect();
    Fleet::start(address, specs, Protocol::Mixed)
}

fn log_of(process: &Process) -> String {
    format!(
        "{}'s log ends with:\n{}",
        process.name(),
        process.log_tail(40)
    )
}

/// The `reviews` Service, its pods (with IPs), EndpointSlices,
/// DestinationRule and a 90/10 VirtualService.
fn create_world(plane: &ControlPlane) -> Result<()> {
    apply(plane, REVIEWS_SERVICE)?;
    for (version, ip) in POD_IPS {
        apply(plane, &mk_pod(version))?;
        let status = format!(
            r#"{{"status":{{"phase":"Running","podIP":"{ip}","podIPs":[{{"ip":"{ip}"}}],
            "conditions":[{{"type":"Ready","status":"True"}}]}}}}"#
        );
        plane
            .kubectl_ok(&[
                "patch",
                "pod",
                &format!("reviews-{version}"),
                "--namespace=default",
                "--subresource=status",
                "--type=merge",
                "-p",
                &status,
            ])
            .with_context(|| format!("giving pod reviews-{version} an IP"))?;
        apply(plane, &mk_endpoint_slice(version, version, ip, PORT))?;
    }
    apply(
        plane,
        &mk_destination_rule("reviews", "default", &["v1", "v2"]),
    )?;
    apply(
        plane,
        &mk_weighted_virtual_service("reviews", "default", &[("v1", 90), ("v2", 10)]),
    )?;
    Ok(())
}
