//! The images the real-node tests run ([`crate::node`]): Weft's control
//! plane, proxy and test app from the binaries cargo built for the running
//! tests, and Kubernetes' pause, written as archives by
//! [`weft_images`] (no Docker, no registry).
//!
//! `pause` is compiled once from Kubernetes' own `build/pause/linux/pause.c`
//! (in the `k8s.io/kubernetes` module the node's tools are built from) with
//! the machine's C compiler, statically, as its Makefile does, and cached
//! with the other tools.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use weft_images::{Image, write_archive};

use crate::go_source::go_module_source;
use crate::k8s_tools::{KUBERNETES_VERSION, go_modules_dir, tools_cache_dir};
use crate::tools::{envoy_binary, workspace_binary, workspace_dir};

/// An image archive written for a test.
#[derive(Debug, Clone)]
pub struct ImageArchive {
    pub path: PathBuf,
    /// `name:tag`.
    pub reference: String,
    pub digest: String,
}

/// The images' tag: the chart's appVersion (what its defaults pull).
pub fn chart_tag() -> Result<String> {
    let path = workspace_dir().join("charts/weft/Chart.yaml");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    weft_images::weft::chart_app_version(&text)
        .with_context(|| format!("{} has no appVersion", path.display()))
}

/// Writes `weft.tar`, `proxy.tar`, `weft-echo.tar` and `pause.tar` into
/// `dir`, from the `weft` and `weft-echo` binaries next to the running
/// test, Envoy ([`envoy_binary`]) and pause ([`pause_binary`]).
pub fn build_test_images(dir: &Path) -> Result<Vec<ImageArchive>> {
    let weft = workspace_binary("weft", "cargo build -p weft --bin weft")?;
    let echo = workspace_binary("weft-echo", "cargo build -p weft-e2e --bin weft-echo")?;
    let envoy = envoy_binary()?;
    let pause = pause_binary()?;
    let mut images = weft_images(&weft, &echo, &envoy, &chart_tag()?)?;
    images.push(("pause", weft_images::weft::pause(&pause)?));
    images
        .iter()
        .map(|(file, image)| write_image(image, &dir.join(format!("{file}.tar"))))
        .collect()
}

/// Weft's images (`make images`), by archive file stem: the control
/// plane, the proxy and the test app, tagged `tag`.
pub fn weft_images(
    weft: &Path,
    echo: &Path,
    envoy: &Path,
    tag: &str,
) -> Result<Vec<(&'static str, Image)>> {
    Ok(vec![
        ("weft", weft_images::weft::control_plane(weft, tag)?),
        ("proxy", weft_images::weft::proxy(weft, envoy, tag)?),
        ("weft-echo", weft_images::weft::echo(echo, tag)?),
    ])
}

/// Writes one image archive, saying how long it took.
pub fn write_image(image: &Image, path: &Path) -> Result<ImageArchive> {
    let started = Instant::now();
    let info = write_archive(image, path)
        .with_context(|| format!("writing image {} to {}", image.reference(), path.display()))?;
    eprintln!(
        "weft-e2e: image {} ({}, {} MB) in {:.1?}",
        info.reference,
        info.digest,
        info.layer_size / 1_000_000,
        started.elapsed()
    );
    Ok(ImageArchive {
        path: path.to_path_buf(),
        reference: info.reference,
        digest: info.digest,
    })
}

/// Kubernetes' pause, compiled once (see the module docs).
pub fn pause_binary() -> Result<PathBuf> {
    let tag = weft_images::weft::PAUSE_TAG;
    let cache = tools_cache_dir()?;
    let binary = cache.join(format!("pause-{tag}"));
    if binary.is_file() {
        return Ok(binary);
    }
    std::fs::create_dir_all(&cache).with_context(|| format!("creating {}", cache.display()))?;
    let source = kubernetes_source()?.join("build/pause/linux/pause.c");
    let temp = cache.join(format!(".pause-{tag}.building-{}", std::process::id()));
    let out = Command::new("cc")
        .args(["-Os", "-Wall", "-Werror", "-static"])
        .arg(format!("-DVERSION=v{tag}-weft-e2e"))
        .arg("-o")
        .arg(&temp)
        .arg(&source)
        .output()
        .context(
            "running cc (install a C compiler and static glibc: apt-get install build-essential)",
        )?;
    if !out.status.success() {
        bail!(
            "compiling {} failed (a static build needs libc6-dev: apt-get install \
             build-essential):\n{}",
            source.display(),
            crate::procs::output_text(&out)
        );
    }
    std::fs::rename(&temp, &binary)
        .with_context(|| format!("renaming {} to {}", temp.display(), binary.display()))?;
    Ok(binary)
}

/// The `k8s.io/kubernetes` module's source directory.
fn kubernetes_source() -> Result<PathBuf> {
    go_module_source(&go_modules_dir(), "k8s.io/kubernetes", KUBERNETES_VERSION)
}
