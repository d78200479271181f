//! Discovery selectors: which namespaces' Services, EndpointSlices and Pods
//! make up the mesh's service registry, as Istio's
//! `meshConfig.discoverySelectors` decide it. Each selector is a set of
//! `key=value` labels a namespace must all carry; a namespace is selected
//! when any selector matches it. No selector selects every namespace.
//! Mesh config (VirtualService, DestinationRule, ...) is read from every
//! namespace either way.
//!
//! `weft operator --discovery-selector env=prod,region=us-east1
//! --discovery-selector app=cassandra` selects namespaces labelled both
//! `env=prod` and `region=us-east1`, and those labelled `app=cassandra`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use k8s_openapi::api::core::v1::Namespace;

/// The parsed `--discovery-selector` flags.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DiscoverySelectors(Vec<BTreeMap<String, String>>);

/// A `--discovery-selector` that is not `key=value[,key=value...]`.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "--discovery-selector {selector:?}: {problem}; write key=value[,key=value...] (all must \
     match), and repeat the flag for alternatives"
)]
pub struct SelectorError {
    selector: String,
    problem: String,
}

impl DiscoverySelectors {
    /// Parses each flag value: `key=value` pairs separated by commas.
    pub fn parse(flags: &[String]) -> Result<Self, SelectorError> {
        flags
            .iter()
            .map(|flag| parse_selector(flag))
            .collect::<Result<_, _>>()
            .map(Self)
    }

    /// Whether a namespace with `labels` is selected.
    pub fn selects(&self, labels: Option<&BTreeMap<String, String>>) -> bool {
        self.0.is_empty()
            || self.0.iter().any(|selector| {
                selector
                    .iter()
                    .all(|(key, value)| labels.and_then(|l| l.get(key)) == Some(value))
            })
    }

    /// The names of the selected namespaces; `None` when every namespace is
    /// (no selector), including ones not listed yet.
    pub fn selected_namespaces(&self, namespaces: &[Arc<Namespace>]) -> Option<BTreeSet<String>> {
        if self.0.is_empty() {
            return None;
        }
        Some(
            namespaces
                .iter()
                .filter(|ns| self.selects(ns.metadata.labels.as_ref()))
                .filter_map(|ns| ns.metadata.name.clone())
                .collect(),
        )
    }
}

fn parse_selector(flag: &str) -> Result<BTreeMap<String, String>, SelectorError> {
    let problem = |problem: String| SelectorError {
        selector: flag.to_string(),
        problem,
    };
    let mut labels = BTreeMap::new();
    for pair in flag.split(',') {
        let Some((key, value)) = pair.split_once('=') else {
            return Err(problem(format!("{pair:?} has no `=`")));
        };
        let key = key.trim();
        if key.is_empty() {
            return Err(problem(format!("{pair:?} has an empty label key")));
        }
        if labels
            .insert(key.to_string(), value.trim().to_string())
            .is_some()
        {
            return Err(problem(format!("label {key:?} is given twice")));
        }
    }
    Ok(labels)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    use super::*;

    fn mk_namespace(name: &str, labels: &[(&str, &str)]) -> Arc<Namespace> {
        Arc::new(Namespace {
            metadata: ObjectMeta {
                name: Some(name.to_string()),
                labels: Some(
                    labels
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                ),
                ..ObjectMeta::default()
            },
            ..Namespace::default()
        })
    }

    fn selectors(flags: &[&str]) -> DiscoverySelectors {
        DiscoverySelectors::parse(&flags.iter().map(ToString::to_string).collect::<Vec<_>>())
            .unwrap()
    }

    #[test]
    fn no_selector_selects_every_namespace() {
        assert_eq!(
            selectors(&[]).selected_namespaces(&[mk_namespace("a", &[])]),
            None
        );
        assert!(selectors(&[]).selects(None));
    }

    #[test]
    fn labels_of_a_selector_all_match_and_selectors_are_alternatives() {
        let namespaces = [
            mk_namespace("prod-east", &[("env", "prod"), ("region", "us-east1")]),
            mk_namespace("prod-west", &[("env", "prod"), ("region", "us-west1")]),
            mk_namespace("spark", &[("app", "cassandra")]),
            mk_namespace("bare", &[]),
        ];
        let selected = selectors(&["env=prod,region=us-east1", "app=cassandra"])
            .selected_namespaces(&namespaces)
            .unwrap();
        assert_eq!(
            selected.into_iter().collect::<Vec<_>>(),
            ["prod-east", "spark"]
        );
    }

    #[test]
    fn malformed_selectors_are_refused_with_the_reason() {
        let parse = |flag: &str| DiscoverySelectors::parse(&[flag.to_string()]).unwrap_err();
        assert!(parse("env").to_string().contains("\"env\" has no `=`"));
        assert!(parse("=prod").to_string().contains("empty label key"));
        assert!(parse("a=1,a=2").to_string().contains("given twice"));
    }
}
