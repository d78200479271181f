//! Keep-last-good: when the current version of a resource is bad, its
//! last good version is served instead, so a bad edit never takes traffic
//! down.

use std::collections::{BTreeMap, BTreeSet};

use super::Accepted;
use weft_model::ResourceId;

/// The versions the last reload applied, and the resources this reload
/// serves at one of them.
pub(super) struct LastGood<'a> {
    versions: &'a BTreeMap<ResourceId, Accepted>,
    /// In the order their last good versions were taken.
    kept: Vec<ResourceId>,
}

impl<'a> LastGood<'a> {
    pub(super) fn new(versions: &'a BTreeMap<ResourceId, Accepted>) -> Self {
        Self {
            versions,
            kept: Vec::new(),
        }
    }

    /// The last good version of `id`, when there is one and `passes`
    /// accepts it: it is served instead of the current one, and `id`
    /// counts as kept. The one way a last good version comes back.
    pub(super) fn stand_in(
        &mut self,
        id: &ResourceId,
        passes: impl FnOnce(&Accepted) -> bool,
    ) -> Option<Accepted> {
        let previous = self.versions.get(id).filter(|p| passes(p))?;
        if !self.kept.contains(id) {
            self.kept.push(id.clone());
        }
        Some(previous.clone())
    }

    /// Adds to `converted` the last good version of each resource that
    /// failed to convert or whose source could not be read, unless the
    /// reload has a good version of it (from another source).
    pub(super) fn stand_in_for_failed(
        &mut self,
        converted: &mut BTreeMap<ResourceId, Accepted>,
        failed: &BTreeSet<ResourceId>,
        broken_sources: &BTreeSet<String>,
    ) {
        let versions = self.versions;
        for (id, previous) in versions {
            let bad = failed.contains(id) || broken_sources.contains(&previous.origin.source);
            if bad
                && !converted.contains_key(id)
                && let Some(version) = self.stand_in(id, |_| true)
            {
                converted.insert(id.clone(), version);
            }
        }
    }

    /// The resources served at their last good version.
    pub(super) fn kept(self) -> Vec<ResourceId> {
        self.kept
    }
}
