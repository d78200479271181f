//! Istio's Telemetry YAML covering every field group: it parses in both
//! served versions, survives a round trip, and bad values name their field.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::time::Duration;

use weft_crds::{
    IstioDuration, IstioMetricName, MeshDocument, MeshResource, TagOperation, WorkloadMode,
};

mod common;
use common::{assert_round_trip, doc, value};

#[test]
fn telemetry_parses_every_field_group_in_both_served_versions() {
    let yaml = include_str!("examples/telemetry.yaml");
    assert_round_trip(yaml);
    for version in ["v1alpha1", "v1"] {
        let d = doc(&yaml.replace(
            "telemetry.istio.io/v1",
            &format!("telemetry.istio.io/{version}"),
        ));
        let MeshResource::Telemetry(spec) = &d.resource else {
            panic!("not a Telemetry: {d:?}");
        };
        assert_eq!(spec.target_refs[0].kind, "Gateway");
        let tracing = &spec.tracing[0];
        assert_eq!(
            tracing.match_.as_ref().and_then(|m| m.mode),
            Some(WorkloadMode::Client)
        );
        assert_eq!(tracing.providers[0].name, "zipkin");
        assert_eq!(tracing.random_sampling_percentage, Some(12.5));
        assert_eq!(tracing.use_request_id_for_trace_sampling, Some(true));
        assert_eq!(
            tracing.custom_tags["pod"]
                .environment
                .as_ref()
                .map(|e| e.default_value.as_str()),
            Some("unknown")
        );
        assert_eq!(
            tracing.custom_tags["user"]
                .header
                .as_ref()
                .map(|h| h.name.as_str()),
            Some("x-user")
        );
        let metrics = &spec.metrics[0];
        assert_eq!(
            metrics.reporting_interval,
            Some(IstioDuration(Duration::from_secs(10)))
        );
        let first = &metrics.overrides[0];
        let selector = first.match_.as_ref().expect("a match");
        assert_eq!(selector.metric, Some(IstioMetricName::RequestCount));
        assert_eq!(selector.mode, Some(WorkloadMode::Server));
        assert_eq!(
            first.tag_overrides["response_code"].operation,
            Some(TagOperation::Remove)
        );
        assert_eq!(
            first.tag_overrides["request_method"].value.as_deref(),
            Some("request.method")
        );
        assert_eq!(
            metrics.overrides[1]
                .match_
                .as_ref()
                .and_then(|m| m.custom_metric.as_deref()),
            Some("my_metric")
        );
        assert_eq!(
            metrics.overrides[2].match_.as_ref().and_then(|m| m.metric),
            Some(IstioMetricName::GrpcRequestMessages)
        );
        let logging = &spec.access_logging[0];
        assert_eq!(
            logging.filter.as_ref().map(|f| f.expression.as_str()),
            Some("response.code >= 400")
        );
        let back = d.to_value(version).expect("serializes");
        assert_eq!(back["apiVersion"], format!("telemetry.istio.io/{version}"));
    }
    let e = MeshDocument::from_value(value(
        "apiVersion: telemetry.istio.io/v1\nkind: Telemetry\nmetadata: {name: x}\nspec:\n  metrics:\n  - overrides:\n    - match: {metric: REQUEST_COUNTS}\n",
    ))
    .expect_err("an unknown metric");
    assert_eq!(e.field(), Some("spec.metrics[0].overrides[0].match.metric"));
    let e = MeshDocument::from_value(value(
        "apiVersion: telemetry.istio.io/v1beta1\nkind: Telemetry\nmetadata: {name: x}\n",
    ))
    .expect_err("v1beta1 is not served for Telemetry");
    assert_eq!(e.kind(), "unsupported_api_version");
}
