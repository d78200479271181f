//! Which errors a later apply may fix: the rule the validating webhook
//! and `weft validate` share to tell an error (deny, fail) from a warning.
//!
//! | reason | verdict |
//! |---|---|
//! | `Invalid`, `Unreadable` | error |
//! | `Unsupported` | warning |
//! | `UnresolvedReference`, see below | error or warning |
//!
//! An unresolved reference is an error when what it contradicts exists, so
//! that applying more objects cannot fix it; it is a warning when the
//! missing object may simply come next (`kubectl apply -f dir/` sends
//! objects one by one, in no order Weft controls):
//!
//! - `….subset`: an error if a DestinationRule for the destination's host
//!   exists (it does not define the subset); a warning if none exists yet.
//! - `….destination.port[.number]`: the service exists without that port,
//!   or has several: an error.
//! - `spec.host` (a second DestinationRule for a host), `spec.hosts[i]` (a
//!   host another ServiceEntry declares), `spec.workloadSelector` (a second
//!   namespace-wide Sidecar), `spec.selector` (a second namespace-wide
//!   Telemetry), `spec.servers[i].port` (a Gateway port another Gateway's
//!   server holds with another protocol): conflicts with existing objects:
//!   errors.
//! - anything else (a Gateway, a delegate or a destination host that does
//!   not exist yet, rules another VirtualService for the same host makes
//!   unreachable, a Telemetry provider the mesh config does not define):
//!   warnings.

use serde_json::Value;
use weft_model::{MeshSnapshot, qualify_host};

use crate::{ConfigError, ErrorReason};

/// What one error about a resource means for whoever applies it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Applying more objects cannot fix it: deny, fail.
    Deny,
    /// Reported; a later apply may fix it, or it is valid Istio config
    /// Weft does not translate.
    Warn,
}

/// The verdict on `error`, about `object` (the resource as JSON, to read
/// the destination host of a subset) in `namespace`, given the `snapshot`
/// the validation made (see the module doc).
pub fn verdict(
    error: &ConfigError,
    object: &Value,
    namespace: &str,
    snapshot: &MeshSnapshot,
) -> Verdict {
    match error.error.reason {
        ErrorReason::Unsupported => Verdict::Warn,
        ErrorReason::UnresolvedReference => {
            unresolved(&error.error.field, object, namespace, snapshot)
        }
        ErrorReason::Invalid | ErrorReason::Unreadable => Verdict::Deny,
    }
}

fn unresolved(field: &str, object: &Value, namespace: &str, snapshot: &MeshSnapshot) -> Verdict {
    if let Some(destination) = field.strip_suffix(".subset") {
        // A route's single `mirror` is pilot's `mirrors[0]`.
        let host = lookup(object, &format!("{destination}.host"))
            .or_else(|| {
                let route = destination.strip_suffix(".mirrors[0].destination")?;
                lookup(object, &format!("{route}.mirror.host"))
            })
            .and_then(Value::as_str);
        return match host {
            Some(host)
                if snapshot
                    .destination_rules
                    .contains_key(&qualify_host(host, namespace)) =>
            {
                Verdict::Deny
            }
            _ => Verdict::Warn,
        };
    }
    let conflict = field == "spec.host"
        || field == "spec.workloadSelector"
        || field == "spec.selector"
        || indexed(field, "spec.hosts")
        || field
            .strip_suffix(".port")
            .is_some_and(|server| indexed(server, "spec.servers"))
        || field.ends_with(".destination.port")
        || field.ends_with(".destination.port.number");
    if conflict {
        Verdict::Deny
    } else {
        Verdict::Warn
    }
}

/// Whether `field` is `prefix[N]`.
fn indexed(field: &str, prefix: &str) -> bool {
    field
        .strip_prefix(prefix)
        .and_then(|rest| rest.strip_prefix('['))
        .and_then(|rest| rest.strip_suffix(']'))
        .is_some_and(|n| n.parse::<usize>().is_ok())
}

/// The value at `path` (`spec.http[0].route[1].destination.host`) in
/// `value`, if there is one.
pub fn lookup<'a>(value: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(value, |value, segment| {
        let mut parts = segment.split('[');
        let name = parts.next()?;
        let mut value = value.get(name)?;
        for index in parts {
            let index: usize = index.strip_suffix(']')?.parse().ok()?;
            value = value.get(index)?;
        }
        Some(value)
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::lookup;

    #[test]
    fn lookup_follows_field_paths() {
        let object = json!({"spec": {"http": [{"route": [{"destination": {"host": "reviews"}}]}]}});
        assert_eq!(
            lookup(&object, "spec.http[0].route[0].destination.host"),
            Some(&json!("reviews"))
        );
        assert_eq!(lookup(&object, "spec.http[1].route[0]"), None);
        assert_eq!(lookup(&object, "spec.http[x]"), None);
    }
}
