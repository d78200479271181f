//! mTLS from a real kube-apiserver: `weft operator` watches
//! PeerAuthentications (security.istio.io, v1beta1 and v1), reports a bad
//! one in its status naming the field, and a Pod labelled with Istio's
//! sidecar marker `security.istio.io/tlsMode: istio` is reached over auto
//! mTLS (SDS certificates, Istio's SNI) until a namespace PeerAuthentication
//! says DISABLE. The setup is [`KubeMesh`].

#![allow(clippy::unwrap_used, clippy::expect_used)]

use weft_e2e::kube_mesh::apply;
use weft_e2e::yaml::PORT_LEVEL_MTLS_WITHOUT_SELECTOR;
use weft_e2e::{APPLY_TIMEOUT, ControlPlane, KubeMesh, wait_for, wait_until};

const DISABLE_PA: &str = "\
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: default}
spec:
  mtls: {mode: DISABLE}
";

fn get_pa(plane: &ControlPlane) -> anyhow::Result<serde_yaml::Value> {
    let json = plane.kubectl_ok(&[
        "get",
        "peerauthentications.security.istio.io",
        "default",
        "-n",
        "default",
        "-o",
        "json",
    ])?;
    Ok(serde_yaml::from_str(&json)?)
}

/// (status, message) of condition `Accepted` at the current generation.
async fn wait_for_accepted(plane: &ControlPlane, status: &str) -> anyhow::Result<String> {
    wait_for(
        &format!("PeerAuthentication Accepted={status}"),
        APPLY_TIMEOUT,
        || async {
            let o = get_pa(plane).ok()?;
            let generation = o["metadata"]["generation"].as_i64()?;
            (o["status"]["observedGeneration"].as_i64() == Some(generation)).then_some(())?;
            let c = o["status"]["conditions"]
                .as_sequence()?
                .iter()
                .find(|c| c["type"].as_str() == Some("Accepted"))?
                .clone();
            (c["status"].as_str() == Some(status))
                .then(|| c["message"].as_str().unwrap_or_default().to_string())
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_authentications_are_watched_and_steer_auto_mtls() -> anyhow::Result<()> {
    let KubeMesh { mesh, plane, .. } = &KubeMesh::start().await?;
    let dump = || async {
        mesh.admin_get("/config_dump")
            .await
            .map(|r| r.body)
            .unwrap_or_default()
    };

    // A namespace-wide policy with portLevelMtls: refused, naming the field.
    apply(plane, PORT_LEVEL_MTLS_WITHOUT_SELECTOR)?;
    let message = wait_for_accepted(plane, "False").await?;
    assert!(message.contains("spec.portLevelMtls"), "{message}");

    // The sidecar marker on a Pod turns on auto mTLS for its endpoint.
    plane.kubectl_ok(&[
        "label",
        "pod",
        "reviews-v1",
        "-n",
        "default",
        "security.istio.io/tlsMode=istio",
    ])?;
    let waited = wait_until("auto mTLS to reviews", APPLY_TIMEOUT, || async {
        let d = dump().await;
        d.contains("tlsMode-istio")
            && d.contains("outbound_.9080_._.reviews.default.svc.cluster.local")
            && d.contains("spiffe://cluster.local/")
    })
    .await;
    if let Err(e) = waited {
        let d = dump().await;
        let clusters: Vec<&str> = d
            .lines()
            .filter(|l| {
                l.contains("\"name\": \"outbound") || l.contains("tlsMode") || l.contains("warming")
            })
            .collect();
        let pods = plane.kubectl_ok(&[
            "get",
            "pods",
            "-n",
            "default",
            "--show-labels",
            "-o",
            "wide",
        ])?;
        let stats = mesh
            .admin_get("/stats")
            .await
            .map(|r| r.body)
            .unwrap_or_default();
        let cds: Vec<&str> = stats
            .lines()
            .filter(|l| l.contains("cds.") || l.contains("sds"))
            .collect();
        return Err(e.context(format!(
            "{clusters:#?}\n{cds:#?}\n{pods}\n{}",
            mesh.weft().log_tail(10)
        )));
    }

    // DISABLE for the namespace (v1): accepted, and auto mTLS is off.
    apply(plane, DISABLE_PA)?;
    wait_for_accepted(plane, "True").await?;
    wait_until("auto mTLS off under DISABLE", APPLY_TIMEOUT, || async {
        let d = dump().await;
        !d.contains("tlsMode-istio")
            && d.contains("outbound|9080||reviews.default.svc.cluster.local")
    })
    .await
    .map_err(|e| e.context(mesh.weft().log_tail(30)))?;
    Ok(())
}
