//! The webhook's decision: one `AdmissionRequest` and the cluster's inputs
//! in, allow / deny with a message and warnings out. Pure: no I/O, no
//! clock, so every rule below is unit-tested on fabricated objects.
//!
//! The candidate object is converted as the watches convert it
//! ([`crate::mesh::build_mesh_inputs`]), put in place of the object of
//! the same kind, namespace and name among the cluster's inputs, and the
//! whole set goes through [`weft_config::validate_inputs_with`] the mesh
//! config the control plane runs with, the code `weft validate -f` runs. Only errors about the candidate count:
//!
//! The rule for each error is [`weft_config::verdict`]'s, which `weft
//! validate` shares: `Invalid` denies, `Unsupported` warns, and an
//! unresolved reference denies when what it contradicts exists (a
//! DestinationRule for the host without the subset, a second
//! DestinationRule for a host, a conflicting Gateway port, ...) and warns
//! when the missing object may simply come next (`kubectl apply -f dir/`
//! sends objects one by one, in no order Weft controls).
//!
//! Errors the candidate causes on *other* objects do not count (a
//! DestinationRule update that drops a subset a VirtualService routes to is
//! allowed): those objects' status reports them, as `weft validate` would.
//!
//! Always allowed: DELETE and CONNECT, subresources (`status`: Weft's own
//! status writes), kinds other than [`Kind`], updates of an
//! object being deleted, and updates that leave `spec` as it was (so
//! labels and finalizers of an object admitted before stay editable).
//! Dry-run requests are validated like the others.

use std::sync::Arc;

use kube::core::DynamicObject;
use kube::core::admission::{AdmissionRequest, Operation};
use serde_json::Value;
use weft_config::{Input, Verdict, verdict};
use weft_crds::{
    AuthorizationPolicy, DestinationRule, Gateway, Kind, PeerAuthentication, Quota,
    RequestAuthentication, ServiceEntry, Sidecar, Telemetry, VirtualService,
};
use weft_model::{MeshConfig, ResourceId};

use weft_config::validate_inputs_with;

use crate::mesh::{self, MeshKind};

/// `kind` of `group` if the webhook validates it: every kind Weft serves
/// ([`Kind`]), in its own API group, any served version.
pub fn validated_kind(group: &str, kind: &str) -> Option<Kind> {
    Kind::from_group_and_name(group, kind)
}

/// The webhook's answer to one request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    /// Why it is denied: one line per error, `Kind ns/name: field: message`.
    pub message: Option<String>,
    /// Shown by `kubectl` to whoever applied the object.
    pub warnings: Vec<String>,
}

impl Decision {
    fn allow() -> Self {
        Self {
            allowed: true,
            message: None,
            warnings: Vec::new(),
        }
    }
}

/// The cluster the candidate is validated with: its inputs (state of the
/// world, as [`crate::Stores::observe`] makes them) and the mesh config
/// the control plane runs with (the providers a Telemetry may name).
#[derive(Clone, Debug, Default)]
pub struct ClusterState {
    pub inputs: Vec<Input>,
    pub mesh_config: Arc<MeshConfig>,
}

/// Decides `request`; `cluster` gives the cluster's current state and is
/// called only when the request needs validating.
pub fn decide(
    request: &AdmissionRequest<DynamicObject>,
    cluster: impl FnOnce() -> ClusterState,
) -> Decision {
    if !matches!(request.operation, Operation::Create | Operation::Update)
        || request.sub_resource.is_some()
    {
        return Decision::allow();
    }
    let Some(kind) = validated_kind(&request.kind.group, &request.kind.kind) else {
        return Decision::allow();
    };
    let Some(object) = &request.object else {
        return deny(vec![format!(
            "{kind} {}: the request holds no object to validate",
            request.name
        )]);
    };
    if request.operation == Operation::Update && leaves_spec_alone(request, object) {
        return Decision::allow();
    }
    let mut object = object.clone();
    if object.metadata.namespace.is_none() {
        object.metadata.namespace = request.namespace.clone();
    }
    let id = ResourceId::new(
        kind,
        object.metadata.namespace.clone().unwrap_or_default(),
        object
            .metadata
            .name
            .clone()
            .unwrap_or_else(|| request.name.clone()),
    );
    let json = serde_json::to_value(&object).unwrap_or(Value::Null);
    let candidate = match candidate_input(kind, object) {
        Ok(input) => input,
        Err(err) => return deny(vec![one_line(&format!("{id}: spec: {err}"))]),
    };
    let ClusterState {
        inputs,
        mesh_config,
    } = cluster();
    let mut inputs: Vec<Input> = inputs
        .into_iter()
        .filter(|input| !matches!(input, Input::Resource { id: other, .. } if *other == id))
        .collect();
    inputs.push(candidate);
    let validation = validate_inputs_with(inputs, mesh_config);
    let mut denied = Vec::new();
    let mut warnings = Vec::new();
    for error in validation
        .errors
        .iter()
        .filter(|e| e.resource.as_ref() == Some(&id))
    {
        let line = one_line(&format!("{id}: {}", error.error));
        match verdict(error, &json, &id.namespace, &validation.snapshot) {
            Verdict::Deny => denied.push(line),
            Verdict::Warn => warnings.push(line),
        }
    }
    if denied.is_empty() {
        Decision {
            allowed: true,
            message: None,
            warnings,
        }
    } else {
        Decision {
            warnings,
            ..deny(denied)
        }
    }
}

/// `text` on one line: each line trimmed, joined by spaces (pilot's regex
/// errors draw a caret under the pattern on lines of their own).
fn one_line(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

fn deny(lines: Vec<String>) -> Decision {
    Decision {
        allowed: false,
        message: Some(lines.join("\n")),
        warnings: Vec::new(),
    }
}

/// An update of an object being deleted, or one that keeps `spec`.
fn leaves_spec_alone(request: &AdmissionRequest<DynamicObject>, object: &DynamicObject) -> bool {
    if object.metadata.deletion_timestamp.is_some() {
        return true;
    }
    request
        .old_object
        .as_ref()
        .is_some_and(|old| old.data.get("spec") == object.data.get("spec"))
}

/// The candidate as the watches would make it an input.
pub(super) fn candidate_input(kind: Kind, object: DynamicObject) -> Result<Input, String> {
    fn one<K: MeshKind>(object: DynamicObject) -> Result<Input, String> {
        let typed: K = object
            .try_parse()
            .map_err(|err| format!("cannot be read as a {}: {err}", K::KIND))?;
        mesh::build_mesh_inputs(&[Arc::new(typed)])
            .pop()
            .ok_or_else(|| format!("the {} made no input", K::KIND))
    }
    match kind {
        Kind::VirtualService => one::<VirtualService>(object),
        Kind::DestinationRule => one::<DestinationRule>(object),
        Kind::ServiceEntry => one::<ServiceEntry>(object),
        Kind::Gateway => one::<Gateway>(object),
        Kind::Sidecar => one::<Sidecar>(object),
        Kind::PeerAuthentication => one::<PeerAuthentication>(object),
        Kind::RequestAuthentication => one::<RequestAuthentication>(object),
        Kind::AuthorizationPolicy => one::<AuthorizationPolicy>(object),
        Kind::Quota => one::<Quota>(object),
        Kind::Telemetry => one::<Telemetry>(object),
    }
}
