//! The ADS server over real gRPC, in-process: a stuck client does not hold
//! back others, and a delta client receives only what changed.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DiscoveryRequest,
    aggregated_discovery_service_client::AggregatedDiscoveryServiceClient,
};
use tokio::sync::{mpsc, watch};
use tokio_stream::StreamExt;
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};
use weft_config::ConfigStore;
use weft_config::parse_documents;
use weft_model::MeshSnapshot;
use weft_xds::{AdsServer, TypeUrl};

const CLUSTERS: &str = "type.googleapis.com/envoy.config.cluster.v3.Cluster";

fn mk_mesh(services: usize) -> String {
    (0..services)
        .map(|i| {
            format!(
                "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: svc{i}}}
spec:
  hosts: [svc{i}.default.svc.cluster.local]
  resolution: STATIC
  ports: [{{number: 80, name: http, protocol: HTTP}}]
  endpoints: [{{address: 10.0.0.1}}]
"
            )
        })
        .collect::<Vec<_>>()
        .join("---\n")
}

async fn start_server(
    store: &mut ConfigStore,
    yaml: &str,
) -> (String, watch::Sender<Arc<MeshSnapshot>>) {
    let applied = store.apply(parse_documents("mesh.yaml", yaml));
    assert!(applied.errors.is_empty(), "{:?}", applied.errors);
    let (tx, rx) = watch::channel(applied.snapshot);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(AdsServer::new(rx).into_service())
            .serve_with_incoming(TcpListenerStream::new(listener)),
    );
    (address, tx)
}

fn node(id: &str) -> Option<Node> {
    Some(Node {
        id: id.to_string(),
        ..Default::default()
    })
}

#[tokio::test]
async fn a_stuck_client_does_not_hold_back_the_others() {
    let mut store = ConfigStore::default();
    let (address, snapshots) = start_server(&mut store, &mk_mesh(1)).await;

    // The stuck client subscribes and then never reads a response.
    let mut stuck_client = AggregatedDiscoveryServiceClient::connect(address.clone())
        .await
        .unwrap();
    let (stuck_tx, stuck_rx) = mpsc::channel(4);
    stuck_tx
        .send(DiscoveryRequest {
            node: node("stuck"),
            type_url: CLUSTERS.into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let _stuck_stream = stuck_client
        .stream_aggregated_resources(ReceiverStream::new(stuck_rx))
        .await
        .unwrap();

    let mut client = AggregatedDiscoveryServiceClient::connect(address)
        .await
        .unwrap();
    let (tx, rx) = mpsc::channel(4);
    tx.send(DiscoveryRequest {
        node: node("healthy"),
        type_url: CLUSTERS.into(),
        ..Default::default()
    })
    .await
    .unwrap();
    let mut responses = client
        .stream_aggregated_resources(ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    let first = responses.next().await.unwrap().unwrap();
    assert_eq!(first.resources.len(), 1);

    // Many pushes, each with one more service; the healthy client ACKs and
    // must end on the newest, however stuck the other one is.
    let mut last = first;
    for n in 2..=60 {
        let applied = store.apply(parse_documents("mesh.yaml", &mk_mesh(n)));
        snapshots.send_replace(applied.snapshot);
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while last.resources.len() < 60 {
        tx.send(DiscoveryRequest {
            type_url: CLUSTERS.into(),
            version_info: last.version_info.clone(),
            response_nonce: last.nonce.clone(),
            ..Default::default()
        })
        .await
        .unwrap();
        last = tokio::time::timeout_at(deadline, responses.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
    }
    assert_eq!(last.resources.len(), 60);
}

#[tokio::test]
async fn a_delta_client_gets_only_changes() {
    let mut store = ConfigStore::default();
    let (address, snapshots) = start_server(&mut store, &mk_mesh(3)).await;
    let mut client = AggregatedDiscoveryServiceClient::connect(address)
        .await
        .unwrap();
    let (tx, rx) = mpsc::channel(4);
    tx.send(DeltaDiscoveryRequest {
        node: node("delta"),
        type_url: CLUSTERS.into(),
        ..Default::default()
    })
    .await
    .unwrap();
    let mut responses = client
        .delta_aggregated_resources(ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    let first = responses.next().await.unwrap().unwrap();
    assert_eq!(first.resources.len(), 3);
    tx.send(DeltaDiscoveryRequest {
        type_url: CLUSTERS.into(),
        response_nonce: first.nonce.clone(),
        ..Default::default()
    })
    .await
    .unwrap();

    let applied = store.apply(parse_documents("mesh.yaml", &mk_mesh(4)));
    snapshots.send_replace(applied.snapshot);
    let added = responses.next().await.unwrap().unwrap();
    let names: Vec<&str> = added.resources.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["outbound|80||svc3.default.svc.cluster.local"]);
    tx.send(DeltaDiscoveryRequest {
        type_url: CLUSTERS.into(),
        response_nonce: added.nonce.clone(),
        ..Default::default()
    })
    .await
    .unwrap();

    let applied = store.apply(parse_documents("mesh.yaml", &mk_mesh(2)));
    snapshots.send_replace(applied.snapshot);
    let removed = responses.next().await.unwrap().unwrap();
    assert!(removed.resources.is_empty());
    assert_eq!(
        removed.removed_resources,
        [
            "outbound|80||svc2.default.svc.cluster.local",
            "outbound|80||svc3.default.svc.cluster.local"
        ]
    );
    assert_eq!(TypeUrl::parse(&removed.type_url), Some(TypeUrl::Cluster));
}

#[tokio::test]
async fn a_stream_without_a_node_is_refused() {
    let mut store = ConfigStore::default();
    let (address, _snapshots) = start_server(&mut store, &mk_mesh(1)).await;
    let mut client = AggregatedDiscoveryServiceClient::connect(address)
        .await
        .unwrap();
    let (tx, rx) = mpsc::channel(1);
    tx.send(DiscoveryRequest {
        type_url: CLUSTERS.into(),
        ..Default::default()
    })
    .await
    .unwrap();
    let mut responses = client
        .stream_aggregated_resources(ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    let status = responses.next().await.unwrap().unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
}
