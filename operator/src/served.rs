//! Which mesh kinds the cluster serves, read from its
//! CustomResourceDefinitions (`apiextensions.k8s.io/v1`, watched like any
//! other kind), and the task that starts and stops each kind's watch to
//! match.
//!
//! A cluster that runs Istio has Istio's CRDs and none of Weft's own
//! (`Quota`); an old Istio serves its kinds only up to `v1beta1`. Weft
//! serves the kinds whose CRD is there, Established and serving the
//! version Weft reads, and reports the others ([`MissingKind`]) in its log
//! (a warning per kind, naming the CRD to install), in `/readyz`'s body
//! ([`readiness_detail`]) and in `weft_operator_missing_crds{kind, crd}`.
//!
//! ```text
//! CRD watch ─ping─▶ run(): missing_kinds(wanted, CRDs)  (pure)
//!   served now, not watched ─▶ start the kind's watch (its first list pings the reload)
//!   missing now, watched    ─▶ drop the watch and its objects, ping the reload
//!   ─▶ log the changes, set the gauge, publish the missing kinds (readiness)
//! ```
//!
//! A CRD being deleted counts as missing at once: the apiserver deletes
//! its objects next, and Weft stops serving them with the CRD.

use std::collections::BTreeSet;
use std::fmt;
use std::sync::Arc;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::runtime::reflector::Store;
use tokio::sync::{mpsc, watch};
use tracing::{info, warn};
use weft_crds::Kind;

use crate::mesh::MeshKind;
use crate::mesh_watch::{MeshWatch, WatchContext};
use crate::watch::strip_bookkeeping;

/// The name [`crate::watch::WatchMetrics`] and logs give the CRD watch.
pub const CRD_KIND: &str = "CustomResourceDefinition";

/// Where Weft's chart keeps the CRDs (one file per kind,
/// [`WantedCrd::chart_file`]).
pub const CHART_CRDS_DIR: &str = "charts/weft/crds";

/// The CRD a mesh kind needs, and the version of it Weft reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WantedCrd {
    pub kind: Kind,
    pub group: String,
    pub plural: String,
    pub version: String,
}

impl WantedCrd {
    /// What kube type `K` is read as.
    pub fn of<K: MeshKind>() -> Self {
        Self {
            kind: K::KIND,
            group: K::group(&()).into_owned(),
            plural: K::plural(&()).into_owned(),
            version: K::version(&()).into_owned(),
        }
    }

    /// The CRD's name, `<plural>.<group>` (the apiserver requires it).
    pub fn name(&self) -> String {
        format!("{}.{}", self.plural, self.group)
    }

    /// Its file in [`CHART_CRDS_DIR`].
    pub fn chart_file(&self) -> String {
        format!("{}_{}.yaml", self.group, self.plural)
    }
}

/// Why a kind is not served.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Absence {
    /// No CRD of that name.
    NotInstalled,
    /// It exists, but the apiserver does not serve it (yet): names not
    /// accepted, or just created.
    NotEstablished,
    /// It is being deleted.
    Terminating,
    /// It does not serve the version Weft reads (an Istio before 1.22).
    VersionNotServed { served: Vec<String> },
}

/// A mesh kind Weft does not serve, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MissingKind {
    pub crd: WantedCrd,
    pub absence: Absence,
}

impl fmt::Display for MissingKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let crd = &self.crd;
        write!(f, "{}: CRD {} ", crd.kind, crd.name())?;
        match &self.absence {
            Absence::NotInstalled => f.write_str("is not installed"),
            Absence::NotEstablished => f.write_str("is not Established"),
            Absence::Terminating => f.write_str("is being deleted"),
            Absence::VersionNotServed { served } => write!(
                f,
                "does not serve {} (it serves {})",
                crd.version,
                if served.is_empty() {
                    "none".to_string()
                } else {
                    served.join(", ")
                }
            ),
        }
    }
}

/// Why `wanted`'s kind is not served by `crds`; `None` when it is.
pub fn absence(wanted: &WantedCrd, crds: &[Arc<CustomResourceDefinition>]) -> Option<Absence> {
    let name = wanted.name();
    let Some(crd) = crds
        .iter()
        .find(|crd| crd.metadata.name.as_deref() == Some(name.as_str()))
    else {
        return Some(Absence::NotInstalled);
    };
    if crd.metadata.deletion_timestamp.is_some() {
        return Some(Absence::Terminating);
    }
    let established = crd
        .status
        .as_ref()
        .and_then(|status| status.conditions.as_ref())
        .is_some_and(|conditions| {
            conditions
                .iter()
                .any(|c| c.type_ == "Established" && c.status == "True")
        });
    if !established {
        return Some(Absence::NotEstablished);
    }
    let served: Vec<String> = crd
        .spec
        .versions
        .iter()
        .filter(|version| version.served)
        .map(|version| version.name.clone())
        .collect();
    if served.contains(&wanted.version) {
        None
    } else {
        Some(Absence::VersionNotServed { served })
    }
}

/// The kinds of `wanted` that `crds` do not serve, in `wanted`'s order.
pub fn missing_kinds(
    wanted: &[WantedCrd],
    crds: &[Arc<CustomResourceDefinition>],
) -> Vec<MissingKind> {
    wanted
        .iter()
        .filter_map(|crd| {
            absence(crd, crds).map(|absence| MissingKind {
                crd: crd.clone(),
                absence,
            })
        })
        .collect()
}

/// What `/readyz` adds to its verdict: a line per missing kind, naming
/// the CRD and the chart's file of it; empty when every kind is served.
pub fn readiness_detail(missing: &[MissingKind]) -> String {
    if missing.is_empty() {
        return String::new();
    }
    let mut detail = format!(
        "missing CRDs: {} kind(s) not served until their CRD is installed (no restart needed)\n",
        missing.len()
    );
    for kind in missing {
        detail.push_str(&format!(
            "  {kind}; install {CHART_CRDS_DIR}/{}\n",
            kind.crd.chart_file()
        ));
    }
    detail
}

/// Of a CRD, Weft reads the name, deletion, served versions and
/// conditions; the schemas (often most of a cluster's CRD bytes), printer
/// columns and bookkeeping are dropped.
pub fn trim_crd(crd: &mut CustomResourceDefinition) {
    for version in &mut crd.spec.versions {
        version.schema = None;
        version.additional_printer_columns = None;
        version.selectable_fields = None;
        version.subresources = None;
    }
    crd.spec.conversion = None;
    strip_bookkeeping(crd);
}

/// Keeps the mesh kinds' watches in step with the CRDs: on each ping of
/// the CRD watch (the first comes with its first list), starts the watch
/// of every kind now served, stops that of every kind now missing, and
/// publishes the missing kinds on `missing` (`None` before the first
/// list). Runs until the CRD watch ends.
pub(crate) async fn run(
    crds: Store<CustomResourceDefinition>,
    mut pings: mpsc::UnboundedReceiver<()>,
    watches: Arc<[Arc<dyn MeshWatch>]>,
    context: WatchContext,
    missing: watch::Sender<Option<Vec<MissingKind>>>,
) {
    let wanted: Vec<WantedCrd> = watches.iter().map(|watch| watch.crd()).collect();
    while pings.recv().await.is_some() {
        while pings.try_recv().is_ok() {}
        let now = missing_kinds(&wanted, &crds.state());
        let absent: BTreeSet<Kind> = now.iter().map(|m| m.crd.kind).collect();
        let mut stopped = false;
        for watch in watches.iter() {
            let crd = watch.crd();
            if absent.contains(&crd.kind) {
                stopped |= watch.stop();
            } else if watch.start(&context) {
                info!(
                    kind = %crd.kind,
                    crd = %crd.name(),
                    version = %crd.version,
                    "watching {} (CRD {} serves {})",
                    crd.kind,
                    crd.name(),
                    crd.version
                );
            }
        }
        if stopped {
            let _ = context.changes.send(());
        }
        for crd in &wanted {
            context
                .metrics
                .set_missing(crd.kind.as_str(), &crd.name(), absent.contains(&crd.kind));
        }
        let before = missing.borrow().clone();
        log_changes(before.as_deref(), &now);
        missing.send_replace(Some(now));
    }
}

/// Warns of each kind newly missing (or missing for another reason, but
/// for the moment a CRD being installed is not Established yet), and
/// tells of each served again.
fn log_changes(before: Option<&[MissingKind]>, now: &[MissingKind]) {
    let before = before.unwrap_or_default();
    // A CRD just created is briefly not Established: not worth a warning.
    let installing = |kind: &MissingKind| {
        kind.absence == Absence::NotEstablished
            && before.iter().any(|b| b.crd.kind == kind.crd.kind)
    };
    for kind in now
        .iter()
        .filter(|kind| !(before.contains(kind) || installing(kind)))
    {
        warn!(
            kind = %kind.crd.kind,
            crd = %kind.crd.name(),
            "{} objects are not served: {kind}; install or upgrade it ({CHART_CRDS_DIR}/{}, or Istio's \
             base chart for Istio's kinds), and Weft picks it up without a restart",
            kind.crd.kind,
            kind.crd.chart_file()
        );
    }
    for kind in before
        .iter()
        .filter(|kind| !now.iter().any(|n| n.crd.kind == kind.crd.kind))
    {
        info!(
            kind = %kind.crd.kind,
            crd = %kind.crd.name(),
            "CRD {} is served now: {} objects are read again",
            kind.crd.name(),
            kind.crd.kind
        );
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
        CustomResourceDefinitionCondition, CustomResourceDefinitionStatus,
        CustomResourceDefinitionVersion, CustomResourceValidation, JSONSchemaProps,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use weft_crds::{Quota, Telemetry, VirtualService};

    use super::*;

    fn wanted() -> Vec<WantedCrd> {
        vec![
            WantedCrd::of::<VirtualService>(),
            WantedCrd::of::<Quota>(),
            WantedCrd::of::<Telemetry>(),
        ]
    }

    /// The CRD `name` serving `versions` (name, served), Established or not.
    fn mk_crd(
        name: &str,
        versions: &[(&str, bool)],
        established: bool,
    ) -> Arc<CustomResourceDefinition> {
        let mut crd = CustomResourceDefinition::default();
        crd.metadata.name = Some(name.to_string());
        crd.spec.versions = versions
            .iter()
            .map(|(name, served)| CustomResourceDefinitionVersion {
                name: name.to_string(),
                served: *served,
                ..CustomResourceDefinitionVersion::default()
            })
            .collect();
        crd.status = Some(CustomResourceDefinitionStatus {
            conditions: Some(vec![CustomResourceDefinitionCondition {
                type_: "Established".to_string(),
                status: if established { "True" } else { "False" }.to_string(),
                ..CustomResourceDefinitionCondition::default()
            }]),
            ..CustomResourceDefinitionStatus::default()
        });
        Arc::new(crd)
    }

    /// Istio's CRDs as its base chart installs them (1.22 and later).
    fn istio_crds() -> Vec<Arc<CustomResourceDefinition>> {
        vec![
            mk_crd(
                "virtualservices.networking.istio.io",
                &[("v1", true), ("v1alpha3", true), ("v1beta1", true)],
                true,
            ),
            mk_crd(
                "telemetries.telemetry.istio.io",
                &[("v1", true), ("v1alpha1", true)],
                true,
            ),
            mk_crd(
                "envoyfilters.networking.istio.io",
                &[("v1alpha3", true)],
                true,
            ),
        ]
    }

    #[test]
    fn wanted_crds_name_the_crd_the_version_weft_reads_and_the_chart_file() {
        let quota = WantedCrd::of::<Quota>();
        assert_eq!(quota.name(), "quotas.policy.weft.dev");
        assert_eq!(quota.version, "v1alpha1");
        assert_eq!(quota.chart_file(), "policy.weft.dev_quotas.yaml");
        let telemetry = WantedCrd::of::<Telemetry>();
        assert_eq!(telemetry.name(), "telemetries.telemetry.istio.io");
        assert_eq!(telemetry.version, "v1");
        // Every kind's CRD is the one Weft's chart ships under that name.
        for kind in Kind::ALL {
            let crd = weft_crds::crd_of(kind);
            let wanted = crate::mesh_watch::for_kind(kind).crd();
            assert_eq!(wanted.kind, kind);
            assert_eq!(crd.metadata.name.as_deref(), Some(wanted.name().as_str()));
            assert_eq!(weft_crds::crd_file_name(&crd), wanted.chart_file());
            assert!(crd.spec.versions.iter().any(|v| v.name == wanted.version));
        }
    }

    #[test]
    fn on_istios_crds_only_weft_s_quota_is_missing() {
        let missing = missing_kinds(&wanted(), &istio_crds());
        assert_eq!(
            missing,
            [MissingKind {
                crd: WantedCrd::of::<Quota>(),
                absence: Absence::NotInstalled,
            }]
        );
        assert_eq!(
            missing[0].to_string(),
            "Quota: CRD quotas.policy.weft.dev is not installed"
        );
    }

    #[test]
    fn every_kind_is_served_once_its_crd_is_established_at_weft_s_version() {
        let mut crds = istio_crds();
        crds.push(mk_crd(
            "quotas.policy.weft.dev",
            &[("v1alpha1", true)],
            true,
        ));
        assert_eq!(missing_kinds(&wanted(), &crds), []);
    }

    #[test]
    fn a_crd_not_established_being_deleted_or_without_weft_s_version_is_missing() {
        let quota = WantedCrd::of::<Quota>();
        let pending = mk_crd("quotas.policy.weft.dev", &[("v1alpha1", true)], false);
        assert_eq!(absence(&quota, &[pending]), Some(Absence::NotEstablished));

        let mut deleting = (*mk_crd("quotas.policy.weft.dev", &[("v1alpha1", true)], true)).clone();
        deleting.metadata.deletion_timestamp = Some(Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH));
        assert_eq!(
            absence(&quota, &[Arc::new(deleting)]),
            Some(Absence::Terminating)
        );

        // Istio before 1.22: no v1; a version listed but not served does not count.
        let old = mk_crd(
            "virtualservices.networking.istio.io",
            &[("v1alpha3", true), ("v1beta1", true), ("v1", false)],
            true,
        );
        let missing = missing_kinds(&[WantedCrd::of::<VirtualService>()], &[old]);
        assert_eq!(
            missing[0].absence,
            Absence::VersionNotServed {
                served: vec!["v1alpha3".to_string(), "v1beta1".to_string()]
            }
        );
        assert_eq!(
            missing[0].to_string(),
            "VirtualService: CRD virtualservices.networking.istio.io does not serve v1 \
             (it serves v1alpha3, v1beta1)"
        );
    }

    #[test]
    fn the_readiness_detail_lists_each_missing_kind_with_its_crd_and_file() {
        assert_eq!(readiness_detail(&[]), "");
        let missing = missing_kinds(&wanted(), &istio_crds());
        assert_eq!(
            readiness_detail(&missing),
            "missing CRDs: 1 kind(s) not served until their CRD is installed (no restart needed)\n  \
             Quota: CRD quotas.policy.weft.dev is not installed; install \
             charts/weft/crds/policy.weft.dev_quotas.yaml\n"
        );
    }

    #[test]
    fn a_trimmed_crd_keeps_what_presence_reads() {
        let mut crd = (*mk_crd("quotas.policy.weft.dev", &[("v1alpha1", true)], true)).clone();
        crd.spec.versions[0].schema = Some(CustomResourceValidation {
            open_api_v3_schema: Some(JSONSchemaProps::default()),
        });
        trim_crd(&mut crd);
        assert_eq!(crd.spec.versions[0].schema, None);
        assert_eq!(absence(&WantedCrd::of::<Quota>(), &[Arc::new(crd)]), None);
    }
}
