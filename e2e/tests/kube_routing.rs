//! Routing from a real kube-apiserver (issue 4): `weft operator` watches
//! a real apiserver, a real Envoy is bootstrapped to it, and `kubectl
//! apply` / `kubectl delete` of a VirtualService move real traffic; the
//! status Weft writes says whether a VirtualService is accepted and served.
//!
//! What stands in for a cluster's workloads, since no kubelet or
//! controller-manager runs: the `reviews` Service has no selector (the
//! documented way to give a Service endpoints by hand), and the test
//! writes its EndpointSlices, one per echo upstream (each upstream listens
//! on its own kernel-chosen port, and an EndpointSlice's ports are per
//! slice).
//!
//! The upstreams do not listen on 127.0.x.y as in the standalone tests:
//! the apiserver refuses EndpointSlice addresses in the loopback range
//! (`may not be in the loopback range (127.0.0.0/8, ::1/128)`). They run
//! as `weft-echo` processes inside a network namespace the test creates
//! (a test host with its own 10.213.x.y address on a veth link), so no
//! traffic leaves this machine or reaches an address the test does not
//! own. Each endpoint's `targetRef` names a Pod the test creates with
//! `app: reviews, version: v1|v2` labels; no process is behind the Pod
//! objects, but Weft reads the endpoint labels the DestinationRule subsets
//! select from them, as it would in a cluster.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use weft_e2e::mesh::WEFT_READY_TIMEOUT;
use weft_e2e::netns::TestHost;
use weft_e2e::tools::workspace_binary;
use weft_e2e::yaml::{fqdn, mk_destination_rule, mk_weighted_virtual_service};
use weft_e2e::{APPLY_TIMEOUT, ControlPlane, Mesh, Process, Weft, wait_for};

const CRDS: [&str; 5] = [
    "destinationrules.networking.istio.io",
    "gateways.networking.istio.io",
    "serviceentries.networking.istio.io",
    "sidecars.networking.istio.io",
    "virtualservices.networking.istio.io",
];

const SERVICE: &str = "\
apiVersion: v1
kind: Service
metadata:
  name: reviews
  namespace: default
spec:
  ports:
  - name: http
    port: 9080
    protocol: TCP
";

/// A Pod object for `version` (no process: there is no kubelet).
fn mk_pod(version: &str) -> String {
    format!(
        "\
apiVersion: v1
kind: Pod
metadata:
  name: reviews-{version}
  namespace: default
  labels:
    app: reviews
    version: {version}
spec:
  containers:
  - name: reviews
    image: example.invalid/reviews:{version}
"
    )
}

/// The EndpointSlice of `reviews` holding the upstream `version` at
/// `ip:port`, whose endpoint is the Pod `reviews-<version>`.
fn mk_endpoint_slice(version: &str, ip: Ipv4Addr, port: u16) -> String {
    format!(
        "\
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: reviews-{version}
  namespace: default
  labels:
    kubernetes.io/service-name: reviews
    endpointslice.kubernetes.io/managed-by: weft-e2e
addressType: IPv4
ports:
- name: http
  port: {port}
  protocol: TCP
endpoints:
- addresses:
  - {ip}
  conditions:
    ready: true
  targetRef:
    kind: Pod
    name: reviews-{version}
    namespace: default
",
    )
}

fn apply(plane: &ControlPlane, yaml: &str) {
    plane
        .kubectl_stdin_ok(&["apply", "--server-side", "-f", "-"], yaml)
        .unwrap_or_else(|err| panic!("kubectl apply failed: {err:#}\n{yaml}"));
}

/// A running setup: Envoy and `weft operator` on a real apiserver holding
/// the CRDs, the `reviews` Service with v1 and v2 endpoints (upstreams in
/// a test host), its DestinationRule (subsets v1, v2) and a VirtualService
/// sending everything to v1. Fields drop in order: proxies and Weft first.
struct Cluster {
    mesh: Mesh,
    plane: ControlPlane,
    _upstreams: Vec<Process>,
    _host: TestHost,
}

impl Cluster {
    async fn start() -> anyhow::Result<Self> {
        let host = TestHost::create()?;
        let echo = workspace_binary("weft-echo", "cargo build -p weft-e2e --bin weft-echo")?;
        let versions = [("v1", 19081_u16), ("v2", 19082_u16)];
        let mut upstreams = Vec::new();
        for (version, port) in versions {
            let listen = format!("{}:{port}", host.ip);
            let process = host.spawn(
                version,
                &echo,
                &["--listen", &listen, "--identity", version],
            )?;
            process.wait_for_log("listening on", APPLY_TIMEOUT).await?;
            upstreams.push(process);
        }
        let plane = tokio::task::spawn_blocking(ControlPlane::start).await??;
        plane.kubectl_ok(&["apply", "--server-side", "-f", "charts/weft/crds/"])?;
        let mut wait = vec!["wait", "--for=condition=Established", "--timeout=60s"];
        let names: Vec<String> = CRDS.iter().map(|crd| format!("crd/{crd}")).collect();
        wait.extend(names.iter().map(String::as_str));
        plane.kubectl_ok(&wait)?;

        apply(&plane, SERVICE);
        for (version, port) in versions {
            apply(&plane, &mk_pod(version));
            apply(&plane, &mk_endpoint_slice(version, host.ip, port));
        }
        apply(
            &plane,
            &mk_destination_rule("reviews", "default", &["v1", "v2"]),
        );
        apply(
            &plane,
            &mk_weighted_virtual_service("reviews", "default", &[("v1", 100)]),
        );

        let weft = Weft::start_operator(plane.kubeconfig(), WEFT_READY_TIMEOUT).await?;
        let mesh = Mesh::builder().start_with_weft(weft).await?;
        Ok(Self {
            mesh,
            plane,
            _upstreams: upstreams,
            _host: host,
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_apply_of_a_virtual_service_shifts_traffic_and_delete_restores_it()
-> anyhow::Result<()> {
    let Cluster { mesh, plane, .. } = &Cluster::start().await?;
    let host = fqdn("reviews", "default");

    // Everything to v1, from the objects the apiserver held at start.
    mesh.wait_for_body(&host, "/", &[], "v1", APPLY_TIMEOUT)
        .await?;
    let counts = mesh.sample(&host, "/", &[], 30).await?;
    assert_eq!(counts, BTreeMap::from([("v1".to_string(), 30)]));

    // A live change through the apiserver's watch: everything to v2.
    apply(
        plane,
        &mk_weighted_virtual_service("reviews", "default", &[("v2", 100)]),
    );
    mesh.wait_for_body(&host, "/", &[], "v2", APPLY_TIMEOUT)
        .await?;
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

/// The VirtualService `reviews` as the apiserver holds it (JSON read as
/// YAML, which it is).
fn get_virtual_service(plane: &ControlPlane) -> anyhow::Result<serde_yaml::Value> {
    let json = plane.kubectl_ok(&[
        "get",
        "virtualservice",
        "reviews",
        "-n",
        "default",
        "-o",
        "json",
    ])?;
    Ok(serde_yaml::from_str(&json)?)
}

/// The condition `type_` of `object`'s status: (status, reason, message).
fn condition(object: &serde_yaml::Value, type_: &str) -> Option<(String, String, String)> {
    let text = |c: &serde_yaml::Value, key: &str| c[key].as_str().unwrap_or_default().to_string();
    object["status"]["conditions"]
        .as_sequence()?
        .iter()
        .find(|c| c["type"].as_str() == Some(type_))
        .map(|c| (text(c, "status"), text(c, "reason"), text(c, "message")))
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
    let Cluster { mesh, plane, .. } = &Cluster::start().await?;
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

    // A route to a subset no DestinationRule defines passes the CRD schema
    // but not Weft's checks: not accepted, the previous version is served.
    apply(
        plane,
        &mk_weighted_virtual_service("reviews", "default", &[("v9", 100)]),
    );
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
