//! A real Envoy running as an ingress gateway (`weft bootstrap --role
//! gateway --labels istio=ingressgateway`), configured by Gateways and the
//! VirtualServices bound to them: HTTPS termination with a given
//! certificate and routing by host, MUTUAL TLS that requires a client
//! certificate, TLS passthrough by SNI, a TCP route, and `gateways:`
//! keeping gateway rules off sidecars and mesh rules off gateways, and
//! end users authenticated at the edge (RequestAuthentication and
//! AuthorizationPolicy selecting the gateway's workload).
//!
//! Each test has its own 127.0.<block>.x addresses (blocks 60..=69) and
//! binds its gateway servers to 127.0.<block>.100, so tests run in parallel.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use weft_e2e::procs::free_port_on;
use weft_e2e::tcp::{TcpEcho, tcp_exchange};
use weft_e2e::tls::{TestPki, start_tls_upstreams};
use weft_e2e::yaml::{fqdn, mk_service, multi_doc};
use weft_e2e::{APPLY_TIMEOUT, Mesh, http_get, start_upstreams, wait_for};

const INGRESS: (&str, &str) = ("istio", "ingressgateway");

/// The address gateway servers of test `block` bind to, with a free port.
fn gateway_addr(block: u8) -> SocketAddr {
    let ip = IpAddr::V4(Ipv4Addr::new(127, 0, block, 100));
    SocketAddr::new(ip, free_port_on(ip).expect("a free port"))
}

fn mk_gateway(name: &str, servers: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1
kind: Gateway
metadata:
  name: {name}
  namespace: default
spec:
  selector:
    istio: ingressgateway
  servers:
{servers}"
    )
}

/// A plain HTTP server of every host, bound to `addr`.
fn http_server_on(addr: SocketAddr) -> String {
    format!(
        "  - port: {{number: {port}, name: http, protocol: HTTP}}
    bind: {ip}
    hosts: ['*']
",
        port = addr.port(),
        ip = addr.ip(),
    )
}

fn mk_vs(name: &str, hosts: &str, gateways: &str, rules: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: {name}
  namespace: default
spec:
  hosts: {hosts}
  gateways: {gateways}
{rules}"
    )
}

fn route_to(subset: &str) -> String {
    format!("  http:\n  - route:\n    - destination: {{host: reviews, subset: {subset}}}\n")
}

async fn config_dump(mesh: &Mesh) -> String {
    mesh.admin_get("/config_dump")
        .await
        .expect("config_dump")
        .body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_terminates_https_with_its_certificate_and_routes_by_host() -> anyhow::Result<()> {
    let ups = start_upstreams(60, &["v1", "v2"]).await?;
    let pki = TestPki::new()?;
    let cert = pki.issue(&["a.example.com", "b.example.com"])?;
    let https = gateway_addr(60);
    let http = gateway_addr(60);
    let gateway = mk_gateway(
        "edge",
        &format!(
            "  - port: {{number: {hp}, name: https, protocol: HTTPS}}
    bind: {ip}
    hosts: [a.example.com, b.example.com]
    tls:
      mode: SIMPLE
      serverCertificate: {cert}
      privateKey: {key}
  - port: {{number: {p}, name: http, protocol: HTTP}}
    bind: {ip}
    hosts: [a.example.com]
    tls: {{httpsRedirect: true}}
",
            hp = https.port(),
            p = http.port(),
            ip = https.ip(),
            cert = cert.cert_path.display(),
            key = cert.key_path.display(),
        ),
    );
    let mesh = Mesh::builder()
        .gateway(&[INGRESS])
        .file("reviews.yaml", mk_service("reviews", "default", &ups))
        .file("gateway.yaml", gateway)
        .file(
            "vs.yaml",
            multi_doc(&[
                mk_vs("a", "[a.example.com]", "[edge]", &route_to("v1")),
                mk_vs("b", "[b.example.com]", "[default/edge]", &route_to("v2")),
            ]),
        )
        .start()
        .await?;

    // Only the test CA is trusted: an answer proves Envoy served our cert.
    for (host, expected) in [("a.example.com", "v1"), ("b.example.com", "v2")] {
        wait_for(
            &format!("https://{host} via the gateway to answer {expected}"),
            APPLY_TIMEOUT,
            || async {
                weft_e2e::tls::https_get(https, host, "/", &[], pki.ca_pem(), None)
                    .await
                    .ok()
                    .filter(|(status, body)| *status == 200 && body == expected)
            },
        )
        .await
        .map_err(|e| e.context(mesh.envoy().log_tail(30)))?;
    }
    // httpsRedirect: plain HTTP is answered with a 301 to https.
    let reply = wait_for("the HTTP server to redirect", APPLY_TIMEOUT, || async {
        http_get(http, "a.example.com", "/x", &[])
            .await
            .ok()
            .filter(|r| r.status == 301)
    })
    .await?;
    assert_eq!(reply.header("location"), Some("https://a.example.com/x"));

    // Istio's names, visible in Envoy's own config.
    let dump = config_dump(&mesh).await;
    let listener = format!("{}_{}", https.ip(), https.port());
    assert!(dump.contains(&listener), "no listener {listener}");
    let route_config = format!("https.{}.https.edge.default", https.port());
    assert!(
        dump.contains(&route_config),
        "no route config {route_config}"
    );
    assert!(dump.contains(&format!("http.{}", http.port())));
    assert!(
        !dump.contains("\"name\": \"router\""),
        "a gateway has no router listener"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_gateway_tls_requires_a_client_certificate() -> anyhow::Result<()> {
    let ups = start_upstreams(61, &["v1"]).await?;
    let pki = TestPki::new()?;
    let cert = pki.issue(&["secure.example.com"])?;
    let good_client = pki.issue(&["client.example.com"])?;
    let other_client = pki.issue(&["intruder.example.com"])?;
    let https = gateway_addr(61);
    let gateway = mk_gateway(
        "secure",
        &format!(
            "  - port: {{number: {port}, name: https, protocol: HTTPS}}
    bind: {ip}
    hosts: [secure.example.com]
    tls:
      mode: MUTUAL
      serverCertificate: {cert}
      privateKey: {key}
      caCertificates: {ca}
      subjectAltNames: [client.example.com]
",
            port = https.port(),
            ip = https.ip(),
            cert = cert.cert_path.display(),
            key = cert.key_path.display(),
            ca = pki.ca_path().display(),
        ),
    );
    let mesh = Mesh::builder()
        .gateway(&[INGRESS])
        .file("reviews.yaml", mk_service("reviews", "default", &ups))
        .file("gateway.yaml", gateway)
        .file(
            "vs.yaml",
            mk_vs(
                "secure",
                "[secure.example.com]",
                "[secure]",
                &route_to("v1"),
            ),
        )
        .start()
        .await?;
    let get = |client| {
        weft_e2e::tls::https_get(https, "secure.example.com", "/", &[], pki.ca_pem(), client)
    };
    wait_for(
        "a request with a client certificate to pass",
        APPLY_TIMEOUT,
        || async {
            get(Some(&good_client))
                .await
                .ok()
                .filter(|(s, b)| *s == 200 && b == "v1")
        },
    )
    .await
    .map_err(|e| e.context(mesh.envoy().log_tail(30)))?;
    for _ in 0..5 {
        let without = get(None).await;
        assert!(
            !matches!(&without, Ok((200, _))),
            "no client certificate must be refused: {without:?}"
        );
        let wrong_san = get(Some(&other_client)).await;
        assert!(
            !matches!(&wrong_san, Ok((200, _))),
            "a client certificate without an accepted SAN must be refused: {wrong_san:?}"
        );
        assert_eq!(get(Some(&good_client)).await?, (200, "v1".to_string()));
    }
    Ok(())
}

fn mk_tls_service(name: &str, ip: IpAddr, port: u16) -> String {
    format!(
        "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: {name}
  namespace: default
spec:
  hosts: [{name}.test]
  location: MESH_EXTERNAL
  resolution: STATIC
  ports: [{{number: 443, name: tls, protocol: TLS}}]
  endpoints: [{{address: {ip}, ports: {{tls: {port}}}}}]
"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_passthrough_routes_by_sni_without_terminating() -> anyhow::Result<()> {
    let pki = TestPki::new()?;
    let ups = start_tls_upstreams(62, &["alpha", "beta"], &pki, false).await?;
    let gw = gateway_addr(62);
    let gateway = mk_gateway(
        "passthrough",
        &format!(
            "  - port: {{number: {port}, name: tls, protocol: TLS}}
    bind: {ip}
    hosts: ['*.test']
    tls: {{mode: PASSTHROUGH}}
",
            port = gw.port(),
            ip = gw.ip(),
        ),
    );
    let vs = mk_vs(
        "by-sni",
        "['*.test']",
        "[passthrough]",
        "  tls:
  - match: [{sniHosts: [alpha.test]}]
    route: [{destination: {host: alpha.test}}]
  - match: [{sniHosts: [beta.test]}]
    route: [{destination: {host: beta.test}}]
",
    );
    let mesh = Mesh::builder()
        .gateway(&[INGRESS])
        .file(
            "services.yaml",
            multi_doc(&[
                mk_tls_service("alpha", ups[0].ip(), ups[0].port()),
                mk_tls_service("beta", ups[1].ip(), ups[1].port()),
            ]),
        )
        .file("gateway.yaml", gateway)
        .file("vs.yaml", vs)
        .start()
        .await?;
    for (sni, expected) in [("alpha.test", "alpha"), ("beta.test", "beta")] {
        // The upstream's own certificate (for `<identity>.test`) is what the
        // client verifies: TLS went through the gateway untouched.
        let reply = wait_for(
            &format!("TLS for {sni} to reach {expected}"),
            APPLY_TIMEOUT,
            || async {
                weft_e2e::tls::https_request(gw, sni, "/", &[], pki.ca_pem(), None)
                    .await
                    .ok()
                    .filter(|r| r.status == 200)
            },
        )
        .await
        .map_err(|e| e.context(mesh.envoy().log_tail(30)))?;
        assert_eq!(reply.body, expected);
        assert_eq!(reply.header(weft_e2e::tls::SNI_HEADER), Some(sni));
    }
    // An SNI no rule names is not forwarded anywhere.
    let other = weft_e2e::tls::https_get(gw, "gamma.test", "/", &[], pki.ca_pem(), None).await;
    assert!(other.is_err(), "{other:?}");
    assert_eq!(ups[0].requests() + ups[1].requests(), 2);
    Ok(())
}

fn mk_echo_service(echoes: &[&TcpEcho]) -> String {
    let endpoints: String = echoes
        .iter()
        .map(|e| {
            format!(
                "  - {{address: {}, ports: {{tcp: {}}}, labels: {{version: {}}}}}\n",
                e.ip(),
                e.port(),
                e.identity()
            )
        })
        .collect();
    let subsets: String = echoes
        .iter()
        .map(|e| {
            format!(
                "  - {{name: {0}, labels: {{version: {0}}}}}\n",
                e.identity()
            )
        })
        .collect();
    multi_doc(&[
        format!(
            "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: echo, namespace: default}}
spec:
  hosts: [echo.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{{number: 9000, name: tcp, protocol: TCP}}]
  endpoints:
{endpoints}"
        ),
        format!(
            "apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: echo, namespace: default}}
spec:
  host: echo
  subsets:
{subsets}"
        ),
    ])
}

fn tcp_vs(subset: &str) -> String {
    mk_vs(
        "echo",
        "['*']",
        "[tcp]",
        &format!("  tcp:\n  - route: [{{destination: {{host: echo, subset: {subset}}}}}]\n"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_route_reaches_a_tcp_echo_server_and_follows_edits() -> anyhow::Result<()> {
    let a = TcpEcho::start("a", IpAddr::V4(Ipv4Addr::new(127, 0, 63, 1))).await?;
    let b = TcpEcho::start("b", IpAddr::V4(Ipv4Addr::new(127, 0, 63, 2))).await?;
    let gw = gateway_addr(63);
    let gateway = mk_gateway(
        "tcp",
        &format!(
            "  - port: {{number: {port}, name: tcp, protocol: TCP}}
    bind: {ip}
    hosts: ['*']
",
            port = gw.port(),
            ip = gw.ip(),
        ),
    );
    let mesh = Mesh::builder()
        .gateway(&[INGRESS])
        .file("echo.yaml", mk_echo_service(&[&a, &b]))
        .file("gateway.yaml", gateway)
        .file("vs.yaml", tcp_vs("a"))
        .start()
        .await?;
    let reached = |expected: &'static str| async move {
        wait_for(
            &format!("a TCP connection to reach echo {expected}"),
            APPLY_TIMEOUT,
            || async {
                tcp_exchange(gw, "hello through the gateway")
                    .await
                    .ok()
                    .filter(|(identity, _)| identity == expected)
            },
        )
        .await
    };
    let (_, echoed) = reached("a")
        .await
        .map_err(|e| e.context(mesh.envoy().log_tail(30)))?;
    assert_eq!(echoed, "hello through the gateway");
    for _ in 0..10 {
        assert_eq!(tcp_exchange(gw, "x").await?.0, "a");
    }
    assert_eq!(b.connections(), 0);

    mesh.write_config("vs.yaml", &tcp_vs("b"))?;
    reached("b").await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_rules_stay_off_sidecars_and_mesh_rules_off_gateways() -> anyhow::Result<()> {
    let ups = start_upstreams(64, &["v1", "v2"]).await?;
    let gw = gateway_addr(64);
    let gateway = mk_gateway("edge", &http_server_on(gw));
    let mesh = Mesh::builder()
        .gateway(&[INGRESS])
        .file("reviews.yaml", mk_service("reviews", "default", &ups))
        .file("gateway.yaml", gateway)
        .file(
            "vs.yaml",
            multi_doc(&[
                // On a gateway, name the destination port: the request's
                // port is the gateway's, not the service's.
                mk_vs(
                    "at-the-edge",
                    "[reviews]",
                    "[edge]",
                    "  http:\n  - route:\n    - destination: {host: reviews, subset: v2, port: {number: 9080}}\n",
                ),
                mk_vs("in-the-mesh", "[reviews]", "[mesh]", &route_to("v1")),
            ]),
        )
        .start()
        .await?;
    let sidecar = mesh.start_proxy(false, &[], None).await?;
    let host = fqdn("reviews", "default");

    wait_for(
        "the gateway to route reviews to v2",
        APPLY_TIMEOUT,
        || async {
            http_get(gw, &host, "/", &[])
                .await
                .ok()
                .filter(|r| r.status == 200 && r.body == "v2")
        },
    )
    .await
    .map_err(|e| {
        e.context(format!(
            "weft:\n{}\nenvoy:\n{}",
            mesh.weft().log_tail(30),
            mesh.envoy().log_tail(30)
        ))
    })?;
    wait_for(
        "the sidecar to route reviews to v1",
        APPLY_TIMEOUT,
        || async {
            sidecar
                .get(&host, "/")
                .await
                .ok()
                .filter(|(status, body)| *status == 200 && body == "v1")
        },
    )
    .await?;
    for _ in 0..20 {
        assert_eq!(http_get(gw, &host, "/", &[]).await?.body, "v2");
        assert_eq!(sidecar.get(&host, "/").await?, (200, "v1".to_string()));
    }
    // The gateway routes only hosts its VirtualServices name.
    let other = http_get(gw, "ratings.default.svc.cluster.local", "/", &[]).await?;
    assert_eq!(other.status, 404);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_checks_tokens_and_forwards_their_claims() -> anyhow::Result<()> {
    use serde_json::json;
    use weft_e2e::jwt_issuer::{JwtIssuer, claims};

    let issuer = JwtIssuer::start().await?;
    let ups = start_upstreams(66, &["v1"]).await?;
    let gw = gateway_addr(66);
    let gateway = mk_gateway("edge", &http_server_on(gw));
    let jwt = format!(
        "apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {{name: edge-jwt, namespace: default}}
spec:
  selector: {{matchLabels: {{istio: ingressgateway}}}}
  jwtRules:
  - issuer: {issuer}
    jwks: '{jwks}'
    audiences: [edge]
    outputClaimToHeaders: [{{header: x-jwt-sub, claim: sub}}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {{name: edge-no-anonymous, namespace: default}}
spec:
  selector: {{matchLabels: {{istio: ingressgateway}}}}
  action: DENY
  rules:
  - from: [{{source: {{notRequestPrincipals: ['*']}}}}]
",
        issuer = issuer.url(),
        jwks = issuer.jwks()?,
    );
    let mesh = Mesh::builder()
        .gateway(&[INGRESS])
        .file("reviews.yaml", mk_service("reviews", "default", &ups))
        .file("gateway.yaml", gateway)
        .file(
            "vs.yaml",
            mk_vs(
                "at-the-edge",
                "[reviews]",
                "[edge]",
                "  http:\n  - route:\n    - destination: {host: reviews, port: {number: 9080}}\n",
            ),
        )
        .file("jwt.yaml", jwt)
        .start()
        .await?;
    let host = fqdn("reviews", "default");
    let token = issuer.token(claims("alice", "edge", 600, json!({})))?;
    let bearer = format!("Bearer {token}");
    let with_token = [("authorization", bearer.as_str())];

    wait_for("the gateway to admit alice", APPLY_TIMEOUT, || async {
        http_get(gw, &host, "/", &with_token)
            .await
            .ok()
            .filter(|r| r.status == 200)
    })
    .await
    .map_err(|e| {
        e.context(format!(
            "weft:\n{}\nenvoy:\n{}",
            mesh.weft().log_tail(30),
            mesh.envoy().log_tail(30)
        ))
    })?;
    let received = ups[0].last_received().unwrap();
    assert_eq!(received.header("x-jwt-sub"), Some("alice"));
    assert_eq!(received.header("authorization"), None);

    // Anonymous requests are denied at the edge; bad tokens are refused.
    assert_eq!(http_get(gw, &host, "/", &[]).await?.status, 403);
    for (what, token) in [
        (
            "expired",
            issuer.token(claims("alice", "edge", -600, json!({})))?,
        ),
        (
            "wrong audience",
            issuer.token(claims("alice", "web", 600, json!({})))?,
        ),
    ] {
        let bearer = format!("Bearer {token}");
        let refused = http_get(gw, &host, "/", &[("authorization", bearer.as_str())]).await?;
        assert_eq!(refused.status, 401, "{what}: {}", refused.body);
        let challenge = refused.header("www-authenticate").unwrap_or_default();
        assert!(challenge.contains("invalid_token"), "{what}: {challenge}");
    }
    Ok(())
}
