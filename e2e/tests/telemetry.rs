//! Istio's telemetry from two real sidecars ([`SidecarPair`]: sleep calls
//! reviews over mTLS), read with real backends: Debian's Prometheus
//! scrapes both sidecars' merged metrics (the agent's status port), access
//! logs land in files, and Jaeger v2 (built from the Go module proxy; it
//! takes Zipkin, which Envoy's Zipkin tracer speaks, and answers a query
//! API) receives the spans.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use weft_e2e::jaeger::{Jaeger, ZIPKIN_PROVIDER, mesh_tracing};
use weft_e2e::prometheus::{Prometheus, Sample, ScrapeTarget, samples_of};
use weft_e2e::sidecars::{CLIENT_ID, SERVER_ID, SidecarOptions, SidecarPair};
use weft_e2e::{APPLY_TIMEOUT, http_get, wait_until};

const SCRAPE_TIMEOUT: Duration = Duration::from_secs(60);

/// Prometheus scraping both sidecars' merged metrics.
async fn scrape(pair: &SidecarPair) -> anyhow::Result<Prometheus> {
    Prometheus::start(&[
        ScrapeTarget::new("sleep", pair.client().status_addr()).metrics_path("/stats/prometheus"),
        ScrapeTarget::new("reviews", pair.server().status_addr()).metrics_path("/stats/prometheus"),
    ])
    .await
}

/// `istio_requests_total` of `reporter` with `code`, summed, as the
/// sidecar reports it right now.
async fn requests_now(pair: &SidecarPair, reporter: &str, code: &str) -> anyhow::Result<f64> {
    let sidecar = match reporter {
        "source" => pair.client(),
        _ => pair.server(),
    };
    let page = http_get(sidecar.status_addr(), "metrics", "/stats/prometheus", &[]).await?;
    Ok(samples_of(&page.body, "istio_requests_total")
        .iter()
        .filter(|s| s.label("reporter") == Some(reporter) && s.label("response_code") == Some(code))
        .map(|s| s.value)
        .sum())
}

fn total(samples: &[Sample]) -> f64 {
    samples.iter().map(|s| s.value).sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_counts_every_request_from_both_reporters() -> anyhow::Result<()> {
    let pair = SidecarPair::start(SidecarOptions::default()).await?;
    let prometheus = scrape(&pair).await?;
    let before = [
        requests_now(&pair, "source", "200").await?,
        requests_now(&pair, "destination", "200").await?,
    ];
    for _ in 0..5 {
        assert_eq!(pair.call().await?.status, 200);
    }
    pair.app().fail_next(1);
    assert_eq!(pair.call().await?.status, 503);

    for (reporter, base) in ["source", "destination"].into_iter().zip(before) {
        let ok = format!(
            "istio_requests_total{{reporter=\"{reporter}\",response_code=\"200\",source_workload=\"sleep\",destination_service=\"reviews.default.svc.cluster.local\"}}"
        );
        prometheus
            .wait_for(&ok, SCRAPE_TIMEOUT, |s| total(s) == base + 5.0)
            .await?;
        let failed =
            format!("istio_requests_total{{reporter=\"{reporter}\",response_code=\"503\"}}");
        let samples = prometheus
            .wait_for(&failed, SCRAPE_TIMEOUT, |s| total(s) == 1.0)
            .await?;
        let s = &samples[0];
        assert_eq!(s.label("source_workload"), Some("sleep"), "{s:?}");
        assert_eq!(s.label("source_workload_namespace"), Some("default"));
        assert_eq!(s.label("source_principal"), Some(CLIENT_ID));
        assert_eq!(s.label("source_app"), Some("sleep"));
        assert_eq!(s.label("destination_principal"), Some(SERVER_ID));
        assert_eq!(s.label("destination_app"), Some("reviews"));
        assert_eq!(s.label("destination_version"), Some("v1"));
        assert_eq!(s.label("destination_service_name"), Some("reviews"));
        assert_eq!(s.label("destination_service_namespace"), Some("default"));
        assert_eq!(s.label("request_protocol"), Some("http"));
        assert_eq!(s.label("response_flags"), Some("-"));
    }
    // What only the server knows: its own workload, and that the caller
    // came over mutual TLS.
    let server = prometheus
        .query("istio_requests_total{reporter=\"destination\",response_code=\"503\"}")
        .await?;
    assert_eq!(server[0].label("destination_workload"), Some("reviews"));
    assert_eq!(
        server[0].label("connection_security_policy"),
        Some("mutual_tls")
    );

    // The duration histogram, with Istio's millisecond buckets.
    let buckets = prometheus
        .wait_for(
            "istio_request_duration_milliseconds_bucket{reporter=\"destination\",response_code=\"200\"}",
            SCRAPE_TIMEOUT,
            |s| s.iter().any(|b| b.label("le") == Some("+Inf") && b.value >= 5.0),
        )
        .await?;
    let bounds: Vec<&str> = buckets.iter().filter_map(|b| b.label("le")).collect();
    for le in ["1", "5", "10", "100", "1000", "+Inf"] {
        assert!(bounds.contains(&le), "no le={le} bucket in {bounds:?}");
    }
    // A config change replaces the server's listener; its counters go on.
    pair.set_mtls_mode("PERMISSIVE").await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(pair.call().await?.status, 200);
    wait_until("the server's count to go on", APPLY_TIMEOUT, || async {
        requests_now(&pair, "destination", "200")
            .await
            .is_ok_and(|n| n == before[1] + 6.0)
    })
    .await?;
    for series in ["istio_request_bytes_count", "istio_response_bytes_count"] {
        prometheus
            .wait_for(
                &format!("{series}{{reporter=\"source\"}}"),
                SCRAPE_TIMEOUT,
                |s| total(s) >= 6.0,
            )
            .await?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_telemetry_that_disables_a_metric_stops_its_series() -> anyhow::Result<()> {
    let pair = SidecarPair::start(SidecarOptions::default()).await?;
    pair.write_config(
        "telemetry.yaml",
        "apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: sleep-no-request-count, namespace: default}
spec:
  selector: {matchLabels: {app: sleep}}
  metrics:
  - providers: [{name: prometheus}]
    overrides:
    - match: {metric: REQUEST_COUNT, mode: CLIENT}
      disabled: true
",
    )
    .await?;
    // The listener is replaced; requests after that count on the server
    // only.
    let client_before = requests_now(&pair, "source", "200").await?;
    let server_before = requests_now(&pair, "destination", "200").await?;
    for _ in 0..3 {
        assert_eq!(pair.call().await?.status, 200);
    }
    wait_until("the server to count 3 more", APPLY_TIMEOUT, || async {
        requests_now(&pair, "destination", "200")
            .await
            .is_ok_and(|n| n == server_before + 3.0)
    })
    .await?;
    assert_eq!(requests_now(&pair, "source", "200").await?, client_before);
    // Other series of the client still grow.
    let page = http_get(pair.client().status_addr(), "m", "/stats/prometheus", &[]).await?;
    assert!(
        !samples_of(&page.body, "istio_request_duration_milliseconds_count").is_empty(),
        "the duration histogram is still reported"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_logs_are_json_lines_and_filters_keep_the_failures() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let all = dir.path().join("all.log");
    let failures = dir.path().join("failures.log");
    let mesh_config = format!(
        "accessLogFile: {}
accessLogEncoding: JSON
extensionProviders:
- name: failures
  envoyFileAccessLog: {{path: {}}}
",
        all.display(),
        failures.display()
    );
    let pair = SidecarPair::start(SidecarOptions {
        mesh_config: Some(mesh_config),
        ..SidecarOptions::default()
    })
    .await?;
    // Only the server logs: the client's logging is off.
    pair.write_config(
        "telemetry.yaml",
        "apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: sleep-no-logs, namespace: default}
spec:
  selector: {matchLabels: {app: sleep}}
  accessLogging: [{disabled: true}]
",
    )
    .await?;
    let lines = || {
        std::fs::read_to_string(&all)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("a JSON line"))
            .collect::<Vec<_>>()
    };
    // Envoy flushes log files every second; the client's listener
    // without logging replaces the old one within a push.
    let flush = Duration::from_millis(1500);
    tokio::time::sleep(2 * flush).await;
    let before = lines().len();
    for _ in 0..3 {
        assert_eq!(pair.call().await?.status, 200);
    }
    wait_until("3 more access log lines", APPLY_TIMEOUT, || async {
        lines().len() >= before + 3
    })
    .await?;
    tokio::time::sleep(flush).await;
    let new = lines().split_off(before);
    assert_eq!(new.len(), 3, "one JSON line per request: {new:?}");
    let line = new.last().unwrap().clone();
    assert_eq!(line["response_code"], 200, "{line}");
    assert_eq!(line["method"], "GET");
    assert_eq!(line["path"], "/");
    assert_eq!(line["authority"], "reviews.default.svc.cluster.local");
    let upstream_cluster = line["upstream_cluster"].as_str().unwrap_or_default();
    assert!(upstream_cluster.starts_with("inbound|"), "{line}");
    for field in [
        "start_time",
        "duration",
        "bytes_sent",
        "request_id",
        "downstream_remote_address",
    ] {
        assert!(line.get(field).is_some(), "no {field} in {line}");
    }

    // The server's failures only, with Telemetry's CEL filter.
    pair.write_config(
        "failures.yaml",
        "apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: reviews-failures, namespace: default}
spec:
  selector: {matchLabels: {app: reviews}}
  accessLogging:
  - providers: [{name: failures}]
    filter: {expression: response.code >= 400}
",
    )
    .await?;
    wait_until("the filtered log to be in place", APPLY_TIMEOUT, || async {
        pair.app().fail_next(1);
        let _ = pair.call().await;
        std::fs::read_to_string(&failures).is_ok_and(|t| !t.is_empty())
    })
    .await?;
    // Envoy flushes its log files in batches, in order: once the failure
    // sent after three successes is on disk, so would they be.
    for _ in 0..3 {
        assert_eq!(pair.call().await?.status, 200);
    }
    pair.app().fail_next(1);
    let last = pair.get_from(pair.client(), "/the-last-failure").await?;
    assert_eq!(last.status, 503);
    wait_until("the last failure logged", APPLY_TIMEOUT, || async {
        std::fs::read_to_string(&failures).is_ok_and(|t| t.contains("/the-last-failure"))
    })
    .await?;
    let text = std::fs::read_to_string(&failures)?;
    assert!(
        text.lines().all(|l| l.contains("\" 503 ")),
        "only failures are logged:\n{text}"
    );
    Ok(())
}

/// reviews' and sleep's spans under one trace id.
fn both_sidecars_in_one_trace(traces: &[weft_e2e::jaeger::Trace]) -> bool {
    traces.iter().any(|t| {
        t.spans_of("sleep.default").next().is_some()
            && t.spans_of("reviews.default").next().is_some()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_sidecars_report_spans_of_one_trace_to_jaeger() -> anyhow::Result<()> {
    let jaeger = Jaeger::start().await?;
    let zipkin = jaeger.zipkin_addr();
    let pair = SidecarPair::start(SidecarOptions {
        mesh_config: Some(ZIPKIN_PROVIDER.to_string()),
        ..SidecarOptions::default()
    })
    .await?;
    let sampling = |percent| mesh_tracing(zipkin, percent);
    pair.write_config("tracing.yaml", &sampling(100)).await?;
    let traces = wait_until_traced(&pair, &jaeger).await?;
    let trace = traces
        .iter()
        .find(|t| both_sidecars_in_one_trace(std::slice::from_ref(t)))
        .unwrap();
    let client = trace.spans_of("sleep.default").next().unwrap();
    assert_eq!(
        client
            .tags
            .get("istio.canonical_service")
            .map(String::as_str),
        Some("sleep")
    );

    // At 0% nothing more is sampled.
    pair.write_config("tracing.yaml", &sampling(0)).await?;
    // Spans of requests before the change may still be in flight.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let count = |traces: &[weft_e2e::jaeger::Trace]| traces.len();
    let before = count(&jaeger.traces("sleep.default").await?);
    for _ in 0..5 {
        assert_eq!(pair.call().await?.status, 200);
    }
    // Envoy's Zipkin tracer flushes every 5 s: wait past one flush.
    tokio::time::sleep(Duration::from_secs(8)).await;
    assert_eq!(count(&jaeger.traces("sleep.default").await?), before);
    Ok(())
}

/// Calls until Jaeger holds a trace with both sidecars' spans.
async fn wait_until_traced(
    pair: &SidecarPair,
    jaeger: &Jaeger,
) -> anyhow::Result<Vec<weft_e2e::jaeger::Trace>> {
    let deadline = tokio::time::Instant::now() + SCRAPE_TIMEOUT;
    loop {
        let _ = pair.call().await;
        let traces = jaeger.traces("sleep.default").await.unwrap_or_default();
        if both_sidecars_in_one_trace(&traces) {
            return Ok(traces);
        }
        if tokio::time::Instant::now() > deadline {
            anyhow::bail!(
                "no trace with both sidecars' spans; Jaeger's services: {:?}\n{}",
                jaeger.services().await,
                pair.logs()
            );
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}
