//! The kube-rs watches: one reflector store per kind, filled by
//! `kube::runtime::watcher` with the default backoff. When a watch breaks,
//! the watcher resumes from the last resource version it saw, or relists
//! when that version is gone; the reflector swaps in a relisted state only
//! once the list is complete, so nothing is lost or duplicated. Every
//! applied change pings the shared change channel.

use std::fmt::Debug;

use futures::StreamExt;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;
use tokio::sync::mpsc;
use tracing::{debug, warn};

/// Starts watching every `K` in the cluster; returns the store it keeps.
/// The watch runs until the process ends.
pub fn watch_all<K>(
    client: &Client,
    kind: &'static str,
    changes: mpsc::UnboundedSender<()>,
) -> Store<K>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    let (reader, writer) = reflector::store();
    let api: Api<K> = Api::all(client.clone());
    let stream = watcher(api, watcher::Config::default())
        .default_backoff()
        .reflect(writer);
    tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        while let Some(event) = stream.next().await {
            match event {
                // A relist (`Init` .. `InitDone`) takes effect at its end.
                Ok(watcher::Event::Init | watcher::Event::InitApply(_)) => {}
                Ok(watcher::Event::InitDone) => {
                    debug!(kind, "listed");
                    let _ = changes.send(());
                }
                Ok(watcher::Event::Apply(_) | watcher::Event::Delete(_)) => {
                    let _ = changes.send(());
                }
                Err(err) => {
                    warn!(kind, %err, "watch failed; retrying with backoff");
                }
            }
        }
        warn!(kind, "watch ended");
    });
    reader
}
