//! AuthorizationPolicy between real sidecars ([`SidecarPair`]: the server
//! workload `reviews`, clients with their own mTLS identities): Envoy's
//! RBAC filter on the server's inbound listener answers 403 where the
//! policy says, and serves everyone else.
//!
//! The seeds' example ("reviews v3 may not call ratings") is played by the
//! fixture's workloads: client `sleep-v3` (labels `version: v3`) calls the
//! server, as `reviews` v3 calls `ratings`; `sleep-2` (v2) is served.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use weft_e2e::sidecars::{SidecarOptions, SidecarPair};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_denied_principal_gets_403_and_the_others_are_served() -> anyhow::Result<()> {
    let pair = SidecarPair::start(SidecarOptions::default()).await?;
    let v3 = pair
        .start_client("sleep-v3", "app=sleep,version=v3")
        .await?;
    let v2 = pair.start_client("sleep-2", "app=sleep,version=v2").await?;
    assert_eq!(pair.call_from(&v3).await?.status, 200);

    pair.write_config(
        "authorization.yaml",
        "apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: no-v3, namespace: default}
spec:
  selector: {matchLabels: {app: reviews}}
  action: DENY
  rules:
  - from:
    - source: {principals: [cluster.local/ns/default/sa/sleep-v3]}
",
    )
    .await?;
    pair.wait_for_status(&v3, "/", &[], 403).await?;
    let refused = pair.call_from(&v3).await?;
    assert_eq!(refused.body, "RBAC: access denied");
    assert_eq!(pair.call_from(&v2).await?.status, 200);
    assert_eq!(pair.call().await?.status, 200);

    // Removing the policy serves v3 again.
    pair.write_config("authorization.yaml", "").await?;
    pair.wait_for_status(&v3, "/", &[], 200).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_admin_from_ns2_is_denied_and_other_paths_and_callers_are_not() -> anyhow::Result<()> {
    let pair = SidecarPair::start(SidecarOptions::default()).await?;
    let ns2 = pair.start_client_in("ns2", "sleep", "app=sleep").await?;
    pair.write_config(
        "authorization.yaml",
        "apiVersion: security.istio.io/v1beta1
kind: AuthorizationPolicy
metadata: {name: admin, namespace: default}
spec:
  action: DENY
  rules:
  - from:
    - source: {namespaces: [ns2]}
    to:
    - operation: {methods: [GET], paths: [/admin]}
",
    )
    .await?;
    pair.wait_for_status(&ns2, "/admin", &[], 403).await?;
    assert_eq!(pair.get_from(&ns2, "/").await?.status, 200);
    assert_eq!(pair.get_from(&ns2, "/other").await?.status, 200);
    assert_eq!(pair.get_from(pair.client(), "/admin").await?.status, 200);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_allow_policy_that_matches_nothing_denies_everyone() -> anyhow::Result<()> {
    let pair = SidecarPair::start(SidecarOptions::default()).await?;
    pair.write_config(
        "authorization.yaml",
        "apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: only-nobody, namespace: default}
spec:
  selector: {matchLabels: {app: reviews}}
  rules:
  - from:
    - source: {principals: [cluster.local/ns/nowhere/sa/nobody]}
",
    )
    .await?;
    pair.wait_for_status(pair.client(), "/", &[], 403).await?;

    // Allowing sleep by principal lets it (and only it) through.
    pair.write_config(
        "authorization.yaml",
        "apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: only-sleep, namespace: default}
spec:
  selector: {matchLabels: {app: reviews}}
  rules:
  - from:
    - source: {principals: [cluster.local/ns/default/sa/sleep]}
",
    )
    .await?;
    pair.wait_for_status(pair.client(), "/", &[], 200).await?;
    let other = pair.start_client("sleep-2", "app=sleep,version=v2").await?;
    assert_eq!(pair.call_from(&other).await?.status, 403);
    Ok(())
}
