//! Sidecar injection on a real kube-apiserver: `weft operator` serves
//! `POST /inject` from a test CA's certificate for 127.0.0.1, registered
//! by URL in a MutatingWebhookConfiguration with Istio's selectors (a
//! webhook for injection-labelled namespaces, one for Pods labelled
//! `sidecar.istio.io/inject=true` in unlabelled ones). The apiserver
//! validates and stores what the patch makes; a Pod opting out, or in an
//! unlabelled namespace, is stored unchanged; admitting an injected Pod
//! again changes nothing; with weft down, `failurePolicy: Fail` refuses a
//! Pod and `Ignore` stores it uninjected; `weft inject -f -`'s offline
//! output is stored as it is. No scheduler runs: Pods are
//! stored, never started.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Output;

use anyhow::bail;
use serde_json::Value;
use weft_e2e::kube_mesh::{operator_identity, start_control_plane_with_crds};
use weft_e2e::mesh::WEFT_READY_TIMEOUT;
use weft_e2e::procs::listening_address;
use weft_e2e::tls::{TestPki, base64};
use weft_e2e::{APPLY_TIMEOUT, ControlPlane, Weft, wait_for, weft_binary};

/// The log line of the webhook server's bound address.
const WEBHOOK_LINE: &str = "validating webhook listening on";
/// A namespace labelled `istio-injection=enabled`.
const LABELLED: &str = "injected";
/// A namespace labelled `weft-injection=enabled`.
const WEFT_LABELLED: &str = "weft-injected";
/// A namespace without injection label.
const PLAIN: &str = "plain";

/// Istio's injection webhooks, calling `url`, trusting `ca_pem`.
fn mk_injector_configuration(url: &str, ca_pem: &str, failure_policy: &str) -> String {
    let webhook = |name: &str, namespace: &str, object: &str| {
        format!(
            "\
- name: {name}
  clientConfig:
    url: {url}
    caBundle: {bundle}
  rules:
  - apiGroups: ['']
    apiVersions: [v1]
    operations: [CREATE]
    resources: [pods]
  namespaceSelector:
    matchExpressions:
{namespace}
  objectSelector:
    matchExpressions:
{object}
  failurePolicy: {failure_policy}
  reinvocationPolicy: Never
  sideEffects: None
  admissionReviewVersions: [v1]
  timeoutSeconds: 10
",
            bundle = base64(ca_pem.as_bytes())
        )
    };
    let opted_out = "    - {key: sidecar.istio.io/inject, operator: NotIn, values: ['false']}";
    format!(
        "\
apiVersion: admissionregistration.k8s.io/v1
kind: MutatingWebhookConfiguration
metadata:
  name: weft-sidecar-injector
webhooks:
{}{}{}",
        webhook(
            "namespace.sidecar-injector.weft.io",
            "    - {key: istio-injection, operator: In, values: [enabled]}",
            opted_out,
        ),
        webhook(
            "weft-namespace.sidecar-injector.weft.io",
            "    - {key: weft-injection, operator: In, values: [enabled]}\n    - {key: istio-injection, operator: DoesNotExist}",
            opted_out,
        ),
        webhook(
            "object.sidecar-injector.weft.io",
            "    - {key: istio-injection, operator: DoesNotExist}\n    - {key: weft-injection, operator: DoesNotExist}",
            "    - {key: sidecar.istio.io/inject, operator: In, values: ['true']}",
        ),
    )
}

/// A Pod named by `generateName` `name-`, with one app container.
fn mk_pod(namespace: &str, name: &str, labels: &str, annotations: &str) -> String {
    format!(
        "\
apiVersion: v1
kind: Pod
metadata:
  generateName: {name}-
  namespace: {namespace}
  labels: {{app: {name}{labels}}}
  annotations: {{example.com/note: test{annotations}}}
spec:
  containers:
  - name: app
    image: example.com/{name}:1
    ports:
    - containerPort: 9080
"
    )
}

/// `kubectl create -f - -o json [extra]` of `yaml`, whatever its outcome.
fn kubectl_create(plane: &ControlPlane, yaml: &str, extra: &[&str]) -> anyhow::Result<Output> {
    let mut args = vec!["create", "-f", "-", "-o", "json"];
    args.extend(extra);
    plane.kubectl_stdin(&args, yaml)
}

/// Creates `yaml`, which must succeed; returns the stored object.
fn create(plane: &ControlPlane, yaml: &str) -> anyhow::Result<Value> {
    let out = kubectl_create(plane, yaml, &[])?;
    if !out.status.success() {
        bail!(
            "kubectl create failed: {}\n{yaml}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(serde_json::from_slice(&out.stdout)?)
}

/// The stored Pod `name` of `namespace`.
fn get_pod(plane: &ControlPlane, namespace: &str, name: &str) -> anyhow::Result<Value> {
    let json = plane.kubectl_ok(&["get", "pod", name, "-n", namespace, "-o", "json"])?;
    Ok(serde_json::from_str(&json)?)
}

fn names(list: &Value) -> Vec<&str> {
    list.as_array()
        .map(|items| items.iter().filter_map(|i| i["name"].as_str()).collect())
        .unwrap_or_default()
}

fn is_injected(pod: &Value) -> bool {
    pod["metadata"]["annotations"]["sidecar.istio.io/status"].is_string()
}

/// Asserts `pod` (as stored) carries the whole sidecar.
fn assert_injected(pod: &Value) {
    let spec = &pod["spec"];
    assert_eq!(
        names(&spec["initContainers"]),
        ["istio-init", "istio-proxy"],
        "{pod:#}"
    );
    assert_eq!(names(&spec["containers"]), ["app"], "{pod:#}");
    let proxy = &spec["initContainers"][1];
    assert_eq!(proxy["restartPolicy"], "Always", "{pod:#}");
    assert_eq!(proxy["securityContext"]["runAsUser"], 1337, "{pod:#}");
    let args: Vec<&str> = proxy["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(
        args[..3],
        ["agent", "--node-id", "$(POD_NAME).$(POD_NAMESPACE)"]
    );
    let init_caps = &spec["initContainers"][0]["securityContext"]["capabilities"]["add"];
    assert_eq!(
        init_caps,
        &serde_json::json!(["NET_ADMIN", "NET_RAW"]),
        "{pod:#}"
    );
    assert_eq!(
        names(&spec["volumes"]),
        [
            "workload-socket",
            "istio-token",
            "istiod-ca-cert",
            "istio-envoy"
        ],
        "{pod:#}"
    );
    let token = &spec["volumes"][1]["projected"]["sources"][0]["serviceAccountToken"];
    assert_eq!(token["audience"], "istio-ca", "{pod:#}");
    assert_eq!(token["expirationSeconds"], 43200, "{pod:#}");
    assert_eq!(
        spec["volumes"][2]["configMap"]["name"],
        "istio-ca-root-cert"
    );
    let labels = &pod["metadata"]["labels"];
    assert_eq!(labels["security.istio.io/tlsMode"], "istio", "{pod:#}");
    assert!(
        labels["service.istio.io/canonical-name"].is_string(),
        "{pod:#}"
    );
    assert!(is_injected(pod), "{pod:#}");
}

/// Asserts `pod` is stored as created: no sidecar, no status.
fn assert_untouched(pod: &Value) {
    assert!(pod["spec"]["initContainers"].is_null(), "{pod:#}");
    assert_eq!(names(&pod["spec"]["containers"]), ["app"], "{pod:#}");
    assert!(pod["spec"]["volumes"].is_null(), "{pod:#}");
    assert!(!is_injected(pod), "{pod:#}");
    assert!(
        pod["metadata"]["labels"]["security.istio.io/tlsMode"].is_null(),
        "{pod:#}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_are_injected_as_namespaces_and_pods_say_and_outages_follow_the_failure_policy()
-> anyhow::Result<()> {
    let plane = start_control_plane_with_crds().await?;
    // The namespaces exist before weft lists them, so the webhook knows
    // their labels from its first review.
    plane.kubectl_ok(&["create", "namespace", LABELLED])?;
    plane.kubectl_ok(&["label", "namespace", LABELLED, "istio-injection=enabled"])?;
    plane.kubectl_ok(&["create", "namespace", WEFT_LABELLED])?;
    plane.kubectl_ok(&[
        "label",
        "namespace",
        WEFT_LABELLED,
        "weft-injection=enabled",
    ])?;
    plane.kubectl_ok(&["create", "namespace", PLAIN])?;

    let pki = TestPki::new()?;
    let serving = pki.issue(&["127.0.0.1"])?;
    let options = operator_identity(&plane)?
        .webhook_tls(&serving.cert_path, &serving.key_path)
        .args(["--proxy-image", "example.com/weft-proxy:test"]);
    let weft = Weft::start_operator_with(&options, WEFT_READY_TIMEOUT).await?;
    let line = weft.wait_for_log(WEBHOOK_LINE, APPLY_TIMEOUT).await?;
    let url = format!("https://{}/inject", listening_address(&line)?);
    plane.kubectl_stdin_ok(
        &["apply", "-f", "-"],
        &mk_injector_configuration(&url, pki.ca_pem(), "Fail"),
    )?;

    // The apiserver picks the configuration up asynchronously: wait until
    // a server-side dry run comes back injected.
    let probe = mk_pod(LABELLED, "probe", "", "");
    let last = std::sync::Mutex::new(String::new());
    let called = wait_for(
        "the injection webhook to be called",
        APPLY_TIMEOUT,
        || async {
            let out = kubectl_create(&plane, &probe, &["--dry-run=server"]).ok()?;
            *last.lock().unwrap() = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stderr),
                String::from_utf8_lossy(&out.stdout)
            );
            let pod: Value = serde_json::from_slice(&out.stdout).ok()?;
            is_injected(&pod).then_some(())
        },
    )
    .await;
    if let Err(err) = called {
        bail!(
            "{err}; the last dry run said:\n{}\nweft's log:\n{}",
            last.lock().unwrap(),
            weft.log_tail(30)
        );
    }

    // Injected, in both kinds of labelled namespace, and by pod label in
    // an unlabelled one; all stored (so validated) by the apiserver.
    let pod = create(&plane, &mk_pod(LABELLED, "reviews", ", version: v1", ""))?;
    assert_injected(&pod);
    let name = pod["metadata"]["name"].as_str().unwrap();
    let stored = get_pod(&plane, LABELLED, name)?;
    assert_injected(&stored);
    assert_eq!(
        stored["metadata"]["labels"]["service.istio.io/canonical-name"],
        "reviews"
    );
    assert_eq!(
        stored["metadata"]["labels"]["service.istio.io/canonical-revision"],
        "v1"
    );
    assert_eq!(
        stored["spec"]["initContainers"][1]["image"],
        "example.com/weft-proxy:test"
    );
    assert_injected(&create(&plane, &mk_pod(WEFT_LABELLED, "ratings", "", ""))?);
    assert_injected(&create(
        &plane,
        &mk_pod(PLAIN, "details", ", sidecar.istio.io/inject: 'true'", ""),
    )?);

    // Opting out by label (the webhook is not called) and by annotation
    // (weft decides), and an unlabelled namespace: stored as created.
    let opted_label = create(
        &plane,
        &mk_pod(
            LABELLED,
            "out-label",
            ", sidecar.istio.io/inject: 'false'",
            "",
        ),
    )?;
    assert_untouched(&opted_label);
    let opted_annotation = create(
        &plane,
        &mk_pod(
            LABELLED,
            "out-annotation",
            "",
            ", sidecar.istio.io/inject: 'false'",
        ),
    )?;
    assert_untouched(&opted_annotation);
    assert_untouched(&create(&plane, &mk_pod(PLAIN, "plain", "", ""))?);

    // A second admission of the injected Pod changes nothing: create it
    // again (server-side dry run) as stored, without what the apiserver
    // owns.
    let mut again = stored.clone();
    let metadata = again["metadata"].as_object_mut().unwrap();
    for owned in [
        "uid",
        "resourceVersion",
        "creationTimestamp",
        "managedFields",
        "name",
    ] {
        metadata.remove(owned);
    }
    metadata.insert("generateName".into(), "reviews-again-".into());
    again.as_object_mut().unwrap().remove("status");
    let out = kubectl_create(&plane, &again.to_string(), &["--dry-run=server"])?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let readmitted: Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(readmitted["spec"], stored["spec"]);
    assert_eq!(
        readmitted["metadata"]["labels"],
        stored["metadata"]["labels"]
    );
    assert_eq!(
        readmitted["metadata"]["annotations"],
        stored["metadata"]["annotations"]
    );

    // Outage. With failurePolicy Fail, a Pod the webhook should see is
    // refused.
    weft.kill()?;
    let out = kubectl_create(&plane, &mk_pod(LABELLED, "outage", "", ""), &[])?;
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!out.status.success(), "created during the outage");
    assert!(
        stderr.contains("failed calling webhook \"namespace.sidecar-injector.weft.io\""),
        "{stderr}"
    );
    // Pods the webhook does not select are still created.
    assert_untouched(&create(&plane, &mk_pod(PLAIN, "still", "", ""))?);

    // With Ignore, it is stored uninjected.
    plane.kubectl_stdin_ok(
        &["apply", "-f", "-"],
        &mk_injector_configuration(&url, pki.ca_pem(), "Ignore"),
    )?;
    let outage = mk_pod(LABELLED, "outage", "", "");
    wait_for("failurePolicy Ignore to apply", APPLY_TIMEOUT, || async {
        let out = kubectl_create(&plane, &outage, &["--dry-run=server"]).ok()?;
        out.status.success().then_some(())
    })
    .await?;
    assert_untouched(&create(&plane, &outage)?);

    // `weft inject -f -` makes the same sidecar offline, and the
    // apiserver stores it as it is (the webhook leaves an injected Pod
    // alone).
    let offline = weft_inject(&mk_pod(PLAIN, "offline", "", ""))?;
    let pod = create(&plane, &offline)?;
    assert_injected(&pod);
    assert_eq!(
        pod["spec"]["initContainers"][1]["image"],
        format!("ghcr.io/weft-mesh/proxy:{}", env!("CARGO_PKG_VERSION"))
    );
    Ok(())
}

/// `weft inject -f -` of `yaml`: its stdout.
fn weft_inject(yaml: &str) -> anyhow::Result<String> {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut child = Command::new(weft_binary()?)
        .args(["inject", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    child
        .stdin
        .take()
        .expect("stdin is piped")
        .write_all(yaml.as_bytes())?;
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!(
            "weft inject failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8(out.stdout)?)
}
