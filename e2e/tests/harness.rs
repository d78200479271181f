//! The harness itself, without weft: the echo upstream's controls, and a
//! real Envoy (installed on demand) proxying to it from a static bootstrap.
//! When the mesh tests fail, these say whether the tools work.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use weft_e2e::procs::strip_ansi;
use weft_e2e::upstream::IDENTITY_HEADER;
use weft_e2e::{Envoy, Upstream, envoy_binary, free_port, http_get, wait_for};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_answers_with_its_identity_and_obeys_controls() {
    let up = Upstream::start("v7", "127.0.20.1".parse().unwrap())
        .await
        .unwrap();
    assert_eq!(up.ip().to_string(), "127.0.20.1");
    assert_ne!(up.port(), 0);

    let reply = http_get(up.addr(), "x", "/", &[]).await.unwrap();
    assert_eq!((reply.status, reply.body.as_str()), (200, "v7"));
    assert_eq!(reply.header(IDENTITY_HEADER), Some("v7"));

    up.fail_next(2);
    for _ in 0..2 {
        assert_eq!(
            http_get(up.addr(), "x", "/", &[]).await.unwrap().status,
            503
        );
    }
    assert_eq!(
        http_get(up.addr(), "x", "/", &[]).await.unwrap().status,
        200
    );
    assert_eq!(up.requests(), 4);

    up.set_delay(Duration::from_millis(300));
    let start = Instant::now();
    assert_eq!(
        http_get(up.addr(), "x", "/", &[]).await.unwrap().status,
        200
    );
    assert!(start.elapsed() >= Duration::from_millis(300));

    let addr = up.addr();
    drop(up);
    assert!(
        http_get(addr, "x", "/", &[]).await.is_err(),
        "stopped on drop"
    );
}

#[test]
fn ansi_colours_are_stripped_from_logs() {
    assert_eq!(
        strip_ansi(
            "\u{1b}[2m2026\u{1b}[0m \u{1b}[33m WARN\u{1b}[0m \u{1b}[3mproxy\u{1b}[0m\u{1b}[2m=\u{1b}[0mn1"
        ),
        "2026  WARN proxy=n1"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_envoy_proxies_to_an_upstream_from_a_static_bootstrap() {
    let envoy_path = tokio::task::spawn_blocking(envoy_binary)
        .await
        .unwrap()
        .unwrap();
    assert!(envoy_path.is_file());
    let up = Upstream::start("static", "127.0.20.2".parse().unwrap())
        .await
        .unwrap();
    let (listen, admin) = (free_port().unwrap(), free_port().unwrap());
    let bootstrap = format!(
        r#"admin:
  address: {{socket_address: {{address: 127.0.0.1, port_value: {admin}}}}}
static_resources:
  listeners:
  - name: l
    address: {{socket_address: {{address: 127.0.0.1, port_value: {listen}}}}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: l
          http_filters:
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
          route_config:
            virtual_hosts:
            - name: up
              domains: ["up"]
              routes:
              - match: {{prefix: "/"}}
                route: {{cluster: up}}
  clusters:
  - name: up
    type: STATIC
    load_assignment:
      cluster_name: up
      endpoints:
      - lb_endpoints:
        - endpoint:
            address: {{socket_address: {{address: {ip}, port_value: {port}}}}}
"#,
        ip = up.ip(),
        port = up.port()
    );
    let envoy = Envoy::start(&bootstrap).unwrap();
    let listen_addr = format!("127.0.0.1:{listen}").parse().unwrap();
    let reply = wait_for("Envoy to proxy", Duration::from_secs(30), || async {
        assert!(envoy.is_running(), "{}", envoy.log_tail(40));
        http_get(listen_addr, "up", "/", &[]).await.ok()
    })
    .await
    .unwrap();
    assert_eq!((reply.status, reply.body.as_str()), (200, "static"));
    assert_eq!(reply.header(IDENTITY_HEADER), Some("static"));
    let no_host = http_get(listen_addr, "elsewhere", "/", &[]).await.unwrap();
    assert_eq!(no_host.status, 404, "no virtual host matches");

    let pid = envoy.pid();
    drop(envoy);
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "Envoy was killed and reaped on drop"
    );
}
