//! Istio's "metrics merge" (pure): an injected Pod is scraped on the
//! agent's status port, which serves the agent's, Envoy's and the app's
//! metrics together. The Pod gets `prometheus.io/scrape: "true"`,
//! `prometheus.io/port: "15020"` and `prometheus.io/path:
//! "/stats/prometheus"`; its own `prometheus.io/*` annotations (in any
//! spelling Prometheus reads the same, e.g. `prometheus.io.port`) move to
//! the proxy's `ISTIO_PROMETHEUS_ANNOTATIONS`, whose JSON
//! (`{"scrape":"true","path":"/metrics","port":"8080"}`) tells the agent
//! where the app's metrics are.
//!
//! As in Istio, nothing changes when the Pod says
//! `prometheus.istio.io/merge-metrics: "false"`, when it says
//! `prometheus.io/scrape: "false"` (it does not want scraping), or when
//! its port annotation already is the status port (injected before).

use std::collections::BTreeMap;

use super::Error;

/// Turns the merge off (`"false"`) for one Pod.
pub const MERGE_METRICS: &str = "prometheus.istio.io/merge-metrics";
pub const SCRAPE: &str = "prometheus.io/scrape";
pub const PORT: &str = "prometheus.io/port";
pub const PATH: &str = "prometheus.io/path";
/// The proxy's variable holding the Pod's own annotations (Istio's name).
pub const ANNOTATIONS_ENV: &str = "ISTIO_PROMETHEUS_ANNOTATIONS";
/// The agent's status port, serving the merged metrics.
pub const STATUS_PORT: u16 = 15020;
/// Where on it.
pub const STATS_PATH: &str = "/stats/prometheus";

/// What the merge does to one Pod's annotations and proxy.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PrometheusMerge {
    /// Annotations to set (the three, pointing at the status port).
    pub set: BTreeMap<String, String>,
    /// The Pod's annotations to remove: other spellings of the three.
    pub remove: Vec<String>,
    /// `ISTIO_PROMETHEUS_ANNOTATIONS` for the proxy, when the Pod had
    /// any of the three.
    pub env: Option<String>,
}

/// The merge for a Pod with `annotations`; `None` to leave them alone.
pub fn build_prometheus_merge(
    annotations: &BTreeMap<String, String>,
) -> Result<Option<PrometheusMerge>, Error> {
    let enabled = match annotations.get(MERGE_METRICS) {
        None => true,
        Some(value) => parse_bool(value).ok_or_else(|| Error::Annotation {
            annotation: MERGE_METRICS,
            value: value.clone(),
            expected: "true or false",
        })?,
    };
    // Prometheus reads `prometheus.io/port`, `prometheus.io.port` and
    // `prometheus-io/port` alike (it sanitises the name): so does this.
    let find = |name: &str| {
        annotations
            .iter()
            .find(|(key, _)| sanitize(key) == sanitize(name))
            .map(|(_, value)| value.as_str())
    };
    let scrape = find(SCRAPE).and_then(parse_bool).unwrap_or(true);
    let status_port = STATUS_PORT.to_string();
    if !enabled || !scrape || find(PORT) == Some(status_port.as_str()) {
        return Ok(None);
    }
    let (scrape, path, port) = (
        find(SCRAPE).unwrap_or(""),
        find(PATH).unwrap_or(""),
        find(PORT).unwrap_or(""),
    );
    let env = (!scrape.is_empty() || !path.is_empty() || !port.is_empty()).then(|| {
        // Istio's field order: scrape, path, port.
        let quote = |s: &str| serde_json::Value::String(s.to_string()).to_string();
        format!(
            "{{\"scrape\":{},\"path\":{},\"port\":{}}}",
            quote(scrape),
            quote(path),
            quote(port)
        )
    });
    let standard = [SCRAPE, PORT, PATH];
    let remove = annotations
        .keys()
        .filter(|key| !standard.contains(&key.as_str()))
        .filter(|key| standard.iter().any(|s| sanitize(s) == sanitize(key)))
        .cloned()
        .collect();
    let set = BTreeMap::from([
        (SCRAPE.to_string(), "true".to_string()),
        (PORT.to_string(), status_port),
        (PATH.to_string(), STATS_PATH.to_string()),
    ]);
    Ok(Some(PrometheusMerge { set, remove, env }))
}

/// Prometheus' label-name sanitising: every character outside
/// `[a-zA-Z0-9_]` becomes `_`.
fn sanitize(name: &str) -> String {
    name.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

/// Go's `strconv.ParseBool`, which Istio uses for these annotations.
pub(crate) fn parse_bool(value: &str) -> Option<bool> {
    match value {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn merge(pairs: &[(&str, &str)]) -> Option<PrometheusMerge> {
        let annotations = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        build_prometheus_merge(&annotations).unwrap_or_else(|err| panic!("{err}"))
    }

    fn ours() -> BTreeMap<String, String> {
        BTreeMap::from([
            (SCRAPE.to_string(), "true".to_string()),
            (PORT.to_string(), "15020".to_string()),
            (PATH.to_string(), "/stats/prometheus".to_string()),
        ])
    }

    #[test]
    fn a_pod_without_annotations_is_pointed_at_the_status_port() {
        assert_eq!(
            merge(&[]),
            Some(PrometheusMerge {
                set: ours(),
                remove: Vec::new(),
                env: None
            })
        );
    }

    #[test]
    fn the_pods_own_annotations_move_to_the_proxys_environment() {
        let merged = merge(&[
            (SCRAPE, "true"),
            (PORT, "8080"),
            ("prometheus.io.path", "/metrics"),
            ("other", "x"),
        ]);
        assert_eq!(
            merged,
            Some(PrometheusMerge {
                set: ours(),
                remove: vec!["prometheus.io.path".to_string()],
                env: Some(r#"{"scrape":"true","path":"/metrics","port":"8080"}"#.to_string()),
            })
        );
        let only_port = merge(&[(PORT, "9090")]);
        assert_eq!(
            only_port.and_then(|m| m.env).as_deref(),
            Some(r#"{"scrape":"","path":"","port":"9090"}"#)
        );
    }

    #[test]
    fn opting_out_not_scraping_or_already_merged_leaves_the_pod_alone() {
        assert_eq!(merge(&[(MERGE_METRICS, "false"), (PORT, "8080")]), None);
        assert_eq!(merge(&[(SCRAPE, "false"), (PORT, "8080")]), None);
        assert_eq!(merge(&[("prometheus-io/scrape", "False")]), None);
        assert_eq!(merge(&[(PORT, "15020")]), None);
        assert!(merge(&[(MERGE_METRICS, "true")]).is_some());
        // An unparsable scrape value counts as yes, as in Istio.
        assert!(merge(&[(SCRAPE, "yes")]).is_some());
        let bad = BTreeMap::from([(MERGE_METRICS.to_string(), "nope".to_string())]);
        let err = build_prometheus_merge(&bad).unwrap_err();
        assert_eq!(err.kind(), "annotation");
    }
}
