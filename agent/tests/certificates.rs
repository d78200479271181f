//! The agent against an in-process CA: certificates issued with the
//! bearer token, served over SDS on the Unix socket, rotated before
//! expiry; a refused token is retried until it is fixed.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::os::unix::fs::PermissionsExt;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use support::{GOOD_TOKEN, SdsStream, TestCa, leaf_facts, secrets, tls_certificate, trusted_ca};
use weft_agent::Agent;
use weft_agent::sds::resources::{DEFAULT, ROOTCA};

fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

#[tokio::test]
async fn serves_default_and_rootca_over_sds_and_rotates_before_expiry() {
    support::init_logging();
    let ca = TestCa::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = ca.agent_config(dir.path(), GOOD_TOKEN, Duration::from_secs(4));
    let socket = config.sds_socket.clone();
    // A stale socket file from an earlier run is replaced.
    std::fs::write(&socket, "stale").unwrap();
    let agent = Agent::start(config).unwrap();
    let mode = std::fs::metadata(&socket).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "the SDS socket is owner-only");

    let mut default = SdsStream::open(&socket, &[DEFAULT]).await;
    let mut root = SdsStream::open(&socket, &[ROOTCA]).await;

    let first = default.next(Duration::from_secs(10)).await;
    let first_secrets = secrets(&first);
    assert_eq!(first_secrets.len(), 1);
    assert_eq!(first_secrets[0].name, DEFAULT);
    let (chain, key) = tls_certificate(&first_secrets[0]);
    assert!(key.starts_with("-----BEGIN PRIVATE KEY-----"), "{key}");
    assert!(
        !chain.contains(ca.root_pem.trim()),
        "the root is served as ROOTCA, not in the chain"
    );
    let (uris, not_before, not_after) = leaf_facts(&chain);
    assert_eq!(uris, ["spiffe://cluster.local/ns/ns1/sa/reviews"]);
    assert!(
        (4..=6).contains(&(not_after - not_before)),
        "TTL 4s asked: {not_before}..{not_after}"
    );

    let root_response = root.next(Duration::from_secs(10)).await;
    let root_secrets = secrets(&root_response);
    assert_eq!(root_secrets.len(), 1);
    assert_eq!(root_secrets[0].name, ROOTCA);
    assert_eq!(trusted_ca(&root_secrets[0]), ca.root_pem);

    // Rotation at about half the 4s lifetime: a new `default` is pushed on
    // the same stream, well before the first one expires.
    let second = default.next(Duration::from_secs(6)).await;
    let pushed_at = now_unix();
    assert!(
        pushed_at < not_after,
        "pushed at {pushed_at}, the first expired at {not_after}"
    );
    assert_ne!(second.version_info, first.version_info);
    assert_ne!(second.nonce, first.nonce);
    let (chain2, key2) = tls_certificate(&secrets(&second)[0]);
    assert_ne!(chain2, chain);
    assert_ne!(key2, key, "each rotation has a new key");
    let (uris2, _, not_after2) = leaf_facts(&chain2);
    assert_eq!(uris2, ["spiffe://cluster.local/ns/ns1/sa/reviews"]);
    assert!(not_after2 >= not_after);
    assert!(agent.status().borrow().issued >= 2);
    assert_eq!(ca.refused.load(Ordering::SeqCst), 0);

    agent.stop().await.unwrap();
    assert!(!socket.exists(), "the socket is removed on stop");
}

#[tokio::test]
async fn a_refused_token_is_retried_and_a_fixed_token_is_read_again() {
    support::init_logging();
    let ca = TestCa::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = ca.agent_config(dir.path(), "forged-token", Duration::ZERO);
    let token_file = config.ca.token_file.clone();
    let agent = Agent::start(config).unwrap();
    let mut status = agent.status();

    let refused = tokio::time::timeout(
        Duration::from_secs(10),
        status.wait_for(|s| s.failures >= 3),
    )
    .await
    .expect("the agent retries")
    .unwrap()
    .clone();
    let (kind, message) = refused.last_error.clone().unwrap();
    assert_eq!(kind, "unauthenticated", "{message}");
    assert!(message.contains("Unauthenticated"), "{message}");
    assert!(
        !message.contains("forged-token"),
        "the token is not logged: {message}"
    );
    assert_eq!(refused.issued, 0);
    assert!(ca.refused.load(Ordering::SeqCst) >= 3);
    assert!(agent.bundles().borrow().is_none(), "nothing to serve yet");

    // The token file is re-read on every request (Kubernetes rotates it).
    std::fs::write(&token_file, GOOD_TOKEN).unwrap();
    let issued = tokio::time::timeout(Duration::from_secs(10), status.wait_for(|s| s.issued >= 1))
        .await
        .expect("issued once the token is good")
        .unwrap()
        .clone();
    assert!(issued.last_error.is_none());
    let bundle = agent.bundles().borrow().clone().unwrap();
    // TTL 0: the CA's default (an hour here).
    let lifetime = bundle.not_after.duration_since(bundle.not_before).unwrap();
    assert!(lifetime >= Duration::from_secs(3600), "{lifetime:?}");
    agent.stop().await.unwrap();
}
