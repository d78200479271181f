//! # weft-config: from user resources to the model
//!
//! This crate owns what Weft makes of the user's mesh config (Istio YAML,
//! as `weft-crds` types): the model objects, every error with its resource,
//! field path and reason, and the snapshots. It does no I/O and depends on
//! no tokio, tonic or notify: weft-source reads files, weft-operator
//! watches Kubernetes, and both hand it [`Input`]s.
//!
//! - [`parse_documents`] turns multi-document YAML text into inputs; a
//!   document whose spec does not parse is still named by its kind,
//!   namespace and name, whatever its [`weft_crds::Kind`].
//! - [`convert()`] turns one resource into model objects, or lists every field
//!   that is wrong with it (path and reason). Pure, no context needed.
//! - [`ConfigStore`] assembles converted resources into a
//!   [`MeshSnapshot`](weft_model::MeshSnapshot): it checks what needs the
//!   whole mesh (a subset must be defined, a host declared once), and when a
//!   resource is bad it keeps serving that resource's last good version, so
//!   a bad edit never takes traffic down.
//! - [`validate_inputs`] is that assembly on an empty store: what `weft
//!   validate`, the validating webhook and standalone all check
//!   ([`validate_inputs_with`] a mesh config).
//! - [`parse_mesh_config`] reads Istio's MeshConfig YAML (the root
//!   namespace, the trust domain, telemetry providers) into a
//!   [`MeshConfig`](weft_model::MeshConfig), naming every bad field;
//!   [`ConfigStore::set_mesh_config`] assembles the snapshot with it.
//! - [`validate_documents`] is `weft validate`'s view of the same: documents
//!   of kinds Weft does not own are skipped and counted, and an error a
//!   later apply may fix is a warning ([`verdict()`], the webhook's rule).
//! - [`analyze`] is `weft analyze`: the same validation plus checks over
//!   the Kubernetes objects around the mesh (pods' proxies, Service ports,
//!   selectors, annotations), each finding with a stable code, a severity,
//!   a field path and a fix.
//! - `testing` (feature `testing`): meshes written as YAML for other
//!   crates' tests.

pub mod analyze;
mod convert;
mod documents;
mod mesh_config;
pub mod metrics;
mod store;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
mod validate;
mod verdict;

pub use convert::{ConvertedResource, convert};
pub use documents::{
    DEFAULT_NAMESPACE, Document, document_input, is_mesh_document, parse_documents, split_documents,
};
pub use mesh_config::{DEFAULT_OTEL_LOG_NAME, parse_mesh_config, parse_mesh_config_over};
pub use store::{Applied, ConfigStore, Input, Origin};
pub use validate::{
    DocumentValidation, Validation, validate_documents, validate_inputs, validate_inputs_with,
};
pub use verdict::{Verdict, lookup, verdict};

#[cfg(test)]
mod tests;

use std::fmt;

use weft_model::ResourceId;

/// One thing wrong with one field of a resource.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    /// Path in the resource, e.g. `spec.http[0].route[1].destination.subset`.
    pub field: String,
    pub message: String,
    pub reason: ErrorReason,
}

impl FieldError {
    pub fn new(reason: ErrorReason, field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
            reason,
        }
    }

    /// Valid Istio config that Weft does not translate yet. `message` says
    /// so in its own words, and what to do instead.
    pub(crate) fn unsupported(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(ErrorReason::Unsupported, field, message)
    }

    /// A reference the mesh cannot satisfy, or a conflict with another
    /// resource.
    pub(crate) fn unresolved(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(ErrorReason::UnresolvedReference, field, message)
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.field, self.message)
        }
    }
}

/// Why a document or a resource was not applied, and where it is.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{origin}: {}{error}", self.resource.as_ref().map(|r| format!("{r}: ")).unwrap_or_default())]
pub struct ConfigError {
    pub origin: Origin,
    /// `None` when the document is too broken to name a resource.
    pub resource: Option<ResourceId>,
    pub error: FieldError,
}

/// What kind of failure a [`ConfigError`] is, for metrics and status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorReason {
    /// The file could not be read or is not YAML.
    Unreadable,
    /// The document is not a resource Weft serves, or its fields do not
    /// parse.
    Invalid,
    /// A field is valid but names something that does not exist, or
    /// conflicts with another resource.
    UnresolvedReference,
    /// Valid Istio config that Weft does not translate yet.
    Unsupported,
}

impl ErrorReason {
    pub fn kind(self) -> &'static str {
        match self {
            ErrorReason::Unreadable => "unreadable",
            ErrorReason::Invalid => "invalid",
            ErrorReason::UnresolvedReference => "unresolved_reference",
            ErrorReason::Unsupported => "unsupported",
        }
    }
}
