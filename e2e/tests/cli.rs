//! The `weft` command line as a user meets it: `--help`, a bootstrap that
//! the real Envoy accepts, and clear errors for bad arguments.

#![allow(clippy::unwrap_used)]

use std::process::Command;

use weft_e2e::{envoy_binary, output_text, weft_binary};

fn weft(args: &[&str]) -> std::process::Output {
    Command::new(weft_binary().unwrap())
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn help_lists_the_subcommands() {
    let out = weft(&["--help"]);
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for needle in ["standalone", "bootstrap"] {
        assert!(
            help.contains(needle),
            "`weft --help` mentions {needle}: {help}"
        );
    }
    let out = weft(&["standalone", "--help"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("--config-dir"));
}

#[test]
fn the_bootstrap_passes_envoys_own_validation() {
    let out = weft(&[
        "bootstrap",
        "--node-id",
        "client-1",
        "--xds-address",
        "127.0.0.1:15010",
        "--outbound-port",
        "15080",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bootstrap.yaml");
    std::fs::write(&path, &out.stdout).unwrap();
    let validate = Command::new(envoy_binary().unwrap())
        .args(["--mode", "validate", "--disable-hot-restart", "-c"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        validate.status.success(),
        "envoy --mode validate rejected the bootstrap:\n{}\n{}",
        String::from_utf8_lossy(&validate.stdout),
        String::from_utf8_lossy(&validate.stderr)
    );
}

#[test]
fn bad_arguments_are_refused_with_a_reason() {
    let out = weft(&["bootstrap", "--node-id", "x", "--xds-address", "no-port"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("--xds-address \"no-port\" must be HOST:PORT")
    );
    let missing = tempfile::tempdir().unwrap().path().join("absent");
    let out = weft(&["standalone", "--config-dir", missing.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not a directory"));
}

/// A VirtualService splitting `reviews` by `weights` (document 0), its
/// ServiceEntry and its DestinationRule.
fn reviews_docs(weights: &[(&str, u32)]) -> String {
    use weft_e2e::yaml::{mk_destination_rule, mk_weighted_virtual_service, multi_doc};
    const SERVICE_ENTRY: &str = "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: reviews
  namespace: default
spec:
  hosts:
  - reviews.default.svc.cluster.local
  resolution: STATIC
  ports:
  - number: 9080
    name: http
    protocol: HTTP
  endpoints:
  - address: 127.0.0.1
    labels:
      version: v1
";
    multi_doc(&[
        mk_weighted_virtual_service("reviews", "default", weights),
        SERVICE_ENTRY.to_string(),
        mk_destination_rule("reviews", "default", &["v1", "v2"]),
    ])
}

#[test]
fn validate_accepts_a_good_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("reviews.yaml");
    std::fs::write(&path, reviews_docs(&[("v1", 80), ("v2", 20)])).unwrap();
    let out = weft(&["validate", "-f", path.to_str().unwrap()]);
    let text = output_text(&out);
    assert!(out.status.success(), "exit 0: {text}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("ok: 3 resources"),
        "{text}"
    );
}

#[test]
fn validate_prints_each_error_like_standalone_and_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad-weights.yaml");
    std::fs::write(&path, reviews_docs(&[("v1", 100), ("v2", 50)])).unwrap();
    let out = weft(&["validate", "-f", path.to_str().unwrap()]);
    let text = output_text(&out);
    assert_eq!(out.status.code(), Some(1), "exit 1: {text}");
    let line = text
        .lines()
        .find(|l| l.contains("spec.http[0].route"))
        .unwrap_or_else(|| panic!("an error line names the field: {text}"));
    for needle in [
        "bad-weights.yaml",
        "document 0",
        "VirtualService default/reviews",
        "sum to 150",
    ] {
        assert!(line.contains(needle), "the line names {needle:?}: {line}");
    }
    assert!(!text.contains("ok:"), "{text}");
}

/// A document whose spec does not parse is named by its kind, namespace
/// and name, whatever its kind (the security kinds and Quota were once
/// reported as broken files with no name).
#[test]
fn validate_names_malformed_documents_of_every_kind() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("malformed.yaml");
    let documents = [
        ("security.istio.io/v1", "AuthorizationPolicy"),
        ("security.istio.io/v1", "PeerAuthentication"),
        ("policy.weft.dev/v1alpha1", "Quota"),
        ("telemetry.istio.io/v1", "Telemetry"),
        ("networking.istio.io/v1", "VirtualService"),
    ]
    .map(|(api_version, kind)| {
        format!("apiVersion: {api_version}\nkind: {kind}\nmetadata: {{name: broken, namespace: prod}}\nspec: 42\n")
    });
    std::fs::write(&path, documents.join("---\n")).unwrap();
    let out = weft(&["validate", "-f", path.to_str().unwrap()]);
    let text = output_text(&out);
    assert_eq!(out.status.code(), Some(1), "exit 1: {text}");
    for (document, kind) in [
        "AuthorizationPolicy",
        "PeerAuthentication",
        "Quota",
        "Telemetry",
        "VirtualService",
    ]
    .iter()
    .enumerate()
    {
        let needle = format!("document {document}: {kind} prod/broken: spec: ");
        assert!(text.contains(&needle), "names {needle:?}: {text}");
    }
    assert!(text.contains("failed: 5 errors in 5 resources"), "{text}");
}

#[test]
fn validate_accepts_the_bookinfo_example_directory() {
    let bookinfo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/bookinfo");
    let out = weft(&["validate", "-f", bookinfo.to_str().unwrap()]);
    let text = output_text(&out);
    assert!(out.status.success(), "examples/bookinfo is clean: {text}");
    assert!(text.contains("ok: "), "{text}");
}

#[test]
fn validate_accepts_the_policy_examples_with_bookinfo() {
    let examples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let path = |name: &str| examples.join(name).display().to_string();
    let count = |args: &[&str]| -> usize {
        let out = weft(args);
        let text = output_text(&out);
        assert!(out.status.success(), "the examples are clean: {text}");
        text.split("ok: ")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no count in {text}"))
    };
    let bookinfo = count(&["validate", "-f", &path("bookinfo")]);
    let with_policies = count(&[
        "validate",
        "-f",
        &path("bookinfo"),
        "-f",
        &path("quota.yaml"),
        "-f",
        &path("authorization-policy.yaml"),
        "-f",
        &path("telemetry"),
        "-f",
        &path("jwt"),
        "--mesh-config",
        &path("mesh-config.yaml"),
    ]);
    // One Quota, two AuthorizationPolicies, eleven Telemetries and the
    // JWT examples' five RequestAuthentications and four
    // AuthorizationPolicies (Istio's documented examples, the Telemetries'
    // providers defined by the mesh config), all accepted.
    assert_eq!(with_policies, bookinfo + 3 + 11 + 9);
}

/// Without the mesh config that defines it, a provider a Telemetry names
/// is an error; a bad mesh config is refused naming its field.
#[test]
fn validate_checks_telemetry_providers_against_the_mesh_config() {
    let examples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let tracing = examples.join("telemetry/tracing.yaml");
    // A provider the mesh config may define later is a warning, as the
    // webhook treats it; --strict makes it an error.
    let out = weft(&["validate", "-f", tracing.to_str().unwrap()]);
    let text = output_text(&out);
    assert_eq!(out.status.code(), Some(0), "exit 0: {text}");
    assert!(
        text.contains("warning: ") && text.contains("Telemetry baz/tracing-default: spec.tracing[0].providers[0].name: the mesh config defines no provider \"zipkin\""),
        "{text}"
    );
    let out = weft(&["validate", "--strict", "-f", tracing.to_str().unwrap()]);
    let text = output_text(&out);
    assert_eq!(out.status.code(), Some(1), "exit 1 with --strict: {text}");
    assert!(text.contains("error (--strict): "), "{text}");

    let dir = tempfile::tempdir().unwrap();
    let mesh = dir.path().join("mesh.yaml");
    std::fs::write(
        &mesh,
        "extensionProviders:\n- name: zipkin\n  zipkin: {service: zipkin.istio-system.svc.cluster.local, port: [9411]}\n",
    )
    .unwrap();
    let out = weft(&[
        "validate",
        "--mesh-config",
        mesh.to_str().unwrap(),
        "-f",
        tracing.to_str().unwrap(),
    ]);
    let text = output_text(&out);
    assert_eq!(out.status.code(), Some(1), "exit 1: {text}");
    assert!(
        text.contains("mesh.yaml: extensionProviders[0].zipkin.port: invalid type: sequence"),
        "{text}"
    );
}

/// A Telemetry Weft cannot honour is refused, each error naming its field.
#[test]
fn validate_refuses_a_bad_telemetry_naming_the_fields() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("telemetry.yaml");
    std::fs::write(
        &path,
        "apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: bad, namespace: prod}
spec:
  metrics:
  - providers: [{name: stackdriver}]
    overrides:
    - match: {metric: GRPC_REQUEST_MESSAGES}
    - tagOverrides:
        response_code: {operation: REMOVE, value: response.code}
  accessLogging:
  - filter: {expression: 'response.code >= (400'}
",
    )
    .unwrap();
    let out = weft(&["validate", "-f", path.to_str().unwrap()]);
    let text = output_text(&out);
    assert_eq!(out.status.code(), Some(1), "exit 1: {text}");
    // The metric Weft does not report is valid Istio config: a warning.
    assert!(
        text.contains("warning: ") && text.contains("Telemetry prod/bad: spec.metrics[0].overrides[0].match.metric: the gRPC message metrics"),
        "{text}"
    );
    for field in [
        "spec.metrics[0].overrides[1].tagOverrides[response_code].value: must not be set",
        "spec.accessLogging[0].filter.expression: \"response.code >= (400\" is not a CEL expression",
    ] {
        let needle = format!("Telemetry prod/bad: {field}");
        assert!(text.contains(&needle), "names {needle:?}: {text}");
    }
    assert!(
        text.contains("failed: 2 errors in 1 resources, 1 warning"),
        "{text}"
    );
}

/// An app's VirtualServices alone (its DestinationRule in another file)
/// pass with warnings; the Deployment and Service beside them are skipped
/// and counted, the Service's port name checked. `--strict` fails.
#[test]
fn validate_passes_an_apps_virtual_services_with_warnings() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.yaml");
    std::fs::write(
        &path,
        "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: {host: reviews, subset: v1}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: reviews, namespace: default}
spec:
  selector: {matchLabels: {app: reviews}}
  template:
    metadata: {labels: {app: reviews}}
    spec: {containers: [{name: reviews, image: reviews}]}
---
apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: default}
spec:
  selector: {app: reviews}
  ports: [{name: web, port: 9080}]
",
    )
    .unwrap();
    let out = weft(&["validate", "-f", path.to_str().unwrap()]);
    let text = output_text(&out);
    assert_eq!(out.status.code(), Some(0), "exit 0: {text}");
    for needle in [
        "warning: ",
        "VirtualService default/reviews: spec.http[0].route[0].destination.subset: subset v1 is not defined by any DestinationRule",
        "Service default/reviews: spec.ports[0].name: port 9080 is named \"web\"",
        "ok: 1 resources, 2 warnings, 2 documents of other kinds (Deployment: 1, Service: 1) skipped",
    ] {
        assert!(text.contains(needle), "names {needle:?}: {text}");
    }
    let out = weft(&["validate", "--strict", "-f", path.to_str().unwrap()]);
    let text = output_text(&out);
    assert_eq!(out.status.code(), Some(1), "exit 1 with --strict: {text}");
    assert!(
        text.contains("error (--strict): 2 documents of other kinds (Deployment: 1, Service: 1) not served by Weft"),
        "{text}"
    );
    assert!(text.contains("failed: 3 errors in 1 resources"), "{text}");
}

/// The analysis fixtures of weft-config, through the real binary.
fn fixture(name: &str) -> String {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../pilot/config/tests/analyze")
        .join(name)
        .display()
        .to_string()
}

#[test]
fn analyze_prints_findings_like_istioctl_and_exits_79_on_errors() {
    let out = weft(&["analyze", &fixture("subset-not-defined.yaml")]);
    let text = output_text(&out);
    assert_eq!(out.status.code(), Some(79), "exit 79: {text}");
    assert!(
        text.contains("Error [WA0103] (VirtualService default/reviews) spec.http[0].route[1].destination.subset: subset v2 is not defined by DestinationRule default/reviews"),
        "{text}"
    );
    assert!(text.contains(". Fix: define the subset"), "{text}");
    assert!(
        text.contains("1 error, 0 warnings, 0 infos in 2 mesh resources and 1 Kubernetes object."),
        "{text}"
    );

    // Warnings alone pass, unless the threshold says otherwise.
    let out = weft(&["analyze", &fixture("port-name.yaml")]);
    let text = output_text(&out);
    assert_eq!(out.status.code(), Some(0), "exit 0: {text}");
    assert!(
        text.contains("Warning [WA0301] (Service default/web) spec.ports[1].name"),
        "{text}"
    );
    let out = weft(&[
        "analyze",
        "--failure-threshold",
        "warning",
        &fixture("port-name.yaml"),
    ]);
    assert_eq!(out.status.code(), Some(79), "{}", output_text(&out));

    let bookinfo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/bookinfo");
    let out = weft(&["analyze", bookinfo.to_str().unwrap()]);
    let text = output_text(&out);
    assert_eq!(out.status.code(), Some(0), "exit 0: {text}");
    assert!(
        text.contains("No issues found in 12 mesh resources"),
        "{text}"
    );

    let out = weft(&["analyze"]);
    assert_eq!(out.status.code(), Some(1), "nothing to analyse");
    assert!(output_text(&out).contains("nothing to analyse"));
}

#[test]
fn analyze_prints_json() {
    let out = weft(&[
        "analyze",
        "-o",
        "json",
        &fixture("pod-missing-proxy.yaml"),
        &fixture("destination-host-not-found.yaml"),
    ]);
    assert_eq!(out.status.code(), Some(79), "{}", output_text(&out));
    let findings: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let findings = findings.as_array().unwrap();
    let codes: Vec<(&str, &str, &str)> = findings
        .iter()
        .map(|f| {
            (
                f["code"].as_str().unwrap(),
                f["severity"].as_str().unwrap(),
                f["field"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        codes,
        [
            ("WA0101", "Error", "spec.http[0].route[0].destination.host"),
            ("WA0202", "Warning", "spec.containers"),
        ]
    );
    assert_eq!(findings[0]["istio"], "IST0101");
    assert_eq!(findings[1]["resource"]["name"], "web-1");
    assert!(
        findings[1]["fix"]
            .as_str()
            .unwrap()
            .contains("rollout restart")
    );
}

/// A bad RequestAuthentication or end-user rule is refused, naming the
/// field, as Istio's validation would.
#[test]
fn validate_refuses_bad_jwt_rules_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("jwt.yaml");
    std::fs::write(
        &file,
        "apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: bad, namespace: foo}
spec:
  jwtRules:
  - jwksUri: https://example.com/jwks.json
    jwks: '{\"keys\": []}'
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: bad, namespace: foo}
spec:
  rules:
  - from: [{source: {requestPrincipals: ['a*b']}}]
    when: [{key: 'request.auth.claims[]', values: [x]}]
",
    )
    .unwrap();
    let out = weft(&["validate", "-f", file.to_str().unwrap()]);
    let text = output_text(&out);
    assert_ne!(out.status.code(), Some(0), "{text}");
    for field in [
        "RequestAuthentication foo/bad: spec.jwtRules[0].issuer",
        "RequestAuthentication foo/bad: spec.jwtRules[0].jwksUri: jwks and jwksUri cannot both be set",
        "RequestAuthentication foo/bad: spec.jwtRules[0].jwks",
        "AuthorizationPolicy foo/bad: spec.rules[0].from[0].source.requestPrincipals[0]",
        "AuthorizationPolicy foo/bad: spec.rules[0].when[0].key",
    ] {
        assert!(text.contains(field), "{field} in {text}");
    }
}
