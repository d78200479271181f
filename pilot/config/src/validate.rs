//! Whole-mesh validation: what `weft validate`, the validating webhook and
//! standalone's reloads all check, by one code path.

use std::sync::Arc;

use weft_model::{MeshConfig, MeshSnapshot};

use crate::{ConfigError, ConfigStore, Input};

/// What validating some inputs found.
#[derive(Debug)]
pub struct Validation {
    /// The documents that name a resource.
    pub resources: usize,
    /// Every error, as standalone would log it.
    pub errors: Vec<ConfigError>,
    /// The mesh the inputs make (without what failed).
    pub snapshot: Arc<MeshSnapshot>,
}

impl Validation {
    pub fn is_ok(&self) -> bool {
        self.errors.is_empty()
    }
}

/// Applies `inputs` to an empty store, as one mesh with Istio's default
/// mesh config: conversion errors and whole-mesh checks (subsets,
/// duplicate hosts, merging, Telemetry providers) alike.
pub fn validate_inputs(inputs: Vec<Input>) -> Validation {
    validate_inputs_with(inputs, Arc::new(MeshConfig::default()))
}

/// [`validate_inputs`] with `mesh_config` (the providers Telemetry
/// resources may name, the root namespace).
pub fn validate_inputs_with(inputs: Vec<Input>, mesh_config: Arc<MeshConfig>) -> Validation {
    let resources = inputs
        .iter()
        .filter(|input| matches!(input, Input::Resource { .. }))
        .count();
    let mut store = ConfigStore::default();
    store.set_mesh_config(mesh_config);
    let applied = store.apply(inputs);
    Validation {
        resources,
        errors: applied.errors,
        snapshot: applied.snapshot,
    }
}
