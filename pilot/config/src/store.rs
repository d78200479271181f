//! Assembling converted resources into snapshots, keeping last good ones.
//!
//! A reload runs in three steps:
//!
//! 1. [`inputs`] sorts the inputs: resources that converted (the first
//!    definition of each), and errors.
//! 2. [`LastGood`] serves the last good version of each resource that
//!    failed to convert or whose source could not be read.
//! 3. [`assemble`] runs one whole-mesh pass per kind ([`hosts`] for
//!    ServiceEntries and DestinationRules, [`sidecars`], [`quotas`],
//!    [`telemetries`] against the mesh config, [`references`] for
//!    VirtualServices): each takes the resources of its
//!    kind and returns what it serves and the errors of what it rejects.
//!    One function settles every pass's rejections with [`LastGood`]: a
//!    rejected VirtualService is served at its last good version when that
//!    one passes; other rejected resources are dropped. Reports that leave
//!    resources in place come last ([`virtual_services`] conflicts and
//!    [`delegates`], [`gateways`]).
//!
//! The store keeps the last reload's sorted inputs (their resources are
//! shared, not copied), so that a new mesh config
//! ([`ConfigStore::set_mesh_config`]) assembles them again: the passes that
//! read it (Telemetry's providers) run again, and the snapshot carries it.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;

use super::{ConfigError, ConvertedResource, ErrorReason, FieldError};
use weft_model::{FetchedJwks, JwksLocation, MeshConfig, MeshSnapshot, ResourceId};

mod assemble;
mod delegates;
mod ext_authz;
mod gateways;
mod hosts;
mod inputs;
mod jwks;
mod last_good;
mod quotas;
mod references;
mod sidecars;
mod tcp_policies;
mod telemetries;
mod virtual_services;

use last_good::LastGood;

/// Where a resource came from: a file and the index of the document in it
/// (0-based), or another source's name for its objects.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Origin {
    pub source: String,
    pub document: Option<usize>,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.document {
            Some(n) => write!(f, "{}: document {n}", self.source),
            None => f.write_str(&self.source),
        }
    }
}

/// One input of a reload.
#[derive(Clone, Debug)]
pub enum Input {
    /// A resource, converted or not.
    Resource {
        origin: Origin,
        id: ResourceId,
        result: Result<ConvertedResource, Vec<FieldError>>,
    },
    /// Something that does not name a resource: an unreadable file, a
    /// document that is not YAML or lacks a kind or name. Resources that its
    /// source held before keep their last good version.
    Broken { origin: Origin, error: FieldError },
    /// A document of a kind this source does not serve (yet): reported,
    /// and otherwise left alone.
    Unserved { origin: Origin, error: FieldError },
}

/// The result of a reload.
#[derive(Clone, Debug)]
pub struct Applied {
    pub snapshot: Arc<MeshSnapshot>,
    /// Whether the snapshot differs from the one before.
    pub changed: bool,
    pub errors: Vec<ConfigError>,
    /// Resources served at their last good version because the current one
    /// is bad.
    pub kept: Vec<ResourceId>,
    /// Every resource of the inputs, converted or not (the debug
    /// endpoints list them with their conditions).
    pub resources: BTreeSet<ResourceId>,
}

/// A resource as applied: where it came from and its model form (shared
/// by the last good versions and the kept inputs).
#[derive(Clone, Debug)]
struct Accepted {
    origin: Origin,
    resource: Arc<ConvertedResource>,
}

/// The whole configuration as last applied. Each reload hands it every
/// input again (state of the world); it answers with a new snapshot. The
/// mesh config is set apart ([`ConfigStore::set_mesh_config`]); Istio's
/// defaults until then.
#[derive(Debug, Default)]
pub struct ConfigStore {
    last_good: BTreeMap<ResourceId, Accepted>,
    current: Arc<MeshSnapshot>,
    /// The last reload's inputs, for assembling them again with another
    /// mesh config.
    inputs: inputs::Sorted,
    mesh_config: Arc<MeshConfig>,
    /// The key sets fetched for RequestAuthentications, carried by every
    /// snapshot ([`ConfigStore::set_fetched_jwks`]).
    fetched_jwks: Arc<BTreeMap<JwksLocation, FetchedJwks>>,
}

impl ConfigStore {
    pub fn snapshot(&self) -> Arc<MeshSnapshot> {
        self.current.clone()
    }

    /// The mesh config the snapshots are assembled with.
    pub fn mesh_config(&self) -> Arc<MeshConfig> {
        self.mesh_config.clone()
    }

    /// Applies `inputs`, the whole configuration (state of the world), with
    /// the current mesh config.
    pub fn apply(&mut self, inputs: Vec<Input>) -> Applied {
        self.inputs = inputs::sort(inputs);
        self.assemble()
    }

    /// Assembles the last inputs again with `mesh_config`: the snapshot
    /// carries it, and the checks that depend on it (the providers
    /// Telemetry resources name) run again. `changed` says whether the
    /// snapshot differs, as for [`ConfigStore::apply`].
    pub fn set_mesh_config(&mut self, mesh_config: impl Into<Arc<MeshConfig>>) -> Applied {
        self.mesh_config = mesh_config.into();
        self.assemble()
    }

    /// Assembles the last inputs again with the key sets the control plane
    /// holds for RequestAuthentications' `jwksUri` and issuers.
    pub fn set_fetched_jwks(&mut self, fetched: BTreeMap<JwksLocation, FetchedJwks>) -> Applied {
        self.fetched_jwks = Arc::new(fetched);
        self.assemble()
    }

    /// Assembles the kept inputs into the next snapshot.
    fn assemble(&mut self) -> Applied {
        let inputs::Sorted {
            mut converted,
            mut errors,
            failed,
            broken_sources,
        } = self.inputs.clone();
        let resources: BTreeSet<ResourceId> = converted.keys().chain(&failed).cloned().collect();
        let mut last_good = LastGood::new(&self.last_good);
        last_good.stand_in_for_failed(&mut converted, &failed, &broken_sources);
        let assembled = assemble::assemble(
            self.current.version + 1,
            &self.mesh_config,
            &self.fetched_jwks,
            converted,
            &mut last_good,
        );
        let kept = last_good.kept();
        errors.extend(assembled.errors);
        let snapshot = assembled.snapshot;
        let changed = {
            let mut previous = (*self.current).clone();
            previous.version = snapshot.version;
            previous != snapshot
        };
        if changed {
            self.current = Arc::new(snapshot);
        }
        self.last_good = assembled.accepted;
        Applied {
            snapshot: self.current.clone(),
            changed,
            errors,
            kept,
            resources,
        }
    }
}

/// Where an error about `id` is reported: its origin, or its name when
/// it has none.
fn origin_of(origin: Option<&Origin>, id: &ResourceId) -> Origin {
    origin.cloned().unwrap_or_else(|| Origin {
        source: id.to_string(),
        document: None,
    })
}

/// An error about a reference `id` makes that the mesh cannot satisfy.
fn unresolved(
    origins: &BTreeMap<ResourceId, Origin>,
    id: &ResourceId,
    field: impl Into<String>,
    message: String,
) -> ConfigError {
    ConfigError {
        origin: origin_of(origins.get(id), id),
        resource: Some(id.clone()),
        error: FieldError::unresolved(field, message),
    }
}
