//! Which configs the connected proxies currently reject: per proxy and
//! resource type, the latest NACK that no ACK of that type has followed.
//! The ADS streams record every request's outcome here; a control plane
//! that reports status (the Kubernetes operator) subscribes and blames the
//! config changes made since the proxy's previous ACK.
//!
//! ```text
//! ACK(proxy, CDS) ── t0 ──▶ change ── push ──▶ NACK(proxy, CDS) at t1
//!                           ▲ the suspects: what changed in (t0, t1]
//! ```

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

use tokio::sync::watch;

use super::{RequestOutcome, TypeUrl};

/// One proxy's standing rejection of one resource type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejection {
    pub proxy: String,
    pub type_url: TypeUrl,
    /// The version the proxy rejected.
    pub version: String,
    /// The proxy's error text.
    pub message: String,
    /// When the proxy last accepted this type (or connected, before its
    /// first ACK): the config it rejects was made after this.
    pub accepted_at: SystemTime,
    /// When it rejected.
    pub rejected_at: SystemTime,
}

/// The standing rejections, keyed by (proxy, type URL).
pub type RejectionMap = BTreeMap<(String, TypeUrl), Rejection>;

/// Shared by every ADS stream of a server; cheap to clone.
#[derive(Clone, Debug)]
pub struct Rejections {
    /// The last ACK (or connect) time per (proxy, type).
    accepted: Arc<Mutex<BTreeMap<(String, TypeUrl), SystemTime>>>,
    current: watch::Sender<Arc<RejectionMap>>,
}

impl Default for Rejections {
    fn default() -> Self {
        Self {
            accepted: Arc::default(),
            current: watch::Sender::new(Arc::default()),
        }
    }
}

impl Rejections {
    /// The standing rejections, now and whenever they change.
    pub fn subscribe(&self) -> watch::Receiver<Arc<RejectionMap>> {
        self.current.subscribe()
    }

    /// Records what `proxy`'s request for `type_url` was, at `now`.
    pub fn record(&self, proxy: &str, type_url: &str, outcome: &RequestOutcome, now: SystemTime) {
        let Some(type_url) = TypeUrl::parse(type_url) else {
            return;
        };
        let key = (proxy.to_string(), type_url);
        let mut accepted = self.accepted.lock().unwrap_or_else(PoisonError::into_inner);
        match outcome {
            RequestOutcome::Subscribe => {
                accepted.entry(key).or_insert(now);
            }
            RequestOutcome::Ack { .. } => {
                accepted.insert(key.clone(), now);
                self.current
                    .send_if_modified(|map| Arc::make_mut(map).remove(&key).is_some());
            }
            RequestOutcome::Nack {
                version, message, ..
            } => {
                let rejection = Rejection {
                    proxy: proxy.to_string(),
                    type_url,
                    version: version.clone(),
                    message: message.clone(),
                    accepted_at: accepted.get(&key).copied().unwrap_or(now),
                    rejected_at: now,
                };
                self.current.send_if_modified(|map| {
                    let map = Arc::make_mut(map);
                    let same = map.get(&key).is_some_and(|old| {
                        old.version == rejection.version && old.message == rejection.message
                    });
                    if !same {
                        map.insert(key, rejection);
                    }
                    !same
                });
            }
            RequestOutcome::Stale | RequestOutcome::UnknownType => {}
        }
    }

    /// Forgets `proxy` (its stream ended): a proxy that is gone rejects
    /// nothing.
    pub fn disconnected(&self, proxy: &str) {
        self.accepted
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|(p, _), _| p != proxy);
        self.current.send_if_modified(|map| {
            let before = map.len();
            Arc::make_mut(map).retain(|(p, _), _| p != proxy);
            map.len() != before
        });
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const CDS: &str = "type.googleapis.com/envoy.config.cluster.v3.Cluster";

    fn at(seconds: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(seconds)
    }

    fn nack(version: &str) -> RequestOutcome {
        RequestOutcome::Nack {
            version: version.to_string(),
            kept: Some("v1".to_string()),
            message: "bad regex".to_string(),
        }
    }

    #[test]
    fn a_nack_stands_until_an_ack_of_the_same_type() {
        let rejections = Rejections::default();
        let current = rejections.subscribe();
        rejections.record("p1", CDS, &RequestOutcome::Subscribe, at(1));
        rejections.record(
            "p1",
            CDS,
            &RequestOutcome::Ack {
                version: "v1".into(),
            },
            at(5),
        );
        rejections.record("p1", CDS, &nack("v2"), at(9));
        let map = current.borrow().clone();
        let rejection = map.values().next().cloned();
        assert_eq!(
            rejection,
            Some(Rejection {
                proxy: "p1".into(),
                type_url: TypeUrl::Cluster,
                version: "v2".into(),
                message: "bad regex".into(),
                accepted_at: at(5),
                rejected_at: at(9),
            })
        );
        rejections.record(
            "p1",
            CDS,
            &RequestOutcome::Ack {
                version: "v3".into(),
            },
            at(12),
        );
        assert!(current.borrow().is_empty());
    }

    #[test]
    fn a_disconnected_proxy_rejects_nothing() {
        let rejections = Rejections::default();
        let current = rejections.subscribe();
        rejections.record("p1", CDS, &nack("v2"), at(3));
        rejections.record("p2", CDS, &nack("v2"), at(3));
        rejections.disconnected("p1");
        let proxies: Vec<String> = current.borrow().keys().map(|(p, _)| p.clone()).collect();
        assert_eq!(proxies, ["p2"]);
    }

    #[test]
    fn unknown_types_and_stale_replies_change_nothing() {
        let rejections = Rejections::default();
        let mut current = rejections.subscribe();
        current.mark_unchanged();
        rejections.record("p1", "type.example/Unknown", &nack("v2"), at(1));
        rejections.record("p1", CDS, &RequestOutcome::Stale, at(1));
        assert!(!current.has_changed().unwrap_or(true));
    }
}
