//! Messages shared by more than one networking kind: [`StringMatch`],
//! [`PortSelector`], [`Percent`], [`WorkloadSelector`] and
//! [`WorkloadLabelSelector`].

use std::borrow::Cow;
use std::collections::BTreeMap;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};

/// Istio's `StringMatch`: a oneof of `exact`, `prefix` and `regex` (RE2).
///
/// YAML is `{exact: "/foo"}`, `{prefix: "/api"}` or `{regex: "^/v[0-9]+"}`.
/// Istio also accepts the empty object `{}`, which it documents for header
/// matches as "the header is present"; that is [`StringMatch::Empty`] here,
/// so such YAML parses instead of failing.
///
/// Representation: a Rust enum with hand-written serde (through a struct of
/// three optional strings) and a hand-written schema. Setting more than one
/// of the three is rejected when parsing, as Istio rejects it. The CRD
/// schema is structural: one `object` with three `string` properties, and a
/// `oneOf` that only uses `required` / `not` to allow at most one of them
/// (the same shape Istio's own CRDs use).
///
/// Use [`StringMatch::kind`] to get the one matcher that is set.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "RawStringMatch", into = "RawStringMatch")]
pub enum StringMatch {
    /// Exact string match.
    Exact(String),
    /// Prefix match.
    Prefix(String),
    /// RE2 regular expression match (the whole value must match).
    Regex(String),
    /// `{}`: no matcher was given.
    #[default]
    Empty,
}

/// Which of the three matchers a [`StringMatch`] uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StringMatchKind {
    /// `exact`
    Exact,
    /// `prefix`
    Prefix,
    /// `regex`
    Regex,
}

impl StringMatchKind {
    /// The YAML field name (`exact`, `prefix`, `regex`).
    pub fn as_str(self) -> &'static str {
        match self {
            StringMatchKind::Exact => "exact",
            StringMatchKind::Prefix => "prefix",
            StringMatchKind::Regex => "regex",
        }
    }
}

impl StringMatch {
    /// An `exact` matcher.
    pub fn exact(value: impl Into<String>) -> Self {
        StringMatch::Exact(value.into())
    }

    /// A `prefix` matcher.
    pub fn prefix(value: impl Into<String>) -> Self {
        StringMatch::Prefix(value.into())
    }

    /// A `regex` matcher.
    pub fn regex(value: impl Into<String>) -> Self {
        StringMatch::Regex(value.into())
    }

    /// The matcher that is set and its value, or `None` for `{}`.
    pub fn kind(&self) -> Option<(StringMatchKind, &str)> {
        match self {
            StringMatch::Exact(v) => Some((StringMatchKind::Exact, v)),
            StringMatch::Prefix(v) => Some((StringMatchKind::Prefix, v)),
            StringMatch::Regex(v) => Some((StringMatchKind::Regex, v)),
            StringMatch::Empty => None,
        }
    }

    /// Whether this is `{}`.
    pub fn is_empty(&self) -> bool {
        matches!(self, StringMatch::Empty)
    }
}

/// The wire form of [`StringMatch`]: three optional strings.
#[derive(Clone, Default, Serialize, Deserialize)]
struct RawStringMatch {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    exact: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    prefix: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    regex: Option<String>,
}

impl TryFrom<RawStringMatch> for StringMatch {
    type Error = String;

    fn try_from(raw: RawStringMatch) -> Result<Self, Self::Error> {
        match (raw.exact, raw.prefix, raw.regex) {
            (None, None, None) => Ok(StringMatch::Empty),
            (Some(v), None, None) => Ok(StringMatch::Exact(v)),
            (None, Some(v), None) => Ok(StringMatch::Prefix(v)),
            (None, None, Some(v)) => Ok(StringMatch::Regex(v)),
            (exact, prefix, regex) => {
                let set: Vec<&str> = [("exact", &exact), ("prefix", &prefix), ("regex", &regex)]
                    .into_iter()
                    .filter(|(_, v)| v.is_some())
                    .map(|(name, _)| name)
                    .collect();
                Err(format!(
                    "a string match sets only one of exact, prefix, regex; this one sets {}",
                    set.join(" and ")
                ))
            }
        }
    }
}

impl From<StringMatch> for RawStringMatch {
    fn from(m: StringMatch) -> Self {
        match m {
            StringMatch::Exact(v) => RawStringMatch {
                exact: Some(v),
                ..Default::default()
            },
            StringMatch::Prefix(v) => RawStringMatch {
                prefix: Some(v),
                ..Default::default()
            },
            StringMatch::Regex(v) => RawStringMatch {
                regex: Some(v),
                ..Default::default()
            },
            StringMatch::Empty => RawStringMatch::default(),
        }
    }
}

impl JsonSchema for StringMatch {
    fn schema_name() -> Cow<'static, str> {
        "StringMatch".into()
    }

    fn schema_id() -> Cow<'static, str> {
        concat!(module_path!(), "::StringMatch").into()
    }

    fn json_schema(_generator: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "object",
            "description": "Match a string: at most one of exact, prefix or regex (RE2).",
            "properties": {
                "exact": { "type": "string" },
                "prefix": { "type": "string" },
                "regex": {
                    "type": "string",
                    "description": "RE2 regular expression."
                }
            },
            "oneOf": [
                { "not": { "anyOf": [
                    { "required": ["exact"] },
                    { "required": ["prefix"] },
                    { "required": ["regex"] }
                ] } },
                { "required": ["exact"] },
                { "required": ["prefix"] },
                { "required": ["regex"] }
            ]
        })
    }
}

/// Istio's `PortSelector`: selects a port by number.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PortSelector {
    /// The port number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub number: Option<u32>,
}

impl PortSelector {
    /// A selector for `number`.
    pub fn new(number: u32) -> Self {
        PortSelector {
            number: Some(number),
        }
    }
}

/// Istio's `Percent`: a percentage in `[0.0, 100.0]`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Percent {
    /// The percentage, 0 to 100.
    #[serde(default)]
    pub value: f64,
}

/// Istio's `networking.v1alpha3.WorkloadSelector` (field `labels`), used by
/// ServiceEntry (and Sidecar): selects workloads by their labels.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadSelector {
    /// Labels a workload must carry, all of them.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

/// Istio's `type.v1beta1.WorkloadSelector` (field `matchLabels`), used by
/// DestinationRule's `workloadSelector` (and the security kinds' `selector`).
/// Note the field name differs from [`WorkloadSelector`]'s `labels`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadLabelSelector {
    /// Labels a workload must carry, all of them.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub match_labels: BTreeMap<String, String>,
}

/// `skip_serializing_if` helper for proto3 integer fields whose zero value
/// means "unset".
pub(crate) fn is_zero_i32(value: &i32) -> bool {
    *value == 0
}

#[cfg(test)]
#[allow(clippy::expect_used, clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn string_match_forms() {
        let m: StringMatch = serde_json::from_str(r#"{"exact":"/foo"}"#).expect("exact");
        assert_eq!(m, StringMatch::exact("/foo"));
        assert_eq!(m.kind(), Some((StringMatchKind::Exact, "/foo")));
        let m: StringMatch = serde_json::from_str(r#"{"prefix":"/api"}"#).expect("prefix");
        assert_eq!(m.kind(), Some((StringMatchKind::Prefix, "/api")));
        let m: StringMatch = serde_json::from_str(r#"{"regex":"^/v[0-9]+"}"#).expect("regex");
        assert_eq!(m.kind(), Some((StringMatchKind::Regex, "^/v[0-9]+")));
        let m: StringMatch = serde_json::from_str("{}").expect("empty");
        assert!(m.is_empty());
        assert_eq!(m.kind(), None);
        assert_eq!(serde_json::to_string(&m).expect("ser"), "{}");
        assert_eq!(
            serde_json::to_string(&StringMatch::regex("a.*")).expect("ser"),
            r#"{"regex":"a.*"}"#
        );
    }

    #[test]
    fn string_match_rejects_two_matchers() {
        let err = serde_json::from_str::<StringMatch>(r#"{"exact":"a","regex":"b"}"#)
            .expect_err("two matchers");
        assert!(err.to_string().contains("exact and regex"), "{err}");
    }
}
