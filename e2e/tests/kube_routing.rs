//! Routing from a real kube-apiserver (issue 4): `weft operator` watches
//! a real apiserver, a real Envoy is bootstrapped to it, and `kubectl
//! apply` / `kubectl delete` of a VirtualService move real traffic; the
//! status Weft writes says whether a VirtualService is accepted and served.
//! The setup is [`KubeMesh`] (see its docs for what stands in for a
//! cluster's workloads).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use weft_e2e::kube_mesh::{apply, condition, get_object, operator_identity, route_all_to};
use weft_e2e::yaml::{NACKED_VS, fqdn, mk_weighted_virtual_service};
use weft_e2e::{APPLY_TIMEOUT, ControlPlane, KubeMesh, wait_for};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_apply_of_a_virtual_service_shifts_traffic_and_delete_restores_it()
-> anyhow::Result<()> {
    let KubeMesh { mesh, plane, .. } = &KubeMesh::start().await?;
    let host = fqdn("reviews", "default");

    // Everything to v1, from the objects the apiserver held at start.
    mesh.wait_for_body(&host, "/", &[], "v1", APPLY_TIMEOUT)
        .await?;
    let counts = mesh.sample(&host, "/", &[], 30).await?;
    assert_eq!(counts, BTreeMap::from([("v1".to_string(), 30)]));

    // A live change through the apiserver's watch: everything to v2.
    route_all_to(plane, mesh, "v2", APPLY_TIMEOUT).await?;
    let counts = mesh.sample(&host, "/", &[], 30).await?;
    assert_eq!(counts, BTreeMap::from([("v2".to_string(), 30)]));

    // Deleting the VirtualService restores default routing: the service's
    // endpoints, both versions.
    plane.kubectl_ok(&["delete", "virtualservice", "reviews", "-n", "default"])?;
    let both = wait_for("both versions to answer", APPLY_TIMEOUT, || async {
        let counts = mesh.sample(&host, "/", &[], 20).await.ok()?;
        let only_versions = counts.keys().all(|k| k == "v1" || k == "v2");
        (only_versions && counts.len() == 2).then_some(counts)
    })
    .await?;
    assert_eq!(both.values().sum::<usize>(), 20, "{both:?}");
    assert!(
        mesh.weft().is_running(),
        "weft operator keeps running: {}",
        mesh.weft().log_tail(30)
    );
    Ok(())
}

/// The VirtualService `reviews` as the apiserver holds it.
fn get_virtual_service(plane: &ControlPlane) -> anyhow::Result<serde_yaml::Value> {
    get_object(plane, "virtualservice", "reviews")
}

/// Waits until `reviews`' status describes its current generation with
/// `Accepted` and `Ready` of the given statuses; returns the object.
async fn wait_for_status(
    plane: &ControlPlane,
    accepted: &str,
    ready: &str,
) -> anyhow::Result<serde_yaml::Value> {
    let what = format!("status Accepted={accepted}, Ready={ready} at the current generation");
    let found = wait_for(&what, APPLY_TIMEOUT, || async {
        let object = get_virtual_service(plane).ok()?;
        let generation = object["metadata"]["generation"].as_i64()?;
        let current = object["status"]["observedGeneration"].as_i64() == Some(generation)
            && condition(&object, "Accepted")?.0 == accepted
            && condition(&object, "Ready")?.0 == ready;
        current.then_some(object)
    })
    .await;
    match found {
        Ok(object) => Ok(object),
        Err(err) => {
            let last = get_virtual_service(plane).map(|o| format!("{:?}", o["status"]));
            anyhow::bail!("{err:#}; last status: {last:?}")
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_conditions_say_whether_a_virtual_service_is_accepted_and_served()
-> anyhow::Result<()> {
    let KubeMesh { mesh, plane, .. } = &KubeMesh::start().await?;
    let host = fqdn("reviews", "default");
    mesh.wait_for_body(&host, "/", &[], "v1", APPLY_TIMEOUT)
        .await?;

    // The applied VirtualService: accepted and served, at its generation.
    let good = wait_for_status(plane, "True", "True").await?;
    let generation = good["metadata"]["generation"].as_i64();
    for type_ in ["Accepted", "Ready"] {
        let c = good["status"]["conditions"]
            .as_sequence()
            .and_then(|cs| cs.iter().find(|c| c["type"].as_str() == Some(type_)))
            .unwrap_or_else(|| panic!("no {type_} condition: {good:?}"));
        assert_eq!(c["observedGeneration"].as_i64(), generation, "{c:?}");
        assert!(c["lastTransitionTime"].as_str().is_some(), "{c:?}");
        assert!(c["reason"].as_str().is_some(), "{c:?}");
    }

    // `kubectl get vs` shows it: READY True, and with `-o wide` the reason.
    let table = plane.kubectl_ok(&["get", "vs", "reviews", "-n", "default", "-o", "wide"])?;
    // Columns are aligned: a cell starts where its header does (an empty
    // cell, like GATEWAYS here, leaves only spaces).
    let (header, row) = (
        table.lines().next().unwrap_or_default(),
        table.lines().nth(1).unwrap_or_default(),
    );
    let column = |name: &str| {
        let start = header.find(&format!(" {name} "))? + 1;
        row.get(start..)?.split_whitespace().next()
    };
    assert_eq!(column("READY"), Some("True"), "{table}");
    assert_eq!(column("REASON"), Some("Serving"), "{table}");

    // A route to a subset no DestinationRule defines passes the CRD schema
    // but not Weft's checks: not accepted, the previous version is served.
    apply(
        plane,
        &mk_weighted_virtual_service("reviews", "default", &[("v9", 100)]),
    )?;
    let bad = wait_for_status(plane, "False", "False").await?;
    assert_ne!(bad["metadata"]["generation"].as_i64(), generation);
    assert_eq!(
        bad["status"]["observedGeneration"].as_i64(),
        bad["metadata"]["generation"].as_i64()
    );
    let (_, reason, message) = condition(&bad, "Accepted").unwrap();
    assert_eq!(reason, "UnresolvedReference", "{message}");
    assert!(
        message.contains("spec.http[0].route[0].destination.subset: subset v9 is not defined"),
        "{message}"
    );
    let (_, reason, message) = condition(&bad, "Ready").unwrap();
    assert_eq!(reason, "ServingLastGood", "{message}");
    let table = plane.kubectl_ok(&["get", "vs", "reviews", "-n", "default"])?;
    assert!(
        table
            .lines()
            .nth(1)
            .is_some_and(|row| row.contains("False")),
        "READY is False: {table}"
    );

    // Traffic keeps following the previous version.
    let counts = mesh.sample(&host, "/", &[], 20).await?;
    assert_eq!(counts, BTreeMap::from([("v1".to_string(), 20)]));

    // Status writes do not storm: the status stays as written.
    let resource_version = plane.kubectl_ok(&[
        "get",
        "virtualservice",
        "reviews",
        "-n",
        "default",
        "-o",
        "jsonpath={.metadata.resourceVersion}",
    ])?;
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    let after = get_virtual_service(plane)?;
    assert_eq!(
        after["metadata"]["resourceVersion"].as_str(),
        Some(resource_version.trim()),
        "the status was rewritten although nothing changed: {:?}",
        after["status"]
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_config_envoy_rejects_is_reported_in_ready_and_cleared_by_a_fix() -> anyhow::Result<()> {
    let KubeMesh { mesh, plane, .. } = &KubeMesh::start().await?;
    let host = fqdn("reviews", "default");
    mesh.wait_for_body(&host, "/", &[], "v1", APPLY_TIMEOUT)
        .await?;
    wait_for_status(plane, "True", "True").await?;

    // Valid for Weft (its regex engine takes the pattern), refused by
    // Envoy's RE2: accepted, but not ready, with Envoy's own words.
    apply(plane, NACKED_VS)?;
    let nacked = wait_for_status(plane, "True", "False").await?;
    let (_, reason, message) = condition(&nacked, "Ready").unwrap();
    assert_eq!(reason, "ProxyRejected", "{message}");
    assert!(
        message.contains(&format!(
            "proxy {} rejected the routes (RDS)",
            mesh.node_id()
        )),
        "{message}"
    );
    assert!(message.contains("invalid repetition size"), "{message}");
    // Envoy keeps its previous routes.
    let counts = mesh.sample(&host, "/aaa", &[], 10).await?;
    assert_eq!(counts, BTreeMap::from([("v1".to_string(), 10)]));

    // A fix that Envoy accepts clears it.
    route_all_to(plane, mesh, "v2", APPLY_TIMEOUT).await?;
    wait_for_status(plane, "True", "True").await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_selectors_admit_the_services_of_labelled_namespaces_only() -> anyhow::Result<()>
{
    let KubeMesh { mesh, plane, .. } = &KubeMesh::start_with(|plane| {
        Ok(operator_identity(plane)?.args(["--discovery-selector", "weft.dev/mesh=on"]))
    })
    .await?;
    let host = fqdn("reviews", "default");

    // `default` carries no such label: reviews is not in the registry.
    let (status, body) = mesh.get(&host, "/", &[]).await?;
    assert_ne!(
        (status, body.as_str()),
        (200, "v1"),
        "reviews is not discovered"
    );

    // Labelling the namespace (a Namespace watch event) brings it in.
    plane.kubectl_ok(&["label", "namespace", "default", "weft.dev/mesh=on"])?;
    mesh.wait_for_body(&host, "/", &[], "v1", APPLY_TIMEOUT)
        .await?;

    // Removing the label takes it out again.
    plane.kubectl_ok(&["label", "namespace", "default", "weft.dev/mesh-"])?;
    wait_for("reviews to leave the registry", APPLY_TIMEOUT, || async {
        let (status, _) = mesh.get(&host, "/", &[]).await.ok()?;
        (status != 200).then_some(())
    })
    .await?;
    Ok(())
}
