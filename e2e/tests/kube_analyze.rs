//! `weft analyze --kubeconfig` on a real kube-apiserver: seeded problems
//! (a pod without its proxy in an injected namespace, a Service port that
//! names no protocol, a route to a subset no DestinationRule defines) are
//! found with their codes; `-n` narrows the analysis to one namespace; a
//! file given with `--kubeconfig` is analysed on top of the cluster.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

use weft_e2e::kube_mesh::CRDS;
use weft_e2e::{ControlPlane, output_text, weft_binary};

const SEED: &str = "apiVersion: v1
kind: Namespace
metadata: {name: shop, labels: {istio-injection: enabled}}
---
apiVersion: v1
kind: Pod
metadata: {name: web-1, namespace: shop, labels: {app: web}}
spec: {containers: [{name: web, image: example.invalid/web}]}
---
apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: default}
spec:
  selector: {app: reviews}
  ports: [{name: web, port: 9080}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: {host: reviews, subset: v1}
";

const RULE: &str = "apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: default}
spec:
  host: reviews
  subsets: [{name: v1, labels: {version: v1}}]
";

fn analyze(plane: &ControlPlane, args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(weft_binary().unwrap())
        .arg("analyze")
        .arg("--kubeconfig")
        .arg(plane.kubeconfig())
        .args(args)
        .output()
        .unwrap();
    (out.status.code(), output_text(&out))
}

#[test]
fn analyze_finds_seeded_problems_in_a_live_cluster() {
    let plane = ControlPlane::start().expect("starting etcd and kube-apiserver");
    plane
        .kubectl_ok(&["apply", "--server-side", "-f", "charts/weft/crds/"])
        .unwrap();
    let mut wait = vec!["wait", "--for=condition=Established", "--timeout=60s"];
    let names: Vec<String> = CRDS.iter().map(|crd| format!("crd/{crd}")).collect();
    wait.extend(names.iter().map(String::as_str));
    plane.kubectl_ok(&wait).unwrap();
    plane
        .kubectl_stdin_ok(&["apply", "--server-side", "-f", "-"], SEED)
        .unwrap();

    let (code, text) = analyze(&plane, &[]);
    assert_eq!(code, Some(79), "an Error finding fails: {text}");
    for needle in [
        "Error [WA0103] (VirtualService default/reviews) spec.http[0].route[0].destination.subset: subset v1 is not defined by any DestinationRule",
        "Warning [WA0202] (Pod shop/web-1) spec.containers",
        "Warning [WA0301] (Service default/reviews) spec.ports[0].name",
    ] {
        assert!(text.contains(needle), "finds {needle:?}:\n{text}");
    }
    // Objects from the cluster are named by their resource, not a file.
    assert!(!text.contains("document"), "{text}");

    // One namespace: only the pod, a warning (exit 0).
    let (code, text) = analyze(&plane, &["-n", "shop"]);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("[WA0202] (Pod shop/web-1)"), "{text}");
    assert!(
        !text.contains("WA0103") && !text.contains("WA0301"),
        "{text}"
    );

    // A DestinationRule in a file, on top of the cluster, fixes the subset.
    let dir = tempfile::tempdir().unwrap();
    let rule = dir.path().join("rule.yaml");
    std::fs::write(&rule, RULE).unwrap();
    let (code, text) = analyze(&plane, &["-o", "json", rule.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{text}");
    assert!(!text.contains("WA0103"), "{text}");
    assert!(text.contains("\"code\": \"WA0202\""), "{text}");
}
