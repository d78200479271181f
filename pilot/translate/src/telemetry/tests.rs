use std::collections::BTreeMap;
use std::sync::Arc;

use prost::{Message, Name};
use weft_config::testing::*;
use weft_envoy_api::pb::envoy::config::accesslog::v3::{access_log, access_log_filter};
use weft_envoy_api::pb::envoy::config::trace::v3::ZipkinConfig;
use weft_envoy_api::pb::envoy::extensions::access_loggers::file::v3::FileAccessLog as PbFile;
use weft_envoy_api::pb::envoy::extensions::access_loggers::filters::cel::v3::ExpressionFilter;
use weft_envoy_api::pb::envoy::extensions::access_loggers::stats::v3::Config as StatsConfig;
use weft_envoy_api::pb::envoy::extensions::filters::network::http_connection_manager::v3::HttpConnectionManager;
use weft_envoy_api::pb::google::protobuf::{Any, Value, value::Kind as ValueKind};
use weft_model::{
    FileAccessLog, IstioMetric, Kind, LogFormat, MeshConfig, MetricOverride, MetricsRule, Provider,
    ProviderService, ResourceId, Side, TagOverride, Telemetry, Tracer, TracingRule, WorkloadMode,
};

use super::metadata::strings;
use super::*;

fn unpack<T: Message + Name + Default>(any: &Any) -> T {
    assert_eq!(any.type_url, T::type_url());
    T::decode(any.value.as_slice()).expect("decodes")
}

/// A client `sleep` (v1) and the service `reviews` with one workload
/// endpoint, in `default`.
fn mesh() -> MeshSnapshot {
    let mut snapshot = mk_snapshot(&docs(&[
        mk_service_entry("reviews", &["v1"]),
        mk_service_entry("zipkin", &["v1"]),
    ]));
    for service in snapshot.services.values_mut() {
        for e in &mut service.endpoints {
            e.workload_name = Some("reviews-v1".to_string());
        }
    }
    snapshot
}

fn sleep() -> ProxyView {
    ProxyView {
        labels: BTreeMap::from([
            ("app".to_string(), "sleep".to_string()),
            ("version".to_string(), "v1".to_string()),
        ]),
        service_account: Some("sleep".to_string()),
        workload_name: Some("sleep".to_string()),
        router_address: Some(("127.0.0.1".to_string(), 15080)),
        ..ProxyView::default()
    }
}

fn hcm(snapshot: &MeshSnapshot, view: &ProxyView, side: Side) -> HttpConnectionManager {
    let mut hcm = HttpConnectionManager::default();
    ListenerTelemetry::new(snapshot, view, side).apply_to_hcm(&mut hcm);
    hcm
}

fn stats(hcm: &HttpConnectionManager) -> StatsConfig {
    let logger = hcm
        .access_log
        .iter()
        .find(|l| l.name == "envoy.access_loggers.stats")
        .expect("a stats logger");
    let Some(access_log::ConfigType::TypedConfig(any)) = &logger.config_type else {
        panic!("no typed config");
    };
    unpack(any)
}

/// `name -> value_format` of the labels of the stat `series`.
fn labels(config: &StatsConfig, series: &str) -> BTreeMap<String, String> {
    let stat = config
        .counters
        .iter()
        .filter_map(|c| c.stat.as_ref())
        .chain(config.histograms.iter().filter_map(|h| h.stat.as_ref()))
        .find(|s| s.name == series)
        .unwrap_or_else(|| panic!("no {series}"));
    stat.tags
        .iter()
        .map(|t| (t.name.clone(), t.value_format.clone()))
        .collect()
}

fn series(config: &StatsConfig) -> Vec<String> {
    let mut names: Vec<String> = config
        .counters
        .iter()
        .filter_map(|c| c.stat.as_ref())
        .chain(config.histograms.iter().filter_map(|h| h.stat.as_ref()))
        .map(|s| s.name.clone())
        .collect();
    names.sort();
    names
}

fn telemetry(name: &str, selector: Option<(&str, &str)>) -> Telemetry {
    Telemetry {
        selector: selector.map(|(k, v)| BTreeMap::from([(k.to_string(), v.to_string())])),
        ..Telemetry::new(ResourceId::new(Kind::Telemetry, "default", name))
    }
}

#[test]
fn client_and_server_report_istio_labels() {
    let snapshot = mesh();
    let client = stats(&hcm(&snapshot, &sleep(), Side::Client));
    assert_eq!(
        client.stats_scope.as_ref().map(|s| s.prefix.as_str()),
        Some("istio")
    );
    assert_eq!(
        series(&client),
        [
            "request_bytes",
            "request_duration_milliseconds",
            "requests_total",
            "response_bytes"
        ]
    );
    insta::assert_debug_snapshot!("client_request_labels", labels(&client, "requests_total"));
    let server = stats(&hcm(&snapshot, &sleep(), Side::Server));
    insta::assert_debug_snapshot!("server_request_labels", labels(&server, "requests_total"));
}

#[test]
fn unknowable_values_become_unknown_and_the_full_config_is_stable() {
    let snapshot = mesh();
    let view = ProxyView {
        workload_name: None,
        labels: BTreeMap::new(),
        service_account: None,
        ..sleep()
    };
    let client = stats(&hcm(&snapshot, &view, Side::Client));
    let request = labels(&client, "requests_total");
    assert_eq!(request["source_workload"], "unknown");
    assert_eq!(request["source_principal"], "unknown");
    assert_eq!(request["source_canonical_revision"], "latest");
    // How a value becomes `unknown`, and the two labels Envoy's values
    // are mapped for.
    let counter = client.counters[0].stat.as_ref().expect("a stat");
    let tag = |name: &str| counter.tags.iter().find(|t| t.name == name).cloned();
    insta::assert_debug_snapshot!(
        "client_stats_rules",
        [
            tag("destination_workload"),
            tag("request_protocol"),
            tag("grpc_response_status")
        ]
    );
}

#[test]
fn tcp_listeners_report_connection_series() {
    let snapshot = mesh();
    let mut tcp =
        weft_envoy_api::pb::envoy::extensions::filters::network::tcp_proxy::v3::TcpProxy::default();
    ListenerTelemetry::new(&snapshot, &sleep(), Side::Server).apply_to_tcp(&mut tcp);
    let Some(access_log::ConfigType::TypedConfig(any)) = &tcp.access_log[0].config_type else {
        panic!("no typed config");
    };
    let config: StatsConfig = unpack(any);
    assert_eq!(
        series(&config),
        [
            "tcp_connections_closed_total",
            "tcp_connections_opened_total",
            "tcp_received_bytes_total",
            "tcp_sent_bytes_total"
        ]
    );
    let labels = labels(&config, "tcp_sent_bytes_total");
    assert_eq!(labels["request_protocol"], "tcp");
    assert!(!labels.contains_key("response_code"));
}

#[test]
fn a_telemetry_disables_a_metric_for_one_side_of_one_workload() {
    let mut snapshot = mesh();
    let mut t = telemetry("no-client-count", Some(("app", "sleep")));
    t.metrics = vec![MetricsRule {
        providers: vec!["prometheus".to_string()],
        overrides: vec![
            MetricOverride {
                metric: Some(IstioMetric::RequestCount),
                mode: WorkloadMode::Client,
                disabled: Some(true),
                tag_overrides: BTreeMap::new(),
            },
            MetricOverride {
                metric: None,
                mode: WorkloadMode::ClientAndServer,
                disabled: None,
                tag_overrides: BTreeMap::from([
                    ("source_version".to_string(), TagOverride::Remove),
                    (
                        "request_host".to_string(),
                        TagOverride::Upsert("request.host".to_string()),
                    ),
                ]),
            },
        ],
    }];
    snapshot.telemetries = vec![t];
    let client = stats(&hcm(&snapshot, &sleep(), Side::Client));
    assert!(!series(&client).contains(&"requests_total".to_string()));
    let duration = labels(&client, "request_duration_milliseconds");
    assert!(!duration.contains_key("source_version"));
    assert_eq!(duration["request_host"], "%CEL(request.host)%");
    let server = stats(&hcm(&snapshot, &sleep(), Side::Server));
    assert!(series(&server).contains(&"requests_total".to_string()));
    // Another workload is not selected.
    let other = ProxyView {
        labels: BTreeMap::from([("app".to_string(), "other".to_string())]),
        ..sleep()
    };
    let other_client = stats(&hcm(&snapshot, &other, Side::Client));
    assert!(series(&other_client).contains(&"requests_total".to_string()));
}

#[test]
fn mesh_access_log_file_in_json_with_a_cel_filter() {
    let mut snapshot = mesh();
    let mut mesh_config = MeshConfig {
        access_log: Some(FileAccessLog {
            path: "/dev/stdout".to_string(),
            format: LogFormat::DefaultJson,
        }),
        ..MeshConfig::default()
    };
    snapshot.mesh_config = Arc::new(mesh_config.clone());
    let client = hcm(&snapshot, &sleep(), Side::Client);
    let file = client
        .access_log
        .iter()
        .find(|l| l.name == "envoy.access_loggers.file")
        .expect("a file logger");
    assert!(file.filter.is_none());
    let Some(access_log::ConfigType::TypedConfig(any)) = &file.config_type else {
        panic!("no typed config");
    };
    insta::assert_debug_snapshot!("json_file_logger", unpack::<PbFile>(any));

    mesh_config.default_providers.access_logging = vec!["envoy".to_string()];
    mesh_config.access_log = None;
    snapshot.mesh_config = Arc::new(mesh_config);
    let mut t = telemetry("failures", None);
    t.access_logging = vec![weft_model::AccessLoggingRule {
        mode: WorkloadMode::Server,
        providers: Vec::new(),
        disabled: None,
        filter: Some("response.code >= 400".to_string()),
    }];
    snapshot.telemetries = vec![t];
    let server = hcm(&snapshot, &sleep(), Side::Server);
    let file = server
        .access_log
        .iter()
        .find(|l| l.name == "envoy.access_loggers.file")
        .expect("a file logger");
    let Some(access_log_filter::FilterSpecifier::ExtensionFilter(filter)) = file
        .filter
        .as_ref()
        .and_then(|f| f.filter_specifier.as_ref())
    else {
        panic!("no extension filter");
    };
    assert_eq!(filter.name, "envoy.access_loggers.extension_filters.cel");
    let Some(
        weft_envoy_api::pb::envoy::config::accesslog::v3::extension_filter::ConfigType::TypedConfig(
            any,
        ),
    ) = &filter.config_type
    else {
        panic!("no typed config");
    };
    assert_eq!(
        unpack::<ExpressionFilter>(any).expression,
        "response.code >= 400"
    );
}

fn with_zipkin(snapshot: &mut MeshSnapshot, port: u16) {
    let mut mesh_config = MeshConfig::default();
    mesh_config.providers.insert(
        "zipkin".to_string(),
        Provider::Zipkin(Tracer {
            service: ProviderService {
                host: "zipkin.default.svc.cluster.local".to_string(),
                port,
            },
            max_tag_length: 0,
        }),
    );
    mesh_config.default_providers.tracing = vec!["zipkin".to_string()];
    snapshot.mesh_config = Arc::new(mesh_config);
}

#[test]
fn zipkin_tracing_reaches_a_visible_collector_with_istio_sampling() {
    let mut snapshot = mesh();
    let port = snapshot.services["zipkin.default.svc.cluster.local"].ports[0].number;
    with_zipkin(&mut snapshot, port);
    let mut t = telemetry("trace-all", None);
    t.tracing = vec![TracingRule {
        sampling: Some(100.0),
        ..TracingRule::default()
    }];
    snapshot.telemetries = vec![t];
    let tracing = hcm(&snapshot, &sleep(), Side::Client)
        .tracing
        .expect("tracing");
    assert_eq!(tracing.random_sampling.map(|p| p.value), Some(100.0));
    let Some(weft_envoy_api::pb::envoy::config::trace::v3::tracing::http::ConfigType::TypedConfig(
        any,
    )) = tracing
        .provider
        .as_ref()
        .and_then(|p| p.config_type.as_ref())
    else {
        panic!("no provider");
    };
    let zipkin: ZipkinConfig = unpack(any);
    assert_eq!(
        zipkin.collector_cluster,
        format!("outbound|{port}||zipkin.default.svc.cluster.local")
    );
    assert_eq!(zipkin.collector_endpoint, "/api/v2/spans");
    let tags: Vec<&str> = tracing.custom_tags.iter().map(|t| t.tag.as_str()).collect();
    assert!(tags.contains(&"istio.canonical_service"), "{tags:?}");

    // Span reporting off: nothing is sampled.
    snapshot.telemetries[0].tracing[0].disable_span_reporting = Some(true);
    let off = hcm(&snapshot, &sleep(), Side::Client)
        .tracing
        .expect("tracing");
    assert_eq!(off.random_sampling.map(|p| p.value), Some(0.0));
    assert_eq!(off.client_sampling.map(|p| p.value), Some(0.0));
}

#[test]
fn a_collector_the_proxy_cannot_reach_gets_no_tracer() {
    let mut snapshot = mesh();
    with_zipkin(&mut snapshot, 9);
    assert!(hcm(&snapshot, &sleep(), Side::Client).tracing.is_none());
}

#[test]
fn clusters_and_endpoints_carry_what_the_client_reports() {
    let snapshot = mesh();
    let clusters = crate::build_clusters(&snapshot, &sleep());
    let reviews = clusters
        .iter()
        .find(|c| c.name.ends_with("||reviews.default.svc.cluster.local"))
        .expect("reviews");
    let fields = &reviews.metadata.as_ref().expect("metadata").filter_metadata["weft"];
    assert_eq!(
        strings(fields),
        BTreeMap::from([
            (
                "service_host".to_string(),
                "reviews.default.svc.cluster.local".to_string()
            ),
            ("service_name".to_string(), "reviews".to_string()),
            ("service_namespace".to_string(), "default".to_string()),
        ])
    );
    let assignments = crate::build_load_assignments(&snapshot, &sleep());
    let endpoint = &assignments[0].endpoints[0].lb_endpoints[0];
    let fields = &endpoint
        .metadata
        .as_ref()
        .expect("metadata")
        .filter_metadata["weft"];
    assert_eq!(strings(fields)["workload"], "reviews-v1");
}

#[test]
fn the_peer_header_carries_the_client_workload() {
    let own = WorkloadLabels::of_proxy(&sleep());
    let header = peer::peer_header(&own).header.expect("header");
    assert_eq!(header.key, peer::PEER_HEADER);
    use base64::Engine;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(&header.value)
        .expect("base64");
    let value = Value::decode(bytes.as_slice()).expect("a protobuf Value");
    let Some(ValueKind::StructValue(fields)) = value.kind else {
        panic!("not a struct");
    };
    let fields = strings(&fields);
    assert_eq!(fields["workload"], "sleep");
    assert_eq!(fields["app"], "sleep");
    assert_eq!(fields["version"], "v1");
    assert_eq!(fields["canonical_service"], "sleep");
    assert_eq!(fields["canonical_revision"], "v1");
}
