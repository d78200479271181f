//! Load from fortio, Istio's own load generator
//! ([`crate::k8s_tools::fortio_binary`], built from the Go module proxy):
//! [`run_load`] runs `fortio load` as a [`LoadSpec`] says and returns what
//! its JSON report measured (rate, latency percentiles, status codes), so
//! telemetry tests can compare what the mesh counted with what was sent.
//!
//! Initial errors never abort a run (`-allow-initial-errors`): a test that
//! expects failures reads them from [`LoadResult::ret_codes`].

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use serde::Deserialize;
use tokio::process::Command;

use crate::k8s_tools::fortio_binary;

/// The percentiles [`run_load`] asks fortio for.
const PERCENTILES: &str = "50,90,99";
/// How much longer than its duration a run may take before it is killed.
const RUN_SLACK: Duration = Duration::from_secs(60);

/// What `fortio load` is to do.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadSpec {
    /// `http://host:port/path`.
    pub url: String,
    /// Requests per second over all connections; 0 is as fast as possible.
    pub qps: f64,
    /// How long to send for (ignored when [`LoadSpec::calls`] is set).
    pub duration: Duration,
    /// Parallel connections (fortio's `-c`).
    pub connections: u32,
    /// Extra request headers (`Host` among them, if wanted).
    pub headers: Vec<(String, String)>,
    /// Exactly this many requests (fortio's `-n`) instead of a duration.
    pub calls: Option<u64>,
}

impl LoadSpec {
    /// One connection, as fast as possible, for one second.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            qps: 0.0,
            duration: Duration::from_secs(1),
            connections: 1,
            headers: Vec::new(),
            calls: None,
        }
    }

    pub fn qps(mut self, qps: f64) -> Self {
        self.qps = qps;
        self
    }

    pub fn duration(mut self, duration: Duration) -> Self {
        self.duration = duration;
        self
    }

    pub fn connections(mut self, connections: u32) -> Self {
        self.connections = connections;
        self
    }

    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    pub fn calls(mut self, calls: u64) -> Self {
        self.calls = Some(calls);
        self
    }

    /// The arguments of `fortio` (before the JSON file is added).
    fn args(&self) -> Vec<String> {
        let mut args = vec![
            "load".to_string(),
            "-qps".to_string(),
            self.qps.to_string(),
            "-c".to_string(),
            self.connections.to_string(),
            "-p".to_string(),
            PERCENTILES.to_string(),
            "-allow-initial-errors".to_string(),
            "-loglevel".to_string(),
            "Warning".to_string(),
        ];
        match self.calls {
            Some(calls) => args.extend(["-n".to_string(), calls.to_string()]),
            None => args.extend(["-t".to_string(), format!("{}ms", self.duration.as_millis())]),
        }
        for (name, value) in &self.headers {
            args.extend(["-H".to_string(), format!("{name}: {value}")]);
        }
        args
    }
}

/// What a run measured.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadResult {
    /// Requests per second achieved.
    pub actual_qps: f64,
    pub actual_duration: Duration,
    /// Requests completed (successful or not).
    pub count: u64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub avg_ms: f64,
    pub max_ms: f64,
    /// Requests per HTTP status code; -1 counts connection errors.
    pub ret_codes: BTreeMap<i32, u64>,
    /// Connections opened.
    pub sockets: u64,
}

impl LoadResult {
    /// Requests answered with `code`.
    pub fn code_count(&self, code: i32) -> u64 {
        self.ret_codes.get(&code).copied().unwrap_or(0)
    }
}

/// Runs `fortio load` as `spec` says and parses its JSON report. A missing
/// Go or failed build of fortio, an exit with an error, or a report that
/// does not parse is an error.
pub async fn run_load(spec: &LoadSpec) -> Result<LoadResult> {
    let fortio = fortio_binary()?;
    let dir = tempfile::Builder::new()
        .prefix("weft-e2e-fortio-")
        .tempdir()
        .context("creating fortio's temp dir")?;
    let report = dir.path().join("report.json");
    let mut command = Command::new(&fortio);
    command
        .args(spec.args())
        .arg("-json")
        .arg(&report)
        .arg(&spec.url)
        .current_dir(dir.path())
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    let limit = spec.duration + RUN_SLACK;
    let out = tokio::time::timeout(limit, command.output())
        .await
        .map_err(|_| anyhow!("fortio load {} did not finish within {limit:?}", spec.url))?
        .with_context(|| format!("running {}", fortio.display()))?;
    if !out.status.success() {
        bail!(
            "fortio load {} failed ({}): {}{}",
            spec.url,
            out.status,
            String::from_utf8_lossy(&out.stdout).trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let json = std::fs::read_to_string(&report)
        .with_context(|| format!("reading fortio's report {}", report.display()))?;
    parse_report(&json).with_context(|| format!("fortio's report on {}", spec.url))
}

/// Fortio's `-json` report, as much of it as [`LoadResult`] needs.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Report {
    #[serde(rename = "ActualQPS")]
    actual_qps: f64,
    /// Nanoseconds.
    actual_duration: u64,
    duration_histogram: Histogram,
    #[serde(default)]
    ret_codes: BTreeMap<String, u64>,
    #[serde(default)]
    socket_count: u64,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Histogram {
    count: u64,
    /// Seconds, as every duration below.
    avg: f64,
    max: f64,
    #[serde(default)]
    percentiles: Vec<Percentile>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Percentile {
    percentile: f64,
    value: f64,
}

fn parse_report(json: &str) -> Result<LoadResult> {
    let report: Report = serde_json::from_str(json).context("parsing fortio's JSON report")?;
    let histogram = &report.duration_histogram;
    let percentile_ms = |p: f64| {
        histogram
            .percentiles
            .iter()
            .find(|q| (q.percentile - p).abs() < 1e-9)
            .map(|q| q.value * 1000.0)
            .ok_or_else(|| anyhow!("the report has no p{p} (asked for {PERCENTILES})"))
    };
    let ret_codes = report
        .ret_codes
        .iter()
        .map(|(code, n)| {
            code.parse::<i32>()
                .map(|code| (code, *n))
                .with_context(|| format!("the return code {code:?} is not a number"))
        })
        .collect::<Result<_>>()?;
    Ok(LoadResult {
        actual_qps: report.actual_qps,
        actual_duration: Duration::from_nanos(report.actual_duration),
        count: histogram.count,
        p50_ms: percentile_ms(50.0)?,
        p90_ms: percentile_ms(90.0)?,
        p99_ms: percentile_ms(99.0)?,
        avg_ms: histogram.avg * 1000.0,
        max_ms: histogram.max * 1000.0,
        ret_codes,
        sockets: report.socket_count,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Trimmed from a real `fortio load -json` report.
    const REPORT: &str = r#"{
        "RunType": "HTTP",
        "RequestedQPS": "max",
        "RequestedDuration": "exactly 50 calls",
        "ActualQPS": 2441.5,
        "ActualDuration": 20478961,
        "NumThreads": 2,
        "DurationHistogram": {
            "Count": 50, "Min": 0.0002, "Max": 0.0031, "Sum": 0.04, "Avg": 0.0008,
            "StdDev": 0.0005, "Data": [],
            "Percentiles": [
                {"Percentile": 50, "Value": 0.0007},
                {"Percentile": 90, "Value": 0.0012},
                {"Percentile": 99, "Value": 0.003}
            ]
        },
        "RetCodes": {"200": 48, "503": 1, "-1": 1},
        "SocketCount": 2
    }"#;

    #[test]
    fn parses_a_report() {
        let result = parse_report(REPORT).unwrap();
        assert_eq!(result.count, 50);
        assert_eq!(result.actual_qps, 2441.5);
        assert_eq!(result.actual_duration, Duration::from_nanos(20_478_961));
        assert!((result.p50_ms - 0.7).abs() < 1e-9);
        assert!((result.p90_ms - 1.2).abs() < 1e-9);
        assert!((result.p99_ms - 3.0).abs() < 1e-9);
        assert_eq!(result.code_count(200), 48);
        assert_eq!(result.code_count(503), 1);
        assert_eq!(result.code_count(-1), 1);
        assert_eq!(result.code_count(404), 0);
        assert_eq!(result.sockets, 2);
    }

    #[test]
    fn a_report_without_percentiles_is_an_error() {
        let json = r#"{"ActualQPS": 1, "ActualDuration": 1,
            "DurationHistogram": {"Count": 0, "Avg": 0, "Max": 0}}"#;
        assert!(parse_report(json).is_err());
    }

    #[test]
    fn builds_the_arguments() {
        let spec = LoadSpec::new("http://127.0.0.1:1/")
            .qps(100.0)
            .connections(4)
            .duration(Duration::from_millis(1500))
            .header("Host", "reviews");
        let args = spec.args();
        let text = args.join(" ");
        assert!(text.starts_with("load -qps 100 -c 4 -p 50,90,99"), "{text}");
        assert!(text.contains("-t 1500ms"), "{text}");
        assert!(args.contains(&"Host: reviews".to_string()), "{args:?}");
        let exact = LoadSpec::new("http://127.0.0.1:1/").calls(50).args();
        assert!(exact.join(" ").contains("-n 50"), "{exact:?}");
        assert!(!exact.contains(&"-t".to_string()), "{exact:?}");
    }
}
