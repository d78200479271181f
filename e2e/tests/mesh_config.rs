//! `weft standalone --mesh-config FILE` (issue "Mesh telemetry"), the real
//! binary: the mesh config is read at startup and hot-reloaded. Rewriting
//! it with a bad field is refused (the log names the field,
//! `weft_mesh_config_reloads_total{result="rejected"}` counts it) and the
//! last good one stays in force; a good change is applied, and a Telemetry
//! naming a provider only the new mesh config defines stops being
//! rejected. Needs `cargo build -p weft --bin weft` first.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use weft_e2e::{Weft, wait_for, weft_binary};

/// How long a start or a file change may take to show.
const TIMEOUT: Duration = Duration::from_secs(30);

/// The last good mesh config: it defines `otel`, not `zipkin`.
const MESH_WITH_OTEL: &str = "\
# Istio's MeshConfig, as in ConfigMap istio (key mesh).
rootNamespace: istio-system
enableTracing: true
defaultConfig:
  tracing:
    sampling: 5
  holdApplicationUntilProxyStarts: true
extensionProviders:
- name: otel
  opentelemetry:
    service: observability/otel-collector
    port: 4317
";

/// A bad rewrite: `zipkin`'s port is no number (and `otel` is gone).
const MESH_BAD: &str = "\
rootNamespace: istio-system
extensionProviders:
- name: prometheus
  prometheus: {}
- name: zipkin
  zipkin:
    service: zipkin.istio-system.svc.cluster.local
    port: nine-four-one-one
";

/// The good change: `zipkin` next to `otel`.
const MESH_WITH_ZIPKIN: &str = "\
rootNamespace: istio-system
extensionProviders:
- name: otel
  opentelemetry:
    service: observability/otel-collector
    port: 4317
- name: zipkin
  zipkin:
    service: istio-system/zipkin
    port: 9411
";

/// A Telemetry in `namespace` whose tracing names `provider`.
fn mk_tracing_telemetry(namespace: &str, provider: &str) -> String {
    format!(
        "apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {{name: tracing, namespace: {namespace}}}
spec:
  tracing:
  - providers: [{{name: {provider}}}]
    randomSamplingPercentage: 10
"
    )
}

/// The value of `series` (name and labels as written) in `/metrics`.
async fn sample(weft: &Weft, series: &str) -> Result<f64> {
    let reply = weft.monitoring_get("/metrics").await?;
    if reply.status != 200 {
        bail!("/metrics answered {}: {}", reply.status, reply.body);
    }
    reply
        .body
        .lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .with_context(|| format!("no {series} in /metrics:\n{}", reply.body))
}

const APPLIED: &str = "weft_mesh_config_reloads_total{result=\"applied\"}";
const REJECTED: &str = "weft_mesh_config_reloads_total{result=\"rejected\"}";

/// Waits until `series` is `value` in `/metrics`.
async fn wait_for_sample(weft: &Weft, series: &str, value: f64) -> Result<()> {
    wait_for(&format!("{series} = {value}"), TIMEOUT, || async {
        (sample(weft, series).await.ok()? == value).then_some(())
    })
    .await
    .with_context(|| format!("weft's output ends with:\n{}", weft.process().log_tail(30)))
}

/// Writes `text` to `path` as an editor saves: a new file renamed over it.
fn save(path: &Path, text: &str) -> Result<()> {
    let temp = path.with_extension("yaml.tmp");
    std::fs::write(&temp, text)?;
    std::fs::rename(&temp, path)?;
    Ok(())
}

#[tokio::test]
async fn a_bad_mesh_config_is_refused_and_a_good_one_applied() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let config_dir = dir.path().join("config");
    std::fs::create_dir(&config_dir)?;
    let mesh = dir.path().join("mesh.yaml");
    std::fs::write(&mesh, MESH_WITH_OTEL)?;
    std::fs::write(
        config_dir.join("zipkin.yaml"),
        mk_tracing_telemetry("istio-system", "zipkin"),
    )?;
    let weft = Weft::start_standalone_with(
        &config_dir,
        &["--mesh-config".as_ref(), mesh.as_os_str()],
        TIMEOUT,
    )
    .await?;
    let process = weft.process();

    // At startup the mesh config is applied; the Telemetry naming `zipkin`,
    // which it does not define, is rejected alone.
    process.wait_for_log("mesh config applied", TIMEOUT).await?;
    process
        .wait_for_log(
            "Telemetry istio-system/tracing: spec.tracing[0].providers[0].name: the mesh config defines no provider \"zipkin\" (it has envoy, otel, prometheus)",
            TIMEOUT,
        )
        .await?;
    process
        .wait_for_log("telemetries=0 errors=1", TIMEOUT)
        .await?;
    assert_eq!(sample(&weft, APPLIED).await?, 1.0);
    assert_eq!(sample(&weft, REJECTED).await?, 0.0);

    // A bad rewrite is refused, naming the field; the count goes up.
    let mark = process.log_mark();
    save(&mesh, MESH_BAD)?;
    let line = process
        .wait_for_log_since(
            mark,
            "extensionProviders[1].zipkin.port: invalid type: string \"nine-four-one-one\"",
            TIMEOUT,
        )
        .await?;
    assert!(line.contains(&mesh.display().to_string()), "{line}");
    process
        .wait_for_log_since(
            mark,
            "mesh config rejected; the last good one is kept",
            TIMEOUT,
        )
        .await?;
    wait_for_sample(&weft, REJECTED, 1.0).await?;
    assert_eq!(sample(&weft, APPLIED).await?, 1.0);

    // The last good mesh config is still in force: a Telemetry naming
    // `otel`, which only it defines, is accepted (the `zipkin` one is
    // still rejected).
    let mark = process.log_mark();
    std::fs::write(
        config_dir.join("otel.yaml"),
        mk_tracing_telemetry("prod", "otel"),
    )?;
    process
        .wait_for_log_since(mark, "telemetries=1 errors=1", TIMEOUT)
        .await?;

    // The good change is applied: the `zipkin` Telemetry stops being
    // rejected, and both are served.
    let mark = process.log_mark();
    save(&mesh, MESH_WITH_ZIPKIN)?;
    process
        .wait_for_log_since(mark, "mesh config applied", TIMEOUT)
        .await?;
    process
        .wait_for_log_since(mark, "telemetries=2 errors=0", TIMEOUT)
        .await?;
    wait_for_sample(&weft, APPLIED, 2.0).await?;
    assert_eq!(sample(&weft, REJECTED).await?, 1.0);
    let errors_since = process
        .log_buffer()
        .lines()
        .into_iter()
        .skip(mark)
        .filter(|l| l.contains("config error"))
        .collect::<Vec<_>>();
    assert!(errors_since.is_empty(), "{errors_since:#?}");
    Ok(())
}

#[tokio::test]
async fn startup_refuses_a_trust_domain_the_flag_contradicts() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let config_dir = dir.path().join("config");
    std::fs::create_dir(&config_dir)?;
    let mesh = dir.path().join("mesh.yaml");
    std::fs::write(&mesh, "trustDomain: mesh.example\n")?;
    let run = tokio::process::Command::new(weft_binary()?)
        .arg("standalone")
        .arg("--config-dir")
        .arg(&config_dir)
        .arg("--mesh-config")
        .arg(&mesh)
        .args(["--trust-domain", "flag.example"])
        .args(["--xds-address", "127.0.0.1:0"])
        .args(["--monitoring-address", "127.0.0.1:0"])
        .env("RUST_BACKTRACE", "0")
        .env("RUST_LIB_BACKTRACE", "0")
        .env("NO_COLOR", "1")
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(TIMEOUT, run)
        .await
        .context("weft kept running with a contradicting trust domain")??;
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains("--trust-domain flag.example and the mesh config's trustDomain mesh.example"),
        "{text}"
    );
    Ok(())
}
