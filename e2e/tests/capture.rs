//! Transparent capture in network namespaces (root): two "pods", each with
//! `weft agent iptables` applied and `weft agent --capture` running Envoy
//! as UID 1337. The client pod's code connects to the service VIP with no
//! proxy settings; the request reaches the server pod's app through both
//! sidecars over mTLS (the app sees the client's SPIFFE ID), and neither
//! proxy's own traffic is captured again (no loop). The app's probes,
//! rewritten by `weft inject` to the agent's status port, pass STRICT
//! mTLS from the node where the original would be refused.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use weft_e2e::capture::{CLIENT_ID, CapturedPair, SERVER_ID};
use weft_e2e::client::wait_for;
use weft_e2e::mesh::ENVOY_READY_TIMEOUT;
use weft_e2e::sidecars::{Sidecar, xfcc_values};

/// Envoy admin `/stats` as name -> value (counters and gauges).
async fn stats(sidecar: &Sidecar) -> std::collections::BTreeMap<String, u64> {
    let reply = sidecar.admin_get("/stats").await.unwrap();
    reply
        .body
        .lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(": ")?;
            Some((k.to_string(), v.trim().parse().ok()?))
        })
        .collect()
}

fn stat(stats: &std::collections::BTreeMap<String, u64>, name: &str) -> u64 {
    stats.get(name).copied().unwrap_or(0)
}

const REQUESTS: u64 = 5;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn captured_pods_talk_mtls_through_both_sidecars_without_loops() -> anyhow::Result<()> {
    let pair = CapturedPair::start().await?;
    let (client_before, server_before) = (stats(pair.client()).await, stats(pair.server()).await);

    for _ in 0..REQUESTS {
        let reply = pair.call().await?;
        assert_eq!(reply.status, 200, "{reply:?}\n{}", pair.logs());
        assert_eq!(reply.body, "reviews-app");
    }

    // The server's sidecar terminated mTLS: the app sees who called.
    let request = pair.app().last_received().expect("the app got requests");
    let xfcc = request
        .header("x-forwarded-client-cert")
        .expect("the server's sidecar sets x-forwarded-client-cert");
    assert_eq!(xfcc_values(xfcc, "URI"), [CLIENT_ID], "{xfcc}");
    assert_eq!(xfcc_values(xfcc, "By"), [SERVER_ID], "{xfcc}");

    let (client_after, server_after) = (stats(pair.client()).await, stats(pair.server()).await);
    let client = |name: &str| stat(&client_after, name) - stat(&client_before, name);
    let server = |name: &str| stat(&server_after, name) - stat(&server_before, name);
    // Each request is one connection the client's app made, captured once
    // and handed by virtualOutbound to the port's listener (which counts
    // it): Envoy's own upstream connections are not redirected back to it.
    assert_eq!(
        client("listener.0.0.0.0_9080.downstream_cx_total"),
        REQUESTS
    );
    assert_eq!(
        client("listener.0.0.0.0_15001.downstream_cx_total"),
        0,
        "nothing fell through to virtualOutbound's own chain"
    );
    assert_eq!(
        client("cluster.PassthroughCluster.upstream_cx_total"),
        0,
        "the VIP matched the service, nothing passed through"
    );
    let to_server =
        client("cluster.outbound|9080||reviews.ns1.svc.cluster.local.upstream_cx_total");
    // (Envoy may reuse a pooled connection from before.)
    assert!(to_server <= REQUESTS, "{to_server}");
    // The server's inbound connections are exactly the client Envoy's.
    assert_eq!(
        server("listener.0.0.0.0_15006.downstream_cx_total"),
        to_server
    );
    assert_eq!(
        server("cluster.InboundPassthroughCluster.upstream_cx_total"),
        0
    );
    assert!(server("cluster.inbound|9080||.upstream_rq_total") >= REQUESTS);
    // The server Envoy's forward to 127.0.0.1:9080 was not captured as an
    // outbound connection of the server pod.
    assert_eq!(server("listener.0.0.0.0_9080.downstream_cx_total"), 0);

    // Envoy accepted every configuration it was sent.
    for s in [&client_after, &server_after] {
        assert!(stat(s, "listener_manager.lds.update_success") >= 1);
        assert_eq!(stat(s, "listener_manager.lds.update_rejected"), 0);
        assert_eq!(stat(s, "cluster_manager.cds.update_rejected"), 0);
        assert_eq!(
            stat(s, "http.outbound_0.0.0.0_9080.rds.9080.update_rejected"),
            0
        );
    }
    Ok(())
}

/// The server pod as `weft inject` sees it: the app container with
/// Istio-style probes on its named port.
const SERVER_POD: &str = "\
apiVersion: v1
kind: Pod
metadata:
  name: reviews-1
  namespace: ns1
  labels: {app: reviews, sidecar.istio.io/inject: \"true\"}
spec:
  serviceAccountName: reviews
  containers:
  - name: reviews
    image: reviews:1
    ports: [{name: http, containerPort: 9080}]
    readinessProbe: {httpGet: {path: /healthz, port: http}, periodSeconds: 5}
    livenessProbe: {tcpSocket: {port: http}}
";

/// `weft inject` of [`SERVER_POD`]: the proxy's `ISTIO_KUBE_APP_PROBERS`
/// and the app's rewritten readiness and liveness probes' `httpGet`.
fn injected_probes() -> anyhow::Result<(String, serde_json::Value, serde_json::Value)> {
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("pod.yaml");
    std::fs::write(&file, SERVER_POD)?;
    let out = std::process::Command::new(weft_e2e::tools::weft_binary()?)
        .args(["inject", "--namespace", "ns1", "-f"])
        .arg(&file)
        .output()?;
    anyhow::ensure!(
        out.status.success(),
        "weft inject failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pod: serde_json::Value = serde_yaml::from_slice(&out.stdout)?;
    let proxy = pod["spec"]["initContainers"]
        .as_array()
        .and_then(|list| list.iter().find(|c| c["name"] == "istio-proxy"))
        .ok_or_else(|| anyhow::anyhow!("no istio-proxy in {pod:#}"))?;
    let probers = proxy["env"]
        .as_array()
        .and_then(|env| env.iter().find(|e| e["name"] == "ISTIO_KUBE_APP_PROBERS"))
        .and_then(|e| e["value"].as_str())
        .ok_or_else(|| anyhow::anyhow!("no ISTIO_KUBE_APP_PROBERS in {proxy:#}"))?;
    let app = &pod["spec"]["containers"][0];
    Ok((
        probers.to_string(),
        app["readinessProbe"]["httpGet"].clone(),
        app["livenessProbe"]["httpGet"].clone(),
    ))
}

/// Under STRICT mTLS, a kubelet's plain-text probe of the app port is
/// captured and refused; the probe injection rewrote to the agent's
/// status port reaches the app (the agent's own connection is not
/// captured) and follows its health; Envoy's 15021 says the sidecar is
/// ready.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rewritten_probes_pass_strict_mtls_and_follow_the_apps_health() -> anyhow::Result<()> {
    let (probers, readiness, liveness) = injected_probes()?;
    assert_eq!(readiness["port"], 15020, "{readiness}");
    assert_eq!(readiness["path"], "/app-health/reviews/readyz");
    assert_eq!(liveness["port"], 15020, "{liveness}");
    assert_eq!(liveness["path"], "/app-health/reviews/livez");
    let pair = CapturedPair::start_with(Some(&probers)).await?;
    let ready_path = readiness["path"].as_str().unwrap_or_default();
    let live_path = liveness["path"].as_str().unwrap_or_default();

    // The sidecar has config and a certificate: Envoy's 15021 says ready,
    // from the node as the kubelet asks it.
    let health = wait_for(
        "the server pod's 15021 /healthz/ready to answer 200",
        ENVOY_READY_TIMEOUT,
        || async {
            pair.get_from_node(15021, "/healthz/ready")
                .await
                .filter(|r| r.status == 200)
        },
    )
    .await
    .map_err(|e| e.context(pair.logs()))?;
    assert_eq!(health.body, "ready\n");
    let agent_ready = pair.get_from_node(15020, "/healthz/ready").await;
    assert_eq!(agent_ready.map(|r| r.status), Some(200));

    // Without the rewrite: the kubelet's plain-text probe of the app port
    // is captured by the inbound listener, which wants mTLS.
    pair.app().reset_requests();
    let direct = pair
        .get_from_node(weft_e2e::capture::PORT, "/healthz")
        .await;
    assert_ne!(
        direct.as_ref().map(|r| r.status),
        Some(200),
        "{direct:?}\n{}",
        pair.logs()
    );
    assert_eq!(pair.app().requests(), 0, "the app never saw it");

    // The rewritten probes reach the app through the agent.
    let ready = pair.get_from_node(15020, ready_path).await;
    assert_eq!(
        ready.as_ref().map(|r| (r.status, r.body.as_str())),
        Some((200, "reviews-app")),
        "{ready:?}\n{}",
        pair.logs()
    );
    let request = pair.app().last_received().expect("the app got the probe");
    assert_eq!(request.path, "/healthz");
    // Straight from the agent, not through the server's Envoy.
    assert_eq!(request.header("x-forwarded-client-cert"), None);
    let live = pair.get_from_node(15020, live_path).await;
    assert_eq!(live.map(|r| r.status), Some(200));

    // An unhealthy app fails its rewritten probe, and recovers.
    pair.app().set_health(500);
    let sick = pair.get_from_node(15020, ready_path).await;
    assert_eq!(sick.map(|r| r.status), Some(500));
    pair.app().set_health(200);
    let healthy = pair.get_from_node(15020, ready_path).await;
    assert_eq!(healthy.map(|r| r.status), Some(200));

    // A path no probe was written for is refused, by name.
    let unknown = pair
        .get_from_node(15020, "/app-health/other/readyz")
        .await
        .expect("an answer");
    assert_eq!(unknown.status, 400);
    assert!(
        unknown.body.contains("/app-health/other/readyz"),
        "{}",
        unknown.body
    );
    Ok(())
}

/// A ServiceEntry `name` in ns1 (at `address`, if any) of one port
/// `number` of `protocol`, served by the server pod (with a sidecar) on
/// `target_port`.
fn pod_service(
    name: &str,
    address: Option<&str>,
    number: u16,
    protocol: &str,
    server_ip: std::net::Ipv4Addr,
    target_port: u16,
) -> String {
    let addresses = address
        .map(|a| format!("addresses: [{a}]"))
        .unwrap_or_default();
    format!(
        "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: {name}, namespace: ns1}}
spec:
  hosts: [{name}.ns1.svc.cluster.local]
  {addresses}
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{{number: {number}, name: port, protocol: {protocol}, targetPort: {target_port}}}]
  endpoints:
  - address: {server_ip}
    serviceAccount: reviews
    labels: {{app: {name}, security.istio.io/tlsMode: istio}}
---
"
    )
}

/// Connections from `sleep` to `db` go to `db-v2`; anyone else's stay.
const DB_TO_V2_FOR_SLEEP: &str = "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: db, namespace: ns1}
spec:
  hosts: [db.ns1.svc.cluster.local]
  tcp:
  - match: [{sourceLabels: {app: sleep}}]
    route: [{destination: {host: db-v2.ns1.svc.cluster.local, port: {number: 5432}}}]
  - route: [{destination: {host: db.ns1.svc.cluster.local, port: {number: 5432}}}]
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mesh_tcp_rules_route_captured_connections() -> anyhow::Result<()> {
    use std::net::{Ipv4Addr, SocketAddr};
    use weft_e2e::tcp::{TcpEcho, tcp_exchange};

    let pair = CapturedPair::start().await?;
    let any = Ipv4Addr::UNSPECIFIED.into();
    let v1 = pair.server_pod().block_on(TcpEcho::start("db-v1", any))??;
    let v2 = pair.server_pod().block_on(TcpEcho::start("db-v2", any))??;
    let db = SocketAddr::from((Ipv4Addr::new(10, 96, 0, 11), 5432));
    let reached = || async {
        pair.in_client_pod(tcp_exchange(db, "ping"))
            .ok()
            .and_then(Result::ok)
            .map(|(identity, echoed)| {
                assert_eq!(echoed, "ping");
                identity
            })
    };

    let ip = pair.server_ip();
    let services = pod_service("db", Some("10.96.0.11"), 5432, "TCP", ip, v1.port())
        + &pod_service("db-v2", None, 5432, "TCP", ip, v2.port());
    pair.write_config("db.yaml", &services).await?;
    wait_for(
        "db to answer through both sidecars",
        ENVOY_READY_TIMEOUT,
        || async { reached().await.filter(|who| who == "db-v1") },
    )
    .await
    .map_err(|e| e.context(pair.logs()))?;

    pair.write_config("db-vs.yaml", DB_TO_V2_FOR_SLEEP).await?;
    wait_for(
        "sleep's connections to db to reach db-v2",
        ENVOY_READY_TIMEOUT,
        || async { reached().await.filter(|who| who == "db-v2") },
    )
    .await
    .map_err(|e| e.context(pair.logs()))?;
    for _ in 0..5 {
        assert_eq!(reached().await.as_deref(), Some("db-v2"));
    }
    // Over mTLS: the server's sidecar accepted them under STRICT.
    assert!(v2.connections() >= 6, "{}", v2.connections());
    Ok(())
}

/// TLS connections to `mail` naming `b.mail.example` go to `mail-b`.
const MAIL_B_BY_SNI: &str = "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: mail, namespace: ns1}
spec:
  hosts: [mail.ns1.svc.cluster.local]
  tls:
  - match: [{sniHosts: [b.mail.example]}]
    route: [{destination: {host: mail-b.ns1.svc.cluster.local, port: {number: 443}}}]
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mesh_tls_rules_route_captured_connections_by_sni() -> anyhow::Result<()> {
    use std::net::{Ipv4Addr, SocketAddr};
    use weft_e2e::tcp::{TcpEcho, tls_hello_exchange};

    let pair = CapturedPair::start().await?;
    let any = Ipv4Addr::UNSPECIFIED.into();
    let mail = pair.server_pod().block_on(TcpEcho::start("mail", any))??;
    let mail_b = pair
        .server_pod()
        .block_on(TcpEcho::start("mail-b", any))??;
    let ip = pair.server_ip();
    let services = pod_service("mail", Some("10.96.0.12"), 443, "TLS", ip, mail.port())
        + &pod_service("mail-b", None, 443, "TLS", ip, mail_b.port());
    pair.write_config("mail.yaml", &(services + MAIL_B_BY_SNI))
        .await?;

    let address = SocketAddr::from((Ipv4Addr::new(10, 96, 0, 12), 443));
    let reached = |sni: &'static str| {
        pair.in_client_pod(tls_hello_exchange(address, sni))
            .ok()
            .and_then(Result::ok)
    };
    wait_for(
        "b.mail.example to reach mail-b",
        ENVOY_READY_TIMEOUT,
        || async { reached("b.mail.example").filter(|who| who == "mail-b") },
    )
    .await
    .map_err(|e| e.context(pair.logs()))?;
    // Other names go to the service itself.
    assert_eq!(reached("a.mail.example").as_deref(), Some("mail"));
    assert_eq!(reached("b.mail.example").as_deref(), Some("mail-b"));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_only_closes_connections_to_unknown_destinations() -> anyhow::Result<()> {
    use std::net::{Ipv4Addr, SocketAddr};
    use weft_e2e::tcp::{TcpEcho, tcp_exchange};

    let pair = CapturedPair::start().await?;
    // A server no service declares, on the node.
    let outside = TcpEcho::start("outside", Ipv4Addr::UNSPECIFIED.into()).await?;
    let address = SocketAddr::from((pair.node_ip_from_client(), outside.port()));
    let reached = || {
        pair.in_client_pod(tcp_exchange(address, "ping"))
            .ok()
            .and_then(Result::ok)
            .map(|(identity, _)| identity)
    };
    // ALLOW_ANY (Istio's default): passed through.
    assert_eq!(reached().as_deref(), Some("outside"), "{}", pair.logs());

    pair.write_config(
        "sidecar.yaml",
        "apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: ns1}
spec:
  egress: [{hosts: ['*/*']}]
  outboundTrafficPolicy: {mode: REGISTRY_ONLY}
",
    )
    .await?;
    wait_for(
        "REGISTRY_ONLY to close the connection",
        ENVOY_READY_TIMEOUT,
        || async { reached().is_none().then_some(()) },
    )
    .await
    .map_err(|e| e.context(pair.logs()))?;
    let accepted = outside.connections();
    for _ in 0..3 {
        assert_eq!(reached(), None);
    }
    assert_eq!(outside.connections(), accepted, "nothing got through");
    // Services of the registry still answer.
    assert_eq!(pair.call().await?.status, 200);
    Ok(())
}
