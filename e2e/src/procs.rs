//! Child processes (the `weft` binary, Envoy) with their output captured
//! line by line into a shared buffer that tests can search and wait on.
//! Every process is killed and reaped when its handle is dropped, also when
//! a test panics, so a failing test leaves nothing running; on a panic the
//! last lines of its output are printed to help the reader.

use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use tempfile::TempDir;

use crate::client::{Reply, http_get};
use crate::tools::{envoy_binary, weft_binary};

/// Lines printed on failure, from the end of a process's output.
const TAIL_LINES: usize = 60;

/// A port that was free on 127.0.0.1 a moment ago (bind to port 0, read it,
/// release it).
pub fn free_port() -> Result<u16> {
    free_port_on(std::net::Ipv4Addr::LOCALHOST.into())
}

/// A port that was free on `ip` a moment ago, e.g. for a gateway server's
/// `bind` address.
///
/// The ports come from below Linux's ephemeral range (32768-60999): a port
/// the kernel picked for `:0` is ephemeral, and an outgoing connection of
/// another test could take it before the process it is meant for binds it.
/// Each test process starts at its own offset; within one, a counter moves
/// on, so parallel tests are not handed the same port.
pub fn free_port_on(ip: std::net::IpAddr) -> Result<u16> {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let span = u32::from(TEST_PORTS.end - TEST_PORTS.start);
    let offset = std::process::id().wrapping_mul(7919) % span;
    for _ in 0..span {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let Ok(port) = u16::try_from((offset + n) % span) else {
            continue;
        };
        let port = TEST_PORTS.start + port;
        if TcpListener::bind(SocketAddr::new(ip, port)).is_ok() {
            return Ok(port);
        }
    }
    anyhow::bail!("no free port on {ip} in {TEST_PORTS:?}")
}

/// Where [`free_port_on`] looks.
const TEST_PORTS: std::ops::Range<u16> = 15000..32000;

/// Output lines of a process, ANSI colours removed, shared with the threads
/// that read its pipes.
#[derive(Debug, Clone, Default)]
pub struct LogBuffer {
    lines: Arc<Mutex<Vec<String>>>,
}

impl LogBuffer {
    fn push(&self, line: String) {
        self.lines
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(line);
    }

    /// Number of lines so far: pass it to `*_since` to look only at what
    /// comes after this moment.
    pub fn mark(&self) -> usize {
        self.lines
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// All lines so far.
    pub fn lines(&self) -> Vec<String> {
        self.lines
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The first line at index >= `since` for which `pred` holds.
    pub fn find_since(&self, since: usize, pred: impl Fn(&str) -> bool) -> Option<String> {
        let lines = self.lines.lock().unwrap_or_else(PoisonError::into_inner);
        lines.iter().skip(since).find(|l| pred(l)).cloned()
    }

    /// The last `n` lines, joined, for error messages.
    pub fn tail(&self, n: usize) -> String {
        let lines = self.lines.lock().unwrap_or_else(PoisonError::into_inner);
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    fn capture(&self, pipe: impl Read + Send + 'static) {
        let buffer = self.clone();
        thread::spawn(move || {
            let mut reader = BufReader::new(pipe);
            let mut raw = Vec::new();
            loop {
                raw.clear();
                match reader.read_until(b'\n', &mut raw) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        let line = String::from_utf8_lossy(&raw);
                        buffer.push(strip_ansi(line.trim_end_matches(['\n', '\r'])));
                    }
                }
            }
        });
    }
}

/// Removes ANSI escape sequences (`ESC [ ... letter`), so that searches for
/// `field=value` work whether or not the program coloured its logs.
pub fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            if chars.next() == Some('[') {
                for c in chars.by_ref() {
                    if c.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// A spawned process with captured stdout and stderr; killed on drop.
#[derive(Debug)]
pub struct Process {
    name: String,
    child: Mutex<Child>,
    logs: LogBuffer,
}

impl Process {
    /// Spawns `command` with stdin closed and stdout/stderr captured.
    pub fn spawn(name: &str, mut command: Command) -> Result<Self> {
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command
            .spawn()
            .with_context(|| format!("spawning {name}: {command:?}"))?;
        let logs = LogBuffer::default();
        if let Some(out) = child.stdout.take() {
            logs.capture(out);
        }
        if let Some(err) = child.stderr.take() {
            logs.capture(err);
        }
        Ok(Self {
            name: name.to_string(),
            child: Mutex::new(child),
            logs,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn pid(&self) -> u32 {
        self.child
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .id()
    }

    /// `None` while running, else how it ended.
    pub fn exit_status(&self) -> Option<std::process::ExitStatus> {
        self.child
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .try_wait()
            .ok()
            .flatten()
    }

    pub fn is_running(&self) -> bool {
        self.exit_status().is_none()
    }

    /// Kills the process (SIGKILL: no chance to clean up, as a crash or an
    /// OOM kill) and reaps it. Its logs stay readable.
    pub fn kill(&self) -> Result<()> {
        let mut child = self.child.lock().unwrap_or_else(PoisonError::into_inner);
        if child.try_wait()?.is_none() {
            child
                .kill()
                .with_context(|| format!("killing {}", self.name))?;
        }
        child
            .wait()
            .with_context(|| format!("reaping {}", self.name))?;
        Ok(())
    }

    pub fn log_buffer(&self) -> &LogBuffer {
        &self.logs
    }

    /// All output lines so far.
    pub fn logs(&self) -> Vec<String> {
        self.logs.lines()
    }

    /// See [`LogBuffer::mark`].
    pub fn log_mark(&self) -> usize {
        self.logs.mark()
    }

    /// The last `n` output lines, joined.
    pub fn log_tail(&self, n: usize) -> String {
        self.logs.tail(n)
    }

    /// Waits for an output line containing `needle`; returns it.
    pub async fn wait_for_log(&self, needle: &str, timeout: Duration) -> Result<String> {
        self.wait_for_log_since(0, needle, timeout).await
    }

    /// Waits for a line after `mark` containing `needle`; returns it.
    pub async fn wait_for_log_since(
        &self,
        mark: usize,
        needle: &str,
        timeout: Duration,
    ) -> Result<String> {
        self.wait_for_line_since(
            mark,
            &format!("a line containing {needle:?}"),
            timeout,
            |l| l.contains(needle),
        )
        .await
    }

    /// Waits for a line after `mark` for which `pred` holds; returns it.
    /// Fails early, with the output's tail, if the process exits.
    pub async fn wait_for_line_since(
        &self,
        mark: usize,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&str) -> bool,
    ) -> Result<String> {
        let start = Instant::now();
        loop {
            if let Some(line) = self.logs.find_since(mark, &pred) {
                return Ok(line);
            }
            if let Some(status) = self.exit_status() {
                // Give the reader threads a moment to drain the pipes.
                tokio::time::sleep(Duration::from_millis(100)).await;
                if let Some(line) = self.logs.find_since(mark, &pred) {
                    return Ok(line);
                }
                bail!(
                    "{} exited ({status}) before logging {what}; its output ends with:\n{}",
                    self.name,
                    self.logs.tail(TAIL_LINES)
                );
            }
            if start.elapsed() >= timeout {
                bail!(
                    "{} did not log {what} within {timeout:?}; its output ends with:\n{}",
                    self.name,
                    self.logs.tail(TAIL_LINES)
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let child = self.child.get_mut().unwrap_or_else(PoisonError::into_inner);
        let _ = child.kill();
        let _ = child.wait();
        if thread::panicking() || std::env::var_os("WEFT_E2E_SHOW_LOGS").is_some() {
            eprintln!(
                "----- last output of {} (pid {}) -----\n{}\n----- end of {} -----",
                self.name,
                child.id(),
                self.logs.tail(TAIL_LINES),
                self.name
            );
        }
    }
}

const LOOPBACK: std::net::IpAddr = std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

/// The `weft` binary running `standalone` or `operator`.
#[derive(Debug)]
pub struct Weft {
    process: Process,
    xds_addr: SocketAddr,
    monitoring_addr: SocketAddr,
    ca_addr: Option<SocketAddr>,
}

impl Weft {
    /// The log line weft prints once it serves xDS.
    pub const READY_LINE: &str = "xDS server listening on";

    /// Starts `weft standalone --config-dir DIR` with its xDS and
    /// monitoring servers on ports the kernel picks (so parallel tests never
    /// race for a port), `RUST_LOG` from `WEFT_E2E_RUST_LOG` (default
    /// `info`) and no colours, and waits until it serves xDS; the addresses
    /// are read from its log.
    pub async fn start(config_dir: &Path, timeout: Duration) -> Result<Self> {
        Self::start_standalone_with(config_dir, &[], timeout).await
    }

    /// [`Weft::start`] with further arguments of `weft standalone` (e.g.
    /// `--token-file` and `--ca-dir`, which turn its CA on).
    pub async fn start_standalone_with(
        config_dir: &Path,
        args: &[&std::ffi::OsStr],
        timeout: Duration,
    ) -> Result<Self> {
        Self::start_standalone_on(config_dir, args, LOOPBACK, timeout).await
    }

    /// [`Weft::start_standalone_with`] with its xDS server and certificate
    /// service on `ip` (e.g. `0.0.0.0`, for proxies in network namespaces;
    /// the addresses it reports are then `0.0.0.0:PORT`).
    pub async fn start_standalone_on(
        config_dir: &Path,
        args: &[&std::ffi::OsStr],
        ip: std::net::IpAddr,
        timeout: Duration,
    ) -> Result<Self> {
        let mut command = Command::new(weft_binary()?);
        command
            .arg("standalone")
            .arg("--config-dir")
            .arg(config_dir)
            .args(args);
        Self::spawn(command, None, ip, timeout).await
    }

    /// Starts `weft operator --kubeconfig FILE` as [`Weft::start`] starts
    /// standalone, and waits until it serves xDS (after its watches listed
    /// every kind once).
    pub async fn start_operator(kubeconfig: &Path, timeout: Duration) -> Result<Self> {
        Self::start_operator_with(&OperatorOptions::new(kubeconfig), timeout).await
    }

    /// Starts `weft operator` as `options` say, as [`Weft::start_operator`].
    pub async fn start_operator_with(options: &OperatorOptions, timeout: Duration) -> Result<Self> {
        let mut command = Command::new(weft_binary()?);
        command
            .arg("operator")
            .arg("--kubeconfig")
            .arg(&options.kubeconfig)
            .args(&options.args);
        Self::spawn(command, options.xds_addr, LOOPBACK, timeout).await
    }

    /// [`Weft::start_operator_with`], retrying for up to
    /// [`REBIND_TIMEOUT`] while its fixed `xds_addr` is still taken (a
    /// weft that was just killed on it, or its lingering sockets).
    pub async fn start_operator_rebinding(
        options: &OperatorOptions,
        timeout: Duration,
    ) -> Result<Self> {
        let start = Instant::now();
        loop {
            match Self::start_operator_with(options, timeout).await {
                Err(err)
                    if format!("{err:#}").contains(ADDRESS_IN_USE)
                        && start.elapsed() < REBIND_TIMEOUT =>
                {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                result => return result,
            }
        }
    }

    async fn spawn(
        mut command: Command,
        xds_addr: Option<SocketAddr>,
        ip: std::net::IpAddr,
        timeout: Duration,
    ) -> Result<Self> {
        let xds_addr = xds_addr.unwrap_or(SocketAddr::new(ip, 0)).to_string();
        // Loopback unless the caller chose (the debug endpoints' access
        // rule is tested from other addresses).
        if !command.get_args().any(|a| a == "--monitoring-address") {
            command.args(["--monitoring-address", "127.0.0.1:0"]);
        }
        command
            .args(["--xds-address", &xds_addr])
            .args(["--ca-address", &SocketAddr::new(ip, 0).to_string()])
            .env(
                "RUST_LOG",
                std::env::var("WEFT_E2E_RUST_LOG").unwrap_or_else(|_| "info".to_string()),
            )
            .env("NO_COLOR", "1");
        let process = Process::spawn("weft", command)?;
        let monitoring_addr =
            listening_address(&process.wait_for_log(MONITORING_LINE, timeout).await?)?;
        let xds_addr = listening_address(&process.wait_for_log(Self::READY_LINE, timeout).await?)?;
        // The certificate service, when served, is up before xDS.
        let ca_addr = process
            .logs()
            .iter()
            .find(|line| line.contains(CA_LINE))
            .map(|line| listening_address(line))
            .transpose()?;
        Ok(Self {
            process,
            xds_addr,
            monitoring_addr,
            ca_addr,
        })
    }

    pub fn xds_addr(&self) -> SocketAddr {
        self.xds_addr
    }

    /// The certificate service (gRPC over TLS), when weft serves it.
    pub fn ca_addr(&self) -> Option<SocketAddr> {
        self.ca_addr
    }

    /// The monitoring server (`/metrics`, `/healthz`, `/readyz`).
    pub fn monitoring_addr(&self) -> SocketAddr {
        self.monitoring_addr
    }

    /// `GET path` on the monitoring server.
    pub async fn monitoring_get(&self, path: &str) -> Result<Reply> {
        http_get(self.monitoring_addr, "localhost", path, &[]).await
    }

    pub fn process(&self) -> &Process {
        &self.process
    }
}

/// How to run `weft operator`.
#[derive(Debug, Clone)]
pub struct OperatorOptions {
    /// `--kubeconfig`: whose identity the operator acts with.
    pub kubeconfig: PathBuf,
    /// `--xds-address`; `None` lets the kernel pick a port.
    pub xds_addr: Option<SocketAddr>,
    /// Further arguments of `weft operator`.
    pub args: Vec<String>,
}

impl OperatorOptions {
    pub fn new(kubeconfig: &Path) -> Self {
        Self {
            kubeconfig: kubeconfig.to_path_buf(),
            xds_addr: None,
            args: Vec::new(),
        }
    }

    /// Adds arguments of `weft operator`.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }
}

impl OperatorOptions {
    /// Serves the admission webhooks on a port the kernel picks, with the
    /// certificate and key files given (e.g. a `TestPki` leaf).
    pub fn webhook_tls(self, cert: &Path, key: &Path) -> Self {
        self.args([
            "--webhook-address".to_string(),
            "127.0.0.1:0".to_string(),
            "--webhook-tls-cert".to_string(),
            cert.display().to_string(),
            "--webhook-tls-key".to_string(),
            key.display().to_string(),
        ])
    }
}

/// How long [`Weft::start_operator_rebinding`] retries a taken address.
pub const REBIND_TIMEOUT: Duration = Duration::from_secs(10);

/// What weft's error says when its address is taken (the OS error text).
const ADDRESS_IN_USE: &str = "Address already in use";

/// The log line of the certificate service's address.
const CA_LINE: &str = "certificate service listening on";

/// The log line weft prints once its monitoring server is up.
const MONITORING_LINE: &str = "monitoring server";

/// A finished command's stdout and stderr, joined (for assertions and
/// their messages).
pub fn output_text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The address after `listening on ` in one of weft's log lines.
pub fn listening_address(line: &str) -> Result<SocketAddr> {
    line.split("listening on ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|addr| addr.parse().ok())
        .with_context(|| format!("no address in weft's line {line:?}"))
}

impl std::ops::Deref for Weft {
    type Target = Process;
    fn deref(&self) -> &Process {
        &self.process
    }
}

/// Options of `weft bootstrap`.
#[derive(Debug, Clone)]
pub struct BootstrapOptions {
    pub node_id: String,
    pub xds_addr: SocketAddr,
    /// The sidecar's HTTP router port (`--outbound-port`); not passed for a
    /// gateway, which has no router.
    pub outbound_port: u16,
    pub admin_port: u16,
    pub namespace: Option<String>,
    /// `--role gateway` instead of a sidecar.
    pub gateway: bool,
    /// `--labels key=value,...`: what Gateway `selector` and Sidecar
    /// `workloadSelector` match.
    pub labels: Vec<(String, String)>,
    /// `--delta`: incremental xDS.
    pub delta: bool,
}

/// Runs `weft bootstrap ...` and returns the Envoy bootstrap YAML it prints.
pub fn weft_bootstrap(options: &BootstrapOptions) -> Result<String> {
    let weft = weft_binary()?;
    let mut command = Command::new(&weft);
    command
        .arg("bootstrap")
        .args(["--node-id", &options.node_id])
        .args(["--xds-address", &options.xds_addr.to_string()])
        .args(["--admin-port", &options.admin_port.to_string()])
        // Many Envoys run side by side: none binds Istio's 0.0.0.0:15090
        // or 15021.
        .args(["--prometheus-port", "0", "--health-port", "0"]);
    if options.gateway {
        command.args(["--role", "gateway"]);
    } else {
        command.args(["--outbound-port", &options.outbound_port.to_string()]);
    }
    if !options.labels.is_empty() {
        let labels: Vec<String> = options
            .labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        command.args(["--labels", &labels.join(",")]);
    }
    if options.delta {
        command.arg("--delta");
    }
    if let Some(ns) = &options.namespace {
        command.args(["--namespace", ns]);
    }
    let out = command
        .output()
        .with_context(|| format!("running {command:?}"))?;
    if !out.status.success() {
        bail!(
            "{command:?} failed ({}):\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let yaml = String::from_utf8(out.stdout).context("weft bootstrap printed non-UTF-8")?;
    if yaml.trim().is_empty() {
        bail!("{command:?} printed nothing");
    }
    Ok(yaml)
}

/// A real Envoy, started from a bootstrap file in its own temp directory.
#[derive(Debug)]
pub struct Envoy {
    process: Process,
    dir: TempDir,
}

impl Envoy {
    /// Writes `bootstrap_yaml` to a temp dir and runs `envoy -c FILE
    /// --disable-hot-restart --concurrency 1 --log-level warn` (installing
    /// Envoy first if needed). Does not wait for it to be ready.
    pub fn start(bootstrap_yaml: &str) -> Result<Self> {
        let envoy = envoy_binary()?;
        let dir = tempfile::Builder::new()
            .prefix("weft-e2e-envoy-")
            .tempdir()
            .context("creating Envoy's temp dir")?;
        let config = dir.path().join("bootstrap.yaml");
        std::fs::write(&config, bootstrap_yaml)
            .with_context(|| format!("writing {}", config.display()))?;
        let mut command = Command::new(envoy);
        command
            .arg("-c")
            .arg(&config)
            .args(["--disable-hot-restart", "--concurrency", "1"])
            .args(["--log-level", "warn"])
            .current_dir(dir.path());
        Ok(Self {
            process: Process::spawn("envoy", command)?,
            dir,
        })
    }

    pub fn bootstrap_path(&self) -> PathBuf {
        self.dir.path().join("bootstrap.yaml")
    }

    pub fn process(&self) -> &Process {
        &self.process
    }
}

impl std::ops::Deref for Envoy {
    type Target = Process;
    fn deref(&self) -> &Process {
        &self.process
    }
}

/// An error for "`process` is not running", with its output's tail.
pub fn exited_error(process: &Process) -> anyhow::Error {
    anyhow!(
        "{} is not running ({:?}); its output ends with:\n{}",
        process.name(),
        process.exit_status(),
        process.log_tail(TAIL_LINES)
    )
}
