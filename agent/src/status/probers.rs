//! The application's own probes (pure): Istio's `ISTIO_KUBE_APP_PROBERS`,
//! which injection writes into the proxy's environment when it rewrites
//! the app containers' probes to the status port.
//!
//! It is JSON keyed by the rewritten path, each value the original
//! probe's action (its port a number: injection resolved named ports)
//! and timeout:
//!
//! ```json
//! {"/app-health/reviews/readyz": {"httpGet": {"path": "/health", "port": 9080,
//!     "scheme": "HTTP", "httpHeaders": [{"name": "x", "value": "y"}]}, "timeoutSeconds": 1},
//!  "/app-health/reviews/livez": {"tcpSocket": {"port": 9080}, "timeoutSeconds": 1},
//!  "/app-health/reviews/startupz": {"grpc": {"port": 9090, "service": "s"}}}
//! ```
//!
//! [`AppProbes::parse`] checks every entry as Istio's agent does (the path
//! `/app-health/<container>/livez|readyz|startupz`, exactly one action, a
//! numeric port) and names what is wrong.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Map, Value};

/// The proxy's variable holding the app's original probes (Istio's name).
pub const APP_PROBERS_ENV: &str = "ISTIO_KUBE_APP_PROBERS";
/// The prefix of every rewritten probe's path.
pub const APP_HEALTH_PREFIX: &str = "/app-health/";
/// The probe kinds, each the last segment of its path.
pub const PROBE_KINDS: [&str; 3] = ["livez", "readyz", "startupz"];
/// Kubernetes' probe timeout when the probe names none.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1);

/// The app's probes by rewritten path.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AppProbes(BTreeMap<String, AppProbe>);

/// One original probe.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppProbe {
    pub action: ProbeAction,
    /// `timeoutSeconds` (Kubernetes' default, 1 s, when absent or 0).
    pub timeout: Duration,
}

/// What the probe does against the app.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProbeAction {
    /// `GET path` (HTTPS when `https`); 200-399 is success.
    HttpGet(HttpGet),
    /// A TCP connect.
    TcpSocket { port: u16 },
    /// `grpc.health.v1.Health/Check` for `service` (`""`: the server).
    Grpc { port: u16, service: String },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpGet {
    /// Starts with `/`; may carry a query.
    pub path: String,
    pub port: u16,
    pub https: bool,
    /// `httpHeaders`, in order.
    pub headers: Vec<(String, String)>,
}

/// Why `ISTIO_KUBE_APP_PROBERS` cannot be used.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProbersError {
    #[error("{APP_PROBERS_ENV} is not a JSON object of probes: {0}")]
    Json(String),
    #[error(
        "{APP_PROBERS_ENV}: {path:?} is not a probe path: it must be /app-health/<container>/livez, readyz or startupz"
    )]
    Path { path: String },
    #[error("{APP_PROBERS_ENV}: the probe for {path} {reason}")]
    Probe { path: String, reason: String },
}

impl ProbersError {
    pub fn kind(&self) -> &'static str {
        match self {
            ProbersError::Json(_) => "json",
            ProbersError::Path { .. } => "path",
            ProbersError::Probe { .. } => "probe",
        }
    }
}

/// Whether `path` is `/app-health/<container>/<kind>`.
pub fn is_probe_path(path: &str) -> bool {
    let Some(rest) = path.strip_prefix(APP_HEALTH_PREFIX) else {
        return false;
    };
    match rest.split_once('/') {
        Some((container, kind)) => !container.is_empty() && PROBE_KINDS.contains(&kind),
        None => false,
    }
}

impl AppProbes {
    /// Parses `ISTIO_KUBE_APP_PROBERS` (empty or blank: no probes).
    pub fn parse(json: &str) -> Result<AppProbes, ProbersError> {
        if json.trim().is_empty() {
            return Ok(AppProbes::default());
        }
        let value: Value =
            serde_json::from_str(json).map_err(|err| ProbersError::Json(err.to_string()))?;
        let Value::Object(entries) = value else {
            return Err(ProbersError::Json(format!("{value} is not an object")));
        };
        let mut probes = BTreeMap::new();
        for (path, probe) in entries {
            if !is_probe_path(&path) {
                return Err(ProbersError::Path { path });
            }
            let bad = |reason: String| ProbersError::Probe {
                path: path.clone(),
                reason,
            };
            let probe = parse_probe(&probe).map_err(bad)?;
            probes.insert(path, probe);
        }
        Ok(AppProbes(probes))
    }

    /// The probe served at `path`.
    pub fn get(&self, path: &str) -> Option<&AppProbe> {
        self.0.get(path)
    }

    /// The paths served.
    pub fn paths(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }
}

fn parse_probe(probe: &Value) -> Result<AppProbe, String> {
    let Value::Object(probe) = probe else {
        return Err(format!("is {probe}, not an object"));
    };
    let timeout = match probe.get("timeoutSeconds") {
        None | Some(Value::Null) => DEFAULT_TIMEOUT,
        Some(seconds) => match seconds.as_u64() {
            Some(0) => DEFAULT_TIMEOUT,
            Some(seconds) => Duration::from_secs(seconds),
            None => return Err(format!("has timeoutSeconds {seconds}, not a whole number")),
        },
    };
    let actions: Vec<&str> = ["httpGet", "tcpSocket", "grpc"]
        .into_iter()
        .filter(|key| probe.get(*key).is_some_and(|v| !v.is_null()))
        .collect();
    let action = match actions.as_slice() {
        ["httpGet"] => ProbeAction::HttpGet(parse_http_get(object(probe, "httpGet")?)?),
        ["tcpSocket"] => ProbeAction::TcpSocket {
            port: port(object(probe, "tcpSocket")?, "tcpSocket")?,
        },
        ["grpc"] => {
            let grpc = object(probe, "grpc")?;
            ProbeAction::Grpc {
                port: port(grpc, "grpc")?,
                service: optional_string(grpc, "service", "grpc")?.unwrap_or_default(),
            }
        }
        _ => {
            return Err(format!(
                "must have exactly one of httpGet, tcpSocket or grpc, not {actions:?}"
            ));
        }
    };
    Ok(AppProbe { action, timeout })
}

fn object<'a>(probe: &'a Map<String, Value>, key: &str) -> Result<&'a Map<String, Value>, String> {
    match probe.get(key) {
        Some(Value::Object(map)) => Ok(map),
        other => Err(format!(
            "has {key} {}, not an object",
            other.unwrap_or(&Value::Null)
        )),
    }
}

/// `action.port`: a number from 1 to 65535 (a name must have been
/// resolved by injection, as Istio's agent requires).
fn port(action: &Map<String, Value>, what: &str) -> Result<u16, String> {
    match action.get("port") {
        Some(port) => port
            .as_u64()
            .and_then(|p| u16::try_from(p).ok())
            .filter(|p| *p != 0)
            .ok_or_else(|| {
                format!("has {what}.port {port}, not a port number (named ports are resolved at injection)")
            }),
        None => Err(format!("has no {what}.port")),
    }
}

fn optional_string(
    action: &Map<String, Value>,
    key: &str,
    what: &str,
) -> Result<Option<String>, String> {
    match action.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(format!("has {what}.{key} {other}, not a string")),
    }
}

fn parse_http_get(action: &Map<String, Value>) -> Result<HttpGet, String> {
    let path = optional_string(action, "path", "httpGet")?.unwrap_or_default();
    let path = if path.starts_with('/') {
        path
    } else {
        format!("/{path}")
    };
    let https = match optional_string(action, "scheme", "httpGet")?.as_deref() {
        None | Some("") => false,
        Some(scheme) if scheme.eq_ignore_ascii_case("HTTP") => false,
        Some(scheme) if scheme.eq_ignore_ascii_case("HTTPS") => true,
        Some(scheme) => return Err(format!("has httpGet.scheme {scheme:?}, not HTTP or HTTPS")),
    };
    let mut headers = Vec::new();
    match action.get("httpHeaders") {
        None | Some(Value::Null) => {}
        Some(Value::Array(list)) => {
            for header in list {
                let pair = header.as_object().and_then(|h| {
                    Some((
                        h.get("name")?.as_str()?.to_string(),
                        h.get("value")
                            .and_then(Value::as_str)
                            .unwrap_or("")
                            .to_string(),
                    ))
                });
                match pair {
                    Some(pair) if !pair.0.is_empty() => headers.push(pair),
                    _ => {
                        return Err(format!(
                            "has httpGet.httpHeaders item {header}, not {{\"name\",\"value\"}}"
                        ));
                    }
                }
            }
        }
        Some(other) => return Err(format!("has httpGet.httpHeaders {other}, not a list")),
    }
    Ok(HttpGet {
        path,
        port: port(action, "httpGet")?,
        https,
        headers,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn istios_format_parses() {
        // As Istio's injector writes it.
        let json = r#"{
          "/app-health/reviews/readyz": {"httpGet": {"path": "health", "port": 9080, "scheme": "HTTPS",
              "httpHeaders": [{"name": "x-probe", "value": "1"}]}, "timeoutSeconds": 3},
          "/app-health/reviews/livez": {"tcpSocket": {"port": 9080}},
          "/app-health/grpc-app/startupz": {"grpc": {"port": 9090, "service": "ready"}, "timeoutSeconds": 0}
        }"#;
        let probes = AppProbes::parse(json).unwrap();
        assert_eq!(probes.len(), 3);
        assert_eq!(
            probes.get("/app-health/reviews/readyz"),
            Some(&AppProbe {
                action: ProbeAction::HttpGet(HttpGet {
                    path: "/health".to_string(),
                    port: 9080,
                    https: true,
                    headers: vec![("x-probe".to_string(), "1".to_string())],
                }),
                timeout: Duration::from_secs(3),
            })
        );
        assert_eq!(
            probes.get("/app-health/reviews/livez"),
            Some(&AppProbe {
                action: ProbeAction::TcpSocket { port: 9080 },
                timeout: DEFAULT_TIMEOUT,
            })
        );
        assert_eq!(
            probes
                .get("/app-health/grpc-app/startupz")
                .map(|p| &p.action),
            Some(&ProbeAction::Grpc {
                port: 9090,
                service: "ready".to_string()
            })
        );
        assert_eq!(probes.get("/app-health/other/readyz"), None);
        assert!(AppProbes::parse("").unwrap().is_empty());
        assert!(AppProbes::parse("{}").unwrap().is_empty());
    }

    #[test]
    fn bad_input_is_named_not_a_panic() {
        let kind = |json: &str| AppProbes::parse(json).map(|_| ()).map_err(|e| e.kind());
        for (json, expected) in [
            ("{", "json"),
            ("[]", "json"),
            (r#"{"/healthz": {"tcpSocket": {"port": 1}}}"#, "path"),
            (
                r#"{"/app-health//readyz": {"tcpSocket": {"port": 1}}}"#,
                "path",
            ),
            (
                r#"{"/app-health/a/ready": {"tcpSocket": {"port": 1}}}"#,
                "path",
            ),
            (
                r#"{"/app-health/a/readyz": {"tcpSocket": {"port": "http"}}}"#,
                "probe",
            ),
            (
                r#"{"/app-health/a/readyz": {"tcpSocket": {"port": 70000}}}"#,
                "probe",
            ),
            (r#"{"/app-health/a/readyz": {}}"#, "probe"),
            (
                r#"{"/app-health/a/readyz": {"tcpSocket": {"port": 1}, "grpc": {"port": 2}}}"#,
                "probe",
            ),
            (
                r#"{"/app-health/a/readyz": {"httpGet": {"port": 1, "scheme": "ftp"}}}"#,
                "probe",
            ),
            (
                r#"{"/app-health/a/readyz": {"httpGet": {"port": 1, "httpHeaders": [1]}}}"#,
                "probe",
            ),
            (
                r#"{"/app-health/a/readyz": {"tcpSocket": {"port": 1}, "timeoutSeconds": -1}}"#,
                "probe",
            ),
            (r#"{"/app-health/a/readyz": 7}"#, "probe"),
        ] {
            assert_eq!(kind(json), Err(expected), "{json}");
        }
        let err = AppProbes::parse(r#"{"/app-health/a/readyz": {"tcpSocket": {"port": "http"}}}"#)
            .unwrap_err();
        assert!(err.to_string().contains("/app-health/a/readyz"), "{err}");
        assert!(err.to_string().contains("ISTIO_KUBE_APP_PROBERS"), "{err}");
    }

    #[test]
    fn probe_paths() {
        assert!(is_probe_path("/app-health/reviews/livez"));
        assert!(is_probe_path("/app-health/reviews/startupz"));
        assert!(!is_probe_path("/app-health/reviews/livez/x"));
        assert!(!is_probe_path("/app-lifecycle/reviews/prestopz"));
        assert!(!is_probe_path("/app-health/reviews"));
    }
}
