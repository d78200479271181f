//! Istio's own tools against `weft operator` on a real apiserver, and the
//! debug endpoints' access rule with real TokenReview:
//! - `istioctl proxy-status --xds-address ... --plaintext` (istioctl built
//!   from the same Istio source as the benchmarks' istiod) lists the
//!   connected real Envoy with every type SYNCED, served by Weft;
//! - `istioctl proxy-status POD.NS --file` (Envoy's own config dump)
//!   finds Weft's config dump and Envoy's the same: clusters, listeners
//!   and routes match; `istioctl proxy-config routes|clusters` names the
//!   VirtualService and DestinationRule of each (Weft's `istio.config`);
//! - from a non-loopback address, `/debug/syncz` without a token is 401,
//!   with a token of another namespace 403, with one of `weft-system` 200,
//!   and `weft proxy-status --token-file` reads it so.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use weft_e2e::kube_mesh::{
    OPERATOR_NAMESPACE, REVIEWS_SERVICE, apply, mk_endpoint_slice, mk_pod, operator_identity,
    start_control_plane_with_crds,
};
use weft_e2e::yaml::{mk_destination_rule, mk_weighted_virtual_service};
use weft_e2e::{
    ControlPlane, Mesh, Weft, http_get, istioctl_binary, non_loopback_ip, output_text, weft_binary,
};

const TIMEOUT: Duration = Duration::from_secs(60);
/// The Envoy's node id, Istio-shaped: istioctl names it `reviews-client.default`.
const NODE_ID: &str = "sidecar~127.0.0.1~reviews-client.default~default.svc.cluster.local";
const PROXY: &str = "reviews-client.default";

fn create_world(plane: &ControlPlane) -> Result<()> {
    apply(plane, REVIEWS_SERVICE)?;
    for (version, octet) in [("v1", 1), ("v2", 2)] {
        apply(plane, &mk_pod(version))?;
        let ip = std::net::Ipv4Addr::new(10, 213, 78, octet);
        apply(plane, &mk_endpoint_slice(version, version, ip, 9080))?;
    }
    apply(
        plane,
        &mk_destination_rule("reviews", "default", &["v1", "v2"]),
    )?;
    apply(
        plane,
        &mk_weighted_virtual_service("reviews", "default", &[("v1", 90), ("v2", 10)]),
    )
}

fn istioctl(plane: &ControlPlane, args: &[&str]) -> Result<(bool, String)> {
    let out = Command::new(istioctl_binary()?)
        .args(args)
        .arg("--kubeconfig")
        .arg(plane.kubeconfig())
        .args(["--istioNamespace", OPERATOR_NAMESPACE])
        .output()
        .context("running istioctl")?;
    Ok((out.status.success(), output_text(&out)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn istioctl_proxy_status_works_against_weft_and_debug_access_is_token_reviewed() -> Result<()>
{
    let istioctl_ready = tokio::task::spawn_blocking(istioctl_binary);
    let plane = start_control_plane_with_crds().await?;
    create_world(&plane)?;
    let options = operator_identity(&plane)?.args(["--monitoring-address", "0.0.0.0:0"]);
    let weft = Weft::start_operator_with(&options, TIMEOUT).await?;
    let mesh = Mesh::builder()
        .node_id(NODE_ID)
        .start_with_weft(weft)
        .await?;
    istioctl_ready.await??;
    let xds = mesh.weft().xds_addr().to_string();

    // Every type SYNCED, for the real Envoy, as istioctl prints it.
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    let table = loop {
        let (ok, out) = istioctl(
            &plane,
            &[
                "proxy-status",
                "--xds-address",
                &xds,
                "--plaintext",
                "-v",
                "1",
            ],
        )?;
        let line = out.lines().find(|l| l.starts_with(PROXY)).map(String::from);
        if ok
            && line
                .as_deref()
                .is_some_and(|l| l.matches("SYNCED").count() == 4)
        {
            break out;
        }
        ensure!(
            tokio::time::Instant::now() < deadline,
            "istioctl never showed {PROXY} SYNCED on CDS, LDS, EDS and RDS:\n{out}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert!(table.contains("NAME"), "{table}");
    println!("istioctl proxy-status -v 1:\n{table}");

    // The per-proxy diff: Weft's config dump against Envoy's own.
    let dump = mesh.admin_get("/config_dump").await?;
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("envoy-config-dump.json");
    std::fs::write(&file, &dump.body)?;
    let file = file.display().to_string();
    let (ok, out) = istioctl(
        &plane,
        &[
            "proxy-status",
            PROXY,
            "--xds-address",
            &xds,
            "--plaintext",
            "--file",
            &file,
        ],
    )?;
    assert!(ok, "{out}");
    println!("istioctl proxy-status {PROXY} --file:\n{out}");
    for section in ["Clusters Match", "Listeners Match", "Routes Match"] {
        assert!(out.contains(section), "{section}:\n{out}");
    }

    // istioctl proxy-config names the Istio resources Weft built each
    // route and cluster from (their `istio.config` metadata).
    let (ok, out) = istioctl(&plane, &["proxy-config", "routes", "--file", &file])?;
    println!("istioctl proxy-config routes --file:\n{out}");
    assert!(ok, "{out}");
    let header = out.lines().next().unwrap_or_default();
    assert!(header.contains("VIRTUAL SERVICE"), "{out}");
    assert!(
        out.lines()
            .any(|l| l.contains("reviews") && l.trim_end().ends_with("reviews.default")),
        "the VIRTUAL SERVICE column names reviews.default:\n{out}"
    );
    let (ok, out) = istioctl(&plane, &["proxy-config", "clusters", "--file", &file])?;
    println!("istioctl proxy-config clusters --file:\n{out}");
    assert!(ok, "{out}");
    assert!(
        out.lines()
            .any(|l| l.contains("reviews.default.svc.cluster.local")
                && l.trim_end().ends_with("reviews.default")),
        "the DESTINATION RULE column names reviews.default:\n{out}"
    );

    // Access from outside loopback, decided by TokenReview.
    let remote = SocketAddr::new(non_loopback_ip()?, mesh.weft().monitoring_addr().port());
    let anonymous = http_get(remote, "weft", "/debug/syncz", &[]).await?;
    assert_eq!(anonymous.status, 401, "{}", anonymous.body);
    plane.create_service_account("default", "reviews")?;
    let token_of = |namespace: &str, account: &str| -> Result<String> {
        Ok(plane
            .kubectl_ok(&[
                "create",
                "token",
                account,
                "-n",
                namespace,
                "--audience",
                "istio-ca",
            ])?
            .trim()
            .to_string())
    };
    let app = format!("Bearer {}", token_of("default", "reviews")?);
    let reply = http_get(remote, "weft", "/debug/syncz", &[("authorization", &app)]).await?;
    assert_eq!(reply.status, 403, "{}", reply.body);
    let operator = format!("Bearer {}", token_of(OPERATOR_NAMESPACE, "weft")?);
    let reply = http_get(
        remote,
        "weft",
        "/debug/syncz",
        &[("authorization", &operator)],
    )
    .await?;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(reply.body.contains(PROXY), "{}", reply.body);

    // `weft proxy-status` against the operator, with that token.
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, token_of(OPERATOR_NAMESPACE, "weft")?)?;
    let out = Command::new(weft_binary()?)
        .args([
            "proxy-status",
            "--control-plane",
            &format!("http://{remote}"),
        ])
        .arg("--token-file")
        .arg(&token_file)
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    println!("weft proxy-status:\n{text}");
    assert!(text.contains("1 proxy: 1 synced"), "{text}");
    Ok(())
}
