//! The ADS server: one task per stream, state of the world or delta;
//! [`super::grpc`] frames its responses.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use prost::Message;
use tokio::sync::{mpsc, watch};
use tokio_stream::StreamExt;
use tonic::{Status, Streaming};
use tracing::{Instrument, debug, info, info_span, warn};
use weft_envoy_api::pb::envoy::config::core::v3::Node;
use weft_envoy_api::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse,
};

use super::grpc::AdsService;
use super::metrics::XdsProtocol;
use super::{
    DeltaConnection, Rejections, RequestOutcome, ResourceCache, SotwConnection, TypeUrl,
    ViewResources, XdsMetrics,
};
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
        }
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
        peer: String,
    ) -> mpsc::Receiver<Result<P::Response, Status>> {
        let (tx, rx) = mpsc::channel(STREAM_QUEUE);
        let stream = AdsStream::<P> {
            inbound,
            outbound: tx,
            snapshots: self.snapshots.clone(),
            cache: self.cache.clone(),
            metrics: self.metrics.clone(),
            rejections: self.rejections.clone(),
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
    fn on_request(
        &mut self,
        request: &Self::Request,
        resources: &ViewResources,
    ) -> (RequestOutcome, Vec<Self::Response>);
    fn on_resources(&mut self, resources: &ViewResources) -> Vec<Self::Response>;
    fn describe(response: &Self::Response) -> (&str, &str, usize);
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
    fn describe(r: &DiscoveryResponse) -> (&str, &str, usize) {
        (&r.type_url, &r.version_info, r.resources.len())
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
    fn describe(r: &DeltaDiscoveryResponse) -> (&str, &str, usize) {
        (
            &r.type_url,
            &r.system_version_info,
            r.resources.len() + r.removed_resources.len(),
        )
    }
}

struct AdsStream<P: Protocol> {
    inbound: Streaming<P::Request>,
    outbound: mpsc::Sender<Result<P::Response, Status>>,
    snapshots: watch::Receiver<Arc<MeshSnapshot>>,
    cache: Arc<ResourceCache>,
    metrics: Arc<XdsMetrics>,
    rejections: Rejections,
}

impl<P: Protocol> AdsStream<P> {
    async fn run(mut self) {
        // The first request names the proxy; its view decides its config.
        let first = match self.inbound.next().await {
            Some(Ok(request)) => request,
            Some(Err(status)) => return debug!(%status, "stream failed before its first request"),
            None => return,
        };
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
        async move {
            info!(namespace = %view.namespace, "proxy connected");
            let _connected = self.metrics.connected(P::PROTOCOL);
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
                        changed = self.snapshots.changed() => {
                            if changed.is_err() {
                                break;
                            }
                            let started = Instant::now();
                            let snapshot = self.snapshots.borrow_and_update().clone();
                            let resources = self.cache.resources(&snapshot, &view);
                            if !self.send(protocol.on_resources(&resources), started).await {
                                break;
                            }
                            continue;
                        }
                    },
                };
                // Answer from the newest snapshot without marking it seen:
                // the other watched types still get pushed by `changed()`.
                let started = Instant::now();
                let snapshot = self.snapshots.borrow().clone();
                let resources = self.cache.resources(&snapshot, &view);
                let (outcome, responses) = protocol.on_request(&request, &resources);
                log_outcome(&proxy, P::type_url(&request), &outcome);
                self.metrics.record_outcome(P::type_url(&request), &outcome);
                self.rejections
                    .record(&proxy, P::type_url(&request), &outcome, SystemTime::now());
                if !self.send(responses, started).await {
                    break;
                }
            }
            self.rejections.disconnected(&proxy);
            info!("proxy disconnected");
        }
        .instrument(span)
        .await
    }

    /// Queues `responses`, built since `started`, and records each push.
    async fn send(&self, responses: Vec<P::Response>, started: Instant) -> bool {
        for response in responses {
            let (type_url, version, count) = P::describe(&response);
            debug!(%type_url, %version, resources = count, "push");
            let type_url = TypeUrl::parse(type_url);
            if self.outbound.send(Ok(response)).await.is_err() {
                return false;
            }
            if let Some(type_url) = type_url {
                self.metrics.record_push(type_url, started.elapsed());
            }
        }
        true
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
