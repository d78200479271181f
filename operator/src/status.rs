//! The `status` Weft writes on the mesh objects it watches: what the last
//! apply made of each one, as `Accepted` and `Ready` conditions with
//! `observedGeneration`.
//!
//! ```text
//! ConfigStore::apply ─▶ Applied { errors, kept }
//!        │ build_outcomes: errors and kept, per ResourceId
//!        ▼
//! build_status(generation, outcome, previous, now) ─▶ ResourceStatus   (pure)
//!        │ writer (only while this replica holds the leader Lease):
//!        │ skip if unchanged, else server-side apply on /status
//!        ▼
//! kube-apiserver (field manager `weft`: Weft owns only `status`)
//! ```
//!
//! - `Accepted`: `True` when the object converted and passed the
//!   whole-mesh checks; `False` with the reason of its errors
//!   ([`REASON_INVALID`], [`REASON_UNSUPPORTED`],
//!   [`REASON_UNRESOLVED_REFERENCE`]) and every field error in the message.
//! - `Ready`: `True` when its current spec is what proxies are served;
//!   `False` with [`REASON_SERVING_LAST_GOOD`] when the store kept its last
//!   good version, [`REASON_REJECTED`] when it has errors and no last
//!   good version is served in its place, or [`REASON_PROXY_REJECTED`]
//!   when proxies NACKed the config built with it ([`crate::blame`]).
//!
//! A condition's `lastTransitionTime` changes only when its `status`
//! flips, as for `metav1.Condition`.

pub mod writer;

use std::collections::BTreeMap;

use weft_config::{Applied, ErrorReason, FieldError};
use weft_crds::{Condition, ResourceStatus};
use weft_model::ResourceId;

/// Condition type: the object's spec is valid for Weft.
pub const ACCEPTED: &str = "Accepted";
/// Condition type: the object's current spec is what proxies are served.
pub const READY: &str = "Ready";

/// `Accepted=True`.
pub const REASON_ACCEPTED: &str = "Accepted";
/// `Accepted=False`: a field does not parse or breaks a rule.
pub const REASON_INVALID: &str = "Invalid";
/// `Accepted=False`: valid Istio config Weft does not translate yet.
pub const REASON_UNSUPPORTED: &str = "Unsupported";
/// `Accepted=False`: a field names something that does not exist or
/// conflicts with another resource.
pub const REASON_UNRESOLVED_REFERENCE: &str = "UnresolvedReference";
/// `Ready=True`.
pub const REASON_SERVING: &str = "Serving";
/// `Ready=False`: the last good version is served instead.
pub const REASON_SERVING_LAST_GOOD: &str = "ServingLastGood";
/// `Ready=False`: nothing of the current spec is served.
pub const REASON_REJECTED: &str = "Rejected";
/// `Ready=False`: Weft accepted the spec but proxies rejected the config
/// built with it (NACK), and keep their previous one.
pub const REASON_PROXY_REJECTED: &str = "ProxyRejected";

/// `Condition::status` values.
pub const TRUE: &str = "True";
pub const FALSE: &str = "False";

/// Messages longer than this are cut (the apiserver stores them in every
/// object; `metav1.Condition` allows 32 KiB).
pub const MAX_MESSAGE_LEN: usize = 4096;

/// What one apply made of one resource.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Its errors, in the order the apply reported them.
    pub errors: Vec<FieldError>,
    /// Whether its last good version is served in place of the current.
    pub kept: bool,
    /// What proxies that reject the config built with its current spec
    /// say (see [`crate::blame`]).
    pub rejected_by_proxies: Vec<String>,
}

/// The apply's errors and kept resources, per mesh resource (errors that
/// name no resource, or a kind without status, are left out). A resource
/// that is not in the map was accepted as it is.
pub fn build_outcomes(applied: &Applied) -> BTreeMap<ResourceId, Outcome> {
    let mut outcomes: BTreeMap<ResourceId, Outcome> = BTreeMap::new();
    for error in &applied.errors {
        let Some(id) = &error.resource else { continue };
        if id.kind.mesh().is_some() {
            outcomes
                .entry(id.clone())
                .or_default()
                .errors
                .push(error.error.clone());
        }
    }
    for id in &applied.kept {
        if id.kind.mesh().is_some() {
            outcomes.entry(id.clone()).or_default().kept = true;
        }
    }
    outcomes
}

/// The status of the object `id` at `generation`, given what the apply made
/// of it and its `previous` status (for `lastTransitionTime`); `now` is
/// the RFC 3339 time a flipped condition gets.
pub fn build_status(
    id: &ResourceId,
    generation: Option<i64>,
    outcome: &Outcome,
    previous: Option<&ResourceStatus>,
    now: &str,
) -> ResourceStatus {
    let accepted = if outcome.errors.is_empty() {
        (TRUE, REASON_ACCEPTED, format!("{id} is valid"))
    } else {
        (
            FALSE,
            accepted_reason(&outcome.errors),
            error_message(&outcome.errors),
        )
    };
    let ready = if outcome.kept {
        (
            FALSE,
            REASON_SERVING_LAST_GOOD,
            format!("{id}: serving its last good version until the errors in Accepted are fixed"),
        )
    } else if outcome.errors.is_empty() && !outcome.rejected_by_proxies.is_empty() {
        (
            FALSE,
            REASON_PROXY_REJECTED,
            truncate(outcome.rejected_by_proxies.join("; ")),
        )
    } else if outcome.errors.is_empty() {
        (TRUE, REASON_SERVING, format!("{id} is served to proxies"))
    } else {
        (
            FALSE,
            REASON_REJECTED,
            format!("{id} is not served as written: fix the errors in Accepted"),
        )
    };
    let conditions = [(ACCEPTED, accepted), (READY, ready)]
        .into_iter()
        .map(|(type_, (status, reason, message))| {
            let before = previous
                .and_then(|p| p.conditions.iter().find(|c| c.type_ == type_))
                .filter(|c| c.status == status)
                .and_then(|c| c.last_transition_time.clone());
            Condition {
                type_: type_.to_string(),
                status: status.to_string(),
                reason: Some(reason.to_string()),
                message: Some(message),
                last_transition_time: Some(before.unwrap_or_else(|| now.to_string())),
                observed_generation: generation,
            }
        })
        .collect();
    ResourceStatus {
        conditions,
        observed_generation: generation,
    }
}

/// The reason of `Accepted=False`: the most basic kind of error there is
/// (a field that is invalid outranks one Weft does not support, which
/// outranks a reference to something missing).
fn accepted_reason(errors: &[FieldError]) -> &'static str {
    let has = |reason: ErrorReason| errors.iter().any(|e| e.reason == reason);
    if has(ErrorReason::Invalid) || has(ErrorReason::Unreadable) {
        REASON_INVALID
    } else if has(ErrorReason::Unsupported) {
        REASON_UNSUPPORTED
    } else {
        REASON_UNRESOLVED_REFERENCE
    }
}

/// Every error as `field: message`, joined by `; `, cut at
/// [`MAX_MESSAGE_LEN`] on a character boundary.
fn error_message(errors: &[FieldError]) -> String {
    truncate(
        errors
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; "),
    )
}

/// `message` cut at [`MAX_MESSAGE_LEN`] on a character boundary.
fn truncate(mut message: String) -> String {
    if message.len() > MAX_MESSAGE_LEN {
        let mut end = MAX_MESSAGE_LEN;
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        message.truncate(end);
        message.push_str(" ...");
    }
    message
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::sync::Arc;

    use weft_config::{ConfigError, Origin};
    use weft_model::MeshSnapshot;

    use super::*;

    const T0: &str = "2026-01-01T00:00:00Z";
    const T1: &str = "2026-01-01T00:01:00Z";

    fn mk_id() -> ResourceId {
        ResourceId::new(weft_crds::Kind::VirtualService, "default", "reviews")
    }

    fn mk_subset_error() -> FieldError {
        FieldError::new(
            ErrorReason::UnresolvedReference,
            "spec.http[0].route[0].destination.subset",
            "subset v3 is not defined by any DestinationRule for reviews.default.svc.cluster.local",
        )
    }

    fn condition<'a>(status: &'a ResourceStatus, type_: &str) -> &'a Condition {
        status
            .conditions
            .iter()
            .find(|c| c.type_ == type_)
            .expect(type_)
    }

    #[test]
    fn a_valid_object_is_accepted_and_ready() {
        let status = build_status(&mk_id(), Some(3), &Outcome::default(), None, T0);
        assert_eq!(status.observed_generation, Some(3));
        let accepted = condition(&status, ACCEPTED);
        assert_eq!(accepted.status, TRUE);
        assert_eq!(accepted.reason.as_deref(), Some(REASON_ACCEPTED));
        assert_eq!(accepted.observed_generation, Some(3));
        assert_eq!(accepted.last_transition_time.as_deref(), Some(T0));
        let ready = condition(&status, READY);
        assert_eq!(ready.status, TRUE);
        assert_eq!(ready.reason.as_deref(), Some(REASON_SERVING));
    }

    #[test]
    fn a_config_proxies_reject_is_accepted_but_not_ready() {
        let outcome = Outcome {
            rejected_by_proxies: vec!["proxy p1 rejected the routes (RDS): bad regex".into()],
            ..Outcome::default()
        };
        let status = build_status(&mk_id(), Some(5), &outcome, None, T0);
        assert_eq!(condition(&status, ACCEPTED).status, TRUE);
        let ready = condition(&status, READY);
        assert_eq!(ready.status, FALSE);
        assert_eq!(ready.reason.as_deref(), Some(REASON_PROXY_REJECTED));
        assert_eq!(
            ready.message.as_deref(),
            Some("proxy p1 rejected the routes (RDS): bad regex")
        );
    }

    #[test]
    fn an_unresolved_subset_with_a_kept_version_serves_the_last_good() {
        let outcome = Outcome {
            errors: vec![mk_subset_error()],
            kept: true,
            ..Outcome::default()
        };
        let status = build_status(&mk_id(), Some(4), &outcome, None, T0);
        let accepted = condition(&status, ACCEPTED);
        assert_eq!(accepted.status, FALSE);
        assert_eq!(
            accepted.reason.as_deref(),
            Some(REASON_UNRESOLVED_REFERENCE)
        );
        assert_eq!(
            accepted.message.as_deref(),
            Some(
                "spec.http[0].route[0].destination.subset: subset v3 is not defined by any \
                 DestinationRule for reviews.default.svc.cluster.local"
            )
        );
        let ready = condition(&status, READY);
        assert_eq!(ready.status, FALSE);
        assert_eq!(ready.reason.as_deref(), Some(REASON_SERVING_LAST_GOOD));
        assert_eq!(ready.observed_generation, Some(4));
    }

    #[test]
    fn errors_without_a_last_good_version_are_rejected_with_the_most_basic_reason() {
        let outcome = Outcome {
            errors: vec![
                mk_subset_error(),
                FieldError::new(ErrorReason::Unsupported, "spec.tcp", "not translated yet"),
                FieldError::new(
                    ErrorReason::Invalid,
                    "spec.http[0].route",
                    "weights sum to 150",
                ),
            ],
            kept: false,
            ..Outcome::default()
        };
        let status = build_status(&mk_id(), Some(1), &outcome, None, T0);
        let accepted = condition(&status, ACCEPTED);
        assert_eq!(accepted.reason.as_deref(), Some(REASON_INVALID));
        let message = accepted.message.as_deref().unwrap();
        assert!(
            message.contains("spec.tcp: not translated yet; "),
            "{message}"
        );
        assert!(message.contains("spec.http[0].route: weights"), "{message}");
        let ready = condition(&status, READY);
        assert_eq!(ready.status, FALSE);
        assert_eq!(ready.reason.as_deref(), Some(REASON_REJECTED));

        let unsupported = Outcome {
            errors: vec![
                mk_subset_error(),
                FieldError::new(ErrorReason::Unsupported, "f", "m"),
            ],
            kept: false,
            ..Outcome::default()
        };
        let status = build_status(&mk_id(), Some(1), &unsupported, None, T0);
        assert_eq!(
            condition(&status, ACCEPTED).reason.as_deref(),
            Some(REASON_UNSUPPORTED)
        );
    }

    #[test]
    fn transition_time_changes_only_when_the_status_flips() {
        let good = build_status(&mk_id(), Some(1), &Outcome::default(), None, T0);
        // Same status, later apply (and a new generation): times stay.
        let again = build_status(&mk_id(), Some(2), &Outcome::default(), Some(&good), T1);
        for c in &again.conditions {
            assert_eq!(c.last_transition_time.as_deref(), Some(T0), "{c:?}");
            assert_eq!(c.observed_generation, Some(2));
        }
        // A flip to False takes the new time.
        let bad = Outcome {
            errors: vec![mk_subset_error()],
            kept: true,
            ..Outcome::default()
        };
        let flipped = build_status(&mk_id(), Some(3), &bad, Some(&again), T1);
        for c in &flipped.conditions {
            assert_eq!(c.last_transition_time.as_deref(), Some(T1), "{c:?}");
        }
        // Equal inputs give an equal status: the writer can skip it.
        let same = build_status(&mk_id(), Some(3), &bad, Some(&flipped), "later");
        assert_eq!(same, flipped);
    }

    #[test]
    fn long_messages_are_cut_on_a_character_boundary() {
        let errors: Vec<FieldError> = (0..500)
            .map(|i| FieldError::new(ErrorReason::Invalid, format!("spec.hosts[{i}]"), "héllo"))
            .collect();
        let message = error_message(&errors);
        assert!(message.len() <= MAX_MESSAGE_LEN + 4, "{}", message.len());
        assert!(message.ends_with(" ..."));
    }

    #[test]
    fn outcomes_group_errors_and_kept_by_mesh_resource() {
        let origin = Origin {
            source: "kubernetes".to_string(),
            document: None,
        };
        let other = ResourceId::new(weft_crds::Kind::DestinationRule, "default", "reviews");
        let service = ResourceId::new(weft_model::ResourceKind::Service, "default", "reviews");
        let applied = Applied {
            snapshot: Arc::new(MeshSnapshot::default()),
            changed: false,
            resources: Default::default(),
            errors: vec![
                ConfigError {
                    origin: origin.clone(),
                    resource: Some(mk_id()),
                    error: mk_subset_error(),
                },
                ConfigError {
                    origin: origin.clone(),
                    resource: None,
                    error: FieldError::new(ErrorReason::Invalid, "", "not YAML"),
                },
                ConfigError {
                    origin: origin.clone(),
                    resource: Some(service),
                    error: FieldError::new(ErrorReason::Invalid, "spec.ports[0]", "bad"),
                },
                ConfigError {
                    origin,
                    resource: Some(other.clone()),
                    error: FieldError::new(ErrorReason::UnresolvedReference, "spec.host", "dup"),
                },
            ],
            kept: vec![mk_id()],
        };
        let outcomes = build_outcomes(&applied);
        assert_eq!(outcomes.len(), 2, "{outcomes:?}");
        assert_eq!(
            outcomes[&mk_id()],
            Outcome {
                errors: vec![mk_subset_error()],
                kept: true,
                ..Outcome::default()
            }
        );
        assert!(!outcomes[&other].kept);
        assert_eq!(outcomes[&other].errors.len(), 1);
    }
}
