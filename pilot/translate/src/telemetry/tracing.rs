//! Tracing: the HTTP connection manager's tracer (Zipkin over HTTP JSON,
//! or OpenTelemetry over gRPC) with Istio's sampling and tags. Both
//! sidecars of a call trace it; the client's sidecar propagates the trace
//! context upstream, so their spans share one trace id.

use weft_envoy_api::pb::envoy::config::core::v3::{GrpcService, grpc_service};
use weft_envoy_api::pb::envoy::config::trace::v3::{
    OpenTelemetryConfig, ZipkinConfig, tracing, zipkin_config::CollectorEndpointVersion,
};
use weft_envoy_api::pb::envoy::extensions::filters::network::http_connection_manager::v3::http_connection_manager::Tracing as HcmTracing;
use weft_envoy_api::pb::envoy::r#type::tracing::v3::{CustomTag as PbCustomTag, custom_tag};
use weft_envoy_api::pb::envoy::r#type::v3::Percent;
use weft_envoy_api::pb::google::protobuf::{Any, BoolValue};
use weft_envoy_api::util::pack_any;
use weft_model::{
    CustomTag, EffectiveTelemetry, MeshSnapshot, Provider, ProviderService, Tracer, Tracing,
};

use super::WorkloadLabels;
use crate::{ProxyView, outbound_cluster_name};

/// The outbound cluster of a provider's service, if the proxy sees that
/// service on that port (and, for `grpc`, the port speaks HTTP/2).
pub(crate) fn provider_cluster(
    snapshot: &MeshSnapshot,
    view: &ProxyView,
    service: &ProviderService,
    grpc: bool,
) -> Option<String> {
    crate::visible_services(snapshot, view)
        .filter(|s| s.hostname == service.host)
        .flat_map(|s| &s.ports)
        .find(|p| p.number == service.port && (!grpc || p.protocol.is_http2()))
        .map(|p| outbound_cluster_name(p.number, None, &service.host))
}

/// The connection manager's tracing, if the workload traces and its
/// tracer is reachable.
pub(crate) fn hcm_tracing(
    snapshot: &MeshSnapshot,
    view: &ProxyView,
    effective: &EffectiveTelemetry,
) -> Option<HcmTracing> {
    let tracing = effective.tracing.as_ref()?;
    let provider = match &tracing.provider {
        Provider::Zipkin(tracer) => zipkin(snapshot, view, tracer)?,
        Provider::OpenTelemetry(tracer) => opentelemetry(snapshot, view, tracer)?,
        _ => return None,
    };
    let own = WorkloadLabels::of_proxy(view);
    let sampling = if tracing.span_reporting {
        tracing.sampling.clamp(0.0, 100.0)
    } else {
        0.0
    };
    let percent = |value: f64| Some(Percent { value });
    Some(HcmTracing {
        // Istio samples `sampling`% of requests without a decision; a
        // client that asks for a trace (`x-client-trace-id`) gets one.
        client_sampling: percent(if tracing.span_reporting { 100.0 } else { 0.0 }),
        random_sampling: percent(sampling),
        overall_sampling: percent(if tracing.span_reporting { 100.0 } else { 0.0 }),
        custom_tags: custom_tags(tracing, &own),
        provider: Some(provider),
        ..Default::default()
    })
}

fn zipkin(snapshot: &MeshSnapshot, view: &ProxyView, tracer: &Tracer) -> Option<tracing::Http> {
    let cluster = provider_cluster(snapshot, view, &tracer.service, false)?;
    let config = ZipkinConfig {
        collector_cluster: cluster,
        collector_endpoint: "/api/v2/spans".to_string(),
        trace_id_128bit: true,
        shared_span_context: Some(BoolValue { value: false }),
        collector_endpoint_version: CollectorEndpointVersion::HttpJson as i32,
        collector_hostname: tracer.service.host.clone(),
        ..Default::default()
    };
    Some(http_tracer("envoy.tracers.zipkin", pack_any(config)))
}

fn opentelemetry(
    snapshot: &MeshSnapshot,
    view: &ProxyView,
    tracer: &Tracer,
) -> Option<tracing::Http> {
    let cluster = provider_cluster(snapshot, view, &tracer.service, true)?;
    let own = WorkloadLabels::of_proxy(view);
    let config = OpenTelemetryConfig {
        grpc_service: Some(GrpcService {
            target_specifier: Some(grpc_service::TargetSpecifier::EnvoyGrpc(
                grpc_service::EnvoyGrpc {
                    cluster_name: cluster,
                    authority: tracer.service.host.clone(),
                    ..Default::default()
                },
            )),
            ..Default::default()
        }),
        // Istio's service name: `<canonical service>.<namespace>`.
        service_name: format!("{}.{}", own.canonical_service, own.namespace),
        ..Default::default()
    };
    Some(http_tracer("envoy.tracers.opentelemetry", pack_any(config)))
}

fn http_tracer(name: &str, config: Any) -> tracing::Http {
    tracing::Http {
        name: name.to_string(),
        config_type: Some(tracing::http::ConfigType::TypedConfig(config)),
    }
}

/// Istio's own span tags, then the Telemetry's `customTags`.
fn custom_tags(tracing: &Tracing, own: &WorkloadLabels) -> Vec<PbCustomTag> {
    let literal = |tag: &str, value: &str| PbCustomTag {
        tag: tag.to_string(),
        r#type: Some(custom_tag::Type::Literal(custom_tag::Literal {
            value: value.to_string(),
        })),
    };
    let mut tags = vec![
        literal("istio.canonical_revision", &own.canonical_revision),
        literal("istio.canonical_service", &own.canonical_service),
        literal("istio.namespace", &own.namespace),
    ];
    tags.extend(tracing.custom_tags.iter().map(|(tag, value)| match value {
        CustomTag::Literal(value) => literal(tag, value),
        CustomTag::Environment { name, default } => PbCustomTag {
            tag: tag.clone(),
            r#type: Some(custom_tag::Type::Environment(custom_tag::Environment {
                name: name.clone(),
                default_value: default.clone(),
            })),
        },
        CustomTag::Header { name, default } => PbCustomTag {
            tag: tag.clone(),
            r#type: Some(custom_tag::Type::RequestHeader(custom_tag::Header {
                name: name.clone(),
                default_value: default.clone(),
            })),
        },
    }));
    tags
}
