//! `cargo bench -p weft-citadel`: CSR signings per second for ECDSA P-256
//! and RSA 2048 CAs, and end-to-end CreateCertificate calls per second over
//! gRPC + TLS (one connection, sequential; then 16 calls in flight).
//! A plain `harness = false` bench: criterion is not in the workspace lock.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use rcgen::{CertificateParams, KeyPair};
use tonic::metadata::MetadataValue;
use weft_citadel::{
    CertificateAuthority, CertificateService, Identity, KeyType, TokenFileAuthenticator, connect,
    serve,
};
use weft_proto::istio::v1::auth::IstioCertificateRequest;

const RUN: Duration = Duration::from_secs(3);

fn csr() -> String {
    let key = KeyPair::generate().unwrap();
    CertificateParams::new(Vec::<String>::new())
        .unwrap()
        .serialize_request(&key)
        .unwrap()
        .pem()
        .unwrap()
}

/// Runs `f` repeatedly for `RUN`; returns (calls, elapsed).
fn for_a_while(mut f: impl FnMut()) -> (u64, Duration) {
    for _ in 0..10 {
        f(); // warm-up
    }
    let start = Instant::now();
    let mut n = 0;
    while start.elapsed() < RUN {
        f();
        n += 1;
    }
    (n, start.elapsed())
}

fn report(what: &str, (n, elapsed): (u64, Duration)) {
    let rate = n as f64 / elapsed.as_secs_f64();
    println!(
        "{what:<48} {rate:>10.0} /s   ({n} in {:.2} s, {:.1} us each)",
        elapsed.as_secs_f64(),
        elapsed.as_secs_f64() * 1e6 / n as f64
    );
}

fn main() {
    let identity = Identity {
        trust_domain: "cluster.local".into(),
        namespace: "ns1".into(),
        service_account: "reviews".into(),
    };
    let csr = csr();
    let ttl = Duration::from_secs(24 * 3600);
    for key_type in [KeyType::EcdsaP256, KeyType::Rsa2048] {
        let ca = CertificateAuthority::generate_root(key_type, "cluster.local").unwrap();
        report(
            &format!("sign_csr, {key_type} CA (ECDSA P-256 CSR)"),
            for_a_while(|| {
                ca.sign_csr(&csr, &identity, ttl).unwrap();
            }),
        );
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(grpc(csr));
}

async fn grpc(csr: String) {
    let ca = CertificateAuthority::generate_root(KeyType::EcdsaP256, "cluster.local").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens.yaml");
    std::fs::write(
        &tokens,
        "- {token: t, namespace: ns1, serviceAccount: reviews}\n",
    )
    .unwrap();
    let auth = TokenFileAuthenticator::new(&tokens, "cluster.local").unwrap();
    let tls = ca
        .issue_serving_cert(&["citadel.bench".into()], &[], Duration::from_secs(3600))
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(serve(
        listener,
        tls,
        CertificateService::new(ca.clone(), auth),
        std::future::pending(),
    ));
    let client = connect(addr, "citadel.bench", ca.root_pem()).await.unwrap();
    let call = |mut client: weft_proto::istio::v1::auth::istio_certificate_service_client::IstioCertificateServiceClient<_>,
                csr: String| async move {
        let mut req = tonic::Request::new(IstioCertificateRequest {
            csr,
            validity_duration: 0,
            metadata: None,
        });
        let bearer: MetadataValue<_> = "Bearer t".parse().unwrap();
        req.metadata_mut().insert("authorization", bearer);
        client.create_certificate(req).await.unwrap();
    };

    for in_flight in [1usize, 16] {
        for _ in 0..10 {
            call(client.clone(), csr.clone()).await;
        }
        let start = Instant::now();
        let mut n = 0u64;
        while start.elapsed() < RUN {
            let batch: Vec<_> = (0..in_flight)
                .map(|_| tokio::spawn(call(client.clone(), csr.clone())))
                .collect();
            for task in batch {
                task.await.unwrap();
            }
            n += in_flight as u64;
        }
        report(
            &format!("CreateCertificate gRPC+TLS, ECDSA CA, {in_flight} in flight"),
            (n, start.elapsed()),
        );
    }
    server.abort();
}
