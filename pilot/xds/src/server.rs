//! The ADS server: one task per stream, state of the world or delta;
//! [`super::grpc`] frames its responses. A stream whose first request asks
//! for one of istiod's debug types (`istio.io/debug/...`) is a debug
//! client (`istioctl proxy-status`), not a proxy: it is answered from
//! [`Connections`] and the resource cache, if [`DebugAccess`] admits it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use prost::Message;
use tokio::sync::{mpsc, watch};
use tokio_stream::StreamExt;
use tonic::{Status, Streaming};
use tracing::{Instrument, debug, info, info_span, warn};
use weft_envoy_api::pb::envoy::config::core::v3::ControlPlane;
use weft_envoy_api::pb::envoy::config::core::v3::Node;
use weft_envoy_api::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse, Resource,
};
use weft_envoy_api::pb::google::protobuf::Any;

use super::connections::{Acked, Connections, OpenConnection, Rejected, Sent};
use super::debug::{
    AccessDenied, DEBUG_CONFIG_DUMP, DEBUG_PREFIX, DEBUG_SYNCZ, DebugAccess, LoopbackOnly,
    client_configs, config_dump,
};
use super::grpc::AdsService;
use super::metrics::XdsProtocol;
use super::pushes::Pushes;
use super::{
    DeltaConnection, Rejections, RequestOutcome, ResourceCache, SotwConnection, TypeUrl,
    ViewResources, XdsMetrics,
};
use weft_envoy_api::util::pack_any;
use weft_model::MeshSnapshot;
use weft_translate::node::proxy_view;

/// Responses a stream may have queued before it waits for the proxy to
/// read. While it waits, newer snapshots replace older ones in the watch
/// channel, so a slow proxy is only ever sent the newest config.
const STREAM_QUEUE: usize = 4;

/// Serves ADS from the newest snapshot of a watch channel.
#[derive(Clone, Debug)]
pub struct AdsServer {
    snapshots: watch::Receiver<Arc<MeshSnapshot>>,
    cache: Arc<ResourceCache>,
    metrics: Arc<XdsMetrics>,
    rejections: Rejections,
    connections: Connections,
    pushes: Pushes,
    debug_access: Arc<dyn DebugAccess>,
    control_plane: ControlPlane,
}

/// Who opened a stream: its address and the bearer token it presented.
#[derive(Clone, Debug, Default)]
pub struct Caller {
    pub address: Option<SocketAddr>,
    pub bearer: Option<String>,
}

impl AdsServer {
    /// A server whose metrics count but are not exported; see
    /// [`AdsServer::with_metrics`].
    pub fn new(snapshots: watch::Receiver<Arc<MeshSnapshot>>) -> Self {
        Self {
            snapshots,
            cache: Arc::new(ResourceCache::default()),
            metrics: Arc::new(XdsMetrics::default()),
            rejections: Rejections::default(),
            connections: Connections::default(),
            pushes: Pushes::default(),
            debug_access: Arc::new(LoopbackOnly),
            control_plane: super::debug::control_plane("weft", env!("CARGO_PKG_VERSION")),
        }
    }

    /// Records the open streams and their sync state in `connections`,
    /// and the pushes in `pushes` (the debug endpoints read them), and
    /// computes resources in `cache` (shared with the config dumps).
    pub fn with_debug_state(
        mut self,
        connections: Connections,
        pushes: Pushes,
        cache: Arc<ResourceCache>,
    ) -> Self {
        self.connections = connections;
        self.pushes = pushes;
        self.cache = cache;
        self
    }

    /// Who may ask for istiod's debug types on this port (default:
    /// loopback callers), and how the answers name this instance.
    pub fn with_debug_access(mut self, access: Arc<dyn DebugAccess>, instance_id: &str) -> Self {
        self.debug_access = access;
        self.control_plane = super::debug::control_plane(instance_id, env!("CARGO_PKG_VERSION"));
        self
    }

    /// Records connections, pushes and NACKs in `metrics` (e.g. ones
    /// registered with [`XdsMetrics::register`]).
    pub fn with_metrics(mut self, metrics: Arc<XdsMetrics>) -> Self {
        self.metrics = metrics;
        self
    }

    /// Records each proxy's standing rejections (NACKs) in `rejections`.
    pub fn with_rejections(mut self, rejections: Rejections) -> Self {
        self.rejections = rejections;
        self
    }

    /// The gRPC service (`tonic::transport::Server::add_service`).
    pub fn into_service(self) -> AdsService {
        AdsService::new(self)
    }

    /// Serves one stream, from `peer`, in a task of its own; returns the
    /// responses it queues.
    pub(super) fn spawn<P: Protocol>(
        &self,
        inbound: Streaming<P::Request>,
        caller: Caller,
    ) -> mpsc::Receiver<Result<P::Response, Status>> {
        let (tx, rx) = mpsc::channel(STREAM_QUEUE);
        let peer = caller.address.map(|a| a.to_string()).unwrap_or_default();
        let stream = AdsStream::<P> {
            inbound,
            outbound: tx,
            server: self.clone(),
            caller,
        };
        tokio::spawn(
            stream
                .run()
                .instrument(info_span!("ads", %peer, protocol = P::NAME)),
        );
        rx
    }
}

/// What differs between state-of-the-world and delta streams; the stream
/// loop is the same.
pub(super) trait Protocol: Sized + Send + 'static {
    const NAME: &'static str;
    const PROTOCOL: XdsProtocol;
    type Request: Message + Default + Send + Sync + 'static + std::fmt::Debug;
    type Response: Message + Default + Send + 'static;
    fn new(proxy: String) -> Self;
    fn node(request: &Self::Request) -> Option<&Node>;
    fn type_url(request: &Self::Request) -> &str;
    /// The nonce of the response the request answers ("" for none).
    fn response_nonce(request: &Self::Request) -> &str;
    /// The resource names the request subscribes to.
    fn resource_names(request: &Self::Request) -> Vec<String>;
    fn on_request(
        &mut self,
        request: &Self::Request,
        resources: &ViewResources,
    ) -> (RequestOutcome, Vec<Self::Response>);
    fn on_resources(&mut self, resources: &ViewResources) -> Vec<Self::Response>;
    /// (type URL, version, nonce, resources) of a response.
    fn describe(response: &Self::Response) -> (&str, &str, &str, usize);
    /// A response of a debug type carrying `resources` (named).
    fn debug_response(
        type_url: &str,
        nonce: String,
        resources: Vec<(String, Any)>,
        control_plane: ControlPlane,
    ) -> Self::Response;
}

impl Protocol for SotwConnection {
    const NAME: &'static str = "sotw";
    const PROTOCOL: XdsProtocol = XdsProtocol::Sotw;
    type Request = DiscoveryRequest;
    type Response = DiscoveryResponse;
    fn new(proxy: String) -> Self {
        SotwConnection::new(proxy)
    }
    fn node(request: &DiscoveryRequest) -> Option<&Node> {
        request.node.as_ref()
    }
    fn type_url(request: &DiscoveryRequest) -> &str {
        &request.type_url
    }
    fn response_nonce(request: &DiscoveryRequest) -> &str {
        &request.response_nonce
    }
    fn resource_names(request: &DiscoveryRequest) -> Vec<String> {
        request.resource_names.clone()
    }
    fn on_request(
        &mut self,
        request: &DiscoveryRequest,
        resources: &ViewResources,
    ) -> (RequestOutcome, Vec<DiscoveryResponse>) {
        SotwConnection::on_request(self, request, resources)
    }
    fn on_resources(&mut self, resources: &ViewResources) -> Vec<DiscoveryResponse> {
        SotwConnection::on_resources(self, resources)
    }
    fn describe(r: &DiscoveryResponse) -> (&str, &str, &str, usize) {
        (&r.type_url, &r.version_info, &r.nonce, r.resources.len())
    }
    fn debug_response(
        type_url: &str,
        nonce: String,
        resources: Vec<(String, Any)>,
        control_plane: ControlPlane,
    ) -> DiscoveryResponse {
        DiscoveryResponse {
            version_info: nonce.clone(),
            resources: resources.into_iter().map(|(_, any)| any).collect(),
            type_url: type_url.to_string(),
            nonce,
            control_plane: Some(control_plane),
            ..Default::default()
        }
    }
}

impl Protocol for DeltaConnection {
    const NAME: &'static str = "delta";
    const PROTOCOL: XdsProtocol = XdsProtocol::Delta;
    type Request = DeltaDiscoveryRequest;
    type Response = DeltaDiscoveryResponse;
    fn new(proxy: String) -> Self {
        DeltaConnection::new(proxy)
    }
    fn node(request: &DeltaDiscoveryRequest) -> Option<&Node> {
        request.node.as_ref()
    }
    fn type_url(request: &DeltaDiscoveryRequest) -> &str {
        &request.type_url
    }
    fn response_nonce(request: &DeltaDiscoveryRequest) -> &str {
        &request.response_nonce
    }
    fn resource_names(request: &DeltaDiscoveryRequest) -> Vec<String> {
        request.resource_names_subscribe.clone()
    }
    fn on_request(
        &mut self,
        request: &DeltaDiscoveryRequest,
        resources: &ViewResources,
    ) -> (RequestOutcome, Vec<DeltaDiscoveryResponse>) {
        DeltaConnection::on_request(self, request, resources)
    }
    fn on_resources(&mut self, resources: &ViewResources) -> Vec<DeltaDiscoveryResponse> {
        DeltaConnection::on_resources(self, resources)
    }
    fn describe(r: &DeltaDiscoveryResponse) -> (&str, &str, &str, usize) {
        (
            &r.type_url,
            &r.system_version_info,
            &r.nonce,
            r.resources.len() + r.removed_resources.len(),
        )
    }
    fn debug_response(
        type_url: &str,
        nonce: String,
        resources: Vec<(String, Any)>,
        control_plane: ControlPlane,
    ) -> DeltaDiscoveryResponse {
        DeltaDiscoveryResponse {
            system_version_info: nonce.clone(),
            resources: resources
                .into_iter()
                .map(|(name, any)| Resource {
                    name,
                    version: nonce.clone(),
                    resource: Some(any),
                    ..Default::default()
                })
                .collect(),
            type_url: type_url.to_string(),
            nonce,
            control_plane: Some(control_plane),
            ..Default::default()
        }
    }
}

struct AdsStream<P: Protocol> {
    inbound: Streaming<P::Request>,
    outbound: mpsc::Sender<Result<P::Response, Status>>,
    server: AdsServer,
    caller: Caller,
}

impl<P: Protocol> AdsStream<P> {
    async fn run(mut self) {
        // The first request names the proxy; its view decides its config.
        let first = match self.inbound.next().await {
            Some(Ok(request)) => request,
            Some(Err(status)) => return debug!(%status, "stream failed before its first request"),
            None => return,
        };
        if P::type_url(&first).starts_with(DEBUG_PREFIX) {
            return self.serve_debug(first).await;
        }
        let Some(node) = P::node(&first) else {
            warn!("refused a stream whose first request carries no node");
            let status = Status::invalid_argument("the first discovery request must carry a node");
            let _ = self.outbound.send(Err(status)).await;
            return;
        };
        let view = proxy_view(node);
        let proxy = node.id.clone();
        let mut protocol = P::new(proxy.clone());
        let span = info_span!("proxy", proxy = %node.id);
        let open = self.server.connections.open(
            node,
            view.clone(),
            self.caller
                .address
                .map(|a| a.to_string())
                .unwrap_or_default(),
            P::PROTOCOL,
            SystemTime::now(),
        );
        async move {
            info!(namespace = %view.namespace, "proxy connected");
            let _connected = self.server.metrics.connected(P::PROTOCOL);
            let mut next = Some(first);
            loop {
                let request = match next.take() {
                    Some(request) => request,
                    None => tokio::select! {
                        request = self.inbound.next() => match request {
                            Some(Ok(request)) => request,
                            Some(Err(status)) => {
                                debug!(%status, "stream ended with an error");
                                break;
                            }
                            None => break,
                        },
                        changed = self.server.snapshots.changed() => {
                            if changed.is_err() {
                                break;
                            }
                            let started = Instant::now();
                            let snapshot = self.server.snapshots.borrow_and_update().clone();
                            let resources = self.server.cache.resources(&snapshot, &view);
                            let responses = protocol.on_resources(&resources);
                            let count = responses.len();
                            if !self.send(responses, started, &open).await {
                                break;
                            }
                            let cache = &self.server.cache;
                            self.server.pushes.record(
                                snapshot.version,
                                || cache.changes(&snapshot),
                                started,
                                count,
                            );
                            continue;
                        }
                    },
                };
                // Answer from the newest snapshot without marking it seen:
                // the other watched types still get pushed by `changed()`.
                let started = Instant::now();
                let snapshot = self.server.snapshots.borrow().clone();
                let resources = self.server.cache.resources(&snapshot, &view);
                let (outcome, responses) = protocol.on_request(&request, &resources);
                let type_url = P::type_url(&request);
                log_outcome(&proxy, type_url, &outcome);
                self.server.metrics.record_outcome(type_url, &outcome);
                self.server
                    .rejections
                    .record(&proxy, type_url, &outcome, SystemTime::now());
                record_sync(&open, type_url, P::response_nonce(&request), &outcome);
                if !self.send(responses, started, &open).await {
                    break;
                }
            }
            self.server.rejections.disconnected(&proxy);
            info!("proxy disconnected");
        }
        .instrument(span)
        .await
    }

    /// Queues `responses`, built since `started`, and records each push.
    async fn send(
        &self,
        responses: Vec<P::Response>,
        started: Instant,
        open: &OpenConnection,
    ) -> bool {
        for response in responses {
            let (type_url, version, nonce, count) = P::describe(&response);
            debug!(%type_url, %version, resources = count, "push");
            let type_url = TypeUrl::parse(type_url);
            let sent = Sent {
                version: version.to_string(),
                nonce: nonce.to_string(),
                at: SystemTime::now(),
                resources: count,
            };
            if self.outbound.send(Ok(response)).await.is_err() {
                return false;
            }
            if let Some(type_url) = type_url {
                open.sent(type_url, sent);
                self.server.metrics.record_push(type_url, started.elapsed());
            }
        }
        true
    }

    /// A debug client's stream: each request for a debug type is answered
    /// (its ACKs are not), once [`DebugAccess`] admitted the caller.
    async fn serve_debug(mut self, first: P::Request) {
        let peer = self.caller.address.map(|a| a.ip());
        if let Err(denied) = self
            .server
            .debug_access
            .check(peer, self.caller.bearer.as_deref())
            .await
        {
            warn!(peer = ?self.caller.address, %denied, "refused a debug xDS request");
            let status = match denied {
                AccessDenied::Unauthenticated(m) => Status::unauthenticated(m),
                AccessDenied::Forbidden(m) => Status::permission_denied(m),
            };
            let _ = self.outbound.send(Err(status)).await;
            return;
        }
        let mut last_nonce = String::new();
        let mut next = Some(first);
        let mut count = 0u64;
        loop {
            let request = match next.take() {
                Some(request) => request,
                None => match self.inbound.next().await {
                    Some(Ok(request)) => request,
                    _ => break,
                },
            };
            if !last_nonce.is_empty() && P::response_nonce(&request) == last_nonce {
                continue; // the ACK of the last answer
            }
            count += 1;
            let nonce = format!("debug-{count}");
            let response = match self.debug_resources(&request) {
                Ok(resources) => Ok(P::debug_response(
                    P::type_url(&request),
                    nonce.clone(),
                    resources,
                    self.server.control_plane.clone(),
                )),
                Err(status) => Err(status),
            };
            let failed = response.is_err();
            if self.outbound.send(response).await.is_err() || failed {
                break;
            }
            last_nonce = nonce;
        }
    }

    fn debug_resources(&self, request: &P::Request) -> Result<Vec<(String, Any)>, Status> {
        match P::type_url(request) {
            DEBUG_SYNCZ => Ok(client_configs(&self.server.connections.list())
                .into_iter()
                .map(|config| {
                    let name = config.node.as_ref().map(|n| n.id.clone());
                    (name.unwrap_or_default(), pack_any(config))
                })
                .collect()),
            DEBUG_CONFIG_DUMP => {
                let names = P::resource_names(request);
                let [proxy] = names.as_slice() else {
                    return Err(Status::invalid_argument(format!(
                        "{DEBUG_CONFIG_DUMP} takes exactly one resource name, the proxy                          (`<pod>.<namespace>` or its node id); got {}",
                        names.len()
                    )));
                };
                let Some(connection) = self.server.connections.find(proxy) else {
                    return Err(Status::not_found(format!(
                        "proxy {proxy:?} is not connected to this Weft instance"
                    )));
                };
                let snapshot = self.server.snapshots.borrow().clone();
                let resources = self.server.cache.resources(&snapshot, &connection.view);
                Ok(config_dump(&connection, &resources)
                    .configs
                    .into_iter()
                    .map(|any| (String::new(), any))
                    .collect())
            }
            other => Err(Status::unimplemented(format!(
                "{other}: Weft serves {DEBUG_SYNCZ} and {DEBUG_CONFIG_DUMP}"
            ))),
        }
    }
}

/// Records in the stream's sync state what a request said.
fn record_sync(open: &OpenConnection, type_url: &str, nonce: &str, outcome: &RequestOutcome) {
    let Some(type_url) = TypeUrl::parse(type_url) else {
        return;
    };
    let now = SystemTime::now();
    match outcome {
        RequestOutcome::Ack { version } => open.acked(
            type_url,
            Acked {
                version: version.clone(),
                nonce: nonce.to_string(),
                at: now,
            },
        ),
        // A changed subscription that answers a response also accepts it.
        RequestOutcome::Subscribe if !nonce.is_empty() => open.acked(
            type_url,
            Acked {
                version: String::new(),
                nonce: nonce.to_string(),
                at: now,
            },
        ),
        RequestOutcome::Subscribe => open.subscribed(type_url),
        RequestOutcome::Nack {
            version, message, ..
        } => open.rejected(
            type_url,
            Rejected {
                version: version.clone(),
                message: message.clone(),
                at: now,
            },
        ),
        RequestOutcome::Stale | RequestOutcome::UnknownType => {}
    }
}

fn log_outcome(proxy: &str, type_url: &str, outcome: &RequestOutcome) {
    match outcome {
        RequestOutcome::Nack {
            version,
            kept,
            message,
        } => warn!(
            %proxy,
            %type_url,
            rejected_version = %version,
            kept_version = kept.as_deref().unwrap_or("none"),
            error = %message,
            "xDS NACK: the proxy rejected the config and keeps its last good version"
        ),
        RequestOutcome::Ack { version } => debug!(%type_url, %version, "ACK"),
        RequestOutcome::Subscribe => debug!(%type_url, "subscribe"),
        RequestOutcome::Stale => debug!(%type_url, "stale nonce ignored"),
        RequestOutcome::UnknownType => {
            warn!(%type_url, "request for a resource type Weft does not serve")
        }
    }
}
