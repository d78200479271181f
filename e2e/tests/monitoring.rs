//! The monitoring endpoint of `weft standalone` (`--monitoring-address`,
//! Istio's 15014) with a real Envoy connected: health, readiness, and the
//! metrics an operator watches (connected proxies, pushes, config errors,
//! NACKs), read as Prometheus would read them.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use anyhow::{Context, bail};
use weft_e2e::yaml::{NACKED_VS, fqdn, mk_service, mk_weighted_virtual_service};
use weft_e2e::{APPLY_TIMEOUT, Mesh, start_upstreams, wait_for};

use weft_e2e::mesh::REVIEWS_VS_FILE as VS_FILE;

/// How long a file change may take to show in the metrics.
const METRICS_TIMEOUT: Duration = Duration::from_secs(30);

/// The value of the sample `series` (name and labels exactly as written,
/// e.g. `pilot_xds{protocol="sotw"}`) in an OpenMetrics text; `None` when
/// it is absent (a family with no samples yet is not written).
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

/// Fetches `/metrics`, checking the status and content type.
async fn metrics(mesh: &Mesh) -> anyhow::Result<String> {
    let reply = mesh.weft().monitoring_get("/metrics").await?;
    if reply.status != 200 {
        bail!("/metrics answered {}: {}", reply.status, reply.body);
    }
    let content_type = reply.header("content-type").unwrap_or_default();
    if !content_type.starts_with("application/openmetrics-text") {
        bail!("/metrics content type {content_type:?}");
    }
    Ok(reply.body)
}

/// Polls `/metrics` until `series` is at least `min`; returns the text.
async fn wait_for_sample(mesh: &Mesh, series: &str, min: f64) -> anyhow::Result<String> {
    let last = std::cell::RefCell::new(String::new());
    let what = format!("{series} >= {min} in /metrics");
    wait_for(&what, METRICS_TIMEOUT, || {
        let last = &last;
        async move {
            let text = metrics(mesh).await.ok()?;
            let found = sample(&text, series).is_some_and(|v| v >= min);
            *last.borrow_mut() = text.clone();
            found.then_some(text)
        }
    })
    .await
    .with_context(|| {
        format!(
            "last /metrics:\n{}\nweft's output ends with:\n{}",
            last.borrow(),
            mesh.weft().log_tail(30)
        )
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_readiness_and_xds_metrics_with_a_connected_envoy() -> anyhow::Result<()> {
    let ups = start_upstreams(90, &["v1", "v2"]).await?;
    let mesh = Mesh::builder().reviews_all_to_v1(&ups).start().await?;
    let host = fqdn("reviews", "default");
    mesh.wait_for_body(&host, "/", &[], "v1", APPLY_TIMEOUT)
        .await?;

    let healthz = mesh.weft().monitoring_get("/healthz").await?;
    assert_eq!(healthz.status, 200, "/healthz: {}", healthz.body);
    let readyz = mesh.weft().monitoring_get("/readyz").await?;
    assert_eq!(readyz.status, 200, "/readyz: {}", readyz.body);

    let text = metrics(&mesh).await?;
    assert_eq!(
        sample(&text, "pilot_xds{protocol=\"sotw\"}"),
        Some(1.0),
        "one connected proxy:\n{text}"
    );
    for kind in ["cds", "lds"] {
        let series = format!("pilot_xds_pushes_total{{type=\"{kind}\"}}");
        assert!(
            sample(&text, &series).is_some_and(|v| v > 0.0),
            "{series} > 0:\n{text}"
        );
    }
    assert!(
        sample(&text, "pilot_xds_push_time_count{type=\"cds\"}").is_some_and(|v| v > 0.0),
        "push times are recorded:\n{text}"
    );
    assert!(
        sample(&text, "weft_config_applies_total{changed=\"true\"}").is_some_and(|v| v >= 1.0),
        "the first apply is counted:\n{text}"
    );
    assert_eq!(
        sample(&text, "weft_config_kept_last_good"),
        Some(0.0),
        "{text}"
    );

    // Weights summing to 150: a config error, and the last good version kept.
    let errors = "weft_config_errors_total{kind=\"VirtualService\",reason=\"invalid\"}";
    let before = sample(&text, errors).unwrap_or(0.0);
    mesh.write_config(
        VS_FILE,
        &mk_weighted_virtual_service("reviews", "default", &[("v1", 100), ("v2", 50)]),
    )?;
    let text = wait_for_sample(&mesh, errors, before + 1.0).await?;
    assert_eq!(
        sample(&text, "weft_config_kept_last_good"),
        Some(1.0),
        "the VirtualService is served at its last good version:\n{text}"
    );
    assert!(
        !text.contains(VS_FILE) && !text.contains("sum to"),
        "no file names or messages as labels:\n{text}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_envoy_nack_increments_the_rds_rejects() -> anyhow::Result<()> {
    let ups = start_upstreams(91, &["v1", "v2"]).await?;
    let mesh = Mesh::builder().reviews_all_to_v1(&ups).start().await?;
    let host = fqdn("reviews", "default");
    mesh.wait_for_body(&host, "/", &[], "v1", APPLY_TIMEOUT)
        .await?;
    let rejects = "pilot_total_xds_rejects_total{type=\"rds\"}";
    let text = metrics(&mesh).await?;
    let before = sample(&text, rejects).unwrap_or(0.0);
    assert_eq!(before, 0.0, "no NACK yet:\n{text}");

    mesh.write_config(VS_FILE, NACKED_VS)?;
    let text = wait_for_sample(&mesh, rejects, 1.0).await?;
    assert!(
        !text.contains("repetition"),
        "Envoy's error text is not a label:\n{text}"
    );
    assert_eq!(
        sample(&text, "pilot_total_xds_rejects_total{type=\"cds\"}").unwrap_or(0.0),
        0.0,
        "only RDS was rejected:\n{text}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delta_envoy_counts_as_a_delta_connection() -> anyhow::Result<()> {
    let ups = start_upstreams(92, &["v1"]).await?;
    let mesh = Mesh::builder()
        .file("reviews.yaml", mk_service("reviews", "default", &ups))
        .delta()
        .start()
        .await?;
    let host = fqdn("reviews", "default");
    mesh.wait_for_body(&host, "/", &[], "v1", APPLY_TIMEOUT)
        .await?;
    let text = metrics(&mesh).await?;
    assert_eq!(
        sample(&text, "pilot_xds{protocol=\"delta\"}"),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, "pilot_xds{protocol=\"sotw\"}"),
        Some(0.0),
        "{text}"
    );
    for kind in ["cds", "eds", "lds", "rds"] {
        let series = format!("pilot_xds_pushes_total{{type=\"{kind}\"}}");
        assert!(
            sample(&text, &series).is_some_and(|v| v > 0.0),
            "{series} > 0:\n{text}"
        );
    }
    Ok(())
}

#[test]
fn samples_are_read_by_exact_series() {
    let text = "# TYPE pilot_xds gauge\npilot_xds{protocol=\"sotw\"} 2\npilot_xds{protocol=\"delta\"} 0\n# EOF\n";
    assert_eq!(sample(text, "pilot_xds{protocol=\"sotw\"}"), Some(2.0));
    assert_eq!(sample(text, "pilot_xds{protocol=\"delta\"}"), Some(0.0));
    assert_eq!(sample(text, "pilot_xds"), None);
}
