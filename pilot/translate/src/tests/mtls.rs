//! Mesh mTLS in translation: inbound listeners per PeerAuthentication mode
//! (STRICT, PERMISSIVE, DISABLE, port-level, precedence), ISTIO_MUTUAL and
//! auto mTLS upstream.

use prost::{Message, Name};
use weft_envoy_api::pb::envoy::config::cluster::v3::Cluster;
use weft_envoy_api::pb::envoy::config::core::v3::{TransportSocket, transport_socket};
use weft_envoy_api::pb::envoy::config::listener::v3::{Listener, filter};
use weft_envoy_api::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpConnectionManager, http_connection_manager::ForwardClientCertDetails,
};
use weft_envoy_api::pb::envoy::extensions::filters::network::tcp_proxy::v3::TcpProxy;
use weft_envoy_api::pb::envoy::extensions::transport_sockets::tls::v3::{
    DownstreamTlsContext, UpstreamTlsContext, common_tls_context::ValidationContextType,
};
use weft_envoy_api::pb::google::protobuf::Any;

use super::*;

fn decode<T: Message + Name + Default>(any: &Any) -> T {
    assert_eq!(any.type_url, T::type_url());
    T::decode(any.value.as_slice()).unwrap()
}

fn socket_any(socket: &TransportSocket) -> &Any {
    match &socket.config_type {
        Some(transport_socket::ConfigType::TypedConfig(any)) => any,
        other => panic!("no typed config: {other:?}"),
    }
}

const WEB_SIDECAR: &str = "apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: web, namespace: prod}
spec:
  workloadSelector: {labels: {app: web}}
  ingress:
  - port: {number: 9080, protocol: HTTP, name: http}
    defaultEndpoint: 127.0.0.1:8080
  - port: {number: 9443, protocol: TCP, name: tcp}
    defaultEndpoint: 127.0.0.1:8443
";

fn pa(namespace: &str, name: &str, body: &str) -> String {
    format!(
        "apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {{name: {name}, namespace: {namespace}}}
spec:
{body}"
    )
}

fn web_view() -> ProxyView {
    ProxyView {
        namespace: "prod".to_string(),
        labels: [("app".to_string(), "web".to_string())].into(),
        ..Default::default()
    }
}

fn web_listeners(policies: &[String]) -> Vec<Listener> {
    let mut parts = vec![WEB_SIDECAR.to_string()];
    parts.extend_from_slice(policies);
    let snapshot = mk_snapshot(&docs(&parts));
    assert_eq!(
        check_consistency(&snapshot, &web_view()),
        Vec::<String>::new()
    );
    build_listeners(&snapshot, &web_view())
}

/// (chain name, transport protocol matched, has TLS) per filter chain.
fn chains(listener: &Listener) -> Vec<(String, String, bool)> {
    listener
        .filter_chains
        .iter()
        .map(|c| {
            (
                c.name.clone(),
                c.filter_chain_match
                    .as_ref()
                    .map(|m| m.transport_protocol.clone())
                    .unwrap_or_default(),
                c.transport_socket.is_some(),
            )
        })
        .collect()
}

fn chain(name: &str, protocol: &str, tls: bool) -> (String, String, bool) {
    (name.to_string(), protocol.to_string(), tls)
}

#[test]
fn without_policies_inbound_is_permissive() {
    let listeners = web_listeners(&[]);
    let names: Vec<&str> = listeners.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(names, ["0.0.0.0_9080", "0.0.0.0_9443"]);
    for l in &listeners {
        assert_eq!(
            chains(l),
            [
                chain("mtls", "tls", true),
                chain("plaintext", "raw_buffer", false)
            ]
        );
        assert_eq!(
            l.listener_filters
                .iter()
                .map(|f| f.name.as_str())
                .collect::<Vec<_>>(),
            ["envoy.filters.listener.tls_inspector"]
        );
        let alpn = &l.filter_chains[0]
            .filter_chain_match
            .as_ref()
            .unwrap()
            .application_protocols;
        assert!(alpn.iter().any(|a| a == "istio"), "{alpn:?}");
    }
}

#[test]
fn strict_requires_client_certificates_from_sds() {
    let listeners = web_listeners(&[pa("prod", "default", "  mtls: {mode: STRICT}\n")]);
    let http = &listeners[0];
    assert_eq!(chains(http), [chain("mtls", "", true)]);
    assert!(http.listener_filters.is_empty());
    let tls: DownstreamTlsContext = decode(socket_any(
        http.filter_chains[0].transport_socket.as_ref().unwrap(),
    ));
    assert_eq!(tls.require_client_certificate.map(|b| b.value), Some(true));
    let common = tls.common_tls_context.unwrap();
    assert_eq!(common.tls_certificate_sds_secret_configs[0].name, "default");
    match common.validation_context_type {
        Some(ValidationContextType::CombinedValidationContext(c)) => {
            assert_eq!(
                c.validation_context_sds_secret_config.unwrap().name,
                "ROOTCA"
            )
        }
        other => panic!("no ROOTCA validation: {other:?}"),
    }
    // The application sees the caller's SPIFFE ID.
    let Some(filter::ConfigType::TypedConfig(any)) = &http.filter_chains[0].filters[0].config_type
    else {
        panic!("no HCM");
    };
    let hcm: HttpConnectionManager = decode(any);
    assert_eq!(
        hcm.forward_client_cert_details,
        ForwardClientCertDetails::SanitizeSet as i32
    );
    assert!(hcm.set_current_client_cert_details.unwrap().uri);
    // TCP ports proxy to their inbound cluster.
    let Some(filter::ConfigType::TypedConfig(any)) =
        &listeners[1].filter_chains[0].filters[0].config_type
    else {
        panic!("no TCP proxy");
    };
    let tcp: TcpProxy = decode(any);
    assert_eq!(
        format!("{:?}", tcp.cluster_specifier),
        "Some(Cluster(\"inbound|9443||\"))"
    );
}

#[test]
fn disable_is_plain_text_and_ports_and_workloads_take_precedence() {
    // Mesh STRICT, namespace DISABLE, workload UNSET with 9443 STRICT.
    let listeners = web_listeners(&[
        pa("istio-system", "default", "  mtls: {mode: STRICT}\n"),
        pa("prod", "default", "  mtls: {mode: DISABLE}\n"),
        pa(
            "prod",
            "web",
            "  selector: {matchLabels: {app: web}}\n  portLevelMtls: {9443: {mode: STRICT}}\n",
        ),
    ]);
    assert_eq!(chains(&listeners[0]), [chain("plaintext", "", false)]);
    assert_eq!(chains(&listeners[1]), [chain("mtls", "", true)]);
    // Another workload of the namespace: the namespace's DISABLE.
    let other = ProxyView {
        labels: [("app".to_string(), "other".to_string())].into(),
        ..web_view()
    };
    let snapshot = mk_snapshot(&docs(&[
        WEB_SIDECAR.replace("{labels: {app: web}}", "{labels: {app: other}}"),
        pa("istio-system", "default", "  mtls: {mode: STRICT}\n"),
        pa("prod", "default", "  mtls: {mode: DISABLE}\n"),
        pa(
            "prod",
            "web",
            "  selector: {matchLabels: {app: web}}\n  mtls: {mode: STRICT}\n",
        ),
    ]));
    let listeners = build_listeners(&snapshot, &other);
    assert_eq!(chains(&listeners[0]), [chain("plaintext", "", false)]);
    // Another namespace: the mesh's STRICT.
    let elsewhere = ProxyView {
        namespace: "dev".to_string(),
        ..other
    };
    let snapshot = mk_snapshot(&docs(&[
        WEB_SIDECAR
            .replace("namespace: prod", "namespace: dev")
            .replace("{labels: {app: web}}", "{labels: {app: other}}"),
        pa("istio-system", "default", "  mtls: {mode: STRICT}\n"),
        pa("prod", "default", "  mtls: {mode: DISABLE}\n"),
    ]));
    let listeners = build_listeners(&snapshot, &elsewhere);
    assert_eq!(chains(&listeners[0]), [chain("mtls", "", true)]);
}

#[test]
fn inbound_clusters_forward_to_the_default_endpoint() {
    let snapshot = mk_snapshot(WEB_SIDECAR);
    let clusters = build_clusters(&snapshot, &web_view());
    let inbound: Vec<&Cluster> = clusters
        .iter()
        .filter(|c| c.name.starts_with("inbound|"))
        .collect();
    assert_eq!(inbound.len(), 2);
    assert_eq!(inbound[0].name, "inbound|9080||");
    let endpoint = &inbound[0].load_assignment.as_ref().unwrap().endpoints[0].lb_endpoints[0];
    let Some(HostIdentifier::Endpoint(e)) = &endpoint.host_identifier else {
        panic!("no endpoint");
    };
    let Some(address::Address::SocketAddress(a)) = &e.address.as_ref().unwrap().address else {
        panic!("no socket address");
    };
    assert_eq!(a.address, "127.0.0.1");
    assert_eq!(format!("{:?}", a.port_specifier), "Some(PortValue(8080))");
    // A proxy the Sidecar does not select gets no inbound listener.
    assert!(build_listeners(&snapshot, &ProxyView::default()).is_empty());
}

/// `reviews` in `default` with two endpoints: 10.0.0.1 (service account
/// `reviews`, sidecar) and 10.0.0.2 (no sidecar).
fn reviews_with_sidecars(extra: &[String]) -> MeshSnapshot {
    let mut parts = vec![
        "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 9080, name: http, protocol: HTTP}]
  endpoints:
  - {address: 10.0.0.1, serviceAccount: reviews, labels: {version: v1, security.istio.io/tlsMode: istio}}
  - {address: 10.0.0.2, labels: {version: v2}}
"
        .to_string(),
    ];
    parts.extend_from_slice(extra);
    let snapshot = mk_snapshot(&docs(&parts));
    assert_eq!(
        check_consistency(&snapshot, &ProxyView::default()),
        Vec::<String>::new()
    );
    snapshot
}

fn cluster<'a>(clusters: &'a [Cluster], name: &str) -> &'a Cluster {
    clusters.iter().find(|c| c.name == name).unwrap()
}

fn upstream(socket: &TransportSocket) -> UpstreamTlsContext {
    decode(socket_any(socket))
}

/// (SNI, SAN matchers as text, SDS certificate, SDS validation).
fn mesh_tls(tls: &UpstreamTlsContext) -> (String, Vec<String>, String, String) {
    let common = tls.common_tls_context.clone().unwrap();
    let Some(ValidationContextType::CombinedValidationContext(c)) = common.validation_context_type
    else {
        panic!("no combined validation");
    };
    let sans = c
        .default_validation_context
        .unwrap()
        .match_typed_subject_alt_names
        .iter()
        .map(|m| format!("{:?}", m.matcher.as_ref().unwrap().match_pattern))
        .collect();
    let sds = &common.tls_certificate_sds_secret_configs[0];
    assert!(format!("{:?}", sds.sds_config).contains("sds-grpc"));
    (
        tls.sni.clone(),
        sans,
        sds.name.clone(),
        c.validation_context_sds_secret_config.unwrap().name,
    )
}

#[test]
fn istio_mutual_uses_sds_istio_sni_and_the_destination_identities() {
    let snapshot = reviews_with_sidecars(&["apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: default}
spec:
  host: reviews
  trafficPolicy: {tls: {mode: ISTIO_MUTUAL}}
  subsets: [{name: v1, labels: {version: v1}}]
"
    .to_string()]);
    let clusters = build_clusters(&snapshot, &ProxyView::default());
    let all = cluster(
        &clusters,
        "outbound|9080||reviews.default.svc.cluster.local",
    );
    assert!(all.transport_socket_matches.is_empty());
    assert_eq!(
        mesh_tls(&upstream(all.transport_socket.as_ref().unwrap())),
        (
            "outbound_.9080_._.reviews.default.svc.cluster.local".to_string(),
            vec!["Some(Exact(\"spiffe://cluster.local/ns/default/sa/reviews\"))".to_string()],
            "default".to_string(),
            "ROOTCA".to_string()
        )
    );
    let v1 = cluster(
        &clusters,
        "outbound|9080|v1|reviews.default.svc.cluster.local",
    );
    assert_eq!(
        upstream(v1.transport_socket.as_ref().unwrap()).sni,
        "outbound_.9080_.v1_.reviews.default.svc.cluster.local"
    );
    // No auto SNI from Host: the SNI is Istio's.
    assert!(
        !format!("{:?}", all.typed_extension_protocol_options).contains("auto_sni: true"),
        "{:?}",
        all.typed_extension_protocol_options
    );
}

#[test]
fn istio_mutual_without_known_identities_checks_the_trust_domain() {
    let snapshot = mk_snapshot(&docs(&[
        mk_service_entry("ratings", &["v1"]),
        "apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: ratings, namespace: default}
spec:
  host: ratings
  trafficPolicy: {tls: {mode: ISTIO_MUTUAL}}
"
        .to_string(),
    ]));
    let clusters = build_clusters(&snapshot, &ProxyView::default());
    let c = cluster(
        &clusters,
        "outbound|9080||ratings.default.svc.cluster.local",
    );
    let (_, sans, _, _) = mesh_tls(&upstream(c.transport_socket.as_ref().unwrap()));
    assert_eq!(sans, ["Some(Prefix(\"spiffe://cluster.local/\"))"]);
}

#[test]
fn auto_mtls_picks_mtls_for_endpoints_with_sidecars() {
    let snapshot = reviews_with_sidecars(&[]);
    let clusters = build_clusters(&snapshot, &ProxyView::default());
    let c = cluster(
        &clusters,
        "outbound|9080||reviews.default.svc.cluster.local",
    );
    assert!(c.transport_socket.is_none());
    let names: Vec<&str> = c
        .transport_socket_matches
        .iter()
        .map(|m| m.name.as_str())
        .collect();
    assert_eq!(names, ["tlsMode-istio", "tlsMode-disabled"]);
    let tls = upstream(
        c.transport_socket_matches[0]
            .transport_socket
            .as_ref()
            .unwrap(),
    );
    assert_eq!(
        mesh_tls(&tls).0,
        "outbound_.9080_._.reviews.default.svc.cluster.local"
    );
    let assignments = build_load_assignments(&snapshot, &ProxyView::default());
    let marked: Vec<bool> = assignments[0].endpoints[0]
        .lb_endpoints
        .iter()
        .map(|e| {
            e.metadata.as_ref().is_some_and(|m| {
                m.filter_metadata
                    .get("envoy.transport_socket_match")
                    .is_some_and(|t| format!("{t:?}").contains("istio"))
            })
        })
        .collect();
    assert_eq!(marked, [true, false]);
}

#[test]
fn auto_mtls_stays_off_under_disable_and_explicit_tls() {
    let disabled = reviews_with_sidecars(&[pa("default", "default", "  mtls: {mode: DISABLE}\n")]);
    let clusters = build_clusters(&disabled, &ProxyView::default());
    let c = cluster(
        &clusters,
        "outbound|9080||reviews.default.svc.cluster.local",
    );
    assert!(c.transport_socket_matches.is_empty());
    assert!(c.transport_socket.is_none());
    let assignments = build_load_assignments(&disabled, &ProxyView::default());
    assert!(assignments[0].endpoints[0].lb_endpoints.iter().all(|e| {
        e.metadata.as_ref().is_none_or(|m| {
            !m.filter_metadata
                .contains_key("envoy.transport_socket_match")
        })
    }));

    let simple = reviews_with_sidecars(&["apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: default}
spec:
  host: reviews
  trafficPolicy: {tls: {mode: SIMPLE}}
"
    .to_string()]);
    let clusters = build_clusters(&simple, &ProxyView::default());
    let c = cluster(
        &clusters,
        "outbound|9080||reviews.default.svc.cluster.local",
    );
    assert!(c.transport_socket_matches.is_empty());
    assert!(c.transport_socket.is_some());
}

/// A readable view of a listener: Any payloads decoded.
fn readable(l: &Listener) -> String {
    let mut out = format!(
        "listener {} {:?}\n  listener filters: {:?}\n",
        l.name,
        l.address,
        l.listener_filters
            .iter()
            .map(|f| &f.name)
            .collect::<Vec<_>>()
    );
    for c in &l.filter_chains {
        out += &format!("  chain {} match {:#?}\n", c.name, c.filter_chain_match);
        if let Some(socket) = &c.transport_socket {
            let tls: DownstreamTlsContext = decode(socket_any(socket));
            out += &format!("  tls {tls:#?}\n");
        }
        for f in &c.filters {
            let Some(filter::ConfigType::TypedConfig(any)) = &f.config_type else {
                continue;
            };
            if f.name.contains("http_connection_manager") {
                let hcm: HttpConnectionManager = decode(any);
                out += &format!(
                    "  hcm xfcc {:?} set {:?}\n  routes {:#?}\n",
                    hcm.forward_client_cert_details,
                    hcm.set_current_client_cert_details,
                    hcm.route_specifier
                );
            } else {
                let tcp: TcpProxy = decode(any);
                out += &format!("  tcp_proxy {:?}\n", tcp.cluster_specifier);
            }
        }
    }
    out
}

#[test]
fn mtls_listeners_snapshot() {
    let listeners = web_listeners(&[pa(
        "prod",
        "web",
        "  selector: {matchLabels: {app: web}}\n  mtls: {mode: STRICT}\n  portLevelMtls: {9443: {mode: PERMISSIVE}}\n",
    )]);
    let text: Vec<String> = listeners.iter().map(readable).collect();
    insta::assert_snapshot!(text.join("\n"));
}
