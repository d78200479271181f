//! N simulated Envoys against one xDS server: starting them (each on its own
//! task and connection, at most [`CONNECTS_IN_FLIGHT`] connecting at once,
//! all decoding through one shared [`Interner`]),
//! waiting for their initial sync, marking a change with a probe on every
//! client, and collecting latencies, NACKs, ACKs and the [`Traffic`]
//! received. The CLI and the tests drive clients through this.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

use crate::client::{ClientHandle, Nack};
use crate::intern::{InternStats, Interner};
use crate::measure::{Predicate, Probe};
use crate::node::NodeSpec;
use crate::traffic::{Traffic, TrafficByType, merge};

/// How often waits poll the clients.
const POLL: Duration = Duration::from_millis(20);

/// How many clients connect at the same time (the rest wait their turn).
const CONNECTS_IN_FLIGHT: usize = 32;

/// Which protocol each client speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    StateOfTheWorld,
    Delta,
    /// Even-numbered clients SotW, odd ones delta.
    Mixed,
}

impl Protocol {
    fn delta(self, index: u32) -> bool {
        match self {
            Self::StateOfTheWorld => false,
            Self::Delta => true,
            Self::Mixed => index % 2 == 1,
        }
    }
}

/// A wait that ran out.
#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    #[error(
        "{pending} of {total} clients still waiting for {what} after {timeout:?} (first: {example}); \
         check the server's log and that it serves these proxies"
    )]
    Timeout {
        what: String,
        pending: usize,
        total: usize,
        timeout: Duration,
        example: String,
    },
}

/// A client whose stream fails connects again, as Envoy does, after a
/// backoff doubling from this...
const RECONNECT_FIRST: Duration = Duration::from_millis(500);
/// ...up to this (a server that sheds load, as istiod's connection rate
/// limit does, is retried, not given up on).
const RECONNECT_MAX: Duration = Duration::from_secs(8);

/// Running clients; dropping the fleet stops them.
#[derive(Debug)]
pub struct Fleet {
    pub clients: Vec<ClientHandle>,
    tasks: Vec<JoinHandle<()>>,
    interner: Arc<Interner>,
}

impl Fleet {
    /// Starts `specs.len()` clients against `address`.
    pub fn start(address: &str, specs: Vec<NodeSpec>, protocol: Protocol) -> Self {
        let mut clients = Vec::with_capacity(specs.len());
        let mut tasks = Vec::with_capacity(specs.len());
        let interner = Arc::new(Interner::new());
        let gate = Arc::new(Semaphore::new(CONNECTS_IN_FLIGHT));
        for (index, spec) in (0u32..).zip(specs) {
            let client =
                ClientHandle::with_interner(spec, protocol.delta(index), Arc::clone(&interner));
            let (task_client, address) = (client.clone(), address.to_string());
            let gate = Arc::clone(&gate);
            tasks.push(tokio::spawn(async move {
                let mut backoff = RECONNECT_FIRST;
                while let Err(err) = task_client.run_gated(&address, Some(&gate)).await {
                    tracing::info!(proxy = %task_client.spec.node_id(), %err, ?backoff, "stream ended; reconnecting");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(RECONNECT_MAX);
                }
            }));
            clients.push(client);
        }
        Self {
            clients,
            tasks,
            interner,
        }
    }

    /// Streams opened beyond one per client: how often clients reconnected.
    pub fn reconnects(&self) -> u32 {
        self.clients
            .iter()
            .map(|c| c.lock().streams.saturating_sub(1))
            .sum()
    }

    /// Waits until every client completed its initial sync.
    pub async fn wait_synced(&self, timeout: Duration) -> Result<(), FleetError> {
        self.wait_all("the initial sync", timeout, |c| c.initial_sync().is_some())
            .await
    }

    /// Opens a probe `name` with `predicate` on every client, timed from now;
    /// make the change right after.
    pub fn mark(&self, name: &str, predicate: &Predicate) -> Instant {
        let since = Instant::now();
        for client in &self.clients {
            client.add_probe(Probe::new(name, since, predicate.clone()));
        }
        since
    }

    /// [`Fleet::mark`], with the predicate checked only after updates of
    /// `type_url` (the type it reads): at 1,000 clients, checking a route
    /// predicate after every EDS ACK is most of the client's work.
    pub fn mark_after(&self, name: &str, type_url: &str, predicate: &Predicate) -> Instant {
        let since = Instant::now();
        for client in &self.clients {
            client.add_probe(Probe::new(name, since, predicate.clone()).after_updates_of(type_url));
        }
        since
    }

    /// Waits until every client ACKed a state where probe `name` holds.
    pub async fn wait_probe(&self, name: &str, timeout: Duration) -> Result<(), FleetError> {
        self.wait_all(name, timeout, |c| c.latency(name).is_some())
            .await
    }

    /// The latencies of probe `name` on the clients that saw it.
    pub fn latencies(&self, name: &str) -> Vec<Duration> {
        self.clients
            .iter()
            .filter_map(|c| c.latency(name))
            .collect()
    }

    /// Initial-sync times of the synced clients.
    pub fn initial_syncs(&self) -> Vec<Duration> {
        self.clients
            .iter()
            .filter_map(ClientHandle::initial_sync)
            .collect()
    }

    /// Responses received by the whole fleet so far, all types (subtract
    /// a snapshot taken before a change from one taken after it).
    pub fn received(&self) -> Traffic {
        self.clients.iter().map(ClientHandle::received).sum()
    }

    /// Responses received by the whole fleet so far, per type URL.
    pub fn received_by_type(&self) -> TrafficByType {
        let mut total = TrafficByType::new();
        for client in &self.clients {
            merge(&mut total, &client.lock().received);
        }
        total
    }

    /// ACKs sent by the whole fleet so far.
    pub fn acks(&self) -> u64 {
        self.clients.iter().map(ClientHandle::acks).sum()
    }

    /// The shared interner's counters (decodes vs. hits).
    pub fn intern_stats(&self) -> InternStats {
        self.interner.stats()
    }

    /// Every NACK any client sent, with its node id.
    pub fn nacks(&self) -> Vec<(String, Nack)> {
        self.clients
            .iter()
            .flat_map(|c| c.nacks().into_iter().map(|n| (c.spec.node_id(), n)))
            .collect()
    }

    async fn wait_all(
        &self,
        what: &str,
        timeout: Duration,
        done: impl Fn(&ClientHandle) -> bool,
    ) -> Result<(), FleetError> {
        let deadline = Instant::now() + timeout;
        loop {
            let pending: Vec<&ClientHandle> = self.clients.iter().filter(|c| !done(c)).collect();
            let Some(first) = pending.first() else {
                return Ok(());
            };
            if Instant::now() >= deadline {
                let ended = first.ended().map(|e| format!(", its stream ended: {e}"));
                return Err(FleetError::Timeout {
                    what: what.to_string(),
                    pending: pending.len(),
                    total: self.clients.len(),
                    timeout,
                    example: format!("{}{}", first.spec.node_id(), ended.unwrap_or_default()),
                });
            }
            tokio::time::sleep(POLL).await;
        }
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}
