//! The tonic service: one task per ADS stream.

use std::pin::Pin;
use std::sync::Arc;

use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse,
    aggregated_discovery_service_server::{
        AggregatedDiscoveryService, AggregatedDiscoveryServiceServer,
    },
};
use futures::Stream;
use tokio::sync::{mpsc, watch};
use tokio_stream::StreamExt;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};
use tracing::{Instrument, debug, info, info_span, warn};

use super::{Connection, RequestOutcome, ResourceCache, proxy_view};
use crate::model::MeshSnapshot;

type ResponseStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

/// Serves ADS from the newest snapshot of a watch channel.
#[derive(Clone, Debug)]
pub struct AdsServer {
    snapshots: watch::Receiver<Arc<MeshSnapshot>>,
    cache: Arc<ResourceCache>,
}

impl AdsServer {
    pub fn new(snapshots: watch::Receiver<Arc<MeshSnapshot>>) -> Self {
        Self {
            snapshots,
            cache: Arc::new(ResourceCache::default()),
        }
    }

    pub fn into_service(self) -> AggregatedDiscoveryServiceServer<Self> {
        AggregatedDiscoveryServiceServer::new(self)
    }
}

#[tonic::async_trait]
impl AggregatedDiscoveryService for AdsServer {
    type StreamAggregatedResourcesStream = ResponseStream<DiscoveryResponse>;
    type DeltaAggregatedResourcesStream = ResponseStream<DeltaDiscoveryResponse>;

    async fn stream_aggregated_resources(
        &self,
        request: Request<Streaming<DiscoveryRequest>>,
    ) -> Result<Response<Self::StreamAggregatedResourcesStream>, Status> {
        let peer = request
            .remote_addr()
            .map(|a| a.to_string())
            .unwrap_or_default();
        let inbound = request.into_inner();
        let (tx, rx) = mpsc::channel(8);
        let stream = AdsStream {
            inbound,
            outbound: tx,
            snapshots: self.snapshots.clone(),
            cache: self.cache.clone(),
        };
        tokio::spawn(stream.run().instrument(info_span!("ads", %peer)));
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn delta_aggregated_resources(
        &self,
        _request: Request<Streaming<DeltaDiscoveryRequest>>,
    ) -> Result<Response<Self::DeltaAggregatedResourcesStream>, Status> {
        Err(Status::unimplemented(
            "Weft serves state-of-the-world ADS only for now: configure Envoy's ads_config with api_type GRPC",
        ))
    }
}

struct AdsStream {
    inbound: Streaming<DiscoveryRequest>,
    outbound: mpsc::Sender<Result<DiscoveryResponse, Status>>,
    snapshots: watch::Receiver<Arc<MeshSnapshot>>,
    cache: Arc<ResourceCache>,
}

impl AdsStream {
    async fn run(mut self) {
        // The first request names the proxy; its view decides its config.
        let first = match self.inbound.next().await {
            Some(Ok(request)) => request,
            Some(Err(status)) => return debug!(%status, "stream failed before its first request"),
            None => return,
        };
        let Some(node) = first.node.as_ref() else {
            let status = Status::invalid_argument("the first DiscoveryRequest must carry a node");
            let _ = self.outbound.send(Err(status)).await;
            return;
        };
        let view = proxy_view(node);
        let mut connection = Connection::new(node.id.clone());
        let span = info_span!("proxy", proxy = %node.id);
        async move {
            info!(namespace = %view.namespace, "proxy connected");
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
                            let snapshot = self.snapshots.borrow_and_update().clone();
                            let resources = self.cache.resources(&snapshot, &view);
                            if !self.send(connection.on_resources(&resources)).await {
                                break;
                            }
                            continue;
                        }
                    },
                };
                // Answer from the newest snapshot without marking it seen:
                // the other watched types still get pushed by `changed()`.
                let snapshot = self.snapshots.borrow().clone();
                let resources = self.cache.resources(&snapshot, &view);
                let (outcome, responses) = connection.on_request(&request, &resources);
                log_outcome(&connection, &request, &outcome);
                if !self.send(responses).await {
                    break;
                }
            }
            info!("proxy disconnected");
        }
        .instrument(span)
        .await
    }

    async fn send(&self, responses: Vec<DiscoveryResponse>) -> bool {
        for response in responses {
            debug!(type_url = %response.type_url, version = %response.version_info, nonce = %response.nonce, resources = response.resources.len(), "push");
            if self.outbound.send(Ok(response)).await.is_err() {
                return false;
            }
        }
        true
    }
}

fn log_outcome(connection: &Connection, request: &DiscoveryRequest, outcome: &RequestOutcome) {
    let type_url = request.type_url.as_str();
    match outcome {
        RequestOutcome::Nack {
            version,
            kept,
            message,
        } => warn!(
            proxy = %connection.proxy(),
            %type_url,
            rejected_version = %version,
            kept_version = kept.as_deref().unwrap_or("none"),
            error = %message,
            "xDS NACK: the proxy rejected the config and keeps its last good version"
        ),
        RequestOutcome::Ack { version } => debug!(%type_url, %version, "ACK"),
        RequestOutcome::Subscribe => {
            debug!(%type_url, names = request.resource_names.len(), "subscribe")
        }
        RequestOutcome::Stale => {
            debug!(%type_url, nonce = %request.response_nonce, "stale nonce ignored")
        }
        RequestOutcome::UnknownType => {
            warn!(%type_url, "request for a resource type Weft does not serve")
        }
    }
}
