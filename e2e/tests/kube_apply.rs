//! Weft's CRDs and examples on a real kube-apiserver (issue 4): the
//! generated CRDs are accepted and become Established, every file in
//! `examples/bookinfo` applies cleanly with server-side apply (server-side
//! field validation on), and the CRD schemas reject an object of the wrong
//! type with a message naming the field.
//!
//! The first run builds kube-apiserver, kubectl and etcd (see
//! `weft_e2e::k8s_tools`); later runs start the control plane in seconds.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;

use weft_e2e::ControlPlane;
use weft_e2e::kube_mesh::CRDS;

/// Starts a control plane and installs the chart's CRDs, waiting until the
/// apiserver reports each one Established (and so serves its kind).
fn control_plane_with_crds() -> ControlPlane {
    let plane = ControlPlane::start().expect("starting etcd and kube-apiserver");
    let applied = plane
        .kubectl_ok(&["apply", "--server-side", "-f", "charts/weft/crds/"])
        .expect("the generated CRDs apply");
    for crd in CRDS {
        assert!(
            applied.contains(&format!(
                "customresourcedefinition.apiextensions.k8s.io/{crd}"
            )),
            "kubectl applied {crd}: {applied}"
        );
    }
    let mut wait = vec!["wait", "--for=condition=Established", "--timeout=60s"];
    let names: Vec<String> = CRDS.iter().map(|crd| format!("crd/{crd}")).collect();
    wait.extend(names.iter().map(String::as_str));
    plane
        .kubectl_ok(&wait)
        .expect("the CRDs become Established");
    // Established means the kinds are served; a structural problem would
    // also show as a NonStructuralSchema condition, which must be absent.
    let conditions = plane
        .kubectl_ok(&[
            "get",
            "crd",
            "-o",
            "jsonpath={range .items[*]}{.metadata.name}{range .status.conditions[*]} {.type}={.status}{end}{\"\\n\"}{end}",
        ])
        .unwrap();
    assert!(
        !conditions.contains("NonStructuralSchema"),
        "a CRD is not structural:\n{conditions}"
    );
    plane
}

#[test]
fn crds_and_examples_apply_to_a_real_apiserver() {
    let plane = control_plane_with_crds();

    let applied = plane
        .kubectl_ok(&[
            "apply",
            "--server-side",
            "--validate=strict",
            "-f",
            "examples/bookinfo/",
        ])
        .expect("every example applies with strict server-side validation");
    assert!(!applied.trim().is_empty(), "kubectl applied nothing");

    // Every object in the examples is stored, by kind, namespace and name.
    let expected = example_objects();
    assert!(
        expected.len() >= 10,
        "the examples hold the objects this test expects: {expected:?}"
    );
    let mut stored = BTreeSet::new();
    for kind in ["virtualservices", "destinationrules", "serviceentries"] {
        let json = plane
            .kubectl_ok(&["get", kind, "-A", "-o", "json"])
            .unwrap();
        let list: serde_yaml::Value = serde_yaml::from_str(&json).unwrap();
        for item in list["items"].as_sequence().unwrap() {
            stored.insert(object_key(item));
        }
    }
    assert_eq!(stored, expected, "the objects stored are the examples'");

    // Each VirtualService comes back with its spec intact (the schema did not
    // prune a field: server-side apply with strict validation would have
    // refused an unknown one, and nothing may be dropped silently either).
    let json = plane
        .kubectl_ok(&["get", "virtualservices", "-A", "-o", "json"])
        .unwrap();
    let list: serde_yaml::Value = serde_yaml::from_str(&json).unwrap();
    for document in example_documents() {
        if document["kind"].as_str() != Some("VirtualService") {
            continue;
        }
        let name = document["metadata"]["name"].as_str().unwrap();
        let item = list["items"]
            .as_sequence()
            .unwrap()
            .iter()
            .find(|item| item["metadata"]["name"].as_str() == Some(name))
            .unwrap_or_else(|| panic!("VirtualService {name} is listed: {json}"));
        assert_eq!(
            item["spec"], document["spec"],
            "VirtualService {name} is stored as written"
        );
    }

    // The printer columns work (`kubectl get vs` shows hosts).
    let table = plane.kubectl_ok(&["get", "vs", "-n", "default"]).unwrap();
    assert!(table.contains("HOSTS"), "{table}");
}

#[test]
fn the_crd_schema_rejects_a_wrong_type_naming_the_field() {
    let plane = control_plane_with_crds();
    let bad = "\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: bad-timeout
  namespace: default
spec:
  hosts: [reviews]
  http:
  - timeout: 5
    route:
    - destination:
        host: reviews
";
    for extra in [&["--server-side"][..], &[][..]] {
        let mut args = vec!["apply", "-f", "-"];
        args.extend_from_slice(extra);
        let out = plane.kubectl_stdin(&args, bad).unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success(),
            "kubectl {} accepted a numeric timeout: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout)
        );
        assert!(
            stderr.contains("spec.http[0].timeout"),
            "the error names the field: {stderr}"
        );
        eprintln!("kubectl {}: refused as expected: {stderr}", args.join(" "));
    }

    // An unknown field is refused too, by server-side field validation.
    let unknown = bad
        .replace("name: bad-timeout", "name: bad-field")
        .replace("timeout: 5", "timeoutt: 5s");
    let out = plane
        .kubectl_stdin(&["apply", "--server-side", "-f", "-"], &unknown)
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "an unknown field was accepted");
    assert!(
        stderr.contains("timeoutt"),
        "the error names the field: {stderr}"
    );
    eprintln!("an unknown field: refused as expected: {stderr}");

    // And none of them was stored.
    let names = plane
        .kubectl_ok(&["get", "virtualservices", "-A", "-o", "name"])
        .unwrap();
    assert!(names.trim().is_empty(), "nothing was stored: {names}");
}

/// Every YAML document in `examples/bookinfo`.
fn example_documents() -> Vec<serde_yaml::Value> {
    let dir = weft_e2e::tools::workspace_dir().join("examples/bookinfo");
    let mut documents = Vec::new();
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "yaml"))
        .collect();
    paths.sort();
    for path in paths {
        let text = std::fs::read_to_string(&path).unwrap();
        for document in serde_yaml::Deserializer::from_str(&text) {
            let value = serde::Deserialize::deserialize(document).unwrap();
            if !matches!(value, serde_yaml::Value::Null) {
                documents.push(value);
            }
        }
    }
    documents
}

/// `Kind namespace/name` of every example object.
fn example_objects() -> BTreeSet<String> {
    example_documents().iter().map(object_key).collect()
}

fn object_key(object: &serde_yaml::Value) -> String {
    format!(
        "{} {}/{}",
        object["kind"].as_str().unwrap_or("?"),
        object["metadata"]["namespace"]
            .as_str()
            .unwrap_or("default"),
        object["metadata"]["name"].as_str().unwrap_or("?")
    )
}
