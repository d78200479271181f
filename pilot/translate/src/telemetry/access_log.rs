//! Access logs: Envoy's file logger in Istio's default text or JSON
//! format (or the provider's own), the OpenTelemetry logger (gRPC, to a
//! collector that is a mesh service), and Telemetry's `filter.expression`
//! as Envoy's CEL access-log filter.

use std::collections::BTreeMap;

use weft_envoy_api::pb::envoy::config::accesslog::v3::{
    AccessLog, AccessLogFilter, ExtensionFilter, access_log, access_log_filter, extension_filter,
};
use weft_envoy_api::pb::envoy::config::core::v3::{
    DataSource, GrpcService, SubstitutionFormatString, data_source, grpc_service,
    substitution_format_string,
};
use weft_envoy_api::pb::envoy::extensions::access_loggers::file::v3::{
    FileAccessLog as PbFileAccessLog, file_access_log,
};
use weft_envoy_api::pb::envoy::extensions::access_loggers::filters::cel::v3::ExpressionFilter;
use weft_envoy_api::pb::envoy::extensions::access_loggers::open_telemetry::v3::OpenTelemetryAccessLogConfig;
use weft_envoy_api::pb::opentelemetry::proto::common::v1::{
    AnyValue, KeyValue, KeyValueList, any_value,
};
use weft_envoy_api::util::pack_any;
use weft_model::{
    AccessLog as LogConfig, FileAccessLog, LogFormat, MeshSnapshot, OtelAccessLog, Provider,
};

use super::metadata::string_struct;
use super::tracing::provider_cluster;
use crate::ProxyView;

/// Istio's default access log line (`meshConfig.accessLogFormat` unset).
pub const DEFAULT_TEXT_FORMAT: &str = "[%START_TIME%] \"%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%\" %RESPONSE_CODE% %RESPONSE_FLAGS% %RESPONSE_CODE_DETAILS% %CONNECTION_TERMINATION_DETAILS% \"%UPSTREAM_TRANSPORT_FAILURE_REASON%\" %BYTES_RECEIVED% %BYTES_SENT% %DURATION% %RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% \"%REQ(X-FORWARDED-FOR)%\" \"%REQ(USER-AGENT)%\" \"%REQ(X-REQUEST-ID)%\" \"%REQ(:AUTHORITY)%\" \"%UPSTREAM_HOST%\" %UPSTREAM_CLUSTER_RAW% %UPSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_REMOTE_ADDRESS% %REQUESTED_SERVER_NAME% %ROUTE_NAME%\n";

/// Istio's default JSON access log fields (`accessLogEncoding: JSON`).
pub const DEFAULT_JSON_FIELDS: [(&str, &str); 24] = [
    ("start_time", "%START_TIME%"),
    ("route_name", "%ROUTE_NAME%"),
    ("method", "%REQ(:METHOD)%"),
    ("path", "%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%"),
    ("protocol", "%PROTOCOL%"),
    ("response_code", "%RESPONSE_CODE%"),
    ("response_flags", "%RESPONSE_FLAGS%"),
    ("response_code_details", "%RESPONSE_CODE_DETAILS%"),
    (
        "connection_termination_details",
        "%CONNECTION_TERMINATION_DETAILS%",
    ),
    ("bytes_received", "%BYTES_RECEIVED%"),
    ("bytes_sent", "%BYTES_SENT%"),
    ("duration", "%DURATION%"),
    (
        "upstream_service_time",
        "%RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)%",
    ),
    ("x_forwarded_for", "%REQ(X-FORWARDED-FOR)%"),
    ("user_agent", "%REQ(USER-AGENT)%"),
    ("request_id", "%REQ(X-REQUEST-ID)%"),
    ("authority", "%REQ(:AUTHORITY)%"),
    ("upstream_host", "%UPSTREAM_HOST%"),
    ("upstream_cluster", "%UPSTREAM_CLUSTER_RAW%"),
    ("upstream_local_address", "%UPSTREAM_LOCAL_ADDRESS%"),
    ("downstream_local_address", "%DOWNSTREAM_LOCAL_ADDRESS%"),
    ("downstream_remote_address", "%DOWNSTREAM_REMOTE_ADDRESS%"),
    ("requested_server_name", "%REQUESTED_SERVER_NAME%"),
    (
        "upstream_transport_failure_reason",
        "%UPSTREAM_TRANSPORT_FAILURE_REASON%",
    ),
];

/// The Envoy access logger of one configured log; none for an
/// OpenTelemetry collector the proxy cannot reach (not a visible service).
pub(crate) fn build(
    snapshot: &MeshSnapshot,
    view: &ProxyView,
    log: &LogConfig,
) -> Option<AccessLog> {
    let (name, config) = match &log.provider {
        Provider::FileAccessLog(file) => ("envoy.access_loggers.file", pack_any(file_logger(file))),
        Provider::OtelAccessLog(otel) => (
            "envoy.access_loggers.open_telemetry",
            pack_any(otel_logger(snapshot, view, otel)?),
        ),
        Provider::Prometheus
        | Provider::Zipkin(_)
        | Provider::OpenTelemetry(_)
        | Provider::ExtAuthzHttp(_)
        | Provider::ExtAuthzGrpc(_) => return None,
    };
    Some(AccessLog {
        name: name.to_string(),
        filter: log.filter.as_deref().map(cel_filter),
        config_type: Some(access_log::ConfigType::TypedConfig(config)),
    })
}

fn file_logger(file: &FileAccessLog) -> PbFileAccessLog {
    let format = match &file.format {
        LogFormat::DefaultText => text(DEFAULT_TEXT_FORMAT),
        LogFormat::Text(format) => text(&with_newline(format)),
        LogFormat::DefaultJson => {
            json(DEFAULT_JSON_FIELDS.iter().map(|(k, v)| (*k, v.to_string())))
        }
        LogFormat::Json(fields) => json(fields.iter().map(|(k, v)| (k.as_str(), v.clone()))),
    };
    PbFileAccessLog {
        path: file.path.clone(),
        access_log_format: Some(file_access_log::AccessLogFormat::LogFormat(format)),
    }
}

/// Envoy writes a text format as is: a line needs its newline.
fn with_newline(format: &str) -> String {
    if format.ends_with('\n') {
        format.to_string()
    } else {
        format!("{format}\n")
    }
}

fn text(format: &str) -> SubstitutionFormatString {
    SubstitutionFormatString {
        format: Some(substitution_format_string::Format::TextFormatSource(
            DataSource {
                specifier: Some(data_source::Specifier::InlineString(format.to_string())),
                ..Default::default()
            },
        )),
        ..Default::default()
    }
}

fn json<'a>(fields: impl IntoIterator<Item = (&'a str, String)>) -> SubstitutionFormatString {
    SubstitutionFormatString {
        format: Some(substitution_format_string::Format::JsonFormat(
            string_struct(fields),
        )),
        ..Default::default()
    }
}

fn otel_logger(
    snapshot: &MeshSnapshot,
    view: &ProxyView,
    otel: &OtelAccessLog,
) -> Option<OpenTelemetryAccessLogConfig> {
    let cluster = provider_cluster(snapshot, view, &otel.service, true)?;
    let body = otel
        .body
        .clone()
        .unwrap_or_else(|| DEFAULT_TEXT_FORMAT.to_string());
    let attributes: BTreeMap<&str, &str> = otel
        .attributes
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    Some(OpenTelemetryAccessLogConfig {
        grpc_service: Some(GrpcService {
            target_specifier: Some(grpc_service::TargetSpecifier::EnvoyGrpc(
                grpc_service::EnvoyGrpc {
                    cluster_name: cluster,
                    ..Default::default()
                },
            )),
            ..Default::default()
        }),
        log_name: otel.log_name.clone(),
        body: Some(string_value(body.trim_end_matches('\n'))),
        attributes: (!attributes.is_empty()).then(|| KeyValueList {
            values: attributes
                .into_iter()
                .map(|(key, value)| KeyValue {
                    key: key.to_string(),
                    value: Some(string_value(value)),
                    ..Default::default()
                })
                .collect(),
        }),
        ..Default::default()
    })
}

fn string_value(text: &str) -> AnyValue {
    AnyValue {
        value: Some(any_value::Value::StringValue(text.to_string())),
    }
}

/// Telemetry's `filter.expression`: only requests it is true for are
/// logged. Also what picks the local replies [`crate::jwt_authn`] rewrites.
pub(crate) fn cel_filter(expression: &str) -> AccessLogFilter {
    AccessLogFilter {
        filter_specifier: Some(access_log_filter::FilterSpecifier::ExtensionFilter(
            ExtensionFilter {
                name: "envoy.access_loggers.extension_filters.cel".to_string(),
                config_type: Some(extension_filter::ConfigType::TypedConfig(pack_any(
                    ExpressionFilter {
                        expression: expression.to_string(),
                        ..Default::default()
                    },
                ))),
            },
        )),
    }
}
