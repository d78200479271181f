//! Gateways, Sidecars and tcp/tls rules.

use super::*;
use weft_model::{HostSelector, NamespaceSelector, ServerTls, TlsVersion};

fn mk_gateway(name: &str, servers: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {{name: {name}, namespace: default}}
spec:
  selector: {{istio: ingressgateway}}
  servers:
{servers}"
    )
}

fn mk_l4_virtual_service(name: &str, gateways: &str, rules: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: {name}, namespace: default}}
spec:
  hosts: ['*']
  gateways: {gateways}
{rules}"
    )
}

#[test]
fn gateway_servers_convert_with_hosts_tls_and_ports() {
    let snapshot = mk_snapshot(&mk_gateway(
        "edge",
        "  - port: {number: 80, name: http, protocol: HTTP, targetPort: 8080}
    hosts: [bookinfo/uk.bookinfo.com, './*.example.com', '*']
    tls: {httpsRedirect: true}
  - port: {number: 443, name: https, protocol: HTTPS}
    bind: 127.0.0.60
    name: main
    hosts: [uk.bookinfo.com]
    tls:
      mode: MUTUAL
      serverCertificate: /certs/server.pem
      privateKey: /certs/key.pem
      caCertificates: /certs/ca.pem
      caCrl: /certs/crl.pem
      subjectAltNames: [client.example.com]
      verifyCertificateHash: [abcd]
      maxProtocolVersion: TLSV1_3
      cipherSuites: [ECDHE-RSA-AES256-GCM-SHA384]
  - port: {number: 8443, name: tls, protocol: TLS}
    hosts: ['*.example.com']
    tls: {mode: PASSTHROUGH}
",
    ));
    let gw = &snapshot.gateways[0];
    assert_eq!(gw.key(), "default/edge");
    assert_eq!(gw.selector["istio"], "ingressgateway");
    let http = &gw.servers[0];
    assert_eq!((http.port, http.listen_port), (80, 8080));
    assert!(http.https_redirect && http.is_http() && http.tls.is_none());
    assert_eq!(
        http.hosts,
        [
            HostSelector {
                namespace: NamespaceSelector::Named("bookinfo".into()),
                host: "uk.bookinfo.com".into()
            },
            HostSelector {
                namespace: NamespaceSelector::Named("default".into()),
                host: "*.example.com".into()
            },
            HostSelector {
                namespace: NamespaceSelector::Any,
                host: "*".into()
            },
        ]
    );
    let https = &gw.servers[1];
    assert_eq!(https.bind.as_deref(), Some("127.0.0.60"));
    assert_eq!(https.name.as_deref(), Some("main"));
    let Some(ServerTls::Terminate(tls)) = &https.tls else {
        panic!("terminates: {:?}", https.tls)
    };
    assert_eq!(tls.certificate_file, "/certs/server.pem");
    assert_eq!(tls.client_ca_file.as_deref(), Some("/certs/ca.pem"));
    assert!(tls.require_client_certificate);
    assert_eq!(tls.crl_file.as_deref(), Some("/certs/crl.pem"));
    assert_eq!(tls.min_version, TlsVersion::V1_2, "Istio's default minimum");
    assert_eq!(tls.max_version, Some(TlsVersion::V1_3));
    assert_eq!(tls.verify_certificate_hash, ["abcd"]);
    assert_eq!(gw.servers[2].tls, Some(ServerTls::Passthrough));
    assert!(!gw.servers[2].is_http());
}

#[test]
fn gateway_tls_that_needs_kubernetes_or_the_ca_is_rejected_clearly() {
    let errors = errors_of(&mk_gateway(
        "edge",
        "  - port: {number: 443, name: https, protocol: HTTPS}
    hosts: ['*']
    tls: {mode: SIMPLE, credentialName: bookinfo-secret}
  - port: {number: 444, name: https-2, protocol: HTTPS}
    hosts: ['*']
    tls: {mode: ISTIO_MUTUAL}
  - port: {number: 15443, name: tls, protocol: TLS}
    hosts: ['*']
    tls: {mode: AUTO_PASSTHROUGH}
  - port: {number: 445, name: https-3, protocol: HTTPS}
    hosts: ['*']
    tls: {mode: MUTUAL, serverCertificate: /c.pem, privateKey: /k.pem}
  - port: {number: 446, name: https-4, protocol: HTTPS}
    hosts: ['*']
    tls:
      mode: SIMPLE
      tlsCertificates: [{serverCertificate: /c.pem, privateKey: /k.pem}]
  - port: {number: 447, name: https-5, protocol: HTTPS}
    hosts: ['*']
  - port: {number: 81, name: http, protocol: HTTP}
    hosts: ['*']
    defaultEndpoint: 127.0.0.1:8080
",
    ));
    let has = |needle: &str| errors.iter().any(|e| e.contains(needle));
    assert!(
        has("spec.servers[0].tls.credentialName: credentialName needs the Kubernetes operator"),
        "{errors:#?}"
    );
    assert!(
        has("spec.servers[0].tls.serverCertificate: required with mode SIMPLE"),
        "{errors:#?}"
    );
    assert!(
        has("spec.servers[1].tls.mode: ISTIO_MUTUAL needs"),
        "{errors:#?}"
    );
    assert!(
        has("spec.servers[2].tls.mode: AUTO_PASSTHROUGH routes by SNI-encoded"),
        "{errors:#?}"
    );
    assert!(
        has("spec.servers[3].tls.caCertificates: required with mode MUTUAL"),
        "{errors:#?}"
    );
    assert!(
        has("spec.servers[4].tls.tlsCertificates: not supported by Weft yet"),
        "{errors:#?}"
    );
    assert!(
        has("spec.servers[5].tls: HTTPS and TLS servers need tls"),
        "{errors:#?}"
    );
    assert!(
        has("spec.servers[6].defaultEndpoint: not supported by Weft yet"),
        "{errors:#?}"
    );
}

#[test]
fn gateway_servers_that_cannot_share_a_port_are_reported() {
    let errors = errors_of(&mk_gateway(
        "edge",
        "  - port: {number: 80, name: http, protocol: HTTP}
    hosts: [a.example.com]
  - port: {number: 80, name: http-b, protocol: HTTP}
    hosts: [b.example.com]
  - port: {number: 80, name: tcp, protocol: TCP}
    hosts: ['*']
  - port: {number: 31400, name: tcp-a, protocol: TCP}
    hosts: ['*']
  - port: {number: 31400, name: tcp-b, protocol: TCP}
    hosts: ['*']
  - port: {number: 0, name: zero, protocol: HTTP}
    hosts: ['*']
  - port: {number: 82, name: odd, protocol: SCTP}
    hosts: ['not a host', 'a b/x.com']
",
    ));
    let has = |needle: &str| errors.iter().any(|e| e.contains(needle));
    assert!(
        has("spec.servers[2].port: port 80 is already used by a plain HTTP server"),
        "{errors:#?}"
    );
    assert!(
        has("spec.servers[4].port: port 31400 is already used by another TCP server"),
        "{errors:#?}"
    );
    assert!(
        has("spec.servers[5].port.number: 0 is not a port number"),
        "{errors:#?}"
    );
    assert!(
        has("spec.servers[6].port.protocol: unknown protocol \"SCTP\""),
        "{errors:#?}"
    );
    assert!(
        has("spec.servers[6].hosts[0]: \"not a host\" is not a host"),
        "{errors:#?}"
    );
    assert!(
        has("spec.servers[6].hosts[1]: \"a b\" is not a namespace"),
        "{errors:#?}"
    );
    assert!(
        !has("spec.servers[1]"),
        "plain HTTP servers share a port: {errors:#?}"
    );
}

#[test]
fn sidecar_converts_egress_hosts_and_selector() {
    let snapshot = mk_snapshot(
        "apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: ratings, namespace: prod}
spec:
  workloadSelector: {labels: {app: ratings}}
  egress:
  - hosts: [./*, 'istio-system/*', '*/reviews.default.svc.cluster.local', '~/*']
  outboundTrafficPolicy: {mode: REGISTRY_ONLY}
",
    );
    let sidecar = &snapshot.sidecars[0];
    assert_eq!(
        sidecar
            .workload_selector
            .as_ref()
            .map(|s| s["app"].as_str()),
        Some("ratings")
    );
    assert!(sidecar.allows("prod", "anything.prod.svc.cluster.local"));
    assert!(sidecar.allows("istio-system", "istiod.istio-system.svc.cluster.local"));
    assert!(sidecar.allows("default", "reviews.default.svc.cluster.local"));
    assert!(!sidecar.allows("default", "ratings.default.svc.cluster.local"));
}

#[test]
fn sidecar_fields_that_need_capture_are_rejected() {
    let errors = errors_of(
        "apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: s, namespace: prod}
spec:
  ingress: [{port: {number: 9080, protocol: HTTP, name: http}, defaultEndpoint: 127.0.0.1:8080, captureMode: IPTABLES}]
  inboundConnectionPool: {tcp: {maxConnections: 1}}
  egress:
  - port: {number: 9080, protocol: HTTP, name: http}
    captureMode: NONE
    bind: 127.0.0.1
    hosts: [reviews.default.svc.cluster.local]
  - hosts: ['*/*']
  outboundTrafficPolicy: {mode: ALLOW_ANY, egressProxy: {host: egress}}
",
    );
    let has = |needle: &str| errors.iter().any(|e| e.contains(needle));
    assert!(
        has("spec.ingress[0].captureMode: IPTABLES needs traffic capture"),
        "{errors:#?}"
    );
    assert!(
        has("spec.inboundConnectionPool: not supported by Weft yet"),
        "{errors:#?}"
    );
    assert!(
        has("spec.egress[0].port: not supported by Weft yet"),
        "{errors:#?}"
    );
    assert!(
        has("spec.egress[0].bind: not supported by Weft yet"),
        "{errors:#?}"
    );
    assert!(
        has("spec.egress[0].captureMode: not supported by Weft yet"),
        "{errors:#?}"
    );
    assert!(
        has("spec.egress[0].hosts[0]: \"reviews.default.svc.cluster.local\" needs a namespace"),
        "{errors:#?}"
    );
    assert!(has("spec.egress: only one egress listener"), "{errors:#?}");
    // Both modes are translated (for captured sidecars).
    assert!(!has("spec.outboundTrafficPolicy.mode"), "{errors:#?}");
    assert!(
        has("spec.outboundTrafficPolicy.egressProxy: not supported by Weft yet"),
        "{errors:#?}"
    );
}

#[test]
fn a_second_namespace_wide_sidecar_is_reported() {
    let sidecar = |name: &str| {
        format!(
            "apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {{name: {name}, namespace: prod}}
spec:
  egress: [{{hosts: ['./*']}}]
"
        )
    };
    let applied = ConfigStore::default().apply(mk_inputs(&docs(&[sidecar("a"), sidecar("b")])));
    let errors: Vec<String> = applied.errors.iter().map(|e| e.to_string()).collect();
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert!(errors[0].contains("Sidecar prod/b: spec.workloadSelector: namespace prod already has a Sidecar without workloadSelector (Sidecar prod/a)"), "{errors:#?}");
    assert_eq!(applied.snapshot.sidecars.len(), 1);
    assert_eq!(applied.snapshot.sidecars[0].id.name, "a");
}

#[test]
fn tcp_and_tls_rules_convert_with_matches_and_weights() {
    let snapshot = mk_snapshot(&docs(&[
        mk_service_entry("reviews", &["v1", "v2"]),
        mk_destination_rule("reviews", &["v1", "v2"]),
        mk_gateway(
            "edge",
            "  - {port: {number: 31400, name: tcp, protocol: TCP}, hosts: ['*']}\n",
        ),
        mk_l4_virtual_service(
            "l4",
            "[edge]",
            "  tcp:
  - match: [{port: 31400, sourceLabels: {istio: ingressgateway}, sourceNamespace: default, gateways: [edge]}]
    route:
    - {destination: {host: reviews, subset: v1}, weight: 70}
    - {destination: {host: reviews, subset: v2, port: {number: 9080}}, weight: 30}
  tls:
  - match: [{sniHosts: [A.example.com, '*.b.example.com'], port: 443}]
    route: [{destination: {host: reviews}}]
",
        ),
    ]));
    let vs = &snapshot.virtual_services[0];
    let tcp = &vs.tcp[0];
    assert_eq!(tcp.matches[0].port, Some(31400));
    assert_eq!(tcp.matches[0].gateways, ["default/edge"], "qualified");
    assert_eq!(tcp.matches[0].source_namespace.as_deref(), Some("default"));
    assert_eq!(tcp.matches[0].source_labels["istio"], "ingressgateway");
    let weights: Vec<u32> = tcp.destinations.iter().map(|d| d.weight).collect();
    assert_eq!(weights, [70, 30]);
    assert_eq!(tcp.destinations[1].port, Some(9080));
    let tls = &vs.tls[0];
    assert_eq!(
        tls.matches[0].sni_hosts,
        ["a.example.com", "*.b.example.com"]
    );
    assert_eq!(tls.matches[0].l4.port, Some(443));
    assert_eq!(tls.destinations[0].weight, 100);
    assert_eq!(
        tls.destinations[0].host,
        "reviews.default.svc.cluster.local"
    );
}

#[test]
fn tcp_and_tls_rules_that_cannot_apply_are_rejected_and_mesh_ones_are_not() {
    let errors = errors_of(&docs(&[
        mk_service_entry("reviews", &["v1"]),
        mk_l4_virtual_service(
            "mesh-l4",
            "[mesh]",
            "  tcp:
  - route: [{destination: {host: reviews}}]
  tls:
  - match: [{sniHosts: [a.example.com]}]
    route: [{destination: {host: reviews}}]
",
        ),
        mk_l4_virtual_service(
            "bad",
            "[]",
            "  tcp:
  - match: [{destinationSubnets: [10.0.0.0/8], sourceSubnet: 10.1.0.0/16, gateways: [edge]}]
    route: [{destination: {host: reviews}, weight: 60}]
  tls:
  - route: [{destination: {host: reviews}}]
  - match: [{sniHosts: ['bad name']}]
    route: [{destination: {host: nowhere}}]
",
        ),
    ]));
    let has = |needle: &str| errors.iter().any(|e| e.contains(needle));
    // Rules for sidecars (`mesh`) apply on captured sidecars.
    assert!(!has("default/mesh-l4"), "{errors:#?}");
    assert!(
        has("spec.tcp[0].match[0].destinationSubnets: not supported by Weft yet"),
        "{errors:#?}"
    );
    assert!(
        has("spec.tcp[0].match[0].sourceSubnet: not supported by Weft yet"),
        "{errors:#?}"
    );
    assert!(
        has("spec.tcp[0].route: destination weights sum to 60"),
        "{errors:#?}"
    );
    assert!(
        has("spec.tls[0].match: a TLS rule needs at least one match"),
        "{errors:#?}"
    );
    assert!(
        has("spec.tls[1].match[0].sniHosts[0]: \"bad name\" is not a DNS name"),
        "{errors:#?}"
    );
}

#[test]
fn l4_destinations_must_name_a_known_port() {
    let two_ports = "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: db, namespace: default}
spec:
  hosts: [db.default.svc.cluster.local]
  resolution: STATIC
  ports: [{number: 5432, name: tcp-pg, protocol: TCP}, {number: 5433, name: tcp-replica, protocol: TCP}]
  endpoints: [{address: 10.0.0.1}]
"
    .to_string();
    let errors = errors_of(&docs(&[
        two_ports,
        mk_gateway(
            "edge",
            "  - {port: {number: 5432, name: tcp, protocol: TCP}, hosts: ['*']}\n",
        ),
        mk_l4_virtual_service(
            "db",
            "[edge]",
            "  tcp:
  - route: [{destination: {host: db}}]
  - route: [{destination: {host: db, port: {number: 1}}}]
  - route: [{destination: {host: db, port: {number: 5432}, subset: nope}}]
",
        ),
    ]));
    let has = |needle: &str| errors.iter().any(|e| e.contains(needle));
    assert!(
        has(
            "spec.tcp[0].route[0].destination.port: db.default.svc.cluster.local has 2 ports; say which one"
        ),
        "{errors:#?}"
    );
    assert!(
        has(
            "spec.tcp[1].route[0].destination.port.number: db.default.svc.cluster.local has no port 1"
        ),
        "{errors:#?}"
    );
    assert!(
        has("spec.tcp[2].route[0].destination.subset: subset nope is not defined"),
        "{errors:#?}"
    );
}

#[test]
fn gateways_whose_servers_collide_on_a_shared_proxy_are_reported() {
    let gateway = |name: &str, selector: &str, server: &str| {
        format!(
            "apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {{name: {name}, namespace: default}}
spec:
  selector: {selector}
  servers: [{server}]
"
        )
    };
    let http = "{port: {number: 8080, name: http, protocol: HTTP}, hosts: ['*']}";
    let tcp = "{port: {number: 8080, name: tcp, protocol: TCP}, hosts: ['*']}";
    let applied = ConfigStore::default().apply(mk_inputs(&docs(&[
        gateway("a", "{istio: ingressgateway}", http),
        gateway("b", "{istio: ingressgateway, app: edge}", tcp),
        gateway("c", "{istio: egressgateway}", tcp),
        gateway("d", "{istio: ingressgateway}", http),
    ])));
    let errors: Vec<String> = applied.errors.iter().map(|e| e.to_string()).collect();
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert!(
            errors[0].contains("Gateway default/b: spec.servers[0].port: port 8080 is already used by a plain HTTP server of Gateway default/a"),
            "{errors:#?}"
        );
    assert_eq!(applied.snapshot.gateways.len(), 4, "reported, not rejected");
}

#[test]
fn a_virtual_service_naming_a_missing_gateway_is_reported_and_still_applies() {
    let applied = ConfigStore::default().apply(mk_inputs(&docs(&[
        mk_service_entry("reviews", &["v1"]),
        "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews]
  gateways: [mesh, ingress/missing]
  http: [{route: [{destination: {host: reviews}}]}]
"
        .to_string(),
    ])));
    let errors: Vec<String> = applied.errors.iter().map(|e| e.to_string()).collect();
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert!(
        errors[0].contains("VirtualService default/reviews: spec.gateways[1]: gateway ingress/missing does not exist"),
        "{errors:#?}"
    );
    assert_eq!(
        applied.snapshot.virtual_services.len(),
        1,
        "still applies to mesh"
    );
}
