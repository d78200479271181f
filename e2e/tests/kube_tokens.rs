//! The harness's hand-signed service-account tokens, judged by a real
//! apiserver's TokenReview: one signed with the apiserver's own key and
//! valid claims is authenticated (so the format is right), an expired one
//! and a forged one are not. The certificate service's tests rely on this.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, SystemTime};

use weft_e2e::ControlPlane;
use weft_e2e::tokens::{TokenClaims, sign_token};

/// `kubectl create` of a TokenReview of `token` for `audience`; returns
/// the status as YAML.
fn review(plane: &ControlPlane, token: &str, audience: &str) -> serde_yaml::Value {
    let review = format!(
        "apiVersion: authentication.k8s.io/v1\nkind: TokenReview\nspec:\n  token: {token}\n  \
         audiences: [{audience}]\n"
    );
    let out = plane
        .kubectl_stdin_ok(&["create", "-f", "-", "-o", "json"], &review)
        .unwrap();
    serde_yaml::from_str::<serde_yaml::Value>(&out).unwrap()["status"].clone()
}

#[test]
fn the_apiserver_judges_hand_signed_tokens_as_intended() {
    let plane = ControlPlane::start().unwrap();
    let uid = plane.create_service_account("ns1", "reviews").unwrap();
    let claims = TokenClaims {
        issuer: plane.service_account_issuer(),
        namespace: "ns1".into(),
        service_account: "reviews".into(),
        uid,
        audiences: vec!["istio-ca".into()],
        issued_at: SystemTime::now() - Duration::from_secs(5),
        lifetime: Duration::from_secs(600),
    };
    let key = &plane.pki().service_account_key;

    let good = review(&plane, &sign_token(key, &claims).unwrap(), "istio-ca");
    assert_eq!(good["authenticated"].as_bool(), Some(true), "{good:?}");
    assert_eq!(
        good["user"]["username"].as_str(),
        Some("system:serviceaccount:ns1:reviews")
    );

    let expired = TokenClaims {
        issued_at: SystemTime::now() - Duration::from_secs(3600),
        ..claims.clone()
    };
    let status = review(&plane, &sign_token(key, &expired).unwrap(), "istio-ca");
    assert_ne!(status["authenticated"].as_bool(), Some(true), "{status:?}");

    let dir = tempfile::tempdir().unwrap();
    let other_key = dir.path().join("other.key");
    std::fs::write(
        &other_key,
        rcgen::KeyPair::generate().unwrap().serialize_pem(),
    )
    .unwrap();
    let forged = review(
        &plane,
        &sign_token(&other_key, &claims).unwrap(),
        "istio-ca",
    );
    assert_ne!(forged["authenticated"].as_bool(), Some(true), "{forged:?}");

    let wrong_audience = review(&plane, &sign_token(key, &claims).unwrap(), "somebody-else");
    assert_ne!(
        wrong_audience["authenticated"].as_bool(),
        Some(true),
        "{wrong_audience:?}"
    );
}
