//! What the parsing tests share: YAML to a document, and the round-trip
//! check (parse, serialize, compare with the input's spec, reparse).
#![allow(clippy::expect_used, clippy::unwrap_used, dead_code)]

use serde_json::Value;
use weft_crds::{IstioDuration, MeshDocument};

pub fn value(yaml: &str) -> Value {
    serde_yaml::from_str(yaml).expect("valid YAML")
}

pub fn doc(yaml: &str) -> MeshDocument {
    MeshDocument::from_value(value(yaml)).unwrap_or_else(|e| panic!("{e}"))
}

/// Serializing the spec and parsing it again gives the same spec, and the
/// serialized form equals the input `spec` except for fields the input sets
/// to their proto zero value (`weight: 0`) — none in these examples — and
/// the deprecated `mirror_percent` spelling.
pub fn assert_round_trip(yaml: &str) {
    let parsed = doc(yaml);
    let spec = parsed.resource.spec_value().expect("serializes");
    let mut input = value(yaml)["spec"].clone();
    rename_legacy_keys(&mut input);
    assert_eq!(
        normalize(spec.clone()),
        normalize(input),
        "round trip changes the spec"
    );
    let again =
        MeshDocument::from_value(parsed.to_value("v1").expect("to_value")).expect("reparse");
    assert_eq!(again, parsed);
}

fn rename_legacy_keys(v: &mut Value) {
    match v {
        Value::Object(map) => {
            if let Some(p) = map.remove("mirror_percent") {
                map.insert("mirrorPercent".into(), p);
            }
            map.values_mut().for_each(rename_legacy_keys);
        }
        Value::Array(items) => items.iter_mut().for_each(rename_legacy_keys),
        _ => {}
    }
}

/// Durations print canonically (`1h` -> `1h0m0s`) and YAML integers may be
/// read as floats; compare them by meaning.
fn normalize(v: Value) -> Value {
    match v {
        Value::String(s) => match IstioDuration::parse(&s) {
            Ok(d) if s.chars().next().is_some_and(|c| c.is_ascii_digit()) => {
                Value::String(d.to_string())
            }
            _ => Value::String(s),
        },
        Value::Number(n) => n
            .as_f64()
            .and_then(serde_json::Number::from_f64)
            .map_or(Value::Number(n), Value::Number),
        Value::Array(items) => Value::Array(items.into_iter().map(normalize).collect()),
        Value::Object(map) => {
            Value::Object(map.into_iter().map(|(k, v)| (k, normalize(v))).collect())
        }
        other => other,
    }
}
