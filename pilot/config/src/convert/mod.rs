//! One resource at a time: `weft-crds` spec -> model objects.
//!
//! One module per kind (a VirtualService's `tcp` / `tls` rules in
//! `l4_route`, a Gateway server's TLS in `gateway::tls`); checks that
//! several kinds share in `common`, CEL expressions in `expression`. Every problem goes into [`Errors`],
//! named by its field path: [`Errors::push`] for invalid values,
//! [`Errors::unsupported`] and [`Errors::unsupported_because`] for valid
//! Istio that Weft does not translate yet, and [`Errors::push_each_set`] /
//! [`Errors::unsupported_each_set`] for lists of fields that must not be
//! set. Nothing is accepted and silently ignored: a field Weft cannot honour
//! is an error.

mod authorization_policy;
mod common;
mod destination_rule;
mod expression;
mod gateway;
mod l4_route;
mod peer_authentication;
mod quota;
mod request_authentication;
mod service_entry;
mod sidecar;
mod telemetry;
mod virtual_service;

pub(crate) use common::is_dns_label;
use weft_crds::MeshResource;

use super::{ErrorReason, FieldError};
use weft_model::{
    AuthorizationPolicy, DestinationRule, Gateway, PeerAuthentication, Quota,
    RequestAuthentication, ResourceId, Service, Sidecar, Telemetry, VirtualService,
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
    RequestAuthentication(RequestAuthentication),
    AuthorizationPolicy(AuthorizationPolicy),
    Quota(Quota),
    Telemetry(Telemetry),
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
        MeshResource::RequestAuthentication(spec) => ConvertedResource::RequestAuthentication(
            request_authentication::convert(id, spec, &mut errors),
        ),
        MeshResource::AuthorizationPolicy(spec) => ConvertedResource::AuthorizationPolicy(
            authorization_policy::convert(id, spec, &mut errors),
        ),
        MeshResource::Quota(spec) => {
            ConvertedResource::Quota(quota::convert(id, spec, &mut errors))
        }
        MeshResource::Telemetry(spec) => {
            ConvertedResource::Telemetry(telemetry::convert(id, spec, &mut errors))
        }
    };
    if errors.0.is_empty() {
        Ok(converted)
    } else {
        Err(errors.0)
    }
}

/// Everything wrong with one resource, in the order it was found.
#[derive(Default)]
pub(super) struct Errors(Vec<FieldError>);

/// What an unsupported field says when there is nothing more to say.
const NOT_SUPPORTED_YET: &str =
    "not supported by Weft yet; remove it or wait for a release that translates it";

impl Errors {
    /// `field` is wrong: `message` says why.
    pub(super) fn push(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0
            .push(FieldError::new(ErrorReason::Invalid, field, message));
    }

    /// `field` is valid Istio that Weft does not translate yet.
    pub(super) fn unsupported(&mut self, field: impl Into<String>) {
        self.unsupported_because(field, NOT_SUPPORTED_YET);
    }

    /// `field` is valid Istio that Weft does not translate yet; `message`
    /// says so, why, and what to do instead.
    pub(super) fn unsupported_because(
        &mut self,
        field: impl Into<String>,
        message: impl Into<String>,
    ) {
        self.0.push(FieldError::unsupported(field, message));
    }

    /// [`Errors::push`] of `message` for each of `fields` (names under
    /// `path`, each with whether it is set) that is set.
    pub(super) fn push_each_set(&mut self, path: &str, fields: &[(&str, bool)], message: &str) {
        for field in set_fields(path, fields) {
            self.push(field, message);
        }
    }

    /// [`Errors::unsupported`] for each of `fields` (names under `path`,
    /// each with whether it is set) that is set.
    pub(super) fn unsupported_each_set(&mut self, path: &str, fields: &[(&str, bool)]) {
        for field in set_fields(path, fields) {
            self.unsupported(field);
        }
    }
}

/// The paths of the fields that are set, in order.
fn set_fields<'a>(path: &'a str, fields: &'a [(&str, bool)]) -> impl Iterator<Item = String> + 'a {
    fields
        .iter()
        .filter(|(_, set)| *set)
        .map(move |(name, _)| format!("{path}.{name}"))
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
