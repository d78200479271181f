//! The certificate service in-process over real gRPC + TLS: `serve` on
//! 127.0.0.1:0 with a token file, a tonic client trusting only the root.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use prometheus_client::registry::Registry;
use rcgen::{CertificateParams, KeyPair, SanType};
use tonic::Code;
use tonic::metadata::MetadataValue;
use weft_citadel::{
    CertificateAuthority, CertificateService, CitadelMetrics, KeyType, TokenFileAuthenticator,
    connect, serve,
};
use weft_proto::istio::v1::auth::IstioCertificateRequest;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

const TOKENS: &str = "\
- token: good-token
  namespace: ns1
  serviceAccount: reviews
- token: stale-token
  namespace: ns1
  serviceAccount: ratings
  expiresAt: 2021-01-01T00:00:00Z
";

struct Server {
    addr: std::net::SocketAddr,
    root: String,
    metrics: CitadelMetrics,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), weft_citadel::ServeError>>,
    _tokens: tempfile::NamedTempFile,
}

async fn start() -> Server {
    let ca = CertificateAuthority::generate_root(KeyType::EcdsaP256, "cluster.local").unwrap();
    let tokens = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(tokens.path(), TOKENS).unwrap();
    let auth = TokenFileAuthenticator::new(tokens.path(), "cluster.local").unwrap();
    let mut registry = Registry::default();
    let metrics = CitadelMetrics::register(&mut registry);
    let service = CertificateService::new(ca.clone(), auth).with_metrics(metrics.clone());
    let tls = ca
        .issue_serving_cert(
            &["citadel.test".to_string()],
            &["127.0.0.1".parse().unwrap()],
            Duration::from_secs(3600),
        )
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(serve(listener, tls, service, async move {
        let _ = stopped.await;
    }));
    Server {
        addr,
        root: ca.root_pem().to_string(),
        metrics,
        stop: Some(stop),
        task,
        _tokens: tokens,
    }
}

fn csr_asking_for_admin() -> String {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.subject_alt_names.push(SanType::URI(
        "spiffe://cluster.local/ns/kube-system/sa/admin"
            .try_into()
            .unwrap(),
    ));
    params.serialize_request(&key).unwrap().pem().unwrap()
}

fn request(csr: String, token: Option<&str>, secs: i64) -> tonic::Request<IstioCertificateRequest> {
    let mut req = tonic::Request::new(IstioCertificateRequest {
        csr,
        validity_duration: secs,
        metadata: None,
    });
    if let Some(token) = token {
        let value: MetadataValue<_> = format!("Bearer {token}").parse().unwrap();
        req.metadata_mut().insert("authorization", value);
    }
    req
}

fn uri_sans_and_lifetime(cert_pem: &str) -> (Vec<String>, i64) {
    let der = pem::parse(cert_pem).unwrap().into_contents();
    let (_, cert) = X509Certificate::from_der(&der).unwrap();
    let sans = cert
        .subject_alternative_name()
        .unwrap()
        .map(|ext| {
            ext.value
                .general_names
                .iter()
                .map(|n| match n {
                    GeneralName::URI(u) => u.to_string(),
                    other => format!("{other:?}"),
                })
                .collect()
        })
        .unwrap_or_default();
    let v = cert.validity();
    (sans, v.not_after.timestamp() - v.not_before.timestamp())
}

#[tokio::test]
async fn create_certificate_over_tls_signs_only_the_proven_identity() {
    let mut server = start().await;
    let mut client = connect(server.addr, "citadel.test", &server.root)
        .await
        .unwrap();

    let resp = client
        .create_certificate(request(csr_asking_for_admin(), Some("good-token"), 20))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(resp.cert_chain.len(), 2);
    assert_eq!(
        resp.cert_chain.last(),
        Some(&server.root),
        "chain ends with the root"
    );
    let (sans, lifetime) = uri_sans_and_lifetime(&resp.cert_chain[0]);
    assert_eq!(
        sans,
        vec!["spiffe://cluster.local/ns/ns1/sa/reviews".to_string()]
    );
    assert_eq!(
        lifetime,
        20 + 60,
        "asked 20 s, plus one minute of back-dating"
    );

    // 0 seconds: the default 24 h.
    let resp = client
        .create_certificate(request(csr_asking_for_admin(), Some("good-token"), 0))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(uri_sans_and_lifetime(&resp.cert_chain[0]).1, 24 * 3600 + 60);
    assert_eq!(server.metrics.issued_count(), 2);

    // The server name is checked: the IP SAN works too.
    let mut by_ip = connect(server.addr, "127.0.0.1", &server.root)
        .await
        .unwrap();
    by_ip
        .create_certificate(request(csr_asking_for_admin(), Some("good-token"), 60))
        .await
        .unwrap();

    server.stop.take().unwrap().send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(10), &mut server.task)
        .await
        .expect("serve stops on shutdown")
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn refusals_have_the_right_codes_and_are_counted() {
    let server = start().await;
    let mut client = connect(server.addr, "citadel.test", &server.root)
        .await
        .unwrap();
    let call = |token: Option<&'static str>, csr: String| {
        let mut client = client.clone();
        async move {
            client
                .create_certificate(request(csr, token, 60))
                .await
                .unwrap_err()
        }
    };

    let forged = call(Some("forged-token"), csr_asking_for_admin()).await;
    assert_eq!(forged.code(), Code::Unauthenticated, "{forged:?}");
    assert!(
        !forged.message().contains("forged-token"),
        "the token is never echoed"
    );

    let stale = call(Some("stale-token"), csr_asking_for_admin()).await;
    assert_eq!(stale.code(), Code::Unauthenticated, "{stale:?}");

    let missing = call(None, csr_asking_for_admin()).await;
    assert_eq!(missing.code(), Code::Unauthenticated, "{missing:?}");

    let malformed = call(
        Some("good-token"),
        "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n".into(),
    )
    .await;
    assert_eq!(malformed.code(), Code::InvalidArgument, "{malformed:?}");
    assert!(
        malformed.message().contains("malformed CSR"),
        "{malformed:?}"
    );

    let mut basic = request(csr_asking_for_admin(), None, 60);
    basic
        .metadata_mut()
        .insert("authorization", "Basic Zm9vOmJhcg==".parse().unwrap());
    let basic = client.create_certificate(basic).await.unwrap_err();
    assert_eq!(basic.code(), Code::Unauthenticated, "{basic:?}");

    let m = &server.metrics;
    assert_eq!(m.refusal_count("rejected_token"), 1);
    assert_eq!(m.refusal_count("expired_token"), 1);
    assert_eq!(m.refusal_count("missing_token"), 1);
    assert_eq!(m.refusal_count("malformed_csr"), 1);
    assert_eq!(m.refusal_count("malformed_token"), 1);
    assert_eq!(m.issued_count(), 0);
}

#[tokio::test]
async fn clients_that_do_not_trust_the_root_cannot_connect() {
    let server = start().await;
    let other = CertificateAuthority::generate_root(KeyType::EcdsaP256, "elsewhere").unwrap();
    let err = connect(server.addr, "citadel.test", other.root_pem())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("connecting"), "{err}");
    // And a name the serving certificate does not carry is refused too.
    assert!(
        connect(server.addr, "wrong.test", &server.root)
            .await
            .is_err()
    );
}
