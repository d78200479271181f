//! `weft inject -f pod.yaml`: the webhook's injection applied offline.
//! Every Pod document of the input is printed injected (or unchanged, with
//! the reason on stderr); other documents are printed unchanged.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::process::ExitCode;

use anyhow::{Context, bail};
use weft_operator::inject::documents::inject_documents;

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
