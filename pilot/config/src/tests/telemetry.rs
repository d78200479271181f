//! Telemetry conversion, and the store's provider checks against the mesh
//! config.

use std::collections::BTreeMap;

use super::*;
use weft_model::{
    CustomTag, IstioMetric, MeshConfig, Provider, ProviderService, TagOverride, Tracer,
    WorkloadMode,
};

fn mk_telemetry(namespace: &str, name: &str, spec: &str) -> String {
    format!(
        "apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {{name: {name}, namespace: {namespace}}}
spec:
{spec}"
    )
}

fn mk_zipkin_mesh() -> MeshConfig {
    let mesh = parse_mesh_config(
        "extensionProviders:\n- name: zipkin\n  zipkin: {service: istio-system/zipkin, port: 9411}\n",
    )
    .unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(
        mesh.provider("zipkin"),
        Some(&Provider::Zipkin(Tracer {
            service: ProviderService {
                host: "zipkin.istio-system.svc.cluster.local".to_string(),
                port: 9411,
            },
            max_tag_length: 0,
        }))
    );
    mesh
}

#[test]
fn every_field_converts() {
    let mut store = ConfigStore::default();
    store.set_mesh_config(mk_zipkin_mesh());
    let applied = store.apply(mk_inputs(&mk_telemetry(
        "prod",
        "everything",
        "  selector: {matchLabels: {app: reviews}}
  tracing:
  - match: {mode: CLIENT}
    providers: [{name: zipkin}]
    randomSamplingPercentage: 12.5
    disableSpanReporting: false
    useRequestIdForTraceSampling: true
    customTags:
      cluster: {literal: {value: east}}
      pod: {environment: {name: POD_NAME, defaultValue: unknown}}
      user: {header: {name: X-User}}
  metrics:
  - providers: [{name: prometheus}]
    overrides:
    - match: {metric: REQUEST_COUNT, mode: SERVER}
      tagOverrides:
        request_method: {value: request.method}
        response_code: {operation: REMOVE}
    - match: {metric: ALL_METRICS}
      disabled: true
    - disabled: false
  accessLogging:
  - match: {mode: SERVER}
    providers: [{name: envoy}]
    filter: {expression: 'response.code >= 400'}
",
    )));
    assert!(applied.errors.is_empty(), "{:#?}", applied.errors);
    let [telemetry] = applied.snapshot.telemetries.as_slice() else {
        panic!("one telemetry: {:?}", applied.snapshot.telemetries);
    };
    assert_eq!(
        telemetry.selector,
        Some(BTreeMap::from([("app".to_string(), "reviews".to_string())]))
    );
    let tracing = &telemetry.tracing[0];
    assert_eq!(tracing.mode, WorkloadMode::Client);
    assert_eq!(tracing.providers, ["zipkin"]);
    assert_eq!(tracing.sampling, Some(12.5));
    assert_eq!(tracing.disable_span_reporting, Some(false));
    assert_eq!(
        tracing.custom_tags["cluster"],
        CustomTag::Literal("east".to_string())
    );
    assert_eq!(
        tracing.custom_tags["pod"],
        CustomTag::Environment {
            name: "POD_NAME".to_string(),
            default: "unknown".to_string()
        }
    );
    assert_eq!(
        tracing.custom_tags["user"],
        CustomTag::Header {
            name: "x-user".to_string(),
            default: String::new()
        }
    );
    let metrics = &telemetry.metrics[0];
    assert_eq!(metrics.providers, ["prometheus"]);
    let first = &metrics.overrides[0];
    assert_eq!(first.metric, Some(IstioMetric::RequestCount));
    assert_eq!(first.mode, WorkloadMode::Server);
    assert_eq!(first.disabled, None);
    assert_eq!(
        first.tag_overrides["request_method"],
        TagOverride::Upsert("request.method".to_string())
    );
    assert_eq!(first.tag_overrides["response_code"], TagOverride::Remove);
    assert_eq!(metrics.overrides[1].metric, None, "ALL_METRICS");
    assert_eq!(metrics.overrides[1].disabled, Some(true));
    assert_eq!(metrics.overrides[2].mode, WorkloadMode::ClientAndServer);
    assert_eq!(metrics.overrides[2].disabled, Some(false));
    let logging = &telemetry.access_logging[0];
    assert_eq!(logging.mode, WorkloadMode::Server);
    assert_eq!(logging.providers, ["envoy"]);
    assert_eq!(logging.filter.as_deref(), Some("response.code >= 400"));
}

#[test]
fn target_refs_name_gateways_of_the_namespace() {
    let snapshot = mk_snapshot(&mk_telemetry(
        "prod",
        "ingress",
        "  targetRefs:
  - {group: gateway.networking.k8s.io, kind: Gateway, name: ingress}
  - {group: gateway.networking.k8s.io, kind: Gateway, name: egress, namespace: prod}
  accessLogging:
  - providers: [{name: envoy}]
",
    ));
    assert_eq!(
        snapshot.telemetries[0].target_gateways,
        ["ingress", "egress"]
    );
    assert!(snapshot.telemetries[0].is_workload_scoped());
}

#[test]
fn bad_fields_are_refused_naming_them() {
    let applied = ConfigStore::default().apply(mk_inputs(&mk_telemetry(
        "prod",
        "bad",
        "  selector: {matchLabels: {app: reviews}}
  targetRefs:
  - {group: gateway.networking.k8s.io, kind: HTTPRoute, name: r}
  - {group: networking.istio.io, kind: Gateway, name: g}
  - {group: gateway.networking.k8s.io, kind: Gateway, name: g, namespace: other}
  tracing:
  - randomSamplingPercentage: 100.5
    providers: [{name: a}, {name: b}]
    useRequestIdForTraceSampling: false
    customTags:
      none: {}
      two: {literal: {value: x}, header: {name: y}}
      empty: {environment: {name: ''}}
  metrics:
  - reportingInterval: 10s
    overrides:
    - match: {metric: REQUEST_COUNT}
    - match: {metric: GRPC_REQUEST_MESSAGES}
    - match: {customMetric: my_metric}
    - tagOverrides:
        no_value: {operation: UPSERT}
        removed: {operation: REMOVE, value: request.host}
        broken: {value: 'request.host =='}
  accessLogging:
  - filter: {expression: 'response.code >= (400'}
  - providers: [{name: ''}]
",
    )));
    let fields = field_errors(&applied);
    for want in [
        "bad spec.selector: selector and targetRefs cannot both be set",
        "bad spec.targetRefs[0].kind: kind \"HTTPRoute\"",
        "bad spec.targetRefs[1].group: group \"networking.istio.io\"",
        "bad spec.targetRefs[2].namespace: \"other\"",
        "bad spec.tracing[0].providers: names 2 providers",
        "bad spec.tracing[0].randomSamplingPercentage: 100.5 is not a percentage",
        "bad spec.tracing[0].useRequestIdForTraceSampling: false is not supported by Weft yet",
        "bad spec.tracing[0].customTags[none]: sets 0 of literal, environment and header",
        "bad spec.tracing[0].customTags[two]: sets 2 of literal, environment and header",
        "bad spec.tracing[0].customTags[empty].environment.name: is required",
        "bad spec.metrics[0].reportingInterval: not supported by Weft yet",
        "bad spec.metrics[0].overrides[1].match.metric: the gRPC message metrics",
        "bad spec.metrics[0].overrides[2].match.customMetric: custom metrics are not supported by Weft",
        "bad spec.metrics[0].overrides[3].tagOverrides[no_value].value: is required with operation UPSERT",
        "bad spec.metrics[0].overrides[3].tagOverrides[removed].value: must not be set with operation REMOVE",
        "bad spec.metrics[0].overrides[3].tagOverrides[broken].value: \"request.host ==\" is not a CEL expression",
        "bad spec.accessLogging[0].filter.expression: \"response.code >= (400\" is not a CEL expression",
        "bad spec.accessLogging[1].providers[0].name: is required",
    ] {
        assert!(
            fields.iter().any(|f| f.starts_with(want)),
            "{want:?} in {fields:#?}"
        );
    }
    assert_eq!(fields.len(), 18, "{fields:#?}");
    assert!(applied.snapshot.telemetries.is_empty());
}

#[test]
fn unknown_metric_names_are_refused_naming_the_field() {
    let applied = ConfigStore::default().apply(mk_inputs(&mk_telemetry(
        "prod",
        "typo",
        "  metrics:\n  - overrides:\n    - match: {metric: REQUEST_COUNTS}\n",
    )));
    let fields = field_errors(&applied);
    assert_eq!(fields.len(), 1, "{fields:#?}");
    assert!(
        fields[0].starts_with(
            "typo spec.metrics[0].overrides[0].match.metric: unknown variant `REQUEST_COUNTS`"
        ),
        "{fields:#?}"
    );
}

#[test]
fn telemetries_are_sorted_by_namespace_and_name() {
    let snapshot = mk_snapshot(&docs(&[
        mk_telemetry(
            "prod",
            "b",
            "  metrics: [{providers: [{name: prometheus}]}]\n",
        ),
        mk_telemetry(
            "istio-system",
            "mesh-default",
            "  accessLogging: [{providers: [{name: envoy}]}]\n",
        ),
        mk_telemetry(
            "prod",
            "a",
            "  selector: {matchLabels: {app: reviews}}\n  metrics: [{providers: [{name: prometheus}]}]\n",
        ),
    ]));
    let names: Vec<String> = snapshot
        .telemetries
        .iter()
        .map(|t| format!("{}/{}", t.id.namespace, t.id.name))
        .collect();
    assert_eq!(names, ["istio-system/mesh-default", "prod/a", "prod/b"]);
    assert_eq!(*snapshot.mesh_config, MeshConfig::default());
}

#[test]
fn one_namespace_wide_telemetry_per_namespace() {
    let applied = ConfigStore::default().apply(mk_inputs(&docs(&[
        mk_telemetry(
            "prod",
            "a",
            "  metrics: [{providers: [{name: prometheus}]}]\n",
        ),
        mk_telemetry(
            "prod",
            "b",
            "  accessLogging: [{providers: [{name: envoy}]}]\n",
        ),
    ])));
    let fields = field_errors(&applied);
    assert_eq!(
        fields,
        [
            "b spec.selector: namespace prod already has a Telemetry without selector or targetRefs (Telemetry prod/a); only one may apply to the whole namespace"
        ]
    );
    assert_eq!(applied.snapshot.telemetries.len(), 1);
}

const TRACING_TO_ZIPKIN: &str = "  tracing:\n  - providers: [{name: zipkin}]\n";

#[test]
fn a_provider_the_mesh_does_not_define_rejects_that_telemetry_only() {
    let mut store = ConfigStore::default();
    let applied = store.apply(mk_inputs(&docs(&[
        mk_service_entry("reviews", &["v1"]),
        mk_telemetry("prod", "tracing", TRACING_TO_ZIPKIN),
        mk_telemetry(
            "prod",
            "logs",
            "  selector: {matchLabels: {app: reviews}}\n  accessLogging:\n  - providers: [{name: envoy}]\n  metrics:\n  - providers: [{name: envoy}]\n",
        ),
        mk_telemetry(
            "istio-system",
            "mesh",
            "  metrics: [{providers: [{name: prometheus}]}]\n",
        ),
    ])));
    let fields = field_errors(&applied);
    assert_eq!(fields.len(), 2, "{fields:#?}");
    assert!(
        fields[0].starts_with("logs spec.metrics[0].providers[0].name: provider \"envoy\" is a envoyFileAccessLog provider; metrics need a prometheus provider"),
        "{fields:#?}"
    );
    assert!(
        fields[1].starts_with("tracing spec.tracing[0].providers[0].name: the mesh config defines no provider \"zipkin\" (it has envoy, prometheus)"),
        "{fields:#?}"
    );
    assert!(
        applied
            .errors
            .iter()
            .all(|e| e.error.reason == ErrorReason::UnresolvedReference)
    );
    let served: Vec<&str> = applied
        .snapshot
        .telemetries
        .iter()
        .map(|t| t.id.name.as_str())
        .collect();
    assert_eq!(served, ["mesh"], "the others are dropped");
    assert_eq!(applied.snapshot.services.len(), 1, "the rest is served");
}

#[test]
fn a_new_mesh_config_reassembles_the_snapshot() {
    let mut store = ConfigStore::default();
    let applied = store.apply(mk_inputs(&docs(&[
        mk_service_entry("reviews", &["v1"]),
        mk_telemetry("prod", "tracing", TRACING_TO_ZIPKIN),
    ])));
    assert_eq!(applied.errors.len(), 1, "{:?}", applied.errors);
    assert!(applied.snapshot.telemetries.is_empty());
    let version = applied.snapshot.version;

    let applied = store.set_mesh_config(mk_zipkin_mesh());
    assert!(applied.changed);
    assert!(applied.errors.is_empty(), "{:?}", applied.errors);
    assert!(applied.snapshot.version > version);
    assert_eq!(applied.snapshot.telemetries.len(), 1);
    assert!(applied.snapshot.mesh_config.provider("zipkin").is_some());
    assert_eq!(applied.snapshot.services.len(), 1);
    assert_eq!(*store.mesh_config(), mk_zipkin_mesh());

    // The same mesh config again changes nothing.
    let applied = store.set_mesh_config(mk_zipkin_mesh());
    assert!(!applied.changed);

    // Inputs applied later are checked against it.
    let applied = store.apply(mk_inputs(&mk_telemetry(
        "prod",
        "tracing",
        TRACING_TO_ZIPKIN,
    )));
    assert!(applied.errors.is_empty(), "{:?}", applied.errors);
    assert!(applied.snapshot.services.is_empty());

    // Back to the defaults: the Telemetry is rejected again.
    let applied = store.set_mesh_config(MeshConfig::default());
    assert!(applied.changed);
    assert_eq!(field_errors(&applied).len(), 1);
    assert!(applied.snapshot.telemetries.is_empty());
}

#[test]
fn a_telemetry_that_fails_to_convert_keeps_its_last_good_version() {
    let mut store = ConfigStore::default();
    let good = mk_telemetry(
        "prod",
        "t",
        "  metrics:\n  - overrides:\n    - match: {metric: REQUEST_SIZE}\n      disabled: true\n",
    );
    store.apply(mk_inputs(&good));
    let applied = store.apply(mk_inputs(&mk_telemetry(
        "prod",
        "t",
        "  metrics:\n  - overrides:\n    - match: {metric: GRPC_RESPONSE_MESSAGES}\n",
    )));
    assert_eq!(applied.errors.len(), 1);
    assert_eq!(applied.errors[0].error.reason, ErrorReason::Unsupported);
    assert_eq!(
        applied.kept,
        [ResourceId::new(weft_crds::Kind::Telemetry, "prod", "t")]
    );
    assert_eq!(
        applied.snapshot.telemetries[0].metrics[0].overrides[0].metric,
        Some(IstioMetric::RequestSize)
    );
}

/// `examples/telemetry/`: Istio's documented Telemetry examples.
const EXAMPLES: [(&str, &str); 6] = [
    (
        "mesh-metrics.yaml",
        include_str!("../../../../examples/telemetry/mesh-metrics.yaml"),
    ),
    (
        "disable-metric-for-workload.yaml",
        include_str!("../../../../examples/telemetry/disable-metric-for-workload.yaml"),
    ),
    (
        "tag-overrides.yaml",
        include_str!("../../../../examples/telemetry/tag-overrides.yaml"),
    ),
    (
        "access-logging-filter.yaml",
        include_str!("../../../../examples/telemetry/access-logging-filter.yaml"),
    ),
    (
        "gateway-target-refs.yaml",
        include_str!("../../../../examples/telemetry/gateway-target-refs.yaml"),
    ),
    (
        "tracing.yaml",
        include_str!("../../../../examples/telemetry/tracing.yaml"),
    ),
];

/// `examples/mesh-config.yaml`, which defines the providers they name.
const EXAMPLE_MESH_CONFIG: &str = include_str!("../../../../examples/mesh-config.yaml");

#[test]
fn the_telemetry_examples_are_valid_together_with_the_example_mesh_config() {
    let inputs = || -> Vec<Input> {
        EXAMPLES
            .iter()
            .flat_map(|(name, text)| parse_documents(name, text))
            .collect()
    };
    let mesh = parse_mesh_config(EXAMPLE_MESH_CONFIG).unwrap_or_else(|e| panic!("{e:#?}"));
    let validation = validate_inputs_with(inputs(), std::sync::Arc::new(mesh));
    assert!(validation.is_ok(), "{:#?}", validation.errors);
    assert_eq!(validation.resources, 11);
    assert_eq!(validation.snapshot.telemetries.len(), 11);

    // Without it, the tracing example names a provider Istio's defaults
    // do not have.
    let validation = validate_inputs(inputs());
    let fields: Vec<String> = validation.errors.iter().map(|e| e.to_string()).collect();
    assert_eq!(
        fields,
        [
            "tracing.yaml: document 0: Telemetry baz/tracing-default: spec.tracing[0].providers[0].name: the mesh config defines no provider \"zipkin\" (it has envoy, prometheus); add it to extensionProviders or fix the name"
        ]
    );
}
