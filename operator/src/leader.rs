//! Leader election over a `coordination.k8s.io/v1` Lease, with
//! [`kube_lease_manager`].
//!
//! Every `weft operator` replica watches the cluster and serves xDS; only
//! the one holding the Lease writes status (the status writer holds its
//! updates while [`Leadership::subscribe`] says `false`). A task of its own
//! ([`spawn`]) keeps trying to take or renew the Lease and publishes the
//! state on a `watch` channel:
//!
//! ```text
//! LeaseManager::changed() ─ Ok(true)  ─▶ "became the leader (lease NS/NAME)", weft_leader 1
//!                         ─ Ok(false) ─▶ "lost the leadership",               weft_leader 0
//!                         ─ Err(e)    ─▶ warn, step down (cannot prove the Lease is ours),
//!                                        back off, rebuild the manager and try again
//! Leadership::release() (on SIGTERM) ─▶ the Lease is released if held, so
//!                                        another replica takes over at once
//! ```
//!
//! A Lease API error is never fatal: the replica keeps serving xDS.
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `weft_leader` | gauge: 1 while this replica holds the Lease, else 0 | none |

use std::time::Duration;

use kube::Client;
use kube_lease_manager::{DurationSeconds, LeaseManager, LeaseManagerBuilder};
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use tracing::{info, warn};

/// The shortest `--lease-duration`: the Lease is renewed one grace period
/// (a third of it, at least a second) before it expires.
pub const MIN_LEASE_DURATION: Duration = Duration::from_secs(2);

/// The longest wait between two tries after a Lease API error.
pub const MAX_BACKOFF: Duration = Duration::from_secs(8);

/// How long a release of the Lease at shutdown may take.
pub const RELEASE_TIMEOUT: Duration = Duration::from_secs(3);

/// Which Lease to hold, as whom, for how long.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaseConfig {
    pub namespace: String,
    pub name: String,
    pub identity: String,
    /// How long the Lease holds without renewal (whole seconds).
    pub duration: DurationSeconds,
    /// How long before expiry the holder renews it (whole seconds).
    pub grace: DurationSeconds,
}

/// The leader election's errors.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "--lease-duration {given:?} is too short: use at least {}s (the Lease is renewed a third of it before it expires)",
        MIN_LEASE_DURATION.as_secs()
    )]
    DurationTooShort { given: Duration },
    #[error("--identity is empty: pass a name unique among the replicas (e.g. the Pod's name)")]
    EmptyIdentity,
}

impl Error {
    pub fn kind(&self) -> &'static str {
        match self {
            Error::DurationTooShort { .. } => "duration_too_short",
            Error::EmptyIdentity => "empty_identity",
        }
    }
}

impl LeaseConfig {
    /// [`LeaseConfig::new`]; without an `identity`, this process's
    /// [`default_identity`].
    pub fn for_this_process(
        namespace: &str,
        name: &str,
        identity: Option<&str>,
        duration: Duration,
    ) -> Result<Self, Error> {
        let identity = match identity {
            Some(identity) => identity.to_string(),
            None => default_identity(hostname().as_deref(), std::process::id()),
        };
        Self::new(namespace, name, &identity, duration)
    }

    /// Checks `duration` (whole seconds, at least [`MIN_LEASE_DURATION`])
    /// and derives the grace period: a third of it, at least a second.
    pub fn new(
        namespace: &str,
        name: &str,
        identity: &str,
        duration: Duration,
    ) -> Result<Self, Error> {
        if identity.trim().is_empty() {
            return Err(Error::EmptyIdentity);
        }
        let seconds = duration.as_secs();
        if duration < MIN_LEASE_DURATION {
            return Err(Error::DurationTooShort { given: duration });
        }
        Ok(Self {
            namespace: namespace.to_string(),
            name: name.to_string(),
            identity: identity.to_string(),
            duration: seconds,
            grace: (seconds / 3).max(1),
        })
    }
}

/// `<hostname>-<pid>`, or `weft-<pid>` without a hostname: unique per
/// process on a machine, readable in the Lease.
pub fn default_identity(hostname: Option<&str>, pid: u32) -> String {
    match hostname.map(str::trim).filter(|h| !h.is_empty()) {
        Some(host) => format!("{host}-{pid}"),
        None => format!("weft-{pid}"),
    }
}

/// The kernel's hostname, if it can be read.
fn hostname() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
}

/// The wait before try `attempt` (from 0) after an error: 1s, 2s, 4s, then
/// [`MAX_BACKOFF`].
pub fn backoff(attempt: u32) -> Duration {
    Duration::from_secs(1u64 << attempt.min(3)).min(MAX_BACKOFF)
}

/// The leader election's metrics. [`Default`] makes them unregistered.
#[derive(Clone, Debug, Default)]
pub struct LeaderMetrics {
    leader: Gauge,
}

impl LeaderMetrics {
    /// New metrics, registered in `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self::default();
        registry.register(
            "weft_leader",
            "1 while this replica holds the leader Lease (and writes status), else 0",
            metrics.leader.clone(),
        );
        metrics
    }
}

/// The running election: whether this replica leads, and how to stop.
#[derive(Debug)]
pub struct Leadership {
    leading: watch::Receiver<bool>,
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl Leadership {
    /// Whether this replica leads, now and as it changes.
    pub fn subscribe(&self) -> watch::Receiver<bool> {
        self.leading.clone()
    }

    /// Stops the election, releasing the Lease if held (so another replica
    /// takes over without waiting for it to expire).
    pub async fn release(self) {
        let _ = self.stop.send(());
        if tokio::time::timeout(RELEASE_TIMEOUT, self.task)
            .await
            .is_err()
        {
            warn!("the Lease was not released in time; it expires on its own");
        }
    }
}

/// Starts the election task for `config`.
pub fn spawn(client: Client, config: LeaseConfig, metrics: LeaderMetrics) -> Leadership {
    let (sender, leading) = watch::channel(false);
    let (stop, stopped) = oneshot::channel();
    let task = tokio::spawn(run(client, config, Publisher { sender, metrics }, stopped));
    Leadership {
        leading,
        stop,
        task,
    }
}

/// Publishes the state on the channel and the gauge, logging changes.
struct Publisher {
    sender: watch::Sender<bool>,
    metrics: LeaderMetrics,
}

impl Publisher {
    fn set(&self, leading: bool, config: &LeaseConfig) {
        let was = self.sender.send_replace(leading);
        self.metrics.leader.set(i64::from(leading));
        match (was, leading) {
            (false, true) => info!(
                lease = %format!("{}/{}", config.namespace, config.name),
                identity = %config.identity,
                "became the leader (lease {}/{})",
                config.namespace,
                config.name
            ),
            (true, false) => info!(identity = %config.identity, "lost the leadership"),
            _ => {}
        }
    }

    fn leading(&self) -> bool {
        *self.sender.borrow()
    }
}

async fn run(
    client: Client,
    config: LeaseConfig,
    publisher: Publisher,
    mut stopped: oneshot::Receiver<()>,
) {
    info!(
        identity = %config.identity,
        "running for leader with the Lease {}/{} (duration {}s)",
        config.namespace,
        config.name,
        config.duration
    );
    let mut attempt = 0;
    loop {
        let built = LeaseManagerBuilder::new(client.clone(), &config.name)
            .with_namespace(&config.namespace)
            .with_identity(&config.identity)
            .with_duration(config.duration)
            .with_grace(config.grace)
            .build()
            .await;
        let failure = match built {
            Ok(manager) => match follow(&manager, &config, &publisher, &mut stopped).await {
                Followed::Stopped => return,
                Followed::Failed(err) => err,
            },
            Err(err) => err,
        };
        warn!(
            lease = %format!("{}/{}", config.namespace, config.name),
            err = %failure,
            "the Lease API failed; retrying (check the Lease namespace exists and the operator may get, create and patch Leases there)"
        );
        // Without a working Lease API this replica cannot prove it leads.
        publisher.set(false, &config);
        tokio::select! {
            _ = &mut stopped => return,
            () = tokio::time::sleep(backoff(attempt)) => {}
        }
        attempt = attempt.saturating_add(1);
    }
}

enum Followed {
    Stopped,
    Failed(kube_lease_manager::LeaseManagerError),
}

/// Follows `manager`'s state until it fails or the election is stopped.
async fn follow(
    manager: &LeaseManager,
    config: &LeaseConfig,
    publisher: &Publisher,
    stopped: &mut oneshot::Receiver<()>,
) -> Followed {
    loop {
        tokio::select! {
            biased;
            _ = &mut *stopped => {
                if publisher.leading() {
                    match manager.release().await {
                        Ok(()) => info!("released the Lease {}/{}", config.namespace, config.name),
                        Err(err) => warn!(%err, "cannot release the Lease; it expires on its own"),
                    }
                }
                publisher.set(false, config);
                return Followed::Stopped;
            }
            changed = manager.changed() => match changed {
                Ok(leading) => publisher.set(leading, config),
                Err(err) => return Followed::Failed(err),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_identity_is_hostname_dash_pid() {
        assert_eq!(default_identity(Some("node-a\n"), 42), "node-a-42");
        assert_eq!(default_identity(Some("  "), 42), "weft-42");
        assert_eq!(default_identity(None, 7), "weft-7");
    }

    #[test]
    fn the_grace_period_is_a_third_of_the_duration_at_least_a_second() {
        let config =
            LeaseConfig::new("weft-system", "weft-leader", "a", Duration::from_secs(15)).unwrap();
        assert_eq!((config.duration, config.grace), (15, 5));
        let config = LeaseConfig::new("ns", "l", "a", Duration::from_secs(3)).unwrap();
        assert_eq!((config.duration, config.grace), (3, 1));
        let config = LeaseConfig::new("ns", "l", "a", Duration::from_secs(2)).unwrap();
        assert_eq!((config.duration, config.grace), (2, 1));
    }

    #[test]
    fn a_too_short_duration_or_an_empty_identity_is_refused() {
        let err = LeaseConfig::new("ns", "l", "a", Duration::from_millis(1500)).unwrap_err();
        assert_eq!(err.kind(), "duration_too_short");
        assert!(err.to_string().contains("at least 2s"), "{err}");
        let err = LeaseConfig::new("ns", "l", " ", Duration::from_secs(15)).unwrap_err();
        assert_eq!(err.kind(), "empty_identity");
    }

    #[test]
    fn backoff_doubles_up_to_the_maximum() {
        let waits: Vec<u64> = (0..6).map(|a| backoff(a).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 8, 8]);
    }
}
