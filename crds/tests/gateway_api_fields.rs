//! The Gateway API types have every field of the CRDs the chart vendors
//! (`charts/weft/gateway-api/`, sigs.k8s.io/gateway-api v1.5.1's standard
//! channel): each property of a CRD's `spec` schema, at any depth, is a
//! property of the type's schema, so YAML written for the Gateway API
//! parses here whole.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use schemars::{JsonSchema, schema_for};
use serde_json::Value;
use weft_crds::gateway_api::{GatewayClassSpec, GatewaySpec, HttpRouteSpec, ReferenceGrantSpec};

/// The `spec` schema of the storage version of the CRD in `file`.
fn upstream_spec(file: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../charts/weft/gateway-api")
        .join(file);
    let crd: Value = serde_yaml::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let version = crd["spec"]["versions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["storage"] == true)
        .unwrap();
    version["schema"]["openAPIV3Schema"]["properties"]["spec"].clone()
}

/// `schema` with `$ref`s into `root`'s `$defs` followed and `Option`'s
/// `anyOf [T, null]` reduced to `T`.
fn resolve<'a>(root: &'a Value, schema: &'a Value) -> &'a Value {
    if let Some(reference) = schema.get("$ref").and_then(Value::as_str) {
        let name = reference.trim_start_matches("#/$defs/");
        return resolve(root, &root["$defs"][name]);
    }
    for key in ["anyOf", "oneOf", "allOf"] {
        if let Some(options) = schema.get(key).and_then(Value::as_array)
            && let Some(object) = options
                .iter()
                .find(|o| o.get("type") != Some(&Value::from("null")))
        {
            return resolve(root, object);
        }
    }
    schema
}

/// The paths under `upstream` that `ours` lacks.
fn missing(root: &Value, upstream: &Value, ours: &Value, path: &str, out: &mut Vec<String>) {
    let ours = resolve(root, ours);
    if let Some(items) = upstream.get("items") {
        if let Some(our_items) = ours.get("items") {
            missing(root, items, our_items, &format!("{path}[]"), out);
        } else {
            out.push(format!("{path}[] (not a list here)"));
        }
        return;
    }
    let Some(properties) = upstream.get("properties").and_then(Value::as_object) else {
        return;
    };
    for (name, property) in properties {
        let field = format!("{path}.{name}");
        match ours.get("properties").and_then(|p| p.get(name)) {
            Some(our_property) => missing(root, property, our_property, &field, out),
            None => out.push(field),
        }
    }
}

fn check<T: JsonSchema>(file: &str) {
    let ours = serde_json::to_value(schema_for!(T)).unwrap();
    let mut out = Vec::new();
    missing(&ours, &upstream_spec(file), &ours, "spec", &mut out);
    assert!(
        out.is_empty(),
        "{file}: fields the Rust type lacks: {out:#?}"
    );
}

#[test]
fn every_field_of_the_vendored_crds_has_a_rust_field() {
    check::<GatewayClassSpec>("gateway.networking.k8s.io_gatewayclasses.yaml");
    check::<GatewaySpec>("gateway.networking.k8s.io_gateways.yaml");
    check::<HttpRouteSpec>("gateway.networking.k8s.io_httproutes.yaml");
    check::<ReferenceGrantSpec>("gateway.networking.k8s.io_referencegrants.yaml");
}

#[test]
fn the_check_sees_a_missing_field() {
    let ours = serde_json::to_value(schema_for!(ReferenceGrantSpec)).unwrap();
    let mut upstream = upstream_spec("gateway.networking.k8s.io_referencegrants.yaml");
    upstream["properties"]["to"]["items"]["properties"]["section"] =
        serde_json::json!({"type": "string"});
    let mut out = Vec::new();
    missing(&ours, &upstream, &ours, "spec", &mut out);
    assert_eq!(out, ["spec.to[].section"]);
}
