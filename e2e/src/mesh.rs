//! The `Mesh` fixture: a config directory (a temp dir of Istio YAML), a
//! `weft standalone` serving it, and a real Envoy bootstrapped by `weft
//! bootstrap` with a fresh node id and free ports. Requests go through
//! Envoy's router listener with a chosen `Host`, so they exercise the whole
//! path: YAML -> weft -> xDS -> Envoy -> upstream.
//!
//! For resilience tests: [`Mesh::restart_operator`] replaces weft under the
//! running Envoy on the same xDS address, and a [`TrafficDriver`] sends
//! requests through Envoy in the background, counting every failure.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use tempfile::TempDir;

use crate::client::{Reply, http_get, wait_for};
use crate::procs::{BootstrapOptions, Envoy, OperatorOptions, Weft, exited_error, weft_bootstrap};
use crate::tools::envoy_binary;
use crate::upstream::Upstream;
use crate::yaml::{mk_service, mk_weighted_virtual_service};

/// How long weft may take to log that it listens.
pub const WEFT_READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long Envoy may take to start and receive its first config.
pub const ENVOY_READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a config change may take to reach Envoy's routing.
pub const APPLY_TIMEOUT: Duration = Duration::from_secs(30);

/// Builds a [`Mesh`]: config files, the proxy's namespace, node id, role
/// and labels.
#[derive(Debug, Default)]
pub struct MeshBuilder {
    files: Vec<(String, String)>,
    namespace: Option<String>,
    node_id: Option<String>,
    gateway: bool,
    labels: Vec<(String, String)>,
    delta: bool,
}

/// The file [`MeshBuilder::reviews_all_to_v1`] writes the `reviews`
/// VirtualService to; tests rewrite it to change routing.
pub const REVIEWS_VS_FILE: &str = "reviews-vs.yaml";

impl MeshBuilder {
    /// The mesh many tests start from: `reviews` in `default` served by
    /// `upstreams` (subsets by identity), with every request to subset v1.
    pub fn reviews_all_to_v1(self, upstreams: &[Upstream]) -> Self {
        self.file("reviews.yaml", mk_service("reviews", "default", upstreams))
            .file(
                REVIEWS_VS_FILE,
                mk_weighted_virtual_service("reviews", "default", &[("v1", 100)]),
            )
    }

    /// A file written into the config dir before weft starts.
    pub fn file(mut self, name: &str, yaml: impl Into<String>) -> Self {
        self.files.push((name.to_string(), yaml.into()));
        self
    }

    /// The proxy's namespace (`weft bootstrap --namespace`); weft's default
    /// (`default`) when not set.
    pub fn namespace(mut self, namespace: &str) -> Self {
        self.namespace = Some(namespace.to_string());
        self
    }

    /// The Envoy node id; a fresh unique one when not set.
    pub fn node_id(mut self, node_id: &str) -> Self {
        self.node_id = Some(node_id.to_string());
        self
    }

    /// Makes the Envoy a gateway (`weft bootstrap --role gateway`) with
    /// these labels: it gets the listeners of the Gateways whose selector
    /// they match, and no router ([`Mesh::router_addr`] then answers
    /// nothing).
    pub fn gateway(mut self, labels: &[(&str, &str)]) -> Self {
        self.gateway = true;
        self.labels(labels)
    }

    /// The proxy's workload labels (`weft bootstrap --labels`).
    pub fn labels(mut self, labels: &[(&str, &str)]) -> Self {
        self.labels
            .extend(labels.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        self
    }

    /// Envoy speaks incremental (delta) xDS (`weft bootstrap --delta`).
    pub fn delta(mut self) -> Self {
        self.delta = true;
        self
    }

    /// Starts weft, then Envoy, and waits until Envoy is ready (its admin
    /// `/ready` answers 200, i.e. it has its first listeners and clusters).
    pub async fn start(self) -> Result<Mesh> {
        // Install Envoy (if needed) before anything else runs, so the install
        // time counts against no readiness timeout.
        tokio::task::spawn_blocking(envoy_binary).await??;

        let config_dir = tempfile::Builder::new()
            .prefix("weft-e2e-config-")
            .tempdir()
            .context("creating the config dir")?;
        for (name, yaml) in &self.files {
            write_atomically(config_dir.path(), name, yaml)?;
        }
        let weft = Weft::start(config_dir.path(), WEFT_READY_TIMEOUT).await?;
        self.start_envoy(weft, config_dir).await
    }

    /// Starts Envoy against a weft the caller started (e.g. `weft
    /// operator`, [`Weft::start_operator`]) and waits until it is ready.
    /// The mesh's config dir is then empty and unused: files given with
    /// [`MeshBuilder::file`] are an error.
    pub async fn start_with_weft(self, weft: Weft) -> Result<Mesh> {
        if !self.files.is_empty() {
            bail!("config files are for weft standalone; this weft was started by the caller");
        }
        tokio::task::spawn_blocking(envoy_binary).await??;
        let config_dir = tempfile::Builder::new()
            .prefix("weft-e2e-config-")
            .tempdir()
            .context("creating the config dir")?;
        self.start_envoy(weft, config_dir).await
    }

    async fn start_envoy(self, weft: Weft, config_dir: TempDir) -> Result<Mesh> {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let [router_port, admin_port, _] = free_ports()?;
        let localhost = Ipv4Addr::LOCALHOST.into();
        let node_id = self.node_id.unwrap_or_else(|| {
            format!(
                "weft-e2e-{}-{}",
                std::process::id(),
                NEXT.fetch_add(1, Ordering::SeqCst)
            )
        });

        let options = BootstrapOptions {
            node_id: node_id.clone(),
            xds_addr: weft.xds_addr(),
            outbound_port: router_port,
            admin_port,
            namespace: self.namespace,
            gateway: self.gateway,
            labels: self.labels,
            delta: self.delta,
        };
        let bootstrap = tokio::task::spawn_blocking(move || weft_bootstrap(&options)).await??;
        let envoy = Envoy::start(&bootstrap)?;
        let mesh = Mesh {
            envoy,
            weft,
            node_id,
            router_addr: SocketAddr::new(localhost, router_port),
            admin_addr: SocketAddr::new(localhost, admin_port),
            config_dir,
        };
        mesh.wait_envoy_ready(ENVOY_READY_TIMEOUT).await?;
        Ok(mesh)
    }
}

/// weft + Envoy + config dir. Dropping it kills Envoy, then weft, then
/// removes the config dir.
#[derive(Debug)]
pub struct Mesh {
    // Field order is drop order: Envoy goes first so it does not log
    // reconnect attempts to a weft that is already gone.
    envoy: Envoy,
    weft: Weft,
    node_id: String,
    router_addr: SocketAddr,
    admin_addr: SocketAddr,
    config_dir: TempDir,
}

impl Mesh {
    pub fn builder() -> MeshBuilder {
        MeshBuilder::default()
    }

    /// Starts a mesh whose config dir holds `files` (name, YAML).
    pub async fn start(files: &[(&str, &str)]) -> Result<Self> {
        let mut builder = Self::builder();
        for (name, yaml) in files {
            builder = builder.file(name, *yaml);
        }
        builder.start().await
    }

    pub fn weft(&self) -> &Weft {
        &self.weft
    }

    /// Puts `weft` in place of the mesh's weft and returns the old one
    /// (still running unless the caller stopped it). Envoy is not told:
    /// `weft` must serve xDS on the address Envoy was bootstrapped with.
    pub fn replace_weft(&mut self, weft: Weft) -> Weft {
        std::mem::replace(&mut self.weft, weft)
    }

    /// Restarts `weft operator` under the running Envoy: kills the current
    /// weft (SIGKILL, as a crash), then starts one as `options` say on the
    /// same xDS address (retrying briefly while it is still taken), and
    /// waits until it serves xDS. Returns the old, stopped weft, whose logs
    /// stay readable. Envoy keeps its last config meanwhile and reconnects
    /// on its own.
    pub async fn restart_operator(&mut self, options: &OperatorOptions) -> Result<Weft> {
        let xds_addr = self.weft.xds_addr();
        self.weft.kill()?;
        let options = OperatorOptions {
            xds_addr: Some(xds_addr),
            ..options.clone()
        };
        let weft = Weft::start_operator_rebinding(&options, WEFT_READY_TIMEOUT).await?;
        Ok(self.replace_weft(weft))
    }

    /// Starts sending `GET path` with `Host: host` through Envoy's router
    /// continuously, in a background task, until [`TrafficDriver::stop`].
    pub fn drive_traffic(&self, host: &str, path: &str) -> TrafficDriver {
        TrafficDriver::start(self.router_addr, host, path)
    }

    pub fn envoy(&self) -> &Envoy {
        &self.envoy
    }

    pub fn node_id(&self) -> &str {
        &self.node_id
    }

    /// Envoy's HTTP router listener (the `--outbound-port`).
    pub fn router_addr(&self) -> SocketAddr {
        self.router_addr
    }

    /// Envoy's admin listener.
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin_addr
    }

    pub fn config_dir(&self) -> &Path {
        self.config_dir.path()
    }

    /// Replaces (or creates) `name` in the config dir atomically: written
    /// to a hidden temp file, then renamed over the old one, as editors and
    /// config-sync tools do.
    pub fn write_config(&self, name: &str, yaml: &str) -> Result<()> {
        write_atomically(self.config_dir.path(), name, yaml)
    }

    /// Deletes `name` from the config dir.
    pub fn remove_config(&self, name: &str) -> Result<()> {
        let path = self.config_dir.path().join(name);
        std::fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))
    }

    /// `GET path` through Envoy's router with `Host: host`: (status, body).
    pub async fn get(
        &self,
        host: &str,
        path: &str,
        headers: &[(&str, &str)],
    ) -> Result<(u16, String)> {
        let reply = self.request(host, path, headers).await?;
        Ok((reply.status, reply.body))
    }

    /// Like [`Mesh::get`], with the response headers.
    pub async fn request(&self, host: &str, path: &str, headers: &[(&str, &str)]) -> Result<Reply> {
        if !self.envoy.is_running() {
            return Err(exited_error(&self.envoy));
        }
        http_get(self.router_addr, host, path, headers).await
    }

    /// Sends `n` requests and counts the answers: by body for a 200, as
    /// `status <code>` otherwise.
    pub async fn sample(
        &self,
        host: &str,
        path: &str,
        headers: &[(&str, &str)],
        n: usize,
    ) -> Result<BTreeMap<String, usize>> {
        let mut counts = BTreeMap::new();
        for _ in 0..n {
            let (status, body) = self.get(host, path, headers).await?;
            let key = if status == 200 {
                body
            } else {
                format!("status {status}")
            };
            *counts.entry(key).or_insert(0) += 1;
        }
        Ok(counts)
    }

    /// Polls until `count` consecutive requests all answer 200 with body
    /// `expected` (i.e. routing has converged on it).
    pub async fn wait_for_body(
        &self,
        host: &str,
        path: &str,
        headers: &[(&str, &str)],
        expected: &str,
        timeout: Duration,
    ) -> Result<()> {
        const CONSECUTIVE: usize = 5;
        let last = RefCell::new(String::new());
        let what = format!("GET http://{host}{path} {headers:?} to answer 200 {expected:?}");
        let result = wait_for(&what, timeout, || {
            let last = &last;
            async move {
                for _ in 0..CONSECUTIVE {
                    match self.get(host, path, headers).await {
                        Ok((200, body)) if body == expected => {}
                        Ok((status, body)) => {
                            *last.borrow_mut() = format!("{status} {body:?}");
                            return None;
                        }
                        Err(err) => {
                            *last.borrow_mut() = format!("{err:#}");
                            return None;
                        }
                    }
                }
                Some(())
            }
        })
        .await;
        result.with_context(|| {
            format!(
                "last answer: {}\nweft's output ends with:\n{}\nEnvoy's output ends with:\n{}",
                last.borrow(),
                self.weft.log_tail(30),
                self.envoy.log_tail(20)
            )
        })
    }

    /// Polls Envoy's admin `/ready` until it answers 200.
    pub async fn wait_envoy_ready(&self, timeout: Duration) -> Result<()> {
        wait_ready(&self.envoy, &self.weft, self.admin_addr, timeout).await
    }

    /// GET on Envoy's admin interface (e.g. `/config_dump`, `/clusters`).
    pub async fn admin_get(&self, path: &str) -> Result<Reply> {
        http_get(self.admin_addr, "localhost", path, &[]).await
    }

    /// Starts one more Envoy connected to this mesh's weft: a sidecar
    /// (`gateway: false`, with a router) or a gateway, with `labels`, in
    /// `namespace` (weft's default when `None`). Waits until it is ready.
    pub async fn start_proxy(
        &self,
        gateway: bool,
        labels: &[(&str, &str)],
        namespace: Option<&str>,
    ) -> Result<Proxy> {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let [router_port, admin_port, _] = free_ports()?;
        let localhost: std::net::IpAddr = Ipv4Addr::LOCALHOST.into();
        let options = BootstrapOptions {
            node_id: format!(
                "{}-extra-{}",
                self.node_id,
                NEXT.fetch_add(1, Ordering::SeqCst)
            ),
            xds_addr: self.weft.xds_addr(),
            outbound_port: router_port,
            admin_port,
            namespace: namespace.map(str::to_string),
            delta: false,
            gateway,
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        let bootstrap = tokio::task::spawn_blocking(move || weft_bootstrap(&options)).await??;
        let proxy = Proxy {
            envoy: Envoy::start(&bootstrap)?,
            router_addr: SocketAddr::new(localhost, router_port),
            admin_addr: SocketAddr::new(localhost, admin_port),
        };
        wait_ready(
            &proxy.envoy,
            &self.weft,
            proxy.admin_addr,
            ENVOY_READY_TIMEOUT,
        )
        .await?;
        Ok(proxy)
    }
}

/// An extra Envoy of a [`Mesh`] (see [`Mesh::start_proxy`]); killed on drop.
#[derive(Debug)]
pub struct Proxy {
    envoy: Envoy,
    router_addr: SocketAddr,
    admin_addr: SocketAddr,
}

impl Proxy {
    pub fn envoy(&self) -> &Envoy {
        &self.envoy
    }

    /// The router listener (sidecars only).
    pub fn router_addr(&self) -> SocketAddr {
        self.router_addr
    }

    pub fn admin_addr(&self) -> SocketAddr {
        self.admin_addr
    }

    /// `GET path` through the router with `Host: host`: (status, body).
    pub async fn get(&self, host: &str, path: &str) -> Result<(u16, String)> {
        if !self.envoy.is_running() {
            return Err(exited_error(&self.envoy));
        }
        let reply = http_get(self.router_addr, host, path, &[]).await?;
        Ok((reply.status, reply.body))
    }

    /// GET on the admin interface.
    pub async fn admin_get(&self, path: &str) -> Result<Reply> {
        http_get(self.admin_addr, "localhost", path, &[]).await
    }
}

/// How long the traffic driver waits between two requests (it sends one
/// at a time, so a slow answer slows it down too).
const TRAFFIC_INTERVAL: Duration = Duration::from_millis(20);
/// Failed requests a [`TrafficReport`] keeps verbatim.
const FAILURES_KEPT: usize = 20;

/// What a [`TrafficDriver`] saw so far.
#[derive(Debug, Clone, Default)]
pub struct TrafficReport {
    /// Requests answered 200, by body.
    pub ok: BTreeMap<String, usize>,
    /// Requests answered otherwise or not at all.
    pub failed: usize,
    /// The first failures: when (since the start), and the status and body
    /// or the error.
    pub failures: Vec<String>,
}

impl TrafficReport {
    /// Requests answered 200.
    pub fn succeeded(&self) -> usize {
        self.ok.values().sum()
    }
}

/// Requests sent one after another through Envoy by a background task
/// (see [`Mesh::drive_traffic`]), counted as they answer. Stops on
/// [`TrafficDriver::stop`] or when dropped.
#[derive(Debug)]
pub struct TrafficDriver {
    report: Arc<Mutex<TrafficReport>>,
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl TrafficDriver {
    /// Starts sending `GET path` with `Host: host` to `addr`.
    pub fn start(addr: SocketAddr, host: &str, path: &str) -> Self {
        let report = Arc::new(Mutex::new(TrafficReport::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let (host, path) = (host.to_string(), path.to_string());
        let task = tokio::spawn({
            let (report, stop) = (report.clone(), stop.clone());
            async move {
                let started = Instant::now();
                while !stop.load(Ordering::SeqCst) {
                    let outcome = http_get(addr, &host, &path, &[]).await;
                    record(&report, started.elapsed(), outcome);
                    tokio::time::sleep(TRAFFIC_INTERVAL).await;
                }
            }
        });
        Self { report, stop, task }
    }

    /// What was seen so far.
    pub fn report(&self) -> TrafficReport {
        self.report
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Waits until `more` requests beyond `report` (an earlier
    /// [`TrafficDriver::report`]) have succeeded: traffic is flowing now.
    pub async fn wait_for_successes(
        &self,
        report: &TrafficReport,
        more: usize,
        timeout: Duration,
    ) -> Result<TrafficReport> {
        let target = report.succeeded() + more;
        let what = format!("{more} more requests to succeed through Envoy");
        wait_for(&what, timeout, || async {
            let now = self.report();
            (now.succeeded() >= target).then_some(now)
        })
        .await
        .with_context(|| format!("traffic so far: {:?}", self.report()))
    }

    /// Stops sending (after the request in flight) and returns the report.
    pub async fn stop(mut self) -> Result<TrafficReport> {
        self.stop.store(true, Ordering::SeqCst);
        // Take the task out, so that dropping `self` does not abort it.
        let task = std::mem::replace(&mut self.task, tokio::spawn(async {}));
        task.await.context("the traffic task panicked")?;
        Ok(self.report())
    }
}

/// Counts one request's outcome in `report`.
fn record(report: &Mutex<TrafficReport>, at: Duration, outcome: Result<Reply>) {
    let mut report = report.lock().unwrap_or_else(PoisonError::into_inner);
    let failure = match outcome {
        Ok(reply) if reply.status == 200 => {
            *report.ok.entry(reply.body).or_insert(0) += 1;
            return;
        }
        Ok(reply) => format!("{} {:?}", reply.status, reply.body),
        Err(err) => format!("{err:#}"),
    };
    report.failed += 1;
    if report.failures.len() < FAILURES_KEPT {
        report.failures.push(format!("at {at:.1?}: {failure}"));
    }
}

impl Drop for TrafficDriver {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        self.task.abort();
    }
}

/// Polls `envoy`'s admin `/ready` until it answers 200.
async fn wait_ready(
    envoy: &Envoy,
    weft: &Weft,
    admin_addr: SocketAddr,
    timeout: Duration,
) -> Result<()> {
    let start = std::time::Instant::now();
    loop {
        if !envoy.is_running() {
            return Err(exited_error(envoy));
        }
        let last = match http_get(admin_addr, "localhost", "/ready", &[]).await {
            Ok(reply) if reply.status == 200 => return Ok(()),
            Ok(reply) => format!("{} {}", reply.status, reply.body.trim()),
            Err(err) => format!("{err:#}"),
        };
        if start.elapsed() >= timeout {
            bail!(
                "Envoy was not ready within {timeout:?} (last /ready: {last}); \
                 Envoy's output ends with:\n{}\nweft's output ends with:\n{}",
                envoy.log_tail(40),
                weft.log_tail(40)
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub(crate) fn write_atomically(dir: &Path, name: &str, yaml: &str) -> Result<()> {
    let tmp = dir.join(format!(".{name}.tmp"));
    let path = dir.join(name);
    std::fs::write(&tmp, yaml).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, &path)
        .with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))
}

/// Three distinct ports that were free on 127.0.0.1 a moment ago.
fn free_ports() -> Result<[u16; 3]> {
    let listeners = [
        TcpListener::bind("127.0.0.1:0")?,
        TcpListener::bind("127.0.0.1:0")?,
        TcpListener::bind("127.0.0.1:0")?,
    ];
    let mut ports = [0u16; 3];
    for (port, listener) in ports.iter_mut().zip(&listeners) {
        *port = listener.local_addr()?.port();
    }
    Ok(ports)
}
