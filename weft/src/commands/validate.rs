//! `weft validate`: the checks `weft standalone` runs on its config
//! directory, on chosen files and directories, once: the files read by
//! [`weft_source::files::read_inputs`], then
//! [`weft_config::validate_inputs_with`] the mesh config (`--mesh-config`,
//! checked first; Istio's defaults without it), the same whole-mesh
//! validation the webhook runs on what it is asked to admit.

use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use weft_config::{parse_mesh_config, validate_inputs_with};
use weft_model::MeshConfig;
use weft_source::files::read_inputs;

use crate::cli::ValidateArgs;

/// `weft validate`: prints each error on stderr, in the form standalone
/// logs it, or `ok: N resources` on stdout.
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
    let validation = validate_inputs_with(read_inputs(&args.files), Arc::new(mesh_config));
    if validation.is_ok() {
        let mut out = std::io::stdout().lock();
        writeln!(out, "ok: {} resources", validation.resources)?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut err = std::io::stderr().lock();
    for error in &validation.errors {
        writeln!(err, "{error}")?;
    }
    let count = validation.errors.len();
    let noun = if count == 1 { "error" } else { "errors" };
    writeln!(
        err,
        "failed: {count} {noun} in {} resources",
        validation.resources
    )?;
    Ok(ExitCode::FAILURE)
}
