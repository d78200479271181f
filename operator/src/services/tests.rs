#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{
    ObjectReference, Pod, PodSpec, Service as KubeService, ServicePort as KubePort, ServiceSpec,
};
use k8s_openapi::api::discovery::v1::{
    Endpoint as KubeEndpoint, EndpointConditions, EndpointPort, EndpointSlice,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use weft_config::{ConvertedResource, Input};
use weft_model::{Protocol, Resolution, Service};

use super::*;

fn meta(namespace: &str, name: &str, labels: &[(&str, &str)]) -> ObjectMeta {
    ObjectMeta {
        namespace: Some(namespace.to_string()),
        name: Some(name.to_string()),
        labels: (!labels.is_empty()).then(|| {
            labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        }),
        ..ObjectMeta::default()
    }
}

/// A port: (name, port, appProtocol, targetPort).
type Port<'a> = (&'a str, i32, Option<&'a str>, Option<IntOrString>);

fn mk_service(namespace: &str, name: &str, ports: &[Port<'_>]) -> Arc<KubeService> {
    Arc::new(KubeService {
        metadata: meta(namespace, name, &[]),
        spec: Some(ServiceSpec {
            cluster_ip: Some("10.96.0.10".to_string()),
            ports: Some(
                ports
                    .iter()
                    .map(|(name, port, app, target)| KubePort {
                        name: Some(name.to_string()),
                        port: *port,
                        app_protocol: app.map(str::to_string),
                        target_port: target.clone(),
                        protocol: Some("TCP".to_string()),
                        ..KubePort::default()
                    })
                    .collect(),
            ),
            ..ServiceSpec::default()
        }),
        ..KubeService::default()
    })
}

/// An endpoint: (address, ready, target Pod name).
type Ep<'a> = (&'a str, Option<bool>, Option<&'a str>);

fn mk_endpoint_slice(
    namespace: &str,
    name: &str,
    service: &str,
    ports: &[(&str, i32)],
    endpoints: &[Ep<'_>],
) -> Arc<EndpointSlice> {
    Arc::new(EndpointSlice {
        metadata: meta(namespace, name, &[(SERVICE_NAME_LABEL, service)]),
        address_type: "IPv4".to_string(),
        ports: Some(
            ports
                .iter()
                .map(|(name, port)| EndpointPort {
                    name: Some(name.to_string()),
                    port: Some(*port),
                    ..EndpointPort::default()
                })
                .collect(),
        ),
        endpoints: Some(
            endpoints
                .iter()
                .map(|(address, ready, pod)| KubeEndpoint {
                    addresses: vec![address.to_string()],
                    conditions: Some(EndpointConditions {
                        ready: *ready,
                        ..EndpointConditions::default()
                    }),
                    target_ref: pod.map(|pod| ObjectReference {
                        kind: Some("Pod".to_string()),
                        name: Some(pod.to_string()),
                        namespace: Some(namespace.to_string()),
                        ..ObjectReference::default()
                    }),
                    ..KubeEndpoint::default()
                })
                .collect(),
        ),
    })
}

fn mk_pod(namespace: &str, name: &str, labels: &[(&str, &str)]) -> Arc<Pod> {
    Arc::new(Pod {
        metadata: meta(namespace, name, labels),
        spec: Some(PodSpec {
            service_account_name: Some("bookinfo-reviews".to_string()),
            ..PodSpec::default()
        }),
        ..Pod::default()
    })
}

/// The one model service of the one Service given.
fn convert_one(
    services: &[Arc<KubeService>],
    slices: &[Arc<EndpointSlice>],
    pods: &[Arc<Pod>],
) -> Service {
    let inputs = build_service_inputs(services, slices, pods);
    assert_eq!(inputs.len(), 1, "{inputs:?}");
    match inputs.into_iter().next().unwrap() {
        Input::Resource {
            id,
            result: Ok(ConvertedResource::Services(mut services)),
            ..
        } => {
            assert_eq!(
                id,
                ResourceId::new(weft_model::ResourceKind::Service, "default", "reviews")
            );
            assert_eq!(services.len(), 1);
            services.remove(0)
        }
        other => panic!("not one converted service: {other:?}"),
    }
}

#[test]
fn service_gets_istio_hostname_ports_and_ready_endpoints_with_pod_labels() {
    let services = [mk_service(
        "default",
        "reviews",
        &[("http", 9080, None, Some(IntOrString::String("web".into())))],
    )];
    let slices = [mk_endpoint_slice(
        "default",
        "reviews-abcde",
        "reviews",
        &[("http", 8080)],
        &[
            ("10.0.0.1", Some(true), Some("reviews-v1")),
            ("10.0.0.2", None, Some("reviews-v2")),
            ("10.0.0.3", Some(false), Some("reviews-v3")),
            ("10.0.0.4", Some(true), Some("gone")),
        ],
    )];
    let pods = [
        mk_pod(
            "default",
            "reviews-v1",
            &[("app", "reviews"), ("version", "v1")],
        ),
        mk_pod(
            "default",
            "reviews-v2",
            &[("app", "reviews"), ("version", "v2")],
        ),
        mk_pod(
            "default",
            "reviews-v3",
            &[("app", "reviews"), ("version", "v3")],
        ),
        // Same name, other namespace: not the target.
        mk_pod("other", "gone", &[("version", "other")]),
    ];
    let service = convert_one(&services, &slices, &pods);
    assert_eq!(service.hostname, "reviews.default.svc.cluster.local");
    assert_eq!(service.namespace, "default");
    assert_eq!(service.resolution, Resolution::Static);
    assert!(service.export_to.is_empty());
    assert_eq!(service.ports.len(), 1);
    assert_eq!(service.ports[0].protocol, Protocol::Http);
    assert_eq!(service.ports[0].number, 9080);
    assert_eq!(service.ports[0].target_port, None, "a named targetPort");
    assert_eq!(service.addresses, ["10.96.0.10"], "the cluster IP");

    let addresses: Vec<&str> = service
        .endpoints
        .iter()
        .map(|e| e.address.as_str())
        .collect();
    assert_eq!(
        addresses,
        ["10.0.0.1", "10.0.0.2", "10.0.0.4"],
        "the not-ready endpoint is left out; a missing ready condition is ready"
    );
    let v1 = &service.endpoints[0];
    assert_eq!(
        v1.port_for(&service.ports[0]),
        8080,
        "the slice's port by name"
    );
    assert_eq!(
        v1.labels,
        BTreeMap::from([
            ("app".to_string(), "reviews".to_string()),
            ("version".to_string(), "v1".to_string())
        ])
    );
    assert_eq!(v1.service_account.as_deref(), Some("bookinfo-reviews"));
    assert_eq!(service.endpoints[1].labels["version"], "v2");
    assert!(
        service.endpoints[2].labels.is_empty(),
        "no Pod of that name in the namespace: no labels"
    );
}

#[test]
fn protocols_follow_app_protocol_then_port_name() {
    let services = [mk_service(
        "default",
        "reviews",
        &[
            ("http", 80, None, None),
            ("http-web", 81, None, None),
            ("http2-x", 82, None, None),
            ("grpc-api", 83, None, None),
            ("https", 443, None, None),
            ("tls-passthrough", 444, None, None),
            ("tcp-db", 5432, None, None),
            ("web", 8000, Some("http"), None),
            ("h2c", 8001, Some("kubernetes.io/h2c"), None),
            ("grpc-but-app-says-tcp", 8002, Some("tcp"), None),
            ("metrics", 9090, None, None),
            ("httpx", 9091, None, None),
        ],
    )];
    let service = convert_one(&services, &[], &[]);
    let protocols: Vec<(u16, Protocol)> = service
        .ports
        .iter()
        .map(|p| (p.number, p.protocol))
        .collect();
    assert_eq!(
        protocols,
        [
            (80, Protocol::Http),
            (81, Protocol::Http),
            (82, Protocol::Http2),
            (83, Protocol::Grpc),
            (443, Protocol::Https),
            (444, Protocol::Tls),
            (5432, Protocol::Tcp),
            (8000, Protocol::Http),
            (8001, Protocol::Http2),
            (8002, Protocol::Tcp),
            (9090, Protocol::Unknown),
            (9091, Protocol::Unknown),
        ]
    );
    assert_eq!(
        port_protocol(Some("UDP"), None, "http-dns"),
        Protocol::Unknown
    );
}

#[test]
fn numeric_target_port_is_the_default_and_slices_are_matched_by_service() {
    let services = [
        mk_service(
            "default",
            "reviews",
            &[("http", 9080, None, Some(IntOrString::Int(9081)))],
        ),
        mk_service("default", "ratings", &[("http", 9080, None, None)]),
    ];
    let slices = [
        mk_endpoint_slice(
            "default",
            "reviews-1",
            "reviews",
            &[("other", 7000)],
            &[("10.0.0.1", Some(true), None)],
        ),
        // A second slice of the same service with its own port: the same
        // address there is another endpoint.
        mk_endpoint_slice(
            "default",
            "reviews-2",
            "reviews",
            &[("http", 7001)],
            &[
                ("10.0.0.2", Some(true), None),
                ("10.0.0.1", Some(true), None),
            ],
        ),
        // The same address and port again (as while an endpoint moves
        // between slices): kept once.
        mk_endpoint_slice(
            "default",
            "reviews-3",
            "reviews",
            &[("http", 7001)],
            &[("10.0.0.2", Some(true), None)],
        ),
        // Another namespace's reviews.
        mk_endpoint_slice(
            "prod",
            "reviews-4",
            "reviews",
            &[("http", 7002)],
            &[("10.9.9.9", Some(true), None)],
        ),
    ];
    let inputs = build_service_inputs(&services, &slices, &[]);
    let reviews = inputs
        .iter()
        .find_map(|input| match input {
            Input::Resource {
                id,
                result: Ok(ConvertedResource::Services(services)),
                ..
            } if id.name == "reviews" => Some(services[0].clone()),
            _ => None,
        })
        .unwrap();
    let port = &reviews.ports[0];
    assert_eq!(port.target_port, Some(9081));
    let ports: Vec<(&str, u16)> = reviews
        .endpoints
        .iter()
        .map(|e| (e.address.as_str(), e.port_for(port)))
        .collect();
    assert_eq!(
        ports,
        [("10.0.0.1", 9081), ("10.0.0.2", 7001), ("10.0.0.1", 7001)],
        "no slice port named http: the targetPort"
    );
}

#[test]
fn headless_and_external_name_services_resolve_as_istio_does() {
    let mut headless = (*mk_service("default", "reviews", &[("http", 9080, None, None)])).clone();
    if let Some(spec) = headless.spec.as_mut() {
        spec.cluster_ip = Some("None".to_string());
    }
    let slices = [mk_endpoint_slice(
        "default",
        "reviews-1",
        "reviews",
        &[("http", 9080)],
        &[("10.0.0.1", Some(true), None)],
    )];
    let service = convert_one(&[Arc::new(headless)], &slices, &[]);
    assert_eq!(service.resolution, Resolution::Passthrough);
    assert_eq!(service.endpoints.len(), 1);
    assert!(service.addresses.is_empty(), "headless: no cluster IP");

    let mut external = (*mk_service("default", "reviews", &[("http", 80, None, None)])).clone();
    if let Some(spec) = external.spec.as_mut() {
        spec.type_ = Some("ExternalName".to_string());
        spec.external_name = Some("reviews.example.com".to_string());
    }
    let service = convert_one(&[Arc::new(external)], &[], &[]);
    assert_eq!(service.resolution, Resolution::Dns);
    assert_eq!(service.endpoints[0].address, "reviews.example.com");
}

#[test]
fn a_bad_port_is_reported_by_field() {
    let services = [mk_service(
        "default",
        "reviews",
        &[("http", 70000, None, None)],
    )];
    let inputs = build_service_inputs(&services, &[], &[]);
    match &inputs[0] {
        Input::Resource {
            result: Err(errors),
            ..
        } => {
            assert_eq!(errors[0].field, "spec.ports[0]");
            assert!(errors[0].message.contains("70000"), "{errors:?}");
        }
        other => panic!("not an error: {other:?}"),
    }
}
