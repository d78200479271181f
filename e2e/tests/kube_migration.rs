//! Migrating from istiod (issue 16): `weft operator` on an apiserver that
//! holds Istio's own CRDs (its base chart's `crd-all.gen.yaml`) and none of
//! Weft's. It starts without Weft's Quota CRD, routes a VirtualService
//! applied by kubectl through a real Envoy, writes status on Istio's
//! VirtualService, and reports Quota missing in `/readyz` (still 200), in
//! `weft_operator_missing_crds` and in its log. Installing Weft's Quota CRD
//! later makes Quotas work with no restart (a Quota is accepted and served,
//! its status says so) and clears the report; deleting the CRD reports it
//! missing again while routing goes on.
//!
//! The operator runs as the chart's ServiceAccount ([`operator_identity`]),
//! so the chart's RBAC for CustomResourceDefinitions is exercised.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use anyhow::{Context, Result, ensure};
use weft_e2e::kube_mesh::{
    apply, condition, get_object, install_chart_crd, operator_identity, route_all_to,
};
use weft_e2e::yaml::fqdn;
use weft_e2e::{APPLY_TIMEOUT, ControlPlane, KubeMesh, Weft, install_istio_crds, wait_for};

const QUOTA_CRD: &str = "quotas.policy.weft.dev";
const QUOTA_CRD_FILE: &str = "policy.weft.dev_quotas.yaml";
const QUOTA_MISSING: &str = "Quota: CRD quotas.policy.weft.dev is not installed";

const QUOTA: &str = "\
apiVersion: policy.weft.dev/v1alpha1
kind: Quota
metadata:
  name: reviews
  namespace: default
spec:
  destination:
    host: reviews
  maxAmount: 5
  validDuration: 10s
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weft_replaces_istiod_on_istios_crds_and_serves_quotas_once_their_crd_is_installed()
-> Result<()> {
    let plane = tokio::task::spawn_blocking(ControlPlane::start).await??;
    install_istio_crds(&plane)?;
    let crds = plane.kubectl_ok(&["get", "crd", "-o", "name"])?;
    ensure!(!crds.contains(QUOTA_CRD), "no Weft CRD yet: {crds}");

    let KubeMesh { mesh, plane, .. } = &KubeMesh::start_on(plane, operator_identity).await?;
    let weft = mesh.weft();
    let pid = weft.process().pid();
    let host = fqdn("reviews", "default");

    // Served from Istio's CRDs: the VirtualService the apiserver held at
    // start, then one applied by kubectl, route real traffic.
    mesh.wait_for_body(&host, "/", &[], "v1", APPLY_TIMEOUT)
        .await?;
    route_all_to(plane, mesh, "v2", APPLY_TIMEOUT).await?;
    // Status writes work on Istio's CRD (a `status` subresource with
    // x-kubernetes-preserve-unknown-fields).
    wait_for_served(plane, "virtualservice", "reviews").await?;

    // Quota is reported missing, and only Quota.
    let readyz = weft.monitoring_get("/readyz").await?;
    assert_eq!(
        readyz.status, 200,
        "ready while a kind is missing: {readyz:?}"
    );
    assert!(readyz.body.contains(QUOTA_MISSING), "{}", readyz.body);
    assert!(
        readyz
            .body
            .contains("charts/weft/crds/policy.weft.dev_quotas.yaml"),
        "{}",
        readyz.body
    );
    assert!(
        readyz.body.contains("1 kind(s) not served"),
        "only Quota is missing: {}",
        readyz.body
    );
    assert_eq!(missing_gauge(weft, "Quota", QUOTA_CRD).await?, Some(1));
    assert_eq!(
        missing_gauge(
            weft,
            "VirtualService",
            "virtualservices.networking.istio.io"
        )
        .await?,
        Some(0)
    );
    let warning = weft
        .process()
        .logs()
        .into_iter()
        .find(|line| line.contains("WARN") && line.contains(QUOTA_MISSING));
    assert!(
        warning
            .as_deref()
            .is_some_and(|l| l.contains(QUOTA_CRD_FILE)),
        "a warning naming Quota and its CRD: {warning:?}\n{}",
        weft.process().log_tail(40)
    );

    // Weft's Quota CRD installed: picked up without a restart.
    install_chart_crd(plane, QUOTA_CRD_FILE)?;
    wait_for("/readyz to stop reporting Quota", APPLY_TIMEOUT, || async {
        let readyz = weft.monitoring_get("/readyz").await.ok()?;
        (readyz.status == 200 && !readyz.body.contains("Quota")).then_some(())
    })
    .await
    .with_context(|| weft.process().log_tail(30))?;
    assert_eq!(missing_gauge(weft, "Quota", QUOTA_CRD).await?, Some(0));
    apply(plane, QUOTA)?;
    wait_for_served(plane, "quota", "reviews")
        .await
        .with_context(|| weft.process().log_tail(30))?;
    ensure!(
        weft.process().is_running() && weft.process().pid() == pid,
        "the same weft process serves throughout"
    );

    // The CRD deleted: Quota is reported missing again; routing goes on.
    plane.kubectl_ok(&["delete", "crd", QUOTA_CRD, "--wait=true"])?;
    wait_for("/readyz to report Quota again", APPLY_TIMEOUT, || async {
        let readyz = weft.monitoring_get("/readyz").await.ok()?;
        readyz.body.contains(QUOTA_MISSING).then_some(())
    })
    .await
    .with_context(|| weft.process().log_tail(30))?;
    assert_eq!(missing_gauge(weft, "Quota", QUOTA_CRD).await?, Some(1));
    route_all_to(plane, mesh, "v1", APPLY_TIMEOUT).await?;
    ensure!(
        weft.process().is_running(),
        "{}",
        weft.process().log_tail(30)
    );
    Ok(())
}

/// Waits until `kind` `default/name` has `Accepted=True` and `Ready=True`
/// at its current generation, as Weft writes them.
async fn wait_for_served(plane: &ControlPlane, kind: &str, name: &str) -> Result<()> {
    let what = format!("{kind} {name}: Accepted=True, Ready=True at its generation");
    let found = wait_for(&what, APPLY_TIMEOUT, || async {
        let object = get_object(plane, kind, name).ok()?;
        let generation = object["metadata"]["generation"].as_i64()?;
        let served = object["status"]["observedGeneration"].as_i64() == Some(generation)
            && condition(&object, "Accepted")?.0 == "True"
            && condition(&object, "Ready")?.0 == "True";
        served.then_some(())
    })
    .await;
    if let Err(err) = found {
        let last = get_object(plane, kind, name).map(|o| format!("{:?}", o["status"]));
        anyhow::bail!("{err:#}; last status: {last:?}");
    }
    Ok(())
}

/// `weft_operator_missing_crds{kind, crd}` as `/metrics` has it.
async fn missing_gauge(weft: &Weft, kind: &str, crd: &str) -> Result<Option<i64>> {
    let metrics = weft.monitoring_get("/metrics").await?;
    let series = format!("weft_operator_missing_crds{{kind=\"{kind}\",crd=\"{crd}\"}} ");
    Ok(metrics
        .body
        .lines()
        .find_map(|line| line.strip_prefix(&series))
        .and_then(|value| value.trim().parse().ok()))
}
