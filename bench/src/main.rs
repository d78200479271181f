//! `weft-bench`: Weft and istiod side by side, on one machine, in one run,
//! under one load (`make bench`).
//!
//! For each world size it starts a real etcd and kube-apiserver (the e2e
//! harness), installs Istio's CRDs (and Weft's Quota), writes the world
//! ([`world`]: K Services with E endpoints, a DestinationRule and a
//! VirtualService each) with kube-rs ([`apiserver`]), and then, for each
//! proxy count and each system in turn, starts that control plane alone on
//! the apiserver, connects N simulated sidecars (`weft-loadgen`) and makes
//! the scenario's changes ([`run`]). It writes the tables into
//! BENCHMARKS.md ([`report`]) and every latency sample to a CSV that
//! `bench/plot.py` draws as a CDF per system.
//!
//! ```text
//!   world.rs      the objects and changes                       pure
//!   probes.rs     "the client holds the change" predicates      pure
//!   procfs.rs     RSS and CPU time of a pid                     parsers pure
//!   report.rs     tables, CSV, BENCHMARKS.md splice              pure
//!   apiserver.rs  writing objects with kube-rs
//!   systems.rs    starting Weft or istiod
//!   run.rs        one measured run
//! ```

mod apiserver;
mod probes;
mod procfs;
mod report;
mod run;
mod systems;
mod world;

use std::path::PathBuf;
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use clap::Parser;
use weft_e2e::ControlPlane;
use weft_e2e::istiod::install_istio_crds;
use weft_e2e::tools::workspace_dir;

use crate::report::{Cell, Header};
use crate::run::Bench;
use crate::systems::System;
use crate::world::{Size, World};

/// Weft and istiod side by side on one kube-apiserver.
#[derive(Debug, Parser)]
#[command(name = "weft-bench", version)]
struct Args {
    /// Sizes to run, as SERVICESxPROXIES, comma-separated.
    #[arg(long, default_value = "100x100,100x1000,1000x100,1000x1000")]
    sizes: String,
    /// Endpoints (pods) per service.
    #[arg(long, default_value_t = 5)]
    endpoints: u32,
    /// Systems to run, comma-separated (weft, istiod).
    #[arg(long, default_value = "weft,istiod")]
    systems: String,
    /// How long any one wait (start, sync, a change) may take, in seconds.
    #[arg(long, default_value_t = 300)]
    timeout: u64,
    /// The Markdown file whose generated block gets the tables.
    #[arg(long, default_value = "BENCHMARKS.md")]
    markdown: PathBuf,
    /// Where every latency sample goes (for bench/plot.py).
    #[arg(long, default_value = "target/bench/latencies.csv")]
    csv: PathBuf,
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("error")),
        )
        .init();
    match bench(Args::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("weft-bench: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn parse_sizes(text: &str) -> Result<Vec<(u32, u32)>> {
    text.split(',')
        .map(|s| {
            let (services, proxies) = s
                .trim()
                .split_once('x')
                .ok_or_else(|| anyhow!("size {s:?} is not SERVICESxPROXIES (e.g. 100x1000)"))?;
            Ok((
                services
                    .parse()
                    .with_context(|| format!("services in {s:?}"))?,
                proxies
                    .parse()
                    .with_context(|| format!("proxies in {s:?}"))?,
            ))
        })
        .collect()
}

fn parse_systems(text: &str) -> Result<Vec<System>> {
    text.split(',')
        .map(|s| {
            System::parse(s.trim()).ok_or_else(|| anyhow!("unknown system {s:?}: weft or istiod"))
        })
        .collect()
}

async fn bench(args: Args) -> Result<()> {
    let sizes = parse_sizes(&args.sizes)?;
    let systems = parse_systems(&args.systems)?;
    let timeout = Duration::from_secs(args.timeout);
    let mut service_counts: Vec<u32> = sizes.iter().map(|(s, _)| *s).collect();
    service_counts.sort();
    service_counts.dedup();
    let mut cells = Vec::new();
    for services in service_counts {
        let size = Size {
            services,
            endpoints: args.endpoints,
        };
        if (services + 16) * size.endpoints >= 1 << 16 {
            bail!(
                "{services} services x {} endpoints do not fit the pods' address plan (65,536)",
                size.endpoints
            );
        }
        let plane = tokio::task::spawn_blocking(ControlPlane::start).await??;
        let client = prepare(&plane, size).await?;
        let mut bench = Bench {
            plane: &plane,
            client,
            world: World::new(size),
            round: 0,
            timeout,
        };
        for &(_, proxies) in sizes.iter().filter(|(s, _)| *s == services) {
            for &system in &systems {
                let result = bench
                    .run(system, proxies)
                    .await
                    .map_err(|e| format!("{e:#}"));
                if let Err(err) = &result {
                    eprintln!("weft-bench: {system} at {services}x{proxies} stopped: {err}");
                }
                cells.push(Cell {
                    system,
                    services,
                    proxies,
                    result,
                });
            }
        }
    }
    let header = header(&args, &sizes)?;
    let block = report::markdown(&header, &cells);
    println!("{block}");
    let document = std::fs::read_to_string(&args.markdown).unwrap_or_default();
    std::fs::write(&args.markdown, report::splice(&document, &block))
        .with_context(|| format!("writing {}", args.markdown.display()))?;
    if let Some(dir) = args.csv.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&args.csv, report::csv(&cells))
        .with_context(|| format!("writing {}", args.csv.display()))?;
    eprintln!(
        "weft-bench: tables in {}, samples in {}",
        args.markdown.display(),
        args.csv.display()
    );
    Ok(())
}

/// Installs the CRDs and writes the world; returns the admin client.
async fn prepare(plane: &ControlPlane, size: Size) -> Result<kube::Client> {
    install_istio_crds(plane)?;
    let quota = workspace_dir().join("charts/weft/crds/policy.weft.dev_quotas.yaml");
    plane.kubectl_ok(&["apply", "--server-side", "-f", &quota.display().to_string()])?;
    plane.kubectl_ok(&[
        "wait",
        "--for=condition=Established",
        "--timeout=60s",
        "crd/quotas.policy.weft.dev",
    ])?;
    // `weft operator` keeps its leader Lease there.
    plane.kubectl_ok(&["create", "namespace", "weft-system"])?;
    let client = apiserver::client(plane.kubeconfig()).await?;
    apiserver::create_namespace(&client).await?;
    let started = Instant::now();
    let world = World::new(size);
    let objects: Vec<serde_json::Value> = (0..size.services)
        .flat_map(|i| world.service_objects(i))
        .collect();
    apiserver::create_all(&client, &objects).await?;
    eprintln!(
        "weft-bench: wrote {} objects ({} services x {} endpoints) in {:.1} s",
        objects.len(),
        size.services,
        size.endpoints,
        started.elapsed().as_secs_f64()
    );
    Ok(client)
}

fn header(args: &Args, sizes: &[(u32, u32)]) -> Result<Header> {
    let output = |program: &str, argv: &[&str]| {
        Command::new(program)
            .args(argv)
            .current_dir(workspace_dir())
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_else(|| format!("({program} unavailable)"))
    };
    let read = |path: &str| std::fs::read_to_string(path).unwrap_or_default();
    let cpuinfo = read("/proc/cpuinfo");
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|l| l.trim_start_matches([' ', '\t', ':']).to_string())
        .unwrap_or_default();
    let memory = read("/proc/meminfo")
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|kib| kib.trim().trim_end_matches(" kB").parse::<u64>().ok())
        .map(|kib| format!("{:.0} GiB", kib as f64 / 1024.0 / 1024.0))
        .unwrap_or_default();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let sizes: Vec<String> = sizes.iter().map(|(s, p)| format!("{s}x{p}")).collect();
    Ok(Header {
        command: format!(
            "make bench (weft-bench --sizes {} --endpoints {} --systems {} --timeout {})",
            sizes.join(","),
            args.endpoints,
            args.systems,
            args.timeout
        ),
        date: output("date", &["-u", "+%Y-%m-%d %H:%M UTC"]),
        machine: format!(
            "{cores} cores ({model}), {memory}, Linux {}",
            read("/proc/sys/kernel/osrelease").trim()
        ),
        versions: vec![
            format!(
                "Weft {}",
                output("git", &["describe", "--always", "--dirty"])
            ),
            format!(
                "istiod 1.30 (istio.io/istio {}, the release-1.30 branch)",
                weft_e2e::istio_source::ISTIO_PSEUDO_VERSION
            ),
            format!("kube-apiserver {}", weft_e2e::k8s_tools::KUBERNETES_VERSION),
            output("rustc", &["--version"]),
            output("go", &["version"]),
        ],
        world: format!(
            "K services in one namespace, {} endpoints (Pods + one EndpointSlice) each, a DestinationRule \
             (subsets v1, v2) and a VirtualService (90/10, timeout, retries) per service; N simulated \
             sidecars in namespace default, half state-of-the-world and half delta ADS, all in one \
             weft-loadgen process on the same machine; one control plane at a time",
            args.endpoints
        ),
    })
}
