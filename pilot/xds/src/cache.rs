//! Resource sets shared by every proxy with the same view, updated
//! incrementally from one snapshot to the next.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::ViewResources;
use super::incremental::ChangeSet;
use super::resources::Transition;
use weft_model::MeshSnapshot;
use weft_translate::{ProxyView, SharingKey, sharing_key};

/// Computed resources for the current snapshot, one set per view (by its
/// [`SharingKey`]: captured proxies at different addresses serving the same
/// ports share one): a thousand replicas of one deployment cost one
/// translation. When the
/// snapshot changes, a view's set is derived from its previous one by
/// rebuilding only what the change touched.
#[derive(Debug)]
pub struct ResourceCache {
    inner: Mutex<CacheState>,
    share_views: bool,
}

#[derive(Debug, Default)]
struct CacheState {
    current: Option<Arc<MeshSnapshot>>,
    views: HashMap<SharingKey, Arc<ViewResources>>,
    previous: HashMap<SharingKey, Arc<ViewResources>>,
    transition: Option<Arc<Transition>>,
}

impl Default for ResourceCache {
    fn default() -> Self {
        Self::new(true)
    }
}

impl ResourceCache {
    /// `share_views: false` computes every request afresh: the baseline
    /// the benchmarks compare sharing against.
    pub fn new(share_views: bool) -> Self {
        Self {
            inner: Mutex::new(CacheState::default()),
            share_views,
        }
    }

    pub fn resources(&self, snapshot: &Arc<MeshSnapshot>, view: &ProxyView) -> Arc<ViewResources> {
        if !self.share_views {
            return Arc::new(ViewResources::build(snapshot, view));
        }
        let key = sharing_key(snapshot, view);
        let (previous, transition) = {
            let mut state = self.lock();
            let is_current = state
                .current
                .as_ref()
                .is_some_and(|c| Arc::ptr_eq(c, snapshot));
            if !is_current {
                let old = state.current.replace(snapshot.clone());
                state.previous = std::mem::take(&mut state.views);
                state.transition = old.map(|old| Arc::new(Transition::new(&old, snapshot.clone())));
            }
            if let Some(found) = state.views.get(&key) {
                return found.clone();
            }
            (state.previous.get(&key).cloned(), state.transition.clone())
        };
        // Translate outside the lock: other views need not wait.
        let built = Arc::new(match (previous, transition) {
            (Some(previous), Some(transition)) => previous.update(&transition, view),
            _ => ViewResources::build(snapshot, view),
        });
        let mut state = self.lock();
        if !state
            .current
            .as_ref()
            .is_some_and(|c| Arc::ptr_eq(c, snapshot))
        {
            // A newer snapshot arrived meanwhile: serve this one uncached.
            return built;
        }
        state.views.entry(key).or_insert(built).clone()
    }

    /// What changed from the snapshot before `snapshot`, if `snapshot` is
    /// the current one and its views are updated incrementally (the diff
    /// their updates share: the push log reads it rather than diffing
    /// again).
    pub fn changes(&self, snapshot: &Arc<MeshSnapshot>) -> Option<ChangeSet> {
        let state = self.lock();
        let current = state.current.as_ref()?;
        if !Arc::ptr_eq(current, snapshot) {
            return None;
        }
        state.transition.as_ref().map(|t| t.changes.clone())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, CacheState> {
        // A panic while holding the lock cannot leave the maps inconsistent
        // (each write is one insert or swap), so a poisoned lock is usable.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}
