//! What `weft-demo` and `weft-demo-cluster` share: measuring the reviews
//! traffic split through Envoy against the configured weights, and reading
//! which route configuration Envoy holds.

use std::collections::BTreeMap;
use std::future::Future;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use serde_yaml::Value;

use serde_json::json;

use crate::client::{http_get, wait_for};
use crate::jwt_issuer::{JwtIssuer, claims};
use crate::mesh::{APPLY_TIMEOUT, Mesh};
use crate::prometheus::samples_of;
use crate::sidecars::{CLIENT_ID, SidecarOptions, SidecarPair, xfcc_values};

/// The host whose split the demos measure.
pub const REVIEWS_HOST: &str = "reviews.default.svc.cluster.local";
/// Requests per measured split.
pub const REQUESTS: usize = 300;
/// How far (percentage points) an observed share may be from its weight.
pub const TOLERANCE_POINTS: f64 = 8.0;

/// Runs a demo's `run` on a two-thread runtime and turns its outcome into
/// the exit status: 0 when it succeeds (printing `success`), 1 on an
/// error, 130 on Ctrl-C.
/// Every process `run` started is killed when its future is dropped, on
/// each of these ways out.
pub fn run_demo<F>(name: &str, success: &str, run: impl FnOnce() -> F) -> ExitCode
where
    F: Future<Output = Result<()>>,
{
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("{name}: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(async {
        tokio::select! {
            result = run() => Some(result),
            _ = tokio::signal::ctrl_c() => None,
        }
    });
    match outcome {
        Some(Ok(())) => {
            println!("\n{name}: OK, {success}.");
            ExitCode::SUCCESS
        }
        Some(Err(err)) => {
            eprintln!("\n{name}: FAILED: {err:#}");
            ExitCode::FAILURE
        }
        None => {
            eprintln!("\n{name}: interrupted; stopped everything it started.");
            ExitCode::from(130)
        }
    }
}

/// The ratings VirtualService routes `end-user: jason` to v2.
pub async fn show_ratings_header_match(mesh: &Mesh) -> Result<()> {
    let host = "ratings.default.svc.cluster.local";
    let (_, jason) = mesh.get(host, "/", &[("end-user", "jason")]).await?;
    let (_, anyone) = mesh.get(host, "/", &[]).await?;
    println!("\nratings: `end-user: jason` -> {jason}, anyone else -> {anyone}");
    Ok(())
}

/// Sends [`REQUESTS`] to reviews, prints the split next to `weights`, and
/// returns a message per subset that is off by more than the tolerance.
pub async fn measure(mesh: &Mesh, label: &str, weights: &[(String, u32)]) -> Result<Vec<String>> {
    let counts = mesh.sample(REVIEWS_HOST, "/", &[], REQUESTS).await?;
    let total_weight: u32 = weights.iter().map(|(_, w)| w).sum();
    println!("\nreviews, {REQUESTS} requests, {label}:");
    println!(
        "  {:<8} {:>10} {:>10} {:>7}",
        "subset", "configured", "observed", "count"
    );
    let mut failures = Vec::new();
    let mut keys: BTreeMap<&str, ()> = counts.keys().map(|k| (k.as_str(), ())).collect();
    for (subset, weight) in weights {
        keys.remove(subset.as_str());
        let want = 100.0 * f64::from(*weight) / f64::from(total_weight.max(1));
        let count = counts.get(subset).copied().unwrap_or(0);
        let got = 100.0 * count as f64 / REQUESTS as f64;
        let ok = (got - want).abs() <= TOLERANCE_POINTS;
        println!(
            "  {subset:<8} {want:>9.0}% {got:>9.1}% {count:>7} {}",
            if ok { "ok" } else { "OFF" }
        );
        if !ok {
            failures.push(format!(
                "{label}: {subset} got {got:.1}%, configured {want:.0}%"
            ));
        }
    }
    for other in keys.keys() {
        let count = counts.get(*other).copied().unwrap_or(0);
        println!(
            "  {other:<8} {:>10} {:>9.1}% {count:>7} OFF",
            "-",
            100.0 * count as f64 / REQUESTS as f64
        );
        failures.push(format!("{label}: {count} answers were {other:?}"));
    }
    Ok(failures)
}

/// The `version_info` of every route configuration and listener Envoy
/// holds (routes may be inline in a listener), sorted: it changes when Envoy
/// accepts new routes from weft.
pub async fn route_versions(mesh: &Mesh) -> Result<Vec<String>> {
    let mut versions = Vec::new();
    for resource in ["dynamic_route_configs", "dynamic_listeners"] {
        let path = format!("/config_dump?resource={resource}");
        let reply = mesh.admin_get(&path).await?;
        match reply.status {
            200 => {}
            // Envoy answers 404 when it holds no resource of that kind.
            404 => continue,
            status => bail!("Envoy's {path} answered {status}"),
        }
        // JSON is YAML: no JSON parser needed.
        let dump: Value =
            serde_yaml::from_str(&reply.body).with_context(|| format!("parsing {path}"))?;
        collect_versions(&dump, &mut versions);
    }
    versions.sort();
    Ok(versions)
}

fn collect_versions(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Mapping(map) => {
            for (k, v) in map {
                if k.as_str() == Some("version_info") {
                    if let Some(s) = v.as_str() {
                        out.push(s.to_string());
                    }
                } else {
                    collect_versions(v, out);
                }
            }
        }
        Value::Sequence(seq) => seq.iter().for_each(|v| collect_versions(v, out)),
        _ => {}
    }
}

pub fn describe(weights: &[(String, u32)]) -> String {
    weights
        .iter()
        .map(|(s, w)| format!("{s} {w}%"))
        .collect::<Vec<_>>()
        .join(" / ")
}

/// Two sidecars with identities from Weft's CA ([`SidecarPair`]): prints
/// the peer identity the server saw over mTLS, and that STRICT refuses a
/// caller without a sidecar. Fails if either does not hold.
pub async fn show_mtls_between_sidecars() -> Result<()> {
    println!(
        "\nmTLS between sidecars: weft standalone with its CA; `weft agent` runs each Envoy\n  with a certificate for its service account (sleep calls reviews, PeerAuthentication STRICT)"
    );
    // The end users' token issuer, for show_end_user_authentication: its
    // keys are served over HTTPS with a CA of its own, which weft trusts.
    let issuer = JwtIssuer::start().await?;
    let pair = SidecarPair::start(SidecarOptions {
        weft_args: vec!["--jwks-ca-bundle".into(), issuer.ca_pem_path().into()],
        ..Default::default()
    })
    .await?;
    let reply = pair.call().await?;
    let xfcc = pair
        .last_client_cert_header()
        .context("the server's sidecar passed no x-forwarded-client-cert")?;
    let peer = xfcc_values(&xfcc, "URI").join(", ");
    println!("  sleep -> reviews: {} {:?}", reply.status, reply.body);
    println!("  x-forwarded-client-cert at reviews: {xfcc}");
    println!("  peer identity the server saw: {peer}");
    if reply.status != 200 || peer != CLIENT_ID {
        bail!("expected 200 from reviews with peer {CLIENT_ID}");
    }
    match pair.call_without_sidecar().await {
        Err(_) => println!("  a caller without a sidecar (plain text): refused under STRICT"),
        Ok(r) => bail!("STRICT served a plain-text caller: {}", r.status),
    }
    show_policies(&pair, &issuer).await
}

/// The AuthorizationPolicy of `examples/authorization-policy.yaml` and the
/// Quota of `examples/quota.yaml`, applied to the pair's workloads (a
/// `sleep-v3` client plays reviews v3, the server plays ratings): prints
/// who is refused and when the quota answers 429.
async fn show_policies(pair: &SidecarPair, issuer: &JwtIssuer) -> Result<()> {
    let v3 = pair
        .start_client("sleep-v3", "app=sleep,version=v3")
        .await?;
    println!(
        "\nAuthorizationPolicy (as examples/authorization-policy.yaml): DENY calls from sleep-v3 to reviews"
    );
    pair.write_config("authorization.yaml", DEMO_AUTHORIZATION)
        .await?;
    let denied = wait_for(
        "the policy to reach the server's Envoy",
        APPLY_TIMEOUT,
        || async { pair.call_from(&v3).await.ok().filter(|r| r.status == 403) },
    )
    .await?;
    let allowed = pair.call().await?;
    println!("  sleep-v3 -> reviews: {} {:?}", denied.status, denied.body);
    println!(
        "  sleep    -> reviews: {} {:?}",
        allowed.status, allowed.body
    );
    if allowed.status != 200 {
        bail!("sleep was refused too: {}", allowed.status);
    }
    show_end_user_authentication(pair, issuer).await?;

    println!(
        "\nQuota (the kind of examples/quota.yaml, here scope Local): 5 calls per 10 s to reviews"
    );
    pair.write_config("quota.yaml", DEMO_QUOTA).await?;
    wait_for(
        "the quota to reach the server's Envoy",
        APPLY_TIMEOUT,
        || async {
            let dump = pair.server().config_dump().await.ok()?;
            dump.contains("quota_default_reviews").then_some(())
        },
    )
    .await?;
    // Connections opened before drain from the old listener in 1 s.
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    let mut statuses = Vec::new();
    let mut refused = None;
    for _ in 0..8 {
        let reply = pair.call().await?;
        statuses.push(reply.status);
        if reply.status == 429 && refused.is_none() {
            refused = Some(reply);
        }
    }
    println!("  8 calls from sleep: {statuses:?}");
    let refused = refused.context("no call was refused with 429")?;
    for name in [
        "x-ratelimit-limit",
        "x-ratelimit-remaining",
        "x-ratelimit-reset",
    ] {
        println!("  {name}: {}", refused.header(name).unwrap_or("-"));
    }
    show_request_metrics(pair).await
}

/// README's JWT example, applied to reviews with the demo's `issuer`
/// (Weft finds its keys by OpenID discovery and inlines them into the
/// server's Envoy): prints what requests with and without tokens get, then
/// takes the policies away again.
async fn show_end_user_authentication(pair: &SidecarPair, issuer: &JwtIssuer) -> Result<()> {
    println!(
        "\nRequestAuthentication + AuthorizationPolicy (README's JWT example): reviews takes\n  tokens of {} (keys by OpenID discovery), from users in group admins",
        issuer.url()
    );
    pair.write_config("jwt.yaml", &demo_jwt_policies(issuer))
        .await?;
    let token = |sub: &str, groups: &[&str], expires_in: i64| {
        issuer.token(claims(
            sub,
            "reviews",
            expires_in,
            json!({ "groups": groups }),
        ))
    };
    let root = format!("Bearer {}", token("root", &["admins"], 600)?);
    let alice = format!("Bearer {}", token("alice", &["dev"], 600)?);
    let expired = format!("Bearer {}", token("root", &["admins"], -600)?);
    let client = pair.client();
    pair.wait_for_status(client, "/", &[("authorization", root.as_str())], 200)
        .await?;
    let mut seen = Vec::new();
    for (who, bearer) in [
        ("no token", None),
        ("root (groups: admins)", Some(&root)),
        ("alice (groups: dev)", Some(&alice)),
        ("an expired token", Some(&expired)),
        ("not a JWT", Some(&"Bearer not.a.jwt".to_string())),
    ] {
        let headers: Vec<(&str, &str)> = bearer
            .map(|b| ("authorization", b.as_str()))
            .into_iter()
            .collect();
        let reply = pair.get_from_with(client, "/", &headers).await?;
        println!("  {who:<22} -> {} {:?}", reply.status, reply.body);
        seen.push(reply.status);
    }
    let subject = pair
        .app()
        .last_received()
        .and_then(|r| r.header("x-jwt-sub").map(str::to_string));
    println!(
        "  x-jwt-sub at reviews (outputClaimToHeaders): {}",
        subject.as_deref().unwrap_or("-")
    );
    if seen != [403, 200, 403, 401, 401] {
        bail!("expected 403, 200, 403, 401, 401; got {seen:?}");
    }
    pair.write_config("jwt.yaml", "").await?;
    pair.wait_for_status(client, "/", &[], 200).await
}

/// README's JWT example: reviews admits `issuer`'s tokens of users in
/// group `admins`.
fn demo_jwt_policies(issuer: &JwtIssuer) -> String {
    format!(
        "{}---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {{name: reviews-admins, namespace: default}}
spec:
  selector: {{matchLabels: {{app: reviews}}}}
  rules:
  - from: [{{source: {{requestPrincipals: ['{}/*']}}}}]
    when: [{{key: 'request.auth.claims[groups]', values: [admins]}}]
",
        issuer.request_authentication(""),
        issuer.url()
    )
}

/// Istio's request metrics for the calls above, as both sidecars' agents
/// serve them to Prometheus (status port, `/stats/prometheus`): a few
/// labels of each `istio_requests_total` series, Prometheus-style.
async fn show_request_metrics(pair: &SidecarPair) -> Result<()> {
    const SHOWN: [&str; 6] = [
        "reporter",
        "source_workload",
        "destination_workload",
        "destination_service",
        "response_code",
        "connection_security_policy",
    ];
    println!(
        "
Istio's metrics (each agent's :15020/stats/prometheus), istio_requests_total:"
    );
    let mut shown = 0;
    for sidecar in [pair.client(), pair.server()] {
        let page = http_get(sidecar.status_addr(), "metrics", "/stats/prometheus", &[]).await?;
        for sample in samples_of(&page.body, "istio_requests_total") {
            let labels: Vec<String> = SHOWN
                .iter()
                .filter_map(|name| Some(format!("{name}=\"{}\"", sample.label(name)?)))
                .collect();
            println!(
                "  istio_requests_total{{{}}} {}",
                labels.join(","),
                sample.value
            );
            shown += 1;
        }
    }
    if shown == 0 {
        bail!("the sidecars report no istio_requests_total");
    }
    Ok(())
}

/// `examples/authorization-policy.yaml`'s rule on the demo's workloads.
const DEMO_AUTHORIZATION: &str = "apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: reviews-not-from-sleep-v3, namespace: default}
spec:
  selector: {matchLabels: {app: reviews}}
  action: DENY
  rules:
  - from:
    - source: {principals: [cluster.local/ns/default/sa/sleep-v3]}
";

/// `examples/quota.yaml`'s shape on the demo's server, counted locally.
const DEMO_QUOTA: &str = "apiVersion: policy.weft.dev/v1alpha1
kind: Quota
metadata: {name: reviews, namespace: default}
spec:
  destination: {host: reviews}
  maxAmount: 5
  validDuration: 10s
  scope: Local
";
