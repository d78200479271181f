//! Every HTTP feature of Istio's VirtualService that Weft translates,
//! proven through a real Envoy configured by a spawned `weft standalone`:
//! matches, fault injection, mirroring, redirects, rewrites, direct
//! responses and CORS (header rules, source conditions, exportTo,
//! delegation, merging and retries are in `http_headers_and_merging.rs`).
//! One test per feature group; each has its own upstream block (20..=39)
//! and ports, so they run in parallel.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::Request;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use weft_e2e::yaml::{mk_reviews_virtual_service, mk_service};
use weft_e2e::{APPLY_TIMEOUT, Mesh, Reply, start_upstreams, wait_for};

const HOST: &str = "reviews.default.svc.cluster.local";

/// One request with any method, through a fresh connection.
async fn send(
    addr: SocketAddr,
    method: &str,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Result<Reply> {
    let work = async {
        let stream = TcpStream::connect(addr).await?;
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        let driver = tokio::spawn(connection);
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header(hyper::header::HOST, host);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = sender
            .send_request(request.body(Empty::<Bytes>::new())?)
            .await?;
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        let body = response.into_body().collect().await?.to_bytes();
        driver.abort();
        anyhow::Ok(Reply {
            status,
            body: String::from_utf8_lossy(&body).into_owned(),
            headers,
        })
    };
    tokio::time::timeout(Duration::from_secs(10), work)
        .await
        .context("request timed out")?
        .with_context(|| format!("{method} http://{host}{path} via {addr}"))
}

/// Waits until `GET path` answers `status` (config has arrived).
async fn wait_status(mesh: &Mesh, path: &str, headers: &[(&str, &str)], status: u16) -> Result<()> {
    let what = format!("GET {path} to answer {status}");
    wait_for(&what, APPLY_TIMEOUT, || async {
        matches!(mesh.request(HOST, path, headers).await, Ok(r) if r.status == status).then_some(())
    })
    .await
    .with_context(|| format!("weft's output ends with:\n{}", mesh.weft().log_tail(30)))
}

async fn body_of(
    mesh: &Mesh,
    method: &str,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> String {
    match send(mesh.router_addr(), method, host, path, headers).await {
        Ok(r) if r.status == 200 => r.body,
        Ok(r) => format!("status {}", r.status),
        Err(e) => format!("error {e:#}"),
    }
}

const MATCH_RULES: &str = "  - match: [{uri: {prefix: /m}, method: {exact: POST}}]
    route: [{destination: {host: reviews, subset: method}}]
  - match: [{uri: {prefix: /h}, headers: {x-user: {regex: 'j.*'}}}]
    route: [{destination: {host: reviews, subset: header}}]
  - match: [{uri: {prefix: /a}, authority: {exact: 'reviews.default:9080'}}]
    route: [{destination: {host: reviews, subset: authority}}]
  - match:
    - uri: {prefix: /q}
      queryParams: {flag: {exact: 'on'}, id: {regex: '[0-9]+'}}
    - uri: {prefix: /q}
      queryParams: {tag: {prefix: ab}}
    route: [{destination: {host: reviews, subset: query}}]
  - match: [{uri: {prefix: /w}, withoutHeaders: {x-block: {}}}]
    route: [{destination: {host: reviews, subset: without}}]
  - match: [{uri: {prefix: /t}, scheme: {exact: https}}]
    route: [{destination: {host: reviews, subset: scheme}}]
  - match: [{uri: {prefix: /s}, scheme: {exact: http}}]
    route: [{destination: {host: reviews, subset: scheme}}]
  - match: [{uri: {exact: /CaSe}, ignoreUriCase: true}]
    route: [{destination: {host: reviews, subset: nocase}}]
  - match: [{uri: {prefix: /p}, port: 9080}]
    route: [{destination: {host: reviews, subset: port}}]
  - route: [{destination: {host: reviews, subset: default}}]
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn matches_route_as_written() -> Result<()> {
    let ids = [
        "default",
        "method",
        "header",
        "authority",
        "query",
        "without",
        "scheme",
        "nocase",
        "port",
    ];
    let ups = start_upstreams(20, &ids).await?;
    let mesh = Mesh::builder()
        .file("reviews.yaml", mk_service("reviews", "default", &ups))
        .file(
            "vs.yaml",
            mk_reviews_virtual_service("reviews", MATCH_RULES),
        )
        .start()
        .await?;
    mesh.wait_for_body(HOST, "/m", &[], "default", APPLY_TIMEOUT)
        .await?;
    let short = "reviews.default:9080";
    // (method, Host, path, headers, the upstream that must answer)
    type Case<'a> = (&'a str, &'a str, &'a str, &'a [(&'a str, &'a str)], &'a str);
    let cases: &[Case] = &[
        ("POST", HOST, "/m", &[], "method"),
        ("GET", HOST, "/m", &[], "default"),
        ("GET", HOST, "/h", &[("x-user", "jason")], "header"),
        ("GET", HOST, "/h", &[("x-user", "bob")], "default"),
        ("GET", short, "/a", &[], "authority"),
        ("GET", HOST, "/a", &[], "default"),
        ("GET", HOST, "/q?flag=on&id=42", &[], "query"),
        ("GET", HOST, "/q?flag=on&id=x4", &[], "default"),
        ("GET", HOST, "/q?id=42", &[], "default"),
        ("GET", HOST, "/q?tag=abc", &[], "query"),
        ("GET", HOST, "/q?tag=xab", &[], "default"),
        ("GET", HOST, "/w", &[], "without"),
        ("GET", HOST, "/w", &[("x-block", "1")], "default"),
        ("GET", HOST, "/s", &[], "scheme"),
        ("GET", HOST, "/t", &[], "default"),
        ("GET", HOST, "/case", &[], "nocase"),
        ("GET", HOST, "/CASE", &[], "nocase"),
        ("GET", HOST, "/cases", &[], "default"),
        ("GET", HOST, "/p", &[], "port"),
    ];
    let mut wrong = Vec::new();
    for (method, host, path, headers, want) in cases {
        let got = body_of(&mesh, method, host, path, headers).await;
        if got != *want {
            wrong.push(format!(
                "{method} {host}{path} {headers:?}: got {got}, want {want}"
            ));
        }
    }
    assert!(wrong.is_empty(), "misrouted:\n{}", wrong.join("\n"));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_abort_and_delay_are_injected() -> Result<()> {
    let ups = start_upstreams(21, &["v1"]).await?;
    let rules = "  - match: [{uri: {prefix: /abort}}]
    fault: {abort: {httpStatus: 418, percentage: {value: 50}}}
    route: [{destination: {host: reviews, subset: v1}}]
  - match: [{uri: {prefix: /delay}}]
    fault: {delay: {fixedDelay: 1s, percentage: {value: 100}}}
    route: [{destination: {host: reviews, subset: v1}}]
  - match: [{uri: {prefix: /grpc}}]
    fault: {abort: {grpcStatus: UNAVAILABLE}}
    route: [{destination: {host: reviews, subset: v1}}]
  - route: [{destination: {host: reviews, subset: v1}}]
";
    let mesh = Mesh::builder()
        .file("reviews.yaml", mk_service("reviews", "default", &ups))
        .file("vs.yaml", mk_reviews_virtual_service("reviews", rules))
        .start()
        .await?;
    // A gRPC abort is a trailers-only gRPC answer: HTTP 200, grpc-status 14.
    let grpc = [("content-type", "application/grpc")];
    let reply = wait_for("a gRPC abort", APPLY_TIMEOUT, || async {
        let r = send(mesh.router_addr(), "POST", HOST, "/grpc", &grpc)
            .await
            .ok()?;
        (r.header("grpc-status") == Some("14")).then_some(r)
    })
    .await
    .with_context(|| format!("weft's output ends with:\n{}", mesh.weft().log_tail(20)))?;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(
        ups[0].requests(),
        0,
        "aborted requests never reach the upstream"
    );

    const N: usize = 400;
    let counts = mesh.sample(HOST, "/abort", &[], N).await?;
    let aborted = *counts.get("status 418").unwrap_or(&0);
    let passed = *counts.get("v1").unwrap_or(&0);
    assert_eq!(aborted + passed, N, "only 418s and v1: {counts:?}");
    let share = 100.0 * aborted as f64 / N as f64;
    assert!(
        (share - 50.0).abs() <= 8.0,
        "{share:.1}% aborted, want 50 +/- 8: {counts:?}"
    );

    let start = Instant::now();
    let (status, body) = mesh.get(HOST, "/delay", &[]).await?;
    let delayed = start.elapsed();
    assert_eq!((status, body.as_str()), (200, "v1"));
    // Envoy's timers may fire a hair early (millisecond granularity).
    assert!(delayed >= Duration::from_millis(950), "delay: {delayed:?}");
    let start = Instant::now();
    mesh.get(HOST, "/other", &[]).await?;
    assert!(
        start.elapsed() < Duration::from_millis(900),
        "no delay without the fault: {:?}",
        start.elapsed()
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mirror_copies_requests_and_the_client_gets_the_primary() -> Result<()> {
    let ups = start_upstreams(22, &["primary", "shadow", "never", "always"]).await?;
    let rules = "  - match: [{uri: {prefix: /one}}]
    route: [{destination: {host: reviews, subset: primary}}]
    mirror: {host: reviews, subset: shadow}
    mirrorPercentage: {value: 100}
  - route: [{destination: {host: reviews, subset: primary}}]
    mirrors:
    - destination: {host: reviews, subset: never}
      percentage: {value: 0}
    - destination: {host: reviews, subset: always}
";
    let mesh = Mesh::builder()
        .file("reviews.yaml", mk_service("reviews", "default", &ups))
        .file("vs.yaml", mk_reviews_virtual_service("reviews", rules))
        .start()
        .await?;
    mesh.wait_for_body(HOST, "/one", &[], "primary", APPLY_TIMEOUT)
        .await?;
    wait_for("the mirror policies to apply", APPLY_TIMEOUT, || async {
        mesh.get(HOST, "/one/warm", &[]).await.ok()?;
        mesh.get(HOST, "/two/warm", &[]).await.ok()?;
        (ups[1].requests() > 0 && ups[3].requests() > 0).then_some(())
    })
    .await?;
    // Mirrored requests are sent in the background: let the last ones land.
    wait_for("the mirrors to settle", Duration::from_secs(5), || async {
        let before = ups[1].requests() + ups[3].requests();
        tokio::time::sleep(Duration::from_millis(200)).await;
        (ups[1].requests() + ups[3].requests() == before).then_some(())
    })
    .await?;
    for u in &ups {
        u.reset_requests();
    }
    let counts = mesh.sample(HOST, "/one/x", &[], 10).await?;
    assert_eq!(counts, BTreeMap::from([("primary".to_string(), 10)]));
    wait_for(
        "the shadow to see 10 requests",
        Duration::from_secs(10),
        || async { (ups[1].requests() >= 10).then_some(()) },
    )
    .await?;
    let seen = ups[1].last_received().unwrap();
    assert_eq!(seen.path, "/one/x");
    assert_eq!(
        seen.authority,
        format!("{HOST}-shadow"),
        "Envoy marks mirrored requests' authority"
    );

    let counts = mesh.sample(HOST, "/two", &[], 10).await?;
    assert_eq!(counts, BTreeMap::from([("primary".to_string(), 10)]));
    wait_for(
        "`always` to see 10 requests",
        Duration::from_secs(10),
        || async { (ups[3].requests() >= 10).then_some(()) },
    )
    .await?;
    assert_eq!(ups[2].requests(), 0, "a 0% mirror gets nothing");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirect_answers_with_code_and_location() -> Result<()> {
    let ups = start_upstreams(23, &["v1"]).await?;
    let rules = "  - match: [{uri: {exact: /old}}]
    redirect: {uri: /new, authority: example.org, redirectCode: 302}
  - match: [{uri: {exact: /secure}}]
    redirect: {scheme: https, authority: example.org, derivePort: FROM_PROTOCOL_DEFAULT}
  - match: [{uri: {exact: /keep-port}}]
    redirect: {uri: /kept, authority: example.org, derivePort: FROM_REQUEST_PORT}
  - match: [{uri: {exact: /port}}]
    redirect: {authority: example.org, port: 8443, redirectCode: 308}
  - route: [{destination: {host: reviews, subset: v1}}]
";
    let mesh = Mesh::builder()
        .file("reviews.yaml", mk_service("reviews", "default", &ups))
        .file("vs.yaml", mk_reviews_virtual_service("reviews", rules))
        .start()
        .await?;
    wait_status(&mesh, "/old", &[], 302).await?;
    let cases = [
        ("/old", 302, "http://example.org/new"),
        ("/secure", 301, "https://example.org/secure"),
        ("/keep-port", 301, "http://example.org:9080/kept"),
        ("/port", 308, "http://example.org:8443/port"),
    ];
    for (path, code, location) in cases {
        let reply = mesh.request(HOST, path, &[]).await?;
        assert_eq!(reply.status, code, "{path}: {reply:?}");
        assert_eq!(
            reply.header("location"),
            Some(location),
            "{path}: {reply:?}"
        );
    }
    assert_eq!(ups[0].requests(), 0, "redirects never reach the upstream");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rewrite_is_seen_by_the_upstream() -> Result<()> {
    let ups = start_upstreams(24, &["v1"]).await?;
    let rules = "  - match: [{uri: {prefix: /api/v1}}]
    rewrite: {uri: /v2, authority: backend.internal}
    route: [{destination: {host: reviews, subset: v1}}]
  - match: [{uri: {prefix: /re/}}]
    rewrite: {uriRegexRewrite: {match: '^/re/([a-z]+)/(.*)$', rewrite: '/\\2/\\1'}}
    route: [{destination: {host: reviews, subset: v1}}]
  - route: [{destination: {host: reviews, subset: v1}}]
";
    let mesh = Mesh::builder()
        .file("reviews.yaml", mk_service("reviews", "default", &ups))
        .file("vs.yaml", mk_reviews_virtual_service("reviews", rules))
        .start()
        .await?;
    wait_for("the prefix rewrite", APPLY_TIMEOUT, || async {
        let r = mesh.request(HOST, "/api/v1/items?x=1", &[]).await.ok()?;
        (r.header("x-echo-path") == Some("/v2/items?x=1")).then_some(())
    })
    .await?;
    let seen = ups[0].last_received().unwrap();
    assert_eq!(seen.path, "/v2/items?x=1");
    assert_eq!(seen.authority, "backend.internal");
    let reply = mesh.request(HOST, "/re/abc/def", &[]).await?;
    assert_eq!(reply.header("x-echo-path"), Some("/def/abc"), "{reply:?}");
    let reply = mesh.request(HOST, "/plain", &[]).await?;
    assert_eq!(reply.header("x-echo-path"), Some("/plain"));
    assert_eq!(reply.header("x-echo-authority"), Some(HOST));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_response_answers_with_body_and_status() -> Result<()> {
    let ups = start_upstreams(25, &["v1"]).await?;
    let rules = "  - match: [{uri: {exact: /teapot}}]
    directResponse: {status: 418, body: {string: short and stout}}
  - match: [{uri: {exact: /bytes}}]
    directResponse: {status: 200, body: {bytes: aGVsbG8gYnl0ZXM=}}
  - match: [{uri: {exact: /empty}}]
    directResponse: {status: 503}
  - route: [{destination: {host: reviews, subset: v1}}]
";
    let mesh = Mesh::builder()
        .file("reviews.yaml", mk_service("reviews", "default", &ups))
        .file("vs.yaml", mk_reviews_virtual_service("reviews", rules))
        .start()
        .await?;
    wait_status(&mesh, "/teapot", &[], 418).await?;
    assert_eq!(
        mesh.get(HOST, "/teapot", &[]).await?,
        (418, "short and stout".to_string())
    );
    assert_eq!(
        mesh.get(HOST, "/bytes", &[]).await?,
        (200, "hello bytes".to_string())
    );
    assert_eq!(mesh.get(HOST, "/empty", &[]).await?, (503, String::new()));
    assert_eq!(
        ups[0].requests(),
        0,
        "direct responses never reach the upstream"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_preflight_is_answered_with_the_allowed_headers() -> Result<()> {
    let ups = start_upstreams(26, &["v1"]).await?;
    let rules = "  - match: [{uri: {prefix: /ignore}}]
    corsPolicy:
      allowOrigins: [{exact: 'https://good.example'}]
      unmatchedPreflights: IGNORE
    route: [{destination: {host: reviews, subset: v1}}]
  - corsPolicy:
      allowOrigins: [{exact: 'https://good.example'}, {regex: 'https://.*\\.trusted\\.example'}]
      allowMethods: [GET, POST]
      allowHeaders: [x-custom, content-type]
      exposeHeaders: [x-upstream-identity]
      maxAge: 24h
      allowCredentials: true
    route: [{destination: {host: reviews, subset: v1}}]
";
    let mesh = Mesh::builder()
        .file("reviews.yaml", mk_service("reviews", "default", &ups))
        .file("vs.yaml", mk_reviews_virtual_service("reviews", rules))
        .start()
        .await?;
    let preflight = |origin: &'static str| {
        let addr = mesh.router_addr();
        async move {
            send(
                addr,
                "OPTIONS",
                HOST,
                "/data",
                &[
                    ("origin", origin),
                    ("access-control-request-method", "POST"),
                ],
            )
            .await
        }
    };
    let reply = wait_for("a CORS preflight answer", APPLY_TIMEOUT, || async {
        let r = preflight("https://good.example").await.ok()?;
        r.header("access-control-allow-origin")
            .is_some()
            .then_some(r)
    })
    .await?;
    ups[0].reset_requests();
    let reply = {
        let again = preflight("https://good.example").await?;
        assert_eq!(again.status, reply.status);
        again
    };
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(
        reply.header("access-control-allow-origin"),
        Some("https://good.example")
    );
    assert_eq!(
        reply.header("access-control-allow-methods"),
        Some("GET,POST")
    );
    assert_eq!(
        reply.header("access-control-allow-headers"),
        Some("x-custom,content-type")
    );
    assert_eq!(reply.header("access-control-max-age"), Some("86400"));
    assert_eq!(
        reply.header("access-control-allow-credentials"),
        Some("true")
    );
    assert_eq!(ups[0].requests(), 0, "Envoy answered the preflight itself");

    let regex_origin = preflight("https://app.trusted.example").await?;
    assert_eq!(
        regex_origin.header("access-control-allow-origin"),
        Some("https://app.trusted.example")
    );
    // An origin that does not match: the preflight goes upstream (Istio's
    // default, unmatchedPreflights FORWARD) and gets no CORS headers.
    let bad = preflight("https://evil.example").await?;
    assert_eq!(bad.header("access-control-allow-origin"), None, "{bad:?}");
    assert_eq!(
        ups[0].last_received().map(|r| r.method),
        Some("OPTIONS".to_string())
    );

    // unmatchedPreflights IGNORE: Envoy answers it, nothing goes upstream.
    ups[0].reset_requests();
    let ignored = send(
        mesh.router_addr(),
        "OPTIONS",
        HOST,
        "/ignore",
        &[
            ("origin", "https://evil.example"),
            ("access-control-request-method", "POST"),
        ],
    )
    .await?;
    assert_eq!(
        ignored.header("access-control-allow-origin"),
        None,
        "{ignored:?}"
    );
    assert_eq!(
        ups[0].requests(),
        0,
        "an ignored preflight is not forwarded"
    );

    let simple = send(
        mesh.router_addr(),
        "GET",
        HOST,
        "/data",
        &[("origin", "https://good.example")],
    )
    .await?;
    assert_eq!(simple.body, "v1");
    assert_eq!(
        simple.header("access-control-allow-origin"),
        Some("https://good.example")
    );
    assert_eq!(
        simple.header("access-control-expose-headers"),
        Some("x-upstream-identity")
    );
    Ok(())
}
