//! Realistic Istio YAML for each kind, covering every field group: it must
//! parse, survive a serde round trip unchanged, and carry the values written.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::time::Duration;

use serde_json::Value;
use weft_crds::{
    CaptureMode, DestinationRuleSpec, DocumentError, GatewaySpec, H2UpgradePolicy, IstioDuration,
    Location, MeshDocument, MeshResource, MtlsMode, OutboundTrafficMode, ProxyProtocolVersion,
    RedirectPortSelection, Resolution, ServerTlsMode, ServiceEntrySpec, SidecarSpec, SimpleLb,
    StringMatch, StringMatchKind, TlsMode, TlsProtocol, UnmatchedPreflights, VirtualServiceSpec,
};

const REVIEWS_VS: &str = include_str!("examples/reviews-virtualservice.yaml");
const REVIEWS_DR: &str = include_str!("examples/reviews-destinationrule.yaml");
const STATIC_SE: &str = include_str!("examples/serviceentry-static.yaml");
const DNS_SE: &str = include_str!("examples/serviceentry-dns.yaml");
const SELECTOR_SE: &str = include_str!("examples/serviceentry-selector.yaml");
const GATEWAY: &str = include_str!("examples/gateway.yaml");
const SIDECAR: &str = include_str!("examples/sidecar.yaml");

mod common;
use common::{assert_round_trip, doc, value};

fn vs(d: &MeshDocument) -> &VirtualServiceSpec {
    match &d.resource {
        MeshResource::VirtualService(spec) => spec,
        other => panic!("expected a VirtualService, got {}", other.kind()),
    }
}

fn dr(d: &MeshDocument) -> &DestinationRuleSpec {
    match &d.resource {
        MeshResource::DestinationRule(spec) => spec,
        other => panic!("expected a DestinationRule, got {}", other.kind()),
    }
}

fn se(d: &MeshDocument) -> &ServiceEntrySpec {
    match &d.resource {
        MeshResource::ServiceEntry(spec) => spec,
        other => panic!("expected a ServiceEntry, got {}", other.kind()),
    }
}

#[test]
fn virtual_service_parses_every_field_group() {
    let d = doc(REVIEWS_VS);
    assert_eq!(d.resource.kind(), weft_crds::Kind::VirtualService);
    assert_eq!(d.meta.name, "reviews");
    assert_eq!(d.meta.namespace.as_deref(), Some("bookinfo"));
    assert_eq!(d.meta.generation, Some(3));
    assert_eq!(d.meta.labels["app"], "reviews");
    assert_eq!(d.meta.annotations["team"], "books");

    let spec = vs(&d);
    assert_eq!(spec.hosts.len(), 2);
    assert_eq!(spec.gateways, ["mesh", "bookinfo/bookinfo-gateway"]);
    assert_eq!(spec.export_to, ["."]);
    assert_eq!(spec.http.len(), 10);

    let jason = &spec.http[0];
    assert_eq!(jason.name.as_deref(), Some("jason"));
    let m = &jason.matches[0];
    assert_eq!(m.headers["end-user"], StringMatch::exact("jason"));
    assert_eq!(m.headers["x-canary"], StringMatch::Empty);
    assert_eq!(
        m.uri.as_ref().and_then(StringMatch::kind),
        Some((StringMatchKind::Prefix, "/reviews"))
    );
    assert_eq!(m.method, Some(StringMatch::regex("GET|HEAD")));
    assert_eq!(m.port, Some(9080));
    assert_eq!(m.ignore_uri_case, Some(true));
    assert_eq!(m.query_params["debug"], StringMatch::exact("true"));
    assert_eq!(m.without_headers["x-skip"], StringMatch::exact("1"));
    assert_eq!(m.source_namespace.as_deref(), Some("bookinfo"));
    assert_eq!(m.stat_prefix.as_deref(), Some("reviews-jason"));

    let weights: Vec<i32> = jason.route.iter().map(|r| r.weight).collect();
    assert_eq!(weights, [75, 25]);
    assert_eq!(jason.route[0].destination.subset.as_deref(), Some("v2"));
    assert_eq!(
        jason.route[0]
            .destination
            .port
            .as_ref()
            .and_then(|p| p.number),
        Some(9080)
    );
    assert_eq!(jason.timeout, Some(IstioDuration::from_millis(500)));
    let retries = jason.retries.as_ref().expect("retries");
    assert_eq!(retries.attempts, 3);
    assert_eq!(
        retries.per_try_timeout.map(|d| d.as_duration()),
        Some(Duration::from_millis(100))
    );
    assert_eq!(retries.retry_remote_localities, Some(true));
    assert_eq!(retries.backoff, Some(IstioDuration::from_millis(25)));
    let fault = jason.fault.as_ref().expect("fault");
    let delay = fault.delay.as_ref().expect("delay");
    assert_eq!(delay.fixed_delay, Some(IstioDuration::from_secs(5)));
    assert_eq!(delay.percentage.map(|p| p.value), Some(0.1));
    assert_eq!(fault.abort.as_ref().and_then(|a| a.http_status), Some(503));
    assert_eq!(
        jason.mirror.as_ref().map(|m| m.host.as_str()),
        Some("reviews-shadow")
    );
    assert_eq!(jason.mirror_percentage.map(|p| p.value), Some(10.0));
    assert_eq!(jason.mirror_percent, Some(20));
    assert_eq!(jason.mirrors[0].destination.host, "reviews-audit");
    let cors = jason.cors_policy.as_ref().expect("cors");
    assert_eq!(cors.allow_origins.len(), 2);
    assert_eq!(cors.max_age, Some(IstioDuration::from_secs(86_400)));
    assert_eq!(cors.unmatched_preflights, Some(UnmatchedPreflights::Ignore));
    let headers = jason.headers.as_ref().expect("headers");
    let request = headers.request.as_ref().expect("request ops");
    assert_eq!(request.set["x-route"], "jason");
    assert_eq!(request.add["x-hops"], "1");
    assert_eq!(request.remove, ["cookie"]);

    let redirect = spec.http[1].redirect.as_ref().expect("redirect");
    assert_eq!(
        redirect.derive_port,
        Some(RedirectPortSelection::FromRequestPort)
    );
    assert_eq!(redirect.redirect_code, Some(308));
    assert_eq!(
        spec.http[2].redirect.as_ref().and_then(|r| r.port),
        Some(8443)
    );
    let direct = spec.http[3]
        .direct_response
        .as_ref()
        .expect("direct response");
    assert_eq!(direct.status, 410);
    assert!(
        direct
            .body
            .as_ref()
            .and_then(|b| b.string.as_ref())
            .is_some()
    );
    assert_eq!(
        spec.http[4]
            .direct_response
            .as_ref()
            .and_then(|d| d.body.as_ref()?.bytes.as_deref()),
        Some("dW5hdmFpbGFibGU=")
    );
    assert_eq!(
        spec.http[5].rewrite.as_ref().and_then(|r| r.uri.as_deref()),
        Some("/reviews")
    );
    let regex = spec.http[6]
        .rewrite
        .as_ref()
        .and_then(|r| r.uri_regex_rewrite.as_ref());
    assert_eq!(regex.and_then(|r| r.rewrite.as_deref()), Some("/\\2/\\1"));
    let abort = spec.http[7]
        .fault
        .as_ref()
        .and_then(|f| f.abort.as_ref())
        .expect("abort");
    assert_eq!(abort.grpc_status.as_deref(), Some("UNAVAILABLE"));
    assert_eq!(
        spec.http[8]
            .delegate
            .as_ref()
            .and_then(|d| d.name.as_deref()),
        Some("ratings")
    );

    assert_eq!(spec.tls[0].matches[0].sni_hosts, ["login.example.com"]);
    assert_eq!(spec.tls[0].matches[0].port, Some(443));
    assert_eq!(spec.tcp[0].matches[0].port, Some(27017));
    assert_eq!(
        spec.tcp[0].matches[0].source_subnet.as_deref(),
        Some("10.2.0.0/16")
    );
    assert_eq!(
        spec.tcp[0].route[0]
            .destination
            .port
            .as_ref()
            .and_then(|p| p.number),
        Some(5555)
    );
    assert_eq!(spec.tcp[0].route[1].weight, 40);

    assert_round_trip(REVIEWS_VS);
}

#[test]
fn destination_rule_parses_every_field_group() {
    let d = doc(REVIEWS_DR);
    let spec = dr(&d);
    assert_eq!(spec.host, "reviews.bookinfo.svc.cluster.local");
    assert_eq!(
        spec.workload_selector
            .as_ref()
            .map(|s| s.match_labels["app"].as_str()),
        Some("productpage")
    );
    let tp = spec.traffic_policy.as_ref().expect("traffic policy");
    let lb = tp.load_balancer.as_ref().expect("lb");
    assert_eq!(lb.simple, Some(SimpleLb::LeastRequest));
    let locality = lb.locality_lb_setting.as_ref().expect("locality");
    assert_eq!(locality.enabled, Some(true));
    assert_eq!(locality.distribute[0].to["us-west/zone1/*"], 80);
    assert_eq!(locality.failover[0].to.as_deref(), Some("eu-west"));
    assert_eq!(locality.failover_priority.len(), 2);
    assert_eq!(lb.warmup_duration_secs, Some(IstioDuration::from_secs(60)));
    let warmup = lb.warmup.as_ref().expect("warmup");
    assert_eq!(warmup.duration, Some(IstioDuration::from_secs(90)));
    assert_eq!(warmup.aggression, Some(1.5));

    let pool = tp.connection_pool.as_ref().expect("pool");
    let tcp = pool.tcp.as_ref().expect("tcp");
    assert_eq!(tcp.max_connections, Some(100));
    assert_eq!(tcp.connect_timeout, Some(IstioDuration::from_millis(30)));
    let keepalive = tcp.tcp_keepalive.as_ref().expect("keepalive");
    assert_eq!(keepalive.probes, Some(9));
    assert_eq!(keepalive.time, Some(IstioDuration::from_secs(7200)));
    assert_eq!(
        tcp.max_connection_duration,
        Some(IstioDuration::from_secs(3600))
    );
    let http = pool.http.as_ref().expect("http");
    assert_eq!(http.http1_max_pending_requests, Some(64));
    assert_eq!(http.h2_upgrade_policy, Some(H2UpgradePolicy::Upgrade));
    assert_eq!(http.max_concurrent_streams, Some(128));

    let od = tp.outlier_detection.as_ref().expect("outlier detection");
    assert_eq!(od.consecutive_5xx_errors, Some(7));
    assert_eq!(od.consecutive_gateway_errors, Some(3));
    assert_eq!(od.interval, Some(IstioDuration::from_secs(300)));
    assert_eq!(od.base_ejection_time, Some(IstioDuration::from_secs(900)));
    assert_eq!(od.max_ejection_percent, Some(50));
    assert_eq!(
        tp.tls.as_ref().and_then(|t| t.mode),
        Some(TlsMode::IstioMutual)
    );

    let port = &tp.port_level_settings[0];
    assert_eq!(port.port.as_ref().and_then(|p| p.number), Some(9080));
    let hash = port
        .load_balancer
        .as_ref()
        .and_then(|lb| lb.consistent_hash.as_ref())
        .expect("hash");
    assert_eq!(
        hash.http_cookie.as_ref().map(|c| c.name.as_str()),
        Some("user")
    );
    assert_eq!(
        hash.http_cookie.as_ref().and_then(|c| c.ttl),
        Some(IstioDuration::ZERO)
    );
    assert_eq!(
        hash.ring_hash.as_ref().and_then(|r| r.minimum_ring_size),
        Some(2048)
    );
    let port_tls = port.tls.as_ref().expect("port tls");
    assert_eq!(port_tls.mode, Some(TlsMode::Mutual));
    assert_eq!(port_tls.ca_crl.as_deref(), Some("/etc/certs/crl.pem"));
    assert_eq!(port_tls.insecure_skip_verify, Some(false));
    assert_eq!(tp.tunnel.as_ref().map(|t| t.target_port), Some(8443));
    assert_eq!(
        tp.proxy_protocol.as_ref().and_then(|p| p.version),
        Some(ProxyProtocolVersion::V2)
    );
    assert_eq!(
        tp.retry_budget
            .as_ref()
            .and_then(|b| b.min_retry_concurrency),
        Some(3)
    );

    assert_eq!(spec.subsets.len(), 4);
    assert_eq!(spec.subsets[0].labels["version"], "v1");
    let hash_of = |i: usize| {
        spec.subsets[i]
            .traffic_policy
            .as_ref()
            .and_then(|tp| tp.load_balancer.as_ref())
            .and_then(|lb| lb.consistent_hash.clone())
            .expect("consistent hash")
    };
    assert_eq!(hash_of(1).http_header_name.as_deref(), Some("x-user"));
    assert_eq!(hash_of(1).maglev.and_then(|m| m.table_size), Some(65537));
    assert_eq!(hash_of(2).use_source_ip, Some(true));
    assert_eq!(hash_of(2).minimum_ring_size, Some(1024));
    assert_eq!(
        hash_of(3).http_query_parameter_name.as_deref(),
        Some("session")
    );

    assert_round_trip(REVIEWS_DR);
}

#[test]
fn service_entries_parse_static_dns_and_selector_forms() {
    let d = doc(STATIC_SE);
    let spec = se(&d);
    assert_eq!(spec.location, Some(Location::MeshInternal));
    assert_eq!(spec.resolution, Some(Resolution::Static));
    assert_eq!(spec.addresses, ["192.168.10.0/24"]);
    assert_eq!(spec.ports[0].number, 5432);
    assert_eq!(spec.ports[0].target_port, Some(15432));
    let ep = &spec.endpoints[0];
    assert_eq!(ep.address.as_deref(), Some("192.168.10.11"));
    assert_eq!(ep.ports["tcp-postgres"], 15432);
    assert_eq!(ep.network.as_deref(), Some("vm-net"));
    assert_eq!(ep.locality.as_deref(), Some("us-west/zone1"));
    assert_eq!(ep.weight, Some(3));
    assert_eq!(ep.service_account.as_deref(), Some("db"));
    assert_round_trip(STATIC_SE);

    let d = doc(DNS_SE);
    let spec = se(&d);
    assert_eq!(d.meta.namespace, None);
    assert_eq!(spec.location, Some(Location::MeshExternal));
    assert_eq!(spec.resolution, Some(Resolution::Dns));
    assert_eq!(spec.endpoints.len(), 2);
    assert_eq!(spec.ports[1].protocol.as_deref(), Some("HTTP"));
    assert_round_trip(DNS_SE);

    let d = doc(SELECTOR_SE);
    let spec = se(&d);
    assert_eq!(spec.resolution, Some(Resolution::DnsRoundRobin));
    assert_eq!(
        spec.workload_selector
            .as_ref()
            .map(|s| s.labels["app"].as_str()),
        Some("details")
    );
    assert_round_trip(SELECTOR_SE);
}

#[test]
fn every_resolution_and_simple_lb_value_parses() {
    for (text, want) in [
        ("NONE", Resolution::None),
        ("STATIC", Resolution::Static),
        ("DNS", Resolution::Dns),
        ("DNS_ROUND_ROBIN", Resolution::DnsRoundRobin),
        ("DYNAMIC_DNS", Resolution::DynamicDns),
    ] {
        let got: Resolution = serde_json::from_value(Value::from(text)).expect(text);
        assert_eq!(got, want);
    }
    for text in [
        "UNSPECIFIED",
        "LEAST_CONN",
        "RANDOM",
        "PASSTHROUGH",
        "ROUND_ROBIN",
        "LEAST_REQUEST",
    ] {
        let got: SimpleLb = serde_json::from_value(Value::from(text)).expect(text);
        assert_eq!(serde_json::to_value(got).expect("ser"), Value::from(text));
    }
    for text in ["DISABLE", "SIMPLE", "MUTUAL", "ISTIO_MUTUAL"] {
        let got: TlsMode = serde_json::from_value(Value::from(text)).expect(text);
        assert_eq!(serde_json::to_value(got).expect("ser"), Value::from(text));
    }
    for text in ["DEFAULT", "DO_NOT_UPGRADE", "UPGRADE"] {
        let got: H2UpgradePolicy = serde_json::from_value(Value::from(text)).expect(text);
        assert_eq!(serde_json::to_value(got).expect("ser"), Value::from(text));
    }
    for text in ["MESH_EXTERNAL", "MESH_INTERNAL"] {
        let got: Location = serde_json::from_value(Value::from(text)).expect(text);
        assert_eq!(serde_json::to_value(got).expect("ser"), Value::from(text));
    }
    assert!(serde_json::from_value::<Resolution>(Value::from("dns")).is_err());
}

#[test]
fn durations_in_specs_parse() {
    let spec: VirtualServiceSpec = serde_yaml::from_str(
        "http:\n- timeout: 0.5s\n  retries: {attempts: 1, perTryTimeout: 10s}\n  fault: {delay: {fixedDelay: 100ms}}\n",
    )
    .expect("parses");
    let route = &spec.http[0];
    assert_eq!(route.timeout.map(|d| d.0), Some(Duration::from_millis(500)));
    assert_eq!(
        route.retries.as_ref().and_then(|r| r.per_try_timeout),
        Some(IstioDuration::from_secs(10))
    );
    assert_eq!(
        route
            .fault
            .as_ref()
            .and_then(|f| f.delay.as_ref())
            .and_then(|d| d.fixed_delay),
        Some(IstioDuration::from_millis(100))
    );
}

#[test]
fn unknown_fields_are_ignored() {
    let d = doc(
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: x}\nspec:\n  hosts: [a]\n  futureField: 1\n  http:\n  - futureRouteField: {a: b}\n    route: [{destination: {host: a, futureDestField: true}}]\n",
    );
    assert_eq!(vs(&d).http[0].route[0].destination.host, "a");
}

#[test]
fn document_errors_name_the_field() {
    let err = |yaml: &str| MeshDocument::from_value(value(yaml)).expect_err("should fail");

    let e = err("apiVersion: networking.istio.io/v1\nkind: Foo\nmetadata: {name: x}\nspec: {}\n");
    assert_eq!(
        e.to_string(),
        "kind: Foo is not a kind Weft serves (VirtualService, DestinationRule, ServiceEntry, Gateway, Sidecar, PeerAuthentication, RequestAuthentication, AuthorizationPolicy, Quota, Telemetry)"
    );
    assert_eq!(e.field(), Some("kind"));
    assert_eq!(e.kind(), "unsupported_kind");

    let e = err("apiVersion: networking.istio.io/v2\nkind: VirtualService\nmetadata: {name: x}\n");
    assert!(
        matches!(e, DocumentError::UnsupportedApiVersion { .. }),
        "{e}"
    );
    assert_eq!(e.field(), Some("apiVersion"));
    let e = err("apiVersion: security.istio.io/v1\nkind: VirtualService\nmetadata: {name: x}\n");
    assert_eq!(e.kind(), "unsupported_api_version");
    let e = err("kind: VirtualService\nmetadata: {name: x}\n");
    assert_eq!((e.kind(), e.field()), ("missing_field", Some("apiVersion")));

    let e =
        err("apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {namespace: a}\n");
    assert_eq!(e.field(), Some("metadata.name"));
    assert_eq!(e.to_string(), "metadata.name is missing");
    let e = err("apiVersion: networking.istio.io/v1\nkind: VirtualService\nspec: {}\n");
    assert_eq!(e.field(), Some("metadata.name"));

    let e = err(
        "apiVersion: networking.istio.io/v1beta1\nkind: VirtualService\nmetadata: {name: x}\nspec:\n  http:\n  - timeout: 10 seconds\n",
    );
    assert_eq!(e.field(), Some("spec.http[0].timeout"), "{e}");
    assert_eq!(e.kind(), "invalid_field");
    assert!(e.to_string().starts_with("spec.http[0].timeout: "), "{e}");
    assert!(e.to_string().contains("\"10 seconds\""), "{e}");

    let e = err(
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: x}\nspec:\n  http:\n  - match: [{uri: {exact: /a, prefix: /b}}]\n",
    );
    assert_eq!(e.field(), Some("spec.http[0].match[0].uri"), "{e}");

    let e = err(
        "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: x}\nspec: {}\n",
    );
    assert_eq!(e.field(), Some("spec"), "{e}");
    assert!(e.to_string().contains("host"), "{e}");

    let e = err(
        "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: x}\nspec:\n  hosts: [a]\n  resolution: SOMETIMES\n",
    );
    assert_eq!(e.field(), Some("spec.resolution"), "{e}");

    let e = MeshDocument::from_value(Value::from("just a string")).expect_err("not a mapping");
    assert_eq!((e.kind(), e.field()), ("not_an_object", None));
}

fn gw(d: &MeshDocument) -> &GatewaySpec {
    match &d.resource {
        MeshResource::Gateway(spec) => spec,
        other => panic!("expected a Gateway, got {}", other.kind()),
    }
}

fn sidecar(d: &MeshDocument) -> &SidecarSpec {
    match &d.resource {
        MeshResource::Sidecar(spec) => spec,
        other => panic!("expected a Sidecar, got {}", other.kind()),
    }
}

#[test]
fn gateway_parses_every_field_group() {
    let d = doc(GATEWAY);
    assert_eq!(d.resource.kind(), weft_crds::Kind::Gateway);
    assert_eq!(d.meta.namespace.as_deref(), Some("istio-ingress"));
    let spec = gw(&d);
    assert_eq!(spec.selector["istio"], "ingressgateway");
    assert_eq!(spec.servers.len(), 5);

    let http = &spec.servers[0];
    let port = http.port.as_ref().expect("port");
    assert_eq!(
        (port.number, port.name.as_deref(), port.protocol.as_deref()),
        (80, Some("http"), Some("HTTP"))
    );
    assert_eq!(
        http.hosts,
        ["bookinfo/uk.bookinfo.com", "*/eu.bookinfo.com"]
    );
    assert_eq!(http.tls.as_ref().and_then(|t| t.https_redirect), Some(true));

    let mutual = &spec.servers[1];
    assert_eq!(mutual.port.as_ref().and_then(|p| p.target_port), Some(8443));
    assert_eq!(mutual.bind.as_deref(), Some("0.0.0.0"));
    assert_eq!(mutual.name.as_deref(), Some("main-https"));
    let tls = mutual.tls.as_ref().expect("tls");
    assert_eq!(tls.mode, Some(ServerTlsMode::Mutual));
    assert_eq!(
        tls.server_certificate.as_deref(),
        Some("/etc/certs/server.pem")
    );
    assert_eq!(tls.private_key.as_deref(), Some("/etc/certs/key.pem"));
    assert_eq!(tls.ca_certificates.as_deref(), Some("/etc/certs/ca.pem"));
    assert_eq!(tls.ca_crl.as_deref(), Some("/etc/certs/crl.pem"));
    assert_eq!(tls.subject_alt_names.len(), 1);
    assert_eq!(tls.verify_certificate_spki.len(), 1);
    assert_eq!(tls.verify_certificate_hash, ["0123456789abcdef"]);
    assert_eq!(tls.min_protocol_version, Some(TlsProtocol::TlsV1_2));
    assert_eq!(tls.max_protocol_version, Some(TlsProtocol::TlsV1_3));
    assert_eq!(tls.cipher_suites, ["ECDHE-RSA-AES256-GCM-SHA384"]);

    let simple = spec.servers[2].tls.as_ref().expect("tls");
    assert_eq!(simple.mode, Some(ServerTlsMode::Simple));
    assert_eq!(simple.credential_name.as_deref(), Some("bookinfo-secret"));
    assert_eq!(simple.credential_names.len(), 2);
    assert_eq!(
        simple.tls_certificates[0].server_certificate.as_deref(),
        Some("/etc/certs/rsa.pem")
    );
    let auto = &spec.servers[3];
    assert_eq!(
        auto.tls.as_ref().and_then(|t| t.mode),
        Some(ServerTlsMode::AutoPassthrough)
    );
    assert_eq!(auto.default_endpoint.as_deref(), Some("127.0.0.1:8080"));
    assert_round_trip(GATEWAY);
}

#[test]
fn gateway_tls_modes_and_versions_parse_by_istio_name() {
    for (name, mode) in [
        ("PASSTHROUGH", ServerTlsMode::Passthrough),
        ("SIMPLE", ServerTlsMode::Simple),
        ("MUTUAL", ServerTlsMode::Mutual),
        ("AUTO_PASSTHROUGH", ServerTlsMode::AutoPassthrough),
        ("ISTIO_MUTUAL", ServerTlsMode::IstioMutual),
        ("OPTIONAL_MUTUAL", ServerTlsMode::OptionalMutual),
    ] {
        let parsed: ServerTlsMode = serde_json::from_value(Value::from(name)).expect(name);
        assert_eq!(parsed, mode);
    }
    for (name, version) in [
        ("TLS_AUTO", TlsProtocol::TlsAuto),
        ("TLSV1_0", TlsProtocol::TlsV1_0),
        ("TLSV1_1", TlsProtocol::TlsV1_1),
        ("TLSV1_2", TlsProtocol::TlsV1_2),
        ("TLSV1_3", TlsProtocol::TlsV1_3),
    ] {
        let parsed: TlsProtocol = serde_json::from_value(Value::from(name)).expect(name);
        assert_eq!(parsed, version);
    }
    let e = MeshDocument::from_value(value(
        "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: x}\nspec:\n  servers:\n  - port: {number: 443, name: https, protocol: HTTPS}\n    tls: {mode: SOMETIMES}\n",
    ))
    .expect_err("unknown mode");
    assert_eq!(e.field(), Some("spec.servers[0].tls.mode"), "{e}");
}

#[test]
fn sidecar_parses_every_field_group() {
    let d = doc(SIDECAR);
    assert_eq!(d.resource.kind(), weft_crds::Kind::Sidecar);
    let spec = sidecar(&d);
    assert_eq!(
        spec.workload_selector
            .as_ref()
            .map(|s| s.labels["app"].as_str()),
        Some("ratings")
    );
    assert!(spec.inbound_connection_pool.is_some());
    let ingress = &spec.ingress[0];
    let port = ingress.port.as_ref().expect("port");
    assert_eq!(
        (port.number, port.protocol.as_deref()),
        (9080, Some("HTTPS"))
    );
    assert_eq!(ingress.capture_mode, Some(CaptureMode::Iptables));
    assert_eq!(
        ingress.default_endpoint.as_deref(),
        Some("unix:///var/run/someuds.sock")
    );
    assert_eq!(
        ingress.tls.as_ref().and_then(|t| t.mode),
        Some(ServerTlsMode::Simple)
    );
    assert!(ingress.connection_pool.is_some());
    let egress = &spec.egress;
    assert_eq!(egress[0].capture_mode, Some(CaptureMode::None));
    assert_eq!(egress[0].bind.as_deref(), Some("127.0.0.1"));
    assert_eq!(
        egress[0].port.as_ref().and_then(|p| p.target_port),
        Some(9081)
    );
    assert_eq!(egress[0].hosts, ["prod-us1/*"]);
    assert_eq!(egress[1].hosts.len(), 3);
    let policy = spec.outbound_traffic_policy.as_ref().expect("policy");
    assert_eq!(policy.mode, Some(OutboundTrafficMode::RegistryOnly));
    assert_eq!(
        policy.egress_proxy.as_ref().map(|d| d.host.as_str()),
        Some("egress.istio-system.svc.cluster.local")
    );
    assert_round_trip(SIDECAR);
}

#[test]
fn peer_authentications_parse_in_both_served_versions() {
    for version in ["v1beta1", "v1"] {
        let d = doc(&format!(
            "apiVersion: security.istio.io/{version}\nkind: PeerAuthentication\nmetadata: {{name: web, namespace: prod}}\nspec:\n  selector: {{matchLabels: {{app: web}}}}\n  mtls: {{mode: STRICT}}\n  portLevelMtls:\n    8080: {{mode: DISABLE}}\n"
        ));
        let MeshResource::PeerAuthentication(spec) = &d.resource else {
            panic!("not a PeerAuthentication: {d:?}");
        };
        assert_eq!(
            spec.mtls.as_ref().and_then(|m| m.mode),
            Some(MtlsMode::Strict)
        );
        assert_eq!(spec.port_level_mtls["8080"].mode, Some(MtlsMode::Disable));
        assert_eq!(
            spec.selector
                .as_ref()
                .map(|s| s.match_labels["app"].as_str()),
            Some("web")
        );
        let back = d.to_value(version).expect("serializes");
        assert_eq!(back["apiVersion"], format!("security.istio.io/{version}"));
    }
    let e = MeshDocument::from_value(value(
        "apiVersion: security.istio.io/v1alpha3\nkind: PeerAuthentication\nmetadata: {name: x}\n",
    ))
    .expect_err("v1alpha3 is not served for security");
    assert_eq!(e.kind(), "unsupported_api_version");
    let e = MeshDocument::from_value(value(
        "apiVersion: security.istio.io/v1\nkind: VirtualService\nmetadata: {name: x}\n",
    ))
    .expect_err("VirtualService is not in security.istio.io");
    assert_eq!(e.kind(), "unsupported_api_version");
}

#[test]
fn quotas_parse_as_policy_weft_dev_v1alpha1() {
    let d = doc(
        "apiVersion: policy.weft.dev/v1alpha1\nkind: Quota\nmetadata: {name: ratings, namespace: prod}\nspec:\n  destination: {host: ratings, port: 9080, pathPrefix: /api}\n  maxAmount: 5000\n  validDuration: 1s\n  scope: Global\n  failureMode: Closed\n  overrides:\n  - match: {sourceLabels: {app: reviews, version: v3}, sourceNamespace: prod}\n    maxAmount: 1\n    validDuration: 5s\n  - match: {sourcePrincipal: spiffe://cluster.local/ns/prod/sa/x}\n    maxAmount: 5\n    validDuration: 10s\n",
    );
    let MeshResource::Quota(spec) = &d.resource else {
        panic!("not a Quota: {d:?}");
    };
    assert_eq!(spec.destination.host, "ratings");
    assert_eq!(spec.destination.port, Some(9080));
    assert_eq!(spec.destination.path_prefix.as_deref(), Some("/api"));
    assert_eq!(spec.max_amount, 5000);
    assert_eq!(spec.scope, Some(weft_crds::QuotaScope::Global));
    assert_eq!(spec.failure_mode, Some(weft_crds::QuotaFailureMode::Closed));
    assert_eq!(spec.overrides.len(), 2);
    assert_eq!(spec.overrides[0].match_.source_labels["version"], "v3");
    assert_eq!(spec.overrides[1].max_amount, 5);
    let back = d.to_value("v1alpha1").expect("serializes");
    assert_eq!(back["apiVersion"], "policy.weft.dev/v1alpha1");
    assert_eq!(
        back["spec"]["overrides"][0]["match"]["sourceNamespace"],
        "prod"
    );
    let e = MeshDocument::from_value(value(
        "apiVersion: policy.weft.dev/v1\nkind: Quota\nmetadata: {name: x}\n",
    ))
    .expect_err("only v1alpha1 is served");
    assert_eq!(e.kind(), "unsupported_api_version");
    let e = MeshDocument::from_value(value(
        "apiVersion: policy.weft.dev/v1alpha1\nkind: Quota\nmetadata: {name: x}\nspec: {scope: Everywhere}\n",
    ))
    .expect_err("unknown scope");
    assert_eq!(e.field(), Some("spec.scope"));
}

#[test]
fn the_quota_example_parses() {
    let d = doc(include_str!("../../examples/quota.yaml"));
    let MeshResource::Quota(spec) = &d.resource else {
        panic!("not a Quota: {d:?}");
    };
    assert_eq!(spec.max_amount, 5000);
    assert_eq!(spec.overrides.len(), 2);
    assert_eq!(spec.overrides[0].match_.source_labels["version"], "v3");
}
