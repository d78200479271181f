//! Weft's images, with the layout of the repository's Dockerfiles
//! (`Dockerfile`, `docker/proxy.Dockerfile`, `docker/echo.Dockerfile`), so
//! the chart's defaults (`ghcr.io/weft-mesh/*:<appVersion>`) run them.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::{Image, Source};

/// Where the images are published (the chart's default repositories).
pub const REGISTRY: &str = "ghcr.io/weft-mesh";
/// The sandbox image the kubelet's pods start with, as Kubernetes 1.36
/// names it.
pub const PAUSE_IMAGE: &str = "registry.k8s.io/pause";
pub const PAUSE_TAG: &str = "3.10.1";

/// The unprivileged user of the control plane and the test app
/// (distroless' `nonroot`).
const NONROOT: u64 = 65532;
/// The proxy's user, which capture exempts.
const PROXY_UID: u64 = 1337;
const CA_CERTIFICATES: &str = "/etc/ssl/certs/ca-certificates.crt";

/// The control plane: `weft operator` as 65532, on glibc, with CA
/// certificates.
pub fn control_plane(weft: &Path, tag: &str) -> Result<Image> {
    let mut image = Image::new(&format!("{REGISTRY}/weft"), tag);
    image.add_executable(weft, "/usr/local/bin/weft")?;
    base(&mut image, &[("nonroot", NONROOT, "/home/nonroot")])?;
    image.config.user = format!("{NONROOT}:{NONROOT}");
    image.config.entrypoint = vec!["/usr/local/bin/weft".into()];
    image.config.cmd = vec!["operator".into()];
    image.config.exposed_ports = vec![15010, 15012, 15014, 15017];
    Ok(image)
}

/// The sidecar: `weft agent`, Envoy, and this machine's `iptables` for the
/// init container's `weft agent iptables`, as 1337.
pub fn proxy(weft: &Path, envoy: &Path, tag: &str) -> Result<Image> {
    let mut image = Image::new(&format!("{REGISTRY}/proxy"), tag);
    image.add_executable(weft, "/usr/local/bin/weft")?;
    image.add_executable(envoy, "/usr/local/bin/envoy")?;
    add_iptables(&mut image)?;
    base(
        &mut image,
        &[("istio-proxy", PROXY_UID, "/etc/istio/proxy")],
    )?;
    image.add_dir("/etc/istio/proxy", 0o755, PROXY_UID, PROXY_UID);
    image.add_dir(
        "/var/run/secrets/workload-spiffe-uds",
        0o755,
        PROXY_UID,
        PROXY_UID,
    );
    // iptables' lock file.
    image.add_dir("/run", 0o755, 0, 0);
    image.config.user = format!("{PROXY_UID}:{PROXY_UID}");
    image.config.working_dir = "/etc/istio/proxy".into();
    image.config.entrypoint = vec!["/usr/local/bin/weft".into(), "agent".into()];
    image.config.exposed_ports = vec![15000, 15001, 15006, 15020, 15021, 15090];
    Ok(image)
}

/// The test app (`weft-echo`), as 65532.
pub fn echo(echo: &Path, tag: &str) -> Result<Image> {
    let mut image = Image::new(&format!("{REGISTRY}/weft-echo"), tag);
    image.add_executable(echo, "/usr/local/bin/weft-echo")?;
    base(&mut image, &[("nonroot", NONROOT, "/home/nonroot")])?;
    image.config.user = format!("{NONROOT}:{NONROOT}");
    image.config.entrypoint = vec!["/usr/local/bin/weft-echo".into()];
    image.config.exposed_ports = vec![8080];
    Ok(image)
}

/// The pod sandbox: Kubernetes' `pause` (a static binary) as 65535.
pub fn pause(pause: &Path) -> Result<Image> {
    let mut image = Image::new(PAUSE_IMAGE, PAUSE_TAG);
    image.add_executable(pause, "/pause")?;
    image.config.user = "65535:65535".into();
    image.config.entrypoint = vec!["/pause".into()];
    Ok(image)
}

/// Users, `/tmp` and the CA certificates every image has.
fn base(image: &mut Image, users: &[(&str, u64, &str)]) -> Result<()> {
    image.add_users(users);
    image.add_dir("/tmp", 0o1777, 0, 0);
    for (_, id, home) in users {
        if !image.entries.contains_key(*home) {
            image.add_dir(home, 0o755, *id, *id);
        }
    }
    let certs = Path::new(CA_CERTIFICATES);
    if !certs.is_file() {
        return Err(Error::Missing(format!(
            "{CA_CERTIFICATES} is missing; install it: apt-get install ca-certificates"
        )));
    }
    image.add(CA_CERTIFICATES, Source::File(certs.to_path_buf()), 0o644);
    Ok(())
}

/// This machine's iptables (the `xtables-*-multi` binary `iptables-restore`
/// resolves to, its command links, libraries and extension modules).
fn add_iptables(image: &mut Image) -> Result<()> {
    let restore = which("iptables-restore").ok_or_else(|| {
        Error::Missing(
            "iptables-restore is not on PATH; install it: apt-get install iptables".to_string(),
        )
    })?;
    let multi = std::fs::canonicalize(&restore).map_err(Error::io("resolving", &restore))?;
    let multi_name = multi
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| {
            Error::Missing(format!(
                "{} resolves to no file name ({})",
                restore.display(),
                multi.display()
            ))
        })?
        .to_string();
    image.add_executable(&multi, &format!("/usr/sbin/{multi_name}"))?;
    for command in [
        "iptables",
        "iptables-restore",
        "iptables-save",
        "ip6tables",
        "ip6tables-restore",
        "ip6tables-save",
    ] {
        image.add(
            &format!("/usr/sbin/{command}"),
            Source::Symlink(multi_name.clone()),
            0o777,
        );
    }
    // Where Debian's libxtables loads its extension modules from.
    let modules = PathBuf::from(format!(
        "/usr/lib/{}-linux-gnu/xtables",
        std::env::consts::ARCH
    ));
    let entries = std::fs::read_dir(&modules).map_err(Error::io(
        "reading iptables' extension modules in",
        &modules,
    ))?;
    let mut paths: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
    paths.sort();
    for module in paths {
        let at = module.display().to_string();
        image.add(&at, Source::File(module.clone()), 0o644);
        image.add_libraries_of(&module)?;
    }
    Ok(())
}

fn which(command: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/sbin".into()])
        .map(|dir| dir.join(command))
        .find(|candidate| candidate.is_file())
}

/// The chart's appVersion (the images' default tag) from `Chart.yaml`'s
/// text.
pub fn chart_app_version(chart_yaml: &str) -> Option<String> {
    chart_yaml.lines().find_map(|line| {
        let value = line.strip_prefix("appVersion:")?.trim();
        Some(value.trim_matches(['"', '\'']).to_string()).filter(|v| !v.is_empty())
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_app_version() {
        assert_eq!(
            chart_app_version("apiVersion: v2\nname: weft\nappVersion: \"0.1.0\"\n").as_deref(),
            Some("0.1.0")
        );
        assert_eq!(chart_app_version("name: weft\n"), None);
    }
}
