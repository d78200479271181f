//! A real Envoy accepts Weft's mTLS config: inbound listeners of a
//! Sidecar's `ingress` ports under STRICT, PERMISSIVE and DISABLE
//! (PeerAuthentication, port-level), an ISTIO_MUTUAL cluster and an auto
//! mTLS cluster, all with SDS secrets from the `sds-grpc` cluster that
//! `weft bootstrap --sds-socket` adds. No SDS server runs here (the agent
//! serves it), so SDS-backed listeners and clusters stay warming; Envoy
//! must still ACK every LDS and CDS update, and the plain-text chain of
//! the PERMISSIVE port must serve requests once Envoy finished initializing.
//! Addresses 127.0.0.1 (ports picked by the kernel).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;
use std::time::Duration;

use weft_e2e::upstream::Upstream;
use weft_e2e::{Envoy, Weft, free_port, http_get, wait_until, weft_binary};

const TIMEOUT: Duration = Duration::from_secs(60);

fn mesh_yaml(strict: u16, permissive: u16, disabled: u16, app: u16) -> String {
    format!(
        "apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {{name: web, namespace: default}}
spec:
  workloadSelector: {{labels: {{app: web}}}}
  ingress:
  - port: {{number: {strict}, protocol: HTTP, name: http-strict}}
    bind: 127.0.0.1
    defaultEndpoint: 127.0.0.1:{app}
  - port: {{number: {permissive}, protocol: HTTP, name: http-permissive}}
    bind: 127.0.0.1
    defaultEndpoint: 127.0.0.1:{app}
  - port: {{number: {disabled}, protocol: TCP, name: tcp-disabled}}
    bind: 127.0.0.1
    defaultEndpoint: 127.0.0.1:{app}
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {{name: default, namespace: default}}
spec: {{mtls: {{mode: STRICT}}}}
---
apiVersion: security.istio.io/v1beta1
kind: PeerAuthentication
metadata: {{name: web, namespace: default}}
spec:
  selector: {{matchLabels: {{app: web}}}}
  portLevelMtls:
    {permissive}: {{mode: PERMISSIVE}}
    {disabled}: {{mode: DISABLE}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: reviews, namespace: default}}
spec:
  hosts: [reviews.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{{number: 9080, name: http, protocol: HTTP}}]
  endpoints:
  - {{address: 127.0.0.2, serviceAccount: reviews, labels: {{security.istio.io/tlsMode: istio}}}}
  - {{address: 127.0.0.3}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: ratings, namespace: default}}
spec:
  hosts: [ratings.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{{number: 9080, name: http, protocol: HTTP}}]
  endpoints:
  - {{address: 127.0.0.4, serviceAccount: ratings}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: ratings, namespace: default}}
spec:
  host: ratings
  trafficPolicy: {{tls: {{mode: ISTIO_MUTUAL}}}}
"
    )
}

fn stat(stats: &str, name: &str) -> Option<u64> {
    stats.lines().find_map(|l| {
        let (k, v) = l.split_once(": ")?;
        (k == name).then(|| v.trim().parse().ok()).flatten()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn envoy_accepts_inbound_mtls_listeners_and_mesh_mtls_clusters() -> anyhow::Result<()> {
    let app = Upstream::start("web-app", std::net::Ipv4Addr::LOCALHOST.into()).await?;
    let [strict, permissive, disabled, router, admin] =
        [(); 5].map(|_| free_port().expect("a free port"));
    let config = tempfile::tempdir()?;
    std::fs::write(
        config.path().join("mesh.yaml"),
        mesh_yaml(strict, permissive, disabled, app.port()),
    )?;
    let weft = Weft::start(config.path(), TIMEOUT).await?;

    let sds_dir = tempfile::tempdir()?;
    let sds_socket = sds_dir.path().join("sds.sock");
    let out = Command::new(weft_binary()?)
        .args(["bootstrap", "--node-id", "web-1", "--labels", "app=web"])
        .args(["--xds-address", &weft.xds_addr().to_string()])
        .args(["--admin-port", &admin.to_string()])
        .args(["--prometheus-port", "0", "--health-port", "0"])
        .args(["--outbound-port", &router.to_string()])
        .args(["--service-account", "web"])
        .arg("--sds-socket")
        .arg(&sds_socket)
        .output()?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bootstrap = String::from_utf8(out.stdout)?;
    assert!(bootstrap.contains("sds-grpc"), "{bootstrap}");
    let _envoy = Envoy::start(&bootstrap)?;
    let admin_addr = std::net::SocketAddr::from(([127, 0, 0, 1], admin));
    let admin_get = |path: &'static str| async move {
        http_get(admin_addr, "localhost", path, &[])
            .await
            .map(|r| r.body)
            .unwrap_or_default()
    };

    let listeners = [strict, permissive, disabled].map(|p| format!("127.0.0.1_{p}"));
    wait_until(
        "Envoy to hold every inbound listener and mTLS cluster",
        TIMEOUT,
        || async {
            let dump = admin_get("/config_dump").await;
            listeners.iter().all(|l| dump.contains(l.as_str()))
                && dump.contains("inbound|")
                && dump.contains("outbound_.9080_._.ratings.default.svc.cluster.local")
                && dump.contains("tlsMode-istio")
                && dump.contains("spiffe://cluster.local/ns/default/sa/reviews")
        },
    )
    .await
    .map_err(|e| e.context(weft.log_tail(30)))?;

    let stats = admin_get("/stats").await;
    assert!(
        stat(&stats, "listener_manager.lds.update_success").unwrap_or(0) >= 1,
        "{stats}"
    );
    assert!(
        stat(&stats, "cluster_manager.cds.update_success").unwrap_or(0) >= 1,
        "{stats}"
    );
    assert_eq!(
        stat(&stats, "listener_manager.lds.update_rejected"),
        Some(0)
    );
    assert_eq!(stat(&stats, "cluster_manager.cds.update_rejected"), Some(0));

    // Without SDS the secrets never come; once Envoy gives up waiting for
    // them (SDS initial fetch timeout) the plain-text chain of the
    // PERMISSIVE port serves, and strips any forged client identity.
    let permissive_addr = std::net::SocketAddr::from(([127, 0, 0, 1], permissive));
    wait_until(
        "the PERMISSIVE port to serve plain text",
        TIMEOUT,
        || async {
            http_get(
                permissive_addr,
                "web",
                "/",
                &[("x-forwarded-client-cert", "By=spiffe://forged")],
            )
            .await
            .is_ok_and(|r| r.status == 200 && r.body == "web-app")
        },
    )
    .await?;
    let seen = app.received();
    assert!(!seen.is_empty());
    assert!(
        seen.iter()
            .all(|r| r.header("x-forwarded-client-cert").is_none()),
        "a plain-text caller's x-forwarded-client-cert is removed: {seen:?}"
    );
    Ok(())
}
