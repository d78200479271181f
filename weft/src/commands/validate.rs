//! `weft validate`: the checks `weft standalone` runs on its config
//! directory, on chosen files and directories, once: the files read by
//! [`weft_source::files::read_inputs`], then
//! [`weft_config::validate_inputs`], the same whole-mesh validation the
//! webhook runs on what it is asked to admit.

use std::io::Write;
use std::process::ExitCode;

use weft_config::validate_inputs;
use weft_source::files::read_inputs;

use crate::cli::ValidateArgs;

/// `weft validate`: prints each error on stderr, in the form standalone
/// logs it, or `ok: N resources` on stdout.
pub fn run(args: &ValidateArgs) -> anyhow::Result<ExitCode> {
    let validation = validate_inputs(read_inputs(&args.files));
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
