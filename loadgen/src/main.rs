//! The `weft-loadgen` CLI: connects N simulated Envoys to an xDS server,
//! waits for their initial sync, prints per-type resource counts, the
//! initial-sync time distribution, the bytes received, how many resources
//! were decoded vs. shared, and the loadgen's own RSS and CPU time, and
//! stays connected until Ctrl-C or `--duration` (so a control plane can be
//! observed under that load).

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Parser;
use weft_loadgen::fleet::{Fleet, Protocol};
use weft_loadgen::measure::summarize;
use weft_loadgen::node::NodeSpec;

mod usage;

/// Simulated Envoy sidecars against an xDS server (Weft, istiod, ...).
#[derive(Debug, Parser)]
#[command(name = "weft-loadgen", version)]
struct Args {
    /// The server's plaintext ADS address.
    #[arg(long, value_name = "HOST:PORT")]
    xds_address: String,
    /// How many clients to connect.
    #[arg(long, default_value_t = 1)]
    clients: u32,
    /// Speak delta xDS (default: state-of-the-world).
    #[arg(long, conflicts_with = "mixed")]
    delta: bool,
    /// Half the clients SotW, half delta.
    #[arg(long)]
    mixed: bool,
    /// The clients' namespace.
    #[arg(long, default_value = "default")]
    namespace: String,
    /// Ask Weft for a router listener on HOST:PORT (WEFT_ROUTER_ADDRESS).
    #[arg(long, value_name = "HOST:PORT")]
    router_address: Option<String>,
    /// How long to wait for every client's initial sync, in seconds.
    #[arg(long, default_value_t = 60)]
    sync_timeout: u64,
    /// Stay connected this many seconds after the sync, then report and
    /// exit (default: until Ctrl-C).
    #[arg(long, value_name = "SECONDS")]
    duration: Option<u64>,
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    match run(Args::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("weft-loadgen: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<()> {
    let protocol = match (args.delta, args.mixed) {
        (true, _) => Protocol::Delta,
        (_, true) => Protocol::Mixed,
        _ => Protocol::StateOfTheWorld,
    };
    let specs = (0..args.clients)
        .map(|i| NodeSpec {
            router_address: args.router_address.clone(),
            ..NodeSpec::numbered(i, &args.namespace)
        })
        .collect();
    let fleet = Fleet::start(&args.xds_address, specs, protocol);
    fleet
        .wait_synced(Duration::from_secs(args.sync_timeout))
        .await
        .context("waiting for the initial sync")?;
    println!(
        "{} clients ({protocol:?}) synced with {}",
        args.clients, args.xds_address
    );
    let mut counts: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for client in &fleet.clients {
        for (type_url, n) in client.lock().state.counts() {
            counts.entry(type_url).or_default().push(n);
        }
    }
    for (type_url, ns) in &counts {
        let (min, max) = (ns.iter().min(), ns.iter().max());
        let short = type_url.rsplit('.').next().unwrap_or(type_url);
        println!(
            "  {short:<24} per client min {} max {}",
            min.copied().unwrap_or_default(),
            max.copied().unwrap_or_default()
        );
    }
    if let Some(summary) = summarize(&fleet.initial_syncs()) {
        println!("  initial sync: {summary}");
    }
    report(&fleet);
    match args.duration {
        Some(seconds) => {
            println!("connected; staying {seconds}s");
            tokio::time::sleep(Duration::from_secs(seconds)).await;
        }
        None => {
            println!("connected; Ctrl-C to stop");
            tokio::signal::ctrl_c()
                .await
                .context("waiting for Ctrl-C")?;
        }
    }
    report(&fleet);
    let nacks = fleet.nacks();
    println!("stopping; {} NACKs sent", nacks.len());
    Ok(())
}

/// Prints what the fleet received and what the loadgen itself costs.
fn report(fleet: &Fleet) {
    for (type_url, traffic) in fleet.received_by_type() {
        let short = type_url.rsplit('.').next().unwrap_or(&type_url);
        println!(
            "  received {short:<24} {} responses, {} bytes",
            traffic.responses, traffic.bytes
        );
    }
    let stats = fleet.intern_stats();
    println!(
        "  {} ACKs; {} resources decoded, {} shared, {} in the intern table",
        fleet.acks(),
        stats.decodes,
        stats.hits,
        stats.entries
    );
    match usage::read() {
        Ok(u) => println!(
            "  loadgen RSS {} MiB (peak {} MiB), CPU {:.2}s user + {:.2}s system",
            u.rss_kib / 1024,
            u.peak_rss_kib / 1024,
            u.user.as_secs_f64(),
            u.system.as_secs_f64()
        ),
        Err(err) => println!("  loadgen usage unknown: {err}"),
    }
}
