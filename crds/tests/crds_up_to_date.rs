//! The CRD YAML shipped in charts/weft/crds must be exactly what `crdgen`
//! writes, and the generated schemas must be structural (the apiserver
//! rejects anything else).
#![cfg(feature = "kube")]
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::path::PathBuf;

use serde_json::Value;

const FIX: &str = "run: cargo run -p weft-crds --bin crdgen";

fn crd_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../charts/weft/crds")
}

#[test]
fn chart_crds_match_crdgen_output() {
    let dir = crd_dir();
    let crds = weft_crds::crds();
    let expected: BTreeSet<String> = crds.iter().map(weft_crds::crd_file_name).collect();
    let found: BTreeSet<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}; {FIX}", dir.display()))
        .map(|entry| {
            entry
                .expect("dir entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .filter(|name| name.ends_with(".yaml") || name.ends_with(".yml"))
        .collect();
    let missing: Vec<_> = expected.difference(&found).collect();
    let extra: Vec<_> = found.difference(&expected).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "CRD files in {} are out of date (missing {missing:?}, unexpected {extra:?}); {FIX}",
        dir.display()
    );

    for crd in &crds {
        let name = weft_crds::crd_file_name(crd);
        let want = weft_crds::render_crd_yaml(crd).expect("renders");
        let path = dir.join(&name);
        let have = std::fs::read_to_string(&path).expect("readable");
        assert!(
            have == want,
            "{} differs from what crdgen would write; {FIX}",
            path.display()
        );
    }
}

#[test]
fn crds_serve_three_versions_and_store_v1() {
    let all = weft_crds::crds();
    let (crds, security) = all.split_at(5);
    let kinds: Vec<_> = crds.iter().map(|c| c.spec.names.kind.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "VirtualService",
            "DestinationRule",
            "ServiceEntry",
            "Gateway",
            "Sidecar"
        ]
    );
    for crd in crds {
        assert_eq!(crd.spec.group, "networking.istio.io");
        assert_eq!(crd.spec.scope, "Namespaced");
        let names: Vec<_> = crd.spec.versions.iter().map(|v| v.name.as_str()).collect();
        assert_eq!(names, ["v1alpha3", "v1beta1", "v1"]);
        let storage: Vec<_> = crd.spec.versions.iter().filter(|v| v.storage).collect();
        assert_eq!(storage.len(), 1);
        assert_eq!(storage[0].name, "v1");
        assert!(crd.spec.versions.iter().all(|v| v.served));
        let schema = |i: usize| serde_json::to_value(&crd.spec.versions[i].schema).expect("json");
        assert_eq!(schema(0), schema(2), "one schema for all versions");
        assert_eq!(schema(1), schema(2), "one schema for all versions");
        assert!(
            crd.spec
                .versions
                .iter()
                .all(|v| { v.subresources.as_ref().is_some_and(|s| s.status.is_some()) })
        );
        let categories = crd.spec.names.categories.clone().unwrap_or_default();
        assert_eq!(categories, ["istio-io", "networking-istio-io"]);
    }
    let [pa, ra, ap, _quota, _telemetry] = security else {
        panic!("three security CRDs, Quota and Telemetry: {security:?}")
    };
    for (crd, kind, plural, short, columns) in [
        (
            pa,
            "PeerAuthentication",
            "peerauthentications",
            "pa",
            vec!["Mode", "Ready", "Reason", "Age"],
        ),
        (
            ra,
            "RequestAuthentication",
            "requestauthentications",
            "ra",
            vec!["Ready", "Reason", "Age"],
        ),
        (
            ap,
            "AuthorizationPolicy",
            "authorizationpolicies",
            "ap",
            vec!["Action", "Ready", "Reason", "Age"],
        ),
    ] {
        assert_eq!(crd.spec.names.kind, kind);
        assert_eq!(crd.spec.group, "security.istio.io");
        assert_eq!(crd.spec.names.plural, plural);
        assert_eq!(crd.spec.scope, "Namespaced");
        let names: Vec<_> = crd.spec.versions.iter().map(|v| v.name.as_str()).collect();
        assert_eq!(names, ["v1beta1", "v1"]);
        assert!(crd.spec.versions.iter().all(|v| v.served));
        assert!(crd.spec.versions[1].storage && !crd.spec.versions[0].storage);
        assert_eq!(
            serde_json::to_value(&crd.spec.versions[0].schema).expect("json"),
            serde_json::to_value(&crd.spec.versions[1].schema).expect("json"),
            "one schema for both versions"
        );
        assert_eq!(
            crd.spec.names.short_names.clone().unwrap_or_default(),
            [short]
        );
        let crd_columns: Vec<String> = crd.spec.versions[0]
            .additional_printer_columns
            .clone()
            .unwrap_or_default()
            .into_iter()
            .map(|c| c.name)
            .collect();
        assert_eq!(crd_columns, columns);
    }
    let short: Vec<_> = crds
        .iter()
        .map(|c| c.spec.names.short_names.clone().unwrap_or_default())
        .collect();
    assert_eq!(
        short,
        [
            vec!["vs"],
            vec!["dr"],
            vec!["se"],
            vec!["gw"],
            Vec::<&str>::new()
        ]
    );
    let plural: Vec<_> = crds.iter().map(|c| c.spec.names.plural.as_str()).collect();
    assert_eq!(
        plural,
        [
            "virtualservices",
            "destinationrules",
            "serviceentries",
            "gateways",
            "sidecars"
        ]
    );
    let columns = |i: usize| -> Vec<String> {
        crds[i].spec.versions[0]
            .additional_printer_columns
            .clone()
            .unwrap_or_default()
            .into_iter()
            .map(|c| c.name)
            .collect()
    };
    // Istio's columns, then Weft's status, then Age.
    assert_eq!(columns(0), ["Gateways", "Hosts", "Ready", "Reason", "Age"]);
    assert_eq!(columns(1), ["Host", "Ready", "Reason", "Age"]);
    assert_eq!(
        columns(2),
        ["Hosts", "Location", "Resolution", "Ready", "Reason", "Age"]
    );
    assert_eq!(columns(3), ["Ready", "Reason", "Age"]);
    assert_eq!(columns(4), ["Ready", "Reason", "Age"]);
}

#[test]
fn telemetry_is_served_as_v1alpha1_and_v1_storing_v1() {
    let all = weft_crds::crds();
    let telemetry = all
        .iter()
        .find(|c| c.spec.names.kind == "Telemetry")
        .expect("a Telemetry CRD");
    assert_eq!(telemetry.spec.group, "telemetry.istio.io");
    assert_eq!(telemetry.spec.names.plural, "telemetries");
    assert_eq!(telemetry.spec.scope, "Namespaced");
    let names: Vec<_> = telemetry
        .spec
        .versions
        .iter()
        .map(|v| v.name.as_str())
        .collect();
    assert_eq!(names, ["v1alpha1", "v1"]);
    assert!(telemetry.spec.versions.iter().all(|v| v.served));
    assert!(telemetry.spec.versions[1].storage && !telemetry.spec.versions[0].storage);
    assert_eq!(
        serde_json::to_value(&telemetry.spec.versions[0].schema).expect("json"),
        serde_json::to_value(&telemetry.spec.versions[1].schema).expect("json"),
        "one schema for both versions"
    );
    assert_eq!(
        telemetry.spec.names.categories.clone().unwrap_or_default(),
        ["istio-io", "telemetry-istio-io"]
    );
}

#[test]
fn quota_is_served_as_policy_weft_dev_v1alpha1() {
    let all = weft_crds::crds();
    let quota = all
        .iter()
        .find(|c| c.spec.names.kind == "Quota")
        .expect("a Quota CRD");
    assert_eq!(quota.spec.group, "policy.weft.dev");
    assert_eq!(quota.spec.names.plural, "quotas");
    assert_eq!(quota.spec.scope, "Namespaced");
    let names: Vec<_> = quota
        .spec
        .versions
        .iter()
        .map(|v| v.name.as_str())
        .collect();
    assert_eq!(names, ["v1alpha1"]);
    assert!(quota.spec.versions[0].served && quota.spec.versions[0].storage);
    assert!(
        quota.spec.versions[0]
            .subresources
            .as_ref()
            .is_some_and(|s| s.status.is_some())
    );
    let columns: Vec<String> = quota.spec.versions[0]
        .additional_printer_columns
        .clone()
        .unwrap_or_default()
        .into_iter()
        .map(|c| c.name)
        .collect();
    assert_eq!(columns, ["Host", "Scope", "Ready", "Reason", "Age"]);
}

/// Checks the rules of a Kubernetes structural schema that a generator can
/// get wrong: every node has a `type` (or preserves unknown fields), no
/// `$ref`, and `oneOf` / `anyOf` / `allOf` / `not` branches only constrain
/// values (no `type`, no properties the parent does not declare).
fn check_structural(node: &Value, path: &str, errors: &mut Vec<String>) {
    let Some(obj) = node.as_object() else {
        errors.push(format!("{path}: schema is not an object"));
        return;
    };
    if obj.contains_key("$ref") {
        errors.push(format!("{path}: $ref is not allowed"));
    }
    let open = obj.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true))
        || obj.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true));
    if !obj.contains_key("type") && !open {
        errors.push(format!("{path}: no type"));
    }
    let parent_props: BTreeSet<&str> = obj
        .get("properties")
        .and_then(Value::as_object)
        .map(|p| p.keys().map(String::as_str).collect())
        .unwrap_or_default();
    for key in ["oneOf", "anyOf", "allOf"] {
        if let Some(branches) = obj.get(key).and_then(Value::as_array) {
            for (i, branch) in branches.iter().enumerate() {
                check_branch(branch, &parent_props, &format!("{path}.{key}[{i}]"), errors);
            }
        }
    }
    if let Some(not) = obj.get("not") {
        check_branch(not, &parent_props, &format!("{path}.not"), errors);
    }
    if let Some(props) = obj.get("properties").and_then(Value::as_object) {
        for (name, child) in props {
            check_structural(child, &format!("{path}.{name}"), errors);
        }
    }
    if let Some(items) = obj.get("items") {
        check_structural(items, &format!("{path}[]"), errors);
    }
    if let Some(additional) = obj.get("additionalProperties")
        && additional.is_object()
    {
        check_structural(additional, &format!("{path}{{}}"), errors);
    }
}

fn check_branch(
    branch: &Value,
    parent_props: &BTreeSet<&str>,
    path: &str,
    errors: &mut Vec<String>,
) {
    let Some(obj) = branch.as_object() else {
        errors.push(format!("{path}: branch is not an object"));
        return;
    };
    for forbidden in [
        "type",
        "$ref",
        "additionalProperties",
        "items",
        "description",
        "nullable",
        "default",
    ] {
        if obj.contains_key(forbidden) {
            errors.push(format!("{path}: branch sets {forbidden}"));
        }
    }
    if let Some(props) = obj.get("properties").and_then(Value::as_object) {
        for name in props.keys() {
            if !parent_props.contains(name.as_str()) {
                errors.push(format!("{path}: branch introduces property {name}"));
            }
        }
    }
    for key in ["oneOf", "anyOf", "allOf"] {
        if let Some(branches) = obj.get(key).and_then(Value::as_array) {
            for (i, nested) in branches.iter().enumerate() {
                check_branch(nested, parent_props, &format!("{path}.{key}[{i}]"), errors);
            }
        }
    }
    if let Some(not) = obj.get("not") {
        check_branch(not, parent_props, &format!("{path}.not"), errors);
    }
}

#[test]
fn schemas_are_structural() {
    for crd in weft_crds::crds() {
        for version in &crd.spec.versions {
            let schema = version
                .schema
                .as_ref()
                .and_then(|s| s.open_api_v3_schema.as_ref())
                .expect("schema present");
            let value = serde_json::to_value(schema).expect("json");
            let mut errors = Vec::new();
            check_structural(&value, &crd.spec.names.kind, &mut errors);
            assert!(
                errors.is_empty(),
                "{} {}:\n{}",
                crd.spec.names.kind,
                version.name,
                errors.join("\n")
            );
        }
    }
}

#[test]
fn structural_check_catches_violations() {
    let bad = serde_json::json!({
        "type": "object",
        "properties": {
            "m": {
                "type": "object",
                "properties": {"a": {"type": "string"}},
                "oneOf": [{"type": "object", "properties": {"b": {"type": "string"}}}]
            },
            "r": {"$ref": "#/definitions/X"}
        }
    });
    let mut errors = Vec::new();
    check_structural(&bad, "root", &mut errors);
    assert!(
        errors.iter().any(|e| e.contains("branch sets type")),
        "{errors:?}"
    );
    assert!(
        errors.iter().any(|e| e.contains("introduces property b")),
        "{errors:?}"
    );
    assert!(errors.iter().any(|e| e.contains("$ref")), "{errors:?}");
}

#[test]
fn string_match_schema_keeps_istio_oneof() {
    let vs = &weft_crds::crds()[0];
    let schema = serde_json::to_value(&vs.spec.versions[2].schema).expect("json");
    let uri = &schema["openAPIV3Schema"]["properties"]["spec"]["properties"]["http"]["items"]["properties"]
        ["match"]["items"]["properties"]["uri"];
    assert_eq!(uri["type"], "object");
    assert_eq!(uri["oneOf"].as_array().map(Vec::len), Some(4), "{uri}");
    let timeout = &schema["openAPIV3Schema"]["properties"]["spec"]["properties"]["http"]["items"]["properties"]
        ["timeout"];
    assert_eq!(timeout["type"], "string");
}
