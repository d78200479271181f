//! The CA on its own: chains verify with webpki, the only SAN is the proven
//! identity, TTLs are honoured, bad CSRs are refused, CA directories are
//! reused and plug-in CAs win.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use weft_citadel::{CaError, CaMaterial, CertificateAuthority, Identity, KeyType};
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

fn reviews() -> Identity {
    Identity {
        trust_domain: "cluster.local".into(),
        namespace: "ns1".into(),
        service_account: "reviews".into(),
    }
}

/// A CSR that asks for `spiffe://cluster.local/ns/kube-system/sa/admin`
/// and a DNS name: the CA must ignore both.
fn greedy_csr() -> (String, KeyPair) {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(vec!["evil.example.com".to_string()]).unwrap();
    params.subject_alt_names.push(SanType::URI(
        "spiffe://cluster.local/ns/kube-system/sa/admin"
            .try_into()
            .unwrap(),
    ));
    params.distinguished_name.push(DnType::CommonName, "admin");
    let csr = params.serialize_request(&key).unwrap().pem().unwrap();
    (csr, key)
}

fn der(pem_str: &str) -> CertificateDer<'static> {
    CertificateDer::from(pem::parse(pem_str).unwrap().into_contents())
}

/// webpki path validation of `chain` (leaf first, root last) to `root_pem`.
fn verify(
    chain: &[String],
    root_pem: &str,
    usage: webpki::KeyUsage,
) -> webpki::EndEntityCert<'static> {
    assert_eq!(
        chain.last().map(String::as_str),
        Some(root_pem),
        "chain must end with the root"
    );
    let root = der(root_pem);
    let anchor = webpki::anchor_from_trusted_cert(&root).unwrap().to_owned();
    let leaf: &'static CertificateDer<'static> = Box::leak(Box::new(der(&chain[0])));
    let intermediates: Vec<_> = chain[1..chain.len() - 1].iter().map(|p| der(p)).collect();
    let ee = webpki::EndEntityCert::try_from(leaf).unwrap();
    ee.verify_for_usage(
        webpki::ALL_VERIFICATION_ALGS,
        &[anchor],
        &intermediates,
        UnixTime::now(),
        usage,
        None,
        None,
    )
    .unwrap();
    ee
}

/// The subject alternative names of a PEM certificate, as strings.
fn sans(cert_pem: &str) -> Vec<String> {
    let d = der(cert_pem);
    let (_, cert) = X509Certificate::from_der(&d).unwrap();
    let Some(ext) = cert.subject_alternative_name().unwrap() else {
        return Vec::new();
    };
    ext.value
        .general_names
        .iter()
        .map(|n| match n {
            GeneralName::URI(u) => format!("URI:{u}"),
            GeneralName::DNSName(d) => format!("DNS:{d}"),
            GeneralName::IPAddress(ip) => format!("IP:{ip:?}"),
            other => format!("{other:?}"),
        })
        .collect()
}

fn validity(cert_pem: &str) -> Duration {
    let d = der(cert_pem);
    let (_, cert) = X509Certificate::from_der(&d).unwrap();
    let v = cert.validity();
    Duration::from_secs((v.not_after.timestamp() - v.not_before.timestamp()) as u64)
}

#[test]
fn ecdsa_chain_verifies_and_names_only_the_proven_identity() {
    let ca = CertificateAuthority::generate_root(KeyType::EcdsaP256, "cluster.local").unwrap();
    let (csr, _) = greedy_csr();
    let chain = ca
        .sign_csr(&csr, &reviews(), Duration::from_secs(3600))
        .unwrap();
    assert_eq!(chain.len(), 2);
    verify(&chain, ca.root_pem(), webpki::KeyUsage::client_auth());
    verify(&chain, ca.root_pem(), webpki::KeyUsage::server_auth());
    assert_eq!(
        sans(&chain[0]),
        vec!["URI:spiffe://cluster.local/ns/ns1/sa/reviews".to_string()]
    );
    let d = der(&chain[0]);
    let (_, leaf) = X509Certificate::from_der(&d).unwrap();
    assert!(!leaf.is_ca());
    assert!(
        leaf.subject().iter_common_name().next().is_none(),
        "CSR subject must be dropped"
    );
}

#[test]
fn rsa_root_signs_chains_that_verify() {
    let ca = CertificateAuthority::generate_root(KeyType::Rsa2048, "cluster.local").unwrap();
    assert!(ca.material().key_pem.contains("PRIVATE KEY"));
    let (csr, _) = greedy_csr();
    let chain = ca
        .sign_csr(&csr, &reviews(), Duration::from_secs(600))
        .unwrap();
    verify(&chain, ca.root_pem(), webpki::KeyUsage::client_auth());
    // And an RSA CA survives a round trip through its material.
    let again = CertificateAuthority::from_material(&ca.material()).unwrap();
    assert_eq!(again.root_pem(), ca.root_pem());
}

#[test]
fn lifetime_is_the_ttl_plus_a_minute_of_backdating() {
    let ca = CertificateAuthority::generate_root(KeyType::EcdsaP256, "cluster.local").unwrap();
    let (csr, _) = greedy_csr();
    let chain = ca
        .sign_csr(&csr, &reviews(), Duration::from_secs(20))
        .unwrap();
    let lifetime = validity(&chain[0]);
    assert!(
        (Duration::from_secs(79)..=Duration::from_secs(81)).contains(&lifetime),
        "{lifetime:?}"
    );
    assert!(validity(ca.root_pem()) > Duration::from_secs(9 * 365 * 24 * 3600));
}

#[test]
fn malformed_and_forged_csrs_are_refused() {
    let ca = CertificateAuthority::generate_root(KeyType::EcdsaP256, "cluster.local").unwrap();
    let ttl = Duration::from_secs(60);
    let err = ca.sign_csr("not a csr", &reviews(), ttl).unwrap_err();
    assert!(matches!(err, CaError::MalformedCsr(_)), "{err}");
    assert!(err.is_bad_request());

    let err = ca.sign_csr(ca.root_pem(), &reviews(), ttl).unwrap_err();
    assert!(err.to_string().contains("CERTIFICATE REQUEST"), "{err}");

    let garbage = pem::encode(&pem::Pem::new(
        "CERTIFICATE REQUEST",
        vec![0x30, 0x03, 1, 2, 3],
    ));
    let err = ca.sign_csr(&garbage, &reviews(), ttl).unwrap_err();
    assert!(matches!(err, CaError::MalformedCsr(_)), "{err}");

    // Flip a bit of the signature: the CSR no longer proves its key.
    let (csr, _) = greedy_csr();
    let mut bytes = pem::parse(&csr).unwrap().into_contents();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x01;
    let tampered = pem::encode(&pem::Pem::new("CERTIFICATE REQUEST", bytes));
    let err = ca.sign_csr(&tampered, &reviews(), ttl).unwrap_err();
    assert!(matches!(err, CaError::CsrSignature), "{err}");

    let mut bad_id = reviews();
    bad_id.namespace = "ns1/sa/admin".into();
    let (csr, _) = greedy_csr();
    assert!(matches!(
        ca.sign_csr(&csr, &bad_id, ttl),
        Err(CaError::InvalidIdentity(_))
    ));
}

#[test]
fn load_or_create_dir_reuses_the_same_root_and_keeps_the_key_private() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("ca");
    let first = CertificateAuthority::load_or_create_dir(&state, KeyType::EcdsaP256, "td").unwrap();
    let second = CertificateAuthority::load_or_create_dir(&state, KeyType::Rsa2048, "td").unwrap();
    assert_eq!(first.root_pem(), second.root_pem());
    assert_eq!(first.material(), second.material());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(state.join("ca-key.pem"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    // Certificates from the reloaded CA chain to the first root.
    let (csr, _) = greedy_csr();
    let chain = second
        .sign_csr(&csr, &reviews(), Duration::from_secs(60))
        .unwrap();
    verify(&chain, first.root_pem(), webpki::KeyUsage::client_auth());
}

/// Writes an Istio `cacerts` directory: an intermediate signed by `root`.
fn write_plugin_dir(dir: &Path, root: &CertificateAuthority, with_chain: bool) {
    let not_after = time::OffsetDateTime::now_utc() + time::Duration::days(365);
    write_plugin_dir_until(dir, root, with_chain, not_after);
}

/// Same, with the intermediate expiring at `not_after`.
fn write_plugin_dir_until(
    dir: &Path,
    root: &CertificateAuthority,
    with_chain: bool,
    not_after: time::OffsetDateTime,
) {
    let root_key = KeyPair::from_pem(&root.material().key_pem).unwrap();
    let issuer = Issuer::from_ca_cert_pem(root.root_pem(), root_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::default();
    params
        .distinguished_name
        .push(DnType::CommonName, "plug-in intermediate");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.not_before = not_after - time::Duration::days(400);
    params.not_after = not_after;
    let cert = params.signed_by(&key, &issuer).unwrap().pem();
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("ca-cert.pem"), &cert).unwrap();
    std::fs::write(dir.join("ca-key.pem"), key.serialize_pem()).unwrap();
    std::fs::write(dir.join("root-cert.pem"), root.root_pem()).unwrap();
    if with_chain {
        std::fs::write(
            dir.join("cert-chain.pem"),
            format!("{cert}{}", root.root_pem()),
        )
        .unwrap();
    }
}

#[test]
fn plugin_dir_intermediate_signs_three_link_chains_and_wins() {
    let root = CertificateAuthority::generate_root(KeyType::EcdsaP256, "corp").unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let plugin = tmp.path().join("cacerts");
    let state = tmp.path().join("state");
    // Without a plug-in, the self-signed root in `state` is used.
    let own = CertificateAuthority::load_plugin_or_create(
        Some(&plugin),
        &state,
        KeyType::EcdsaP256,
        "td",
    )
    .unwrap();
    assert_ne!(own.root_pem(), root.root_pem());

    for with_chain in [true, false] {
        write_plugin_dir(&plugin, &root, with_chain);
        if !with_chain {
            std::fs::remove_file(plugin.join("cert-chain.pem")).unwrap();
        }
        let ca = CertificateAuthority::load_plugin_or_create(
            Some(&plugin),
            &state,
            KeyType::EcdsaP256,
            "td",
        )
        .unwrap();
        assert_eq!(ca.root_pem(), root.root_pem(), "the plug-in CA wins");
        let (csr, _) = greedy_csr();
        let chain = ca
            .sign_csr(&csr, &reviews(), Duration::from_secs(60))
            .unwrap();
        assert_eq!(chain.len(), 3, "leaf, intermediate, root");
        verify(&chain, root.root_pem(), webpki::KeyUsage::client_auth());
    }
}

#[test]
fn plugin_dir_absent_is_none_and_half_filled_is_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    assert!(
        CertificateAuthority::load_plugin_dir(&tmp.path().join("nope"))
            .unwrap()
            .is_none()
    );
    assert!(
        CertificateAuthority::load_plugin_dir(tmp.path())
            .unwrap()
            .is_none()
    );
    let root = CertificateAuthority::generate_root(KeyType::EcdsaP256, "corp").unwrap();
    write_plugin_dir(tmp.path(), &root, true);
    std::fs::remove_file(tmp.path().join("ca-key.pem")).unwrap();
    let err = CertificateAuthority::load_plugin_dir(tmp.path()).unwrap_err();
    assert!(err.to_string().contains("ca-key.pem"), "{err}");
}

#[test]
fn material_with_a_foreign_key_or_a_leaf_is_refused() {
    let a = CertificateAuthority::generate_root(KeyType::EcdsaP256, "a").unwrap();
    let b = CertificateAuthority::generate_root(KeyType::EcdsaP256, "b").unwrap();
    let mixed = CaMaterial {
        key_pem: b.material().key_pem,
        ..a.material()
    };
    let err = CertificateAuthority::from_material(&mixed).unwrap_err();
    assert!(err.to_string().contains("does not belong"), "{err}");

    // A chain whose signing cert is not signed by the given root.
    let broken = CaMaterial {
        root_pem: b.root_pem().to_string(),
        ..a.material()
    };
    assert!(matches!(
        CertificateAuthority::from_material(&broken),
        Err(CaError::InvalidMaterial(_))
    ));
}

#[test]
fn serving_certificate_is_valid_for_its_names() {
    let ca = CertificateAuthority::generate_root(KeyType::EcdsaP256, "cluster.local").unwrap();
    let names = vec!["weft.weft-system.svc".to_string()];
    let ips = vec!["127.0.0.1".parse().unwrap()];
    let (chain, key) = ca
        .issue_serving_cert(&names, &ips, Duration::from_secs(3600))
        .unwrap();
    assert!(key.contains("PRIVATE KEY"));
    let ee = verify(&chain, ca.root_pem(), webpki::KeyUsage::server_auth());
    ee.verify_is_valid_for_subject_name(&ServerName::try_from("weft.weft-system.svc").unwrap())
        .unwrap();
    ee.verify_is_valid_for_subject_name(&ServerName::try_from("127.0.0.1").unwrap())
        .unwrap();
    assert!(
        ee.verify_is_valid_for_subject_name(&ServerName::try_from("other.svc").unwrap())
            .is_err()
    );
    assert!(
        ca.issue_serving_cert(&[], &[], Duration::from_secs(1))
            .is_err()
    );
}

#[test]
fn leaves_never_outlive_the_ca_and_an_expired_ca_signs_nothing() {
    let root = CertificateAuthority::generate_root(KeyType::EcdsaP256, "corp").unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let in_an_hour = time::OffsetDateTime::now_utc() + time::Duration::hours(1);
    write_plugin_dir_until(tmp.path(), &root, true, in_an_hour);
    let ca = CertificateAuthority::load_plugin_dir(tmp.path())
        .unwrap()
        .unwrap();
    let expiry = ca
        .not_after()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert_eq!(expiry as i64, in_an_hour.unix_timestamp());
    let (csr, _) = greedy_csr();
    let chain = ca
        .sign_csr(&csr, &reviews(), Duration::from_secs(24 * 3600))
        .unwrap();
    let d = der(&chain[0]);
    let (_, leaf) = X509Certificate::from_der(&d).unwrap();
    assert_eq!(
        leaf.validity().not_after.timestamp(),
        in_an_hour.unix_timestamp()
    );

    let an_hour_ago = time::OffsetDateTime::now_utc() - time::Duration::hours(1);
    write_plugin_dir_until(tmp.path(), &root, true, an_hour_ago);
    let expired = CertificateAuthority::load_plugin_dir(tmp.path())
        .unwrap()
        .unwrap();
    let err = expired
        .sign_csr(&csr, &reviews(), Duration::from_secs(60))
        .unwrap_err();
    assert!(matches!(err, CaError::CaExpired(_)), "{err}");
    assert!(err.to_string().contains("rotate the CA"), "{err}");
}

/// An RSA key of any size, signing CSRs through the `rsa` crate (ring
/// refuses to sign with keys under 2048 bits).
struct WeakRsa {
    key: rsa::RsaPrivateKey,
    public_der: Vec<u8>,
}

impl rcgen::PublicKeyData for WeakRsa {
    fn der_bytes(&self) -> &[u8] {
        &self.public_der
    }
    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        &rcgen::PKCS_RSA_SHA256
    }
}

impl rcgen::SigningKey for WeakRsa {
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
        use rsa::signature::{SignatureEncoding, Signer};
        let signer = rsa::pkcs1v15::SigningKey::<rsa::sha2::Sha256>::new(self.key.clone());
        Ok(signer.sign(msg).to_vec())
    }
}

#[test]
fn short_rsa_keys_in_csrs_are_refused_by_name() {
    use rsa::pkcs1::EncodeRsaPublicKey;
    let ca = CertificateAuthority::generate_root(KeyType::EcdsaP256, "cluster.local").unwrap();
    let key = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 1024).unwrap();
    let public_der = key
        .to_public_key()
        .to_pkcs1_der()
        .unwrap()
        .as_bytes()
        .to_vec();
    let weak = WeakRsa { key, public_der };
    let csr = CertificateParams::default()
        .serialize_request(&weak)
        .unwrap()
        .pem()
        .unwrap();
    let err = ca
        .sign_csr(&csr, &reviews(), Duration::from_secs(60))
        .unwrap_err();
    assert!(matches!(err, CaError::MalformedCsr(_)), "{err}");
    assert!(err.to_string().contains("1024 bits"), "{err}");

    // An RSA 2048 CSR is fine.
    let key = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048).unwrap();
    let public_der = key
        .to_public_key()
        .to_pkcs1_der()
        .unwrap()
        .as_bytes()
        .to_vec();
    let ok = WeakRsa { key, public_der };
    let csr = CertificateParams::default()
        .serialize_request(&ok)
        .unwrap()
        .pem()
        .unwrap();
    let chain = ca
        .sign_csr(&csr, &reviews(), Duration::from_secs(60))
        .unwrap();
    verify(&chain, ca.root_pem(), webpki::KeyUsage::client_auth());
}
