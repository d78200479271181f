//! N simulated Envoys against one xDS server: starting them (each on its own
//! task and connection), waiting for their initial sync, marking a change
//! with a probe on every client, and collecting latencies and NACKs. The
//! CLI and the tests drive clients through this.

use std::time::{Duration, Instant};

use tokio::task::JoinHandle;

use crate::client::{ClientHandle, Nack};
use crate::measure::{Predicate, Probe};
use crate::node::NodeSpec;

/// How often waits poll the clients.
const POLL: Duration = Duration::from_millis(20);

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

/// Running clients; dropping the fleet stops them.
#[derive(Debug)]
pub struct Fleet {
    pub clients: Vec<ClientHandle>,
    tasks: Vec<JoinHandle<()>>,
}

impl Fleet {
    /// Starts `specs.len()` clients against `address`.
    pub fn start(address: &str, specs: Vec<NodeSpec>, protocol: Protocol) -> Self {
        let mut clients = Vec::with_capacity(specs.len());
        let mut tasks = Vec::with_capacity(specs.len());
        for (index, spec) in (0u32..).zip(specs) {
            let client = ClientHandle::new(spec, protocol.delta(index));
            let (task_client, address) = (client.clone(), address.to_string());
            tasks.push(tokio::spawn(async move {
                if let Err(err) = task_client.run(&address).await {
                    tracing::warn!(proxy = %task_client.spec.node_id(), %err, "client ended");
                }
            }));
            clients.push(client);
        }
        Self { clients, tasks }
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
