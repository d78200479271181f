//! A real Jaeger v2 ([`crate::k8s_tools::jaeger_binary`], built from the
//! Go module proxy) receiving the spans Envoy sends, for checking traces as
//! a tracing backend stores them: which services, operations and tags.
//!
//! [`Jaeger::start`] writes a collector config that keeps traces in memory
//! and listens only where a test can find it: OTLP gRPC and Zipkin
//! receivers and the query API on free loopback ports, no health-check,
//! sampling, pprof or metrics servers (so no fixed port like 4317, 9411,
//! 16686 or 8888 is ever taken, and tests run in parallel). It waits until
//! the collector says it is ready and the query API answers. Tests read
//! traces back through the query API's JSON ([`Jaeger::traces`],
//! [`Jaeger::wait_for_traces`]). The process is killed when the handle is
//! dropped.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, anyhow, bail};
use serde::Deserialize;
use serde_json::{Value, json};
use tempfile::TempDir;

use crate::client::{encode_query_value, http_get, http_post, poll_answer};
use crate::k8s_tools::jaeger_binary;
use crate::procs::{Process, exited_error, free_port};

/// How long Jaeger may take to start.
pub const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// What the collector logs once every pipeline runs.
const READY_LINE: &str = "Everything is ready";
/// The most traces [`Jaeger::traces`] asks for.
const TRACES_LIMIT: u32 = 100;
/// The in-memory store's name in the generated config.
const STORE: &str = "memstore";

/// One trace as the query API returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trace {
    /// Lower-case hex, as Jaeger prints it (16 digits for a 64-bit id).
    pub trace_id: String,
    pub spans: Vec<Span>,
}

/// One span of a [`Trace`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Span {
    pub span_id: String,
    /// The service of the span's process (Zipkin's `localEndpoint`).
    pub service: String,
    pub operation: String,
    /// Every tag, its value as text (`true`, `200`, ...).
    pub tags: BTreeMap<String, String>,
}

impl Trace {
    /// The spans of `service`.
    pub fn spans_of<'a>(&'a self, service: &'a str) -> impl Iterator<Item = &'a Span> + 'a {
        self.spans.iter().filter(move |s| s.service == service)
    }
}

/// The addresses a [`Jaeger`] listens on.
#[derive(Debug, Clone, Copy)]
struct Ports {
    otlp_grpc: SocketAddr,
    zipkin: SocketAddr,
    query_http: SocketAddr,
    query_grpc: SocketAddr,
}

/// The collector config: in-memory storage, OTLP gRPC and Zipkin
/// receivers, the query API, and nothing else listening.
fn build_config(ports: &Ports) -> Result<String> {
    let config = json!({
        "service": {
            "extensions": ["jaeger_storage", "jaeger_query"],
            "pipelines": {
                "traces": {
                    "receivers": ["otlp", "zipkin"],
                    "processors": ["batch"],
                    "exporters": ["jaeger_storage_exporter"],
                },
            },
            "telemetry": {
                "resource": {"service.name": "jaeger"},
                // The default serves the collector's own metrics on :8888.
                "metrics": {"level": "none"},
                "logs": {"level": "info"},
            },
        },
        "extensions": {
            "jaeger_storage": {
                "backends": {STORE: {"memory": {"max_traces": 100_000}}},
            },
            "jaeger_query": {
                "storage": {"traces": STORE},
                "http": {"endpoint": ports.query_http.to_string()},
                "grpc": {"endpoint": ports.query_grpc.to_string()},
            },
        },
        "receivers": {
            "otlp": {
                "protocols": {"grpc": {"endpoint": ports.otlp_grpc.to_string()}},
            },
            "zipkin": {"endpoint": ports.zipkin.to_string()},
        },
        "processors": {
            // Spans reach storage within 100 ms.
            "batch": {"timeout": "100ms"},
        },
        "exporters": {
            "jaeger_storage_exporter": {"trace_storage": STORE},
        },
    });
    serde_yaml::to_string(&config).context("writing Jaeger's config")
}

/// A running Jaeger v2 with in-memory storage; killed on drop.
#[derive(Debug)]
pub struct Jaeger {
    process: Process,
    ports: Ports,
    // The config file; removed after the process is killed.
    _dir: TempDir,
}

impl Jaeger {
    /// Builds Jaeger if needed (minutes, once per machine), starts it with a
    /// generated config (see the module docs) and waits until it is ready.
    pub async fn start() -> Result<Self> {
        let binary = jaeger_binary()?;
        let dir = tempfile::Builder::new()
            .prefix("weft-e2e-jaeger-")
            .tempdir()
            .context("creating Jaeger's temp dir")?;
        let loopback = |port| SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let ports = Ports {
            otlp_grpc: loopback(free_port()?),
            zipkin: loopback(free_port()?),
            query_http: loopback(free_port()?),
            query_grpc: loopback(free_port()?),
        };
        let config = dir.path().join("jaeger.yaml");
        std::fs::write(&config, build_config(&ports)?)
            .with_context(|| format!("writing {}", config.display()))?;
        let mut command = Command::new(binary);
        command
            .arg("--config")
            .arg(format!("file:{}", config.display()))
            .current_dir(dir.path());
        let jaeger = Self {
            process: Process::spawn("jaeger", command)?,
            ports,
            _dir: dir,
        };
        jaeger.wait_ready().await?;
        Ok(jaeger)
    }

    async fn wait_ready(&self) -> Result<()> {
        self.process
            .wait_for_log(READY_LINE, READY_TIMEOUT)
            .await
            .context("starting jaeger")?;
        let start = Instant::now();
        loop {
            if let Ok(reply) =
                http_get(self.ports.query_http, "localhost", "/api/services", &[]).await
                && reply.status == 200
            {
                return Ok(());
            }
            if !self.process.is_running() {
                return Err(exited_error(&self.process).context("jaeger stopped"));
            }
            if start.elapsed() >= READY_TIMEOUT {
                bail!(
                    "jaeger's query API on {} did not answer within {READY_TIMEOUT:?}; its output \
                     ends with:\n{}",
                    self.ports.query_http,
                    self.process.log_tail(40)
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The Zipkin receiver (`POST /api/v2/spans`, what Envoy's Zipkin
    /// tracer sends to).
    pub fn zipkin_addr(&self) -> SocketAddr {
        self.ports.zipkin
    }

    /// The OTLP gRPC receiver (Envoy's OpenTelemetry tracer).
    pub fn otlp_grpc_addr(&self) -> SocketAddr {
        self.ports.otlp_grpc
    }

    /// The query API (`/api/services`, `/api/traces`).
    pub fn query_addr(&self) -> SocketAddr {
        self.ports.query_http
    }

    pub fn process(&self) -> &Process {
        &self.process
    }

    /// The services that have sent spans.
    pub async fn services(&self) -> Result<Vec<String>> {
        let data = self.api_get("/api/services").await?;
        let mut services: Vec<String> = serde_json::from_value::<Option<Vec<String>>>(data)
            .context("/api/services is not a list of names")?
            .unwrap_or_default();
        services.sort();
        Ok(services)
    }

    /// The latest traces (up to 100) with a span of `service`.
    pub async fn traces(&self, service: &str) -> Result<Vec<Trace>> {
        let path = format!(
            "/api/traces?service={}&limit={TRACES_LIMIT}&lookback=1h",
            encode_query_value(service)
        );
        let data = self.api_get(&path).await?;
        parse_traces(data).with_context(|| format!("the traces of {service:?}"))
    }

    /// Polls the traces of `service` (every 200 ms) until `pred` holds for
    /// them, and returns them. On timeout the error names the services
    /// seen and the number of traces.
    pub async fn wait_for_traces(
        &self,
        service: &str,
        timeout: Duration,
        pred: impl Fn(&[Trace]) -> bool,
    ) -> Result<Vec<Trace>> {
        let every = Duration::from_millis(200);
        let answer = poll_answer(timeout, every, || self.traces(service), |t| pred(t)).await;
        let last = match answer {
            Ok(traces) => return Ok(traces),
            Err(Ok(traces)) => format!("{} traces: {traces:?}", traces.len()),
            Err(Err(err)) => format!("error: {err:#}"),
        };
        let services = match self.services().await {
            Ok(services) => format!("{services:?}"),
            Err(err) => format!("unknown ({err:#})"),
        };
        bail!(
            "jaeger: the traces of {service:?} did not satisfy the test within {timeout:?}; \
             the last answer was {last}; services seen: {services}"
        )
    }

    /// Sends one span, as Zipkin JSON v2, to the Zipkin receiver.
    pub async fn post_zipkin_span(&self, span: &ZipkinSpan) -> Result<()> {
        post_zipkin_spans(self.zipkin_addr(), std::slice::from_ref(span)).await
    }

    /// `GET path` on the query API; its `data`.
    async fn api_get(&self, path: &str) -> Result<Value> {
        if !self.process.is_running() {
            return Err(exited_error(&self.process));
        }
        let reply = http_get(self.ports.query_http, "localhost", path, &[]).await?;
        if reply.status != 200 {
            bail!(
                "jaeger answered GET {path} with {}: {}",
                reply.status,
                reply.body
            );
        }
        let mut body: Value = serde_json::from_str(&reply.body)
            .with_context(|| format!("jaeger answered GET {path} with non-JSON: {}", reply.body))?;
        Ok(body.get_mut("data").map(Value::take).unwrap_or(Value::Null))
    }
}

/// A span to send to a Zipkin endpoint (a test's own, not Envoy's).
#[derive(Debug, Clone)]
pub struct ZipkinSpan {
    /// 16 or 32 lower-case hex digits.
    pub trace_id: String,
    /// 16 lower-case hex digits.
    pub span_id: String,
    pub service: String,
    pub name: String,
    pub tags: BTreeMap<String, String>,
}

impl ZipkinSpan {
    /// A server span of `service` named `name`, without tags.
    pub fn new(trace_id: &str, span_id: &str, service: &str, name: &str) -> Self {
        Self {
            trace_id: trace_id.to_string(),
            span_id: span_id.to_string(),
            service: service.to_string(),
            name: name.to_string(),
            tags: BTreeMap::new(),
        }
    }

    pub fn tag(mut self, key: &str, value: &str) -> Self {
        self.tags.insert(key.to_string(), value.to_string());
        self
    }

    /// Zipkin's JSON v2 for this span: it started now and took 1 ms.
    fn to_json(&self) -> Value {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_micros())
            .unwrap_or_default();
        json!({
            "traceId": self.trace_id,
            "id": self.span_id,
            "name": self.name,
            "kind": "SERVER",
            "timestamp": u64::try_from(now).unwrap_or(u64::MAX),
            "duration": 1000,
            "localEndpoint": {"serviceName": self.service},
            "tags": self.tags,
        })
    }
}

/// `POST /api/v2/spans` to the Zipkin endpoint at `addr`.
pub async fn post_zipkin_spans(addr: SocketAddr, spans: &[ZipkinSpan]) -> Result<()> {
    let body = Value::Array(spans.iter().map(ZipkinSpan::to_json).collect()).to_string();
    let reply = http_post(addr, "localhost", "/api/v2/spans", "application/json", body).await?;
    if !(200..300).contains(&reply.status) {
        bail!(
            "the Zipkin endpoint {addr} answered {}: {}",
            reply.status,
            reply.body
        );
    }
    Ok(())
}

/// The query API's trace, as much of it as the tests read.
#[derive(Debug, Deserialize)]
struct ApiTrace {
    #[serde(rename = "traceID")]
    trace_id: String,
    #[serde(default)]
    spans: Vec<ApiSpan>,
    #[serde(default)]
    processes: BTreeMap<String, ApiProcess>,
}

#[derive(Debug, Deserialize)]
struct ApiSpan {
    #[serde(rename = "spanID")]
    span_id: String,
    #[serde(rename = "operationName")]
    operation: String,
    #[serde(rename = "processID", default)]
    process_id: String,
    #[serde(default)]
    tags: Vec<ApiTag>,
}

#[derive(Debug, Deserialize)]
struct ApiProcess {
    #[serde(rename = "serviceName")]
    service: String,
}

#[derive(Debug, Deserialize)]
struct ApiTag {
    key: String,
    value: Value,
}

/// The traces of an `/api/traces` answer's `data` (`null` when none).
fn parse_traces(data: Value) -> Result<Vec<Trace>> {
    let traces: Option<Vec<ApiTrace>> =
        serde_json::from_value(data).context("parsing the query API's traces")?;
    traces
        .unwrap_or_default()
        .into_iter()
        .map(|trace| {
            let spans = trace
                .spans
                .into_iter()
                .map(|span| {
                    let service = trace
                        .processes
                        .get(&span.process_id)
                        .map(|p| p.service.clone())
                        .ok_or_else(|| {
                            anyhow!(
                                "span {} names process {:?}, which trace {} lacks",
                                span.span_id,
                                span.process_id,
                                trace.trace_id
                            )
                        })?;
                    let tags = span
                        .tags
                        .into_iter()
                        .map(|tag| {
                            let value = match tag.value {
                                Value::String(text) => text,
                                other => other.to_string(),
                            };
                            (tag.key, value)
                        })
                        .collect();
                    Ok(Span {
                        span_id: span.span_id,
                        service,
                        operation: span.operation,
                        tags,
                    })
                })
                .collect::<Result<Vec<Span>>>()?;
            Ok(Trace {
                trace_id: trace.trace_id,
                spans,
            })
        })
        .collect()
}

/// The MeshConfig lines that make Jaeger's Zipkin endpoint the `jaeger`
/// tracing provider, reached as [`JAEGER_HOST`] port 9411.
pub const ZIPKIN_PROVIDER: &str = "extensionProviders:
- name: jaeger
  zipkin: {service: jaeger.observability.svc.cluster.local, port: 9411}
defaultProviders: {tracing: [jaeger]}
";

/// The host [`mesh_tracing`] declares for Jaeger.
pub const JAEGER_HOST: &str = "jaeger.observability.svc.cluster.local";

/// Config for a mesh tracing to `zipkin` (a [`Jaeger::zipkin_addr`]) at
/// `percent`: a ServiceEntry making it [`JAEGER_HOST`]:9411 and the
/// mesh-wide Telemetry that samples `percent`% of requests (with
/// [`ZIPKIN_PROVIDER`] in the mesh config).
pub fn mesh_tracing(zipkin: SocketAddr, percent: u32) -> String {
    format!(
        "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: jaeger, namespace: observability}}
spec:
  hosts: [{JAEGER_HOST}]
  location: MESH_EXTERNAL
  resolution: STATIC
  ports: [{{number: 9411, name: http-zipkin, protocol: HTTP}}]
  endpoints: [{{address: {}, ports: {{http-zipkin: {}}}}}]
---
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {{name: mesh-default, namespace: istio-system}}
spec:
  tracing: [{{randomSamplingPercentage: {percent}}}]
",
        zipkin.ip(),
        zipkin.port()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_query_apis_traces() {
        let data = json!([{
            "traceID": "0af7651916cd43dd8448eb211c80319c",
            "spans": [{
                "traceID": "0af7651916cd43dd8448eb211c80319c",
                "spanID": "b7ad6b7169203331",
                "operationName": "GET /reviews",
                "processID": "p1",
                "tags": [
                    {"key": "http.status_code", "type": "int64", "value": 200},
                    {"key": "upstream_cluster", "type": "string", "value": "reviews"},
                    {"key": "error", "type": "bool", "value": false},
                ],
            }],
            "processes": {"p1": {"serviceName": "productpage.default", "tags": []}},
        }]);
        let traces = parse_traces(data).unwrap();
        assert_eq!(traces.len(), 1);
        assert_eq!(traces[0].trace_id, "0af7651916cd43dd8448eb211c80319c");
        let span = &traces[0].spans[0];
        assert_eq!(span.span_id, "b7ad6b7169203331");
        assert_eq!(span.service, "productpage.default");
        assert_eq!(span.operation, "GET /reviews");
        assert_eq!(span.tags["http.status_code"], "200");
        assert_eq!(span.tags["upstream_cluster"], "reviews");
        assert_eq!(span.tags["error"], "false");
        assert_eq!(traces[0].spans_of("productpage.default").count(), 1);
        assert!(parse_traces(Value::Null).unwrap().is_empty());
    }

    #[test]
    fn a_span_of_an_unknown_process_is_an_error() {
        let data = json!([{
            "traceID": "1",
            "spans": [{"spanID": "2", "operationName": "x", "processID": "p9"}],
            "processes": {},
        }]);
        assert!(parse_traces(data).is_err());
    }

    #[test]
    fn the_config_listens_only_on_the_given_ports() {
        let at = |port| SocketAddr::from(([127, 0, 0, 1], port));
        let ports = Ports {
            otlp_grpc: at(20001),
            zipkin: at(20002),
            query_http: at(20003),
            query_grpc: at(20004),
        };
        let config = build_config(&ports).unwrap();
        for fixed in [
            "4317", "4318", "9411", "16686", "16685", "8888", "13133", "5778",
        ] {
            assert!(!config.contains(fixed), "{fixed} in\n{config}");
        }
        let parsed: Value = serde_yaml::from_str(&config).unwrap();
        assert_eq!(parsed["receivers"]["zipkin"]["endpoint"], "127.0.0.1:20002");
        assert_eq!(
            parsed["extensions"]["jaeger_query"]["http"]["endpoint"],
            "127.0.0.1:20003"
        );
        assert_eq!(
            parsed["service"]["extensions"],
            json!(["jaeger_storage", "jaeger_query"])
        );
    }

    #[test]
    fn writes_zipkin_json() {
        let span = ZipkinSpan::new("a", "b", "svc", "op").tag("k", "v");
        let json = span.to_json();
        assert_eq!(json["traceId"], "a");
        assert_eq!(json["localEndpoint"]["serviceName"], "svc");
        assert_eq!(json["tags"]["k"], "v");
    }
}
