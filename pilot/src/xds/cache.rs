//! Resource sets shared by every proxy with the same view.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::ViewResources;
use crate::model::MeshSnapshot;
use crate::translate::ProxyView;

/// Computed resources for the current snapshot, one set per view: a
/// thousand replicas of one deployment cost one translation. Entries of an
/// older snapshot are dropped as soon as a newer one is asked for.
#[derive(Debug, Default)]
pub struct ResourceCache {
    inner: Mutex<CacheState>,
}

#[derive(Debug, Default)]
struct CacheState {
    snapshot_version: u64,
    views: HashMap<ProxyView, Arc<ViewResources>>,
}

impl ResourceCache {
    pub fn resources(&self, snapshot: &MeshSnapshot, view: &ProxyView) -> Arc<ViewResources> {
        {
            let state = self.lock();
            if state.snapshot_version == snapshot.version
                && let Some(found) = state.views.get(view)
            {
                return found.clone();
            }
        }
        // Translate outside the lock: other views need not wait.
        let built = Arc::new(ViewResources::build(snapshot, view));
        let mut state = self.lock();
        if state.snapshot_version != snapshot.version {
            if snapshot.version < state.snapshot_version {
                return built;
            }
            state.snapshot_version = snapshot.version;
            state.views.clear();
        }
        state.views.entry(view.clone()).or_insert(built).clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, CacheState> {
        // A panic while holding the lock cannot leave the map inconsistent
        // (each write is one insert), so a poisoned lock is still usable.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}
