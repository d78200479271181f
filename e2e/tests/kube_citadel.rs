//! Citadel on a real apiserver (issue 5): `weft operator`, as the chart's
//! ServiceAccount, keeps its root in Secret `weft-ca`, publishes it in
//! every namespace, and signs CSRs only for the identity a token proves,
//! checked by the apiserver's TokenReview. Tokens come from the
//! TokenRequest API (`kubectl create token`), or are hand-signed by the
//! test with the apiserver's key (expired) or another key (forged).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use rcgen::{CertificateParams, KeyPair, SanType};
use tonic::Code;
use weft_e2e::kube_mesh::{operator_identity, published_root, start_control_plane_with_crds};
use weft_e2e::mesh::WEFT_READY_TIMEOUT;
use weft_e2e::tokens::{TokenClaims, sign_token};
use weft_e2e::{APPLY_TIMEOUT, ControlPlane, OperatorOptions, Weft, wait_for};
use weft_proto::istio::v1::auth::IstioCertificateRequest;
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

/// A PEM CSR for a fresh key, asking for `spiffe_id`.
fn mk_csr(spiffe_id: &str) -> String {
    let mut params = CertificateParams::default();
    params.subject_alt_names = vec![SanType::URI(spiffe_id.try_into().unwrap())];
    params
        .serialize_request(&KeyPair::generate().unwrap())
        .unwrap()
        .pem()
        .unwrap()
}

/// CreateCertificate at `ca`, trusting `root`, with `token` (if any).
async fn create_certificate(
    ca: SocketAddr,
    root: &str,
    token: Option<&str>,
    csr: &str,
) -> Result<Vec<String>, tonic::Status> {
    let mut client = weft_proto::connect(ca, "127.0.0.1", root).await.unwrap();
    let mut request = tonic::Request::new(IstioCertificateRequest {
        csr: csr.to_string(),
        validity_duration: 3600,
        metadata: None,
    });
    if let Some(token) = token {
        request
            .metadata_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
    }
    client
        .create_certificate(request)
        .await
        .map(|reply| reply.into_inner().cert_chain)
}

fn der(pem: &str) -> Vec<u8> {
    pem::parse(pem).unwrap().into_contents()
}

/// The URI SANs of `cert`.
fn uri_sans(cert: &X509Certificate<'_>) -> Vec<String> {
    cert.subject_alternative_name()
        .unwrap()
        .map(|san| {
            san.value
                .general_names
                .iter()
                .filter_map(|name| match name {
                    GeneralName::URI(uri) => Some(uri.to_string()),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Starts `weft operator` as the chart's ServiceAccount.
async fn start_weft(plane: &ControlPlane, identity: Option<OperatorOptions>) -> Weft {
    let options = match identity {
        Some(options) => options,
        None => tokio::task::block_in_place(|| operator_identity(plane)).unwrap(),
    };
    Weft::start_operator_with(&options, WEFT_READY_TIMEOUT)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_gets_a_certificate_for_the_identity_it_proves_and_nothing_else() {
    let plane = start_control_plane_with_crds().await.unwrap();
    let weft = start_weft(&plane, None).await;
    let ca = weft
        .ca_addr()
        .expect("weft operator serves the certificate service");
    let uid = plane.create_service_account("ns1", "reviews").unwrap();
    let root = published_root(&plane, "ns1", "istio-ca-root-cert")
        .await
        .unwrap();
    assert_eq!(
        published_root(&plane, "ns1", "weft-ca-root-cert")
            .await
            .unwrap(),
        root
    );

    // A TokenRequest token for ns1/reviews, with a CSR asking for someone
    // else: the certificate names only the proven identity.
    let token = plane
        .kubectl_ok(&[
            "create",
            "token",
            "reviews",
            "-n",
            "ns1",
            "--audience",
            "istio-ca",
        ])
        .unwrap();
    let csr = mk_csr("spiffe://cluster.local/ns/kube-system/sa/admin");
    let chain = create_certificate(ca, &root, Some(token.trim()), &csr)
        .await
        .unwrap();
    assert!(chain.len() >= 2, "{chain:?}");
    assert_eq!(
        chain.last().unwrap().trim(),
        root.trim(),
        "the chain ends with the root"
    );
    let ders: Vec<Vec<u8>> = chain.iter().map(|pem| der(pem)).collect();
    let certs: Vec<X509Certificate<'_>> = ders
        .iter()
        .map(|d| X509Certificate::from_der(d).unwrap().1)
        .collect();
    assert_eq!(
        uri_sans(&certs[0]),
        ["spiffe://cluster.local/ns/ns1/sa/reviews"],
        "the only URI SAN is the proven identity"
    );
    for pair in certs.windows(2) {
        pair[0]
            .verify_signature(Some(pair[1].public_key()))
            .expect("each certificate is signed by the next");
    }
    let validity = certs[0].validity().time_to_expiration().unwrap();
    assert!(validity <= Duration::from_secs(3600), "{validity:?}");

    // Refusals: UNAUTHENTICATED for every bad credential, INVALID_ARGUMENT
    // for a CSR that is not one.
    let wrong_audience = plane
        .kubectl_ok(&[
            "create",
            "token",
            "reviews",
            "-n",
            "ns1",
            "--audience",
            "somebody",
        ])
        .unwrap();
    let claims = TokenClaims {
        issuer: plane.service_account_issuer(),
        namespace: "ns1".into(),
        service_account: "reviews".into(),
        uid,
        audiences: vec!["istio-ca".into()],
        issued_at: SystemTime::now() - Duration::from_secs(3600),
        lifetime: Duration::from_secs(600),
    };
    let expired = sign_token(&plane.pki().service_account_key, &claims).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let other_key = dir.path().join("other.key");
    std::fs::write(&other_key, KeyPair::generate().unwrap().serialize_pem()).unwrap();
    let forged = sign_token(
        &other_key,
        &TokenClaims {
            issued_at: SystemTime::now(),
            ..claims.clone()
        },
    )
    .unwrap();
    for (what, token) in [
        ("no token", None),
        ("a wrong audience", Some(wrong_audience.trim())),
        ("an expired token", Some(expired.as_str())),
        ("a forged token", Some(forged.as_str())),
    ] {
        let refused = create_certificate(ca, &root, token, &csr)
            .await
            .unwrap_err();
        assert_eq!(refused.code(), Code::Unauthenticated, "{what}: {refused:?}");
    }
    let malformed = create_certificate(ca, &root, Some(token.trim()), "not a CSR")
        .await
        .unwrap_err();
    assert_eq!(malformed.code(), Code::InvalidArgument, "{malformed:?}");
    let metrics = weft.monitoring_get("/metrics").await.unwrap().body;
    assert!(
        metrics.contains("weft_citadel_refusals_total"),
        "refusals are counted: {metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_root_survives_a_restart_and_a_plug_in_ca_wins() {
    let plane = start_control_plane_with_crds().await.unwrap();
    // A short Lease: each restart leads (and publishes) soon after the
    // killed replica's Lease expires.
    let options = tokio::task::block_in_place(|| operator_identity(&plane))
        .unwrap()
        .args(["--lease-duration", "3s"]);
    let first = start_weft(&plane, Some(options.clone())).await;
    let root = published_root(&plane, "default", "istio-ca-root-cert")
        .await
        .unwrap();
    first.kill().unwrap();
    drop(first);

    // A restart reuses Secret weft-ca: the same root.
    let second = start_weft(&plane, Some(options.clone())).await;
    let token = plane
        .kubectl_ok(&[
            "create",
            "token",
            "weft",
            "-n",
            "weft-system",
            "--audience",
            "istio-ca",
        ])
        .unwrap();
    let csr = mk_csr("spiffe://cluster.local/ns/weft-system/sa/weft");
    let chain = create_certificate(second.ca_addr().unwrap(), &root, Some(token.trim()), &csr)
        .await
        .unwrap();
    assert_eq!(chain.last().unwrap().trim(), root.trim());
    second.kill().unwrap();
    drop(second);

    // A plug-in CA in Secret cacerts (Istio's layout) wins over weft-ca.
    let plugin = KeyPair::generate().unwrap();
    let mut params = CertificateParams::default();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
        rcgen::KeyUsagePurpose::DigitalSignature,
    ];
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "plug-in root");
    let plugin_root = params.self_signed(&plugin).unwrap().pem();
    let dir = tempfile::tempdir().unwrap();
    let files = [
        ("ca-cert.pem", plugin_root.clone()),
        ("ca-key.pem", plugin.serialize_pem()),
        ("root-cert.pem", plugin_root.clone()),
        ("cert-chain.pem", plugin_root.clone()),
    ];
    let mut args = vec![
        "create",
        "secret",
        "generic",
        "cacerts",
        "-n",
        "weft-system",
    ];
    let paths: Vec<String> = files
        .iter()
        .map(|(name, text)| {
            let path = dir.path().join(name);
            std::fs::write(&path, text).unwrap();
            format!("--from-file={name}={}", path.display())
        })
        .collect();
    args.extend(paths.iter().map(String::as_str));
    plane.kubectl_ok(&args).unwrap();
    let third = start_weft(&plane, Some(options)).await;
    let chain = create_certificate(
        third.ca_addr().unwrap(),
        &plugin_root,
        Some(token.trim()),
        &csr,
    )
    .await
    .unwrap();
    assert_eq!(chain.last().unwrap().trim(), plugin_root.trim());
    let republished = wait_for(
        "the plug-in root to be published",
        APPLY_TIMEOUT,
        || async {
            let now = plane
                .kubectl_ok(&[
                    "get",
                    "configmap",
                    "istio-ca-root-cert",
                    "-n",
                    "default",
                    "-o",
                    "jsonpath={.data.root-cert\\.pem}",
                ])
                .ok()?;
            (now.trim() == plugin_root.trim()).then_some(now)
        },
    )
    .await;
    assert!(republished.is_ok(), "{republished:?}");
}
