//! A real Prometheus (Debian's `prometheus` package, 2.42) scraping the
//! targets a test names, for checking the metrics Envoy and weft expose as
//! Prometheus itself sees them: names, labels, and values that add up.
//!
//! [`Prometheus::start`] writes a config with one job per [`ScrapeTarget`]
//! (scraped every second), keeps its storage in a temp dir, listens on a
//! free loopback port, and waits until `/-/ready` and until every target is
//! known (Prometheus hands new targets to its scrapers at most every 5 s,
//! so a start takes about that long). Tests then ask it PromQL
//! through `/api/v1/query` ([`Prometheus::query`]) or poll until an answer
//! satisfies them ([`Prometheus::wait_for`]); a timeout names the last
//! answer and each target's scrape health. The process is killed when the
//! handle is dropped.
//!
//! [`samples_of`] parses the text exposition format without Prometheus, for
//! tests that read a `/stats/prometheus` page directly.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use serde_json::{Value, json};
use tempfile::TempDir;

use crate::client::{encode_query_value, http_get, poll_answer};
use crate::procs::{Process, exited_error, free_port};

/// How long Prometheus may take to answer `/-/ready`.
pub const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// What the error says to run when `prometheus` is missing.
const INSTALL: &str = "apt-get install prometheus";

/// One scrape job: a `host:port` serving metrics, at a path, with extra
/// labels on every series scraped from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScrapeTarget {
    job: String,
    addr: SocketAddr,
    metrics_path: String,
    labels: BTreeMap<String, String>,
}

impl ScrapeTarget {
    /// A job named `job` scraping `http://addr/metrics`.
    pub fn new(job: impl Into<String>, addr: SocketAddr) -> Self {
        Self {
            job: job.into(),
            addr,
            metrics_path: "/metrics".to_string(),
            labels: BTreeMap::new(),
        }
    }

    /// Scrapes `path` instead of `/metrics` (Envoy: `/stats/prometheus`).
    pub fn metrics_path(mut self, path: impl Into<String>) -> Self {
        self.metrics_path = path.into();
        self
    }

    /// Adds the label `key="value"` to every series of this target.
    pub fn label(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.labels.insert(key.into(), value.into());
        self
    }

    pub fn job(&self) -> &str {
        &self.job
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

/// One series of a query's answer (or of a metrics page).
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// With `__name__` when the answer names the metric.
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

impl Sample {
    /// The value of label `name`.
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels.get(name).map(String::as_str)
    }
}

/// The Prometheus config for `targets`: a 1 s scrape interval, one job each.
pub fn build_config(targets: &[ScrapeTarget]) -> Result<String> {
    let jobs: Vec<Value> = targets
        .iter()
        .map(|t| {
            json!({
                "job_name": t.job,
                "metrics_path": t.metrics_path,
                "static_configs": [{
                    "targets": [t.addr.to_string()],
                    "labels": t.labels,
                }],
            })
        })
        .collect();
    let config = json!({
        "global": {
            "scrape_interval": "1s",
            "scrape_timeout": "1s",
            "evaluation_interval": "1s",
        },
        "scrape_configs": jobs,
    });
    serde_yaml::to_string(&config).context("writing the Prometheus config")
}

/// A running Prometheus; killed on drop.
#[derive(Debug)]
pub struct Prometheus {
    process: Process,
    addr: SocketAddr,
    targets: Vec<ScrapeTarget>,
    // Config and storage; removed after the process is killed (fields drop
    // in order).
    dir: TempDir,
}

impl Prometheus {
    /// Starts `prometheus` (from `PATH`) scraping `targets` every second,
    /// and waits until it is ready and lists every target. Fails, saying
    /// what to install, if it is not installed.
    pub async fn start(targets: &[ScrapeTarget]) -> Result<Self> {
        let binary = prometheus_binary()?;
        let dir = tempfile::Builder::new()
            .prefix("weft-e2e-prometheus-")
            .tempdir()
            .context("creating Prometheus's temp dir")?;
        let config = dir.path().join("prometheus.yml");
        std::fs::write(&config, build_config(targets)?)
            .with_context(|| format!("writing {}", config.display()))?;
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, free_port()?));
        let mut command = Command::new(&binary);
        command
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .arg("--log.level=warn")
            .current_dir(dir.path());
        let prometheus = Self {
            process: Process::spawn("prometheus", command)?,
            addr,
            targets: targets.to_vec(),
            dir,
        };
        prometheus.wait_ready().await?;
        Ok(prometheus)
    }

    /// Waits for `/-/ready`, then for every target in `/api/v1/targets`.
    async fn wait_ready(&self) -> Result<()> {
        let start = Instant::now();
        loop {
            if !self.process.is_running() {
                return Err(exited_error(&self.process).context("prometheus did not start"));
            }
            if let Ok(reply) = http_get(self.addr, "localhost", "/-/ready", &[]).await
                && reply.status == 200
                && let Ok(known) = self.active_targets().await
                && known.len() >= self.targets.len()
            {
                return Ok(());
            }
            if start.elapsed() >= READY_TIMEOUT {
                bail!(
                    "prometheus on {} did not get ready and list its {} targets within \
                     {READY_TIMEOUT:?}; its output ends with:\n{}",
                    self.addr,
                    self.targets.len(),
                    self.process.log_tail(40)
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Its HTTP API (and UI) address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn targets(&self) -> &[ScrapeTarget] {
        &self.targets
    }

    /// The directory of its config file and storage.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn process(&self) -> &Process {
        &self.process
    }

    /// The answer to the instant query `promql` (a vector, or a scalar as
    /// one sample without labels).
    pub async fn query(&self, promql: &str) -> Result<Vec<Sample>> {
        let path = format!("/api/v1/query?query={}", encode_query_value(promql));
        let data = self
            .api_get(&path)
            .await
            .with_context(|| format!("querying {promql:?}"))?;
        parse_query_data(&data).with_context(|| format!("the answer to {promql:?}"))
    }

    /// Polls `promql` (every 500 ms) until `pred` holds for its answer, and
    /// returns that answer. On timeout the error shows the last answer (or
    /// error) and every target's scrape health.
    pub async fn wait_for(
        &self,
        promql: &str,
        timeout: Duration,
        pred: impl Fn(&[Sample]) -> bool,
    ) -> Result<Vec<Sample>> {
        let every = Duration::from_millis(500);
        let answer = poll_answer(timeout, every, || self.query(promql), |s| pred(s)).await;
        let last = match answer {
            Ok(samples) => return Ok(samples),
            Err(Ok(samples)) => format_samples(&samples),
            Err(Err(err)) => format!("error: {err:#}"),
        };
        let health = match self.target_health().await {
            Ok(health) => health,
            Err(err) => format!("unknown ({err:#})"),
        };
        bail!(
            "prometheus: {promql:?} did not give the expected answer within {timeout:?}; \
             the last answer was {last}; targets: {health}"
        )
    }

    /// One line per active target: job, scrape URL, health and last error
    /// (from `/api/v1/targets`).
    pub async fn target_health(&self) -> Result<String> {
        let targets = self.active_targets().await?;
        let lines: Vec<String> = targets
            .iter()
            .map(|t| {
                let field = |name: &str| t.get(name).and_then(Value::as_str).unwrap_or("?");
                let job = t
                    .pointer("/labels/job")
                    .and_then(Value::as_str)
                    .unwrap_or("?");
                let error = field("lastError");
                let error = if error.is_empty() {
                    String::new()
                } else {
                    format!(" ({error})")
                };
                format!("{job} {} {}{error}", field("scrapeUrl"), field("health"))
            })
            .collect();
        if lines.is_empty() {
            return Ok("none".to_string());
        }
        Ok(lines.join("; "))
    }

    /// The `activeTargets` of `/api/v1/targets`.
    async fn active_targets(&self) -> Result<Vec<Value>> {
        let mut data = self.api_get("/api/v1/targets").await?;
        match data.get_mut("activeTargets").map(Value::take) {
            Some(Value::Array(targets)) => Ok(targets),
            _ => bail!("no activeTargets in {data}"),
        }
    }

    /// `GET path` on the API; its `data` when `status` is `success`.
    async fn api_get(&self, path: &str) -> Result<Value> {
        if !self.process.is_running() {
            return Err(exited_error(&self.process));
        }
        let reply = http_get(self.addr, "localhost", path, &[]).await?;
        let body: Value = serde_json::from_str(&reply.body).with_context(|| {
            format!(
                "prometheus answered {} with non-JSON: {}",
                reply.status, reply.body
            )
        })?;
        if body.get("status").and_then(Value::as_str) != Some("success") {
            bail!("prometheus answered {}: {}", reply.status, reply.body);
        }
        body.get("data")
            .cloned()
            .ok_or_else(|| anyhow!("no data in {}", reply.body))
    }
}

/// `prometheus` on `PATH`, else Debian's `/usr/bin/prometheus`.
fn prometheus_binary() -> Result<PathBuf> {
    let on_path = std::env::var_os("PATH")
        .map(|path| {
            std::env::split_paths(&path)
                .map(|dir| dir.join("prometheus"))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    on_path
        .into_iter()
        .chain([PathBuf::from("/usr/bin/prometheus")])
        .find(|candidate| candidate.is_file())
        .ok_or_else(|| {
            anyhow!(
                "prometheus was not found on PATH; install it with `{INSTALL}` (Debian's package)"
            )
        })
}

/// The samples of a `/api/v1/query` answer's `data`.
fn parse_query_data(data: &Value) -> Result<Vec<Sample>> {
    let kind = data.get("resultType").and_then(Value::as_str);
    let result = data
        .get("result")
        .ok_or_else(|| anyhow!("no result in {data}"))?;
    match kind {
        Some("vector") => result
            .as_array()
            .ok_or_else(|| anyhow!("the vector {result} is not an array"))?
            .iter()
            .map(|item| {
                let labels = item
                    .get("metric")
                    .and_then(Value::as_object)
                    .map(|m| {
                        m.iter()
                            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                            .collect()
                    })
                    .unwrap_or_default();
                let value = item
                    .get("value")
                    .ok_or_else(|| anyhow!("no value in {item}"))?;
                Ok(Sample {
                    labels,
                    value: point_value(value)?,
                })
            })
            .collect(),
        Some("scalar") => Ok(vec![Sample {
            labels: BTreeMap::new(),
            value: point_value(result)?,
        }]),
        other => bail!("unsupported result type {other:?} (ask for an instant vector): {data}"),
    }
}

/// The value of a `[timestamp, "value"]` pair.
fn point_value(point: &Value) -> Result<f64> {
    let text = point
        .get(1)
        .and_then(Value::as_str)
        .ok_or_else(|| anyhow!("{point} is not a [time, \"value\"] pair"))?;
    parse_value(text).ok_or_else(|| anyhow!("{text:?} is not a number"))
}

/// A sample value as Prometheus writes it (`12`, `1.5e-3`, `NaN`, `+Inf`).
fn parse_value(text: &str) -> Option<f64> {
    text.parse().ok()
}

fn format_samples(samples: &[Sample]) -> String {
    if samples.is_empty() {
        return "empty".to_string();
    }
    let items: Vec<String> = samples
        .iter()
        .map(|s| {
            let labels: Vec<String> = s.labels.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
            format!("{{{}}} {}", labels.join(","), s.value)
        })
        .collect();
    items.join(", ")
}

/// The samples of `metric` in a page of the Prometheus text exposition
/// format (`name{a="b"} 12 [timestamp]`; `#` lines skipped). Series of
/// other metrics, including `metric_bucket` and friends, are left out;
/// lines that do not parse are skipped.
pub fn samples_of(text: &str, metric: &str) -> Vec<Sample> {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .filter_map(parse_line)
        .filter(|(name, _)| name == metric)
        .map(|(_, sample)| sample)
        .collect()
}

/// One exposition line: the metric name and its sample.
fn parse_line(line: &str) -> Option<(String, Sample)> {
    let name_end = line
        .find(|c: char| c == '{' || c.is_whitespace())
        .unwrap_or(line.len());
    let name = &line[..name_end];
    if name.is_empty() {
        return None;
    }
    let rest = &line[name_end..];
    let (labels, rest) = match rest.strip_prefix('{') {
        Some(inner) => parse_labels(inner)?,
        None => (BTreeMap::new(), rest),
    };
    let value = parse_value(rest.split_whitespace().next()?)?;
    Some((name.to_string(), Sample { labels, value }))
}

/// `a="b",c="d\"e"} rest` into the labels and `rest`.
fn parse_labels(mut text: &str) -> Option<(BTreeMap<String, String>, &str)> {
    let mut labels = BTreeMap::new();
    loop {
        text = text.trim_start();
        if let Some(rest) = text.strip_prefix('}') {
            return Some((labels, rest));
        }
        let eq = text.find('=')?;
        let key = text[..eq].trim().to_string();
        let after = text[eq + 1..].trim_start().strip_prefix('"')?;
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            match chars.next()? {
                (i, '"') => break i,
                (_, '\\') => match chars.next()?.1 {
                    'n' => value.push('\n'),
                    other => value.push(other),
                },
                (_, c) => value.push(c),
            }
        };
        labels.insert(key, value);
        text = after[end + 1..].trim_start();
        text = text.strip_prefix(',').unwrap_or(text);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    const PAGE: &str = r#"# HELP istio_requests_total Total requests.
# TYPE istio_requests_total counter
istio_requests_total{response_code="200",destination_service="reviews"} 12
istio_requests_total{response_code="503",destination_service="a \"quoted\" \\ name\nx"} 3 1700000000000
istio_requests_total_extra 7
envoy_server_live 1
istio_request_duration_milliseconds_bucket{le="+Inf"} 15
istio_request_duration_milliseconds_sum{} 1.5e3
odd_values{kind="nan"} NaN
odd_values{kind="inf"} +Inf
odd_values{kind="trailing comma",} -2
"#;

    #[test]
    fn reads_samples_with_labels_and_escapes() {
        let samples = samples_of(PAGE, "istio_requests_total");
        assert_eq!(
            samples,
            vec![
                Sample {
                    labels: labels(&[("destination_service", "reviews"), ("response_code", "200")]),
                    value: 12.0,
                },
                Sample {
                    labels: labels(&[
                        ("destination_service", "a \"quoted\" \\ name\nx"),
                        ("response_code", "503")
                    ]),
                    value: 3.0,
                },
            ]
        );
    }

    #[test]
    fn reads_samples_without_labels() {
        assert_eq!(
            samples_of(PAGE, "envoy_server_live"),
            vec![Sample {
                labels: BTreeMap::new(),
                value: 1.0
            }]
        );
        assert_eq!(
            samples_of(PAGE, "istio_request_duration_milliseconds_sum")
                .first()
                .map(|s| s.value),
            Some(1500.0)
        );
        assert!(samples_of(PAGE, "istio_requests").is_empty());
        assert!(samples_of(PAGE, "# HELP").is_empty());
    }

    #[test]
    fn reads_special_values_and_trailing_commas() {
        let samples = samples_of(PAGE, "odd_values");
        assert_eq!(samples.len(), 3);
        assert!(samples[0].value.is_nan());
        assert_eq!(samples[1].value, f64::INFINITY);
        assert_eq!(samples[2].label("kind"), Some("trailing comma"));
        assert_eq!(samples[2].value, -2.0);
    }

    #[test]
    fn skips_lines_that_do_not_parse() {
        let text = "broken{a=\"b\" 1\nno_value{a=\"b\"}\nok 2\n";
        assert!(samples_of(text, "broken").is_empty());
        assert!(samples_of(text, "no_value").is_empty());
        assert_eq!(samples_of(text, "ok").len(), 1);
    }

    #[test]
    fn parses_query_answers() {
        let vector = json!({
            "resultType": "vector",
            "result": [{"metric": {"__name__": "up", "job": "a"}, "value": [1.5, "1"]}],
        });
        let samples = parse_query_data(&vector).ok();
        assert_eq!(
            samples,
            Some(vec![Sample {
                labels: labels(&[("__name__", "up"), ("job", "a")]),
                value: 1.0,
            }])
        );
        let scalar = json!({"resultType": "scalar", "result": [1.5, "42"]});
        assert_eq!(
            parse_query_data(&scalar).ok().map(|s| s[0].value),
            Some(42.0)
        );
        let matrix = json!({"resultType": "matrix", "result": []});
        assert!(parse_query_data(&matrix).is_err());
    }

    #[test]
    fn writes_one_job_per_target() {
        let target = ScrapeTarget::new("envoy", SocketAddr::from(([127, 0, 0, 1], 15090)))
            .metrics_path("/stats/prometheus")
            .label("pod", "reviews-v1");
        let config = build_config(&[target]).unwrap();
        let parsed: Value = serde_yaml::from_str(&config).unwrap();
        assert_eq!(parsed["global"]["scrape_interval"], "1s");
        let job = &parsed["scrape_configs"][0];
        assert_eq!(job["job_name"], "envoy");
        assert_eq!(job["metrics_path"], "/stats/prometheus");
        assert_eq!(job["static_configs"][0]["targets"][0], "127.0.0.1:15090");
        assert_eq!(job["static_configs"][0]["labels"]["pod"], "reviews-v1");
    }
}
