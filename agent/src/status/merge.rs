//! The merge behind `/stats/prometheus` (pure): the agent's own metrics,
//! then Envoy's with `envoy_istio_*` renamed to Istio's `istio_*`, then
//! the application's, as Istio's agent concatenates them. The
//! application's come last because an OpenMetrics body ends with `# EOF`,
//! which ends the whole exposition; the response then carries the
//! application's OpenMetrics content type, else Prometheus text's.

/// Prometheus' text format, what Envoy and most applications serve.
pub const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";
/// The media type of OpenMetrics text.
const OPENMETRICS_MEDIA_TYPE: &str = "application/openmetrics-text";

/// The prefix Envoy's Prometheus output gives the stats access logger's
/// `istio.*` stats.
pub const ENVOY_ISTIO_PREFIX: &str = "envoy_istio_";
/// What they are called in Istio.
pub const ISTIO_PREFIX: &str = "istio_";

/// One scraped body and the content type it came with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scraped {
    pub content_type: Option<String>,
    pub body: String,
}

/// Envoy's `/stats/prometheus` with the series and `# TYPE` / `# HELP`
/// lines of `envoy_istio_<name>` renamed `istio_<name>` (so
/// `istio_requests_total` is Istio's exact name); everything else,
/// label values included, is kept.
pub fn rename_istio_series(envoy: &str) -> String {
    let mut out = String::with_capacity(envoy.len());
    for line in envoy.split_inclusive('\n') {
        let renamed = ["# TYPE ", "# HELP ", ""].iter().find_map(|comment| {
            let rest = line.strip_prefix(comment)?;
            let name = rest.strip_prefix(ENVOY_ISTIO_PREFIX)?;
            Some((comment, name))
        });
        match renamed {
            Some((comment, name)) => {
                out.push_str(comment);
                out.push_str(ISTIO_PREFIX);
                out.push_str(name);
            }
            None => out.push_str(line),
        }
    }
    out
}

/// The merged body and its content type. `agent` is the agent's own
/// metrics without `# EOF`; `envoy` and `app` are what was scraped, if
/// anything (a failed scrape is left out, never fails the whole).
pub fn merge(agent: &str, envoy: Option<&str>, app: Option<&Scraped>) -> (String, &'static str) {
    let mut body = String::with_capacity(
        agent.len() + envoy.map_or(0, str::len) + app.map_or(0, |a| a.body.len()) + 2,
    );
    let mut append = |part: &str| {
        body.push_str(part);
        if !part.is_empty() && !part.ends_with('\n') {
            body.push('\n');
        }
    };
    append(agent);
    if let Some(envoy) = envoy {
        append(&rename_istio_series(envoy));
    }
    let openmetrics = app.is_some_and(|app| is_openmetrics(app.content_type.as_deref()));
    if let Some(app) = app {
        append(&app.body);
    }
    let content_type = if openmetrics {
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    } else {
        PROMETHEUS_TEXT
    };
    (body, content_type)
}

/// Whether a `Content-Type` says OpenMetrics text.
pub fn is_openmetrics(content_type: Option<&str>) -> bool {
    content_type
        .and_then(|ct| ct.split(';').next())
        .is_some_and(|media| media.trim().eq_ignore_ascii_case(OPENMETRICS_MEDIA_TYPE))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ENVOY: &str = "\
# TYPE envoy_istio_requests_total counter
envoy_istio_requests_total{reporter=\"destination\",source_workload=\"envoy_istio_x\"} 3
# TYPE envoy_istio_request_duration_milliseconds histogram
envoy_istio_request_duration_milliseconds_bucket{reporter=\"destination\",le=\"0.5\"} 0
envoy_istio_request_duration_milliseconds_sum{reporter=\"destination\"} 12
# TYPE envoy_server_live gauge
envoy_server_live{} 1
# TYPE envoy_cluster_istio_thing counter
envoy_cluster_istio_thing{envoy_cluster_name=\"x\"} 2
";

    #[test]
    fn envoy_istio_series_get_istios_names_and_nothing_else_changes() {
        let renamed = rename_istio_series(ENVOY);
        assert_eq!(
            renamed,
            "\
# TYPE istio_requests_total counter
istio_requests_total{reporter=\"destination\",source_workload=\"envoy_istio_x\"} 3
# TYPE istio_request_duration_milliseconds histogram
istio_request_duration_milliseconds_bucket{reporter=\"destination\",le=\"0.5\"} 0
istio_request_duration_milliseconds_sum{reporter=\"destination\"} 12
# TYPE envoy_server_live gauge
envoy_server_live{} 1
# TYPE envoy_cluster_istio_thing counter
envoy_cluster_istio_thing{envoy_cluster_name=\"x\"} 2
"
        );
        // No trailing newline is kept as it was.
        assert_eq!(rename_istio_series("envoy_istio_a 1"), "istio_a 1");
        assert_eq!(rename_istio_series(""), "");
    }

    #[test]
    fn the_agent_then_envoy_then_the_app_each_on_its_own_lines() {
        let app = Scraped {
            content_type: Some("text/plain; version=0.0.4".into()),
            body: "# TYPE app_hits counter\napp_hits 7".into(),
        };
        let (body, content_type) = merge("weft_agent_scrapes_total 1\n", Some(ENVOY), Some(&app));
        assert_eq!(content_type, PROMETHEUS_TEXT);
        let agent_at = body.find("weft_agent_scrapes_total").unwrap_or(usize::MAX);
        let envoy_at = body.find("istio_requests_total").unwrap_or(usize::MAX);
        let app_at = body.find("app_hits 7").unwrap_or(usize::MAX);
        assert!(agent_at < envoy_at && envoy_at < app_at, "{body}");
        assert!(
            !body.lines().any(|l| l.contains("envoy_istio_requests")),
            "{body}"
        );
        assert!(body.ends_with("app_hits 7\n"), "{body}");
    }

    #[test]
    fn a_failed_scrape_is_left_out_and_openmetrics_apps_set_the_format() {
        let (body, content_type) = merge("a 1\n", None, None);
        assert_eq!((body.as_str(), content_type), ("a 1\n", PROMETHEUS_TEXT));
        let app = Scraped {
            content_type: Some("application/openmetrics-text; version=1.0.0".into()),
            body: "app_total 1\n# EOF\n".into(),
        };
        let (body, content_type) = merge("a 1\n", Some("envoy_x 2"), Some(&app));
        assert!(content_type.starts_with("application/openmetrics-text"));
        assert_eq!(body, "a 1\nenvoy_x 2\napp_total 1\n# EOF\n");
        assert!(is_openmetrics(Some("Application/OpenMetrics-Text")));
        assert!(!is_openmetrics(Some("text/plain")));
        assert!(!is_openmetrics(None));
    }
}
