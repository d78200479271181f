//! One `POST /inject` body in, the HTTP answer out: the
//! `admission.k8s.io/v1` AdmissionReview of a Pod, [`super::inject_pod`],
//! and the review carrying the JSONPatch back. Only CREATE is injected
//! (a running Pod's containers cannot change); every Pod is allowed: one
//! that cannot be injected gets a warning instead of a patch. Pure, apart
//! from a log line per review.

use std::collections::BTreeMap;

use kube::core::DynamicObject;
use kube::core::admission::{AdmissionRequest, AdmissionResponse, Operation};
use serde_json::Value;
use tracing::{info, warn};

use super::{InjectConfig, Outcome, inject_patch};
use crate::webhook::review::{Reply, answer, parse_request};

/// Answers one body; `namespace_labels` gives a namespace's labels, `None`
/// when the namespace is unknown.
pub fn respond(
    body: &[u8],
    config: &InjectConfig,
    namespace_labels: impl Fn(&str) -> Option<BTreeMap<String, String>>,
) -> Reply {
    let request = match parse_request(body) {
        Ok(request) => request,
        Err(reply) => return reply,
    };
    let mut response = AdmissionResponse::from(&request);
    let (patch, warnings) = review_pod(&request, config, namespace_labels);
    if !warnings.is_empty() {
        response.warnings = Some(warnings);
    }
    if let Some(patch) = patch {
        response = match response.clone().with_patch(patch) {
            Ok(patched) => patched,
            Err(err) => {
                warn!(%err, "cannot encode the injection patch; the pod is admitted uninjected");
                response
            }
        };
    }
    answer(response, ("Pod", true))
}

/// The patch for `request` (none when the Pod is left alone) and the
/// warnings for the user.
fn review_pod(
    request: &AdmissionRequest<DynamicObject>,
    config: &InjectConfig,
    namespace_labels: impl Fn(&str) -> Option<BTreeMap<String, String>>,
) -> (Option<json_patch::Patch>, Vec<String>) {
    let namespace = request
        .namespace
        .clone()
        .or_else(|| {
            request
                .object
                .as_ref()
                .and_then(|o| o.metadata.namespace.clone())
        })
        .unwrap_or_else(|| "default".to_string());
    let name = request
        .object
        .as_ref()
        .and_then(|o| {
            o.metadata
                .name
                .clone()
                .or_else(|| o.metadata.generate_name.clone())
        })
        .unwrap_or_default();
    let log = |outcome: &str| {
        info!(
            %namespace,
            %name,
            operation = ?request.operation,
            "injection review: {outcome}"
        );
    };
    if request.kind.kind != "Pod" || request.operation != Operation::Create {
        log("not a Pod CREATE, left alone");
        return (None, Vec::new());
    }
    let Some(object) = &request.object else {
        log("no object, left alone");
        return (None, Vec::new());
    };
    let raw: Value = match serde_json::to_value(object) {
        Ok(raw) => raw,
        Err(err) => return uninjected(&log, format!("cannot read the pod: {err}")),
    };
    let mut warnings = Vec::new();
    let labels = namespace_labels(&namespace).unwrap_or_else(|| {
        warnings.push(format!(
            "weft does not know namespace {namespace} yet; only the pod's own sidecar.istio.io/inject label was considered"
        ));
        BTreeMap::new()
    });
    match inject_patch(&raw, &namespace, &labels, config) {
        Ok(Outcome::Skipped(skip)) => {
            log(skip.reason());
            (None, warnings)
        }
        Ok(Outcome::Injected(patch)) => {
            log("injected");
            (Some(patch), warnings)
        }
        Err(err) => {
            let (patch, mut more) = uninjected(&log, err.to_string());
            warnings.append(&mut more);
            (patch, warnings)
        }
    }
}

fn uninjected(log: &impl Fn(&str), reason: String) -> (Option<json_patch::Patch>, Vec<String>) {
    let warning = format!("weft did not inject the sidecar: {reason}");
    log(&warning);
    (None, vec![warning])
}
