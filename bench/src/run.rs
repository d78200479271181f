//! One measured run: a control plane on the shared apiserver, N simulated
//! sidecars, and the scenario's three changes, each timed from the write
//! to every client's ACK of a state holding it.
//!
//! ```text
//!  start control plane ─ ready ─ settle ─ RSS (synced, no proxies)
//!  N clients connect ─ all synced ─ quiet ─ CPU, bytes of the full push; RSS
//!  (a) VirtualService svc-0 re-weighted       ┐ mark ─ write ─ all ACKed ─ quiet:
//!  (b) a tenth of the pods replaced           │ latencies, CPU-seconds and
//!  (c) a new Service (pods, DR, VS)           ┘ bytes of that push
//! ```

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use kube::Client;
use weft_e2e::ControlPlane;
use weft_loadgen::fleet::{Fleet, Protocol};
use weft_loadgen::node::NodeSpec;

use crate::apiserver;
use crate::probes::{endpoints_changed, sends_weight};
use crate::procfs;
use crate::systems::System;
use crate::world::{self, EndpointChange, PodId, World, Writes};

/// How long after "ready" a control plane is left alone before its memory
/// is read.
const SETTLE: Duration = Duration::from_secs(3);
/// A push is over when no client received anything for this long.
const QUIET: Duration = Duration::from_secs(1);
/// The longest a push may keep going after every client converged.
const QUIET_LIMIT: Duration = Duration::from_secs(60);

/// The scenario's changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Change {
    /// Every client connecting and receiving everything.
    FullPush,
    /// (a) one VirtualService edited.
    Route,
    /// (b) endpoint churn of a tenth of the pods.
    Churn,
    /// (c) a new Service added.
    NewService,
}

impl Change {
    pub const MEASURED: [Change; 4] = [
        Change::FullPush,
        Change::Route,
        Change::Churn,
        Change::NewService,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Self::FullPush => "full push (N proxies connect)",
            Self::Route => "(a) one VirtualService edited",
            Self::Churn => "(b) 10% of pods replaced",
            Self::NewService => "(c) a new Service",
        }
    }

    pub fn key(self) -> &'static str {
        match self {
            Self::FullPush => "full",
            Self::Route => "a",
            Self::Churn => "b",
            Self::NewService => "c",
        }
    }
}

/// What one push cost and how long it took to reach every client.
#[derive(Debug, Clone, Default)]
pub struct Push {
    /// Per client: from the change to its ACK of a state holding it.
    pub latencies: Vec<Duration>,
    /// The control plane's CPU time from the change until the push ended.
    pub cpu: Duration,
    /// Bytes of xDS responses the clients received (protobuf size).
    pub bytes: u64,
    pub responses: u64,
    /// Why the push did not reach every client, if it did not.
    pub error: Option<String>,
}

/// One run's figures.
#[derive(Debug, Clone)]
pub struct RunResult {
    pub proxies: u32,
    /// After the control plane read the world, before any proxy.
    pub rss_synced: u64,
    /// With every proxy connected and synced.
    pub rss_with_proxies: u64,
    pub pushes: Vec<(Change, Push)>,
    pub nacks: usize,
    /// Streams the clients had to open again (the server ended or refused
    /// one; they back off and reconnect as Envoy does).
    pub reconnects: u32,
}

impl RunResult {
    pub fn push(&self, change: Change) -> Option<&Push> {
        self.pushes
            .iter()
            .find(|(c, _)| *c == change)
            .map(|(_, p)| p)
    }

    /// Memory per connected proxy (may be negative: a GC can free more
    /// than the proxies took).
    pub fn rss_per_proxy(&self) -> i64 {
        let grown = self.rss_with_proxies as i64 - self.rss_synced as i64;
        grown / i64::from(self.proxies.max(1))
    }
}

/// The shared parts of every run.
pub struct Bench<'a> {
    pub plane: &'a ControlPlane,
    pub client: Client,
    pub world: World,
    /// Runs made on this world (names each run's changes uniquely).
    pub round: u32,
    /// How long any one wait may take.
    pub timeout: Duration,
}

impl std::fmt::Debug for Bench<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bench")
            .field("world", &self.world.size)
            .field("round", &self.round)
            .finish_non_exhaustive()
    }
}

impl Bench<'_> {
    /// Runs `system` with `proxies` clients through the scenario.
    pub async fn run(&mut self, system: System, proxies: u32) -> Result<RunResult> {
        self.round += 1;
        let services = self.world.size.services;
        eprintln!("weft-bench: {system}, {services} services, {proxies} proxies");
        let running = system
            .start(self.plane, self.timeout)
            .await
            .with_context(|| format!("starting {system}"))?;
        let pid = running.process().pid();
        tokio::time::sleep(SETTLE).await;
        let rss_synced = procfs::sample(pid)?.rss_bytes;

        let specs = (0..proxies)
            .map(|i| NodeSpec::numbered(i, "default"))
            .collect();
        let before = procfs::sample(pid)?.cpu;
        let start = Instant::now();
        let fleet = Fleet::start(&running.xds_addr().to_string(), specs, Protocol::Mixed);
        fleet
            .wait_synced(self.timeout)
            .await
            .with_context(|| format!("{proxies} proxies syncing with {system}"))?;
        let initial: Vec<Duration> = fleet
            .clients
            .iter()
            .filter_map(|c| c.initial_sync())
            .map(|sync| sync.min(start.elapsed()))
            .collect();
        let traffic = quiet(&fleet).await;
        let full = Push {
            latencies: initial,
            cpu: procfs::sample(pid)?.cpu.saturating_sub(before),
            bytes: traffic.bytes,
            responses: traffic.responses,
            error: None,
        };
        tokio::time::sleep(SETTLE).await;
        let rss_with_proxies = procfs::sample(pid)?.rss_bytes;

        let mut pushes = vec![(Change::FullPush, full)];
        for change in [Change::Route, Change::Churn, Change::NewService] {
            let push = self.change(&fleet, pid, change).await?;
            if let Some(err) = &push.error {
                eprintln!("weft-bench:   {}: {err}", change.label());
            }
            pushes.push((change, push));
        }
        let (nacks, reconnects) = (fleet.nacks().len(), fleet.reconnects());
        drop(fleet);
        drop(running);
        Ok(RunResult {
            proxies,
            rss_synced,
            rss_with_proxies,
            pushes,
            nacks,
            reconnects,
        })
    }

    /// Makes `change`, timed; an apiserver error ends the run, a push that
    /// does not reach every client is recorded in [`Push::error`].
    async fn change(&mut self, fleet: &Fleet, pid: u32, change: Change) -> Result<Push> {
        let name = format!("{}-{}", change.key(), self.round);
        let (prepare, timed, after, predicate) = match change {
            Change::Route => {
                let weight = 10 + self.round % 80;
                let service = world::service_name(0);
                (
                    Writes::default(),
                    Writes {
                        replace: vec![world::virtual_service(&service, weight)],
                        ..Writes::default()
                    },
                    Writes::default(),
                    sends_weight(&world::cluster_name(&service, "v2"), weight),
                )
            }
            Change::Churn => {
                let (writes, changes) = self.world.churn(self.round);
                (
                    Writes {
                        create: writes.create,
                        ..Writes::default()
                    },
                    Writes {
                        replace: writes.replace,
                        ..Writes::default()
                    },
                    Writes {
                        delete: writes.delete,
                        ..Writes::default()
                    },
                    endpoints_changed(changes),
                )
            }
            Change::FullPush => bail!("the full push is measured as the clients connect"),
            Change::NewService => {
                let (pods, objects, expected) = self.new_service();
                (
                    Writes {
                        create: pods,
                        ..Writes::default()
                    },
                    Writes {
                        create: objects,
                        ..Writes::default()
                    },
                    Writes::default(),
                    endpoints_changed(vec![expected]),
                )
            }
        };
        apiserver::write(&self.client, &prepare).await?;
        let traffic_before = fleet.received();
        let cpu_before = procfs::sample(pid)?.cpu;
        fleet.mark(&name, &predicate);
        apiserver::write(&self.client, &timed).await?;
        let error = fleet
            .wait_probe(&name, self.timeout)
            .await
            .err()
            .map(|e| e.to_string());
        let traffic = quiet(fleet).await;
        let push = Push {
            latencies: fleet.latencies(&name),
            cpu: procfs::sample(pid)?.cpu.saturating_sub(cpu_before),
            bytes: traffic.bytes.saturating_sub(traffic_before.bytes),
            responses: traffic.responses.saturating_sub(traffic_before.responses),
            error,
        };
        apiserver::write(&self.client, &after).await?;
        Ok(push)
    }

    /// A service beyond the world's K (one per run): its pods (written
    /// before the clock starts), its Service, EndpointSlice, rule and
    /// route, and the load assignment that must appear.
    fn new_service(
        &self,
    ) -> (
        Vec<serde_json::Value>,
        Vec<serde_json::Value>,
        EndpointChange,
    ) {
        let size = self.world.size;
        let index = size.services + self.round;
        let name = world::service_name(index);
        let pods: Vec<PodId> = (0..size.endpoints)
            .map(|replica| PodId {
                service: index,
                replica,
                generation: 0,
            })
            .collect();
        let expected = EndpointChange {
            cluster: world::cluster_name(&name, ""),
            added: pods.iter().map(|p| p.ip(size).to_string()).collect(),
            removed: Vec::new(),
        };
        (
            pods.iter().map(|p| world::pod(p, size)).collect(),
            vec![
                world::service(&name),
                world::endpoint_slice(&name, &pods, size),
                world::destination_rule(&name),
                world::virtual_service(&name, 10),
            ],
            expected,
        )
    }
}

/// Waits until no client received anything for [`QUIET`] (at most
/// [`QUIET_LIMIT`]) and returns the fleet's traffic then.
async fn quiet(fleet: &Fleet) -> weft_loadgen::traffic::Traffic {
    let deadline = Instant::now() + QUIET_LIMIT;
    let mut last = fleet.received();
    loop {
        tokio::time::sleep(QUIET).await;
        let now = fleet.received();
        if now.responses == last.responses || Instant::now() >= deadline {
            return now;
        }
        last = now;
    }
}
