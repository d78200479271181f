//! One `POST /validate` body in, the HTTP answer out: parsing the
//! `admission.k8s.io/v1` AdmissionReview, the [`super::decide`] decision,
//! and the AdmissionReview that carries it back. Pure, apart from a log
//! line per review.

use super::decide::{ClusterState, decide, validated_kind};
use axum::http::StatusCode;
use kube::core::DynamicObject;
use kube::core::Status;
use kube::core::admission::{AdmissionRequest, AdmissionResponse, AdmissionReview};
use tracing::info;

/// The answer to one body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    pub status: StatusCode,
    /// An AdmissionReview (JSON) when `status` is 200, else a plain-text
    /// message.
    pub body: String,
    /// For the metrics: the reviewed kind (a [`weft_crds::Kind`] or `other`)
    /// and whether it was allowed; `None` when the body was no review.
    pub reviewed: Option<(&'static str, bool)>,
}

/// Answers one body; `cluster` gives the cluster's state if needed.
pub fn respond(body: &[u8], cluster: impl FnOnce() -> ClusterState) -> Reply {
    let request = match parse_request(body) {
        Ok(request) => request,
        Err(reply) => return reply,
    };
    let decision = decide(&request, cluster);
    let kind = validated_kind(&request.kind.group, &request.kind.kind)
        .map_or("other", weft_crds::Kind::as_str);
    info!(
        kind = %request.kind.kind,
        namespace = request.namespace.as_deref().unwrap_or_default(),
        name = %request.name,
        operation = ?request.operation,
        allowed = decision.allowed,
        warnings = decision.warnings.len(),
        "admission review: {}",
        decision.message.as_deref().unwrap_or("allowed")
    );
    let mut response = AdmissionResponse::from(&request);
    if let Some(message) = &decision.message {
        response = response.deny(message);
        response.result = Status::failure(message, "BadRequest").with_code(400);
    }
    if !decision.warnings.is_empty() {
        response.warnings = Some(decision.warnings.clone());
    }
    answer(response, (kind, decision.allowed))
}

/// The AdmissionReview's request in `body`, or the 400 to answer.
pub fn parse_request(body: &[u8]) -> Result<AdmissionRequest<DynamicObject>, Reply> {
    let review: AdmissionReview<DynamicObject> = serde_json::from_slice(body).map_err(|err| {
        bad_request(format!(
            "the body is not an admission.k8s.io/v1 AdmissionReview ({err}); the webhook expects one from the kube-apiserver"
        ))
    })?;
    review.try_into().map_err(|_| {
        bad_request("the AdmissionReview holds no request; send one with `request` set".to_string())
    })
}

/// `response` in an AdmissionReview, 200; `reviewed` is for the metrics.
pub fn answer(response: AdmissionResponse, reviewed: (&'static str, bool)) -> Reply {
    match serde_json::to_string(&response.into_review()) {
        Ok(body) => Reply {
            status: StatusCode::OK,
            body,
            reviewed: Some(reviewed),
        },
        Err(err) => Reply {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            body: format!("cannot encode the AdmissionReview answer: {err}\n"),
            reviewed: None,
        },
    }
}

fn bad_request(message: String) -> Reply {
    Reply {
        status: StatusCode::BAD_REQUEST,
        body: format!("{message}\n"),
        reviewed: None,
    }
}
