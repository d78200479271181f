//! One simulated Envoy on one gRPC ADS stream, state-of-the-world or delta.
//! It subscribes the way Envoy does: wildcard CDS and LDS first, then EDS for
//! the EDS clusters and RDS for the route configs the listeners reference,
//! updating those as CDS / LDS change; ACKs every response it decodes and
//! NACKs (with `error_detail`) one it cannot. Resources are decoded through
//! an [`Interner`] shared with the rest of the fleet. What it accepted, what
//! it received ([`Traffic`] per type), its ACKs and NACKs, its initial-sync
//! time and its open [`Probe`]s live behind a [`ClientHandle`] the scenario
//! reads.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DiscoveryRequest,
    aggregated_discovery_service_client::AggregatedDiscoveryServiceClient,
};
use envoy_types::pb::google::rpc::Status;
use tokio::sync::{Semaphore, mpsc};
use tokio_stream::wrappers::UnboundedReceiverStream;
use tonic::transport::{Channel, Endpoint};

use prost::Message;

use crate::intern::Interner;
use crate::measure::Probe;
use crate::node::NodeSpec;
use crate::state::{
    CLUSTER_TYPE, ClientState, DecodeError, LISTENER_TYPE, Resource, resource_name,
};
use crate::traffic::{Traffic, TrafficByType, record};

/// gRPC's INVALID_ARGUMENT, the code of a NACK's `error_detail`.
const INVALID_ARGUMENT: i32 = 3;

/// Why a client's stream ended.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("bad xDS address {address}: {source}; pass HOST:PORT")]
    Address {
        address: String,
        source: tonic::transport::Error,
    },
    #[error("cannot connect to the xDS server at {address}: {source}; is it running?")]
    Connect {
        address: String,
        source: tonic::transport::Error,
    },
    #[error("the xDS stream failed: {0}")]
    Stream(#[from] tonic::Status),
    #[error("the xDS server closed the stream")]
    Closed,
}

impl ClientError {
    /// A short label for metrics and summaries.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Address { .. } => "address",
            Self::Connect { .. } => "connect",
            Self::Stream(_) => "stream",
            Self::Closed => "closed",
        }
    }
}

/// A NACK the client sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Nack {
    pub type_url: String,
    pub nonce: String,
    pub error: String,
}

/// What a client shares with the scenario.
#[derive(Debug)]
pub struct Shared {
    pub state: ClientState,
    pub probes: Vec<Probe>,
    pub nacks: Vec<Nack>,
    /// When the client started connecting.
    pub started: Instant,
    /// When it first held CDS, LDS and every EDS / RDS name they reference.
    pub synced_at: Option<Instant>,
    /// Why its stream ended, if it did.
    pub ended: Option<String>,
    /// Every response received (ACKed or NACKed), per type URL.
    pub received: TrafficByType,
    /// ACKs sent.
    pub acks: u64,
    /// Streams opened: more than one means the client reconnected.
    pub streams: u32,
}

impl Shared {
    /// Records that `state` was just ACKed at `at`, after an update of
    /// `type_url`.
    fn accepted(&mut self, at: Instant, type_url: &str) {
        self.acks += 1;
        for probe in &mut self.probes {
            probe.observe_update(&self.state, type_url, at);
        }
        if self.synced_at.is_none() && self.state.synced() {
            self.synced_at = Some(at);
        }
    }
}

/// The scenario's handle on one client.
#[derive(Debug, Clone)]
pub struct ClientHandle {
    pub spec: NodeSpec,
    pub delta: bool,
    shared: Arc<Mutex<Shared>>,
    interner: Arc<Interner>,
}

impl ClientHandle {
    /// A client with an interner of its own.
    pub fn new(spec: NodeSpec, delta: bool) -> Self {
        Self::with_interner(spec, delta, Arc::new(Interner::new()))
    }

    /// A client decoding through `interner` (shared with other clients).
    pub fn with_interner(spec: NodeSpec, delta: bool, interner: Arc<Interner>) -> Self {
        Self {
            spec,
            delta,
            interner,
            shared: Arc::new(Mutex::new(Shared {
                state: ClientState::default(),
                probes: Vec::new(),
                nacks: Vec::new(),
                started: Instant::now(),
                synced_at: None,
                ended: None,
                received: TrafficByType::new(),
                acks: 0,
                streams: 0,
            })),
        }
    }

    /// The shared state (a poisoned lock is still read: it holds plain data).
    pub fn lock(&self) -> MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Time from connecting to the initial sync, once synced.
    pub fn initial_sync(&self) -> Option<Duration> {
        let shared = self.lock();
        shared
            .synced_at
            .map(|at| at.saturating_duration_since(shared.started))
    }

    /// Opens `probe`; it is checked on every later ACK (so open it before
    /// making the change it waits for).
    pub fn add_probe(&self, probe: Probe) {
        self.lock().probes.push(probe);
    }

    /// The latency of the probe named `name` (None while open).
    pub fn latency(&self, name: &str) -> Option<Duration> {
        self.lock()
            .probes
            .iter()
            .find(|p| p.name == name)
            .and_then(Probe::latency)
    }

    /// The NACKs sent so far.
    pub fn nacks(&self) -> Vec<Nack> {
        self.lock().nacks.clone()
    }

    /// Why the stream ended, if it did.
    pub fn ended(&self) -> Option<String> {
        self.lock().ended.clone()
    }

    /// Responses received so far, all types.
    pub fn received(&self) -> Traffic {
        self.lock().received.values().copied().sum()
    }

    /// Responses received so far, per type URL.
    pub fn received_by_type(&self) -> TrafficByType {
        self.lock().received.clone()
    }

    /// ACKs sent so far.
    pub fn acks(&self) -> u64 {
        self.lock().acks
    }

    /// Runs the client until its stream ends (never returns `Ok` while the
    /// server keeps it open); records why it ended.
    pub async fn run(&self, address: &str) -> Result<(), ClientError> {
        self.run_gated(address, None).await
    }

    /// [`ClientHandle::run`], connecting only while holding a permit of
    /// `gate`: a thousand clients connecting at once overflow the server's
    /// accept backlog (the kernel then resets some). The initial-sync clock
    /// starts once the permit is held, on the first stream only: a client
    /// run again after its stream failed counts its initial sync from its
    /// first attempt.
    pub async fn run_gated(
        &self,
        address: &str,
        gate: Option<&Semaphore>,
    ) -> Result<(), ClientError> {
        let permit = match gate {
            // A closed gate lets everyone through.
            Some(gate) => gate.acquire().await.ok(),
            None => None,
        };
        {
            let mut shared = self.lock();
            if shared.streams == 0 {
                shared.started = Instant::now();
            } else {
                // A new stream starts from nothing (a delta server resends
                // what is subscribed; stale resources must not linger).
                shared.state.types.clear();
            }
            shared.streams += 1;
        }
        let connected = connect(address).await;
        drop(permit);
        let result = match connected {
            Ok(channel) if self.delta => self.run_delta(channel).await,
            Ok(channel) => self.run_sotw(channel).await,
            Err(err) => Err(err),
        };
        let reason = match &result {
            Ok(()) => "finished".to_string(),
            Err(err) => err.to_string(),
        };
        self.lock().ended = Some(reason);
        result
    }

    async fn run_sotw(&self, channel: Channel) -> Result<(), ClientError> {
        let (tx, rx) = mpsc::unbounded_channel();
        let send = |request: DiscoveryRequest| tx.send(request).map_err(|_| ClientError::Closed);
        for (i, type_url) in [CLUSTER_TYPE, LISTENER_TYPE].into_iter().enumerate() {
            send(DiscoveryRequest {
                node: (i == 0).then(|| self.spec.node()),
                type_url: type_url.to_string(),
                ..Default::default()
            })?;
        }
        let mut client =
            AggregatedDiscoveryServiceClient::new(channel).max_decoding_message_size(usize::MAX);
        let mut stream = client
            .stream_aggregated_resources(UnboundedReceiverStream::new(rx))
            .await?
            .into_inner();
        let mut subscribed: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
        // Per type: (last accepted version, last nonce).
        let mut last: BTreeMap<String, (String, String)> = BTreeMap::new();
        while let Some(response) = stream.message().await? {
            let type_url = response.type_url.clone();
            let traffic = Traffic::response(response.encoded_len());
            let names = |t: &str, s: &BTreeMap<&str, BTreeSet<String>>| {
                s.get(t)
                    .map(|n| n.iter().cloned().collect())
                    .unwrap_or_default()
            };
            let decoded: Result<BTreeMap<String, Resource>, DecodeError> = response
                .resources
                .iter()
                .enumerate()
                .map(|(i, any)| {
                    let resource = self.interner.decode(&type_url, any)?;
                    let name =
                        resource_name(&resource).map_or_else(|| i.to_string(), str::to_string);
                    Ok((name, resource))
                })
                .collect();
            let accepted_version = last
                .get(&type_url)
                .map(|(v, _)| v.clone())
                .unwrap_or_default();
            let resources = match decoded {
                Ok(resources) => resources,
                Err(err) => {
                    self.nack(&type_url, &response.nonce, &err, traffic);
                    send(DiscoveryRequest {
                        type_url: type_url.clone(),
                        version_info: accepted_version.clone(),
                        response_nonce: response.nonce.clone(),
                        resource_names: names(&type_url, &subscribed),
                        error_detail: Some(nack_status(&err)),
                        ..Default::default()
                    })?;
                    last.insert(type_url, (accepted_version, response.nonce));
                    continue;
                }
            };
            // Applied, then ACKed (as Envoy does): whoever sees the ACK
            // sees the state.
            let wanted = {
                let mut shared = self.lock();
                let at = Instant::now();
                record(&mut shared.received, &type_url, traffic);
                shared
                    .state
                    .replace(at, &type_url, &response.version_info, resources);
                shared.accepted(at, &type_url);
                let wanted = follow_up(&shared.state, &type_url, &subscribed);
                if let Some((follow_type, names)) = &wanted {
                    shared.state.retain(follow_type, names);
                }
                wanted
            };
            send(DiscoveryRequest {
                type_url: type_url.clone(),
                version_info: response.version_info.clone(),
                response_nonce: response.nonce.clone(),
                resource_names: names(&type_url, &subscribed),
                ..Default::default()
            })?;
            last.insert(type_url, (response.version_info, response.nonce));
            // Never subscribed and nothing to ask for: an empty SotW request
            // would be a wildcard, so none is sent (follow_up says None).
            if let Some((follow_type, names)) = wanted {
                let (version, nonce) = last.get(follow_type).cloned().unwrap_or_default();
                send(DiscoveryRequest {
                    type_url: follow_type.to_string(),
                    version_info: version,
                    response_nonce: nonce,
                    resource_names: names.iter().cloned().collect(),
                    ..Default::default()
                })?;
                subscribed.insert(follow_type, names);
            }
        }
        Err(ClientError::Closed)
    }

    async fn run_delta(&self, channel: Channel) -> Result<(), ClientError> {
        let (tx, rx) = mpsc::unbounded_channel();
        let send =
            |request: DeltaDiscoveryRequest| tx.send(request).map_err(|_| ClientError::Closed);
        for (i, type_url) in [CLUSTER_TYPE, LISTENER_TYPE].into_iter().enumerate() {
            send(DeltaDiscoveryRequest {
                node: (i == 0).then(|| self.spec.node()),
                type_url: type_url.to_string(),
                ..Default::default()
            })?;
        }
        let mut client =
            AggregatedDiscoveryServiceClient::new(channel).max_decoding_message_size(usize::MAX);
        let mut stream = client
            .delta_aggregated_resources(UnboundedReceiverStream::new(rx))
            .await?
            .into_inner();
        let mut subscribed: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
        while let Some(response) = stream.message().await? {
            let type_url = response.type_url.clone();
            let traffic = Traffic::response(response.encoded_len());
            let decoded: Result<BTreeMap<String, Resource>, DecodeError> = response
                .resources
                .iter()
                .filter_map(|r| r.resource.as_ref().map(|any| (r.name.clone(), any)))
                .map(|(name, any)| Ok((name, self.interner.decode(&type_url, any)?)))
                .collect();
            let updated = match decoded {
                Ok(updated) => updated,
                Err(err) => {
                    self.nack(&type_url, &response.nonce, &err, traffic);
                    send(DeltaDiscoveryRequest {
                        type_url,
                        response_nonce: response.nonce,
                        error_detail: Some(nack_status(&err)),
                        ..Default::default()
                    })?;
                    continue;
                }
            };
            let version = if response.system_version_info.is_empty() {
                &response.nonce
            } else {
                &response.system_version_info
            };
            let wanted = {
                let mut shared = self.lock();
                let at = Instant::now();
                record(&mut shared.received, &type_url, traffic);
                shared.state.apply_delta(
                    at,
                    &type_url,
                    version,
                    updated,
                    &response.removed_resources,
                );
                shared.accepted(at, &type_url);
                follow_up(&shared.state, &type_url, &subscribed)
            };
            send(DeltaDiscoveryRequest {
                type_url: type_url.clone(),
                response_nonce: response.nonce.clone(),
                ..Default::default()
            })?;
            if let Some((follow_type, names)) = wanted {
                let old = subscribed.remove(follow_type).unwrap_or_default();
                send(DeltaDiscoveryRequest {
                    type_url: follow_type.to_string(),
                    resource_names_subscribe: names.difference(&old).cloned().collect(),
                    resource_names_unsubscribe: old.difference(&names).cloned().collect(),
                    ..Default::default()
                })?;
                subscribed.insert(follow_type, names);
            }
        }
        Err(ClientError::Closed)
    }

    fn nack(&self, type_url: &str, nonce: &str, err: &DecodeError, traffic: Traffic) {
        tracing::warn!(proxy = %self.spec.node_id(), type_url, nonce, %err, "NACK");
        let mut shared = self.lock();
        record(&mut shared.received, type_url, traffic);
        shared.nacks.push(Nack {
            type_url: type_url.to_string(),
            nonce: nonce.to_string(),
            error: err.to_string(),
        });
    }
}

/// The follow-up subscription an accepted update of `type_url` implies
/// (EDS names after CDS, RDS names after LDS), if it differs from what is
/// `subscribed` (a type never subscribed counts as subscribed to nothing).
/// Names are copied only when the subscription changes.
fn follow_up(
    state: &ClientState,
    type_url: &str,
    subscribed: &BTreeMap<&str, BTreeSet<String>>,
) -> Option<(&'static str, BTreeSet<String>)> {
    if type_url != CLUSTER_TYPE && type_url != LISTENER_TYPE {
        return None;
    }
    let (follow_type, wanted) = state.follow_up(type_url)?;
    let old = subscribed.get(follow_type);
    let same = match old {
        Some(old) => old.len() == wanted.len() && old.iter().zip(&wanted).all(|(a, b)| a == b),
        None => wanted.is_empty(),
    };
    (!same).then(|| {
        (
            follow_type,
            wanted.into_iter().map(str::to_string).collect(),
        )
    })
}

fn nack_status(err: &DecodeError) -> Status {
    Status {
        code: INVALID_ARGUMENT,
        message: err.to_string(),
        ..Default::default()
    }
}

async fn connect(address: &str) -> Result<Channel, ClientError> {
    let uri = if address.contains("://") {
        address.to_string()
    } else {
        format!("http://{address}")
    };
    Endpoint::from_shared(uri)
        .map_err(|source| ClientError::Address {
            address: address.to_string(),
            source,
        })?
        .connect()
        .await
        .map_err(|source| ClientError::Connect {
            address: address.to_string(),
            source,
        })
}
