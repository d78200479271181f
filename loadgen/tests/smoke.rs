//! Smoke test of the load generator (checks the tool, not a speed): 20
//! simulated Envoys, 10 state-of-the-world and 10 delta, against
//! `weft standalone` serving a copy of `examples/bookinfo`; after every
//! client's initial sync the reviews VirtualService's weights are rewritten,
//! and every client must ACK a version holding the new weights, none may
//! NACK, and every recorded latency must be positive and finite. The
//! traffic counters must see the change (RDS responses and bytes grow by at
//! least one response per client), and the clients must share decoded
//! resources (far fewer decodes than resources received).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use weft_e2e::Weft;
use weft_e2e::examples::{
    bookinfo_dir, parse_docs, read_config_dir, render_docs, set_route_weights,
};
use weft_loadgen::fleet::{Fleet, Protocol};
use weft_loadgen::measure::{route_weight, summarize};
use weft_loadgen::node::NodeSpec;
use weft_loadgen::state::{CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, ROUTE_TYPE};
use weft_loadgen::traffic::difference;

const CLIENTS: u32 = 20;
const VS_FILE: &str = "virtual-services.yaml";
const TIMEOUT: Duration = Duration::from_secs(60);
const CHANGE: &str = "reviews v3 at 60";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_clients_sotw_and_delta_ack_a_route_change_without_nacks() -> Result<()> {
    let config = tempfile::tempdir()?;
    for (name, text) in read_config_dir(&bookinfo_dir())? {
        std::fs::write(config.path().join(&name), text)?;
    }
    let weft = Weft::start(config.path(), TIMEOUT).await?;

    let specs = (0..CLIENTS)
        .map(|i| NodeSpec {
            router_address: Some("127.0.0.1:15080".to_string()),
            ..NodeSpec::numbered(i, "default")
        })
        .collect();
    let fleet = Fleet::start(&weft.xds_addr().to_string(), specs, Protocol::Mixed);
    fleet.wait_synced(TIMEOUT).await?;
    assert_eq!(fleet.clients.iter().filter(|c| c.delta).count(), 10);
    for client in &fleet.clients {
        let shared = client.lock();
        let counts = shared.state.counts();
        for type_url in [CLUSTER_TYPE, LISTENER_TYPE, ENDPOINT_TYPE, ROUTE_TYPE] {
            ensure!(
                counts.get(type_url).copied().unwrap_or_default() > 0,
                "{} (delta: {}) holds no {type_url} after its initial sync: {counts:?}",
                client.spec.node_id(),
                client.delta
            );
        }
        ensure!(
            !route_weight(None, "v3", 60)(&shared.state),
            "the change is already there before it is made"
        );
    }

    let vs_path = config.path().join(VS_FILE);
    let mut docs = parse_docs(&std::fs::read_to_string(&vs_path)?)?;
    set_route_weights(&mut docs, "reviews", &[("v1", 10), ("v2", 30), ("v3", 60)])?;
    let stats = fleet.intern_stats();
    let received = fleet.received();
    let held: usize = fleet
        .clients
        .iter()
        .map(|c| c.lock().state.counts().values().sum::<usize>())
        .sum();
    ensure!(
        stats.decodes > 0 && 4 * stats.decodes <= held as u64,
        "20 alike proxies hold {held} resources, but {} were decoded: not shared ({stats:?})",
        stats.decodes
    );
    ensure!(
        received.responses >= 4 * u64::from(CLIENTS) && received.bytes > 0,
        "every client received CDS, LDS, EDS and RDS: {received:?}"
    );
    println!("after the initial sync: {received:?}, {held} resources held, {stats:?}");
    let (before, acks_before) = (fleet.received_by_type(), fleet.acks());
    let since = fleet.mark_after(CHANGE, ROUTE_TYPE, &route_weight(None, "v3", 60));
    let tmp = config.path().join(format!(".{VS_FILE}.tmp"));
    std::fs::write(&tmp, render_docs(&docs)?)?;
    std::fs::rename(&tmp, &vs_path).context("replacing the VirtualService file")?;

    fleet
        .wait_probe(CHANGE, TIMEOUT)
        .await
        .with_context(|| format!("weft's log:\n{}", weft.process().log_tail(30)))?;
    let nacks = fleet.nacks();
    assert!(nacks.is_empty(), "clients sent NACKs: {nacks:#?}");
    let rds = difference(&fleet.received_by_type(), &before)
        .get(ROUTE_TYPE)
        .copied()
        .unwrap_or_default();
    assert!(
        rds.responses >= u64::from(CLIENTS) && rds.bytes >= rds.responses,
        "the change reached every client as an RDS response: {rds:?}"
    );
    assert!(fleet.acks() >= acks_before + u64::from(CLIENTS));
    for client in &fleet.clients {
        let latency = client.latency(CHANGE).expect("waited for above");
        assert!(
            latency > Duration::ZERO && latency < TIMEOUT,
            "{}: latency {latency:?}",
            client.spec.node_id()
        );
        let shared = client.lock();
        assert!(
            shared
                .state
                .history
                .iter()
                .any(|a| a.type_url == ROUTE_TYPE && a.at > since),
            "{} recorded no RDS update after the change",
            client.spec.node_id()
        );
        assert!(shared.ended.is_none(), "stream ended: {:?}", shared.ended);
    }
    let summary = summarize(&fleet.latencies(CHANGE)).expect("20 latencies");
    assert_eq!(summary.count, CLIENTS as usize);
    println!("convergence of '{CHANGE}': {summary}");
    drop(fleet);
    weft.process().kill()?;
    Ok(())
}
