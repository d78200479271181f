//! Resilience of `weft operator` on a real kube-apiserver (issue 4): an
//! EndpointSlice change reaches Envoy as EDS alone; Envoy keeps routing
//! while weft restarts and reconnects to the new one; Weft keeps serving
//! its last config while the apiserver is down and picks up changes once
//! it is back. The setup is [`KubeMesh`]; traffic flows through the real
//! Envoy the whole time and not one request may fail.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use weft_e2e::kube_mesh::{apply, mk_endpoint_slice, route_all_to};
use weft_e2e::mesh::TrafficReport;
use weft_e2e::procs::Weft;
use weft_e2e::tools::workspace_binary;
use weft_e2e::yaml::fqdn;
use weft_e2e::{APPLY_TIMEOUT, KubeMesh, Mesh, OperatorOptions, wait_for};

/// How long a metric or stat may take to show a change.
const METRICS_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the apiserver stays down: longer than a few watch retries
/// (kube-rs' backoff starts at 0.8 s and doubles).
const OUTAGE: Duration = Duration::from_secs(15);
/// How long the watches may take to resume once the apiserver is back:
/// their backoff may have grown to its 30 s cap, and the apiserver
/// restarts slowly on a busy machine.
const RESUME_TIMEOUT: Duration = Duration::from_secs(120);

/// The value of the sample `series` (name and labels exactly as written)
/// in an OpenMetrics text.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

/// The sum of every sample of the family `name` (any labels).
fn family_sum(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// weft's `/metrics`.
async fn weft_metrics(weft: &Weft) -> anyhow::Result<String> {
    let reply = weft.monitoring_get("/metrics").await?;
    if reply.status != 200 {
        bail!("/metrics answered {}: {}", reply.status, reply.body);
    }
    Ok(reply.body)
}

/// weft's xDS pushes by type (`cds`, `eds`, `lds`, `rds`).
fn pushes(text: &str) -> BTreeMap<&'static str, f64> {
    ["cds", "eds", "lds", "rds"]
        .into_iter()
        .map(|t| {
            let series = format!("pilot_xds_pushes_total{{type=\"{t}\"}}");
            (t, sample(text, &series).unwrap_or(0.0))
        })
        .collect()
}

/// Envoy's counters and gauges from admin `/stats` (histograms left out).
async fn envoy_stats(mesh: &Mesh) -> anyhow::Result<BTreeMap<String, u64>> {
    let reply = mesh.admin_get("/stats").await?;
    if reply.status != 200 {
        bail!("/stats answered {}: {}", reply.status, reply.body);
    }
    Ok(reply
        .body
        .lines()
        .filter_map(|l| {
            let (name, value) = l.split_once(": ")?;
            Some((name.to_string(), value.trim().parse().ok()?))
        })
        .collect())
}

/// Envoy's accepted xDS updates by type: CDS and LDS from their managers,
/// RDS summed over route configs, EDS summed over EDS clusters.
fn envoy_updates(stats: &BTreeMap<String, u64>) -> BTreeMap<&'static str, u64> {
    let sum = |pred: &dyn Fn(&str) -> bool| -> u64 {
        stats
            .iter()
            .filter(|(name, _)| pred(name))
            .map(|(_, v)| *v)
            .sum()
    };
    BTreeMap::from([
        ("cds", sum(&|n| n == "cluster_manager.cds.update_success")),
        ("lds", sum(&|n| n == "listener_manager.lds.update_success")),
        (
            "rds",
            sum(&|n| {
                n.starts_with("http.") && n.contains(".rds.") && n.ends_with(".update_success")
            }),
        ),
        (
            "eds",
            sum(&|n| n.starts_with("cluster.") && n.ends_with(".update_success")),
        ),
    ])
}

/// weft's pushes and Envoy's updates once they stop changing (two reads a
/// second apart agree): the baseline a later change is compared with.
async fn settled(
    mesh: &Mesh,
) -> anyhow::Result<(BTreeMap<&'static str, f64>, BTreeMap<&'static str, u64>)> {
    let last = std::cell::RefCell::new(None);
    wait_for("xDS pushes to settle", METRICS_TIMEOUT, || {
        let last = &last;
        async move {
            let now = (
                pushes(&weft_metrics(mesh.weft()).await.ok()?),
                envoy_updates(&envoy_stats(mesh).await.ok()?),
            );
            tokio::time::sleep(Duration::from_secs(1)).await;
            let same = last.borrow().as_ref() == Some(&now);
            *last.borrow_mut() = Some(now.clone());
            same.then_some(now)
        }
    })
    .await
}

/// Fails with the report if any request failed.
fn assert_no_failures(report: &TrafficReport, during: &str) {
    assert!(
        report.failed == 0 && report.succeeded() > 0,
        "requests failed {during}: {} of {}; first failures:\n{}\nanswers: {:?}",
        report.failed,
        report.failed + report.succeeded(),
        report.failures.join("\n"),
        report.ok
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_slice_change_is_pushed_as_eds_only() -> anyhow::Result<()> {
    let KubeMesh {
        mesh, plane, host, ..
    } = &KubeMesh::start().await?;
    let reviews = fqdn("reviews", "default");
    mesh.wait_for_body(&reviews, "/", &[], "v1", APPLY_TIMEOUT)
        .await?;

    // A third upstream, a second endpoint of the v1 Pod in a slice of its
    // own (an EndpointSlice's port is per slice).
    let echo = workspace_binary("weft-echo", "cargo build -p weft-e2e --bin weft-echo")?;
    let listen = format!("{}:19083", host.ip);
    let v1b = host.spawn("v1b", &echo, &["--listen", &listen, "--identity", "v1b"])?;
    v1b.wait_for_log("listening on", APPLY_TIMEOUT).await?;

    let (weft_before, envoy_before) = settled(mesh).await?;
    apply(plane, &mk_endpoint_slice("v1b", "v1", host.ip, 19083))?;

    // Traffic reaches the new endpoint next to the old one.
    let counts = wait_for("v1 and v1b to answer", APPLY_TIMEOUT, || async {
        let counts = mesh.sample(&reviews, "/", &[], 20).await.ok()?;
        (counts.contains_key("v1") && counts.contains_key("v1b")).then_some(counts)
    })
    .await
    .with_context(|| format!("weft's output ends with:\n{}", mesh.weft().log_tail(30)))?;
    assert_eq!(counts.values().sum::<usize>(), 20, "only 200s: {counts:?}");

    // weft pushed endpoints, and nothing else.
    let (weft_after, envoy_after) = settled(mesh).await?;
    eprintln!("weft pushes {weft_before:?} -> {weft_after:?}");
    eprintln!("Envoy updates {envoy_before:?} -> {envoy_after:?}");
    assert!(
        weft_after["eds"] > weft_before["eds"],
        "weft pushed EDS: before {weft_before:?}, after {weft_after:?}"
    );
    for t in ["cds", "lds", "rds"] {
        assert_eq!(
            weft_after[t], weft_before[t],
            "weft pushed no {t}: before {weft_before:?}, after {weft_after:?}"
        );
    }
    // And Envoy agrees: it accepted an EDS update and no other.
    assert!(
        envoy_after["eds"] > envoy_before["eds"],
        "Envoy accepted EDS: before {envoy_before:?}, after {envoy_after:?}"
    );
    for t in ["cds", "lds", "rds"] {
        assert_eq!(
            envoy_after[t], envoy_before[t],
            "Envoy accepted no {t}: before {envoy_before:?}, after {envoy_after:?}"
        );
    }
    assert!(
        envoy_before["cds"] > 0 && envoy_before["lds"] > 0 && envoy_before["rds"] > 0,
        "the stats read are Envoy's real update counters: {envoy_before:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarting_weft_under_traffic_fails_no_request() -> anyhow::Result<()> {
    let KubeMesh { mesh, plane, .. } = &mut KubeMesh::start().await?;
    let reviews = fqdn("reviews", "default");
    mesh.wait_for_body(&reviews, "/", &[], "v1", APPLY_TIMEOUT)
        .await?;

    let traffic = mesh.drive_traffic(&reviews, "/");
    let flowing = traffic
        .wait_for_successes(&TrafficReport::default(), 20, APPLY_TIMEOUT)
        .await?;

    // weft dies (SIGKILL): Envoy loses its xDS stream and keeps routing
    // on its last config.
    mesh.weft().kill()?;
    wait_for("Envoy to see weft gone", METRICS_TIMEOUT, || async {
        let stats = envoy_stats(mesh).await.ok()?;
        (stats.get("control_plane.connected_state") == Some(&0)).then_some(())
    })
    .await?;
    traffic
        .wait_for_successes(&traffic.report(), 20, APPLY_TIMEOUT)
        .await?;

    // A new weft on the same xDS address (restart_operator kills the
    // current weft, already gone here, and starts the new one).
    let old = mesh
        .restart_operator(&OperatorOptions::new(plane.kubeconfig()))
        .await?;
    assert!(!old.is_running(), "the old weft is gone");
    assert_eq!(old.xds_addr(), mesh.weft().xds_addr(), "same xDS address");

    // Envoy reconnects to the new weft: the new process counts it, and
    // Envoy says it is connected.
    let what = "Envoy to reconnect to the new weft";
    wait_for(what, METRICS_TIMEOUT, || async {
        let text = weft_metrics(mesh.weft()).await.ok()?;
        let stats = envoy_stats(mesh).await.ok()?;
        (sample(&text, "pilot_xds{protocol=\"sotw\"}") == Some(1.0)
            && stats.get("control_plane.connected_state") == Some(&1))
        .then_some(())
    })
    .await
    .with_context(|| format!("new weft's output ends with:\n{}", mesh.weft().log_tail(30)))?;
    traffic
        .wait_for_successes(&traffic.report(), 20, APPLY_TIMEOUT)
        .await?;

    // The new weft serves changes: everything to v2.
    route_all_to(plane, mesh, "v2", APPLY_TIMEOUT).await?;
    traffic
        .wait_for_successes(&traffic.report(), 5, APPLY_TIMEOUT)
        .await?;

    let report = traffic.stop().await?;
    eprintln!("traffic through the weft restart: {report:?}");
    assert_no_failures(&report, "while weft restarted");
    assert!(
        report.succeeded() > flowing.succeeded() + 20,
        "traffic flowed through the restart: {report:?}"
    );
    assert!(report.ok["v2"] >= 5, "{report:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weft_serves_its_last_config_while_the_apiserver_is_down() -> anyhow::Result<()> {
    let KubeMesh { mesh, plane, .. } = &mut KubeMesh::start().await?;
    let reviews = fqdn("reviews", "default");
    mesh.wait_for_body(&reviews, "/", &[], "v1", APPLY_TIMEOUT)
        .await?;
    let restarts = "weft_watch_restarts_total";
    let text = weft_metrics(mesh.weft()).await?;
    assert_eq!(
        sample(&text, &format!("{restarts}{{kind=\"VirtualService\"}}")),
        Some(0.0),
        "a series per kind from the start:\n{text}"
    );
    let restarts_before = family_sum(&text, restarts);

    let traffic = mesh.drive_traffic(&reviews, "/");
    traffic
        .wait_for_successes(&TrafficReport::default(), 10, APPLY_TIMEOUT)
        .await?;
    plane.stop_apiserver()?;
    let down = Instant::now();

    // For longer than several watch retries: traffic flows, weft runs and
    // stays ready, and counts its failing watches.
    let mut checks = 0;
    while down.elapsed() < OUTAGE || checks < 3 {
        let before = traffic.report();
        traffic
            .wait_for_successes(&before, 5, APPLY_TIMEOUT)
            .await?;
        assert!(
            mesh.weft().is_running(),
            "weft keeps running: {}",
            mesh.weft().log_tail(30)
        );
        let readyz = mesh.weft().monitoring_get("/readyz").await?;
        assert_eq!(readyz.status, 200, "/readyz stays ready: {}", readyz.body);
        checks += 1;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let text = weft_metrics(mesh.weft()).await?;
    assert!(
        family_sum(&text, restarts) > restarts_before,
        "the failing watches are counted:\n{text}"
    );
    let counts = mesh.sample(&reviews, "/", &[], 10).await?;
    assert_eq!(counts, BTreeMap::from([("v1".to_string(), 10)]));

    // Back up: the watches resume and a change moves traffic again.
    tokio::task::block_in_place(|| plane.start_apiserver())?;
    route_all_to(plane, mesh, "v2", RESUME_TIMEOUT).await?;
    traffic
        .wait_for_successes(&traffic.report(), 5, APPLY_TIMEOUT)
        .await?;

    let report = traffic.stop().await?;
    eprintln!("traffic through the apiserver outage: {report:?}");
    assert_no_failures(&report, "while the apiserver was down");
    assert!(report.ok["v2"] >= 5, "{report:?}");
    let text = weft_metrics(mesh.weft()).await?;
    eprintln!(
        "watch restarts: {restarts_before} -> {}",
        family_sum(&text, restarts)
    );
    assert!(family_sum(&text, restarts) > restarts_before, "{text}");
    Ok(())
}
