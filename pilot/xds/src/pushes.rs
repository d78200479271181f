//! The last pushes (istiod's `/debug/push_status`): per snapshot version,
//! what changed since the one before, when the first stream saw it, how
//! many proxies were sent something for it and when the last of them was.
//! The ADS streams record here as they push; the debug endpoint reads it.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use super::incremental::ChangeSet;

/// Pushes kept: the newest ones.
const KEPT: usize = 32;

/// The recent pushes of a server; cheap to clone.
#[derive(Clone, Debug, Default)]
pub struct Pushes {
    state: Arc<Mutex<State>>,
}

#[derive(Debug, Default)]
struct State {
    pushes: VecDeque<PushRecord>,
}

/// One push: a snapshot version reaching the connected proxies.
#[derive(Clone, Debug, PartialEq)]
pub struct PushRecord {
    pub version: u64,
    /// What changed from the snapshot before (`None` when the resource
    /// cache did not narrow it down: the first one, or views not shared).
    pub changes: Option<ChangeSet>,
    /// When the first stream woke up to push it.
    pub started_at: SystemTime,
    started: Instant,
    /// From the start to the last response queued for it (computing each
    /// view's resources included).
    pub duration: Duration,
    /// Proxies sent at least one response for it.
    pub proxies: usize,
    /// Responses sent for it.
    pub responses: usize,
}

impl Pushes {
    /// Records that a stream, woken by snapshot `version` at `woken`, has
    /// queued its `responses` responses for it (zero: the snapshot changed
    /// nothing it holds). `changes` is asked for once per version.
    pub fn record(
        &self,
        version: u64,
        changes: impl FnOnce() -> Option<ChangeSet>,
        woken: Instant,
        responses: usize,
    ) {
        let mut state = self.lock();
        if !state.pushes.iter().any(|push| push.version == version) {
            state.pushes.push_back(PushRecord {
                version,
                changes: changes(),
                started_at: SystemTime::now() - woken.elapsed(),
                started: woken,
                duration: Duration::ZERO,
                proxies: 0,
                responses: 0,
            });
            while state.pushes.len() > KEPT {
                state.pushes.pop_front();
            }
        }
        if responses == 0 {
            return;
        }
        if let Some(push) = state.pushes.iter_mut().find(|push| push.version == version) {
            push.started = push.started.min(woken);
            push.proxies += 1;
            push.responses += responses;
            push.duration = push.started.elapsed();
        }
    }

    /// The recent pushes, newest first.
    pub fn list(&self) -> Vec<PushRecord> {
        self.lock().pushes.iter().rev().cloned().collect()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Every write leaves the queue whole: a poisoned lock is usable.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn changed(host: &str) -> Option<ChangeSet> {
        Some(ChangeSet {
            routes: [host.to_string()].into(),
            ..Default::default()
        })
    }

    #[test]
    fn each_version_counts_the_proxies_it_reached() {
        let pushes = Pushes::default();
        pushes.record(1, || None, Instant::now(), 4);
        pushes.record(1, || None, Instant::now(), 0);
        pushes.record(2, || changed("a"), Instant::now(), 1);
        pushes.record(2, || panic!("asked twice"), Instant::now(), 2);
        let list = pushes.list();
        assert_eq!(list.len(), 2);
        assert_eq!(
            (list[0].version, list[0].proxies, list[0].responses),
            (2, 2, 3)
        );
        assert_eq!(list[0].changes, changed("a"));
        assert_eq!(
            (list[1].version, list[1].proxies, list[1].responses),
            (1, 1, 4)
        );
        assert_eq!(list[1].changes, None);
    }

    #[test]
    fn only_the_newest_pushes_are_kept() {
        let pushes = Pushes::default();
        for version in 0..(KEPT as u64 + 5) {
            pushes.record(version, || None, Instant::now(), 1);
        }
        let list = pushes.list();
        assert_eq!(list.len(), KEPT);
        assert_eq!(list[0].version, KEPT as u64 + 4);
    }
}
