//! Translation and push cost at mesh scale, with the figures that show what
//! incremental updates and view sharing save.
//!
//! `cargo bench -p weft-xds --bench xds` (add `-- --services N --views N`
//! to change the size). Prints a Markdown table; BENCHMARKS.md keeps it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use weft_config::ConfigStore;
use weft_model::MeshSnapshot;
use weft_translate::ProxyView;
use weft_xds::{ResourceCache, Transition, ViewResources};

mod world;
use world::{mesh, service, snapshot, view};

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

#[derive(Clone, Copy)]
struct Cost {
    time: Duration,
    allocations: u64,
    bytes: u64,
}

/// Median time over `runs`, and the allocations of one run.
fn measure(runs: usize, mut work: impl FnMut()) -> Cost {
    let mut times: Vec<Duration> = (0..runs)
        .map(|_| {
            let start = Instant::now();
            work();
            start.elapsed()
        })
        .collect();
    times.sort();
    let profiler = dhat::Profiler::builder().testing().build();
    work();
    let stats = dhat::HeapStats::get();
    drop(profiler);
    Cost {
        time: times[times.len() / 2],
        allocations: stats.total_blocks,
        bytes: stats.total_bytes,
    }
}

fn time_once(mut work: impl FnMut()) -> Duration {
    let start = Instant::now();
    work();
    start.elapsed()
}

fn row(name: &str, cost: Cost, baseline: Option<(&str, Cost)>) {
    let ratio = baseline.map_or(String::new(), |(label, b)| {
        format!(
            "{:.1}x faster, {:.1}x fewer allocations than {label}",
            b.time.as_secs_f64() / cost.time.as_secs_f64(),
            b.allocations as f64 / cost.allocations.max(1) as f64
        )
    });
    println!(
        "| {name} | {:.2} ms | {} | {:.1} MiB | {ratio} |",
        cost.time.as_secs_f64() * 1e3,
        cost.allocations,
        cost.bytes as f64 / (1024.0 * 1024.0)
    );
}

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let services = arg("--services", 1000);
    let endpoints = arg("--endpoints", 10);
    let proxies = arg("--views", 1000);
    let runs = arg("--runs", 5);
    let distinct_views = 20;

    let mut store = ConfigStore::default();
    let base = snapshot(&mut store, &mesh(services, endpoints, |_| None));
    let vs_edit = snapshot(
        &mut store,
        &mesh(services, endpoints, |i| {
            (i == 7).then(|| service(i, endpoints, 50))
        }),
    );
    let endpoint_edit = snapshot(
        &mut store,
        &mesh(services, endpoints, |i| match i {
            7 => Some(service(i, endpoints, 50)),
            11 => Some(service(i, endpoints + 1, 90)),
            _ => None,
        }),
    );
    let one = view(0, 0);
    let previous = ViewResources::build(&base, &one);

    println!(
        "{services} services, {} endpoints, a VirtualService and a DestinationRule each; {runs} runs, median\n",
        services * endpoints
    );
    println!("| what | time | allocations | allocated | compared |");
    println!("|---|---|---|---|---|");
    let full = measure(runs, || {
        ViewResources::build(&base, &one);
    });
    row("full build, one view", full, None);
    let vs_change = measure(runs, || {
        let t = Transition::new(&base, vs_edit.clone());
        previous.update(&t, &one);
    });
    row(
        "one VirtualService changed, one view",
        vs_change,
        Some(("a full build", full)),
    );
    let after_vs = previous.update(&Transition::new(&base, vs_edit.clone()), &one);
    let ep_change = measure(runs, || {
        let t = Transition::new(&vs_edit, endpoint_edit.clone());
        after_vs.update(&t, &one);
    });
    row(
        "one service's endpoints changed, one view",
        ep_change,
        Some(("a full build", full)),
    );

    let proxy_views: Vec<ProxyView> = (0..proxies)
        .map(|p| view(p % 10, p % distinct_views))
        .collect();
    let push = |cache: &ResourceCache, snapshot: &Arc<MeshSnapshot>| {
        for v in &proxy_views {
            cache.resources(snapshot, v);
        }
    };
    // Sharing off is `proxies` identical full builds: its time is measured,
    // its allocations are `proxies` times a full build's (profiling a
    // thousand builds would take minutes).
    let unshared = |snapshot: &Arc<MeshSnapshot>| Cost {
        time: time_once(|| push(&ResourceCache::new(false), snapshot)),
        allocations: full.allocations * proxies as u64,
        bytes: full.bytes * proxies as u64,
    };
    println!();
    println!(
        "| push to {proxies} proxies in {distinct_views} distinct views | time | allocations | allocated | compared |"
    );
    println!("|---|---|---|---|---|");
    let initial_off = unshared(&base);
    row(
        "first push, sharing off (every proxy computed on its own)",
        initial_off,
        None,
    );
    let initial_on = measure(1, || push(&ResourceCache::new(true), &base));
    row(
        "first push, sharing on (one computation per view)",
        initial_on,
        Some(("sharing off", initial_off)),
    );
    let change_off = unshared(&vs_edit);
    row("one VirtualService changed, sharing off", change_off, None);
    let warm = || {
        let cache = ResourceCache::new(true);
        push(&cache, &base);
        cache
    };
    let mut caches: Vec<ResourceCache> = (0..=runs).map(|_| warm()).collect();
    let change_on = measure(runs, || push(&caches.pop().unwrap_or_else(warm), &vs_edit));
    row(
        "one VirtualService changed, sharing on + incremental",
        change_on,
        Some(("sharing off", change_off)),
    );
}
