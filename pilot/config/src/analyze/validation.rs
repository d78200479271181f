//! What validation reports (conversion and whole-mesh checks, the same code
//! `weft validate` and the webhook run) as findings: the code by reason and
//! field, so that a subset or gateway error reads as the check it is.

use weft_crds::Kind;
use weft_model::ResourceKind;

use super::{Code, Finding, Resource};
use crate::{ConfigError, ErrorReason};

pub(super) fn findings(errors: &[ConfigError]) -> Vec<Finding> {
    errors
        .iter()
        .map(|error| {
            let code = code_of(error);
            let resource = error
                .resource
                .as_ref()
                .map(Resource::of)
                .unwrap_or_else(|| Resource::new("", "", ""));
            Finding::new(
                code,
                resource,
                &error.error.field,
                &error.error.message,
                fix(code),
            )
            .at(&error.origin)
        })
        .collect()
}

fn code_of(error: &ConfigError) -> Code {
    let field = error.error.field.as_str();
    let kind = error.resource.as_ref().map(|r| r.kind);
    match error.error.reason {
        ErrorReason::Unreadable | ErrorReason::Invalid => Code::SchemaValidationError,
        ErrorReason::Unsupported => Code::UnsupportedByWeft,
        ErrorReason::UnresolvedReference => {
            let virtual_service = kind == Some(ResourceKind::Mesh(Kind::VirtualService));
            if field.ends_with(".subset") {
                Code::SubsetNotFound
            } else if field.ends_with(".destination.host") {
                Code::DestinationHostNotFound
            } else if field.ends_with(".destination.port")
                || field.ends_with(".destination.port.number")
            {
                Code::DestinationPortNotFound
            } else if virtual_service
                && (field.starts_with("spec.gateways[") || field.contains(".gateways["))
            {
                Code::GatewayNotFound
            } else if virtual_service
                && (field == "spec.http"
                    || (field.starts_with("spec.http[") && field.contains(".match[")))
            {
                Code::ConflictingMeshGatewayVirtualServiceHosts
            } else if kind == Some(ResourceKind::Mesh(Kind::Sidecar))
                && field == "spec.workloadSelector"
            {
                Code::MultipleSidecarsWithoutWorkloadSelectors
            } else {
                Code::UnresolvedReference
            }
        }
    }
}

/// The fix for a finding validation reported: its message says what is
/// wrong; this, what to change.
pub(super) fn fix(code: Code) -> &'static str {
    match code {
        Code::SchemaValidationError => "correct the field as the message says",
        Code::UnsupportedByWeft => {
            "Weft ignores this field or kind; remove it, or see the message for what Weft supports instead"
        }
        Code::SubsetNotFound => {
            "define the subset in the host's DestinationRule (spec.subsets), or route to a subset it defines"
        }
        Code::DestinationHostNotFound => {
            "route to an existing Service or ServiceEntry host, or declare the host with a ServiceEntry"
        }
        Code::DestinationPortNotFound => "use a port the destination service declares",
        Code::GatewayNotFound => {
            "create the Gateway, or name an existing one as namespace/name (or `mesh` for sidecars)"
        }
        Code::ConflictingMeshGatewayVirtualServiceHosts => {
            "merge the VirtualServices for this host into one, or make their matches distinct"
        }
        Code::MultipleSidecarsWithoutWorkloadSelectors => {
            "keep one Sidecar without workloadSelector per namespace; give the others a workloadSelector"
        }
        _ => "make the reference point at an object that exists, or remove the conflict",
    }
}
