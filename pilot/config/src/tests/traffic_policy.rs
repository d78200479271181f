//! DestinationRule policies and ServiceEntry checks.

use super::*;

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
            "    tls: {mode: ISTIO_MUTUAL, clientCertificate: /c.pem}\n",
            "spec.trafficPolicy.tls.clientCertificate: ISTIO_MUTUAL uses the mesh's certificates",
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
    assert_eq!(db.location, weft_model::Location::MeshInternal);
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
