//! Istio's app probe rewriting (pure). Under STRICT mTLS the kubelet's
//! plain-text probes to an app port are captured and refused by the
//! inbound listener, so injection points them at the agent's status port
//! instead, which runs the original probe against the app itself:
//!
//! ```text
//! readinessProbe: {httpGet: {path: /health, port: http}}      (container reviews, port http = 9080)
//!   ─▶ readinessProbe: {httpGet: {path: /app-health/reviews/readyz, port: 15020}}
//!   ─▶ ISTIO_KUBE_APP_PROBERS on the proxy:
//!      {"/app-health/reviews/readyz":{"httpGet":{"path":"/health","port":9080},"timeoutSeconds":1}}
//! ```
//!
//! As Istio does it (`pkg/kube/inject/app_probe.go`):
//!
//! - the liveness, readiness and startup probes of every app container
//!   (and of the Pod's own init containers, whose sidecars may have
//!   probes) become `httpGet` on 15020 `/app-health/<container>/livez`,
//!   `readyz`, `startupz`; an `httpGet` keeps its headers (its scheme
//!   becomes HTTP: the agent speaks HTTPS to the app), `tcpSocket` and
//!   `grpc` probes become `httpGet` too; every other field (periods,
//!   thresholds, timeouts) stays;
//! - the originals, their named ports resolved against the container's
//!   ports, go to the proxy's `ISTIO_KUBE_APP_PROBERS` (JSON keyed by the
//!   new path, with the probe's `timeoutSeconds`); a probe whose port name
//!   the container does not declare is left alone (the kubelet fails it
//!   either way);
//! - `sidecar.istio.io/rewriteAppHTTPProbers: "false"` on the Pod turns it
//!   off for that Pod, [`super::InjectConfig::rewrite_app_probers`] for
//!   the mesh (Istio's default: on).
//!
//! It works on the Pod's raw JSON, so probe fields this build does not
//! know survive.

use serde_json::{Map, Value, json};

use super::Error;
use super::prometheus::{STATUS_PORT, parse_bool};
use super::template::PROXY_NAME;

/// Turns rewriting off (`"false"`) or on for one Pod.
pub const REWRITE_APP_PROBERS: &str = "sidecar.istio.io/rewriteAppHTTPProbers";
/// The proxy's variable holding the originals (Istio's name).
pub const APP_PROBERS_ENV: &str = "ISTIO_KUBE_APP_PROBERS";

/// The probes rewritten, each with the kind in its path.
const PROBES: [(&str, &str); 3] = [
    ("livenessProbe", "livez"),
    ("readinessProbe", "readyz"),
    ("startupProbe", "startupz"),
];
/// The Pod's container lists whose probes are rewritten.
const LISTS: [&str; 2] = ["containers", "initContainers"];

/// One probe to replace: `/spec/<list>/<index>/<field>` becomes `probe`.
#[derive(Clone, Debug, PartialEq)]
pub struct RewrittenProbe {
    pub list: &'static str,
    pub index: usize,
    pub field: &'static str,
    pub probe: Value,
}

/// What rewriting does to one Pod.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ProbeRewrite {
    /// The probes to replace, in the Pod's order.
    pub probes: Vec<RewrittenProbe>,
    /// `ISTIO_KUBE_APP_PROBERS` for the proxy; `None` when nothing was
    /// rewritten.
    pub env: Option<String>,
}

/// Whether the Pod's probes are rewritten: its annotation, else the
/// mesh's `default`.
pub fn rewrite_enabled(
    annotations: &std::collections::BTreeMap<String, String>,
    default: bool,
) -> Result<bool, Error> {
    match annotations.get(REWRITE_APP_PROBERS) {
        None => Ok(default),
        Some(value) => parse_bool(value).ok_or_else(|| Error::Annotation {
            annotation: REWRITE_APP_PROBERS,
            value: value.clone(),
            expected: "true or false",
        }),
    }
}

/// The `/app-health/...` path of `container`'s probe of `kind`.
pub fn probe_path(container: &str, kind: &str) -> String {
    format!("/app-health/{container}/{kind}")
}

/// The rewrite of the raw Pod `raw`'s probes.
pub fn build_probe_rewrite(raw: &Value) -> ProbeRewrite {
    let mut rewrite = ProbeRewrite::default();
    let mut originals = Map::new();
    let spec = raw.get("spec");
    for list in LISTS {
        let containers = spec
            .and_then(|spec| spec.get(list))
            .and_then(Value::as_array);
        for (index, container) in containers.into_iter().flatten().enumerate() {
            let Some(name) = container.get("name").and_then(Value::as_str) else {
                continue;
            };
            if name == PROXY_NAME {
                continue;
            }
            for (field, kind) in PROBES {
                let Some(probe) = container.get(field).and_then(Value::as_object) else {
                    continue;
                };
                let Some(original) = original_probe(probe, container) else {
                    continue;
                };
                let path = probe_path(name, kind);
                rewrite.probes.push(RewrittenProbe {
                    list,
                    index,
                    field,
                    probe: rewritten_probe(probe, &path),
                });
                originals.insert(path, original);
            }
        }
    }
    if !originals.is_empty() {
        rewrite.env = Some(Value::Object(originals).to_string());
    }
    rewrite
}

/// The probe as `ISTIO_KUBE_APP_PROBERS` holds it: its one action (named
/// port resolved) and its `timeoutSeconds`; `None` when it has no action
/// the agent can run or names a port the container does not declare.
fn original_probe(probe: &Map<String, Value>, container: &Value) -> Option<Value> {
    let mut original = Map::new();
    if let Some(Value::Object(action)) = probe.get("httpGet") {
        original.insert("httpGet".into(), resolve_port(action, container)?);
    } else if let Some(Value::Object(action)) = probe.get("tcpSocket") {
        original.insert("tcpSocket".into(), resolve_port(action, container)?);
    } else if let Some(Value::Object(action)) = probe.get("grpc") {
        // gRPC probes' ports are numbers in Kubernetes' API.
        action.get("port").and_then(Value::as_u64)?;
        original.insert("grpc".into(), Value::Object(action.clone()));
    } else {
        return None;
    }
    if let Some(timeout) = probe.get("timeoutSeconds").filter(|t| t.is_u64()) {
        original.insert("timeoutSeconds".into(), timeout.clone());
    }
    Some(Value::Object(original))
}

/// `action` with its port a number: a name is looked up in the
/// container's `ports`, a numeric string parsed.
fn resolve_port(action: &Map<String, Value>, container: &Value) -> Option<Value> {
    let port = match action.get("port")? {
        Value::Number(n) => n.as_u64()?,
        Value::String(name) => match name.parse::<u64>() {
            Ok(number) => number,
            Err(_) => container
                .get("ports")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .find(|p| p.get("name").and_then(Value::as_str) == Some(name))
                .and_then(|p| p.get("containerPort"))
                .and_then(Value::as_u64)?,
        },
        _ => return None,
    };
    if !(1..=65535).contains(&port) {
        return None;
    }
    let mut action = action.clone();
    action.insert("port".into(), json!(port));
    Some(Value::Object(action))
}

/// `probe` pointed at the status port's `path`: an `httpGet` keeps its
/// headers and host (its scheme becomes HTTP); `tcpSocket` and `grpc`
/// become a plain `httpGet`. The probe's other fields stay.
fn rewritten_probe(probe: &Map<String, Value>, path: &str) -> Value {
    let mut probe = probe.clone();
    let mut get = match probe.remove("httpGet") {
        Some(Value::Object(get)) => get,
        _ => Map::new(),
    };
    probe.remove("tcpSocket");
    probe.remove("grpc");
    get.insert("path".into(), json!(path));
    get.insert("port".into(), json!(STATUS_PORT));
    if get.contains_key("scheme") {
        get.insert("scheme".into(), json!("HTTP"));
    }
    probe.insert("httpGet".into(), Value::Object(get));
    Value::Object(probe)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use std::collections::BTreeMap;

    use super::super::{InjectConfig, Outcome, inject_patch, inject_pod};
    use super::*;

    fn mk_pod(annotations: Value) -> Value {
        json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "reviews-1", "namespace": "bookinfo", "annotations": annotations},
            "spec": {
                "initContainers": [{"name": "migrate", "image": "migrate:1"}],
                "containers": [
                    {
                        "name": "reviews",
                        "image": "reviews:1",
                        "ports": [
                            {"name": "http", "containerPort": 9080},
                            {"name": "grpc", "containerPort": 9090},
                        ],
                        "readinessProbe": {
                            "httpGet": {
                                "path": "/health", "port": "http", "scheme": "HTTPS",
                                "httpHeaders": [{"name": "x-probe", "value": "1"}],
                            },
                            "periodSeconds": 5,
                            "futureField": true,
                        },
                        "livenessProbe": {"tcpSocket": {"port": 9080}, "failureThreshold": 7},
                        "startupProbe": {
                            "grpc": {"port": 9090, "service": "s"},
                            "timeoutSeconds": 2,
                        },
                    },
                    {
                        "name": "metrics",
                        "image": "metrics:1",
                        "livenessProbe": {"httpGet": {"path": "/", "port": "nope"}},
                        "readinessProbe": {"exec": {"command": ["true"]}},
                    },
                ],
            },
        })
    }

    fn inject_with(pod: &Value, config: &InjectConfig) -> Value {
        let labels = BTreeMap::from([("istio-injection".to_string(), "enabled".to_string())]);
        match inject_pod(pod, "bookinfo", &labels, config).unwrap() {
            Outcome::Injected(pod) => pod,
            Outcome::Skipped(skip) => panic!("skipped: {}", skip.reason()),
        }
    }

    fn proxy_env(pod: &Value, name: &str) -> Option<Value> {
        let proxy = pod["spec"]["initContainers"]
            .as_array()?
            .iter()
            .find(|c| c["name"] == PROXY_NAME)?;
        let value = proxy["env"]
            .as_array()?
            .iter()
            .find(|e| e["name"] == name)?["value"]
            .as_str()?;
        Some(serde_json::from_str(value).unwrap())
    }

    #[test]
    fn http_tcp_and_grpc_probes_point_at_the_status_port() {
        let pod = mk_pod(json!({}));
        let injected = inject_with(&pod, &InjectConfig::default());
        let reviews = &injected["spec"]["containers"][0];
        assert_eq!(
            reviews["readinessProbe"],
            json!({
                "httpGet": {
                    "path": "/app-health/reviews/readyz", "port": 15020, "scheme": "HTTP",
                    "httpHeaders": [{"name": "x-probe", "value": "1"}],
                },
                "periodSeconds": 5,
                "futureField": true,
            })
        );
        assert_eq!(
            reviews["livenessProbe"],
            json!({
                "httpGet": {"path": "/app-health/reviews/livez", "port": 15020},
                "failureThreshold": 7,
            })
        );
        assert_eq!(
            reviews["startupProbe"],
            json!({
                "httpGet": {"path": "/app-health/reviews/startupz", "port": 15020},
                "timeoutSeconds": 2,
            })
        );
        // An unknown port name and an exec probe are left alone.
        let metrics = &injected["spec"]["containers"][1];
        assert_eq!(metrics["livenessProbe"]["httpGet"]["port"], "nope");
        assert_eq!(
            metrics["readinessProbe"],
            pod["spec"]["containers"][1]["readinessProbe"]
        );
        // The originals, named port resolved, in Istio's format.
        assert_eq!(
            proxy_env(&injected, APP_PROBERS_ENV),
            Some(json!({
                "/app-health/reviews/readyz": {"httpGet": {
                    "path": "/health", "port": 9080, "scheme": "HTTPS",
                    "httpHeaders": [{"name": "x-probe", "value": "1"}],
                }},
                "/app-health/reviews/livez": {"tcpSocket": {"port": 9080}},
                "/app-health/reviews/startupz": {
                    "grpc": {"port": 9090, "service": "s"}, "timeoutSeconds": 2,
                },
            }))
        );
    }

    #[test]
    fn the_patch_replaces_the_probes_at_the_pods_own_indexes() {
        let pod = mk_pod(json!({}));
        let labels = BTreeMap::from([("istio-injection".to_string(), "enabled".to_string())]);
        let Outcome::Injected(patch) =
            inject_patch(&pod, "bookinfo", &labels, &InjectConfig::default()).unwrap()
        else {
            panic!("not injected");
        };
        let value = serde_json::to_value(&patch).unwrap();
        let replaced: Vec<&str> = value
            .as_array()
            .unwrap()
            .iter()
            .filter(|op| op["op"] == "replace")
            .map(|op| op["path"].as_str().unwrap())
            .collect();
        assert_eq!(
            replaced,
            [
                "/spec/containers/0/livenessProbe",
                "/spec/containers/0/readinessProbe",
                "/spec/containers/0/startupProbe",
            ]
        );
        // Applied, the app (not an init container) has the new probe.
        let mut applied = pod.clone();
        json_patch::patch(&mut applied, &patch).unwrap();
        let app = &applied["spec"]["containers"][0];
        assert_eq!(app["name"], "reviews");
        assert_eq!(app["livenessProbe"]["httpGet"]["port"], 15020);
    }

    #[test]
    fn the_annotation_and_the_mesh_default_turn_rewriting_off() {
        let off = mk_pod(json!({ REWRITE_APP_PROBERS: "false" }));
        let injected = inject_with(&off, &InjectConfig::default());
        assert_eq!(injected["spec"]["containers"], off["spec"]["containers"]);
        assert_eq!(proxy_env(&injected, APP_PROBERS_ENV), None);

        let mesh_off = InjectConfig {
            rewrite_app_probers: false,
            ..InjectConfig::default()
        };
        let plain = mk_pod(json!({}));
        let injected = inject_with(&plain, &mesh_off);
        assert_eq!(injected["spec"]["containers"], plain["spec"]["containers"]);
        // The Pod's annotation wins over the mesh's default.
        let on = mk_pod(json!({ REWRITE_APP_PROBERS: "true" }));
        let injected = inject_with(&on, &mesh_off);
        assert_eq!(
            injected["spec"]["containers"][0]["livenessProbe"]["httpGet"]["port"],
            15020
        );

        let bad = mk_pod(json!({ REWRITE_APP_PROBERS: "sometimes" }));
        let labels = BTreeMap::from([("istio-injection".to_string(), "enabled".to_string())]);
        let err = inject_pod(&bad, "bookinfo", &labels, &InjectConfig::default()).unwrap_err();
        assert_eq!(err.kind(), "annotation");
        assert!(err.to_string().contains(REWRITE_APP_PROBERS), "{err}");
    }

    #[test]
    fn a_pod_without_probes_gets_no_variable() {
        let rewrite = build_probe_rewrite(&json!({"spec": {"containers": [{"name": "a"}]}}));
        assert_eq!(rewrite, ProbeRewrite::default());
        // Odd shapes are skipped, not a panic.
        let odd = json!({"spec": {"containers": [
            {"name": "a", "readinessProbe": {"httpGet": {"port": -1}}},
            {"name": "b", "readinessProbe": {"tcpSocket": {"port": 70000}}},
            {"readinessProbe": {"tcpSocket": {"port": 1}}},
            {"name": "c", "readinessProbe": {"grpc": {"port": "x"}}},
            {"name": "d", "readinessProbe": "nope"},
        ]}});
        assert_eq!(build_probe_rewrite(&odd), ProbeRewrite::default());
    }
}
