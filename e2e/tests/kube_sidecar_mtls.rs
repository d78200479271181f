//! Mutual TLS between two real sidecars on a real apiserver: each workload's
//! `weft agent` proves its ServiceAccount with a TokenRequest token
//! (audience `istio-ca`), `weft operator` checks it by TokenReview and
//! signs; the agents trust the root Weft published in ConfigMap
//! `istio-ca-root-cert`; the mesh config (ServiceEntry, Sidecar, STRICT
//! PeerAuthentication) is `kubectl apply`d. The setup is
//! [`SidecarPair::start_on`].

#![allow(clippy::unwrap_used, clippy::expect_used)]

use weft_e2e::kube_mesh::start_control_plane_with_crds;
use weft_e2e::sidecars::{CLIENT_ID, SERVER_ID, SidecarOptions, SidecarPair, xfcc_values};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sidecars_with_token_request_identities_talk_mtls() -> anyhow::Result<()> {
    let plane = start_control_plane_with_crds().await?;
    let pair = SidecarPair::start_on(&plane, SidecarOptions::default()).await?;

    let reply = pair.call().await?;
    assert_eq!((reply.status, reply.body.as_str()), (200, "reviews-app"));
    let xfcc = pair
        .last_client_cert_header()
        .expect("the server's sidecar sets x-forwarded-client-cert");
    assert_eq!(xfcc_values(&xfcc, "URI"), [CLIENT_ID], "{xfcc}");
    assert_eq!(xfcc_values(&xfcc, "By"), [SERVER_ID], "{xfcc}");

    let plain = pair.call_without_sidecar().await;
    assert!(plain.is_err(), "STRICT must refuse plain text: {plain:?}");

    let issued = pair
        .weft()
        .monitoring_get("/metrics")
        .await?
        .body
        .lines()
        .find(|l| l.starts_with("weft_citadel_certificates_issued_total"))
        .map(str::to_string);
    assert!(
        issued.as_deref().is_some_and(|l| !l.ends_with(" 0")),
        "the operator's CA signed the sidecars' certificates: {issued:?}"
    );
    Ok(())
}
