//! The JSONPatch that adds a [`Sidecar`] to a Pod's raw JSON, and the
//! Pod it yields. The patch is built from the sidecar (one `add` per
//! label, annotation, container and volume, one `remove` per annotation it
//! drops, one `replace` per rewritten app probe, so a review reads it), and the
//! injected Pod is that patch applied: the two cannot disagree. Working on
//! the raw JSON (not a re-serialised `k8s_openapi` Pod) keeps fields this
//! build does not know.

use json_patch::jsonptr::PointerBuf;
use json_patch::{AddOperation, Patch, PatchOperation, RemoveOperation, ReplaceOperation};
use serde_json::{Map, Value};

use super::Error;
use super::template::Sidecar;

/// `raw` with `patch` applied.
pub fn apply_patch(raw: &Value, patch: &Patch) -> Result<Value, Error> {
    let mut pod = raw.clone();
    json_patch::patch(&mut pod, patch).map_err(|err| Error::Patch(err.to_string()))?;
    Ok(pod)
}

/// The patch adding `sidecar` to `raw`: its init containers before the
/// Pod's, its volumes after the Pod's, its labels (only keys the Pod lacks)
/// and annotations (replacing the Pod's values; `/metadata/annotations`
/// created when the Pod has none), the removal of the annotations it
/// drops, and the service account when the Pod names none. A container,
/// container port or volume name the Pod already uses is an error.
pub fn build_patch(raw: &Value, sidecar: &Sidecar) -> Result<Patch, Error> {
    let root = raw.as_object().ok_or(Error::Shape {
        path: "the Pod",
        expected: "an object",
    })?;
    let metadata = field(root, "metadata", "metadata")?;
    let spec = field(root, "spec", "spec")?;
    let mut ops = Vec::new();
    let empty = Map::new();
    let metadata_map = metadata.unwrap_or(&empty);

    let labels = field(metadata_map, "labels", "metadata.labels")?;
    let new_labels: Map<String, Value> = sidecar
        .labels
        .iter()
        .filter(|(key, _)| labels.is_none_or(|labels| !labels.contains_key(*key)))
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    add_members(
        &mut ops,
        metadata.is_some(),
        labels.is_some(),
        "labels",
        new_labels,
    );
    let annotations = field(metadata_map, "annotations", "metadata.annotations")?;
    for key in &sidecar.remove_annotations {
        if annotations.is_some_and(|annotations| annotations.contains_key(key)) {
            ops.push(PatchOperation::Remove(RemoveOperation {
                path: PointerBuf::from_tokens(["metadata", "annotations", key.as_str()]),
            }));
        }
    }
    let new_annotations: Map<String, Value> = sidecar
        .annotations
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    add_members(
        &mut ops,
        metadata.is_some(),
        annotations.is_some(),
        "annotations",
        new_annotations,
    );

    // The app's probes first: their indexes are the Pod's own, before the
    // sidecar's init containers go in front.
    for rewritten in &sidecar.probes {
        let index = rewritten.index.to_string();
        ops.push(PatchOperation::Replace(ReplaceOperation {
            path: PointerBuf::from_tokens([
                "spec",
                rewritten.list,
                index.as_str(),
                rewritten.field,
            ]),
            value: rewritten.probe.clone(),
        }));
    }
    let spec_map = spec.unwrap_or(&empty);
    let init = list(spec_map, "initContainers", "spec.initContainers")?;
    let app_containers = list(spec_map, "containers", "spec.containers")?;
    let taken: Vec<&str> = names(init).chain(names(app_containers)).collect();
    let taken_ports: Vec<&str> = init
        .into_iter()
        .flatten()
        .chain(app_containers.into_iter().flatten())
        .filter_map(|container| container.get("ports").and_then(Value::as_array))
        .flat_map(|ports| names(Some(ports)))
        .collect();
    let mut containers = Vec::new();
    for container in &sidecar.init_containers {
        if taken.contains(&container.name.as_str()) {
            return Err(Error::NameClash {
                what: "a container",
                name: container.name.clone(),
            });
        }
        let port_names = container
            .ports
            .iter()
            .flatten()
            .filter_map(|p| p.name.as_ref());
        for name in port_names {
            if taken_ports.contains(&name.as_str()) {
                return Err(Error::NameClash {
                    what: "a container port",
                    name: name.clone(),
                });
            }
        }
        containers.push(serde_json::to_value(container)?);
    }
    let volumes_list = list(spec_map, "volumes", "spec.volumes")?;
    let taken: Vec<&str> = names(volumes_list).collect();
    let mut volumes = Vec::new();
    for volume in &sidecar.volumes {
        if taken.contains(&volume.name.as_str()) {
            return Err(Error::NameClash {
                what: "a volume",
                name: volume.name.clone(),
            });
        }
        volumes.push(serde_json::to_value(volume)?);
    }
    if spec.is_none() {
        ops.push(add(&["spec"], Value::Object(Map::new())));
    }
    if let Some(name) = &sidecar.service_account_name {
        let path = ["spec", "serviceAccountName"];
        ops.push(add(&path, Value::String(name.clone())));
    }
    match init {
        None => ops.push(add(&["spec", "initContainers"], Value::Array(containers))),
        Some(_) => {
            for (index, container) in containers.into_iter().enumerate() {
                ops.push(add(
                    &["spec", "initContainers", &index.to_string()],
                    container,
                ));
            }
        }
    }
    match volumes_list {
        None => ops.push(add(&["spec", "volumes"], Value::Array(volumes))),
        Some(_) => {
            for volume in volumes {
                ops.push(add(&["spec", "volumes", "-"], volume));
            }
        }
    }
    Ok(Patch(ops))
}

/// Adds `members` under `/metadata/KEY`: as one object when the Pod has no
/// such map, else one `add` per member.
fn add_members(
    ops: &mut Vec<PatchOperation>,
    has_metadata: bool,
    has_map: bool,
    key: &str,
    members: Map<String, Value>,
) {
    if members.is_empty() {
        return;
    }
    if !has_metadata {
        ops.push(add(&["metadata"], Value::Object(Map::new())));
    }
    if has_map {
        for (member, value) in members {
            ops.push(add(&["metadata", key, &member], value));
        }
    } else {
        ops.push(add(&["metadata", key], Value::Object(members)));
    }
}

fn add(tokens: &[&str], value: Value) -> PatchOperation {
    PatchOperation::Add(AddOperation {
        path: PointerBuf::from_tokens(tokens.iter().copied()),
        value,
    })
}

/// `parent[key]` as an object; `None` when missing or null.
fn field<'a>(
    parent: &'a Map<String, Value>,
    key: &str,
    path: &'static str,
) -> Result<Option<&'a Map<String, Value>>, Error> {
    match parent.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(map)) => Ok(Some(map)),
        Some(_) => Err(Error::Shape {
            path,
            expected: "an object",
        }),
    }
}

/// `parent[key]` as a list; `None` when missing or null.
fn list<'a>(
    parent: &'a Map<String, Value>,
    key: &str,
    path: &'static str,
) -> Result<Option<&'a Vec<Value>>, Error> {
    match parent.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(items)) => Ok(Some(items)),
        Some(_) => Err(Error::Shape {
            path,
            expected: "a list",
        }),
    }
}

fn names(items: Option<&Vec<Value>>) -> impl Iterator<Item = &str> {
    items
        .into_iter()
        .flatten()
        .filter_map(|item| item.get("name").and_then(Value::as_str))
}
