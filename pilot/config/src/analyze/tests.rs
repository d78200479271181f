use std::sync::Arc;

use weft_model::MeshConfig;

use super::*;
use crate::split_documents;

fn analyze_text(text: &str) -> Analysis {
    analyze(
        split_documents("t.yaml", text),
        Arc::new(MeshConfig::default()),
    )
}

#[test]
fn a_finding_prints_like_istioctl() {
    let analysis = analyze_text(
        "apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec:
  selector: {app: web}
  ports: [{name: web, port: 80}]
",
    );
    let lines: Vec<String> = analysis.findings.iter().map(ToString::to_string).collect();
    assert_eq!(
        lines,
        [
            "Warning [WA0301] (Service shop/web) spec.ports[0].name: port 80 is named \"web\", which does not give its protocol, and has no appProtocol; its traffic is treated as opaque TCP. Fix: name the port <protocol>[-<suffix>] (e.g. http-web, grpc-web, tcp-web) or set appProtocol: http (t.yaml: document 0)"
        ]
    );
    assert!(!analysis.fails(Severity::Error));
    assert!(analysis.fails(Severity::Warning));
}

#[test]
fn every_code_is_distinct() {
    let codes: std::collections::BTreeSet<&str> = Code::ALL.iter().map(|c| c.code()).collect();
    assert_eq!(codes.len(), Code::ALL.len());
}

#[test]
fn a_typo_suggests_the_known_annotation() {
    let analysis = analyze_text(
        "apiVersion: v1
kind: Pod
metadata:
  name: p
  namespace: shop
  annotations: {sidecar.istio.io/injet: \"true\"}
spec: {containers: [{name: app}]}
",
    );
    let typo = analysis
        .findings
        .iter()
        .find(|f| f.code == Code::UnknownAnnotation)
        .map(|f| f.fix.clone());
    assert_eq!(
        typo.as_deref(),
        Some("did you mean sidecar.istio.io/inject? Rename it, or remove it")
    );
}
