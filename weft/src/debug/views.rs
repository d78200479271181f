//! The JSON bodies of the debug endpoints, built from what the control
//! plane holds. Pure: the handlers in [`super`] fetch, these shape.

use std::time::SystemTime;

use serde_json::{Value, json};
use weft_config::Applied;
use weft_model::{MeshSnapshot, ResourceId};
use weft_operator::status::{Outcome, build_outcomes, build_status};
use weft_xds::{Connection, PushRecord, TypeSync, TypeUrl};

/// Envoy's short name of a type (`istioctl`'s columns).
pub fn short_type(type_url: TypeUrl) -> &'static str {
    match type_url {
        TypeUrl::Cluster => "CDS",
        TypeUrl::ClusterLoadAssignment => "EDS",
        TypeUrl::Listener => "LDS",
        TypeUrl::RouteConfiguration => "RDS",
    }
}

/// RFC 3339, UTC.
pub fn rfc3339(at: SystemTime) -> String {
    jiff::Timestamp::try_from(at)
        .map(|t| t.to_string())
        .unwrap_or_default()
}

/// `/debug/syncz`: per proxy and type, what was sent, what was acked, the
/// state and the standing NACK.
pub fn syncz(connections: &[Connection]) -> Value {
    Value::Array(
        connections
            .iter()
            .map(|c| {
                let types: serde_json::Map<String, Value> = TypeUrl::ALL
                    .iter()
                    .map(|t| {
                        let sync = c.types.get(t).cloned();
                        (short_type(*t).to_string(), type_sync(*t, sync.as_ref()))
                    })
                    .collect();
                json!({
                    "proxy": c.proxy_id(),
                    "node_id": c.node_id,
                    "namespace": c.view.namespace,
                    "cluster_id": c.node.cluster_id,
                    "proxy_version": c.node.version,
                    "types": types,
                })
            })
            .collect(),
    )
}

fn type_sync(type_url: TypeUrl, sync: Option<&TypeSync>) -> Value {
    let Some(sync) = sync else {
        return json!({ "type_url": type_url.as_str(), "state": "IGNORED" });
    };
    let mut value = json!({
        "type_url": type_url.as_str(),
        "state": sync.state().as_str(),
    });
    if let Some(sent) = &sync.sent {
        value["sent_version"] = json!(sent.version);
        value["sent_nonce"] = json!(sent.nonce);
        value["sent_at"] = json!(rfc3339(sent.at));
        value["sent_resources"] = json!(sent.resources);
    }
    if let Some(acked) = &sync.acked {
        value["acked_version"] = json!(acked.version);
        value["acked_nonce"] = json!(acked.nonce);
        value["acked_at"] = json!(rfc3339(acked.at));
    }
    if let Some(rejected) = &sync.rejected {
        value["error"] = json!({
            "version": rejected.version,
            "message": rejected.message,
            "at": rfc3339(rejected.at),
        });
    }
    value
}

/// `/debug/connections`: the open xDS streams.
pub fn connections(connections: &[Connection]) -> Value {
    Value::Array(
        connections
            .iter()
            .map(|c| {
                json!({
                    "connection_id": c.id,
                    "proxy": c.proxy_id(),
                    "node_id": c.node_id,
                    "peer": c.peer,
                    "protocol": c.protocol.as_str(),
                    "connected_at": rfc3339(c.connected_at),
                    "namespace": c.view.namespace,
                    "role": format!("{:?}", c.view.role),
                    "labels": c.view.labels,
                    "service_account": c.view.service_account,
                    "workload": c.view.workload_name,
                    "captured": c.view.capture,
                    "instance_ips": c.view.instance_ips,
                    "subscribed": c.types.keys().map(|t| short_type(*t)).collect::<Vec<_>>(),
                })
            })
            .collect(),
    )
}

/// `/debug/push_status`: the recent pushes, newest first.
pub fn push_status(pushes: &[PushRecord]) -> Value {
    Value::Array(
        pushes
            .iter()
            .map(|p| {
                let changes = p.changes.as_ref().map(|c| {
                    json!({
                        "full": c.full,
                        "clusters": c.clusters,
                        "endpoints": c.endpoints,
                        "routes": c.routes,
                        "all_routes": c.all_routes,
                        "listeners": c.listeners,
                    })
                });
                json!({
                    "version": p.version,
                    "started_at": rfc3339(p.started_at),
                    "duration_ms": p.duration.as_secs_f64() * 1000.0,
                    "proxies": p.proxies,
                    "responses": p.responses,
                    "changes": changes,
                })
            })
            .collect(),
    )
}

/// `/debug/registryz`: the services and their endpoints.
pub fn registryz(snapshot: &MeshSnapshot) -> Value {
    Value::Array(
        snapshot
            .services
            .values()
            .map(|s| {
                json!({
                    "hostname": s.hostname,
                    "namespace": s.namespace,
                    "origin": s.origin.to_string(),
                    "resolution": format!("{:?}", s.resolution),
                    "location": format!("{:?}", s.location),
                    "addresses": s.addresses,
                    "export_to": s.export_to,
                    "ports": s.ports.iter().map(|p| json!({
                        "name": p.name,
                        "port": p.number,
                        "protocol": format!("{:?}", p.protocol),
                        "target_port": p.target_port,
                    })).collect::<Vec<_>>(),
                    "endpoints": s.endpoints.iter().map(|e| json!({
                        "address": e.address,
                        "ports": e.ports,
                        "labels": e.labels,
                        "service_account": e.service_account,
                        "workload": e.workload_name,
                        "locality": e.locality.as_ref().map(|l| format!("{}/{}/{}", l.region, l.zone, l.sub_zone)),
                        "weight": e.weight,
                    })).collect::<Vec<_>>(),
                })
            })
            .collect(),
    )
}

/// `/debug/configz`: every resource of the last apply with its
/// `Accepted` and `Ready` conditions (as the operator writes them on the
/// objects), plus the errors that name no resource.
pub fn configz(applied: &Applied, now: SystemTime) -> Value {
    let outcomes = build_outcomes(applied);
    let now = rfc3339(now);
    let no_outcome = Outcome::default();
    let resources: Vec<Value> = applied
        .resources
        .iter()
        .filter(|id| id.kind.mesh().is_some())
        .map(|id| resource(id, outcomes.get(id).unwrap_or(&no_outcome), &now))
        .collect();
    let unattached: Vec<Value> = applied
        .errors
        .iter()
        .filter(|e| e.resource.is_none())
        .map(|e| json!({ "origin": e.origin.to_string(), "error": e.error.to_string() }))
        .collect();
    json!({
        "version": applied.snapshot.version,
        "resources": resources,
        "errors": unattached,
    })
}

fn resource(id: &ResourceId, outcome: &Outcome, now: &str) -> Value {
    let status = build_status(id, None, outcome, None, now);
    json!({
        "kind": id.kind.to_string(),
        "namespace": id.namespace,
        "name": id.name,
        "conditions": serde_json::to_value(&status.conditions).unwrap_or_default(),
        "errors": outcome.errors.iter().map(|e| json!({
            "field": e.field,
            "reason": e.reason.kind(),
            "message": e.to_string(),
        })).collect::<Vec<_>>(),
    })
}
