//! `weft-telemetry-bench` (`make bench-telemetry`): what telemetry costs
//! the data plane. Two real sidecars ([`SidecarPair`]: sleep calls reviews
//! over mTLS) with telemetry off (no metrics provider, no logs, no
//! tracing), with Istio's default (the Prometheus metrics), then with
//! everything (metrics, a JSON access log on every proxy and 100% Zipkin
//! tracing to a real Jaeger). For each, fortio (Istio's load
//! tester) measures the most requests per second through the pair, then
//! the latency at a fixed rate while `/proc` counts the CPU time of both
//! sidecars (agent and Envoy). Prints a Markdown table for BENCHMARKS.md.
//!
//! `BENCH_SECONDS` (default 15) sets each run's length; `BENCH_QPS`
//! (default 500) the fixed rate.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use weft_e2e::fortio::{LoadResult, LoadSpec, run_load};
use weft_e2e::jaeger::{Jaeger, ZIPKIN_PROVIDER, mesh_tracing};
use weft_e2e::sidecars::{SERVER_HOST, Sidecar, SidecarOptions, SidecarPair};

fn main() -> ExitCode {
    weft_e2e::demo::run_demo("weft-telemetry-bench", "measured", run)
}

/// One configuration's results.
struct Row {
    name: &'static str,
    max: LoadResult,
    fixed: LoadResult,
    /// CPU seconds of the client's and the server's sidecar during `fixed`.
    cpu: (f64, f64),
}

async fn run() -> Result<()> {
    let seconds: u64 = env_or("BENCH_SECONDS", 15)?;
    let qps: u64 = env_or("BENCH_QPS", 500)?;
    let run_for = Duration::from_secs(seconds);
    let off = measure("off", telemetry_off(), None, run_for, qps).await?;
    // Istio's default: the Prometheus provider only.
    let metrics = measure("metrics", "{}".to_string(), None, run_for, qps).await?;
    let jaeger = Jaeger::start().await?;
    let log_dir = tempfile::tempdir()?;
    let on = measure(
        "metrics + logs + traces",
        telemetry_on(&log_dir.path().join("access.log")),
        Some(&jaeger),
        run_for,
        qps,
    )
    .await?;
    print_table(&[off, metrics, on], seconds, qps);
    Ok(())
}

fn env_or(name: &str, default: u64) -> Result<u64> {
    match std::env::var(name) {
        Ok(text) => text.parse().with_context(|| format!("{name}={text:?}")),
        Err(_) => Ok(default),
    }
}

/// No provider reports anything.
fn telemetry_off() -> String {
    "defaultProviders: {metrics: [], accessLogging: [], tracing: []}\nenableTracing: false\n"
        .to_string()
}

/// Istio's metrics, a JSON access log and Zipkin tracing (sampled by the
/// Telemetry [`measure`] writes).
fn telemetry_on(log: &std::path::Path) -> String {
    format!(
        "accessLogFile: {}\naccessLogEncoding: JSON\n{ZIPKIN_PROVIDER}",
        log.display()
    )
}

async fn measure(
    name: &'static str,
    mesh_config: String,
    jaeger: Option<&Jaeger>,
    run_for: Duration,
    qps: u64,
) -> Result<Row> {
    println!("\n{name}: starting the sidecar pair");
    let pair = SidecarPair::start(SidecarOptions {
        mesh_config: Some(mesh_config),
        ..SidecarOptions::default()
    })
    .await?;
    if let Some(jaeger) = jaeger {
        pair.write_config("tracing.yaml", &mesh_tracing(jaeger.zipkin_addr(), 100))
            .await?;
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    let url = format!("http://{}/", pair.client().outbound_addr());
    let spec = |qps: f64| {
        LoadSpec::new(url.clone())
            .header("Host", SERVER_HOST)
            .connections(4)
            .duration(run_for)
            .qps(qps)
    };
    // Warm up: connections, certificates, Envoy's first requests.
    run_load(&spec(0.0).duration(Duration::from_secs(2))).await?;
    println!("{name}: maximum rate for {}s", run_for.as_secs());
    let max = run_load(&spec(0.0)).await?;
    println!("{name}: {qps} requests/s for {}s", run_for.as_secs());
    let before = (cpu_seconds(pair.client())?, cpu_seconds(pair.server())?);
    let fixed = run_load(&spec(qps as f64)).await?;
    let after = (cpu_seconds(pair.client())?, cpu_seconds(pair.server())?);
    for result in [&max, &fixed] {
        let ok = result.code_count(200);
        if ok != result.count {
            anyhow::bail!(
                "{name}: {} of {} requests failed",
                result.count - ok,
                result.count
            );
        }
    }
    Ok(Row {
        name,
        max,
        fixed,
        cpu: (after.0 - before.0, after.1 - before.1),
    })
}

/// CPU seconds (user + system) of a sidecar's agent and its Envoy.
fn cpu_seconds(sidecar: &Sidecar) -> Result<f64> {
    let root = sidecar.process().pid();
    let mut pids = vec![root];
    for entry in std::fs::read_dir("/proc")?.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if stat_fields(pid).is_some_and(|f| f.parent == root) {
            pids.push(pid);
        }
    }
    let ticks: u64 = pids
        .iter()
        .filter_map(|pid| stat_fields(*pid))
        .map(|f| f.ticks)
        .sum();
    // Linux reports in clock ticks of 1/100 s (USER_HZ).
    Ok(ticks as f64 / 100.0)
}

struct Stat {
    parent: u32,
    ticks: u64,
}

fn stat_fields(pid: u32) -> Option<Stat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may hold spaces.
    let rest = &text[text.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state(0) ppid(1) ... utime(11) stime(12).
    Some(Stat {
        parent: fields.get(1)?.parse().ok()?,
        ticks: fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?,
    })
}

fn print_table(rows: &[Row], seconds: u64, qps: u64) {
    println!(
        "\n| telemetry | max requests/s | p50 ms | p90 ms | p99 ms (at {qps}/s) | vCPU per 1000 requests/s, client sidecar | server sidecar |"
    );
    println!("|---|---|---|---|---|---|---|");
    for row in rows {
        let per_thousand = |cpu: f64| cpu / seconds as f64 / row.fixed.actual_qps * 1000.0;
        println!(
            "| {} | {:.0} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} |",
            row.name,
            row.max.actual_qps,
            row.fixed.p50_ms,
            row.fixed.p90_ms,
            row.fixed.p99_ms,
            per_thousand(row.cpu.0),
            per_thousand(row.cpu.1),
        );
    }
    let Some((off, on)) = rows.split_first() else {
        return;
    };
    for row in on {
        println!(
            "| {} / off | {:.2} | {:.2} | {:.2} | {:.2} | | |",
            row.name,
            row.max.actual_qps / off.max.actual_qps,
            row.fixed.p50_ms / off.fixed.p50_ms,
            row.fixed.p90_ms / off.fixed.p90_ms,
            row.fixed.p99_ms / off.fixed.p99_ms,
        );
    }
    println!();
    for row in on {
        println!(
            "p90 added by {}: {:+.2} ms",
            row.name,
            row.fixed.p90_ms - off.fixed.p90_ms
        );
    }
    println!(
        "(Istio publishes +2.65 ms p90 and 0.5 vCPU per 1000 requests/s per sidecar for its default telemetry)"
    );
}
