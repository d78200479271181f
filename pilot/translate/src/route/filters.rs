//! Per-route config of the HCM's fault and CORS filters (see
//! `translate::http_filters`, which names them).

use weft_envoy_api::pb::envoy::extensions::filters::common::fault::v3::{
    FaultDelay, fault_delay::FaultDelaySecifier,
};
use weft_envoy_api::pb::envoy::extensions::filters::http::cors::v3::CorsPolicy as PbCorsPolicy;
use weft_envoy_api::pb::envoy::extensions::filters::http::fault::v3::{
    FaultAbort, HttpFault, fault_abort::ErrorType,
};
use weft_envoy_api::pb::envoy::r#type::v3::{
    FractionalPercent, fractional_percent::DenominatorType,
};
use weft_envoy_api::pb::google::protobuf::{Any, BoolValue};
use weft_envoy_api::util::pack_any;

use super::matching::string_matcher;
pub(crate) use crate::http_filters::{CORS, FAULT};
use weft_model::{AbortError, CorsPolicy, Fault};

/// A percentage (0-100) as Envoy's parts per million, as Istio sends it.
pub(super) fn fractional_percent(percent: f64) -> FractionalPercent {
    let millionths = (percent.clamp(0.0, 100.0) * 10_000.0).round();
    FractionalPercent {
        // In [0, 1e6] after the clamp, so the cast is exact.
        numerator: millionths as u32,
        denominator: DenominatorType::Million as i32,
    }
}

pub(super) fn build_fault(fault: &Fault) -> Any {
    pack_any(HttpFault {
        delay: fault.delay.as_ref().map(|d| FaultDelay {
            fault_delay_secifier: Some(FaultDelaySecifier::FixedDelay(crate::pb_duration(
                d.fixed_delay,
            ))),
            percentage: Some(fractional_percent(d.percentage)),
        }),
        abort: fault.abort.as_ref().map(|a| FaultAbort {
            error_type: Some(match a.error {
                AbortError::HttpStatus(s) => ErrorType::HttpStatus(u32::from(s)),
                AbortError::GrpcStatus(c) => ErrorType::GrpcStatus(c),
            }),
            percentage: Some(fractional_percent(a.percentage)),
            ..Default::default()
        }),
        ..Default::default()
    })
}

pub(super) fn build_cors(cors: &CorsPolicy) -> Any {
    pack_any(PbCorsPolicy {
        allow_origin_string_match: cors.allow_origins.iter().map(string_matcher).collect(),
        allow_methods: cors.allow_methods.join(","),
        allow_headers: cors.allow_headers.join(","),
        expose_headers: cors.expose_headers.join(","),
        max_age: cors
            .max_age
            .map(|d| d.as_secs().to_string())
            .unwrap_or_default(),
        allow_credentials: cors.allow_credentials.map(|value| BoolValue { value }),
        forward_not_matching_preflights: Some(BoolValue {
            value: cors.forward_unmatched_preflights,
        }),
        ..Default::default()
    })
}
