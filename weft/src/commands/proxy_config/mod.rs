//! `weft proxy-config PROXY clusters|listeners|routes|endpoints|secrets`:
//! what config a proxy has, as tables (istioctl's columns) or JSON/YAML.
//! From the config Weft serves the proxy (`/debug/config_dump`), or from
//! Envoy's own admin `/config_dump` saved in a file (`--file`), the only
//! place the certificates themselves are: Weft serves none (the agent
//! does, over SDS).

mod tables;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, ValueEnum};
use serde_json::Value;

use super::debug_client::{ControlPlaneArgs, Output, render_data};

#[derive(Debug, Args)]
pub struct ProxyConfigArgs {
    /// The proxy (`<pod>.<namespace>` or its node id; `weft proxy-status`
    /// lists them).
    pub proxy: String,
    /// What to show.
    #[arg(value_enum)]
    pub section: Section,
    #[arg(short = 'o', long, value_enum, default_value_t)]
    pub output: Output,
    /// Read Envoy's own config dump (its admin `/config_dump`, JSON) from
    /// this file instead of asking the control plane.
    #[arg(long, value_name = "FILE")]
    pub file: Option<PathBuf>,
    #[command(flatten)]
    pub control_plane: ControlPlaneArgs,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Section {
    Clusters,
    Listeners,
    Routes,
    Endpoints,
    Secrets,
}

pub async fn run(args: &ProxyConfigArgs) -> anyhow::Result<ExitCode> {
    let dump = match &args.file {
        Some(file) => {
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            serde_json::from_str(&text)
                .with_context(|| format!("{} is not an Envoy config dump (JSON)", file.display()))?
        }
        None => {
            let path = format!("/debug/config_dump?proxyID={}", encode(&args.proxy));
            args.control_plane.get_json(&path).await?
        }
    };
    let from_envoy = args.file.is_some();
    let (data, table) = match args.section {
        Section::Clusters => tables::clusters(&dump),
        Section::Listeners => tables::listeners(&dump),
        Section::Routes => tables::routes(&dump),
        Section::Endpoints => tables::endpoints(&dump),
        Section::Secrets if from_envoy => tables::secrets(&dump),
        Section::Secrets => tables::referenced_secrets(&dump),
    };
    match render_data(&Value::Array(data), args.output)? {
        Some(text) => print!("{text}"),
        None => print!("{table}"),
    }
    Ok(ExitCode::SUCCESS)
}

/// Percent-encodes a query value (node ids hold `~` and `|`-free text,
/// but a user may type anything).
fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
