//! Mutual TLS between two real sidecars, each run by `weft agent` with a
//! certificate from Weft's CA (`weft standalone --token-file`): the server
//! sees the client's SPIFFE ID, STRICT refuses a caller without a sidecar
//! while PERMISSIVE accepts both, and certificates with a 20 s lifetime
//! rotate under continuous traffic without a failed request. The setup is
//! [`SidecarPair`].

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use weft_e2e::sidecars::{CLIENT_ID, SERVER_ID, SidecarOptions, SidecarPair, xfcc_values};
use weft_e2e::{APPLY_TIMEOUT, wait_until};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_sees_the_client_s_spiffe_id_over_mtls() -> anyhow::Result<()> {
    let pair = SidecarPair::start(SidecarOptions::default()).await?;
    let reply = pair.call().await?;
    assert_eq!((reply.status, reply.body.as_str()), (200, "reviews-app"));

    let xfcc = pair
        .last_client_cert_header()
        .expect("the server's sidecar sets x-forwarded-client-cert");
    assert_eq!(xfcc_values(&xfcc, "URI"), vec![CLIENT_ID], "{xfcc}");
    assert_eq!(xfcc_values(&xfcc, "By"), vec![SERVER_ID], "{xfcc}");

    // Both Envoys hold their own workload certificate from the agent.
    assert_eq!(pair.server_cert_serials().await?.len(), 1);
    assert_eq!(pair.client().cert_serials(CLIENT_ID).await?.len(), 1);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strict_refuses_plain_text_and_permissive_accepts_both() -> anyhow::Result<()> {
    let pair = SidecarPair::start(SidecarOptions::default()).await?;

    let plain = pair.call_without_sidecar().await;
    assert!(
        plain.is_err(),
        "STRICT must refuse a caller without a certificate: {plain:?}"
    );
    assert_eq!(pair.call().await?.status, 200);

    pair.set_mtls_mode("PERMISSIVE").await?;
    wait_until(
        "the plain-text caller to be served",
        APPLY_TIMEOUT,
        || async {
            pair.call_without_sidecar()
                .await
                .is_ok_and(|r| r.status == 200 && r.body == "reviews-app")
        },
    )
    .await
    .map_err(|e| e.context(pair.logs()))?;
    let plain = pair.app().last_received().unwrap();
    assert_eq!(
        plain.header("x-forwarded-client-cert"),
        None,
        "a plain-text caller has no client certificate"
    );

    let reply = pair.call().await?;
    assert_eq!(reply.status, 200);
    let xfcc = pair.last_client_cert_header().expect("mTLS still used");
    assert_eq!(xfcc_values(&xfcc, "URI"), vec![CLIENT_ID], "{xfcc}");

    pair.set_mtls_mode("STRICT").await?;
    wait_until(
        "the plain-text caller to be refused again",
        APPLY_TIMEOUT,
        || async { pair.call_without_sidecar().await.is_err() },
    )
    .await?;
    assert_eq!(pair.call().await?.status, 200);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_rotate_under_traffic_without_a_failed_request() -> anyhow::Result<()> {
    const TTL: Duration = Duration::from_secs(20);
    const TRAFFIC: Duration = Duration::from_secs(60);
    let pair = SidecarPair::start(SidecarOptions {
        cert_ttl: Some(TTL),
        ..SidecarOptions::default()
    })
    .await?;
    let first_serials = pair.server_cert_serials().await?;
    assert_eq!(first_serials.len(), 1, "{first_serials:?}");

    let first_client = pair.client().cert_serials(CLIENT_ID).await?;
    let traffic = pair.drive_traffic();
    let mut server_serials = first_serials;
    let mut client_serials = first_client;
    let start = std::time::Instant::now();
    while start.elapsed() < TRAFFIC {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let seen = [
            (pair.server_cert_serials().await?, &mut server_serials),
            (
                pair.client().cert_serials(CLIENT_ID).await?,
                &mut client_serials,
            ),
        ];
        for (now, all) in seen {
            for serial in now {
                if !all.contains(&serial) {
                    all.push(serial);
                }
            }
        }
    }
    let report = traffic.stop().await?;

    assert_eq!(
        report.failed,
        0,
        "failed requests during rotation: {:?}\n{}",
        report.failures,
        pair.logs()
    );
    println!(
        "{} requests, none failed; certificates served: reviews {}, sleep {}",
        report.succeeded(),
        server_serials.len(),
        client_serials.len()
    );
    assert!(report.succeeded() > 500, "{report:?}");
    // Renewal at half of 20 s (± 10%): about six certificates in 60 s,
    // each served by Envoy, and no renewal storm.
    for (who, sidecar, serials) in [
        ("reviews", pair.server(), &server_serials),
        ("sleep", pair.client(), &client_serials),
    ] {
        let issued = sidecar
            .process()
            .logs()
            .iter()
            .filter(|l| l.contains("certificate issued"))
            .count();
        assert!(
            (4..=10).contains(&issued) && serials.len() >= 4,
            "{who}'s agent got {issued} certificates and its Envoy served {serials:?} in {TRAFFIC:?}\n{}",
            pair.logs()
        );
    }
    // Every request reached the server over mTLS with sleep's identity.
    let received = pair.app().received();
    assert!(
        received.iter().all(|r| r
            .header("x-forwarded-client-cert")
            .is_some_and(|x| xfcc_values(x, "URI") == [CLIENT_ID])),
        "a request reached the app without sleep's identity"
    );
    Ok(())
}
