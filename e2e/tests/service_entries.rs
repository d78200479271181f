//! ServiceEntry features on a real Envoy: DNS and DNS_ROUND_ROBIN
//! resolution, endpoint weights and localities, exportTo, resolution NONE
//! and port protocols. Upstream address blocks 50..=59.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{IpAddr, Ipv4Addr};

use weft_e2e::yaml::fqdn;
use weft_e2e::{APPLY_TIMEOUT, Mesh, Upstream, start_upstreams, wait_until};

fn service_entry(name: &str, namespace: &str, spec: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: {name}
  namespace: {namespace}
spec:
{spec}"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dns_and_dns_round_robin_resolve_endpoint_hostnames() -> anyhow::Result<()> {
    // `localhost` resolves to 127.0.0.1: the only name a test can rely on.
    let local = Upstream::start("resolved", IpAddr::V4(Ipv4Addr::LOCALHOST)).await?;
    let port = local.port();
    let mesh = Mesh::builder()
        .file(
            "dns.yaml",
            format!(
                "{}---\n{}",
                service_entry(
                    "strict",
                    "default",
                    &format!(
                        "  hosts: [strict.example.com]
  resolution: DNS
  ports: [{{number: 80, name: http, protocol: HTTP}}]
  endpoints: [{{address: localhost, ports: {{http: {port}}}}}]
"
                    )
                ),
                service_entry(
                    "logical",
                    "default",
                    &format!(
                        "  hosts: [logical.example.com]
  resolution: DNS_ROUND_ROBIN
  ports: [{{number: 80, name: http, protocol: HTTP}}]
  endpoints: [{{address: localhost, ports: {{http: {port}}}}}]
"
                    )
                )
            ),
        )
        .start()
        .await?;
    mesh.wait_for_body("strict.example.com", "/", &[], "resolved", APPLY_TIMEOUT)
        .await?;
    mesh.wait_for_body("logical.example.com", "/", &[], "resolved", APPLY_TIMEOUT)
        .await?;
    let clusters = mesh
        .admin_get("/config_dump?resource=dynamic_active_clusters")
        .await?;
    assert!(clusters.body.contains("STRICT_DNS"), "DNS -> STRICT_DNS");
    assert!(
        clusters.body.contains("LOGICAL_DNS"),
        "DNS_ROUND_ROBIN -> LOGICAL_DNS"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoint_weights_and_localities_reach_envoy() -> anyhow::Result<()> {
    let ups = start_upstreams(50, &["heavy", "light"]).await?;
    let mesh = Mesh::builder()
        .file(
            "svc.yaml",
            service_entry(
                "weighted",
                "default",
                &format!(
                    "  hosts: [weighted.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  addresses: [240.0.0.50]
  ports: [{{number: 9080, name: http, protocol: HTTP}}]
  endpoints:
  - {{address: {a}, ports: {{http: {pa}}}, weight: 9, locality: us-east/zone-a/rack-1, network: n1, serviceAccount: heavy}}
  - {{address: {b}, ports: {{http: {pb}}}, weight: 1, locality: eu-west/zone-b}}
",
                    a = ups[0].ip(),
                    pa = ups[0].port(),
                    b = ups[1].ip(),
                    pb = ups[1].port()
                ),
            ),
        )
        .file(
            "dr.yaml",
            "apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: weighted, namespace: default}
spec:
  host: weighted
  trafficPolicy: {loadBalancer: {simple: ROUND_ROBIN}}
",
        )
        .start()
        .await?;
    let host = fqdn("weighted", "default");
    wait_until("both endpoints in Envoy", APPLY_TIMEOUT, || async {
        mesh.admin_get("/clusters")
            .await
            .is_ok_and(|r| r.body.contains(&ups[1].addr().to_string()))
    })
    .await?;
    let clusters = mesh.admin_get("/clusters").await?.body;
    let line = |addr: String, what: &str| {
        clusters
            .lines()
            .any(|l| l.contains("weighted.default") && l.contains(&addr) && l.contains(what))
    };
    assert!(line(ups[0].addr().to_string(), "::weight::9"), "{clusters}");
    assert!(
        line(ups[0].addr().to_string(), "::region::us-east"),
        "{clusters}"
    );
    assert!(
        line(ups[0].addr().to_string(), "::sub_zone::rack-1"),
        "{clusters}"
    );
    assert!(
        line(ups[1].addr().to_string(), "::zone::zone-b"),
        "{clusters}"
    );

    let counts = mesh.sample(&host, "/", &[], 100).await?;
    let heavy = counts.get("heavy").copied().unwrap_or(0);
    assert!(
        (80..=97).contains(&heavy),
        "weights 9:1 over 100: {counts:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_to_hides_services_from_other_namespaces() -> anyhow::Result<()> {
    let ups = start_upstreams(51, &["public", "private", "team"]).await?;
    let entry = |name: &str, up: &Upstream, export: &str| {
        service_entry(
            name,
            "shop",
            &format!(
                "  hosts: [{name}.example.com]
  resolution: STATIC
  exportTo: {export}
  ports: [{{number: 80, name: http, protocol: HTTP}}]
  endpoints: [{{address: {ip}, ports: {{http: {port}}}}}]
",
                ip = up.ip(),
                port = up.port()
            ),
        )
    };
    let mesh = Mesh::builder()
        .namespace("default")
        .file(
            "svc.yaml",
            [
                entry("public", &ups[0], "['*']"),
                entry("private", &ups[1], "['.']"),
                entry("team", &ups[2], "[default]"),
            ]
            .join("---\n"),
        )
        .start()
        .await?;
    mesh.wait_for_body("public.example.com", "/", &[], "public", APPLY_TIMEOUT)
        .await?;
    mesh.wait_for_body("team.example.com", "/", &[], "team", APPLY_TIMEOUT)
        .await?;
    let (status, _) = mesh.get("private.example.com", "/", &[]).await?;
    assert_eq!(status, 404, "exportTo '.' hides it from namespace default");
    assert_eq!(ups[1].requests(), 0);
    Ok(())
}

/// Resolution NONE means "to the caller's original destination". The
/// router listener has none (no traffic capture), and Weft does not let a
/// header choose one (Envoy's `x-envoy-original-dst-host` is unsanitized:
/// any client could reach any address), so an HTTP request for a NONE
/// service gets Envoy's 503 "no healthy upstream", without any upstream
/// connection. TLS / HTTPS / TCP ports are never HTTP-routed: 404.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resolution_none_and_non_http_ports_are_not_http_routed() -> anyhow::Result<()> {
    let ups = start_upstreams(52, &["tcp"]).await?;
    let mesh = Mesh::builder()
        .file(
            "svc.yaml",
            [
                service_entry(
                    "anywhere",
                    "default",
                    "  hosts: [anywhere.example.com]
  resolution: NONE
  ports: [{number: 443, name: tls, protocol: TLS}, {number: 80, name: http, protocol: HTTP}]
",
                ),
                service_entry(
                    "raw",
                    "default",
                    &format!(
                        "  hosts: [raw.example.com]
  resolution: STATIC
  ports: [{{number: 9000, name: tcp, protocol: TCP}}, {{number: 9443, name: https, protocol: HTTPS}}]
  endpoints: [{{address: {ip}, ports: {{tcp: {port}, https: {port}}}}}]
",
                        ip = ups[0].ip(),
                        port = ups[0].port()
                    ),
                ),
            ]
            .join("---\n"),
        )
        .start()
        .await?;
    wait_until(
        "the passthrough and TCP clusters",
        APPLY_TIMEOUT,
        || async {
            mesh.admin_get("/config_dump?resource=dynamic_active_clusters")
                .await
                .is_ok_and(|r| {
                    r.body.contains("outbound|443||anywhere.example.com")
                        && r.body.contains("ORIGINAL_DST")
                        && r.body.contains("outbound|9000||raw.example.com")
                        && r.body.contains("outbound|9443||raw.example.com")
                })
        },
    )
    .await?;
    for host in [
        "raw.example.com:9000",
        "raw.example.com:9443",
        "anywhere.example.com:443",
    ] {
        let (status, _) = mesh.get(host, "/", &[]).await?;
        assert_eq!(status, 404, "{host} is not HTTP-routed by the router");
    }
    let reply = mesh.request("anywhere.example.com", "/", &[]).await?;
    assert_eq!(
        (reply.status, reply.body.as_str()),
        (503, "no healthy upstream"),
        "NONE over the router has no original destination"
    );
    let stats = mesh
        .admin_get("/stats?filter=outbound.80..anywhere.example.com.upstream_cx_total")
        .await?
        .body;
    assert!(stats.contains("upstream_cx_total: 0"), "{stats}");
    assert_eq!(ups[0].requests(), 0);
    Ok(())
}
