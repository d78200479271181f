//! The telemetry fixtures on their own, each with its real process and a
//! tiny in-test peer: Prometheus scrapes a fixed metrics page, Jaeger
//! stores a span posted to its Zipkin receiver, and fortio sends an exact
//! number of requests. The mesh's telemetry tests build on these.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::thread;
use std::time::Duration;

use weft_e2e::prometheus::samples_of;
use weft_e2e::{Jaeger, LoadSpec, Prometheus, ScrapeTarget, Upstream, ZipkinSpan, run_load};

/// How long a scrape or a span may take to show.
const SHOW_TIMEOUT: Duration = Duration::from_secs(30);

/// What the in-test metrics server serves.
const METRICS: &str = "# HELP weft_test_requests_total Requests.\n\
# TYPE weft_test_requests_total counter\n\
weft_test_requests_total{code=\"200\",route=\"a \\\"b\\\"\"} 42\n\
weft_test_requests_total{code=\"503\",route=\"c\"} 3\n";

/// Serves `body` as a Prometheus metrics page at every path, one request
/// per connection, on a port the kernel picks; runs until the test ends.
fn serve_metrics(body: &'static str) -> SocketAddr {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let addr = listener.local_addr().unwrap();
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            // Read the request head up to its blank line.
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 0) && line != "\r\n" {
                line.clear();
            }
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\n\
                 Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    addr
}

#[tokio::test]
async fn prometheus_scrapes_a_target_and_answers_promql() {
    // The page the server serves parses as Prometheus will read it.
    assert_eq!(samples_of(METRICS, "weft_test_requests_total").len(), 2);

    let addr = serve_metrics(METRICS);
    let target = ScrapeTarget::new("fixed", addr)
        .metrics_path("/stats/prometheus")
        .label("pod", "reviews-v1");
    let prometheus = Prometheus::start(&[target]).await.unwrap();

    let samples = prometheus
        .wait_for(
            r#"weft_test_requests_total{code="200"}"#,
            SHOW_TIMEOUT,
            |samples| !samples.is_empty(),
        )
        .await
        .unwrap();
    assert_eq!(samples.len(), 1, "{samples:?}");
    let sample = &samples[0];
    assert_eq!(sample.value, 42.0);
    assert_eq!(sample.label("pod"), Some("reviews-v1"), "{sample:?}");
    assert_eq!(sample.label("job"), Some("fixed"));
    assert_eq!(sample.label("route"), Some("a \"b\""));
    assert_eq!(sample.label("instance"), Some(addr.to_string().as_str()));

    let total = prometheus
        .query("sum(weft_test_requests_total)")
        .await
        .unwrap();
    assert_eq!(total.len(), 1, "{total:?}");
    assert_eq!(total[0].value, 45.0);
    let up = prometheus.query(r#"up{job="fixed"}"#).await.unwrap();
    assert_eq!(up.first().map(|s| s.value), Some(1.0), "{up:?}");
    assert!(
        prometheus.target_health().await.unwrap().contains(" up"),
        "{}",
        prometheus.target_health().await.unwrap()
    );
}

#[tokio::test]
async fn prometheus_wait_for_names_the_targets_health() {
    // Nothing listens on this port: the target is down.
    let closed = SocketAddr::from((Ipv4Addr::LOCALHOST, weft_e2e::free_port().unwrap()));
    let prometheus = Prometheus::start(&[ScrapeTarget::new("gone", closed)])
        .await
        .unwrap();
    let err = prometheus
        .wait_for("weft_test_requests_total", Duration::from_secs(3), |s| {
            !s.is_empty()
        })
        .await
        .unwrap_err();
    let text = format!("{err:#}");
    assert!(text.contains("the last answer was empty"), "{text}");
    assert!(
        text.contains(&format!("gone http://{closed}/metrics down")),
        "{text}"
    );
}

#[tokio::test]
async fn jaeger_stores_a_span_sent_to_its_zipkin_receiver() {
    let jaeger = Jaeger::start().await.unwrap();
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let span = ZipkinSpan::new(
        trace_id,
        "00f067aa0ba902b7",
        "reviews.default",
        "GET /reviews",
    )
    .tag("http.status_code", "200")
    .tag("istio.mesh_id", "weft");
    jaeger.post_zipkin_span(&span).await.unwrap();

    let traces = jaeger
        .wait_for_traces("reviews.default", SHOW_TIMEOUT, |traces| {
            traces.iter().any(|t| t.trace_id == trace_id)
        })
        .await
        .unwrap();
    let trace = traces.iter().find(|t| t.trace_id == trace_id).unwrap();
    assert_eq!(trace.spans.len(), 1, "{trace:?}");
    let span = &trace.spans[0];
    assert_eq!(span.span_id, "00f067aa0ba902b7");
    assert_eq!(span.service, "reviews.default");
    assert_eq!(span.operation, "GET /reviews");
    assert_eq!(
        span.tags.get("istio.mesh_id").map(String::as_str),
        Some("weft"),
        "{span:?}"
    );
    let services = jaeger.services().await.unwrap();
    assert!(
        services.contains(&"reviews.default".to_string()),
        "{services:?}"
    );
    assert!(jaeger.traces("ratings.default").await.unwrap().is_empty());
}

#[tokio::test]
async fn fortio_sends_exactly_the_requests_asked_for() {
    let upstream = Upstream::start("fortio-target", Ipv4Addr::LOCALHOST.into())
        .await
        .unwrap();
    let spec = LoadSpec::new(format!("http://{}/load", upstream.addr()))
        .calls(50)
        .connections(2)
        .header("x-test", "fortio");
    let result = run_load(&spec).await.unwrap();

    assert_eq!(result.count, 50, "{result:?}");
    assert_eq!(result.code_count(200), 50, "{result:?}");
    assert_eq!(result.ret_codes.len(), 1, "{result:?}");
    assert!(result.actual_qps > 0.0, "{result:?}");
    assert!(
        0.0 < result.p50_ms && result.p50_ms <= result.p90_ms && result.p90_ms <= result.p99_ms,
        "{result:?}"
    );
    assert_eq!(upstream.requests(), 50);
    let received = upstream.last_received().unwrap();
    assert_eq!(received.path, "/load");
    assert_eq!(received.header("x-test"), Some("fortio"));
}
