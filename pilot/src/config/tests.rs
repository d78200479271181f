use super::*;
use crate::model::{LbPolicy, LoadBalancer, Resolution, ResourceId, StringMatch};
use crate::testing::*;

fn errors_of(yaml: &str) -> Vec<String> {
    ConfigStore::default()
        .apply(mk_inputs(yaml))
        .errors
        .iter()
        .map(|e| e.to_string())
        .collect()
}

fn reviews_mesh(http: &str) -> String {
    docs(&[
        mk_service_entry("reviews", &["v1", "v2"]),
        mk_destination_rule("reviews", &["v1", "v2"]),
        mk_virtual_service("reviews", http),
    ])
}

#[test]
fn converts_matches_weights_timeouts_and_retries() {
    let snapshot = mk_snapshot(&reviews_mesh(
        "  - match:
    - uri: {prefix: /api}
      method: {exact: GET}
      headers: {End-User: {regex: 'j.*'}}
    route:
    - {destination: {host: reviews, subset: v1}, weight: 80}
    - {destination: {host: reviews, subset: v2, port: {number: 9080}}, weight: 20}
    timeout: 1.5s
    retries: {attempts: 3, perTryTimeout: 100ms, retryOn: '5xx,503'}
",
    ));
    let vs = &snapshot.virtual_services[0];
    assert_eq!(vs.hosts, ["reviews.default.svc.cluster.local"]);
    let route = &vs.http[0];
    let m = &route.matches[0];
    assert_eq!(m.uri, Some(StringMatch::Prefix("/api".into())));
    assert_eq!(m.method, Some(StringMatch::Exact("GET".into())));
    assert_eq!(
        m.headers,
        [("end-user".to_string(), StringMatch::Regex("j.*".into()))]
    );
    assert_eq!(
        route.destinations[0].host,
        "reviews.default.svc.cluster.local"
    );
    assert_eq!(route.destinations[1].port, Some(9080));
    assert_eq!(route.timeout, Some(std::time::Duration::from_millis(1500)));
    let retries = route.retries.as_ref().unwrap();
    assert_eq!(retries.attempts, 3);
    assert_eq!(
        retries.per_try_timeout,
        Some(std::time::Duration::from_millis(100))
    );
    assert_eq!(retries.retry_on, ["5xx", "503"]);
}

#[test]
fn a_single_destination_without_weight_takes_all_traffic() {
    let snapshot = mk_snapshot(&reviews_mesh(
        "  - route: [{destination: {host: reviews}}]\n",
    ));
    assert_eq!(
        snapshot.virtual_services[0].http[0].destinations[0].weight,
        100
    );
}

#[test]
fn weights_must_sum_to_100() {
    let errors = errors_of(&reviews_mesh(
        "  - route:
    - {destination: {host: reviews, subset: v1}, weight: 100}
    - {destination: {host: reviews, subset: v2}, weight: 50}
",
    ));
    assert_eq!(
        errors,
        [
            "mesh.yaml: document 2: VirtualService default/reviews: spec.http[0].route: destination weights sum to 150; they must sum to 100"
        ]
    );
}

#[test]
fn an_undefined_subset_is_named_with_its_rule() {
    let errors = errors_of(&reviews_mesh(
        "  - route: [{destination: {host: reviews, subset: v9}}]\n",
    ));
    assert_eq!(
        errors,
        [
            "mesh.yaml: document 2: VirtualService default/reviews: spec.http[0].route[0].destination.subset: subset v9 is not defined by DestinationRule default/reviews for reviews.default.svc.cluster.local"
        ]
    );
    let without_rule = docs(&[
        mk_service_entry("reviews", &["v1"]),
        mk_virtual_service(
            "reviews",
            "  - route: [{destination: {host: reviews, subset: v1}}]\n",
        ),
    ]);
    assert!(errors_of(&without_rule)[0].contains("not defined by any DestinationRule"));
}

#[test]
fn bad_regexes_header_names_and_retry_conditions_are_rejected() {
    let errors = errors_of(&reviews_mesh(
        "  - match:
    - uri: {regex: '(unclosed'}
      headers: {'bad header': {exact: x}}
    route: [{destination: {host: reviews}}]
    retries: {attempts: 2, retryOn: 'sometimes'}
",
    ));
    let fields: Vec<&str> = errors
        .iter()
        .map(|e| e.split(": ").nth(3).unwrap_or(""))
        .collect();
    assert!(
        fields.contains(&"spec.http[0].match[0].uri.regex"),
        "{errors:#?}"
    );
    assert!(
        fields.contains(&"spec.http[0].match[0].headers.bad header"),
        "{errors:#?}"
    );
    assert!(
        fields.contains(&"spec.http[0].retries.retryOn"),
        "{errors:#?}"
    );
}

#[test]
fn a_bad_duration_names_its_field() {
    let errors = errors_of(&reviews_mesh(
        "  - route: [{destination: {host: reviews}}]\n    timeout: soon\n",
    ));
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert!(errors[0].contains("spec.http[0].timeout"), "{errors:#?}");
}

#[test]
fn untranslated_fields_are_reported_not_ignored() {
    let errors = errors_of(&reviews_mesh(
        "  - route: [{destination: {host: reviews}}]
    fault:
      abort: {http2Error: PROTOCOL_ERROR, percentage: {value: 1}}
      delay: {exponentialDelay: 1s}
",
    ));
    assert!(
        errors
            .iter()
            .any(|e| e.contains("spec.http[0].fault.abort.http2Error: not supported")),
        "{errors:#?}"
    );
    assert!(
        errors
            .iter()
            .any(|e| e.contains("spec.http[0].fault.delay.exponentialDelay: not supported")),
        "{errors:#?}"
    );
}

#[test]
fn destination_rules_set_load_balancers_per_subset() {
    let snapshot = mk_snapshot(&docs(&[
        mk_service_entry("reviews", &["v1", "v2"]),
        "apiVersion: networking.istio.io/v1beta1
kind: DestinationRule
metadata: {name: reviews}
spec:
  host: reviews.default.svc.cluster.local
  trafficPolicy: {loadBalancer: {simple: RANDOM}}
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}, trafficPolicy: {loadBalancer: {simple: LEAST_CONN}}}
"
        .to_string(),
    ]));
    let rule = &snapshot.destination_rules["reviews.default.svc.cluster.local"];
    let simple = |p: LbPolicy| Some(LoadBalancer::simple(p));
    assert_eq!(rule.load_balancer_for(None), simple(LbPolicy::Random));
    assert_eq!(
        rule.load_balancer_for(Some(&rule.subsets[1])),
        simple(LbPolicy::LeastRequest)
    );
    assert_eq!(
        rule.load_balancer_for(Some(&rule.subsets[0])),
        simple(LbPolicy::Random)
    );
}

#[test]
fn dns_service_entries_resolve_their_own_hosts() {
    let snapshot = mk_snapshot(
        "apiVersion: networking.istio.io/v1alpha3
kind: ServiceEntry
metadata: {name: external}
spec:
  hosts: [api.example.com, www.example.com]
  location: MESH_EXTERNAL
  resolution: DNS
  ports: [{number: 443, name: https, protocol: HTTPS}]
",
    );
    let api = &snapshot.services["api.example.com"];
    assert_eq!(api.resolution, Resolution::Dns);
    assert_eq!(api.endpoints[0].address, "api.example.com");
    assert_eq!(
        snapshot.services["www.example.com"].endpoints[0].address,
        "www.example.com"
    );
}

#[test]
fn static_endpoints_must_be_ip_addresses() {
    let errors = errors_of(
        "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: db}
spec:
  hosts: [db.internal]
  resolution: STATIC
  ports: [{number: 5432, name: tcp, protocol: TCP}]
  endpoints: [{address: db.example.com}]
",
    );
    assert!(
        errors[0].contains("spec.endpoints[0].address"),
        "{errors:#?}"
    );
}

#[test]
fn a_bad_edit_keeps_the_last_good_version() {
    let mut store = ConfigStore::default();
    let good = reviews_mesh("  - route: [{destination: {host: reviews, subset: v1}}]\n");
    let first = store.apply(mk_inputs(&good));
    assert!(first.errors.is_empty());

    let bad = reviews_mesh("  - route: [{destination: {host: reviews, subset: v9}}]\n");
    let second = store.apply(mk_inputs(&bad));
    assert_eq!(second.errors.len(), 1);
    assert!(!second.changed, "the mesh still serves the good version");
    assert_eq!(
        second.kept,
        [ResourceId::new("VirtualService", "default", "reviews")]
    );
    assert_eq!(
        second.snapshot.virtual_services[0].http[0].destinations[0]
            .subset
            .as_deref(),
        Some("v1")
    );

    let unparseable =
        reviews_mesh("  - route: [{destination: {host: reviews}}]\n    timeout: soon\n");
    let third = store.apply(mk_inputs(&unparseable));
    assert!(!third.changed);

    let fixed = reviews_mesh("  - route: [{destination: {host: reviews, subset: v2}}]\n");
    let fourth = store.apply(mk_inputs(&fixed));
    assert!(fourth.changed && fourth.errors.is_empty());
    assert_eq!(fourth.snapshot.version, first.snapshot.version + 1);
}

#[test]
fn a_file_that_is_not_yaml_keeps_what_it_held() {
    let mut store = ConfigStore::default();
    let good = reviews_mesh("  - route: [{destination: {host: reviews, subset: v1}}]\n");
    store.apply(mk_inputs(&good));
    let applied = store.apply(mk_inputs("kind: [unclosed\n"));
    assert_eq!(applied.errors.len(), 1);
    assert!(
        applied.errors[0]
            .to_string()
            .starts_with("mesh.yaml: document 0: not valid YAML")
    );
    assert!(!applied.changed);
    assert_eq!(applied.kept.len(), 3);
}

#[test]
fn removing_a_resource_removes_it() {
    let mut store = ConfigStore::default();
    store.apply(mk_inputs(&reviews_mesh(
        "  - route: [{destination: {host: reviews}}]\n",
    )));
    let applied = store.apply(mk_inputs(&mk_service_entry("reviews", &["v1"])));
    assert!(applied.changed);
    assert!(applied.snapshot.virtual_services.is_empty());
    assert!(applied.snapshot.destination_rules.is_empty());
}

#[test]
fn duplicates_and_other_kinds_are_reported() {
    let se = mk_service_entry("reviews", &["v1"]);
    let workload_entry = "apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: vm}
spec: {address: 10.0.0.9}
"
    .to_string();
    let errors = errors_of(&docs(&[se.clone(), se, workload_entry]));
    assert_eq!(errors.len(), 2, "{errors:#?}");
    assert!(errors[0].contains("document 1: ServiceEntry default/reviews: metadata.name: ServiceEntry default/reviews is defined twice"));
    assert!(errors[1].contains("document 2: kind: WorkloadEntry is not a kind Weft serves"));
}

fn dr_errors(traffic_policy: &str) -> Vec<String> {
    errors_of(&docs(&[
        mk_service_entry("reviews", &["v1"]),
        format!(
            "apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: reviews}}
spec:
  host: reviews
  trafficPolicy:
{traffic_policy}"
        ),
    ]))
}

#[test]
fn destination_rule_policies_are_validated_naming_the_field() {
    let cases = [
        (
            "    tls: {mode: ISTIO_MUTUAL}\n",
            "spec.trafficPolicy.tls.mode: not supported by Weft yet: ISTIO_MUTUAL comes with Weft's CA",
        ),
        (
            "    tls: {mode: SIMPLE, credentialName: x}\n",
            "spec.trafficPolicy.tls.credentialName: not supported by Weft yet: credentialName needs the Kubernetes operator",
        ),
        (
            "    tls: {mode: MUTUAL}\n",
            "spec.trafficPolicy.tls.clientCertificate: mode MUTUAL needs",
        ),
        (
            "    loadBalancer: {localityLbSetting: {failover: [{from: a, to: b}]}}\n",
            "spec.trafficPolicy.loadBalancer.localityLbSetting: not supported by Weft yet",
        ),
        (
            "    loadBalancer: {consistentHash: {httpHeaderName: x, maglev: {tableSize: 1000}}}\n",
            "spec.trafficPolicy.loadBalancer.consistentHash.maglev.tableSize: 1000 must be a prime",
        ),
        (
            "    loadBalancer: {consistentHash: {ringHash: {minimumRingSize: 8}}}\n",
            "spec.trafficPolicy.loadBalancer.consistentHash: a hash key is required",
        ),
        (
            "    loadBalancer: {simple: RANDOM, warmup: {duration: 10s}}\n",
            "spec.trafficPolicy.loadBalancer.warmup: warmup works only with",
        ),
        (
            "    connectionPool: {http: {http1MaxPendingRequests: -1}}\n",
            "spec.trafficPolicy.connectionPool.http.http1MaxPendingRequests: -1 is negative",
        ),
        (
            "    outlierDetection: {maxEjectionPercent: 150}\n",
            "spec.trafficPolicy.outlierDetection.maxEjectionPercent: 150 is not a percentage",
        ),
        (
            "    portLevelSettings: [{loadBalancer: {simple: RANDOM}}]\n",
            "spec.trafficPolicy.portLevelSettings[0].port.number: port-level settings need a port number",
        ),
        (
            "    connectionPool: {tcp: {tcpKeepalive: {time: 1500ms}}}\n",
            "spec.trafficPolicy.connectionPool.tcp.tcpKeepalive.time",
        ),
    ];
    for (policy, expected) in cases {
        let errors = dr_errors(policy);
        assert!(
            errors.iter().any(|e| e.contains(expected)),
            "{policy}: want {expected:?} in {errors:#?}"
        );
    }
    assert!(dr_errors("    loadBalancer: {localityLbSetting: {enabled: false}}\n").is_empty());
}

#[test]
fn subset_policies_merge_field_by_field_and_port_level_replaces() {
    let snapshot = mk_snapshot(&docs(&[
        mk_service_entry("reviews", &["v1", "v2"]),
        "apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews}
spec:
  host: reviews
  exportTo: ['.']
  workloadSelector: {matchLabels: {app: productpage}}
  trafficPolicy:
    loadBalancer: {simple: ROUND_ROBIN}
    outlierDetection: {consecutive5xxErrors: 3}
    portLevelSettings:
    - port: {number: 9080}
      connectionPool: {tcp: {maxConnections: 7}}
  subsets:
  - name: v2
    labels: {version: v2}
    trafficPolicy: {loadBalancer: {consistentHash: {useSourceIp: true}}}
"
        .to_string(),
    ]));
    let rule = &snapshot.destination_rules["reviews.default.svc.cluster.local"];
    assert_eq!(rule.export_to, vec![".".to_string()]);
    assert!(rule.workload_selector.is_some());
    // The rule's port-level entry replaces everything for 9080.
    let p = rule.policy_for(Some(9080), None);
    assert_eq!(p.load_balancer, None);
    assert_eq!(p.outlier_detection, None);
    assert_eq!(p.connection_pool.and_then(|c| c.max_connections), Some(7));
    // Other ports keep the rule's policy; the subset overrides the balancer.
    let v2 = &rule.subsets[0];
    let p = rule.policy_for(Some(9999), Some(v2));
    assert!(matches!(
        p.load_balancer.map(|l| l.policy),
        Some(LbPolicy::ConsistentHash(_))
    ));
    assert_eq!(
        p.outlier_detection.and_then(|o| o.consecutive_5xx_errors),
        Some(3)
    );
}

#[test]
fn service_entry_fields_are_kept_and_checked() {
    let snapshot = mk_snapshot(
        "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: db}
spec:
  hosts: [db.internal]
  addresses: [10.1.0.0/16, 192.168.0.9]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 5432, name: tcp, protocol: TCP}]
  endpoints:
  - {address: 10.1.0.1, locality: r/z/s, network: n1, serviceAccount: db, weight: 3}
",
    );
    let db = &snapshot.services["db.internal"];
    assert_eq!(db.addresses, vec!["10.1.0.0/16", "192.168.0.9"]);
    assert_eq!(db.location, crate::model::Location::MeshInternal);
    let e = &db.endpoints[0];
    assert_eq!(e.locality.as_ref().map(|l| l.sub_zone.as_str()), Some("s"));
    assert_eq!(e.network.as_deref(), Some("n1"));
    assert_eq!(e.service_account.as_deref(), Some("db"));
    assert_eq!(e.weight, Some(3));

    let errors = errors_of(
        "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: bad}
spec:
  hosts: [bad.internal]
  addresses: [not-an-ip]
  resolution: NONE
  workloadSelector: {labels: {app: x}}
  ports: [{number: 80, name: http, protocol: HTTP}]
  endpoints: [{address: 10.0.0.1, ports: {grpc: 90}}]
",
    );
    for expected in [
        "spec.addresses[0]",
        "spec.workloadSelector: not supported by Weft yet: standalone Weft has no workloads",
        "spec.endpoints: resolution NONE",
        "spec.endpoints[0].ports.grpc",
    ] {
        assert!(
            errors.iter().any(|e| e.contains(expected)),
            "want {expected:?} in {errors:#?}"
        );
    }
}

/// Gateway, Sidecar, and VirtualService `tcp` / `tls` rules.
mod gateways_and_sidecars {
    use super::*;
    use crate::model::{HostSelector, NamespaceSelector, ServerTls, TlsVersion};

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
  ingress: [{port: {number: 9080, protocol: HTTP, name: http}, defaultEndpoint: 127.0.0.1:8080}]
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
            has("spec.ingress: not supported by Weft yet"),
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
        assert!(
            has("spec.outboundTrafficPolicy.mode: ALLOW_ANY needs traffic capture"),
            "{errors:#?}"
        );
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
    fn tcp_and_tls_rules_that_cannot_apply_are_rejected() {
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
        assert!(
            has(
                "VirtualService default/mesh-l4: spec.tcp[0]: TCP and TLS routes for sidecars (gateway `mesh`) need traffic capture"
            ),
            "{errors:#?}"
        );
        assert!(
            has("VirtualService default/mesh-l4: spec.tls[0]: TCP and TLS routes"),
            "{errors:#?}"
        );
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
}

// --- VirtualService HTTP features -------------------------------------

fn vs_errors(http: &str) -> Vec<String> {
    errors_of(&reviews_mesh(http))
}

fn assert_error(errors: &[String], needle: &str) {
    assert!(
        errors.iter().any(|e| e.contains(needle)),
        "no error containing {needle:?} in {errors:#?}"
    );
}

#[test]
fn every_http_feature_converts_to_the_model() {
    use crate::model::{AbortError, Body, RedirectPort};
    use std::time::Duration;
    let snapshot = mk_snapshot(&reviews_mesh(
        "  - name: all
    match:
    - name: m
      statPrefix: stats
      scheme: {exact: https}
      authority: {prefix: reviews}
      queryParams: {q: {regex: '[0-9]+'}, flag: {}}
      withoutHeaders: {X-Block: {}}
      sourceLabels: {app: web}
      sourceNamespace: prod
      gateways: [mesh, ingress, ./other, istio-system/gw]
    route:
    - destination: {host: reviews, subset: v1}
      weight: 60
      headers: {request: {set: {X-Dest: one}}}
    - destination: {host: reviews, subset: v2}
      weight: 40
    rewrite: {uri: /v2, authority: backend}
    retries: {attempts: 2, retryRemoteLocalities: true, retryIgnorePreviousHosts: false, backoff: 25ms}
    fault:
      delay: {fixedDelay: 2s, percentage: {value: 12.5}}
      abort: {grpcStatus: UNAVAILABLE}
    mirror: {host: reviews, subset: v2}
    mirrorPercentage: {value: 10}
    corsPolicy:
      allowOrigin: [https://old.example]
      allowOrigins: [{prefix: 'https://'}]
      allowMethods: [GET]
      maxAge: 1m
      allowCredentials: false
      unmatchedPreflights: IGNORE
    headers:
      request: {add: {X-A: b}, remove: [X-Gone]}
      response: {set: {X-R: s}}
  - match: [{uri: {exact: /r}}]
    redirect: {uri: /new, authority: example.org, derivePort: FROM_REQUEST_PORT, scheme: https, redirectCode: 307}
  - match: [{uri: {exact: /d}}]
    directResponse: {status: 404, body: {bytes: aGk=}}
",
    ));
    let rules = &snapshot.virtual_services[0].http;
    let all = &rules[0];
    let m = &all.matches[0];
    assert_eq!(m.name.as_deref(), Some("m"));
    assert_eq!(m.stat_prefix.as_deref(), Some("stats"));
    assert_eq!(m.scheme, Some(StringMatch::Exact("https".into())));
    assert_eq!(m.authority, Some(StringMatch::Prefix("reviews".into())));
    assert_eq!(
        m.query_params,
        [
            ("flag".to_string(), StringMatch::Present),
            ("q".to_string(), StringMatch::Regex("[0-9]+".into()))
        ]
    );
    assert_eq!(
        m.without_headers,
        [("x-block".to_string(), StringMatch::Present)]
    );
    assert_eq!(m.source_labels.get("app").map(String::as_str), Some("web"));
    assert_eq!(m.source_namespace.as_deref(), Some("prod"));
    assert_eq!(
        m.gateways,
        [
            "mesh",
            "default/ingress",
            "default/other",
            "istio-system/gw"
        ],
        "gateway names are qualified as Istio does"
    );
    assert_eq!(
        all.destinations[0]
            .headers
            .request
            .set
            .get("x-dest")
            .map(String::as_str),
        Some("one")
    );
    let rewrite = all.rewrite.as_ref().unwrap();
    assert_eq!(
        (rewrite.uri.as_deref(), rewrite.authority.as_deref()),
        (Some("/v2"), Some("backend"))
    );
    let retries = all.retries.as_ref().unwrap();
    assert!(retries.retry_remote_localities);
    assert!(!retries.ignore_previous_hosts);
    assert_eq!(retries.backoff, Some(Duration::from_millis(25)));
    let fault = all.fault.as_ref().unwrap();
    let delay = fault.delay.as_ref().unwrap();
    assert_eq!(
        (delay.fixed_delay, delay.percentage),
        (Duration::from_secs(2), 12.5)
    );
    let abort = fault.abort.as_ref().unwrap();
    assert_eq!(
        (abort.error, abort.percentage),
        (AbortError::GrpcStatus(14), 100.0)
    );
    assert_eq!(all.mirrors.len(), 1);
    assert_eq!(all.mirrors[0].percentage, 10.0);
    assert_eq!(all.mirrors[0].destination.subset.as_deref(), Some("v2"));
    let cors = all.cors.as_ref().unwrap();
    assert_eq!(
        cors.allow_origins,
        [
            StringMatch::Exact("https://old.example".into()),
            StringMatch::Prefix("https://".into())
        ]
    );
    assert_eq!(cors.max_age, Some(Duration::from_secs(60)));
    assert_eq!(cors.allow_credentials, Some(false));
    assert!(!cors.forward_unmatched_preflights);
    assert_eq!(
        all.headers.request.add.get("x-a").map(String::as_str),
        Some("b")
    );
    assert_eq!(all.headers.request.remove, ["x-gone"]);
    assert_eq!(
        all.headers.response.set.get("x-r").map(String::as_str),
        Some("s")
    );

    let redirect = rules[1].redirect.as_ref().unwrap();
    assert_eq!(redirect.code, 307);
    assert_eq!(redirect.port, RedirectPort::FromRequestPort);
    assert_eq!(redirect.scheme.as_deref(), Some("https"));
    assert!(rules[1].destinations.is_empty());
    let direct = rules[2].direct_response.as_ref().unwrap();
    assert_eq!(direct.status, 404);
    assert_eq!(direct.body, Some(Body::Bytes(b"hi".to_vec())));
}

#[test]
fn bad_http_features_name_their_fields() {
    let errors = vs_errors(
        "  - route: [{destination: {host: reviews}}]
    redirect: {uri: /x}
  - redirect: {uri: /x, redirectCode: 200, port: 1, derivePort: FROM_REQUEST_PORT}
  - directResponse: {status: 99, body: {bytes: '!!'}}
  - route: [{destination: {host: reviews}}]
    fault: {abort: {httpStatus: 503, percentage: {value: 150}}, delay: {percentage: {value: 5}}}
  - route: [{destination: {host: reviews}}]
    fault: {abort: {grpcStatus: SOMETIMES}}
  - route: [{destination: {host: reviews}}]
    rewrite: {uri: /a, uriRegexRewrite: {match: '(', rewrite: x}}
  - route: [{destination: {host: reviews}}]
    mirror: {host: reviews}
    mirrors: [{destination: {host: reviews}}]
    headers: {request: {set: {host: other, x-bad: \"a\\nb\"}}}
  - route: [{destination: {host: reviews}}]
    mirrorPercentage: {value: 5}
  - match: [{queryParams: {q: {regex: '('}}}]
    route: [{destination: {host: reviews}}]
",
    );
    assert_error(
        &errors,
        "spec.http[0]: sets route and redirect; a rule forwards",
    );
    assert_error(
        &errors,
        "spec.http[1].redirect.redirectCode: 200 is not a redirect code",
    );
    assert_error(
        &errors,
        "spec.http[2].directResponse.status: 99 is not an HTTP status",
    );
    assert_error(
        &errors,
        "spec.http[2].directResponse.body.bytes: not valid base64",
    );
    assert_error(
        &errors,
        "spec.http[3].fault.abort.percentage.value: 150 is not a percentage",
    );
    assert_error(
        &errors,
        "spec.http[3].fault.delay.fixedDelay: a fixedDelay is required",
    );
    assert_error(
        &errors,
        "spec.http[4].fault.abort.grpcStatus: unknown gRPC status \"SOMETIMES\"",
    );
    assert_error(
        &errors,
        "spec.http[5].rewrite.uriRegexRewrite.match: invalid regular expression",
    );
    assert_error(
        &errors,
        "spec.http[6].mirrors: set mirror or mirrors, not both",
    );
    assert_error(
        &errors,
        "spec.http[6].headers.request.set.host: the Host header cannot be changed here; use rewrite.authority",
    );
    assert_error(
        &errors,
        "spec.http[6].headers.request.set.x-bad: a header value cannot contain line breaks",
    );
    assert_error(
        &errors,
        "spec.http[7].mirrorPercentage: applies to `mirror`",
    );
    assert_error(
        &errors,
        "spec.http[8].match[0].queryParams.q.regex: invalid regular expression",
    );
}

fn delegation_mesh(root_http: &str, delegate: &str) -> String {
    docs(&[
        mk_service_entry("reviews", &["v1", "v2"]),
        mk_destination_rule("reviews", &["v1", "v2"]),
        mk_virtual_service("reviews", root_http),
        delegate.to_string(),
    ])
}

const DELEGATE: &str = "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: api, namespace: team}
spec:
  exportTo: [default]
  http:
  - name: v2
    match: [{uri: {prefix: /api/v2}, headers: {x-b: {exact: b}}}]
    route: [{destination: {host: reviews.default.svc.cluster.local, subset: v2}}]
  - match: [{uri: {prefix: /elsewhere}}]
    route: [{destination: {host: reviews.default.svc.cluster.local, subset: v2}}]
  - route: [{destination: {host: reviews.default.svc.cluster.local, subset: v1}}]
    timeout: 1s
";

#[test]
fn delegates_merge_into_their_root_as_istio_merges_them() {
    let applied = ConfigStore::default().apply(mk_inputs(&delegation_mesh(
        "  - name: root
    match: [{uri: {prefix: /api}, headers: {x-a: {exact: a}}}]
    timeout: 5s
    headers: {request: {set: {x-root: r}}}
    delegate: {name: api, namespace: team}
  - route: [{destination: {host: reviews, subset: v1}}]
",
        DELEGATE,
    )));
    let errors: Vec<String> = applied.errors.iter().map(|e| e.to_string()).collect();
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert!(
        errors[0].contains("VirtualService team/api: spec.http[1].match: conflicts with every match of VirtualService default/reviews spec.http[0]"),
        "{errors:#?}"
    );
    let root = applied
        .snapshot
        .virtual_services
        .iter()
        .find(|vs| vs.id.name == "reviews")
        .unwrap();
    assert_eq!(
        root.http.len(),
        3,
        "two delegate rules, then the root's last"
    );
    let first = &root.http[0];
    assert_eq!(first.name.as_deref(), Some("root-v2"));
    assert_eq!(
        first.matches[0].uri,
        Some(StringMatch::Prefix("/api/v2".into()))
    );
    let headers: Vec<&str> = first.matches[0]
        .headers
        .iter()
        .map(|(k, _)| k.as_str())
        .collect();
    assert_eq!(
        headers,
        ["x-a", "x-b"],
        "root and delegate conditions both hold"
    );
    assert_eq!(
        first.timeout,
        Some(std::time::Duration::from_secs(5)),
        "inherited"
    );
    assert_eq!(
        first.headers.request.set.get("x-root").map(String::as_str),
        Some("r")
    );
    let second = &root.http[1];
    assert_eq!(
        second.matches[0].uri,
        Some(StringMatch::Prefix("/api".into()))
    );
    assert_eq!(
        second.timeout,
        Some(std::time::Duration::from_secs(1)),
        "its own wins"
    );
    assert!(root.http.iter().all(|r| r.delegate.is_none()));
}

#[test]
fn a_missing_or_hidden_delegate_is_reported_on_the_root() {
    let missing = errors_of(&delegation_mesh(
        "  - delegate: {name: nope}\n",
        &DELEGATE.replace("exportTo: [default]", "exportTo: ['*']"),
    ));
    assert_error(
        &missing,
        "VirtualService default/reviews: spec.http[0].delegate: delegate VirtualService default/nope does not exist",
    );
    let hidden = errors_of(&delegation_mesh(
        "  - delegate: {name: api, namespace: team}\n",
        &DELEGATE.replace("exportTo: [default]", "exportTo: [.]"),
    ));
    assert_error(
        &hidden,
        "spec.http[0].delegate: delegate VirtualService team/api is not exported to namespace default",
    );
    let not_delegate = errors_of(&delegation_mesh(
        "  - delegate: {name: api, namespace: team}\n",
        &DELEGATE.replace("spec:\n", "spec:\n  hosts: [other.example.com]\n"),
    ));
    assert_error(
        &not_delegate,
        "VirtualService team/api has hosts, so it is not a delegate",
    );
    let nested = errors_of(&delegation_mesh(
        "  - route: [{destination: {host: reviews}}]\n",
        &DELEGATE.replace(
            "  - route: [{destination",
            "  - delegate: {name: x}\n  - route: [{destination",
        ),
    ));
    assert_error(&nested, "a delegate VirtualService cannot delegate again");
}

fn second_vs(name: &str, http: &str) -> String {
    mk_virtual_service(name, http).replace(&format!("hosts: [{name}]"), "hosts: [reviews]")
}

#[test]
fn virtual_services_for_one_host_merge_and_report_unreachable_rules() {
    let catch_all = errors_of(&docs(&[
        mk_service_entry("reviews", &["v1", "v2"]),
        mk_destination_rule("reviews", &["v1", "v2"]),
        mk_virtual_service(
            "reviews",
            "  - route: [{destination: {host: reviews, subset: v1}}]\n",
        ),
        second_vs(
            "z-later",
            "  - match: [{uri: {prefix: /x}}]\n    route: [{destination: {host: reviews, subset: v2}}]\n",
        ),
    ]));
    assert_eq!(catch_all.len(), 1, "{catch_all:#?}");
    assert_error(
        &catch_all,
        "VirtualService default/z-later: spec.http: rules for host reviews.default.svc.cluster.local are unreachable: VirtualService default/reviews, merged before this one (namespace/name order), matches every request in spec.http[0]",
    );

    let shadowed_yaml = docs(&[
        mk_service_entry("reviews", &["v1", "v2"]),
        mk_destination_rule("reviews", &["v1", "v2"]),
        mk_virtual_service(
            "reviews",
            "  - match: [{uri: {prefix: /x}}]\n    route: [{destination: {host: reviews, subset: v1}}]\n",
        ),
        second_vs(
            "z-later",
            "  - match: [{uri: {prefix: /y}}, {uri: {prefix: /x}}]\n    route: [{destination: {host: reviews, subset: v2}}]\n  - route: [{destination: {host: reviews, subset: v2}}]\n",
        ),
    ]);
    let applied = ConfigStore::default().apply(mk_inputs(&shadowed_yaml));
    let shadowed: Vec<String> = applied.errors.iter().map(|e| e.to_string()).collect();
    assert_eq!(shadowed.len(), 1, "{shadowed:#?}");
    assert_eq!(
        applied.errors[0].error.reason,
        ErrorReason::UnresolvedReference
    );
    assert_error(
        &shadowed,
        "VirtualService default/z-later: spec.http[0].match[1]: is unreachable for host reviews.default.svc.cluster.local: VirtualService default/reviews spec.http[0].match[0]",
    );
    // Both still apply, merged in order.
    let order: Vec<&str> = applied
        .snapshot
        .virtual_services
        .iter()
        .map(|vs| vs.id.name.as_str())
        .collect();
    assert_eq!(order, ["reviews", "z-later"]);
}

#[test]
fn export_to_is_kept_for_translation() {
    let snapshot = mk_snapshot(
        &reviews_mesh("  - route: [{destination: {host: reviews}}]\n").replace(
            "  hosts: [reviews]\n",
            "  hosts: [reviews]\n  exportTo: [., prod]\n",
        ),
    );
    let vs = &snapshot.virtual_services[0];
    assert_eq!(vs.export_to.as_slice(), [".", "prod"]);
}

#[test]
fn service_entry_ports_are_checked_before_envoy_sees_them() {
    let errors = errors_of(
        "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ports}
spec:
  hosts: [ports.internal]
  resolution: DNS_ROUND_ROBIN
  ports:
  - {number: 80, name: http, protocol: HTTP}
  - {number: 80, name: web, protocol: HTTP}
  - {number: 53, name: dns, protocol: UDP}
  - {number: 81, name: odd, protocol: SMTP}
  endpoints: [{address: a.example}, {address: b.example}]
",
    );
    for expected in [
        "spec.ports[1].number: port 80 is declared twice",
        "spec.ports[2].protocol: not supported by Weft yet: protocol UDP",
        "spec.ports[3].protocol: unknown protocol",
        "spec.endpoints: resolution DNS_ROUND_ROBIN takes at most one endpoint",
    ] {
        assert!(
            errors.iter().any(|e| e.contains(expected)),
            "want {expected:?} in {errors:#?}"
        );
    }
}
