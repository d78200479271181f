//! The validating admission webhook of `weft operator` on a real
//! kube-apiserver: `kubectl apply` of config Weft would reject fails with
//! the webhook's field-precise message; valid Istio config Weft does not
//! translate yet is stored with a warning, and gets `Ready=False`, while
//! the rest of the mesh keeps serving. The setup is [`KubeMesh`], with the
//! webhook served from a test CA's certificate for 127.0.0.1 and
//! registered by URL.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::process::Output;

use anyhow::bail;
use weft_e2e::kube_mesh::{condition, get_object, operator_identity};
use weft_e2e::procs::listening_address;
use weft_e2e::tls::{TestPki, base64};
use weft_e2e::yaml::{PORT_LEVEL_MTLS_WITHOUT_SELECTOR, fqdn, mk_weighted_virtual_service};
use weft_e2e::{APPLY_TIMEOUT, ControlPlane, KubeMesh, wait_for};

/// The log line of the webhook's bound address.
const WEBHOOK_LINE: &str = "validating webhook listening on";

/// A ValidatingWebhookConfiguration calling `url` for the five
/// networking kinds and PeerAuthentication, trusting `ca_pem`.
const JWT_RULE_WITH_TWO_KEY_SOURCES: &str = "apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: reviews-jwt, namespace: default}
spec:
  selector: {matchLabels: {app: reviews}}
  jwtRules:
  - issuer: https://id.example.com
    jwksUri: https://id.example.com/keys
    jwks: '{\"keys\": []}'
";

fn mk_webhook_configuration(url: &str, ca_pem: &str) -> String {
    format!(
        "\
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingWebhookConfiguration
metadata:
  name: weft-validation
webhooks:
- name: validation.weft.io
  clientConfig:
    url: {url}
    caBundle: {bundle}
  rules:
  - apiGroups: [networking.istio.io]
    apiVersions: ['*']
    operations: [CREATE, UPDATE]
    resources: [virtualservices, destinationrules, serviceentries, gateways, sidecars]
  - apiGroups: [security.istio.io]
    apiVersions: ['*']
    operations: [CREATE, UPDATE]
    resources: [peerauthentications, requestauthentications, authorizationpolicies]
  failurePolicy: Fail
  sideEffects: None
  admissionReviewVersions: [v1]
  timeoutSeconds: 10
",
        bundle = base64(ca_pem.as_bytes())
    )
}

/// `kubectl apply --server-side -f -` of `yaml`, whatever its outcome.
fn kubectl_apply(plane: &ControlPlane, yaml: &str, extra: &[&str]) -> anyhow::Result<Output> {
    let mut args = vec!["apply", "--server-side", "-f", "-"];
    args.extend(extra);
    plane.kubectl_stdin(&args, yaml)
}

/// Applies `yaml`, which must be refused; returns kubectl's stderr.
fn apply_refused(plane: &ControlPlane, yaml: &str) -> anyhow::Result<String> {
    let out = kubectl_apply(plane, yaml, &[])?;
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    if out.status.success() {
        bail!(
            "kubectl apply succeeded, but the webhook should have refused\n{yaml}\nstdout: {}\nstderr: {stderr}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
    Ok(stderr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_webhook_refuses_what_weft_would_reject_and_warns_about_what_it_cannot_serve()
-> anyhow::Result<()> {
    let pki = TestPki::new()?;
    let serving = pki.issue(&["127.0.0.1"])?;
    let KubeMesh { mesh, plane, .. } = &KubeMesh::start_with(|plane| {
        Ok(operator_identity(plane)?.webhook_tls(&serving.cert_path, &serving.key_path))
    })
    .await?;
    let host = fqdn("reviews", "default");
    mesh.wait_for_body(&host, "/", &[], "v1", APPLY_TIMEOUT)
        .await?;

    let line = mesh
        .weft()
        .wait_for_log(WEBHOOK_LINE, APPLY_TIMEOUT)
        .await?;
    let address = listening_address(&line)?;
    let url = format!("https://{address}/validate");
    plane.kubectl_stdin_ok(
        &["apply", "-f", "-"],
        &mk_webhook_configuration(&url, pki.ca_pem()),
    )?;

    // The apiserver picks the configuration up asynchronously: wait until
    // a server-side dry run of weights summing to 90 is refused by it.
    let ninety = mk_weighted_virtual_service("reviews", "default", &[("v1", 50), ("v2", 40)]);
    wait_for("the webhook to be called", APPLY_TIMEOUT, || async {
        let out = kubectl_apply(plane, &ninety, &["--dry-run=server"]).ok()?;
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        (!out.status.success() && stderr.contains("validation.weft.io")).then_some(())
    })
    .await?;

    // Weights summing to 90.
    let stderr = apply_refused(plane, &ninety)?;
    assert!(
        stderr.contains("admission webhook \"validation.weft.io\" denied the request"),
        "{stderr}"
    );
    assert!(
        stderr.contains("VirtualService default/reviews: spec.http[0].route"),
        "{stderr}"
    );
    assert!(stderr.contains("90"), "{stderr}");

    // A PeerAuthentication with port-level modes but no workload selector.
    let stderr = apply_refused(plane, PORT_LEVEL_MTLS_WITHOUT_SELECTOR)?;
    assert!(
        stderr.contains(
            "PeerAuthentication default/default: spec.portLevelMtls: portLevelMtls needs a selector"
        ),
        "{stderr}"
    );

    // A JWT rule with inline keys and a key URL both.
    let stderr = apply_refused(plane, JWT_RULE_WITH_TWO_KEY_SOURCES)?;
    assert!(
        stderr.contains("RequestAuthentication default/reviews-jwt: spec.jwtRules[0]"),
        "{stderr}"
    );

    // A subset the existing DestinationRule `reviews` does not define.
    let stderr = apply_refused(
        plane,
        &mk_weighted_virtual_service("reviews", "default", &[("v9", 100)]),
    )?;
    assert!(
        stderr.contains(
            "VirtualService default/reviews: spec.http[0].route[0].destination.subset: subset v9 is not defined"
        ),
        "{stderr}"
    );

    // A regex that does not compile.
    let bad_regex = "\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
  namespace: default
spec:
  hosts: [reviews]
  http:
  - match:
    - uri:
        regex: '/api/(v1'
    route:
    - destination: {host: reviews, subset: v2}
";
    let stderr = apply_refused(plane, bad_regex)?;
    assert!(
        stderr.contains("VirtualService default/reviews: spec.http[0].match[0].uri.regex: "),
        "{stderr}"
    );

    // Nothing of that was stored: `reviews` is still all to v1.
    let stored = get_object(plane, "virtualservice", "reviews")?;
    assert_eq!(
        stored["spec"]["http"][0]["route"][0]["destination"]["subset"].as_str(),
        Some("v1"),
        "{stored:?}"
    );

    // Valid Istio Weft does not translate (an abort with an HTTP/2 error),
    // on another host: stored, with kubectl printing the warning.
    let unsupported = "\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: ratings
  namespace: default
spec:
  hosts: [ratings]
  http:
  - fault:
      abort:
        http2Error: PROTOCOL_ERROR
        percentage: {value: 10}
    route:
    - destination: {host: ratings}
";
    let out = kubectl_apply(plane, unsupported, &[])?;
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains(
            "Warning: VirtualService default/ratings: spec.http[0].fault.abort.http2Error: "
        ),
        "{stderr}"
    );

    // Its status says it is not served, naming the field.
    let ratings = wait_for("ratings to be Ready=False", APPLY_TIMEOUT, || async {
        let object = get_object(plane, "virtualservice", "ratings").ok()?;
        let generation = object["metadata"]["generation"].as_i64()?;
        let current = object["status"]["observedGeneration"].as_i64() == Some(generation)
            && condition(&object, "Ready")?.0 == "False";
        current.then_some(object)
    })
    .await?;
    let (_, reason, message) = condition(&ratings, "Accepted").unwrap();
    assert_eq!(reason, "Unsupported", "{message}");
    assert!(
        message.contains("spec.http[0].fault.abort.http2Error"),
        "{message}"
    );
    let (_, reason, _) = condition(&ratings, "Ready").unwrap();
    assert_eq!(reason, "Rejected");

    // `reviews` traffic is untouched.
    let counts = mesh.sample(&host, "/", &[], 20).await?;
    assert_eq!(counts, BTreeMap::from([("v1".to_string(), 20)]));

    // A valid change still goes through the webhook and moves traffic.
    kubectl_apply(
        plane,
        &mk_weighted_virtual_service("reviews", "default", &[("v2", 100)]),
        &[],
    )
    .and_then(|out| {
        if out.status.success() {
            Ok(())
        } else {
            bail!("{}", String::from_utf8_lossy(&out.stderr))
        }
    })?;
    mesh.wait_for_body(&host, "/", &[], "v2", APPLY_TIMEOUT)
        .await?;

    // Every answer is counted.
    let metrics = mesh.weft().monitoring_get("/metrics").await?.body;
    for line in [
        "weft_webhook_reviews_total{kind=\"VirtualService\",allowed=\"false\"}",
        "weft_webhook_reviews_total{kind=\"VirtualService\",allowed=\"true\"}",
    ] {
        assert!(metrics.contains(line), "no {line} in\n{metrics}");
    }
    assert!(
        mesh.weft().is_running(),
        "weft operator keeps running: {}",
        mesh.weft().log_tail(30)
    );
    Ok(())
}
