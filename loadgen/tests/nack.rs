//! The client's ACK / NACK protocol, seen from the server's side: an
//! in-process ADS peer on `127.0.0.1:0` whose responses the test writes by
//! hand (no real control plane sends an undecodable resource on purpose).
//! A response with a Cluster that is not a Cluster must be NACKed (its
//! nonce, the last accepted version, `error_detail` set) and leave the
//! client's state alone; the next good response must be ACKed with its
//! version and nonce, and its EDS cluster followed by an EDS subscription
//! (dropped again, in delta, when the cluster is removed). Both
//! state-of-the-world and delta.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::pin::Pin;
use std::sync::Mutex;
use std::time::Duration;

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::cluster::v3::cluster::{ClusterDiscoveryType, DiscoveryType};
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_server::{
    AggregatedDiscoveryService, AggregatedDiscoveryServiceServer,
};
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse,
    Resource as DeltaResource,
};
use envoy_types::pb::google::protobuf::Any;
use envoy_types::util::pack_any;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};
use tokio_stream::wrappers::{TcpListenerStream, UnboundedReceiverStream};
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};
use weft_loadgen::client::ClientHandle;
use weft_loadgen::node::NodeSpec;
use weft_loadgen::state::{CLUSTER_TYPE, ENDPOINT_TYPE};

const WAIT: Duration = Duration::from_secs(10);

type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

/// One connection's worth of plumbing: requests out to the test, responses
/// in from it.
struct Peer<Req, Resp> {
    requests: UnboundedSender<Req>,
    responses: Mutex<Option<UnboundedReceiver<Resp>>>,
}

struct FakeAds {
    sotw: Peer<DiscoveryRequest, DiscoveryResponse>,
    delta: Peer<DeltaDiscoveryRequest, DeltaDiscoveryResponse>,
}

fn serve<Req: Send + 'static, Resp: Send + 'static>(
    peer: &Peer<Req, Resp>,
    mut incoming: Streaming<Req>,
) -> Result<BoxStream<Resp>, Status> {
    let responses = peer
        .responses
        .lock()
        .unwrap()
        .take()
        .ok_or_else(|| Status::unavailable("one stream per test"))?;
    let requests = peer.requests.clone();
    tokio::spawn(async move {
        while let Some(Ok(request)) = incoming.next().await {
            if requests.send(request).is_err() {
                break;
            }
        }
    });
    Ok(Box::pin(UnboundedReceiverStream::new(responses).map(Ok)))
}

#[tonic::async_trait]
impl AggregatedDiscoveryService for FakeAds {
    type StreamAggregatedResourcesStream = BoxStream<DiscoveryResponse>;
    type DeltaAggregatedResourcesStream = BoxStream<DeltaDiscoveryResponse>;

    async fn stream_aggregated_resources(
        &self,
        request: Request<Streaming<DiscoveryRequest>>,
    ) -> Result<Response<Self::StreamAggregatedResourcesStream>, Status> {
        serve(&self.sotw, request.into_inner()).map(Response::new)
    }

    async fn delta_aggregated_resources(
        &self,
        request: Request<Streaming<DeltaDiscoveryRequest>>,
    ) -> Result<Response<Self::DeltaAggregatedResourcesStream>, Status> {
        serve(&self.delta, request.into_inner()).map(Response::new)
    }
}

struct Harness {
    address: String,
    sotw_requests: UnboundedReceiver<DiscoveryRequest>,
    sotw_responses: UnboundedSender<DiscoveryResponse>,
    delta_requests: UnboundedReceiver<DeltaDiscoveryRequest>,
    delta_responses: UnboundedSender<DeltaDiscoveryResponse>,
}

async fn start_fake() -> Harness {
    let (sotw_req_tx, sotw_requests) = unbounded_channel();
    let (sotw_responses, sotw_resp_rx) = unbounded_channel();
    let (delta_req_tx, delta_requests) = unbounded_channel();
    let (delta_responses, delta_resp_rx) = unbounded_channel();
    let ads = FakeAds {
        sotw: Peer {
            requests: sotw_req_tx,
            responses: Mutex::new(Some(sotw_resp_rx)),
        },
        delta: Peer {
            requests: delta_req_tx,
            responses: Mutex::new(Some(delta_resp_rx)),
        },
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(AggregatedDiscoveryServiceServer::new(ads))
            .serve_with_incoming(TcpListenerStream::new(listener)),
    );
    Harness {
        address,
        sotw_requests,
        sotw_responses,
        delta_requests,
        delta_responses,
    }
}

async fn next<T>(rx: &mut UnboundedReceiver<T>) -> T {
    tokio::time::timeout(WAIT, rx.recv())
        .await
        .expect("the client sent no request in time")
        .expect("the fake server's stream ended")
}

fn garbage_cluster() -> Any {
    Any {
        type_url: CLUSTER_TYPE.to_string(),
        value: vec![0xff; 8],
    }
}

fn good_cluster() -> Any {
    pack_any(Cluster {
        name: "c1".to_string(),
        cluster_discovery_type: Some(ClusterDiscoveryType::Type(DiscoveryType::Eds as i32)),
        ..Default::default()
    })
}

#[tokio::test]
async fn sotw_client_nacks_an_undecodable_cluster_then_acks_a_good_one_and_follows_it_with_eds() {
    let mut h = start_fake().await;
    let client = ClientHandle::new(NodeSpec::numbered(0, "default"), false);
    let task = {
        let (client, address) = (client.clone(), h.address.clone());
        tokio::spawn(async move { client.run(&address).await })
    };
    let first = next(&mut h.sotw_requests).await;
    assert_eq!(first.type_url, CLUSTER_TYPE);
    assert!(first.node.is_some(), "the first request carries the node");
    assert!(first.resource_names.is_empty(), "CDS is a wildcard");
    let lds = next(&mut h.sotw_requests).await;
    assert!(lds.node.is_none());

    h.sotw_responses
        .send(DiscoveryResponse {
            version_info: "1".to_string(),
            type_url: CLUSTER_TYPE.to_string(),
            nonce: "n1".to_string(),
            resources: vec![garbage_cluster()],
            ..Default::default()
        })
        .unwrap();
    let nack = next(&mut h.sotw_requests).await;
    assert_eq!(nack.type_url, CLUSTER_TYPE);
    assert_eq!(nack.response_nonce, "n1");
    assert_eq!(nack.version_info, "", "nothing was accepted yet");
    assert!(nack.error_detail.is_some_and(|e| !e.message.is_empty()));
    assert_eq!(client.nacks().len(), 1);
    assert!(client.lock().state.clusters().next().is_none());

    h.sotw_responses
        .send(DiscoveryResponse {
            version_info: "2".to_string(),
            type_url: CLUSTER_TYPE.to_string(),
            nonce: "n2".to_string(),
            resources: vec![good_cluster()],
            ..Default::default()
        })
        .unwrap();
    let ack = next(&mut h.sotw_requests).await;
    assert_eq!(
        (ack.version_info.as_str(), ack.response_nonce.as_str()),
        ("2", "n2")
    );
    assert!(ack.error_detail.is_none());
    let names: Vec<String> = client
        .lock()
        .state
        .clusters()
        .map(|c| c.name.clone())
        .collect();
    assert_eq!(names, ["c1"]);
    assert_eq!(client.nacks().len(), 1);
    let eds = next(&mut h.sotw_requests).await;
    assert_eq!(
        eds.type_url, ENDPOINT_TYPE,
        "an EDS cluster is followed by EDS"
    );
    assert_eq!(eds.resource_names, ["c1"]);
    task.abort();
}

#[tokio::test]
async fn delta_client_nacks_an_undecodable_cluster_then_acks_a_good_one_and_follows_it_with_eds() {
    let mut h = start_fake().await;
    let client = ClientHandle::new(NodeSpec::numbered(0, "default"), true);
    let task = {
        let (client, address) = (client.clone(), h.address.clone());
        tokio::spawn(async move { client.run(&address).await })
    };
    let first = next(&mut h.delta_requests).await;
    assert_eq!(first.type_url, CLUSTER_TYPE);
    assert!(first.node.is_some());
    let _lds = next(&mut h.delta_requests).await;

    let resource = |any: Any| DeltaResource {
        name: "c1".to_string(),
        version: "v".to_string(),
        resource: Some(any),
        ..Default::default()
    };
    h.delta_responses
        .send(DeltaDiscoveryResponse {
            type_url: CLUSTER_TYPE.to_string(),
            nonce: "n1".to_string(),
            resources: vec![resource(garbage_cluster())],
            ..Default::default()
        })
        .unwrap();
    let nack = next(&mut h.delta_requests).await;
    assert_eq!(nack.response_nonce, "n1");
    assert!(nack.error_detail.is_some());
    assert_eq!(client.nacks().len(), 1);
    assert!(client.lock().state.clusters().next().is_none());

    h.delta_responses
        .send(DeltaDiscoveryResponse {
            type_url: CLUSTER_TYPE.to_string(),
            nonce: "n2".to_string(),
            resources: vec![resource(good_cluster())],
            ..Default::default()
        })
        .unwrap();
    let ack = next(&mut h.delta_requests).await;
    assert_eq!(ack.response_nonce, "n2");
    assert!(ack.error_detail.is_none());
    assert_eq!(client.lock().state.clusters().count(), 1);
    let eds = next(&mut h.delta_requests).await;
    assert_eq!(eds.type_url, ENDPOINT_TYPE);
    assert_eq!(eds.resource_names_subscribe, ["c1"]);

    h.delta_responses
        .send(DeltaDiscoveryResponse {
            type_url: CLUSTER_TYPE.to_string(),
            nonce: "n3".to_string(),
            removed_resources: vec!["c1".to_string()],
            ..Default::default()
        })
        .unwrap();
    let ack = next(&mut h.delta_requests).await;
    assert_eq!(ack.response_nonce, "n3");
    assert_eq!(client.lock().state.clusters().count(), 0);
    let eds = next(&mut h.delta_requests).await;
    assert_eq!(eds.type_url, ENDPOINT_TYPE);
    assert_eq!(eds.resource_names_unsubscribe, ["c1"]);
    task.abort();
}
