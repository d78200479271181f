//! `weft validate`: the checks `weft standalone` runs on its config
//! directory (`pilot::source::files` then `pilot::config::ConfigStore`),
//! on chosen files and directories, once. The validating webhook
//! ([`crate::webhook`]) runs [`validate_inputs`] on what it is asked to
//! admit, together with the cluster's objects: one validation code path.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use weft_pilot::config::{ConfigError, ConfigStore, Input};
use weft_pilot::model::MeshSnapshot;
use weft_pilot::source::files::{read_config_dir, read_config_file};

use crate::cli::ValidateArgs;

/// What validating some inputs found.
#[derive(Debug)]
pub struct Validation {
    /// The documents that name a resource.
    pub resources: usize,
    /// Every error, as standalone would log it.
    pub errors: Vec<ConfigError>,
    /// The mesh the inputs make (without what failed).
    pub snapshot: Arc<MeshSnapshot>,
}

impl Validation {
    pub fn is_ok(&self) -> bool {
        self.errors.is_empty()
    }
}

/// Reads `paths`: a directory as `weft standalone --config-dir` reads it
/// (its `*.yaml` / `*.yml` files, not recursing), anything else as one
/// file. What cannot be read becomes an input that says so.
pub fn read_inputs(paths: &[PathBuf]) -> Vec<Input> {
    paths
        .iter()
        .flat_map(|path| {
            if path.is_dir() {
                read_config_dir(path)
            } else {
                read_config_file(path)
            }
        })
        .collect()
}

/// Applies `inputs` to an empty store, as one mesh: conversion errors and
/// whole-mesh checks (subsets, duplicate hosts, merging) alike.
pub fn validate_inputs(inputs: Vec<Input>) -> Validation {
    let resources = inputs
        .iter()
        .filter(|input| matches!(input, Input::Resource { .. }))
        .count();
    let applied = ConfigStore::default().apply(inputs);
    Validation {
        resources,
        errors: applied.errors,
        snapshot: applied.snapshot,
    }
}

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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const SERVICE: &str = "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: reviews
spec:
  hosts: [reviews.default.svc.cluster.local]
  resolution: STATIC
  ports:
  - number: 9080
    name: http
    protocol: HTTP
  endpoints:
  - address: 10.0.0.1
";

    fn mk_file(dir: &tempfile::TempDir, name: &str, yaml: &str) -> PathBuf {
        let path = dir.path().join(name);
        std::fs::write(&path, yaml).unwrap();
        path
    }

    #[test]
    fn files_and_directories_are_checked_together() {
        let dir = tempfile::tempdir().unwrap();
        mk_file(&dir, "se.yaml", SERVICE);
        let other = tempfile::tempdir().unwrap();
        let bad = mk_file(
            &other,
            "vs.yaml",
            "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
spec:
  hosts: [reviews]
  http:
  - route:
    - destination:
        host: reviews
        subset: v9
",
        );
        let clean = validate_inputs(read_inputs(&[dir.path().to_path_buf()]));
        assert!(clean.is_ok(), "{:?}", clean.errors);
        assert_eq!(clean.resources, 1);

        let both = validate_inputs(read_inputs(&[dir.path().to_path_buf(), bad.clone()]));
        assert_eq!(both.resources, 2);
        let lines: Vec<String> = both.errors.iter().map(ToString::to_string).collect();
        assert!(
            lines.iter().any(|l| l.starts_with(&format!(
                "{}: document 0: VirtualService default/reviews: spec.http[0].route[0].destination.subset",
                bad.display()
            ))),
            "{lines:?}"
        );
    }

    #[test]
    fn a_missing_file_is_an_error() {
        let missing = tempfile::tempdir().unwrap().path().join("absent.yaml");
        let validation = validate_inputs(read_inputs(&[missing]));
        assert!(!validation.is_ok());
        assert!(
            validation.errors[0]
                .to_string()
                .contains("cannot read the file")
        );
    }
}
