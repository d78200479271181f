//! Blaming proxies' NACKs on the mesh objects whose change they reject.
//!
//! Weft validates what it can, but a proxy may still refuse a config (an
//! Envoy-only limit, such as RE2's program size for a regex). The xDS
//! server keeps each proxy's standing rejection with the time the proxy
//! last accepted that type ([`weft_xds::Rejections`]); the objects
//! whose generation changed after that and before the rejection are what
//! the proxy rejects, and their `Ready` condition says so.
//!
//! ```text
//! ChangeLog: object -> (generation, when it was first seen at it)
//! Rejection: proxy, type, accepted_at < rejected_at, Envoy's message
//! blame:     objects changed in (accepted_at, rejected_at] -> messages
//! ```
//!
//! A rejection with no suspect (say, a proxy that connects to a restarted
//! Weft and rejects at once) blames nothing; the xDS server logs and counts
//! it all the same.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::SystemTime;

use tokio::sync::watch;
use weft_model::ResourceId;
use weft_xds::{RejectionMap, TypeUrl};

use crate::mesh::MeshObject;
use crate::status::Outcome;
use crate::status::writer::StatusUpdate;

/// What the status writer is sent: each apply's outcomes, with the
/// proxies' standing rejections blamed on the objects they reject; sent
/// again when the rejections change.
#[derive(Debug)]
pub struct StatusFeed {
    sender: watch::Sender<Arc<StatusUpdate>>,
    changes: ChangeLog,
    objects: Vec<MeshObject>,
    outcomes: BTreeMap<ResourceId, Outcome>,
}

impl StatusFeed {
    pub fn new(sender: watch::Sender<Arc<StatusUpdate>>) -> Self {
        Self {
            sender,
            changes: ChangeLog::default(),
            objects: Vec::new(),
            outcomes: BTreeMap::new(),
        }
    }

    /// An apply read `objects` at `now` and made `outcomes` of them.
    pub fn applied(
        &mut self,
        objects: Vec<MeshObject>,
        outcomes: BTreeMap<ResourceId, Outcome>,
        rejections: &RejectionMap,
        now: SystemTime,
    ) {
        self.changes.observe(&objects, now);
        self.objects = objects;
        self.outcomes = outcomes;
        self.publish(rejections);
    }

    /// Sends the last apply's outcomes with `rejections` blamed.
    pub fn publish(&self, rejections: &RejectionMap) {
        let mut outcomes = self.outcomes.clone();
        for (id, messages) in self.changes.blame(rejections) {
            outcomes.entry(id).or_default().rejected_by_proxies = messages;
        }
        self.sender.send_replace(Arc::new(StatusUpdate {
            objects: self.objects.clone(),
            outcomes,
        }));
    }
}

/// When each mesh object was first seen at its current generation.
#[derive(Debug, Default)]
pub struct ChangeLog {
    changed_at: BTreeMap<ResourceId, (Option<i64>, SystemTime)>,
}

impl ChangeLog {
    /// Records the objects as observed at `now`: a new object or a new
    /// generation changes at `now`; objects that are gone are forgotten.
    pub fn observe(&mut self, objects: &[MeshObject], now: SystemTime) {
        let mut next = BTreeMap::new();
        for object in objects {
            let entry = match self.changed_at.get(&object.id) {
                Some(&(generation, at)) if generation == object.generation => (generation, at),
                _ => (object.generation, now),
            };
            next.insert(object.id.clone(), entry);
        }
        self.changed_at = next;
    }

    /// What each rejection says about the objects it blames, per object.
    pub fn blame(&self, rejections: &RejectionMap) -> BTreeMap<ResourceId, Vec<String>> {
        let mut blamed: BTreeMap<ResourceId, Vec<String>> = BTreeMap::new();
        for rejection in rejections.values() {
            let suspects = self
                .changed_at
                .iter()
                .filter(|(_, (_, at))| rejection.accepted_at < *at && *at <= rejection.rejected_at);
            for (id, _) in suspects {
                blamed.entry(id.clone()).or_default().push(format!(
                    "proxy {} rejected the {} built with this change (version {}) and keeps its \
                     previous one: {}",
                    rejection.proxy,
                    type_name(rejection.type_url),
                    rejection.version,
                    rejection.message
                ));
            }
        }
        blamed
    }
}

/// The resource type as Envoy's docs name it.
fn type_name(type_url: TypeUrl) -> &'static str {
    match type_url {
        TypeUrl::Cluster => "clusters (CDS)",
        TypeUrl::ClusterLoadAssignment => "endpoints (EDS)",
        TypeUrl::Listener => "listeners (LDS)",
        TypeUrl::RouteConfiguration => "routes (RDS)",
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::time::Duration;

    use weft_xds::Rejection;

    use super::*;

    fn at(seconds: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(seconds)
    }

    fn object(name: &str, generation: i64) -> MeshObject {
        MeshObject {
            id: ResourceId::new(weft_crds::Kind::VirtualService, "default", name),
            generation: Some(generation),
            status: None,
        }
    }

    fn rejection(accepted_at: u64, rejected_at: u64) -> RejectionMap {
        let rejection = Rejection {
            proxy: "envoy-1".into(),
            type_url: TypeUrl::RouteConfiguration,
            version: "abc".into(),
            message: "invalid repetition size".into(),
            accepted_at: at(accepted_at),
            rejected_at: at(rejected_at),
        };
        BTreeMap::from([(
            ("envoy-1".to_string(), TypeUrl::RouteConfiguration),
            rejection,
        )])
    }

    #[test]
    fn the_objects_changed_since_the_last_ack_are_blamed() {
        let mut log = ChangeLog::default();
        log.observe(&[object("reviews", 1), object("ratings", 1)], at(10));
        log.observe(&[object("reviews", 2), object("ratings", 1)], at(20));
        let blamed = log.blame(&rejection(15, 21));
        let ids: Vec<String> = blamed.keys().map(ToString::to_string).collect();
        assert_eq!(ids, ["VirtualService default/reviews"]);
        let message = &blamed.values().next().unwrap()[0];
        assert!(
            message.starts_with("proxy envoy-1 rejected the routes (RDS) built with this change"),
            "{message}"
        );
        assert!(message.ends_with(": invalid repetition size"), "{message}");
    }

    #[test]
    fn an_unchanged_generation_keeps_its_time_and_gone_objects_are_forgotten() {
        let mut log = ChangeLog::default();
        log.observe(&[object("reviews", 1), object("ratings", 1)], at(10));
        log.observe(&[object("reviews", 1)], at(20));
        assert!(log.blame(&rejection(15, 21)).is_empty());
        assert_eq!(log.changed_at.len(), 1);
    }

    #[test]
    fn changes_after_the_rejection_are_not_blamed() {
        let mut log = ChangeLog::default();
        log.observe(&[object("reviews", 1)], at(30));
        assert!(log.blame(&rejection(15, 21)).is_empty());
    }
}
