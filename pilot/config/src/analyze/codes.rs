//! The finding codes: one per check, stable, documented in the README.
//!
//! `WA` (Weft analyze) and four digits: `00xx` what validation reports
//! (schema, conversion, whole-mesh checks), `01xx` routing references,
//! `02xx` injection and annotations, `03xx` Service ports, `04xx` workload
//! selectors. Where Istio's `istioctl analyze` has the same message, its
//! code is named.

use std::fmt;

use serde::Serialize;

/// How bad a finding is. `weft analyze` fails on errors (by default).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum Severity {
    Error,
    Warning,
    Info,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "Error",
            Severity::Warning => "Warning",
            Severity::Info => "Info",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One check's finding code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Code {
    SchemaValidationError,
    UnsupportedByWeft,
    UnresolvedReference,
    DestinationHostNotFound,
    DestinationPortNotFound,
    SubsetNotFound,
    GatewayNotFound,
    VirtualServiceHostNotInGateway,
    ConflictingMeshGatewayVirtualServiceHosts,
    NamespaceNotInjected,
    PodMissingProxy,
    MisplacedAnnotation,
    UnknownAnnotation,
    PortNameIsNotUnderNamingConvention,
    ConflictingPortProtocols,
    SubsetSelectsNoWorkload,
    SidecarSelectsNoWorkload,
    ConflictingSidecarWorkloadSelectors,
    MultipleSidecarsWithoutWorkloadSelectors,
    AuthorizationPolicySelectsNoWorkload,
    AuthorizationPolicyUnknownNamespace,
}

impl Code {
    /// Every code, in table order.
    pub const ALL: [Code; 21] = [
        Code::SchemaValidationError,
        Code::UnsupportedByWeft,
        Code::UnresolvedReference,
        Code::DestinationHostNotFound,
        Code::DestinationPortNotFound,
        Code::SubsetNotFound,
        Code::GatewayNotFound,
        Code::VirtualServiceHostNotInGateway,
        Code::ConflictingMeshGatewayVirtualServiceHosts,
        Code::NamespaceNotInjected,
        Code::PodMissingProxy,
        Code::MisplacedAnnotation,
        Code::UnknownAnnotation,
        Code::PortNameIsNotUnderNamingConvention,
        Code::ConflictingPortProtocols,
        Code::SubsetSelectsNoWorkload,
        Code::SidecarSelectsNoWorkload,
        Code::ConflictingSidecarWorkloadSelectors,
        Code::MultipleSidecarsWithoutWorkloadSelectors,
        Code::AuthorizationPolicySelectsNoWorkload,
        Code::AuthorizationPolicyUnknownNamespace,
    ];

    /// `WA0101` and so on.
    pub fn code(self) -> &'static str {
        self.row().0
    }

    /// The check's name, as Istio names its messages.
    pub fn name(self) -> &'static str {
        self.row().1
    }

    /// Istio's code for the same message, if it has one.
    pub fn istio(self) -> Option<&'static str> {
        self.row().2
    }

    pub fn severity(self) -> Severity {
        self.row().3
    }

    fn row(self) -> (&'static str, &'static str, Option<&'static str>, Severity) {
        use Severity::{Error, Info, Warning};
        match self {
            Code::SchemaValidationError => {
                ("WA0001", "SchemaValidationError", Some("IST0106"), Error)
            }
            Code::UnsupportedByWeft => ("WA0002", "UnsupportedByWeft", None, Warning),
            Code::UnresolvedReference => ("WA0003", "UnresolvedReference", Some("IST0101"), Error),
            Code::DestinationHostNotFound => {
                ("WA0101", "DestinationHostNotFound", Some("IST0101"), Error)
            }
            Code::DestinationPortNotFound => {
                ("WA0102", "DestinationPortNotFound", Some("IST0101"), Error)
            }
            Code::SubsetNotFound => ("WA0103", "SubsetNotFound", Some("IST0101"), Error),
            Code::GatewayNotFound => ("WA0104", "GatewayNotFound", Some("IST0101"), Error),
            Code::VirtualServiceHostNotInGateway => (
                "WA0105",
                "VirtualServiceHostNotFoundInGateway",
                Some("IST0132"),
                Warning,
            ),
            Code::ConflictingMeshGatewayVirtualServiceHosts => (
                "WA0106",
                "ConflictingMeshGatewayVirtualServiceHosts",
                Some("IST0109"),
                Error,
            ),
            Code::NamespaceNotInjected => ("WA0201", "NamespaceNotInjected", Some("IST0102"), Info),
            Code::PodMissingProxy => ("WA0202", "PodMissingProxy", Some("IST0103"), Warning),
            Code::MisplacedAnnotation => {
                ("WA0203", "MisplacedAnnotation", Some("IST0107"), Warning)
            }
            Code::UnknownAnnotation => ("WA0204", "UnknownAnnotation", Some("IST0108"), Warning),
            Code::PortNameIsNotUnderNamingConvention => (
                "WA0301",
                "PortNameIsNotUnderNamingConvention",
                Some("IST0118"),
                Warning,
            ),
            Code::ConflictingPortProtocols => (
                "WA0302",
                "DeploymentAssociatedToMultipleServices",
                Some("IST0116"),
                Warning,
            ),
            Code::SubsetSelectsNoWorkload => ("WA0401", "SubsetSelectsNoWorkload", None, Warning),
            Code::SidecarSelectsNoWorkload => (
                "WA0402",
                "SidecarSelectsNoWorkload",
                Some("IST0101"),
                Warning,
            ),
            Code::ConflictingSidecarWorkloadSelectors => (
                "WA0403",
                "ConflictingSidecarWorkloadSelectors",
                Some("IST0110"),
                Error,
            ),
            Code::MultipleSidecarsWithoutWorkloadSelectors => (
                "WA0404",
                "MultipleSidecarsWithoutWorkloadSelectors",
                Some("IST0111"),
                Error,
            ),
            Code::AuthorizationPolicySelectsNoWorkload => (
                "WA0405",
                "NoMatchingWorkloadsFound",
                Some("IST0127"),
                Warning,
            ),
            Code::AuthorizationPolicyUnknownNamespace => (
                "WA0406",
                "AuthorizationPolicyUnknownNamespace",
                Some("IST0101"),
                Warning,
            ),
        }
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl Serialize for Code {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.code())
    }
}
