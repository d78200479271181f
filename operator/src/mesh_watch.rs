//! One mesh kind's watch, held while the cluster serves the kind's CRD:
//! [`crate::served`] starts it when the CRD is there and drops it (with
//! its objects) when the CRD goes. Absent, the kind adds no inputs and no
//! objects, and waiting for its first list returns at once.
//!
//! [`MeshWatch`] hides the kube type, so [`crate::Stores`] keeps one list
//! of them (in [`Kind::ALL`]'s order) instead of a field per kind.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use futures::future::BoxFuture;
use kube::Client;
use kube::runtime::reflector::Store;
use tokio::sync::mpsc;
use weft_crds::{
    AuthorizationPolicy, DestinationRule, Gateway, Kind, PeerAuthentication, Quota,
    RequestAuthentication, ServiceEntry, Sidecar, Telemetry, VirtualService,
};

use crate::mesh::MeshKind;
use crate::served::WantedCrd;
use crate::stores::{Error, Observed};
use crate::watch::{self, WatchMetrics, Watching};

/// What a started watch needs.
#[derive(Clone)]
pub(crate) struct WatchContext {
    pub client: Client,
    /// Pinged on every change (the reload's debouncer).
    pub changes: mpsc::UnboundedSender<()>,
    pub metrics: WatchMetrics,
}

/// A mesh kind's watch, whatever its kube type.
pub(crate) trait MeshWatch: Send + Sync {
    /// The CRD the kind needs.
    fn crd(&self) -> WantedCrd;
    /// Starts the watch unless it runs; whether it started it.
    fn start(&self, context: &WatchContext) -> bool;
    /// Stops the watch and forgets its objects; whether it ran.
    fn stop(&self) -> bool;
    /// Resolves once the running watch listed its kind (at once when none
    /// runs, or when it is stopped meanwhile).
    fn listed(&self) -> BoxFuture<'_, Result<(), Error>>;
    /// Adds the kind's inputs and objects (none while not watched).
    fn add_to(&self, observed: &mut Observed);
}

/// The watch of every `K`, while started.
#[derive(Debug)]
struct KindWatch<K: MeshKind> {
    running: Mutex<Running<K>>,
}

#[derive(Debug)]
struct Running<K: MeshKind> {
    /// Counts starts, so a wait can tell a stopped watch from its successor.
    starts: u64,
    watching: Option<Watching<K>>,
}

impl<K: MeshKind> Default for KindWatch<K> {
    fn default() -> Self {
        Self {
            running: Mutex::new(Running {
                starts: 0,
                watching: None,
            }),
        }
    }
}

impl<K: MeshKind> KindWatch<K> {
    fn lock(&self) -> MutexGuard<'_, Running<K>> {
        // A panic elsewhere cannot leave `Running` half-updated.
        self.running.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The running watch's store, and which start made it.
    fn store(&self) -> Option<(u64, Store<K>)> {
        let running = self.lock();
        running
            .watching
            .as_ref()
            .map(|watching| (running.starts, watching.store.clone()))
    }
}

impl<K: MeshKind> MeshWatch for KindWatch<K> {
    fn crd(&self) -> WantedCrd {
        WantedCrd::of::<K>()
    }

    fn start(&self, context: &WatchContext) -> bool {
        let mut running = self.lock();
        if running.watching.is_some() {
            return false;
        }
        running.starts += 1;
        running.watching = Some(watch::watch_all_until_dropped(
            &context.client,
            K::KIND.as_str(),
            context.changes.clone(),
            context.metrics.clone(),
            watch::strip_bookkeeping,
        ));
        true
    }

    fn stop(&self) -> bool {
        self.lock().watching.take().is_some()
    }

    fn listed(&self) -> BoxFuture<'_, Result<(), Error>> {
        Box::pin(async move {
            let Some((start, store)) = self.store() else {
                return Ok(());
            };
            match store.wait_until_ready().await {
                Ok(()) => Ok(()),
                // Stopped before its first list: the CRD went away.
                Err(_) if self.store().is_none_or(|(now, _)| now != start) => Ok(()),
                Err(_) => Err(Error::WatchStopped(K::KIND.as_str())),
            }
        })
    }

    fn add_to(&self, observed: &mut Observed) {
        if let Some((_, store)) = self.store() {
            observed.add(&store);
        }
    }
}

/// The watch of `kind`'s kube type (not started).
pub(crate) fn for_kind(kind: Kind) -> Arc<dyn MeshWatch> {
    match kind {
        Kind::VirtualService => Arc::new(KindWatch::<VirtualService>::default()),
        Kind::DestinationRule => Arc::new(KindWatch::<DestinationRule>::default()),
        Kind::ServiceEntry => Arc::new(KindWatch::<ServiceEntry>::default()),
        Kind::Gateway => Arc::new(KindWatch::<Gateway>::default()),
        Kind::Sidecar => Arc::new(KindWatch::<Sidecar>::default()),
        Kind::PeerAuthentication => Arc::new(KindWatch::<PeerAuthentication>::default()),
        Kind::RequestAuthentication => Arc::new(KindWatch::<RequestAuthentication>::default()),
        Kind::AuthorizationPolicy => Arc::new(KindWatch::<AuthorizationPolicy>::default()),
        Kind::Quota => Arc::new(KindWatch::<Quota>::default()),
        Kind::Telemetry => Arc::new(KindWatch::<Telemetry>::default()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_kind_not_watched_adds_nothing_and_is_listed_at_once() {
        let watch = for_kind(Kind::Quota);
        let mut observed = Observed::default();
        watch.add_to(&mut observed);
        assert!(observed.inputs.is_empty() && observed.objects.is_empty());
        assert!(watch.listed().await.is_ok());
        assert!(!watch.stop(), "nothing ran");
    }
}
