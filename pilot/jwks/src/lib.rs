//! # weft-jwks: the key sets RequestAuthentications fetch from a URL
//!
//! What it owns: which remote JSON Web Key Sets the mesh needs ([`wanted`]:
//! every `jwksUri`, and the issuers whose keys are found by OpenID
//! discovery), fetching them over HTTP(S) ([`fetch`]: HTTPS verified
//! against the system's roots plus an optional CA bundle; addresses in
//! blocked ranges, link-local and cloud metadata by default, refused before
//! any connection), and the refresh clock ([`spawn`]): every 20 minutes,
//! 1 minute after a failure. A failed refresh keeps the last good keys
//! (istiod drops them and rejects valid tokens); keys never fetched stay
//! absent, and the translation then refuses every token of that issuer.
//!
//! It publishes a map from [`JwksLocation`] to [`FetchedJwks`] on a watch
//! channel; the binary hands it to the config store, which carries it in
//! every snapshot. It must not translate, nor touch the store.

pub mod fetch;
pub mod wanted;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::future::join_all;
use tokio::sync::watch;
use tokio::time::Instant;
use tracing::{error, info, warn};

use weft_model::{Cidr, FetchedJwks, JwksLocation, MeshSnapshot};

pub use fetch::{FetchError, Fetcher, default_blocked_ranges};

/// How the control plane fetches key sets.
#[derive(Clone, Debug)]
pub struct JwksOptions {
    /// How often a key set fetched is fetched again.
    pub refresh: Duration,
    /// How soon a failed fetch is tried again.
    pub retry: Duration,
    /// Addresses the fetcher never connects to.
    pub blocked: Vec<Cidr>,
    /// CA certificates (PEM) trusted besides the system's roots.
    pub extra_roots_pem: Option<Vec<u8>>,
}

impl Default for JwksOptions {
    fn default() -> Self {
        JwksOptions {
            refresh: Duration::from_secs(20 * 60),
            retry: Duration::from_secs(60),
            blocked: default_blocked_ranges(),
            extra_roots_pem: None,
        }
    }
}

/// The key sets fetched so far.
pub type Fetched = BTreeMap<JwksLocation, FetchedJwks>;

/// Fetches the key sets the snapshots of `snapshots` need, and keeps them
/// fresh, until `snapshots` closes. The receiver sees the map whenever it
/// changes.
pub fn spawn(
    options: JwksOptions,
    snapshots: watch::Receiver<Arc<MeshSnapshot>>,
) -> Result<watch::Receiver<Fetched>, FetchError> {
    let fetcher = Fetcher::new(options.blocked.clone(), options.extra_roots_pem.as_deref())?;
    let (sender, receiver) = watch::channel(Fetched::new());
    tokio::spawn(refresh_loop(options, fetcher, snapshots, sender));
    Ok(receiver)
}

/// One key set's clock.
struct Entry {
    fetched: FetchedJwks,
    timeout: Duration,
    due: Instant,
}

async fn refresh_loop(
    options: JwksOptions,
    fetcher: Fetcher,
    mut snapshots: watch::Receiver<Arc<MeshSnapshot>>,
    sender: watch::Sender<Fetched>,
) {
    let mut entries: BTreeMap<JwksLocation, Entry> = BTreeMap::new();
    let mut snapshot_changed = true;
    loop {
        if snapshot_changed {
            let snapshot = snapshots.borrow_and_update().clone();
            let wanted = wanted::wanted(&snapshot);
            entries.retain(|location, _| wanted.contains_key(location));
            for (location, timeout) in wanted {
                let entry = entries.entry(location).or_insert_with(|| Entry {
                    fetched: FetchedJwks::default(),
                    timeout,
                    due: Instant::now(),
                });
                entry.timeout = timeout;
            }
        }
        let now = Instant::now();
        let due: Vec<(JwksLocation, Duration)> = entries
            .iter()
            .filter(|(_, e)| e.due <= now)
            .map(|(l, e)| (l.clone(), e.timeout))
            .collect();
        let fetcher = &fetcher;
        let results = join_all(due.iter().map(|(location, timeout)| async move {
            (location, fetcher.fetch(location, *timeout).await)
        }))
        .await;
        for (location, result) in results {
            let Some(entry) = entries.get_mut(location) else {
                continue;
            };
            entry.due = settle(&options, location, &mut entry.fetched, result);
        }
        let published: Fetched = entries
            .iter()
            .map(|(l, e)| (l.clone(), e.fetched.clone()))
            .collect();
        sender.send_if_modified(|current| {
            let modified = *current != published;
            *current = published;
            modified
        });
        let next = entries.values().map(|e| e.due).min();
        snapshot_changed = tokio::select! {
            changed = snapshots.changed() => {
                if changed.is_err() {
                    return;
                }
                true
            }
            () = sleep_until(next) => false,
        };
    }
}

/// Records a fetch's outcome in `fetched`; when the next one is due.
fn settle(
    options: &JwksOptions,
    location: &JwksLocation,
    fetched: &mut FetchedJwks,
    result: Result<String, FetchError>,
) -> Instant {
    let url = location.url();
    match result {
        Ok(keys) => {
            if fetched.keys.as_ref() != Some(&keys) {
                info!(url, "fetched a new JSON Web Key Set");
            }
            fetched.keys = Some(keys);
            fetched.error = None;
            Instant::now() + options.refresh
        }
        Err(err) => {
            if fetched.keys.is_some() {
                warn!(url, error = %err, retry_in = ?options.retry,
                    "cannot refresh a JSON Web Key Set; tokens are still verified with the last good keys");
            } else {
                error!(url, error = %err, retry_in = ?options.retry,
                    "cannot fetch a JSON Web Key Set; every token of its issuer is refused until it is fetched");
            }
            fetched.error = Some(err.to_string());
            Instant::now() + options.retry
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
