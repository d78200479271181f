//! The Helm chart `charts/weft` with the real helm, kubectl and
//! kube-apiserver: it lints clean, its output passes a server-side dry run,
//! `helm install` creates every object it renders (and its CRDs) and
//! `helm uninstall` removes them. And the webhook certificate `weft
//! operator --webhook-service` issues from its CA: both of the chart's
//! webhook configurations end up with `caBundle` = the CA's root (and are
//! repaired when edited), the webhook presents a certificate for the
//! Service that chains to that root, and it is renewed in place.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use base64::Engine as _;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use serde::Deserialize as _;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use weft_e2e::gateway_api::{GATEWAY_API_VERSION, upstream_crds_dir};
use weft_e2e::helm::{helm, helm_ok};
use weft_e2e::kube_mesh::{
    OPERATOR_NAMESPACE, apply, helm_template, operator_identity, start_control_plane_with_crds,
};
use weft_e2e::procs::listening_address;
use weft_e2e::tls::{TestPki, base64, https_get};
use weft_e2e::tools::workspace_dir;
use weft_e2e::{APPLY_TIMEOUT, ControlPlane, Weft, wait_for, wait_until};

/// The chart's webhook configurations for release `weft` in `weft-system`.
const MUTATING: &str = "weft-sidecar-injector-weft-system";
const VALIDATING: &str = "weft-validator-weft-system";
/// The name the apiserver calls the webhook by (the chart's Service).
const WEBHOOK_HOST: &str = "weft.weft-system.svc";
/// The log line of the webhook's bound address.
const WEBHOOK_LINE: &str = "validating webhook listening on";

/// `(kind, name, namespace)` of every object in rendered manifests.
fn rendered_objects(manifests: &str) -> Result<Vec<(String, String, Option<String>)>> {
    let mut objects = Vec::new();
    for document in serde_yaml::Deserializer::from_str(manifests) {
        let value = serde_yaml::Value::deserialize(document)?;
        let Some(kind) = value.get("kind").and_then(|k| k.as_str()) else {
            continue;
        };
        let metadata = &value["metadata"];
        let name = metadata["name"]
            .as_str()
            .with_context(|| format!("a {kind} without a name"))?;
        let namespace = metadata["namespace"].as_str().map(String::from);
        objects.push((kind.to_string(), name.to_string(), namespace));
    }
    Ok(objects)
}

/// `kubectl get KIND/NAME [-n NS]`: whether it exists (an error other than
/// NotFound fails).
fn exists(plane: &ControlPlane, kind: &str, name: &str, namespace: Option<&str>) -> Result<bool> {
    let target = format!("{kind}/{name}");
    let mut args = vec!["get", target.as_str(), "-o", "name"];
    if let Some(namespace) = namespace {
        args.extend(["-n", namespace]);
    }
    let out = plane.kubectl(&args)?;
    if out.status.success() {
        return Ok(true);
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    if stderr.contains("NotFound") || stderr.contains("not found") {
        return Ok(false);
    }
    bail!("kubectl get {target} failed: {stderr}")
}

/// The CRDs in `charts/weft/crds/` (`<group>_<plural>.yaml`), by name.
fn chart_crds() -> Result<Vec<String>> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(workspace_dir().join("charts/weft/crds"))? {
        let file = entry?.file_name().to_string_lossy().to_string();
        if let Some((group, plural)) = file
            .strip_suffix(".yaml")
            .and_then(|stem| stem.split_once('_'))
        {
            names.push(format!("{plural}.{group}"));
        }
    }
    anyhow::ensure!(!names.is_empty(), "no CRD files in charts/weft/crds");
    Ok(names)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_chart_lints_clean_and_installs_and_uninstalls_every_object() -> Result<()> {
    let home = tempfile::tempdir()?;

    // Lint: no warnings or errors, also with every optional object on.
    for extra in [
        &[][..],
        &["--set", "autoscaling.enabled=true"][..],
        &["--set", "gatewayAPI.installCRDs=true"][..],
    ] {
        let mut args = vec!["lint", "--strict", "charts/weft"];
        args.extend_from_slice(extra);
        let lint = helm_ok(&args, home.path(), None)?;
        assert!(
            !lint.contains("[WARNING]") && !lint.contains("[ERROR]"),
            "{lint}"
        );
        assert!(lint.contains("0 chart(s) failed"), "{lint}");
    }
    // The schema refuses what no template understands.
    let bad = helm(
        &[
            "template",
            "charts/weft",
            "--set",
            "webhooks.validation.failurePolicy=Sometimes",
        ],
        home.path(),
        None,
    )?;
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("failurePolicy"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );

    let plane = tokio::task::spawn_blocking(ControlPlane::start).await??;
    plane.kubectl_ok(&["create", "namespace", OPERATOR_NAMESPACE])?;

    // The rendered output, as is and with the HPA, passes the apiserver's
    // validation and admission.
    let defaults = helm_template(&[])?;
    let autoscaled = helm_template(&["--set", "autoscaling.enabled=true"])?;
    for manifests in [&defaults, &autoscaled] {
        plane.kubectl_stdin_ok(&["apply", "--dry-run=server", "-f", "-"], manifests)?;
    }
    let objects = rendered_objects(&autoscaled)?;
    let kinds: Vec<&str> = objects.iter().map(|(kind, ..)| kind.as_str()).collect();
    for kind in [
        "ServiceAccount",
        "ConfigMap",
        "ClusterRole",
        "ClusterRoleBinding",
        "Role",
        "RoleBinding",
        "Deployment",
        "Service",
        "MutatingWebhookConfiguration",
        "ValidatingWebhookConfiguration",
        "PodDisruptionBudget",
        "HorizontalPodAutoscaler",
    ] {
        assert!(
            kinds.contains(&kind),
            "the chart renders no {kind}: {kinds:?}"
        );
    }

    // Install: every rendered object and the CRDs exist; NOTES say what next.
    let kubeconfig = plane.kubeconfig();
    let install = helm_ok(
        &[
            "install",
            "weft",
            "charts/weft",
            "--namespace",
            OPERATOR_NAMESPACE,
            "--set",
            "autoscaling.enabled=true",
        ],
        home.path(),
        Some(kubeconfig),
    )?;
    assert!(
        install.contains("kubectl label namespace NAMESPACE istio-injection=enabled"),
        "{install}"
    );
    for (kind, name, namespace) in &objects {
        assert!(
            exists(&plane, kind, name, namespace.as_deref())?,
            "helm install did not create {kind} {name}"
        );
    }
    for crd in chart_crds()? {
        assert!(
            exists(&plane, "crd", &crd, None)?,
            "helm install did not create CRD {crd}"
        );
    }
    let status = helm_ok(
        &["status", "weft", "--namespace", OPERATOR_NAMESPACE],
        home.path(),
        Some(kubeconfig),
    )?;
    assert!(status.contains("STATUS: deployed"), "{status}");

    // Uninstall: every rendered object goes (CRDs stay, as Helm keeps them).
    helm_ok(
        &["uninstall", "weft", "--namespace", OPERATOR_NAMESPACE],
        home.path(),
        Some(kubeconfig),
    )?;
    for (kind, name, namespace) in &objects {
        wait_until(
            &format!("helm uninstall to remove {kind} {name}"),
            APPLY_TIMEOUT,
            || async { !exists(&plane, kind, name, namespace.as_deref()).unwrap_or(true) },
        )
        .await?;
    }
    Ok(())
}

/// The YAML files of a directory, by name (`kustomization.yaml` aside).
fn yaml_files(dir: &std::path::Path) -> Result<std::collections::BTreeMap<String, Vec<u8>>> {
    let mut files = std::collections::BTreeMap::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if name.ends_with(".yaml") && name != "kustomization.yaml" {
            files.insert(name, std::fs::read(&path)?);
        }
    }
    Ok(files)
}

#[test]
fn the_vendored_gateway_api_crds_are_the_pinned_release() -> Result<()> {
    let makefile = std::fs::read_to_string(workspace_dir().join("Makefile"))?;
    assert!(
        makefile.contains(&format!("GATEWAY_API_VERSION := {GATEWAY_API_VERSION}")),
        "the Makefile and weft_e2e::gateway_api pin different Gateway API versions"
    );
    let vendored = yaml_files(&workspace_dir().join("charts/weft/gateway-api"))?;
    let upstream = yaml_files(&upstream_crds_dir("standard")?)?;
    assert_eq!(
        vendored.keys().collect::<Vec<_>>(),
        upstream.keys().collect::<Vec<_>>(),
        "run `make gateway-api-crds`"
    );
    for (name, bytes) in &vendored {
        assert!(
            upstream[name] == *bytes,
            "charts/weft/gateway-api/{name} differs from {GATEWAY_API_VERSION}'s; \
             run `make gateway-api-crds`"
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_chart_installs_the_gateway_api_crds_when_asked_and_keeps_them() -> Result<()> {
    let home = tempfile::tempdir()?;
    let plane = tokio::task::spawn_blocking(ControlPlane::start).await??;
    plane.kubectl_ok(&["create", "namespace", OPERATOR_NAMESPACE])?;
    let kubeconfig = plane.kubeconfig();
    let crds = [
        "gatewayclasses.gateway.networking.k8s.io",
        "gateways.gateway.networking.k8s.io",
        "httproutes.gateway.networking.k8s.io",
        "grpcroutes.gateway.networking.k8s.io",
        "tlsroutes.gateway.networking.k8s.io",
        "referencegrants.gateway.networking.k8s.io",
        "backendtlspolicies.gateway.networking.k8s.io",
        "listenersets.gateway.networking.k8s.io",
    ];
    for crd in crds {
        assert!(
            !exists(&plane, "crd", crd, None)?,
            "{crd} before the install"
        );
    }
    helm_ok(
        &[
            "install",
            "weft",
            "charts/weft",
            "--namespace",
            OPERATOR_NAMESPACE,
            "--set",
            "gatewayAPI.installCRDs=true",
        ],
        home.path(),
        Some(kubeconfig),
    )?;
    let all_exist = |after: &str| -> Result<()> {
        for crd in crds {
            anyhow::ensure!(exists(&plane, "crd", crd, None)?, "no {crd} after {after}");
        }
        Ok(())
    };
    all_exist("helm install")?;
    // Served: an HTTPRoute passes the apiserver's validation.
    plane.kubectl_ok(&[
        "wait",
        "--for=condition=Established",
        "--timeout=60s",
        "crd/httproutes.gateway.networking.k8s.io",
    ])?;
    plane.kubectl_stdin_ok(
        &["apply", "--dry-run=server", "-f", "-"],
        "apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: reviews, namespace: default}
spec:
  parentRefs: [{name: edge}]
  rules: [{backendRefs: [{name: reviews, port: 9080}]}]
",
    )?;
    // Uninstall keeps them: deleting a CRD would delete every route.
    helm_ok(
        &["uninstall", "weft", "--namespace", OPERATOR_NAMESPACE],
        home.path(),
        Some(kubeconfig),
    )?;
    all_exist("helm uninstall")?;
    Ok(())
}

/// The arguments the chart's Deployment gives `weft operator`, for a test
/// on loopback: the addresses the harness sets itself are dropped, the
/// webhook listens on `127.0.0.1:0`.
fn chart_operator_args(deployment: &str) -> Result<Vec<String>> {
    let value: serde_yaml::Value = serde_yaml::from_str(deployment)?;
    let args = value["spec"]["template"]["spec"]["containers"][0]["args"]
        .as_sequence()
        .context("the Deployment's container has no args")?;
    let mut args = args.iter().filter_map(|a| a.as_str());
    anyhow::ensure!(
        args.next() == Some("operator"),
        "the chart must run `weft operator`"
    );
    Ok(args
        .filter(|a| {
            !["--xds-address=", "--monitoring-address=", "--ca-address="]
                .iter()
                .any(|set_by_harness| a.starts_with(set_by_harness))
        })
        .map(|a| {
            if a.starts_with("--webhook-address=") {
                "--webhook-address=127.0.0.1:0".to_string()
            } else {
                a.to_string()
            }
        })
        .collect())
}

/// `{.webhooks[*].clientConfig.caBundle}` of webhook configuration `kind`
/// `name`, one entry per webhook.
fn ca_bundles(plane: &ControlPlane, kind: &str, name: &str) -> Result<Vec<String>> {
    let out = plane.kubectl_ok(&[
        "get",
        kind,
        name,
        "-o",
        "jsonpath={range .webhooks[*]}{.name}={.clientConfig.caBundle}{\"\\n\"}{end}",
    ])?;
    Ok(out
        .lines()
        .map(|line| line.split_once('=').map_or("", |(_, b)| b).to_string())
        .collect())
}

/// Whether every webhook of both configurations carries `bundle` (two
/// injection webhooks, one validation webhook).
fn bundles_are(plane: &ControlPlane, bundle: &str) -> bool {
    let mutating = ca_bundles(plane, "mutatingwebhookconfiguration", MUTATING).unwrap_or_default();
    let validating =
        ca_bundles(plane, "validatingwebhookconfiguration", VALIDATING).unwrap_or_default();
    mutating.len() == 2
        && validating.len() == 1
        && mutating.iter().chain(&validating).all(|b| b == bundle)
}

/// The leaf certificate the TLS server at `addr` presents for `name` to a
/// client that trusts only `root_pem` (the handshake fails otherwise).
async fn served_leaf(addr: SocketAddr, root_pem: &str, name: &str) -> Result<Vec<u8>> {
    let mut roots = RootCertStore::empty();
    roots.add(CertificateDer::from_pem_slice(root_pem.as_bytes())?)?;
    let config =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();
    let tcp = TcpStream::connect(addr).await?;
    let tls = TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from(name.to_string())?, tcp)
        .await
        .with_context(|| format!("TLS handshake with the webhook as {name}"))?;
    let leaf = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|certs| certs.first())
        .context("the webhook presented no certificate")?;
    Ok(leaf.to_vec())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weft_serves_the_webhook_with_a_certificate_from_its_ca_and_keeps_ca_bundles_current()
-> Result<()> {
    let plane = start_control_plane_with_crds().await?;
    // As the chart's ServiceAccount: its RBAC must allow the caBundle writes.
    let options = operator_identity(&plane)?;
    let configurations = helm_template(&[
        "--show-only",
        "templates/mutatingwebhookconfiguration.yaml",
        "--show-only",
        "templates/validatingwebhookconfiguration.yaml",
    ])?;
    apply(&plane, &configurations)?;
    assert!(bundles_are(&plane, ""), "the chart renders no caBundle");

    // Weft runs with the chart's own flags (certificates living 6s), on
    // loopback ports.
    let deployment = helm_template(&[
        "--show-only",
        "templates/deployment.yaml",
        "--set",
        "webhooks.certTTL=6s",
    ])?;
    let args = chart_operator_args(&deployment)?;
    for expected in [
        "--webhook-service=weft",
        "--webhook-cert-ttl=6s",
        &format!("--mutating-webhook-name={MUTATING}"),
        &format!("--validating-webhook-name={VALIDATING}"),
    ] {
        assert!(
            args.iter().any(|a| a == expected),
            "{expected} not in {args:?}"
        );
    }
    let options = options.args(args);
    let weft = Weft::start_operator_with(&options, weft_e2e::mesh::WEFT_READY_TIMEOUT).await?;
    let address = listening_address(
        &weft
            .process()
            .wait_for_log(WEBHOOK_LINE, APPLY_TIMEOUT)
            .await?,
    )?;

    // caBundle of every webhook = the root in Secret weft-ca.
    let root_b64 = plane.kubectl_ok(&[
        "get",
        "secret",
        "weft-ca",
        "-n",
        OPERATOR_NAMESPACE,
        "-o",
        "jsonpath={.data.root-cert\\.pem}",
    ])?;
    assert!(!root_b64.is_empty());
    wait_until(
        "caBundle = the CA's root everywhere",
        APPLY_TIMEOUT,
        || async { bundles_are(&plane, &root_b64) },
    )
    .await?;
    let root_pem =
        String::from_utf8(base64::engine::general_purpose::STANDARD.decode(root_b64.trim())?)?;

    // The webhook's certificate is for the Service and chains to that root.
    let first = served_leaf(address, &root_pem, WEBHOOK_HOST).await?;
    let (status, _) = https_get(address, WEBHOOK_HOST, "/validate", &[], &root_pem, None).await?;
    assert_eq!(status, 405, "GET /validate: the webhook answers POST only");
    assert!(
        served_leaf(address, &root_pem, "weft.other-namespace.svc")
            .await
            .is_err(),
        "the certificate must name only the Service"
    );

    // Renewed after two thirds of its 6s, still chaining to the root.
    wait_for(
        "the webhook certificate to be renewed",
        APPLY_TIMEOUT,
        || {
            let root_pem = root_pem.clone();
            let first = first.clone();
            async move {
                let now = served_leaf(address, &root_pem, WEBHOOK_HOST).await.ok()?;
                (now != first).then_some(())
            }
        },
    )
    .await?;
    weft.process()
        .wait_for_log("renewed the webhook certificate", APPLY_TIMEOUT)
        .await?;

    // An edited caBundle is put back.
    let other = base64(TestPki::new()?.ca_pem().as_bytes());
    let patch = format!(
        "[{{\"op\":\"replace\",\"path\":\"/webhooks/0/clientConfig/caBundle\",\"value\":\"{other}\"}}]"
    );
    plane.kubectl_ok(&[
        "patch",
        "validatingwebhookconfiguration",
        VALIDATING,
        "--type=json",
        "-p",
        &patch,
    ])?;
    assert_eq!(
        ca_bundles(&plane, "validatingwebhookconfiguration", VALIDATING)?,
        [other]
    );
    wait_until(
        "the edited caBundle to be repaired",
        APPLY_TIMEOUT,
        || async { bundles_are(&plane, &root_b64) },
    )
    .await?;

    // Counted: the validating configuration was patched twice (set, then
    // repaired); the served certificate's expiry is a Unix time.
    let metrics = weft.monitoring_get("/metrics").await?.body;
    assert!(
        metrics.contains(
            "weft_webhook_ca_bundle_patches_total{kind=\"ValidatingWebhookConfiguration\"} 2"
        ),
        "{metrics}"
    );
    let expiry: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("weft_webhook_cert_expiry_timestamp_seconds "))
        .context("no weft_webhook_cert_expiry_timestamp_seconds")?
        .trim()
        .parse()?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();
    assert!(
        expiry > now && expiry <= now + 6,
        "expiry {expiry}, now {now}"
    );
    Ok(())
}
