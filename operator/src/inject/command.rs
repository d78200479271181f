//! `weft inject -f pod.yaml`: the webhook's injection applied offline.
//! Every Pod document of the input is printed injected (or unchanged, with
//! the reason on stderr); other documents are printed unchanged.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::process::ExitCode;

use anyhow::{Context, bail};
use serde::Deserialize;
use serde_json::Value;

use super::{InjectConfig, Outcome, inject_pod};
use crate::cli::InjectArgs;

pub fn run(args: &InjectArgs) -> anyhow::Result<ExitCode> {
    let text = if args.file.as_os_str() == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("reading the Pod from stdin")?;
        text
    } else {
        std::fs::read_to_string(&args.file)
            .with_context(|| format!("reading {}", args.file.display()))?
    };
    let labels = parse_labels(&args.namespace_labels)?;
    let config = args
        .proxy
        .inject_config(&args.trust_domain, &args.control_plane_namespace);
    let injected = inject_documents(&text, &args.namespace, &labels, &config)?;
    let mut err = std::io::stderr().lock();
    for note in &injected.notes {
        writeln!(err, "{note}")?;
    }
    std::io::stdout()
        .lock()
        .write_all(injected.yaml.as_bytes())?;
    Ok(ExitCode::SUCCESS)
}

/// The printed documents and what was skipped, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Injected {
    pub yaml: String,
    pub notes: Vec<String>,
}

/// Injects every Pod of `text` (YAML, `---`-separated documents).
pub fn inject_documents(
    text: &str,
    default_namespace: &str,
    namespace_labels: &BTreeMap<String, String>,
    config: &InjectConfig,
) -> anyhow::Result<Injected> {
    let mut documents = Vec::new();
    let mut notes = Vec::new();
    for (index, document) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let value = Value::deserialize(document)
            .with_context(|| format!("document {} is not valid YAML", index + 1))?;
        if value.is_null() {
            continue;
        }
        if value.get("kind").and_then(Value::as_str) != Some("Pod") {
            documents.push(value);
            continue;
        }
        let namespace = value
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or(default_namespace)
            .to_string();
        let name = value
            .pointer("/metadata/name")
            .or_else(|| value.pointer("/metadata/generateName"))
            .and_then(Value::as_str)
            .unwrap_or("(unnamed)")
            .to_string();
        match inject_pod(&value, &namespace, namespace_labels, config)
            .with_context(|| format!("cannot inject Pod {namespace}/{name}"))?
        {
            Outcome::Injected(pod) => documents.push(pod),
            Outcome::Skipped(skip) => {
                notes.push(format!(
                    "Pod {namespace}/{name} not injected: {}",
                    skip.reason()
                ));
                documents.push(value);
            }
        }
    }
    let mut yaml = String::new();
    for (index, document) in documents.iter().enumerate() {
        if index > 0 {
            yaml.push_str("---\n");
        }
        yaml.push_str(&serde_yaml::to_string(document)?);
    }
    Ok(Injected { yaml, notes })
}

/// `key=value` pairs.
fn parse_labels(pairs: &[String]) -> anyhow::Result<BTreeMap<String, String>> {
    let mut labels = BTreeMap::new();
    for pair in pairs.iter().filter(|p| !p.is_empty()) {
        let Some((key, value)) = pair.split_once('=') else {
            bail!(
                "--namespace-labels {pair:?} is not key=value; write e.g. istio-injection=enabled"
            );
        };
        labels.insert(key.trim().to_string(), value.trim().to_string());
    }
    Ok(labels)
}
