//! Istio's telemetry with upstream Envoy: what a listener reports
//! (metrics, access logs, traces), from the workload's effective Telemetry
//! ([`weft_model::resolve_telemetry`]) and the mesh config.
//!
//! Istio's proxy has its own stats and metadata-exchange filters; upstream
//! Envoy has neither, so Weft builds the same series from upstream parts:
//!
//! - [`metrics`]: Envoy's stats access logger counts every request and
//!   connection under Istio's names and labels (scope `istio`);
//! - [`metadata`]: what the client knows of its destination comes from
//!   cluster metadata (the service) and endpoint metadata (the workload);
//! - [`peer`]: what the server knows of its caller comes from the mTLS
//!   peer certificate and a header the client's sidecar adds on mesh
//!   traffic (`x-weft-peer-metadata`), moved into dynamic metadata and
//!   removed before the application sees it;
//! - [`access_log`]: file and OpenTelemetry access logs, with Istio's
//!   default formats and CEL filters;
//! - [`tracing`]: Zipkin and OpenTelemetry tracers with Istio's sampling.

pub(crate) mod access_log;
pub(crate) mod metadata;
pub(crate) mod metrics;
pub(crate) mod peer;
pub(crate) mod tracing;

use std::collections::BTreeMap;

use weft_envoy_api::pb::envoy::config::accesslog::v3::AccessLog;
use weft_envoy_api::pb::envoy::extensions::filters::network::http_connection_manager::v3::HttpConnectionManager;
use weft_envoy_api::pb::envoy::extensions::filters::network::tcp_proxy::v3::TcpProxy;
use weft_model::{
    EffectiveTelemetry, MeshSnapshot, Side, resolve_telemetry, spiffe_id, telemetries_for,
};

use super::ProxyView;

/// Istio's value for a label nobody knows.
pub(crate) const UNKNOWN: &str = "unknown";
/// Istio's cluster ID of a single-cluster mesh.
pub(crate) const CLUSTER_ID: &str = "Kubernetes";

/// Who a workload is, as Istio's labels name it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct WorkloadLabels {
    pub workload: String,
    pub namespace: String,
    pub app: String,
    pub version: String,
    pub canonical_service: String,
    pub canonical_revision: String,
}

impl WorkloadLabels {
    /// Istio's derivation from a workload's name, namespace and labels.
    pub(crate) fn new(
        workload: Option<&str>,
        namespace: &str,
        labels: &BTreeMap<String, String>,
    ) -> Self {
        let label = |keys: &[&str]| keys.iter().find_map(|k| labels.get(*k)).cloned();
        let workload = workload.unwrap_or(UNKNOWN).to_string();
        WorkloadLabels {
            app: label(&["app", "app.kubernetes.io/name"]).unwrap_or_else(|| UNKNOWN.into()),
            version: label(&["version", "app.kubernetes.io/version"])
                .unwrap_or_else(|| UNKNOWN.into()),
            canonical_service: label(&[
                "service.istio.io/canonical-name",
                "app.kubernetes.io/name",
                "app",
            ])
            .unwrap_or_else(|| workload.clone()),
            canonical_revision: label(&[
                "service.istio.io/canonical-revision",
                "app.kubernetes.io/version",
                "version",
            ])
            .unwrap_or_else(|| "latest".into()),
            namespace: namespace.to_string(),
            workload,
        }
    }

    /// The proxy's own workload.
    pub(crate) fn of_proxy(view: &ProxyView) -> Self {
        Self::new(view.workload_name.as_deref(), &view.namespace, &view.labels)
    }
}

/// The proxy's own SPIFFE identity, when it has one.
pub(crate) fn own_principal(snapshot: &MeshSnapshot, view: &ProxyView) -> Option<String> {
    view.service_account
        .as_deref()
        .map(|sa| spiffe_id(&snapshot.mesh_config.trust_domain, &view.namespace, sa))
}

/// What the listeners of one side of a proxy report.
pub(crate) struct ListenerTelemetry<'a> {
    snapshot: &'a MeshSnapshot,
    view: &'a ProxyView,
    side: Side,
    effective: EffectiveTelemetry,
}

impl<'a> ListenerTelemetry<'a> {
    /// The telemetry of `view`'s workload for `side`'s listeners.
    pub(crate) fn new(snapshot: &'a MeshSnapshot, view: &'a ProxyView, side: Side) -> Self {
        let mesh = &snapshot.mesh_config;
        let chain = telemetries_for(
            &snapshot.telemetries,
            &mesh.root_namespace,
            &view.namespace,
            &view.labels,
        );
        ListenerTelemetry {
            snapshot,
            view,
            side,
            effective: resolve_telemetry(&chain, mesh, side),
        }
    }

    /// Access logs, metrics and tracing of an HTTP connection manager.
    pub(crate) fn apply_to_hcm(&self, hcm: &mut HttpConnectionManager) {
        hcm.access_log.extend(self.access_logs(true));
        hcm.tracing = tracing::hcm_tracing(self.snapshot, self.view, &self.effective);
    }

    /// Access logs and metrics of a TCP proxy.
    pub(crate) fn apply_to_tcp(&self, tcp: &mut TcpProxy) {
        tcp.access_log.extend(self.access_logs(false));
    }

    fn access_logs(&self, http: bool) -> Vec<AccessLog> {
        let mut logs: Vec<AccessLog> = self
            .effective
            .metrics
            .iter()
            .map(|m| metrics::stats_logger(self.snapshot, self.view, self.side, m, http))
            .collect();
        logs.extend(
            self.effective
                .access_logs
                .iter()
                .filter_map(|log| access_log::build(self.snapshot, self.view, log)),
        );
        logs
    }
}

#[cfg(test)]
mod tests;
