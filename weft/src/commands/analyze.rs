//! `weft analyze`: [`weft_config::analyze::analyze`] over files and
//! directories ([`weft_source::files::read_documents`]) and, with
//! `--kubeconfig`, the cluster's objects
//! ([`weft_operator::analyze::list_cluster`]) with the files on top.
//!
//! Exit codes: 0 when no finding reaches `--failure-threshold` (Error by
//! default: warnings and infos alone pass), 79 when one does (istioctl's
//! code for analysis errors), 1 when the analysis could not run (a bad
//! kubeconfig, an unreachable apiserver, a bad `--mesh-config`), 2 for bad
//! arguments (clap).

use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, bail};
use weft_config::analyze::{Analysis, Severity, analyze};
use weft_config::parse_mesh_config;
use weft_model::MeshConfig;
use weft_operator::analyze::list_cluster;
use weft_source::files::read_documents;

use crate::cli::{AnalyzeArgs, AnalyzeOutput, FailureThreshold};
use crate::commands::operator;

/// Istio's exit code for "analysis found errors".
pub const ANALYSIS_FAILED: u8 = 79;

pub async fn run(args: &AnalyzeArgs) -> anyhow::Result<ExitCode> {
    if args.files.is_empty() && args.kubeconfig.is_none() {
        bail!("nothing to analyse: give files or directories, or --kubeconfig for a cluster");
    }
    let mut documents = Vec::new();
    let mut mesh_config_text = None;
    if let Some(path) = &args.kubeconfig {
        let client = operator::client(Some(path)).await?;
        let cluster = list_cluster(
            &client,
            args.namespace.as_deref(),
            &args.control_plane_namespace,
        )
        .await
        .context("cannot list the cluster's objects")?;
        if !cluster.missing_kinds.is_empty() {
            let kinds: Vec<&str> = cluster.missing_kinds.iter().map(|k| k.as_str()).collect();
            eprintln!(
                "note: the cluster does not serve {} (CRDs not installed); not analysed",
                kinds.join(", ")
            );
        }
        documents = cluster.documents;
        mesh_config_text = cluster.mesh_config.map(|text| {
            let origin = format!("ConfigMap {}/istio", args.control_plane_namespace);
            (text, origin)
        });
    }
    documents.extend(read_documents(&args.files));
    if let Some(path) = &args.mesh_config {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read --mesh-config {}", path.display()))?;
        mesh_config_text = Some((text, path.display().to_string()));
    }
    let mesh_config = match mesh_config_text {
        None => MeshConfig::default(),
        Some((text, origin)) => match parse_mesh_config(&text) {
            Ok(mesh) => mesh,
            Err(errors) => {
                let lines: Vec<String> = errors.iter().map(|e| format!("{origin}: {e}")).collect();
                bail!("the mesh config is not valid:\n{}", lines.join("\n"));
            }
        },
    };
    let analysis = analyze(documents, Arc::new(mesh_config));
    print(&analysis, args.output)?;
    let threshold = match args.failure_threshold {
        FailureThreshold::Error => Severity::Error,
        FailureThreshold::Warning => Severity::Warning,
        FailureThreshold::Info => Severity::Info,
    };
    Ok(if analysis.fails(threshold) {
        ExitCode::from(ANALYSIS_FAILED)
    } else {
        ExitCode::SUCCESS
    })
}

fn print(analysis: &Analysis, output: AnalyzeOutput) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match output {
        AnalyzeOutput::Json => {
            writeln!(out, "{}", serde_json::to_string_pretty(&analysis.findings)?)?
        }
        AnalyzeOutput::Yaml => write!(out, "{}", serde_yaml::to_string(&analysis.findings)?)?,
        AnalyzeOutput::Human => {
            for finding in &analysis.findings {
                writeln!(out, "{finding}")?;
            }
            let count = |s: Severity, noun: &str| {
                let n = analysis.findings.iter().filter(|f| f.severity == s).count();
                counted(n, noun)
            };
            let read = format!(
                "{} and {}",
                counted(analysis.resources, "mesh resource"),
                counted(analysis.kubernetes_objects, "Kubernetes object")
            );
            if analysis.findings.is_empty() {
                writeln!(out, "No issues found in {read}.")?;
            } else {
                writeln!(
                    out,
                    "{}, {}, {} in {read}.",
                    count(Severity::Error, "error"),
                    count(Severity::Warning, "warning"),
                    count(Severity::Info, "info")
                )?;
            }
        }
    }
    Ok(())
}

/// `1 error`, `2 errors`.
fn counted(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}
