//! [`Kind`]: the one list of the kinds Weft serves.
//!
//! Every match over kinds elsewhere is exhaustive, so a kind added here is a
//! compile error everywhere it must be handled: conversion, the CRDs, the
//! watches, status, the webhook.

use std::cmp::Ordering;
use std::fmt;

use crate::document::{GROUP, SERVED_VERSIONS};
use crate::policy::{POLICY_GROUP, POLICY_SERVED_VERSIONS};
use crate::security::{SECURITY_GROUP, SECURITY_SERVED_VERSIONS};
use crate::telemetry::{TELEMETRY_GROUP, TELEMETRY_SERVED_VERSIONS};

/// A kind of mesh resource Weft serves, as written in `kind:`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    VirtualService,
    DestinationRule,
    ServiceEntry,
    Gateway,
    Sidecar,
    PeerAuthentication,
    RequestAuthentication,
    AuthorizationPolicy,
    Quota,
    Telemetry,
}

impl Kind {
    /// Every kind, in the order CRDs, watches and docs list them.
    pub const ALL: [Kind; 10] = [
        Kind::VirtualService,
        Kind::DestinationRule,
        Kind::ServiceEntry,
        Kind::Gateway,
        Kind::Sidecar,
        Kind::PeerAuthentication,
        Kind::RequestAuthentication,
        Kind::AuthorizationPolicy,
        Kind::Quota,
        Kind::Telemetry,
    ];

    /// The kind as written in `kind:`, e.g. `"VirtualService"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Kind::VirtualService => "VirtualService",
            Kind::DestinationRule => "DestinationRule",
            Kind::ServiceEntry => "ServiceEntry",
            Kind::Gateway => "Gateway",
            Kind::Sidecar => "Sidecar",
            Kind::PeerAuthentication => "PeerAuthentication",
            Kind::RequestAuthentication => "RequestAuthentication",
            Kind::AuthorizationPolicy => "AuthorizationPolicy",
            Kind::Quota => "Quota",
            Kind::Telemetry => "Telemetry",
        }
    }

    /// The kind named `name` (case-sensitive, as Kubernetes has it).
    pub fn from_name(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|kind| kind.as_str() == name)
    }

    /// The API group the kind is served in.
    pub const fn group(self) -> &'static str {
        match self {
            Kind::VirtualService
            | Kind::DestinationRule
            | Kind::ServiceEntry
            | Kind::Gateway
            | Kind::Sidecar => GROUP,
            Kind::PeerAuthentication | Kind::RequestAuthentication | Kind::AuthorizationPolicy => {
                SECURITY_GROUP
            }
            Kind::Quota => POLICY_GROUP,
            Kind::Telemetry => TELEMETRY_GROUP,
        }
    }

    /// The versions of [`Kind::group`] the kind is served as (one schema).
    pub const fn served_versions(self) -> &'static [&'static str] {
        match self {
            Kind::VirtualService
            | Kind::DestinationRule
            | Kind::ServiceEntry
            | Kind::Gateway
            | Kind::Sidecar => &SERVED_VERSIONS,
            Kind::PeerAuthentication | Kind::RequestAuthentication | Kind::AuthorizationPolicy => {
                &SECURITY_SERVED_VERSIONS
            }
            Kind::Quota => &POLICY_SERVED_VERSIONS,
            Kind::Telemetry => &TELEMETRY_SERVED_VERSIONS,
        }
    }

    /// The kind named `name` in API group `group`.
    pub fn from_group_and_name(group: &str, name: &str) -> Option<Kind> {
        Kind::from_name(name).filter(|kind| kind.group() == group)
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Ordered by name, so that sorted listings read alphabetically.
impl Ord for Kind {
    fn cmp(&self, other: &Self) -> Ordering {
        self.as_str().cmp(other.as_str())
    }
}

impl PartialOrd for Kind {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_is_found_by_its_name_and_group() {
        for kind in Kind::ALL {
            assert_eq!(Kind::from_name(kind.as_str()), Some(kind));
            assert_eq!(
                Kind::from_group_and_name(kind.group(), kind.as_str()),
                Some(kind)
            );
            assert!(!kind.served_versions().is_empty());
        }
        assert_eq!(Kind::from_name("virtualservice"), None);
        assert_eq!(
            Kind::from_group_and_name("security.istio.io", "VirtualService"),
            None
        );
    }
}
