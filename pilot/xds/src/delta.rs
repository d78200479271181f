//! One incremental (delta) ADS stream's state: per type, what the proxy
//! subscribed to and which version of each resource it holds. Only
//! resources whose version differs from what the proxy holds are sent, and
//! removals are named. Pure, like [`super::Connection`].

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use weft_envoy_api::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, Resource as PbResource,
};

use super::resources::{Resource, version_of};
use super::{RequestOutcome, TypeUrl, ViewResources};

#[derive(Debug)]
pub struct DeltaConnection {
    proxy: String,
    watches: BTreeMap<TypeUrl, DeltaWatch>,
    next_nonce: u64,
}

/// Resource name -> version (the content hash) the proxy holds. The names
/// are the resource sets' own strings, shared by every connection: with
/// thousands of clusters, copies of them were most of a connection's size.
/// `None`: a version Weft did not write (sent by a reconnecting proxy).
type Held = BTreeMap<Arc<str>, Option<u64>>;

#[derive(Debug, Default)]
struct DeltaWatch {
    wildcard: bool,
    names: BTreeSet<Arc<str>>,
    /// What the proxy holds (or will, once it accepts what is in flight).
    known: Held,
    /// The last response not yet answered, and what the proxy held before it.
    pending: Option<(String, Held)>,
    answered_once: bool,
}

impl DeltaWatch {
    /// The resources this subscription covers now.
    fn wanted<'a>(
        &self,
        type_url: TypeUrl,
        resources: &'a ViewResources,
    ) -> Vec<(&'a Arc<str>, &'a Resource)> {
        let names = (!self.wildcard).then_some(&self.names);
        resources.select_shared(type_url, names)
    }
}

fn resource_version(hash: u64) -> String {
    format!("{hash:016x}")
}

fn parse_version(version: &str) -> Option<u64> {
    u64::from_str_radix(version, 16).ok()
}

impl DeltaConnection {
    pub fn new(proxy: impl Into<String>) -> Self {
        Self {
            proxy: proxy.into(),
            watches: BTreeMap::new(),
            next_nonce: 0,
        }
    }

    pub fn proxy(&self) -> &str {
        &self.proxy
    }

    /// The resources (name -> version) the proxy holds of `type_url`.
    pub fn known(&self, type_url: TypeUrl) -> Option<BTreeMap<String, String>> {
        let watch = self.watches.get(&type_url)?;
        let version = |v: &Option<u64>| v.map(resource_version).unwrap_or_default();
        Some(
            watch
                .known
                .iter()
                .map(|(name, v)| (name.to_string(), version(v)))
                .collect(),
        )
    }

    pub fn on_request(
        &mut self,
        request: &DeltaDiscoveryRequest,
        resources: &ViewResources,
    ) -> (RequestOutcome, Vec<DeltaDiscoveryResponse>) {
        let Some(type_url) = TypeUrl::parse(&request.type_url) else {
            return (RequestOutcome::UnknownType, Vec::new());
        };
        let watch = self.watches.entry(type_url).or_default();
        let first = !watch.answered_once;
        let mut outcome = RequestOutcome::Subscribe;
        if !request.response_nonce.is_empty() {
            match watch.pending.take() {
                Some((nonce, before)) if nonce == request.response_nonce => {
                    if let Some(status) = &request.error_detail {
                        watch.known = before;
                        outcome = RequestOutcome::Nack {
                            version: nonce,
                            kept: None,
                            message: status.message.clone(),
                        };
                    } else {
                        outcome = RequestOutcome::Ack {
                            version: request.response_nonce.clone(),
                        };
                    }
                }
                other => {
                    watch.pending = other;
                    outcome = RequestOutcome::Stale;
                }
            }
        }
        if first {
            watch.known = request
                .initial_resource_versions
                .iter()
                .map(|(k, v)| (resources.shared_name(type_url, k), parse_version(v)))
                .collect();
            watch.wildcard = type_url.is_wildcard() && request.resource_names_subscribe.is_empty();
        }
        let mut changed_subscription = first;
        for name in &request.resource_names_subscribe {
            changed_subscription = true;
            if name == "*" {
                watch.wildcard = true;
            } else {
                watch.names.insert(resources.shared_name(type_url, name));
                // Asked again: the proxy wants it sent even if it had it.
                if !first {
                    watch.known.remove(name.as_str());
                }
            }
        }
        for name in &request.resource_names_unsubscribe {
            if name == "*" {
                watch.wildcard = false;
            } else {
                watch.names.remove(name.as_str());
                watch.known.remove(name.as_str());
            }
        }
        if !changed_subscription || matches!(outcome, RequestOutcome::Nack { .. }) {
            return (outcome, Vec::new());
        }
        let response = self.respond(type_url, resources, first, &BTreeSet::new());
        (outcome, response.into_iter().collect())
    }

    /// Pushes what changed for every watched type, in CDS, EDS, LDS, RDS
    /// order. Endpoints of updated clusters and routes after a listener
    /// update are re-sent, since Envoy waits for them to warm.
    pub fn on_resources(&mut self, resources: &ViewResources) -> Vec<DeltaDiscoveryResponse> {
        let mut responses = Vec::new();
        let mut updated: BTreeMap<TypeUrl, BTreeSet<String>> = BTreeMap::new();
        for type_url in TypeUrl::ALL {
            if !self.watches.contains_key(&type_url) {
                continue;
            }
            let resend = match type_url.follows() {
                Some(TypeUrl::Cluster) => {
                    updated.get(&TypeUrl::Cluster).cloned().unwrap_or_default()
                }
                Some(parent) if updated.contains_key(&parent) => self
                    .watches
                    .get(&type_url)
                    .map(|w| w.names.iter().map(|n| n.to_string()).collect())
                    .unwrap_or_default(),
                _ => BTreeSet::new(),
            };
            if let Some(response) = self.respond(type_url, resources, false, &resend) {
                updated.insert(
                    type_url,
                    response.resources.iter().map(|r| r.name.clone()).collect(),
                );
                responses.push(response);
            }
        }
        responses
    }

    /// The response that brings the proxy up to date for `type_url`, if
    /// anything differs (or `always`, for a first answer).
    fn respond(
        &mut self,
        type_url: TypeUrl,
        resources: &ViewResources,
        always: bool,
        resend: &BTreeSet<String>,
    ) -> Option<DeltaDiscoveryResponse> {
        let watch = self.watches.get_mut(&type_url)?;
        let wanted = watch.wanted(type_url, resources);
        let present: BTreeSet<&str> = wanted.iter().map(|&(n, _)| &**n).collect();
        let changed: Vec<(&Arc<str>, &Resource)> = wanted
            .iter()
            .filter(|&&(name, r)| {
                resend.contains(&**name) || watch.known.get(&**name) != Some(&Some(r.hash))
            })
            .copied()
            .collect();
        // Held but gone, and subscribed names that do not exist (so that
        // Envoy stops waiting for them).
        let mut removed: BTreeSet<Arc<str>> = watch
            .known
            .keys()
            .filter(|&n| !present.contains(&**n))
            .cloned()
            .collect();
        if always {
            removed.extend(
                watch
                    .names
                    .iter()
                    .filter(|&n| !present.contains(&**n))
                    .cloned(),
            );
        }
        if changed.is_empty() && removed.is_empty() && !always {
            return None;
        }
        let before = watch.known.clone();
        for (name, r) in &changed {
            watch.known.insert(Arc::clone(name), Some(r.hash));
        }
        for name in &removed {
            watch.known.remove(name);
        }
        self.next_nonce += 1;
        let nonce = self.next_nonce.to_string();
        watch.pending = Some((nonce.clone(), before));
        watch.answered_once = true;
        let version_set: Vec<(&str, &Resource)> = wanted.iter().map(|&(n, r)| (&**n, r)).collect();
        Some(DeltaDiscoveryResponse {
            system_version_info: version_of(&version_set),
            resources: changed
                .iter()
                .map(|(name, r)| PbResource {
                    name: name.to_string(),
                    version: resource_version(r.hash),
                    resource: Some((*r.any).clone()),
                    ..Default::default()
                })
                .collect(),
            type_url: type_url.as_str().to_string(),
            removed_resources: removed.iter().map(|n| n.to_string()).collect(),
            nonce,
            ..Default::default()
        })
    }
}

#[cfg(test)]
mod tests;
