//! RequestAuthentication and end-user AuthorizationPolicy between real
//! sidecars ([`SidecarPair`]), with tokens from an issuer the test owns
//! ([`JwtIssuer`]: OpenID discovery and keys over HTTPS with its own CA,
//! which `weft standalone --jwks-ca-bundle` trusts). Weft fetches the keys
//! and inlines them into the server's Envoy, whose `jwt_authn` filter
//! answers 401 for a bad token and whose RBAC filter reads the verified
//! payload.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use serde_json::json;
use weft_e2e::jwt_issuer::{JwtIssuer, claims};
use weft_e2e::sidecars::{SidecarOptions, SidecarPair};
use weft_e2e::{APPLY_TIMEOUT, wait_until};

/// `weft standalone` trusting the issuer's CA and refreshing keys every
/// `refresh` (retrying after 1s).
fn options(issuer: &JwtIssuer, refresh: &str) -> SidecarOptions {
    SidecarOptions {
        weft_args: [
            "--jwks-ca-bundle".into(),
            issuer.ca_pem_path().as_os_str().to_owned(),
            "--jwks-refresh-interval".into(),
            refresh.into(),
            "--jwks-retry-interval".into(),
            "1s".into(),
        ]
        .into(),
        ..Default::default()
    }
}

const ANY_END_USER: &str = "apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: reviews-users, namespace: default}
spec:
  selector: {matchLabels: {app: reviews}}
  rules:
  - from:
    - source: {requestPrincipals: ['*']}
";

const ADMINS_ONLY: &str = "apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: reviews-users, namespace: default}
spec:
  selector: {matchLabels: {app: reviews}}
  rules:
  - when:
    - {key: 'request.auth.claims[groups]', values: [admins]}
";

/// The status of `GET /` from the client with `token` as a bearer token
/// (none without).
async fn status(pair: &SidecarPair, token: Option<&str>) -> u16 {
    let bearer = token.map(|t| format!("Bearer {t}"));
    let headers: Vec<(&str, &str)> = bearer
        .iter()
        .map(|b| ("authorization", b.as_str()))
        .collect();
    match pair.get_from_with(pair.client(), "/", &headers).await {
        Ok(reply) => reply.status,
        Err(_) => 0,
    }
}

/// Waits until `token` (none: no token) gets `expected` five times in a
/// row, and the server's previous filter chains drained.
async fn wait_for(pair: &SidecarPair, token: Option<&str>, expected: u16) -> anyhow::Result<()> {
    let bearer = token.map(|t| format!("Bearer {t}"));
    let headers: Vec<(&str, &str)> = bearer
        .iter()
        .map(|b| ("authorization", b.as_str()))
        .collect();
    pair.wait_for_status(pair.client(), "/", &headers, expected)
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_verified_and_end_users_authorized() -> anyhow::Result<()> {
    let issuer = JwtIssuer::start().await?;
    let pair = SidecarPair::start(options(&issuer, "20m")).await?;
    let keys = format!("jwksUri: {}", issuer.jwks_uri());
    pair.write_config(
        "jwt.yaml",
        &format!(
            "{}---\n{ANY_END_USER}",
            issuer.request_authentication(&keys)
        ),
    )
    .await?;
    let alice = issuer.token(claims(
        "alice",
        "reviews",
        600,
        json!({"groups": ["users"]}),
    ))?;
    // Without a token RequestAuthentication passes; the policy wants a
    // request principal.
    wait_for(&pair, None, 403).await?;
    assert_eq!(status(&pair, Some(&alice)).await, 200);

    // The verified claim reaches the app; the token itself does not.
    let received = pair.app().last_received().unwrap();
    assert_eq!(received.header("x-jwt-sub"), Some("alice"));
    assert_eq!(received.header("authorization"), None);
    // RS256 as well as ES256.
    let rs256 = issuer.token_rs256(claims("bob", "reviews", 600, json!({})))?;
    assert_eq!(status(&pair, Some(&rs256)).await, 200);

    let expired = issuer.token(claims("alice", "reviews", -600, json!({})))?;
    let wrong_audience = issuer.token(claims("alice", "ratings", 600, json!({})))?;
    let other_issuer = issuer.token(claims(
        "alice",
        "reviews",
        600,
        json!({"iss": "https://elsewhere.example.com"}),
    ))?;
    let forged = issuer.forged_token(claims("alice", "reviews", 600, json!({})))?;
    // A token for another audience is as invalid as the rest: 401, where
    // Envoy's filter alone (and so Istio) answers 403.
    for (what, token) in [
        ("expired", expired.as_str()),
        ("wrong audience", wrong_audience.as_str()),
        ("bad signature", forged.as_str()),
        ("another issuer", other_issuer.as_str()),
        ("not a JWT", "not.a.jwt"),
    ] {
        assert_eq!(status(&pair, Some(token)).await, 401, "{what}");
    }

    // Claims: admins only.
    pair.write_config(
        "jwt.yaml",
        &format!("{}---\n{ADMINS_ONLY}", issuer.request_authentication(&keys)),
    )
    .await?;
    let admin = issuer.token(claims(
        "root",
        "reviews",
        600,
        json!({"groups": ["ops", "admins"]}),
    ))?;
    wait_for(&pair, Some(&alice), 403).await?;
    assert_eq!(status(&pair, Some(&admin)).await, 200);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_fail_closed_until_fetched_follow_rotation_and_survive_the_issuer()
-> anyhow::Result<()> {
    let mut issuer = JwtIssuer::start().await?;
    // The issuer is down when Weft first needs its keys (discovery: no
    // jwksUri, no jwks).
    issuer.stop();
    let pair = SidecarPair::start(options(&issuer, "2s")).await?;
    pair.write_config("jwt.yaml", &issuer.request_authentication(""))
        .await?;
    let token = issuer.token(claims("alice", "reviews", 600, json!({})))?;
    // Fail closed: a token cannot be verified, so it is refused; no token
    // passes (no AuthorizationPolicy).
    wait_for(&pair, Some(&token), 401).await?;
    assert_eq!(status(&pair, None).await, 200);

    issuer.resume().await?;
    wait_for(&pair, Some(&token), 200).await?;

    // A rotated key is picked up within the refresh interval (2s); tokens
    // of the old key are then refused.
    issuer.rotate()?;
    let rotated = issuer.token(claims("alice", "reviews", 600, json!({})))?;
    wait_for(&pair, Some(&rotated), 200).await?;
    assert_eq!(status(&pair, Some(&token)).await, 401);

    // The issuer goes away: refreshes fail, the last good keys stay.
    issuer.stop();
    tokio::time::sleep(Duration::from_secs(6)).await;
    for _ in 0..5 {
        assert_eq!(status(&pair, Some(&rotated)).await, 200);
    }
    Ok(())
}

/// `--jwks-fetch-mode hybrid`: a `jwksUri` on a mesh service is fetched by
/// Envoy itself, through the service's outbound cluster; the control
/// plane, which could not even resolve the host, never asks for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_hybrid_mode_envoy_fetches_keys_from_a_mesh_service() -> anyhow::Result<()> {
    let issuer = JwtIssuer::start().await?;
    let pair = SidecarPair::start(SidecarOptions {
        weft_args: ["--jwks-fetch-mode".into(), "hybrid".into()].into(),
        ..Default::default()
    })
    .await?;
    let keys_service = format!(
        "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: keys, namespace: default}}
spec:
  hosts: [keys.example.com]
  location: MESH_EXTERNAL
  resolution: STATIC
  ports: [{{number: 80, name: http, protocol: HTTP, targetPort: {port}}}]
  endpoints: [{{address: 127.0.0.1}}]
---
",
        port = issuer.http_addr().port()
    );
    pair.write_config(
        "jwt.yaml",
        &format!(
            "{keys_service}{}---\n{ANY_END_USER}",
            issuer.request_authentication("jwksUri: http://keys.example.com/keys")
        ),
    )
    .await?;
    let token = issuer.token(claims("alice", "reviews", 600, json!({})))?;
    wait_for(&pair, None, 403).await?;
    wait_for(&pair, Some(&token), 200).await?;
    let (https, http) = issuer.key_requests();
    assert_eq!(https, 0, "the control plane fetched nothing");
    assert!(http > 0, "Envoy fetched the keys over the mesh cluster");
    Ok(())
}

/// An issuer whose address is in `--jwks-blocked-ranges` is never
/// connected to: its tokens are refused (no keys), and the reason is
/// logged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_on_a_blocked_address_are_never_fetched() -> anyhow::Result<()> {
    let issuer = JwtIssuer::start().await?;
    let mut options = options(&issuer, "20m");
    options
        .weft_args
        .extend(["--jwks-blocked-ranges".into(), "127.0.0.0/8,::1/128".into()]);
    let pair = SidecarPair::start(options).await?;
    let keys = format!("jwksUri: {}", issuer.jwks_uri());
    pair.write_config("jwt.yaml", &issuer.request_authentication(&keys))
        .await?;
    let token = issuer.token(claims("alice", "reviews", 600, json!({})))?;
    wait_until("weft to log the blocked address", APPLY_TIMEOUT, || async {
        pair.weft()
            .log_tail(200)
            .contains("resolves only to blocked addresses")
    })
    .await?;
    wait_for(&pair, Some(&token), 401).await?;
    assert_eq!(issuer.key_requests(), (0, 0), "nothing was fetched");
    Ok(())
}
