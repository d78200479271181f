//! What a client's Envoy knows of its destination, for Istio's
//! `destination_*` labels: cluster metadata names the service, endpoint
//! metadata the workload, both under the filter namespace [`NAMESPACE`].

use weft_envoy_api::pb::envoy::config::core::v3::Metadata;
use weft_envoy_api::pb::google::protobuf::{Struct, Value, value::Kind};
use weft_model::{CLUSTER_DOMAIN, Endpoint, Service};

use super::{CLUSTER_ID, WorkloadLabels};

/// The filter metadata namespace of Weft's telemetry metadata.
pub(crate) const NAMESPACE: &str = "weft";

/// A protobuf `Struct` of string fields.
pub(crate) fn string_struct<'a>(fields: impl IntoIterator<Item = (&'a str, String)>) -> Struct {
    Struct {
        fields: fields
            .into_iter()
            .map(|(k, v)| {
                let value = Value {
                    kind: Some(Kind::StringValue(v)),
                };
                (k.to_string(), value)
            })
            .collect(),
    }
}

/// Adds `fields` under [`NAMESPACE`] to `metadata`.
fn with_fields(metadata: Option<Metadata>, fields: Struct) -> Metadata {
    let mut metadata = metadata.unwrap_or_default();
    metadata
        .filter_metadata
        .insert(NAMESPACE.to_string(), fields);
    metadata
}

/// A service's short name as Istio's `destination_service_name` has it:
/// the Kubernetes service's name, else the host itself.
pub(crate) fn service_name(service: &Service) -> &str {
    let suffix = format!(".{}.{CLUSTER_DOMAIN}", service.namespace);
    service
        .hostname
        .strip_suffix(&suffix)
        .filter(|name| !name.contains('.'))
        .unwrap_or(&service.hostname)
}

/// The service fields of a cluster's metadata.
pub(crate) fn service_fields(service: &Service) -> Struct {
    string_struct([
        ("service_host", service.hostname.clone()),
        ("service_name", service_name(service).to_string()),
        ("service_namespace", service.namespace.clone()),
    ])
}

/// `metadata` with `service`'s fields added.
pub(crate) fn cluster_metadata(metadata: Option<Metadata>, service: &Service) -> Metadata {
    with_fields(metadata, service_fields(service))
}

/// `metadata` with the workload fields of `endpoint` (of `service`) added;
/// unchanged for an endpoint that is neither a known workload nor
/// labelled (its labels give `app`, `version` and the canonical names).
pub(crate) fn endpoint_metadata(
    metadata: Option<Metadata>,
    service: &Service,
    endpoint: &Endpoint,
) -> Option<Metadata> {
    let name = endpoint.workload_name.as_deref();
    if name.is_none() && endpoint.labels.is_empty() {
        return metadata;
    }
    let w = WorkloadLabels::new(name, &service.namespace, &endpoint.labels);
    let fields = workload_fields(&w);
    Some(with_fields(metadata, fields))
}

/// A workload's labels as a `Struct` (endpoint metadata, and the peer
/// header a client sends).
pub(crate) fn workload_fields(w: &WorkloadLabels) -> Struct {
    string_struct([
        ("workload", w.workload.clone()),
        ("namespace", w.namespace.clone()),
        ("app", w.app.clone()),
        ("version", w.version.clone()),
        ("canonical_service", w.canonical_service.clone()),
        ("canonical_revision", w.canonical_revision.clone()),
        ("cluster", CLUSTER_ID.to_string()),
    ])
}

/// The key/value pairs of a string struct, sorted (for tests).
#[cfg(test)]
pub(crate) fn strings(s: &Struct) -> std::collections::BTreeMap<String, String> {
    s.fields
        .iter()
        .filter_map(|(k, v)| match &v.kind {
            Some(Kind::StringValue(s)) => Some((k.clone(), s.clone())),
            _ => None,
        })
        .collect()
}
