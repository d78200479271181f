use super::*;
use crate::{Kind, OtelAccessLog, ProviderService, Tracer};

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn telemetry(namespace: &str, name: &str, selector: Option<&[(&str, &str)]>) -> Telemetry {
    Telemetry {
        selector: selector.map(labels),
        ..Telemetry::new(ResourceId::new(Kind::Telemetry, namespace, name))
    }
}

fn mesh_with_tracers() -> MeshConfig {
    let service = ProviderService {
        host: "jaeger.observability.svc.cluster.local".to_string(),
        port: 9411,
    };
    let tracer = Tracer {
        service: service.clone(),
        max_tag_length: 0,
    };
    let mut mesh = MeshConfig::default();
    mesh.providers
        .insert("zipkin".to_string(), Provider::Zipkin(tracer.clone()));
    mesh.providers
        .insert("otel".to_string(), Provider::OpenTelemetry(tracer));
    mesh.providers.insert(
        "otel-als".to_string(),
        Provider::OtelAccessLog(OtelAccessLog {
            service,
            log_name: "weft".to_string(),
            body: None,
            attributes: BTreeMap::new(),
        }),
    );
    mesh
}

fn disable(metric: Option<IstioMetric>, mode: WorkloadMode, disabled: bool) -> MetricsRule {
    MetricsRule {
        providers: Vec::new(),
        overrides: vec![MetricOverride {
            metric,
            mode,
            disabled: Some(disabled),
            tag_overrides: BTreeMap::new(),
        }],
    }
}

#[test]
fn scopes_go_from_mesh_to_namespace_to_workload() {
    let all = vec![
        telemetry("default", "a-workload", Some(&[("app", "reviews")])),
        telemetry("default", "b-namespace", None),
        telemetry("default", "c-namespace", None),
        telemetry("istio-system", "mesh", None),
        telemetry("other", "namespace", None),
    ];
    let app = labels(&[("app", "reviews")]);
    let names = |ts: Vec<&Telemetry>| ts.iter().map(|t| t.id.to_string()).collect::<Vec<_>>();
    assert_eq!(
        names(telemetries_for(&all, "istio-system", "default", &app)),
        [
            "Telemetry istio-system/mesh",
            "Telemetry default/b-namespace",
            "Telemetry default/a-workload"
        ]
    );
    let other = labels(&[("app", "ratings")]);
    assert_eq!(
        names(telemetries_for(&all, "istio-system", "default", &other)),
        [
            "Telemetry istio-system/mesh",
            "Telemetry default/b-namespace"
        ]
    );
    // The root namespace's own workloads get the mesh Telemetry once.
    assert_eq!(
        names(telemetries_for(
            &all,
            "istio-system",
            "istio-system",
            &other
        )),
        ["Telemetry istio-system/mesh"]
    );
    // Another root namespace makes istio-system an ordinary namespace.
    assert_eq!(
        names(telemetries_for(&all, "mesh-root", "default", &app)),
        [
            "Telemetry default/b-namespace",
            "Telemetry default/a-workload"
        ]
    );
}

#[test]
fn target_refs_select_kubernetes_gateways_by_name() {
    let mut t = telemetry("default", "gw", None);
    t.target_gateways = vec!["public".to_string()];
    let all = vec![t];
    let gateway = labels(&[(GATEWAY_NAME_LABEL, "public")]);
    assert_eq!(
        telemetries_for(&all, "istio-system", "default", &gateway).len(),
        1
    );
    let other = labels(&[(GATEWAY_NAME_LABEL, "private")]);
    assert!(telemetries_for(&all, "istio-system", "default", &other).is_empty());
}

#[test]
fn with_no_telemetry_the_mesh_defaults_apply() {
    let mesh = MeshConfig::default();
    let effective = resolve_telemetry(&[], &mesh, Side::Client);
    let metrics = effective.metrics.expect("prometheus is a default provider");
    assert_eq!(metrics.enabled().count(), IstioMetric::ALL.len());
    assert!(effective.access_logs.is_empty());
    assert!(effective.tracing.is_none());
}

#[test]
fn a_narrower_scope_overrides_a_wider_one_per_side() {
    let mesh = MeshConfig::default();
    let mut root = telemetry("istio-system", "mesh", None);
    root.metrics = vec![disable(None, WorkloadMode::ClientAndServer, true)];
    let mut workload = telemetry("default", "w", Some(&[("app", "x")]));
    workload.metrics = vec![disable(
        Some(IstioMetric::RequestCount),
        WorkloadMode::Client,
        false,
    )];
    let chain = [&root, &workload];
    let client = resolve_telemetry(&chain, &mesh, Side::Client)
        .metrics
        .expect("metrics on");
    assert_eq!(
        client.enabled().collect::<Vec<_>>(),
        [IstioMetric::RequestCount]
    );
    let server = resolve_telemetry(&chain, &mesh, Side::Server)
        .metrics
        .expect("metrics on");
    assert_eq!(server.enabled().count(), 0);
}

#[test]
fn tag_overrides_accumulate_and_later_levels_win() {
    let mesh = MeshConfig::default();
    let tags = |pairs: &[(&str, TagOverride)]| MetricsRule {
        providers: Vec::new(),
        overrides: vec![MetricOverride {
            metric: Some(IstioMetric::RequestCount),
            tag_overrides: pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
            ..MetricOverride::default()
        }],
    };
    let mut root = telemetry("istio-system", "mesh", None);
    root.metrics = vec![tags(&[
        (
            "request_host",
            TagOverride::Upsert("request.host".to_string()),
        ),
        ("source_version", TagOverride::Remove),
    ])];
    let mut namespace = telemetry("default", "ns", None);
    namespace.metrics = vec![tags(&[(
        "request_host",
        TagOverride::Upsert("'fixed'".to_string()),
    )])];
    let metrics = resolve_telemetry(&[&root, &namespace], &mesh, Side::Server)
        .metrics
        .expect("metrics on");
    let request_count = &metrics.tag_overrides[&IstioMetric::RequestCount];
    assert_eq!(
        request_count["request_host"],
        TagOverride::Upsert("'fixed'".to_string())
    );
    assert_eq!(request_count["source_version"], TagOverride::Remove);
    assert!(
        !metrics
            .tag_overrides
            .contains_key(&IstioMetric::RequestDuration)
    );
}

#[test]
fn a_provider_list_without_prometheus_turns_metrics_off() {
    let mesh = mesh_with_tracers();
    let mut t = telemetry("default", "ns", None);
    t.metrics = vec![MetricsRule {
        providers: vec!["zipkin".to_string()],
        overrides: Vec::new(),
    }];
    assert!(
        resolve_telemetry(&[&t], &mesh, Side::Client)
            .metrics
            .is_none()
    );
}

#[test]
fn mesh_access_log_file_applies_until_a_telemetry_configures_logging() {
    let mut mesh = mesh_with_tracers();
    mesh.access_log = Some(FileAccessLog::default());
    let plain = telemetry("default", "ns", None);
    let logs = resolve_telemetry(&[&plain], &mesh, Side::Server).access_logs;
    assert_eq!(logs.len(), 1);
    assert_eq!(logs[0].name, "mesh");

    let mut filtered = telemetry("default", "ns", None);
    filtered.access_logging = vec![AccessLoggingRule {
        mode: WorkloadMode::Server,
        providers: vec!["envoy".to_string(), "otel-als".to_string()],
        disabled: None,
        filter: Some("response.code >= 400".to_string()),
    }];
    let server = resolve_telemetry(&[&filtered], &mesh, Side::Server).access_logs;
    assert_eq!(
        server.iter().map(|l| l.name.as_str()).collect::<Vec<_>>(),
        ["envoy", "otel-als"]
    );
    assert!(
        server
            .iter()
            .all(|l| l.filter.as_deref() == Some("response.code >= 400"))
    );
    // The rule is for servers: clients keep the mesh's file.
    let client = resolve_telemetry(&[&filtered], &mesh, Side::Client).access_logs;
    assert_eq!(client.len(), 1);
    assert_eq!(client[0].name, "mesh");
}

#[test]
fn a_narrower_scope_disables_access_logging_of_the_parent_providers() {
    let mesh = MeshConfig::default();
    let mut root = telemetry("istio-system", "mesh", None);
    root.access_logging = vec![AccessLoggingRule {
        providers: vec!["envoy".to_string()],
        ..AccessLoggingRule::default()
    }];
    let mut workload = telemetry("default", "w", Some(&[("app", "x")]));
    workload.access_logging = vec![AccessLoggingRule {
        mode: WorkloadMode::Client,
        disabled: Some(true),
        ..AccessLoggingRule::default()
    }];
    let chain = [&root, &workload];
    assert!(
        resolve_telemetry(&chain, &mesh, Side::Client)
            .access_logs
            .is_empty()
    );
    assert_eq!(
        resolve_telemetry(&chain, &mesh, Side::Server)
            .access_logs
            .len(),
        1
    );
}

#[test]
fn tracing_merges_sampling_tags_and_reporting() {
    let mesh = mesh_with_tracers();
    let mut root = telemetry("istio-system", "mesh", None);
    root.tracing = vec![TracingRule {
        providers: vec!["zipkin".to_string()],
        sampling: Some(100.0),
        custom_tags: BTreeMap::from([("team".to_string(), CustomTag::Literal("mesh".to_string()))]),
        ..TracingRule::default()
    }];
    let mut namespace = telemetry("default", "ns", None);
    namespace.tracing = vec![TracingRule {
        custom_tags: BTreeMap::from([(
            "user".to_string(),
            CustomTag::Header {
                name: "x-user".to_string(),
                default: "none".to_string(),
            },
        )]),
        disable_span_reporting: Some(true),
        ..TracingRule::default()
    }];
    let tracing = resolve_telemetry(&[&root, &namespace], &mesh, Side::Client)
        .tracing
        .expect("zipkin traces");
    assert_eq!(tracing.name, "zipkin");
    assert_eq!(tracing.sampling, 100.0);
    assert_eq!(tracing.custom_tags.len(), 2);
    assert!(!tracing.span_reporting);
}

#[test]
fn default_tracing_provider_uses_the_mesh_sampling_and_enable_tracing() {
    let mut mesh = mesh_with_tracers();
    mesh.default_providers.tracing = vec!["otel".to_string()];
    mesh.default_sampling = 10.0;
    let tracing = resolve_telemetry(&[], &mesh, Side::Server)
        .tracing
        .expect("otel traces");
    assert_eq!(tracing.name, "otel");
    assert_eq!(tracing.sampling, 10.0);
    mesh.enable_tracing = false;
    assert!(
        resolve_telemetry(&[], &mesh, Side::Server)
            .tracing
            .is_none()
    );
}
