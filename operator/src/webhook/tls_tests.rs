//! The webhook server over real TLS on 127.0.0.1: certificate files
//! loaded, a review answered, a body that is no review refused with 400,
//! the answers counted; unusable files refused with a message naming them;
//! a rotating certificate swapped under a running server.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use super::WebhookMetrics;
use super::cert::{RotatingCert, certified_key};
use super::server::{ClusterInputs, Injection, ServingCert, TlsFiles, server_config, start};

/// A CA (its certificate, DER) and files of a leaf for 127.0.0.1 in `dir`.
fn mk_pki(dir: &Path) -> (CertificateDer<'static>, TlsFiles) {
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_key = KeyPair::generate().unwrap();
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca, ca_key);
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["127.0.0.1".to_string()])
        .unwrap()
        .signed_by(&leaf_key, &issuer)
        .unwrap();
    let files = TlsFiles {
        cert: dir.join("cert.pem"),
        key: dir.join("key.pem"),
    };
    std::fs::write(&files.cert, leaf.pem()).unwrap();
    std::fs::write(&files.key, leaf_key.serialize_pem()).unwrap();
    (ca_cert.der().clone(), files)
}

/// One HTTP/1.1 POST of `body` to `/validate` over TLS: the whole response.
async fn post(addr: SocketAddr, ca: &CertificateDer<'static>, body: &str) -> String {
    let mut roots = RootCertStore::empty();
    roots.add(ca.clone()).unwrap();
    let config =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
    let tcp = TcpStream::connect(addr).await.unwrap();
    let name = ServerName::try_from("127.0.0.1").unwrap();
    let mut tls = TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .unwrap();
    let request = format!(
        "POST /validate HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    tls.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    tls.read_to_string(&mut response).await.unwrap();
    response
}

#[tokio::test]
async fn reviews_are_answered_over_tls_and_garbage_is_a_400() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, files) = mk_pki(dir.path());
    let metrics = WebhookMetrics::default();
    let cluster: ClusterInputs = Arc::new(super::ClusterState::default);
    let addr = start(
        "127.0.0.1:0".parse().unwrap(),
        &ServingCert::Files(files),
        cluster,
        Injection {
            config: Default::default(),
            namespaces: Arc::new(|_: &str| None),
        },
        metrics.clone(),
    )
    .await
    .unwrap();

    let response = post(addr, &ca, "{\"hello\": 1}").await;
    assert!(response.starts_with("HTTP/1.1 400 "), "{response}");
    assert!(
        response.contains("not an admission.k8s.io/v1 AdmissionReview"),
        "{response}"
    );

    let review = serde_json::json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "1",
            "kind": {"group": "networking.istio.io", "version": "v1", "kind": "VirtualService"},
            "resource": {"group": "networking.istio.io", "version": "v1", "resource": "virtualservices"},
            "name": "reviews",
            "namespace": "default",
            "operation": "CREATE",
            "userInfo": {},
            "object": {
                "apiVersion": "networking.istio.io/v1",
                "kind": "VirtualService",
                "metadata": {"name": "reviews", "namespace": "default"},
                "spec": {"hosts": ["reviews"], "http": [{"route": [
                    {"destination": {"host": "reviews"}, "weight": 30}
                ]}]}
            }
        }
    });
    let response = post(addr, &ca, &review.to_string()).await;
    assert!(response.starts_with("HTTP/1.1 200 "), "{response}");
    assert!(response.contains("\"allowed\":false"), "{response}");
    assert!(response.contains("weights sum to 30"), "{response}");
    assert_eq!(metrics.count("VirtualService", false), 1);
    assert_eq!(metrics.count("VirtualService", true), 0);
}

#[test]
fn unusable_files_are_refused_naming_them() {
    let dir = tempfile::tempdir().unwrap();
    let (_, files) = mk_pki(dir.path());
    let missing = TlsFiles {
        cert: dir.path().join("absent.pem"),
        key: files.key.clone(),
    };
    let err = server_config(&missing).unwrap_err().to_string();
    assert!(
        err.contains("absent.pem") && err.contains("--webhook-tls-cert"),
        "{err}"
    );

    let swapped = TlsFiles {
        cert: files.key.clone(),
        key: files.cert.clone(),
    };
    let err = server_config(&swapped).unwrap_err().to_string();
    assert!(
        err.contains("key.pem") && err.contains("--webhook-tls-cert"),
        "{err}"
    );
}

/// The leaf certificate a TLS server at `addr` presents to a client
/// trusting `root` and asking for `name`.
async fn served_leaf(
    addr: SocketAddr,
    root: &CertificateDer<'static>,
    name: &str,
) -> CertificateDer<'static> {
    let mut roots = RootCertStore::empty();
    roots.add(root.clone()).unwrap();
    let config =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
    let tcp = TcpStream::connect(addr).await.unwrap();
    let tls = TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from(name.to_string()).unwrap(), tcp)
        .await
        .unwrap();
    tls.get_ref().1.peer_certificates().unwrap()[0].clone()
}

#[tokio::test]
async fn a_swapped_certificate_is_served_from_the_next_handshake() {
    use std::time::Duration;
    use weft_citadel::{CertificateAuthority, KeyType};

    let ca = CertificateAuthority::generate_root(KeyType::EcdsaP256, "cluster.local").unwrap();
    let root = CertificateDer::from_pem_slice(ca.root_pem().as_bytes()).unwrap();
    let names = ["weft.weft-system.svc".to_string()];
    let issue = || {
        let (chain, key) = ca
            .issue_serving_cert(&names, &[], Duration::from_secs(600))
            .unwrap();
        certified_key(&chain, &key).unwrap()
    };
    let rotating = Arc::new(RotatingCert::new(issue()));
    let cluster: ClusterInputs = Arc::new(super::ClusterState::default);
    let addr = start(
        "127.0.0.1:0".parse().unwrap(),
        &ServingCert::Rotating(rotating.clone()),
        cluster,
        Injection {
            config: Default::default(),
            namespaces: Arc::new(|_: &str| None),
        },
        WebhookMetrics::default(),
    )
    .await
    .unwrap();

    let first = served_leaf(addr, &root, "weft.weft-system.svc").await;
    assert_eq!(Some(&first), rotating.current().end_entity_cert().ok());
    rotating.swap(issue());
    let second = served_leaf(addr, &root, "weft.weft-system.svc").await;
    assert_ne!(first, second);
    assert_eq!(Some(&second), rotating.current().end_entity_cert().ok());
}
