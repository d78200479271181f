//! Leader election (issue 4): two `weft operator` replicas on a real
//! kube-apiserver, both least-privileged as the chart's ServiceAccount.
//! Both serve xDS; the one holding the Lease `weft-system/weft-leader`
//! alone writes status; when it dies, the other takes the Lease over and
//! writes the status of what changed since, while its Envoy keeps following
//! the cluster.
//!
//! In the takeover test, replica `weft-b` starts first (so it leads), then
//! the [`KubeMesh`]'s own weft, `weft-a`, to which the mesh's Envoy is
//! bootstrapped: the follower is the survivor, so the same Envoy shows it
//! keeps serving xDS. In the other, the Lease is held by a replica that is
//! not running until it expires: nobody writes status meanwhile, though
//! xDS is served, and then the replica that takes the Lease writes it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use weft_e2e::kube_mesh::{OPERATOR_NAMESPACE, apply, operator_identity};
use weft_e2e::mesh::WEFT_READY_TIMEOUT;
use weft_e2e::yaml::{fqdn, mk_weighted_virtual_service};
use weft_e2e::{APPLY_TIMEOUT, ControlPlane, KubeMesh, Weft, wait_for};

const LEASE: &str = "weft-leader";
const BECAME_LEADER: &str = "became the leader (lease weft-system/weft-leader)";

/// Time for a follower to notice a dead leader: the 3s Lease expires, then
/// a try to take it; generous for a busy two-core machine.
const TAKEOVER_TIMEOUT: Duration = Duration::from_secs(45);

/// The Lease's holder, if any.
fn lease_holder(plane: &ControlPlane) -> Option<String> {
    plane
        .kubectl_ok(&[
            "get",
            "lease",
            LEASE,
            "-n",
            OPERATOR_NAMESPACE,
            "-o",
            "jsonpath={.spec.holderIdentity}",
        ])
        .ok()
        .filter(|h| !h.is_empty())
}

/// The value of the sample `name` (a metric with its labels, as the text
/// format prints it) on `weft`'s `/metrics`; `None` if absent.
async fn metric(weft: &Weft, name: &str) -> anyhow::Result<Option<f64>> {
    let body = weft.monitoring_get("/metrics").await?.body;
    Ok(body.lines().find_map(|line| {
        let value = line.strip_prefix(name)?.strip_prefix(' ')?;
        value.trim().parse().ok()
    }))
}

const VS_WRITES: &str = r#"weft_status_writes_total{kind="VirtualService",result="written"}"#;

/// Waits until `reviews`' status is Accepted and Ready at its current
/// generation; returns that generation.
async fn wait_for_current_status(plane: &ControlPlane) -> anyhow::Result<i64> {
    wait_for(
        "reviews' status at its generation",
        APPLY_TIMEOUT,
        || async {
            let json = plane
                .kubectl_ok(&[
                    "get",
                    "virtualservice",
                    "reviews",
                    "-n",
                    "default",
                    "-o",
                    "json",
                ])
                .ok()?;
            let object: serde_yaml::Value = serde_yaml::from_str(&json).ok()?;
            let generation = object["metadata"]["generation"].as_i64()?;
            let conditions = object["status"]["conditions"].as_sequence()?;
            let is_true = |type_: &str| {
                conditions.iter().any(|c| {
                    c["type"].as_str() == Some(type_) && c["status"].as_str() == Some("True")
                })
            };
            let current = object["status"]["observedGeneration"].as_i64() == Some(generation)
                && is_true("Accepted")
                && is_true("Ready");
            current.then_some(generation)
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_leader_writes_status_and_a_follower_takes_over_when_it_dies() -> anyhow::Result<()>
{
    let mut first: Option<Weft> = None;
    let kube = KubeMesh::start_with(|plane| {
        let options = operator_identity(plane)?;
        let b = options
            .clone()
            .args(["--identity", "weft-b", "--lease-duration", "3s"]);
        // Started before the mesh's weft, so that it takes the Lease first.
        let b = tokio::task::block_in_place(|| {
            tokio::runtime::Handle::current().block_on(async {
                let b = Weft::start_operator_with(&b, WEFT_READY_TIMEOUT).await?;
                b.wait_for_log(BECAME_LEADER, APPLY_TIMEOUT).await?;
                anyhow::Ok(b)
            })
        })?;
        first = Some(b);
        Ok(options.args(["--identity", "weft-a", "--lease-duration", "3s"]))
    })
    .await?;
    let b = first.take().expect("weft-b started");
    let KubeMesh { mesh, plane, .. } = &kube;
    let a = mesh.weft();
    let host = fqdn("reviews", "default");

    // One holder, weft-b; it writes the status, weft-a writes none.
    assert_eq!(lease_holder(plane).as_deref(), Some("weft-b"));
    mesh.wait_for_body(&host, "/", &[], "v1", APPLY_TIMEOUT)
        .await?;
    let generation = wait_for_current_status(plane).await?;
    assert_eq!(metric(&b, "weft_leader").await?, Some(1.0));
    assert!(metric(&b, VS_WRITES).await?.unwrap_or(0.0) >= 1.0);
    a.wait_for_log("running for leader", APPLY_TIMEOUT).await?;
    // Past a renewal of the Lease (3s), the follower is still one.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(metric(a, "weft_leader").await?, Some(0.0));
    assert_eq!(metric(a, VS_WRITES).await?, None, "{}", a.log_tail(30));
    assert!(
        !a.logs().iter().any(|l| l.contains("became the leader")),
        "{}",
        a.log_tail(30)
    );
    assert_eq!(lease_holder(plane).as_deref(), Some("weft-b"));

    // The leader dies without releasing its Lease: weft-a takes it over.
    b.kill()?;
    a.wait_for_log(BECAME_LEADER, TAKEOVER_TIMEOUT).await?;
    wait_for("weft-a to hold the Lease", APPLY_TIMEOUT, || async {
        (lease_holder(plane).as_deref() == Some("weft-a")).then_some(())
    })
    .await?;
    assert_eq!(metric(a, "weft_leader").await?, Some(1.0));

    // A change after the kill: weft-a serves it to its Envoy and writes its
    // status.
    apply(
        plane,
        &mk_weighted_virtual_service("reviews", "default", &[("v2", 100)]),
    )?;
    mesh.wait_for_body(&host, "/", &[], "v2", APPLY_TIMEOUT)
        .await?;
    let next = wait_for_current_status(plane).await?;
    assert!(next > generation, "{next} > {generation}");
    assert!(
        metric(a, VS_WRITES).await?.unwrap_or(0.0) >= 1.0,
        "{}",
        a.log_tail(30)
    );
    assert!(a.is_running(), "{}", a.log_tail(30));
    Ok(())
}

/// `t` as a Kubernetes MicroTime: `YYYY-MM-DDTHH:MM:SS.ffffffZ`.
fn micro_time(t: SystemTime) -> String {
    let since = t.duration_since(UNIX_EPOCH).unwrap();
    let secs = since.as_secs();
    let (year, month, day) = civil_from_days((secs / 86_400) as i64);
    let rem = secs % 86_400;
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:06}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        since.subsec_micros()
    )
}

/// The proleptic Gregorian date `days` after 1970-01-01 (H. Hinnant's
/// `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[test]
fn micro_time_formats_as_kubernetes_does() {
    let t = UNIX_EPOCH + Duration::from_micros(1_709_210_096_123_456);
    assert_eq!(micro_time(t), "2024-02-29T12:34:56.123456Z");
    assert_eq!(micro_time(UNIX_EPOCH), "1970-01-01T00:00:00.000000Z");
}

/// How long the absent replica's Lease holds.
const ABSENT_HOLDER_SECONDS: u64 = 30;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_status_is_written_until_the_lease_of_an_absent_holder_expires() -> anyhow::Result<()> {
    let mut created = None;
    let kube = KubeMesh::start_with(|plane| {
        let options = operator_identity(plane)?;
        let now = micro_time(SystemTime::now());
        let lease = format!(
            "apiVersion: coordination.k8s.io/v1
kind: Lease
metadata:
  name: {LEASE}
  namespace: {OPERATOR_NAMESPACE}
spec:
  holderIdentity: weft-gone
  leaseDurationSeconds: {ABSENT_HOLDER_SECONDS}
  acquireTime: '{now}'
  renewTime: '{now}'
"
        );
        plane.kubectl_stdin_ok(&["create", "-f", "-"], &lease)?;
        created = Some(std::time::Instant::now());
        Ok(options.args(["--identity", "weft-a", "--lease-duration", "3s"]))
    })
    .await?;
    let created = created.expect("the Lease was created");
    let KubeMesh { mesh, plane, .. } = &kube;
    let a = mesh.weft();
    let host = fqdn("reviews", "default");

    // xDS is served without the Lease; no status is written.
    mesh.wait_for_body(&host, "/", &[], "v1", APPLY_TIMEOUT)
        .await?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let status = plane.kubectl_ok(&[
        "get",
        "virtualservice",
        "reviews",
        "-n",
        "default",
        "-o",
        "jsonpath={.status}",
    ])?;
    assert!(
        created.elapsed() < Duration::from_secs(ABSENT_HOLDER_SECONDS),
        "the setup outlasted the absent holder's Lease; the check is void"
    );
    assert_eq!(status, "", "no replica leads, yet a status was written");
    assert_eq!(lease_holder(plane).as_deref(), Some("weft-gone"));
    assert_eq!(metric(a, "weft_leader").await?, Some(0.0));

    // The Lease expires: weft-a takes it and writes the held status.
    a.wait_for_log(BECAME_LEADER, TAKEOVER_TIMEOUT).await?;
    wait_for_current_status(plane).await?;
    assert_eq!(lease_holder(plane).as_deref(), Some("weft-a"));
    assert!(metric(a, VS_WRITES).await?.unwrap_or(0.0) >= 1.0);

    // On SIGTERM the leader releases the Lease: nobody holds it.
    let term = std::process::Command::new("kill")
        .args(["-TERM", &a.pid().to_string()])
        .status()?;
    assert!(term.success());
    a.wait_for_log("released the Lease weft-system/weft-leader", APPLY_TIMEOUT)
        .await?;
    assert_eq!(lease_holder(plane), None);
    Ok(())
}
