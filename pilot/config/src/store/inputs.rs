//! The inputs of a reload, sorted: resources that converted, errors, and
//! what must fall back on its last good version.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use super::{Accepted, ConfigError, ErrorReason, FieldError, Input};
use weft_model::ResourceId;

/// The inputs of a reload, sorted. Cheap to clone (the resources are
/// shared): the store keeps the last one, to assemble it again when the
/// mesh config changes.
#[derive(Clone, Debug, Default)]
pub(super) struct Sorted {
    /// Resources that converted; of a resource defined twice, the first.
    pub(super) converted: BTreeMap<ResourceId, Accepted>,
    /// Conversion errors, second definitions and unreadable or unserved
    /// documents, in input order.
    pub(super) errors: Vec<ConfigError>,
    /// Resources whose current version did not convert.
    pub(super) failed: BTreeSet<ResourceId>,
    /// Sources that could not be read: what they held before keeps its
    /// last good version.
    pub(super) broken_sources: BTreeSet<String>,
}

pub(super) fn sort(inputs: Vec<Input>) -> Sorted {
    let mut sorted = Sorted::default();
    for input in inputs {
        match input {
            Input::Resource {
                origin,
                id,
                result: Ok(resource),
            } => sorted.add(
                Accepted {
                    origin,
                    resource: Arc::new(resource),
                },
                id,
            ),
            Input::Resource {
                origin,
                id,
                result: Err(field_errors),
            } => {
                sorted
                    .errors
                    .extend(field_errors.into_iter().map(|error| ConfigError {
                        origin: origin.clone(),
                        resource: Some(id.clone()),
                        error,
                    }));
                sorted.failed.insert(id);
            }
            Input::Broken { origin, error } => {
                sorted.broken_sources.insert(origin.source.clone());
                sorted.errors.push(ConfigError {
                    origin,
                    resource: None,
                    error,
                });
            }
            Input::Unserved { origin, error } => sorted.errors.push(ConfigError {
                origin,
                resource: None,
                error,
            }),
        }
    }
    sorted
}

impl Sorted {
    /// A converted resource; a second definition of `id` is reported.
    fn add(&mut self, accepted: Accepted, id: ResourceId) {
        let Some(first) = self.converted.get(&id) else {
            self.converted.insert(id, accepted);
            return;
        };
        let message = format!(
            "{id} is defined twice; the first one, at {}, is used",
            first.origin
        );
        self.errors.push(ConfigError {
            origin: accepted.origin,
            resource: Some(id),
            error: FieldError::new(ErrorReason::Invalid, "metadata.name", message),
        });
    }
}
