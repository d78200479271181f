//! Injection on fabricated Pods: every policy combination, the template,
//! the JSONPatch (snapshot) and the AdmissionReview round trip.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::policy::{Decision, Skip, decide};
use super::*;

fn mk_pod(labels: &[(&str, &str)], annotations: &[(&str, &str)]) -> Value {
    let map = |pairs: &[(&str, &str)]| {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), Value::String(v.to_string())))
            .collect::<serde_json::Map<_, _>>()
    };
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "generateName": "reviews-v1-5d8b9c7f-",
            "namespace": "bookinfo",
            "labels": map(labels),
            "annotations": map(annotations),
        },
        "spec": {
            "serviceAccountName": "bookinfo-reviews",
            "containers": [{"name": "reviews", "image": "reviews:1", "ports": [{"containerPort": 9080}]}],
            "futureField": {"kept": true},
        },
    })
}

fn ns(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn decide_on(pod: &Value, namespace: &str, ns_labels: &[(&str, &str)]) -> Decision {
    let pod = serde_json::from_value(pod.clone()).unwrap();
    decide(&pod, namespace, &ns(ns_labels), &InjectConfig::default())
}

#[test]
fn every_policy_combination_decides_as_istio_does() {
    use Decision::{Inject, Skip as S};
    let enabled = [("istio-injection", "enabled")];
    let weft = [("weft-injection", "enabled")];
    let disabled = [("istio-injection", "disabled")];
    let none: [(&str, &str); 0] = [];
    type Case<'a> = (&'a str, Value, &'a [(&'a str, &'a str)], Decision);
    let cases: Vec<Case> = vec![
        ("istio label", mk_pod(&[], &[]), &enabled, Inject),
        ("weft label", mk_pod(&[], &[]), &weft, Inject),
        (
            "weft label wins over istio's",
            mk_pod(&[], &[]),
            &[
                ("weft-injection", "disabled"),
                ("istio-injection", "enabled"),
            ],
            S(Skip::NamespaceDisabled),
        ),
        (
            "namespace disabled",
            mk_pod(&[], &[]),
            &disabled,
            S(Skip::NamespaceDisabled),
        ),
        (
            "odd value",
            mk_pod(&[], &[]),
            &[("istio-injection", "yes")],
            S(Skip::NamespaceDisabled),
        ),
        (
            "unlabelled",
            mk_pod(&[], &[]),
            &none,
            S(Skip::NamespaceNotEnabled),
        ),
        (
            "pod label false",
            mk_pod(&[("sidecar.istio.io/inject", "false")], &[]),
            &enabled,
            S(Skip::PodOptedOut),
        ),
        (
            "pod annotation false",
            mk_pod(&[], &[("sidecar.istio.io/inject", "false")]),
            &enabled,
            S(Skip::PodOptedOut),
        ),
        (
            "label true wins over annotation false",
            mk_pod(
                &[("sidecar.istio.io/inject", "true")],
                &[("sidecar.istio.io/inject", "false")],
            ),
            &enabled,
            Inject,
        ),
        (
            "label false wins over annotation true",
            mk_pod(
                &[("sidecar.istio.io/inject", "false")],
                &[("sidecar.istio.io/inject", "true")],
            ),
            &enabled,
            S(Skip::PodOptedOut),
        ),
        (
            "an unknown value means no",
            mk_pod(&[], &[("sidecar.istio.io/inject", "maybe")]),
            &enabled,
            S(Skip::PodOptedOut),
        ),
        (
            "pod label true, unlabelled namespace",
            mk_pod(&[("sidecar.istio.io/inject", "yes")], &[]),
            &none,
            Inject,
        ),
        (
            "pod annotation true, unlabelled namespace",
            mk_pod(&[], &[("sidecar.istio.io/inject", "true")]),
            &none,
            S(Skip::NamespaceNotEnabled),
        ),
        (
            "pod label true, namespace disabled",
            mk_pod(&[("sidecar.istio.io/inject", "true")], &[]),
            &disabled,
            S(Skip::NamespaceDisabled),
        ),
        (
            "already injected",
            mk_pod(&[], &[("sidecar.istio.io/status", "{}")]),
            &enabled,
            S(Skip::AlreadyInjected),
        ),
    ];
    for (name, pod, labels, expected) in cases {
        assert_eq!(decide_on(&pod, "bookinfo", labels), expected, "{name}");
    }
}

#[test]
fn host_network_ignored_namespaces_and_the_control_plane_are_never_injected() {
    let enabled = [("istio-injection", "enabled")];
    let mut host = mk_pod(&[("sidecar.istio.io/inject", "true")], &[]);
    host["spec"]["hostNetwork"] = json!(true);
    assert_eq!(
        decide_on(&host, "bookinfo", &enabled),
        Decision::Skip(Skip::HostNetwork)
    );
    let pod = mk_pod(&[], &[]);
    assert_eq!(
        decide_on(&pod, "kube-system", &enabled),
        Decision::Skip(Skip::IgnoredNamespace)
    );
    let weft = mk_pod(&[("app.kubernetes.io/name", "weft")], &[]);
    assert_eq!(
        decide_on(&weft, "weft-system", &enabled),
        Decision::Skip(Skip::ControlPlane)
    );
    // The same label elsewhere is an ordinary workload.
    assert_eq!(decide_on(&weft, "bookinfo", &enabled), Decision::Inject);
}

fn injected(pod: &Value) -> Value {
    let labels = ns(&[("istio-injection", "enabled")]);
    match inject_pod(pod, "bookinfo", &labels, &InjectConfig::default()).unwrap() {
        Outcome::Injected(pod) => pod,
        Outcome::Skipped(skip) => panic!("skipped: {}", skip.reason()),
    }
}

#[test]
fn the_patch_of_a_representative_pod() {
    let mut pod = mk_pod(
        &[
            ("app", "reviews"),
            ("version", "v1"),
            ("pod-template-hash", "5d8b9c7f"),
        ],
        &[
            ("sidecar.istio.io/proxyCPU", "200m"),
            ("sidecar.istio.io/proxyMemoryLimit", "512Mi"),
            (
                "traffic.sidecar.istio.io/excludeOutboundIPRanges",
                "10.0.0.0/8, 169.254.169.254",
            ),
            ("traffic.sidecar.istio.io/excludeInboundPorts", "8080"),
            ("prometheus.io/scrape", "true"),
            ("prometheus.io/port", "9080"),
            ("prometheus_io/path", "/metrics"),
        ],
    );
    pod["metadata"]["ownerReferences"] = json!([{
        "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "reviews-v1-5d8b9c7f",
        "uid": "1", "controller": true,
    }]);
    pod["spec"]["initContainers"] = json!([{"name": "migrate", "image": "migrate:1"}]);
    pod["spec"]["volumes"] = json!([{"name": "data", "emptyDir": {}}]);
    pod["spec"]["containers"][0]["readinessProbe"] =
        json!({"httpGet": {"path": "/health", "port": 9080}, "periodSeconds": 5});
    let mutated = injected(&pod);
    let labels = ns(&[("istio-injection", "enabled")]);
    let Outcome::Injected(patch) =
        inject_patch(&pod, "bookinfo", &labels, &InjectConfig::default()).unwrap()
    else {
        panic!("not injected");
    };
    // The patch takes the Pod exactly there.
    let mut applied = pod.clone();
    json_patch::patch(&mut applied, &patch).unwrap();
    assert_eq!(applied, mutated);
    assert_eq!(mutated["spec"]["futureField"], json!({"kept": true}));
    let names: Vec<&str> = mutated["spec"]["initContainers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["istio-init", "istio-proxy", "migrate"]);
    insta::assert_yaml_snapshot!(patch);
}

#[test]
fn injection_is_idempotent() {
    let once = injected(&mk_pod(&[], &[]));
    let labels = ns(&[("istio-injection", "enabled")]);
    let again = inject_pod(&once, "bookinfo", &labels, &InjectConfig::default()).unwrap();
    assert_eq!(again, Outcome::Skipped(Skip::AlreadyInjected));
}

#[test]
fn canonical_labels_come_from_the_workload_and_are_not_overwritten() {
    let pod = injected(&mk_pod(&[("pod-template-hash", "5d8b9c7f")], &[]));
    let labels = &pod["metadata"]["labels"];
    assert_eq!(labels["service.istio.io/canonical-name"], "reviews-v1");
    assert_eq!(labels["service.istio.io/canonical-revision"], "latest");
    assert_eq!(labels["security.istio.io/tlsMode"], "istio");
    let pod = injected(&mk_pod(
        &[
            ("service.istio.io/canonical-name", "mine"),
            ("security.istio.io/tlsMode", "disabled"),
        ],
        &[],
    ));
    let labels = &pod["metadata"]["labels"];
    assert_eq!(labels["service.istio.io/canonical-name"], "mine");
    assert_eq!(labels["security.istio.io/tlsMode"], "disabled");
}

#[test]
fn a_pod_without_labels_annotations_or_service_account_is_injected() {
    let pod = json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "bare"},
        "spec": {"containers": [{"name": "app", "image": "app:1"}]},
    });
    let mutated = injected(&pod);
    let args = mutated["spec"]["initContainers"][1]["args"]
        .as_array()
        .unwrap();
    let sa = args.iter().position(|a| a == "--service-account").unwrap();
    assert_eq!(args[sa + 1], "default");
    // The projected token needs a named service account.
    assert_eq!(mutated["spec"]["serviceAccountName"], "default");
    assert!(mutated["metadata"]["annotations"]["sidecar.istio.io/status"].is_string());
    // /metadata/annotations is created for the status and Istio's
    // metrics merge.
    assert_eq!(
        mutated["metadata"]["annotations"]["prometheus.io/port"],
        "15020"
    );
    let wl = args.iter().position(|a| a == "--workload-name").unwrap();
    assert_eq!(args[wl + 1], "bare");
    assert_eq!(mutated["spec"]["volumes"].as_array().unwrap().len(), 4);
}

#[test]
fn overrides_from_annotations() {
    let pod = injected(&mk_pod(
        &[],
        &[
            ("sidecar.istio.io/proxyImage", "example.com/proxy:dev"),
            ("sidecar.istio.io/proxyMemory", "1Gi"),
            ("traffic.sidecar.istio.io/includeInboundPorts", "9080, 9443"),
            ("traffic.sidecar.istio.io/excludeOutboundPorts", "3306"),
        ],
    ));
    let proxy = &pod["spec"]["initContainers"][1];
    assert_eq!(proxy["image"], "example.com/proxy:dev");
    assert_eq!(proxy["resources"]["requests"]["memory"], "1Gi");
    assert_eq!(proxy["restartPolicy"], "Always");
    let init: Vec<&str> = pod["spec"]["initContainers"][0]["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert!(
        init.windows(2)
            .any(|w| w == ["--include-inbound-ports", "9080,9443"]),
        "{init:?}"
    );
    assert!(
        init.windows(2)
            .any(|w| w == ["--exclude-outbound-ports", "3306"]),
        "{init:?}"
    );
}

#[test]
fn bad_annotations_and_name_clashes_are_errors_not_panics() {
    let labels = ns(&[("istio-injection", "enabled")]);
    let config = InjectConfig::default();
    for (key, value) in [
        ("sidecar.istio.io/proxyCPU", "lots"),
        ("sidecar.istio.io/proxyMemory", "1.2.3Gi"),
        ("traffic.sidecar.istio.io/excludeInboundPorts", "http"),
        ("traffic.sidecar.istio.io/includeInboundPorts", "70000"),
        (
            "traffic.sidecar.istio.io/excludeOutboundIPRanges",
            "10.0.0.0/33",
        ),
    ] {
        let err =
            inject_pod(&mk_pod(&[], &[(key, value)]), "bookinfo", &labels, &config).expect_err(key);
        assert_eq!(err.kind(), "annotation", "{key}");
        assert!(err.to_string().contains(key), "{err}");
    }
    let mut pod = mk_pod(&[], &[]);
    pod["spec"]["volumes"] = json!([{"name": "istio-envoy", "emptyDir": {}}]);
    let err = inject_pod(&pod, "bookinfo", &labels, &config).unwrap_err();
    assert_eq!(err.kind(), "name_clash");
    let err = inject_pod(
        &json!({"kind": "Pod", "spec": 3}),
        "bookinfo",
        &labels,
        &config,
    )
    .unwrap_err();
    assert_eq!(err.kind(), "not_a_pod");
}

fn mk_owned_pod(
    labels: &[(&str, &str)],
    owner: Option<(&str, &str)>,
) -> k8s_openapi::api::core::v1::Pod {
    let mut pod = mk_pod(labels, &[]);
    if let Some((kind, name)) = owner {
        pod["metadata"]["ownerReferences"] = json!([
            {"apiVersion": "v1", "kind": "Other", "name": "not-the-controller", "uid": "0"},
            {"apiVersion": "apps/v1", "kind": kind, "name": name, "uid": "1", "controller": true},
        ]);
    }
    serde_json::from_value(pod).unwrap()
}

#[test]
fn the_workload_name_is_the_pods_controller_as_istio_names_it() {
    use template::workload_name;
    let hash = [("pod-template-hash", "5d8b9c7f")];
    let cases = [
        (
            mk_owned_pod(&hash, Some(("ReplicaSet", "reviews-v1-5d8b9c7f"))),
            "reviews-v1",
        ),
        // A ReplicaSet of its own (no hash suffix) is the workload.
        (
            mk_owned_pod(&hash, Some(("ReplicaSet", "standalone-rs"))),
            "standalone-rs",
        ),
        (
            mk_owned_pod(&[], Some(("ReplicaSet", "reviews-v1-5d8b9c7f"))),
            "reviews-v1-5d8b9c7f",
        ),
        (mk_owned_pod(&[], Some(("StatefulSet", "db"))), "db"),
        (mk_owned_pod(&[], Some(("DaemonSet", "agent"))), "agent"),
        (mk_owned_pod(&[], Some(("Job", "migrate"))), "migrate"),
        // A CronJob's Job: `<cronjob>-<scheduled time>`.
        (
            mk_owned_pod(&[], Some(("Job", "backup-1712345678"))),
            "backup",
        ),
        (
            mk_owned_pod(&[], Some(("Job", "backup-12345"))),
            "backup-12345",
        ),
        // No controller: generateName, less a trailing pod-template-hash.
        (mk_owned_pod(&hash, None), "reviews-v1"),
        (mk_owned_pod(&[], None), "reviews-v1-5d8b9c7f"),
    ];
    for (pod, expected) in cases {
        assert_eq!(workload_name(&pod), expected, "{:?}", pod.metadata);
    }
    let named: k8s_openapi::api::core::v1::Pod =
        serde_json::from_value(json!({"metadata": {"name": "bare"}})).unwrap();
    assert_eq!(workload_name(&named), "bare");
    let nameless: k8s_openapi::api::core::v1::Pod =
        serde_json::from_value(json!({"metadata": {}})).unwrap();
    assert_eq!(workload_name(&nameless), "");
}

fn proxy_env(pod: &Value, name: &str) -> Option<String> {
    pod["spec"]["initContainers"][1]["env"]
        .as_array()?
        .iter()
        .find(|e| e["name"] == name)
        .and_then(|e| e["value"].as_str())
        .map(str::to_string)
}

#[test]
fn prometheus_annotations_point_at_the_status_port_and_the_pods_own_move_to_the_proxy() {
    let pod = injected(&mk_pod(
        &[],
        &[
            ("prometheus.io/scrape", "true"),
            ("prometheus.io/port", "8080"),
            ("prometheus.io.path", "/custom"),
        ],
    ));
    let annotations = &pod["metadata"]["annotations"];
    assert_eq!(annotations["prometheus.io/scrape"], "true");
    assert_eq!(annotations["prometheus.io/port"], "15020");
    assert_eq!(annotations["prometheus.io/path"], "/stats/prometheus");
    assert!(
        annotations.get("prometheus.io.path").is_none(),
        "{annotations}"
    );
    assert_eq!(
        proxy_env(&pod, "ISTIO_PROMETHEUS_ANNOTATIONS").as_deref(),
        Some(r#"{"scrape":"true","path":"/custom","port":"8080"}"#)
    );
    let ports = &pod["spec"]["initContainers"][1]["ports"];
    assert_eq!(ports[0]["name"], "http-envoy-prom");
    assert_eq!(ports[0]["containerPort"], 15090);
    assert_eq!(ports[1]["containerPort"], 15020);
    // Probed as Istio's proxy is: Envoy's health listener, 15021.
    let proxy = &pod["spec"]["initContainers"][1];
    for (probe, period, failures) in [("readinessProbe", 15, 4), ("startupProbe", 1, 600)] {
        assert_eq!(proxy[probe]["httpGet"]["path"], "/healthz/ready", "{probe}");
        assert_eq!(proxy[probe]["httpGet"]["port"], 15021, "{probe}");
        assert_eq!(proxy[probe]["initialDelaySeconds"], 0, "{probe}");
        assert_eq!(proxy[probe]["periodSeconds"], period, "{probe}");
        assert_eq!(proxy[probe]["timeoutSeconds"], 3, "{probe}");
        assert_eq!(proxy[probe]["failureThreshold"], failures, "{probe}");
    }

    // Opted out: the Pod's annotations stay, nothing is moved.
    let own = [
        ("prometheus.istio.io/merge-metrics", "false"),
        ("prometheus.io/port", "8080"),
    ];
    let pod = injected(&mk_pod(&[], &own));
    assert_eq!(pod["metadata"]["annotations"]["prometheus.io/port"], "8080");
    assert!(
        pod["metadata"]["annotations"]
            .get("prometheus.io/path")
            .is_none()
    );
    assert_eq!(proxy_env(&pod, "ISTIO_PROMETHEUS_ANNOTATIONS"), None);
    // Without annotations of its own the proxy gets no variable.
    assert_eq!(
        proxy_env(&injected(&mk_pod(&[], &[])), "ISTIO_PROMETHEUS_ANNOTATIONS"),
        None
    );
}

#[test]
fn a_port_name_the_pod_uses_is_a_clash() {
    let mut pod = mk_pod(&[], &[]);
    pod["spec"]["containers"][0]["ports"] =
        json!([{"name": "http-envoy-prom", "containerPort": 9090}]);
    let labels = ns(&[("istio-injection", "enabled")]);
    let err = inject_pod(&pod, "bookinfo", &labels, &InjectConfig::default()).unwrap_err();
    assert_eq!(err.kind(), "name_clash");
    assert!(err.to_string().contains("http-envoy-prom"), "{err}");
}

#[test]
fn quantities() {
    for good in [
        "100m", "1", "0.5", "128Mi", "1Gi", "2e3", "1E-3", "+1k", ".5",
    ] {
        assert!(template::is_quantity(good), "{good}");
    }
    for bad in ["", "m", "1.2.3", "1Gb", "lots", "1e", "1 Gi"] {
        assert!(!template::is_quantity(bad), "{bad}");
    }
}

fn mk_review(operation: &str, namespace: &str, pod: &Value) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "0f2a",
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "requestKind": {"group": "", "version": "v1", "kind": "Pod"},
            "requestResource": {"group": "", "version": "v1", "resource": "pods"},
            "namespace": namespace,
            "operation": operation,
            "userInfo": {"username": "admin"},
            "object": pod,
            "dryRun": false,
        },
    }))
    .unwrap()
}

fn answer(body: &[u8], known: bool) -> Value {
    let lookup =
        |name: &str| (known && name == "bookinfo").then(|| ns(&[("weft-injection", "enabled")]));
    let reply = review::respond(body, &InjectConfig::default(), lookup);
    assert_eq!(reply.status, 200, "{}", reply.body);
    let review: Value = serde_json::from_str(&reply.body).unwrap();
    assert_eq!(review["response"]["uid"], "0f2a");
    assert_eq!(review["response"]["allowed"], true);
    review["response"].clone()
}

#[test]
fn the_review_carries_a_json_patch_for_a_created_pod() {
    let mut pod = mk_pod(&[], &[]);
    pod["metadata"].as_object_mut().unwrap().remove("namespace");
    let response = answer(&mk_review("CREATE", "bookinfo", &pod), true);
    assert_eq!(response["patchType"], "JSONPatch");
    // kube serialises the bytes as a list of numbers, which the apiserver
    // accepts as well as base64 (the e2e test shows it).
    let bytes: Vec<u8> = match &response["patch"] {
        Value::String(text) => base64_decode(text),
        other => serde_json::from_value(other.clone()).unwrap(),
    };
    let patch: json_patch::Patch = serde_json::from_slice(&bytes).unwrap();
    let mut applied = pod.clone();
    json_patch::patch(&mut applied, &patch).unwrap();
    assert!(applied["metadata"]["annotations"]["sidecar.istio.io/status"].is_string());
}

#[test]
fn the_review_allows_without_patch_what_it_does_not_inject() {
    let pod = mk_pod(&[], &[]);
    // An update, an unknown namespace, a bad annotation.
    let response = answer(&mk_review("UPDATE", "bookinfo", &pod), true);
    assert!(response.get("patch").is_none());
    let response = answer(&mk_review("CREATE", "bookinfo", &pod), false);
    assert!(response.get("patch").is_none());
    assert!(
        response["warnings"][0]
            .as_str()
            .unwrap()
            .contains("does not know namespace")
    );
    let bad = mk_pod(&[], &[("sidecar.istio.io/proxyCPU", "lots")]);
    let response = answer(&mk_review("CREATE", "bookinfo", &bad), true);
    assert!(response.get("patch").is_none());
    assert!(
        response["warnings"][0]
            .as_str()
            .unwrap()
            .contains("proxyCPU")
    );
    let reply = review::respond(b"{}", &InjectConfig::default(), |_| None);
    assert_eq!(reply.status, 400);
}

#[test]
fn weft_inject_prints_pods_injected_and_other_documents_unchanged() {
    let text = "\
apiVersion: v1
kind: Service
metadata: {name: reviews}
---
apiVersion: v1
kind: Pod
metadata: {name: a}
spec: {containers: [{name: app, image: app}]}
---
apiVersion: v1
kind: Pod
metadata: {name: b, labels: {sidecar.istio.io/inject: 'false'}}
spec: {containers: [{name: app, image: app}]}
";
    let labels = ns(&[("weft-injection", "enabled")]);
    let out =
        documents::inject_documents(text, "default", &labels, &InjectConfig::default()).unwrap();
    assert_eq!(
        out.yaml.matches("name: istio-proxy").count(),
        1,
        "{}",
        out.yaml
    );
    assert!(
        out.yaml.starts_with("apiVersion: v1\nkind: Service"),
        "{}",
        out.yaml
    );
    assert_eq!(out.notes.len(), 1);
    assert!(out.notes[0].contains("default/b"), "{:?}", out.notes);
}

fn base64_decode(text: &str) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::new();
    let mut buffer = 0u32;
    let mut bits = 0;
    for byte in text.bytes().filter(|b| *b != b'=') {
        let value = ALPHABET.iter().position(|a| *a == byte).unwrap() as u32;
        buffer = (buffer << 6) | value;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
            buffer &= (1 << bits) - 1;
        }
    }
    out
}
