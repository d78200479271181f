//! `weft validate`: the checks `weft standalone` runs on its config
//! directory, on chosen files and directories, once: the documents read by
//! [`weft_source::files::read_documents`], then
//! [`weft_config::validate_documents`] with the mesh config
//! (`--mesh-config`, checked first; Istio's defaults without it): the same
//! whole-mesh validation the webhook runs, judged as it judges (a
//! reference a later apply may fix, such as a subset whose DestinationRule
//! is in another file, is a warning), documents of kinds Weft does not own
//! skipped and counted, Services' port names checked (a warning).
//! `--strict` fails on warnings and skipped documents too.

use std::collections::BTreeMap;
use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use weft_config::{parse_mesh_config, validate_documents};
use weft_model::MeshConfig;
use weft_source::files::read_documents;

use crate::cli::ValidateArgs;

/// `weft validate`: prints each error and warning on stderr, in the form
/// standalone logs them, and a summary: `ok: N resources ...` on stdout,
/// or `failed: ...` on stderr (exit 1).
pub fn run(args: &ValidateArgs) -> anyhow::Result<ExitCode> {
    let mesh_config = match &args.mesh_config {
        None => MeshConfig::default(),
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read --mesh-config {}", path.display()))?;
            match parse_mesh_config(&text) {
                Ok(mesh) => mesh,
                Err(errors) => {
                    let mut err = std::io::stderr().lock();
                    for error in &errors {
                        writeln!(err, "{}: {error}", path.display())?;
                    }
                    writeln!(err, "failed: the mesh config has {} errors", errors.len())?;
                    return Ok(ExitCode::FAILURE);
                }
            }
        }
    };
    let validation = validate_documents(read_documents(&args.files), Arc::new(mesh_config));
    let mut err = std::io::stderr().lock();
    for error in &validation.errors {
        writeln!(err, "{error}")?;
    }
    let warning = if args.strict {
        "error (--strict)"
    } else {
        "warning"
    };
    for error in &validation.warnings {
        writeln!(err, "{warning}: {error}")?;
    }
    let skipped: usize = validation.skipped.values().sum();
    if args.strict && skipped > 0 {
        writeln!(
            err,
            "error (--strict): {} not served by Weft",
            skipped_text(&validation.skipped)
        )?;
    }
    let mut summary = format!("{} resources", validation.resources);
    let warnings = validation.warnings.len();
    if warnings > 0 {
        summary += &format!(", {warnings} {}", plural(warnings, "warning"));
    }
    if skipped > 0 {
        summary += &format!(", {} skipped", skipped_text(&validation.skipped));
    }
    let errors = validation.errors.len()
        + if args.strict {
            warnings + usize::from(skipped > 0)
        } else {
            0
        };
    if errors == 0 {
        writeln!(std::io::stdout().lock(), "ok: {summary}")?;
        return Ok(ExitCode::SUCCESS);
    }
    writeln!(
        err,
        "failed: {errors} {} in {summary}",
        plural(errors, "error")
    )?;
    Ok(ExitCode::FAILURE)
}

fn plural(count: usize, noun: &str) -> String {
    if count == 1 {
        noun.to_string()
    } else {
        format!("{noun}s")
    }
}

/// `3 documents of other kinds (Deployment: 1, Service: 2)`.
fn skipped_text(skipped: &BTreeMap<String, usize>) -> String {
    let total: usize = skipped.values().sum();
    let kinds: Vec<String> = skipped
        .iter()
        .map(|(kind, n)| format!("{kind}: {n}"))
        .collect();
    format!(
        "{total} {} of other kinds ({})",
        plural(total, "document"),
        kinds.join(", ")
    )
}
