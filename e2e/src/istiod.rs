//! The [`Istiod`] fixture: a real istiod (`pilot-discovery discovery`,
//! built by [`crate::k8s_tools::istiod_binary`]) against the test
//! apiserver of a [`ControlPlane`], as the reference control plane for
//! benchmarks; and [`install_istio_crds`], Istio's own CRDs for it.
//!
//! istiod runs outside a pod here, so the fixture gives it what a pod would:
//! the `POD_*` / `REVISION` / `CLUSTER_ID` environment, the `istio-system`
//! namespace, an admin kubeconfig, and its own temporary working directory
//! (it writes `./var/run/secrets/...` relative paths). Every port is a free
//! port on 127.0.0.1: plaintext gRPC xDS (the one proxies use here), the
//! HTTP debug/readiness port, monitoring, secure gRPC, the webhook HTTPS
//! port and ControlZ. Disabled, because nothing here can use them: the
//! injection and validation webhook patchers (no webhook configurations
//! exist). The sidecar injector disables itself (no template ConfigMap).
//! Nothing that changes how istiod computes and pushes xDS is touched:
//! debounce, push throttling, the mesh config (Istio's defaults: no mesh
//! ConfigMap is created) are upstream's.
//!
//! Logs default to `all:warn` (every scope; `default:warn` would leave
//! `ads`, `krt`, `kube` ... at info) so a thousand connecting proxies do not
//! fill the test's memory (`Process` keeps every line); pass another level
//! in [`IstiodOptions`] to debug.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use tempfile::TempDir;

use crate::client::{Reply, http_get};
use crate::control_plane::ControlPlane;
use crate::istio_source::istio_crds_file;
use crate::k8s_tools::{ISTIO_VERSION, istiod_binary};
use crate::procs::{Process, exited_error, free_port};

/// istiod's namespace (`POD_NAMESPACE`, Istio's root namespace).
pub const ISTIO_NAMESPACE: &str = "istio-system";
/// The pod name istiod is told it has.
pub const ISTIOD_POD: &str = "istiod-weft-e2e";
/// istiod's default log level here: warnings and errors only.
pub const DEFAULT_LOG_LEVEL: &str = "all:warn";
/// How long `kubectl wait` may take for Istio's CRDs to be Established.
const CRD_WAIT: &str = "60s";
/// Lines of istiod's output quoted when it does not become ready.
const TAIL_LINES: usize = 40;

/// Applies Istio's CRDs (`crd-all.gen.yaml` of the pinned release, with
/// server-side apply: some are too big for the last-applied annotation) and
/// waits until every one of them is Established.
pub fn install_istio_crds(plane: &ControlPlane) -> Result<()> {
    let file = istio_crds_file()?;
    let path = file.to_string_lossy();
    plane
        .kubectl_ok(&["apply", "--server-side", "--force-conflicts", "-f", &path])
        .context("applying Istio's CRDs")?;
    plane
        .kubectl_ok(&[
            "wait",
            "--for=condition=Established",
            "--timeout",
            CRD_WAIT,
            "-f",
            &path,
        ])
        .context("waiting for Istio's CRDs to be Established")?;
    Ok(())
}

/// How to start istiod beyond the defaults.
#[derive(Debug, Clone)]
pub struct IstiodOptions {
    /// `--log_output_level` (default [`DEFAULT_LOG_LEVEL`]).
    pub log_level: String,
    /// Extra environment variables (e.g. `GOMAXPROCS`).
    pub env: Vec<(String, String)>,
    /// Extra arguments after `discovery`.
    pub args: Vec<String>,
}

impl Default for IstiodOptions {
    fn default() -> Self {
        Self {
            log_level: DEFAULT_LOG_LEVEL.to_string(),
            env: Vec::new(),
            args: Vec::new(),
        }
    }
}

/// A running istiod; killed when dropped.
#[derive(Debug)]
pub struct Istiod {
    // Dropped first: istiod is killed before its directory is removed.
    process: Process,
    xds_addr: SocketAddr,
    http_addr: SocketAddr,
    monitoring_addr: SocketAddr,
    _dir: TempDir,
}

impl Istiod {
    /// Starts istiod with the defaults (see the module docs) against
    /// `plane` and waits until `GET /ready` on its HTTP port answers 200.
    pub async fn start(plane: &ControlPlane, timeout: Duration) -> Result<Self> {
        Self::start_with(plane, &IstiodOptions::default(), timeout).await
    }

    /// [`Istiod::start`] with `options`.
    pub async fn start_with(
        plane: &ControlPlane,
        options: &IstiodOptions,
        timeout: Duration,
    ) -> Result<Self> {
        let binary = istiod_binary()?;
        ensure_namespace(plane, ISTIO_NAMESPACE)?;
        let dir = tempfile::Builder::new()
            .prefix("weft-istiod-")
            .tempdir()
            .context("creating istiod's working directory")?;
        let ports = Ports::free()?;
        let mut command = Command::new(&binary);
        command
            .current_dir(dir.path())
            .args(discovery_args(
                plane.kubeconfig(),
                &ports,
                &options.log_level,
            ))
            .args(&options.args)
            .envs(istiod_env())
            .envs(options.env.iter().map(|(k, v)| (k, v)));
        let process = Process::spawn("istiod", command)?;
        let istiod = Self {
            process,
            xds_addr: ports.grpc,
            http_addr: ports.http,
            monitoring_addr: ports.monitoring,
            _dir: dir,
        };
        istiod.wait_ready(timeout).await?;
        Ok(istiod)
    }

    async fn wait_ready(&self, timeout: Duration) -> Result<()> {
        let start = Instant::now();
        loop {
            if !self.process.is_running() {
                return Err(exited_error(&self.process).context("istiod exited while starting"));
            }
            let last = match self.http_get("/ready").await {
                Ok(reply) if reply.status == 200 => return Ok(()),
                Ok(reply) => format!("status {}", reply.status),
                Err(err) => format!("{err:#}"),
            };
            if start.elapsed() >= timeout {
                bail!(
                    "istiod did not become ready (GET http://{}/ready: {last}) within {timeout:?}; \
                     its output ends with:\n{}",
                    self.http_addr,
                    self.process.log_tail(TAIL_LINES)
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Plaintext gRPC ADS (istiod's 15010), for proxies and the load
    /// generator.
    pub fn xds_addr(&self) -> SocketAddr {
        self.xds_addr
    }

    /// The HTTP port: `/ready` and `/debug/...` (e.g. `/debug/syncz`).
    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    /// Prometheus metrics (`/metrics`).
    pub fn monitoring_addr(&self) -> SocketAddr {
        self.monitoring_addr
    }

    /// The istiod process (its pid for RSS and CPU; its logs).
    pub fn process(&self) -> &Process {
        &self.process
    }

    /// The Istio build running (see [`ISTIO_VERSION`]).
    pub fn version(&self) -> &'static str {
        ISTIO_VERSION
    }

    /// `GET path` on the HTTP (debug) port.
    pub async fn http_get(&self, path: &str) -> Result<Reply> {
        http_get(self.http_addr, "localhost", path, &[]).await
    }

    /// `GET path` on the monitoring port.
    pub async fn monitoring_get(&self, path: &str) -> Result<Reply> {
        http_get(self.monitoring_addr, "localhost", path, &[]).await
    }
}

/// The ports istiod listens on, all on 127.0.0.1.
struct Ports {
    grpc: SocketAddr,
    http: SocketAddr,
    monitoring: SocketAddr,
    secure_grpc: SocketAddr,
    https: SocketAddr,
}

impl Ports {
    fn free() -> Result<Self> {
        let addr = |port| SocketAddr::new(Ipv4Addr::LOCALHOST.into(), port);
        Ok(Self {
            grpc: addr(free_port()?),
            http: addr(free_port()?),
            monitoring: addr(free_port()?),
            secure_grpc: addr(free_port()?),
            https: addr(free_port()?),
        })
    }
}

/// `pilot-discovery discovery ...`. Pure.
fn discovery_args(kubeconfig: &Path, ports: &Ports, log_level: &str) -> Vec<String> {
    vec![
        "discovery".to_string(),
        format!("--kubeconfig={}", kubeconfig.display()),
        format!("--grpcAddr={}", ports.grpc),
        format!("--httpAddr={}", ports.http),
        format!("--monitoringAddr={}", ports.monitoring),
        format!("--secureGRPCAddr={}", ports.secure_grpc),
        format!("--httpsAddr={}", ports.https),
        // ControlZ on an ephemeral port (default 9876).
        "--ctrlz_port=0".to_string(),
        "--ctrlz_address=127.0.0.1".to_string(),
        format!("--log_output_level={log_level}"),
        "--log_as_json=false".to_string(),
    ]
}

/// The environment a pod of Istio's chart gives istiod, plus what turns
/// off the webhook patchers. Pure.
fn istiod_env() -> Vec<(&'static str, &'static str)> {
    vec![
        ("POD_NAME", ISTIOD_POD),
        ("POD_NAMESPACE", ISTIO_NAMESPACE),
        ("SERVICE_ACCOUNT", "istiod"),
        ("REVISION", "default"),
        ("CLUSTER_ID", "Kubernetes"),
        ("PILOT_CERT_PROVIDER", "istiod"),
        // No MutatingWebhookConfiguration / ValidatingWebhookConfiguration
        // exists to patch.
        ("INJECTION_WEBHOOK_CONFIG_NAME", ""),
        ("VALIDATION_WEBHOOK_CONFIG_NAME", ""),
    ]
}

/// Creates `namespace` unless it exists.
fn ensure_namespace(plane: &ControlPlane, namespace: &str) -> Result<()> {
    let yaml = format!("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {namespace}\n");
    plane
        .kubectl_stdin_ok(&["apply", "-f", "-"], &yaml)
        .with_context(|| format!("creating namespace {namespace}"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_port_is_on_loopback_and_logs_are_quiet() {
        let ports = Ports::free().unwrap_or_else(|e| panic!("{e:#}"));
        let args = discovery_args(Path::new("/k/config"), &ports, DEFAULT_LOG_LEVEL);
        assert_eq!(args[0], "discovery");
        for flag in [
            "--grpcAddr",
            "--httpAddr",
            "--monitoringAddr",
            "--secureGRPCAddr",
            "--httpsAddr",
        ] {
            let arg = args
                .iter()
                .find(|a| a.starts_with(&format!("{flag}=")))
                .unwrap_or_else(|| panic!("{flag} missing from {args:?}"));
            assert!(arg.contains("=127.0.0.1:"), "{arg}");
        }
        assert!(args.contains(&"--kubeconfig=/k/config".to_string()));
        assert!(args.contains(&"--log_output_level=all:warn".to_string()));
    }
}
