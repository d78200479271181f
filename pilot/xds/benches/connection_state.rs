//! What one ADS stream's state costs: the heap a state-of-the-world and a
//! delta connection hold once a sidecar has subscribed to and ACKed every
//! type, at 1,000 services (3,000 clusters), measured with `dhat`.
//!
//! `cargo bench -p weft-xds --bench connection_state`

use weft_config::ConfigStore;
use weft_envoy_api::pb::envoy::service::discovery::v3::{DeltaDiscoveryRequest, DiscoveryRequest};
use weft_translate::ProxyView;
use weft_xds::{DeltaConnection, SotwConnection, TypeUrl, ViewResources};

mod world;
use world::{mesh, snapshot, view};

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;
const SERVICES: usize = 1000;
const CONNECTIONS: usize = 10;

fn heap() -> usize {
    dhat::HeapStats::get().curr_bytes
}

/// Each type with the names a sidecar subscribes to (none: wildcard).
fn subscriptions(resources: &ViewResources) -> Vec<(TypeUrl, Vec<String>)> {
    let named = |t| {
        resources
            .select(t, None)
            .iter()
            .map(|(n, _)| n.to_string())
            .collect()
    };
    vec![
        (TypeUrl::Cluster, Vec::new()),
        (
            TypeUrl::ClusterLoadAssignment,
            named(TypeUrl::ClusterLoadAssignment),
        ),
        (TypeUrl::Listener, Vec::new()),
        (
            TypeUrl::RouteConfiguration,
            named(TypeUrl::RouteConfiguration),
        ),
    ]
}

fn state_of_the_world(resources: &ViewResources) -> SotwConnection {
    let mut connection = SotwConnection::new("sidecar");
    for (type_url, names) in subscriptions(resources) {
        let request = DiscoveryRequest {
            type_url: type_url.as_str().into(),
            resource_names: names,
            ..Default::default()
        };
        let (_, sent) = connection.on_request(&request, resources);
        let ack = DiscoveryRequest {
            version_info: sent[0].version_info.clone(),
            response_nonce: sent[0].nonce.clone(),
            ..request
        };
        connection.on_request(&ack, resources);
    }
    connection
}

fn delta(resources: &ViewResources) -> DeltaConnection {
    let mut connection = DeltaConnection::new("sidecar");
    for (type_url, names) in subscriptions(resources) {
        let request = DeltaDiscoveryRequest {
            type_url: type_url.as_str().into(),
            resource_names_subscribe: names,
            ..Default::default()
        };
        let (_, sent) = connection.on_request(&request, resources);
        let ack = DeltaDiscoveryRequest {
            type_url: type_url.as_str().into(),
            response_nonce: sent[0].nonce.clone(),
            ..Default::default()
        };
        connection.on_request(&ack, resources);
    }
    connection
}

/// The heap `connect` leaves held, per connection.
fn held_per_connection<C>(connect: impl Fn() -> C) -> usize {
    let before = heap();
    let connections: Vec<C> = (0..CONNECTIONS).map(|_| connect()).collect();
    let held = heap().saturating_sub(before) / CONNECTIONS;
    drop(connections);
    held
}

fn main() {
    let _profiler = dhat::Profiler::builder().testing().build();
    let mut store = ConfigStore::default();
    let snapshot = snapshot(&mut store, &mesh(SERVICES, 5, |_| None));
    let view = ProxyView {
        capture: true,
        ..view(0, 0)
    };
    let resources = ViewResources::build(&snapshot, &view);
    let clusters = resources.select(TypeUrl::Cluster, None).len();
    println!("{SERVICES} services, {clusters} clusters; heap held per connection:");
    println!(
        "| state of the world | {} KiB |",
        held_per_connection(|| state_of_the_world(&resources)) / 1024
    );
    println!(
        "| delta | {} KiB |",
        held_per_connection(|| delta(&resources)) / 1024
    );
}
