//! Transparent capture in network namespaces (root): two "pods", each with
//! `weft agent iptables` applied and `weft agent --capture` running Envoy
//! as UID 1337. The client pod's code connects to the service VIP with no
//! proxy settings; the request reaches the server pod's app through both
//! sidecars over mTLS (the app sees the client's SPIFFE ID), and neither
//! proxy's own traffic is captured again (no loop).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use weft_e2e::capture::{CLIENT_ID, CapturedPair, SERVER_ID};
use weft_e2e::sidecars::{Sidecar, xfcc_values};

/// Envoy admin `/stats` as name -> value (counters and gauges).
async fn stats(sidecar: &Sidecar) -> std::collections::BTreeMap<String, u64> {
    let reply = sidecar.admin_get("/stats").await.unwrap();
    reply
        .body
        .lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(": ")?;
            Some((k.to_string(), v.trim().parse().ok()?))
        })
        .collect()
}

fn stat(stats: &std::collections::BTreeMap<String, u64>, name: &str) -> u64 {
    stats.get(name).copied().unwrap_or(0)
}

const REQUESTS: u64 = 5;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn captured_pods_talk_mtls_through_both_sidecars_without_loops() -> anyhow::Result<()> {
    let pair = CapturedPair::start().await?;
    let (client_before, server_before) = (stats(pair.client()).await, stats(pair.server()).await);

    for _ in 0..REQUESTS {
        let reply = pair.call().await?;
        assert_eq!(reply.status, 200, "{reply:?}\n{}", pair.logs());
        assert_eq!(reply.body, "reviews-app");
    }

    // The server's sidecar terminated mTLS: the app sees who called.
    let request = pair.app().last_received().expect("the app got requests");
    let xfcc = request
        .header("x-forwarded-client-cert")
        .expect("the server's sidecar sets x-forwarded-client-cert");
    assert_eq!(xfcc_values(xfcc, "URI"), [CLIENT_ID], "{xfcc}");
    assert_eq!(xfcc_values(xfcc, "By"), [SERVER_ID], "{xfcc}");

    let (client_after, server_after) = (stats(pair.client()).await, stats(pair.server()).await);
    let client = |name: &str| stat(&client_after, name) - stat(&client_before, name);
    let server = |name: &str| stat(&server_after, name) - stat(&server_before, name);
    // Each request is one connection the client's app made, captured once
    // and handed by virtualOutbound to the port's listener (which counts
    // it): Envoy's own upstream connections are not redirected back to it.
    assert_eq!(
        client("listener.0.0.0.0_9080.downstream_cx_total"),
        REQUESTS
    );
    assert_eq!(
        client("listener.0.0.0.0_15001.downstream_cx_total"),
        0,
        "nothing fell through to virtualOutbound's own chain"
    );
    assert_eq!(
        client("cluster.PassthroughCluster.upstream_cx_total"),
        0,
        "the VIP matched the service, nothing passed through"
    );
    let to_server =
        client("cluster.outbound|9080||reviews.ns1.svc.cluster.local.upstream_cx_total");
    // (Envoy may reuse a pooled connection from before.)
    assert!(to_server <= REQUESTS, "{to_server}");
    // The server's inbound connections are exactly the client Envoy's.
    assert_eq!(
        server("listener.0.0.0.0_15006.downstream_cx_total"),
        to_server
    );
    assert_eq!(
        server("cluster.InboundPassthroughCluster.upstream_cx_total"),
        0
    );
    assert!(server("cluster.inbound|9080||.upstream_rq_total") >= REQUESTS);
    // The server Envoy's forward to 127.0.0.1:9080 was not captured as an
    // outbound connection of the server pod.
    assert_eq!(server("listener.0.0.0.0_9080.downstream_cx_total"), 0);

    // Envoy accepted every configuration it was sent.
    for s in [&client_after, &server_after] {
        assert!(stat(s, "listener_manager.lds.update_success") >= 1);
        assert_eq!(stat(s, "listener_manager.lds.update_rejected"), 0);
        assert_eq!(stat(s, "cluster_manager.cds.update_rejected"), 0);
        assert_eq!(
            stat(s, "http.outbound_0.0.0.0_9080.rds.9080.update_rejected"),
            0
        );
    }
    Ok(())
}
