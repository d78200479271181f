//! DestinationRule traffic policies enforced by a real Envoy: consistent
//! hashing, outlier detection, connection-pool limits, upstream TLS
//! (SIMPLE, MUTUAL), and the subset / port-level merge rules. Upstream
//! address blocks 40..=49.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::net::IpAddr;

use weft_e2e::tls::{CLIENT_CERT_HEADER, SNI_HEADER, TestPki, TlsUpstream};
use weft_e2e::yaml::{fqdn, mk_service_entry, multi_doc};
use weft_e2e::{APPLY_TIMEOUT, Mesh, http_get, start_upstreams, wait_until};

fn destination_rule(name: &str, spec: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: {name}
  namespace: default
spec:
  host: {name}
{spec}"
    )
}

/// A VirtualService sending everything to `name` with retries off.
fn plain_route(name: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: {name}
  namespace: default
spec:
  hosts: [{name}]
  http:
  - route:
    - destination: {{host: {name}}}
    retries: {{attempts: 0}}
"
    )
}

/// A ServiceEntry whose `http` port 9080 is served at (ip, port) pairs.
fn service_at(name: &str, endpoints: &[(IpAddr, u16)]) -> String {
    let mut yaml = format!(
        "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: {name}
  namespace: default
spec:
  hosts: [{host}]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{{number: 9080, name: http, protocol: HTTP}}]
  endpoints:
",
        host = fqdn(name, "default")
    );
    for (ip, port) in endpoints {
        let _ = writeln!(yaml, "  - {{address: {ip}, ports: {{http: {port}}}}}");
    }
    yaml
}

/// The JSON of cluster `name` in Envoy's config dump.
async fn cluster_dump(mesh: &Mesh, name: &str) -> Option<String> {
    let dump = mesh
        .admin_get("/config_dump?resource=dynamic_active_clusters")
        .await
        .ok()?
        .body;
    let start = dump.find(&format!("\"name\": \"{name}\""))?;
    let rest = &dump[start..];
    let end = rest.find("\"last_updated\"").unwrap_or(rest.len());
    Some(rest[..end].to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consistent_hash_sends_one_header_value_to_one_upstream() -> anyhow::Result<()> {
    let ups = start_upstreams(40, &["a", "b", "c"]).await?;
    let refs: Vec<_> = ups.iter().collect();
    let mesh = Mesh::builder()
        .file("svc.yaml", mk_service_entry("hashed", "default", &refs))
        .file(
            "dr.yaml",
            destination_rule(
                "hashed",
                "  trafficPolicy:
    loadBalancer:
      consistentHash:
        httpHeaderName: x-user
        ringHash: {minimumRingSize: 2048}
",
            ),
        )
        .file("vs.yaml", plain_route("hashed"))
        .start()
        .await?;
    let host = fqdn("hashed", "default");
    wait_until("the ring-hash cluster", APPLY_TIMEOUT, || async {
        cluster_dump(&mesh, "outbound|9080||hashed.default.svc.cluster.local")
            .await
            .is_some_and(|c| c.contains("RING_HASH") && c.contains("2048"))
    })
    .await?;
    let alice = mesh.sample(&host, "/", &[("x-user", "alice")], 100).await?;
    assert_eq!(
        alice.len(),
        1,
        "alice always reaches one upstream: {alice:?}"
    );
    assert!(!alice.keys().any(|k| k.starts_with("status")), "{alice:?}");

    // Different users spread over more than one upstream.
    let mut seen = BTreeSet::new();
    for i in 0..30 {
        let user = format!("user-{i}");
        let (status, body) = mesh.get(&host, "/", &[("x-user", &user)]).await?;
        assert_eq!(status, 200);
        seen.insert(body);
    }
    assert!(seen.len() > 1, "30 users all hashed to {seen:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outlier_detection_stops_sending_to_an_endpoint_that_fails() -> anyhow::Result<()> {
    let ups = start_upstreams(41, &["good", "bad"]).await?;
    let refs: Vec<_> = ups.iter().collect();
    let mesh = Mesh::builder()
        .file("svc.yaml", mk_service_entry("flaky", "default", &refs))
        .file(
            "dr.yaml",
            destination_rule(
                "flaky",
                "  trafficPolicy:
    loadBalancer: {simple: ROUND_ROBIN}
    outlierDetection:
      consecutive5xxErrors: 2
      interval: 1s
      baseEjectionTime: 60s
      maxEjectionPercent: 100
",
            ),
        )
        .file("vs.yaml", plain_route("flaky"))
        .start()
        .await?;
    let host = fqdn("flaky", "default");
    wait_until("outlier detection in Envoy", APPLY_TIMEOUT, || async {
        cluster_dump(&mesh, "outbound|9080||flaky.default.svc.cluster.local")
            .await
            .is_some_and(|c| c.contains("outlier_detection"))
    })
    .await?;
    ups[1].fail_next(1_000);
    let first = mesh.sample(&host, "/", &[], 20).await?;
    let failures = first.get("status 503").copied().unwrap_or(0);
    assert!(
        (1..=3).contains(&failures),
        "the bad endpoint is ejected after two 5xx: {first:?}"
    );
    ups[1].reset_requests();
    let after = mesh.sample(&host, "/", &[], 50).await?;
    assert_eq!(
        after,
        [("good".to_string(), 50)].into(),
        "only the good endpoint answers once the bad one is ejected"
    );
    assert_eq!(ups[1].requests(), 0, "nothing reaches the ejected endpoint");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_pool_overflow_answers_503() -> anyhow::Result<()> {
    let ups = start_upstreams(42, &["slow"]).await?;
    let refs: Vec<_> = ups.iter().collect();
    let mesh = Mesh::builder()
        .file("svc.yaml", mk_service_entry("pooled", "default", &refs))
        .file(
            "dr.yaml",
            destination_rule(
                "pooled",
                "  trafficPolicy:
    connectionPool:
      tcp: {maxConnections: 1, connectTimeout: 2s}
      http: {http1MaxPendingRequests: 1, http2MaxRequests: 1, maxRetries: 1, idleTimeout: 30s}
",
            ),
        )
        .file("vs.yaml", plain_route("pooled"))
        .start()
        .await?;
    let host = fqdn("pooled", "default");
    wait_until("the circuit breaker in Envoy", APPLY_TIMEOUT, || async {
        cluster_dump(&mesh, "outbound|9080||pooled.default.svc.cluster.local")
            .await
            .is_some_and(|c| c.contains("\"max_pending_requests\": 1"))
    })
    .await?;
    mesh.wait_for_body(&host, "/", &[], "slow", APPLY_TIMEOUT)
        .await?;
    ups[0].set_delay(std::time::Duration::from_millis(1500));
    let mut tasks = Vec::new();
    for _ in 0..6 {
        let (addr, host) = (mesh.router_addr(), host.clone());
        tasks.push(tokio::spawn(async move {
            http_get(addr, &host, "/", &[]).await
        }));
    }
    let mut statuses = Vec::new();
    let mut overloaded = 0;
    for task in tasks {
        let reply = task.await??;
        if reply.header("x-envoy-overloaded").is_some() {
            overloaded += 1;
        }
        statuses.push(reply.status);
    }
    let ok = statuses.iter().filter(|s| **s == 200).count();
    let rejected = statuses.iter().filter(|s| **s == 503).count();
    assert!(ok >= 1, "{statuses:?}");
    assert!(
        rejected >= 3,
        "the pool of 1 + 1 pending overflows: {statuses:?}"
    );
    assert_eq!(
        overloaded, rejected,
        "Envoy marks overflow 503s: {statuses:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_simple_and_mutual_reach_tls_upstreams() -> anyhow::Result<()> {
    let pki = TestPki::new()?;
    let (simple_host, mutual_host, sni_host) = (
        fqdn("secure", "default"),
        fqdn("mutual", "default"),
        fqdn("named", "default"),
    );
    let ip = |n: u8| IpAddr::from([127, 0, 43, n]);
    let simple = TlsUpstream::start("simple", ip(1), &pki.issue(&[&simple_host])?, None).await?;
    let mutual = TlsUpstream::start(
        "mutual",
        ip(2),
        &pki.issue(&[&mutual_host])?,
        Some(pki.ca_pem()),
    )
    .await?;
    let named = TlsUpstream::start("named", ip(3), &pki.issue(&["custom.test"])?, None).await?;
    // Its certificate names neither the host nor anything the rules expect.
    let stranger =
        TlsUpstream::start("stranger", ip(4), &pki.issue(&["other.test"])?, None).await?;
    let client = pki.issue(&["spiffe://cluster.local/ns/default/sa/weft-e2e"])?;
    let ca = pki.ca_path().display().to_string();
    let mesh = Mesh::builder()
        .file(
            "svc.yaml",
            multi_doc(&[
                service_at("secure", &[(simple.ip(), simple.port())]),
                service_at("mutual", &[(mutual.ip(), mutual.port())]),
                service_at("named", &[(named.ip(), named.port())]),
                service_at("lax", &[(stranger.ip(), stranger.port())]),
                service_at("strict", &[(stranger.ip(), stranger.port())]),
            ]),
        )
        .file(
            "dr.yaml",
            multi_doc(&[
                destination_rule(
                    "lax",
                    "  trafficPolicy:\n    tls: {mode: SIMPLE, insecureSkipVerify: true}\n",
                ),
                destination_rule(
                    "strict",
                    &format!(
                        "  trafficPolicy:\n    tls: {{mode: SIMPLE, caCertificates: {ca}, subjectAltNames: [expected.test]}}\n"
                    ),
                ),
                destination_rule(
                    "secure",
                    &format!("  trafficPolicy:\n    tls: {{mode: SIMPLE, caCertificates: {ca}}}\n"),
                ),
                destination_rule(
                    "mutual",
                    &format!(
                        "  trafficPolicy:
    tls:
      mode: MUTUAL
      caCertificates: {ca}
      clientCertificate: {cert}
      privateKey: {key}
",
                        cert = client.cert_path.display(),
                        key = client.key_path.display()
                    ),
                ),
                destination_rule(
                    "named",
                    &format!(
                        "  trafficPolicy:
    tls: {{mode: SIMPLE, caCertificates: {ca}, sni: custom.test, subjectAltNames: [custom.test]}}
"
                    ),
                ),
            ]),
        )
        .start()
        .await?;
    mesh.wait_for_body(&simple_host, "/", &[], "simple", APPLY_TIMEOUT)
        .await?;
    let reply = mesh.request(&simple_host, "/", &[]).await?;
    assert_eq!(
        reply.header(SNI_HEADER),
        Some(simple_host.as_str()),
        "SNI from Host"
    );
    assert_eq!(reply.header(CLIENT_CERT_HEADER), Some("absent"));

    mesh.wait_for_body(&mutual_host, "/", &[], "mutual", APPLY_TIMEOUT)
        .await?;
    let reply = mesh.request(&mutual_host, "/", &[]).await?;
    assert_eq!(reply.header(CLIENT_CERT_HEADER), Some("present"));

    mesh.wait_for_body(&sni_host, "/", &[], "named", APPLY_TIMEOUT)
        .await?;
    let reply = mesh.request(&sni_host, "/", &[]).await?;
    assert_eq!(
        reply.header(SNI_HEADER),
        Some("custom.test"),
        "explicit sni"
    );

    // insecureSkipVerify accepts any certificate; a SAN mismatch is refused.
    mesh.wait_for_body(&fqdn("lax", "default"), "/", &[], "stranger", APPLY_TIMEOUT)
        .await?;
    let (status, _) = mesh.get(&fqdn("strict", "default"), "/", &[]).await?;
    assert_eq!(status, 503, "the certificate does not name expected.test");

    // Without a client certificate the MUTUAL upstream refuses Envoy.
    mesh.write_config(
        "dr.yaml",
        &destination_rule(
            "mutual",
            &format!("  trafficPolicy:\n    tls: {{mode: SIMPLE, caCertificates: {ca}}}\n"),
        ),
    )?;
    wait_until(
        "the MUTUAL upstream to refuse a SIMPLE client",
        APPLY_TIMEOUT,
        || async { matches!(mesh.get(&mutual_host, "/", &[]).await, Ok((503, _))) },
    )
    .await?;
    assert!(mutual.failed_handshakes() > 0);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subset_and_port_level_policies_override_the_rule() -> anyhow::Result<()> {
    let ups = start_upstreams(44, &["v1", "v2"]).await?;
    let refs: Vec<_> = ups.iter().collect();
    let mesh = Mesh::builder()
        .file("svc.yaml", mk_service_entry("layered", "default", &refs))
        .file(
            "dr.yaml",
            destination_rule(
                "layered",
                "  trafficPolicy:
    loadBalancer: {simple: ROUND_ROBIN}
    connectionPool: {tcp: {connectTimeout: 3s}}
  subsets:
  - name: v1
    labels: {version: v1}
  - name: v2
    labels: {version: v2}
    trafficPolicy:
      loadBalancer: {simple: RANDOM}
      portLevelSettings:
      - port: {number: 9080}
        connectionPool: {http: {http1MaxPendingRequests: 1}}
",
            ),
        )
        .file(
            "vs.yaml",
            "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: layered, namespace: default}
spec:
  hosts: [layered]
  http:
  - match: [{headers: {x-v: {exact: '2'}}}]
    route: [{destination: {host: layered, subset: v2}}]
    retries: {attempts: 0}
  - route: [{destination: {host: layered, subset: v1}}]
",
        )
        .start()
        .await?;
    let host = fqdn("layered", "default");
    mesh.wait_for_body(&host, "/", &[("x-v", "2")], "v2", APPLY_TIMEOUT)
        .await?;
    mesh.wait_for_body(&host, "/", &[], "v1", APPLY_TIMEOUT)
        .await?;
    let v1 = cluster_dump(&mesh, "outbound|9080|v1|layered.default.svc.cluster.local")
        .await
        .expect("the v1 cluster");
    // ROUND_ROBIN is Envoy's proto default, so the dump omits `lb_policy`.
    assert!(
        !v1.contains("\"lb_policy\""),
        "v1 inherits ROUND_ROBIN: {v1}"
    );
    assert!(v1.contains("\"connect_timeout\": \"3s\""), "{v1}");
    // v2's port-level settings replace every policy field for port 9080:
    // no inherited ROUND_ROBIN / RANDOM, default connect timeout.
    let v2 = cluster_dump(&mesh, "outbound|9080|v2|layered.default.svc.cluster.local")
        .await
        .expect("the v2 cluster");
    assert!(
        v2.contains("LEAST_REQUEST") && !v2.contains("RANDOM"),
        "{v2}"
    );
    assert!(v2.contains("\"connect_timeout\": \"10s\""), "{v2}");
    assert!(v2.contains("\"max_pending_requests\": 1"), "{v2}");

    // Observable: v2 admits one request at a time plus one pending.
    ups[1].set_delay(std::time::Duration::from_millis(1500));
    let mut tasks = Vec::new();
    for _ in 0..5 {
        let (addr, host) = (mesh.router_addr(), host.clone());
        tasks.push(tokio::spawn(async move {
            http_get(addr, &host, "/", &[("x-v", "2")]).await
        }));
    }
    let mut rejected = 0;
    for task in tasks {
        if task.await??.status == 503 {
            rejected += 1;
        }
    }
    assert!(rejected >= 2, "v2's port-level pool overflows");
    // v1 (no limit) takes the same burst.
    ups[0].set_delay(std::time::Duration::from_millis(500));
    let mut tasks = Vec::new();
    for _ in 0..5 {
        let (addr, host) = (mesh.router_addr(), host.clone());
        tasks.push(tokio::spawn(async move {
            http_get(addr, &host, "/", &[]).await
        }));
    }
    for task in tasks {
        assert_eq!(task.await??.status, 200, "v1 has no pool limit");
    }
    Ok(())
}

/// Every translated policy field at once: Envoy accepts the clusters (a
/// NACK would keep them out of the dump), shows each value, and serves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_policy_field_is_accepted_by_envoy() -> anyhow::Result<()> {
    let ups = start_upstreams(45, &["v1"]).await?;
    let refs: Vec<_> = ups.iter().collect();
    let mesh = Mesh::builder()
        .file("svc.yaml", mk_service_entry("tuned", "default", &refs))
        .file(
            "dr.yaml",
            destination_rule(
                "tuned",
                "  trafficPolicy:
    loadBalancer:
      simple: LEAST_REQUEST
      warmup: {duration: 30s, minimumPercent: 10, aggression: 2}
    connectionPool:
      tcp:
        maxConnections: 50
        connectTimeout: 250ms
        tcpKeepalive: {probes: 3, time: 600s, interval: 30s}
        maxConnectionDuration: 1h
        idleTimeout: 5m
      http:
        http1MaxPendingRequests: 20
        http2MaxRequests: 40
        maxRequestsPerConnection: 5
        maxRetries: 4
        idleTimeout: 90s
    outlierDetection:
      consecutive5xxErrors: 4
      consecutiveGatewayErrors: 2
      consecutiveLocalOriginFailures: 3
      splitExternalLocalOriginErrors: true
      interval: 5s
      baseEjectionTime: 45s
      maxEjectionPercent: 50
      minHealthPercent: 25
    tls: {mode: DISABLE}
  subsets:
  - name: cookie
    labels: {version: v1}
    trafficPolicy:
      loadBalancer:
        consistentHash:
          httpCookie: {name: session, path: /, ttl: 60s}
          maglev: {tableSize: 65537}
  - name: source
    labels: {version: v1}
    trafficPolicy:
      loadBalancer: {consistentHash: {useSourceIp: true, minimumRingSize: 512}}
  - name: query
    labels: {version: v1}
    trafficPolicy:
      loadBalancer: {consistentHash: {httpQueryParameterName: user, ringHash: {minimumRingSize: 4096}}}
      connectionPool: {http: {useClientProtocol: true, maxConcurrentStreams: 64}}
  - name: h2
    labels: {version: v1}
    trafficPolicy:
      connectionPool: {http: {h2UpgradePolicy: UPGRADE}}
",
            ),
        )
        .file(
            "vs.yaml",
            "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: tuned, namespace: default}
spec:
  hosts: [tuned]
  http:
  - match: [{headers: {x-subset: {exact: cookie}}}]
    route: [{destination: {host: tuned, subset: cookie}}]
  - route: [{destination: {host: tuned}}]
",
        )
        .start()
        .await?;
    let host = fqdn("tuned", "default");
    mesh.wait_for_body(&host, "/", &[], "v1", APPLY_TIMEOUT)
        .await?;
    let cluster = |subset: &str| {
        let name = format!("outbound|9080|{subset}|tuned.default.svc.cluster.local");
        let mesh = &mesh;
        async move {
            cluster_dump(mesh, &name)
                .await
                .expect("the cluster is in the dump")
        }
    };
    let main = cluster("").await;
    for expected in [
        "\"slow_start_window\": \"30s\"",
        "\"connect_timeout\": \"0.250s\"",
        "\"max_connections\": 50",
        "\"max_pending_requests\": 20",
        "\"max_requests\": 40",
        "\"max_retries\": 4",
        "\"keepalive_probes\": 3",
        "\"keepalive_time\": 600",
        "\"keepalive_interval\": 30",
        "\"max_connection_duration\": \"3600s\"",
        "\"idle_timeout\": \"90s\"",
        "\"max_requests_per_connection\": 5",
        "\"consecutive_5xx\": 4",
        "\"consecutive_gateway_failure\": 2",
        "\"consecutive_local_origin_failure\": 3",
        "\"split_external_local_origin_errors\": true",
        "\"base_ejection_time\": \"45s\"",
        "\"max_ejection_percent\": 50",
        "\"healthy_panic_threshold\"",
        "\"value\": 25",
    ] {
        assert!(main.contains(expected), "want {expected} in {main}");
    }
    assert!(
        !main.contains("transport_socket"),
        "tls DISABLE: plain text"
    );
    let cookie = cluster("cookie").await;
    assert!(
        cookie.contains("MAGLEV") && cookie.contains("65537"),
        "{cookie}"
    );
    // The subset overrides only the balancer; the rest is inherited.
    assert!(cookie.contains("\"max_connections\": 50"), "{cookie}");
    let source = cluster("source").await;
    assert!(
        source.contains("RING_HASH") && source.contains("\"512\""),
        "{source}"
    );
    let query = cluster("query").await;
    assert!(query.contains("\"4096\""), "{query}");
    assert!(query.contains("use_downstream_protocol_config"), "{query}");
    assert!(query.contains("\"max_concurrent_streams\": 64"), "{query}");
    let h2 = cluster("h2").await;
    assert!(
        h2.contains("explicit_http_config") && h2.contains("http2_protocol_options"),
        "{h2}"
    );

    // The cookie hash policy: Envoy mints the cookie when it is missing.
    mesh.wait_for_body(&host, "/", &[("x-subset", "cookie")], "v1", APPLY_TIMEOUT)
        .await?;
    let reply = mesh.request(&host, "/", &[("x-subset", "cookie")]).await?;
    let set_cookie = reply.header("set-cookie").unwrap_or_default().to_string();
    assert!(
        set_cookie.starts_with("session=") && set_cookie.contains("Max-Age=60"),
        "{set_cookie:?}"
    );
    assert!(set_cookie.contains("Path=/"), "{set_cookie:?}");
    Ok(())
}

/// A DestinationRule applies only to proxies it is exported to and, with a
/// `workloadSelector`, whose labels match; elsewhere its subsets do not
/// exist, so a route to one answers 503.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn destination_rule_export_to_and_workload_selector_choose_proxies() -> anyhow::Result<()> {
    let ups = start_upstreams(46, &["v1", "v2"]).await?;
    let refs: Vec<_> = ups.iter().collect();
    let rule = |extra: &str| {
        destination_rule(
            "picky",
            &format!(
                "{extra}  subsets:
  - {{name: v2, labels: {{version: v2}}}}
"
            ),
        )
    };
    let mesh = Mesh::builder()
        .labels(&[("app", "back")])
        .file("svc.yaml", mk_service_entry("picky", "default", &refs))
        .file(
            "dr.yaml",
            rule("  workloadSelector: {matchLabels: {app: front}}\n"),
        )
        .file(
            "vs.yaml",
            "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: picky, namespace: default}
spec:
  hosts: [picky]
  http:
  - route: [{destination: {host: picky, subset: v2}}]
",
        )
        .start()
        .await?;
    let host = fqdn("picky", "default");
    let answers_503 = || async { matches!(mesh.get(&host, "/", &[]).await, Ok((503, _))) };
    wait_until(
        "the unselected rule to have no subsets",
        APPLY_TIMEOUT,
        answers_503,
    )
    .await?;

    mesh.write_config(
        "dr.yaml",
        &rule("  workloadSelector: {matchLabels: {app: back}}\n"),
    )?;
    mesh.wait_for_body(&host, "/", &[], "v2", APPLY_TIMEOUT)
        .await?;

    mesh.write_config("dr.yaml", &rule("  exportTo: [prod]\n"))?;
    wait_until(
        "the unexported rule to have no subsets",
        APPLY_TIMEOUT,
        answers_503,
    )
    .await?;

    mesh.write_config("dr.yaml", &rule("  exportTo: ['.']\n"))?;
    mesh.wait_for_body(&host, "/", &[], "v2", APPLY_TIMEOUT)
        .await?;
    Ok(())
}
