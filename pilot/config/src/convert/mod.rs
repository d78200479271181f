//! One resource at a time: `weft-crds` spec -> model objects.

mod authorization_policy;
mod destination_rule;
mod gateway;
mod l4_route;
mod peer_authentication;
mod quota;
mod service_entry;
mod sidecar;
mod virtual_service;

use weft_crds::MeshResource;

use super::{ErrorReason, FieldError};
use weft_model::{
    AuthorizationPolicy, DestinationRule, Gateway, PeerAuthentication, Quota, ResourceId, Service,
    Sidecar, VirtualService,
};

/// A resource in model form.
#[derive(Clone, Debug, PartialEq)]
pub enum ConvertedResource {
    /// A ServiceEntry: one service per host.
    Services(Vec<Service>),
    /// Boxed: by far the largest variant.
    VirtualService(Box<VirtualService>),
    DestinationRule(DestinationRule),
    Gateway(Gateway),
    Sidecar(Sidecar),
    PeerAuthentication(PeerAuthentication),
    AuthorizationPolicy(AuthorizationPolicy),
    Quota(Quota),
}

/// Converts one resource, or says everything that is wrong with it.
pub fn convert(
    id: &ResourceId,
    resource: &MeshResource,
) -> Result<ConvertedResource, Vec<FieldError>> {
    let mut errors = Errors::default();
    let converted = match resource {
        MeshResource::VirtualService(spec) => ConvertedResource::VirtualService(Box::new(
            virtual_service::convert(id, spec, &mut errors),
        )),
        MeshResource::DestinationRule(spec) => {
            ConvertedResource::DestinationRule(destination_rule::convert(id, spec, &mut errors))
        }
        MeshResource::ServiceEntry(spec) => {
            ConvertedResource::Services(service_entry::convert(id, spec, &mut errors))
        }
        MeshResource::Gateway(spec) => {
            ConvertedResource::Gateway(gateway::convert(id, spec, &mut errors))
        }
        MeshResource::Sidecar(spec) => {
            ConvertedResource::Sidecar(sidecar::convert(id, spec, &mut errors))
        }
        MeshResource::PeerAuthentication(spec) => ConvertedResource::PeerAuthentication(
            peer_authentication::convert(id, spec, &mut errors),
        ),
        MeshResource::AuthorizationPolicy(spec) => ConvertedResource::AuthorizationPolicy(
            authorization_policy::convert(id, spec, &mut errors),
        ),
        MeshResource::Quota(spec) => {
            ConvertedResource::Quota(quota::convert(id, spec, &mut errors))
        }
    };
    if errors.0.is_empty() {
        Ok(converted)
    } else {
        Err(errors.0)
    }
}

#[derive(Default)]
pub(super) struct Errors(Vec<FieldError>);

impl Errors {
    pub(super) fn push(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0
            .push(FieldError::new(ErrorReason::Invalid, field, message));
    }

    pub(super) fn unsupported(&mut self, field: impl Into<String>) {
        self.0.push(FieldError::new(
            ErrorReason::Unsupported,
            field,
            "not supported by Weft yet; remove it or wait for a release that translates it",
        ));
    }
}

pub(super) fn port_number(field: &str, number: u32, errors: &mut Errors) -> Option<u16> {
    match u16::try_from(number) {
        Ok(port) if port > 0 => Some(port),
        _ => {
            errors.push(field, format!("{number} is not a port number (1-65535)"));
            None
        }
    }
}
