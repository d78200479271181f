//! Envoy supervision: write its bootstrap, start it, restart it (with
//! backoff) when it exits on its own, and on shutdown drain its listeners
//! through the admin API, send it SIGTERM and wait for it.

use std::path::PathBuf;
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal, kill_process};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};
use tracing::{info, warn};

use crate::schedule::Backoff;

/// How to run Envoy.
#[derive(Clone, Debug)]
pub struct EnvoyConfig {
    pub binary: PathBuf,
    /// Where the bootstrap is written (JSON, which Envoy reads as YAML).
    pub bootstrap_path: PathBuf,
    pub bootstrap: serde_json::Value,
    /// Envoy's admin port on 127.0.0.1 (for draining).
    pub admin_port: u16,
    /// How long listeners drain before Envoy gets SIGTERM.
    pub drain_duration: Duration,
    /// Further arguments for Envoy.
    pub extra_args: Vec<String>,
}

/// Why Envoy cannot be run.
#[derive(Debug, thiserror::Error)]
pub enum EnvoyError {
    #[error("cannot write Envoy's bootstrap to {path:?}: {source}")]
    Bootstrap {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot start Envoy {binary:?} (is it installed? pass --envoy-binary): {source}")]
    Spawn {
        binary: PathBuf,
        source: std::io::Error,
    },
}

impl EnvoyError {
    pub fn kind(&self) -> &'static str {
        match self {
            EnvoyError::Bootstrap { .. } => "bootstrap",
            EnvoyError::Spawn { .. } => "spawn",
        }
    }
}

/// A run this long resets the restart backoff.
const HEALTHY_RUN: Duration = Duration::from_secs(30);
/// How long Envoy has to exit after SIGTERM before it is killed.
const EXIT_GRACE: Duration = Duration::from_secs(10);

/// Writes the bootstrap and runs Envoy until `shutdown` resolves, then
/// drains and stops it. Fails only if the bootstrap cannot be written or
/// Envoy cannot be started at all (the first time).
pub async fn supervise(
    config: EnvoyConfig,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), EnvoyError> {
    let path = &config.bootstrap_path;
    let bootstrap_error = |source| EnvoyError::Bootstrap {
        path: path.clone(),
        source,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        tokio::fs::create_dir_all(dir)
            .await
            .map_err(bootstrap_error)?;
    }
    let text = serde_json::to_string_pretty(&config.bootstrap)
        .map_err(|err| bootstrap_error(std::io::Error::other(err)))?;
    tokio::fs::write(path, text)
        .await
        .map_err(bootstrap_error)?;

    tokio::pin!(shutdown);
    let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(30));
    let mut child = spawn(&config)?;
    loop {
        let started = Instant::now();
        let exit = tokio::select! {
            exit = child.wait() => exit,
            () = &mut shutdown => {
                stop(&mut child, &config).await;
                return Ok(());
            }
        };
        if started.elapsed() >= HEALTHY_RUN {
            backoff.reset();
        }
        warn!(status = %describe(exit), "Envoy exited on its own");
        loop {
            let delay = backoff.next_delay(fastrand::f64());
            info!(restart_in_ms = delay.as_millis() as u64, "restarting Envoy");
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                () = &mut shutdown => return Ok(()),
            }
            match spawn(&config) {
                Ok(new) => {
                    child = new;
                    break;
                }
                Err(err) => warn!(error = %err, "cannot restart Envoy"),
            }
        }
    }
}

fn spawn(config: &EnvoyConfig) -> Result<Child, EnvoyError> {
    let drain = config.drain_duration.as_secs().max(1).to_string();
    let child = Command::new(&config.binary)
        .arg("-c")
        .arg(&config.bootstrap_path)
        .args(["--disable-hot-restart", "--drain-time-s", &drain])
        .args(&config.extra_args)
        .kill_on_drop(true)
        .spawn()
        .map_err(|source| EnvoyError::Spawn {
            binary: config.binary.clone(),
            source,
        })?;
    info!(pid = child.id(), bootstrap = %config.bootstrap_path.display(), "Envoy started");
    Ok(child)
}

/// Drain (admin `POST /drain_listeners?graceful`), wait the drain
/// duration, SIGTERM, wait, kill.
async fn stop(child: &mut Child, config: &EnvoyConfig) {
    match drain_listeners(config.admin_port).await {
        Ok(()) => {
            info!(
                drain_ms = config.drain_duration.as_millis() as u64,
                "Envoy draining"
            );
            tokio::select! {
                () = tokio::time::sleep(config.drain_duration) => {}
                exit = child.wait() => {
                    info!(status = %describe(exit), "Envoy exited while draining");
                    return;
                }
            }
        }
        Err(err) => warn!(error = %err, "cannot ask Envoy to drain; stopping it now"),
    }
    if let Some(pid) = child.id().and_then(|id| Pid::from_raw(id as i32))
        && let Err(err) = kill_process(pid, Signal::TERM)
    {
        warn!(error = %err, "cannot send Envoy SIGTERM");
    }
    match tokio::time::timeout(EXIT_GRACE, child.wait()).await {
        Ok(exit) => info!(status = %describe(exit), "Envoy stopped"),
        Err(_) => {
            warn!("Envoy ignored SIGTERM; killing it");
            let _ = child.kill().await;
        }
    }
}

async fn drain_listeners(admin_port: u16) -> std::io::Result<()> {
    let mut stream = TcpStream::connect(("127.0.0.1", admin_port)).await?;
    stream
        .write_all(
            b"POST /drain_listeners?graceful HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        )
        .await?;
    let mut response = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut response))
        .await
        .map_err(|_| std::io::Error::other("no answer from Envoy's admin in 5s"))??;
    if response.starts_with(b"HTTP/1.1 200") {
        Ok(())
    } else {
        let head = String::from_utf8_lossy(&response[..response.len().min(64)]).into_owned();
        Err(std::io::Error::other(format!("admin answered {head:?}")))
    }
}

fn describe(exit: std::io::Result<ExitStatus>) -> String {
    match exit {
        Ok(status) => status.to_string(),
        Err(err) => format!("unknown ({err})"),
    }
}
