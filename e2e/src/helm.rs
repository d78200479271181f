//! Running the real helm ([`crate::k8s_tools::helm_binary`]) in the
//! workspace root, with its cache, config and data in a directory of the
//! test's, so nothing of the user's helm setup is read or written.

use std::path::Path;
use std::process::{Command, Output};

use anyhow::{Context, Result, bail};

use crate::k8s_tools::helm_binary;
use crate::tools::workspace_dir;

/// Runs helm with `args` in the workspace root, its caches and config in
/// `home`, against `kubeconfig` if given.
pub fn helm(args: &[&str], home: &Path, kubeconfig: Option<&Path>) -> Result<Output> {
    let mut command = Command::new(helm_binary()?);
    command
        .args(args)
        .current_dir(workspace_dir())
        .env("HELM_CACHE_HOME", home.join("cache"))
        .env("HELM_CONFIG_HOME", home.join("config"))
        .env("HELM_DATA_HOME", home.join("data"));
    if let Some(kubeconfig) = kubeconfig {
        command.arg("--kubeconfig").arg(kubeconfig);
    }
    command
        .output()
        .with_context(|| format!("running helm {}", args.join(" ")))
}

/// [`helm`], failing unless it exits 0; returns stdout and stderr.
pub fn helm_ok(args: &[&str], home: &Path, kubeconfig: Option<&Path>) -> Result<String> {
    let out = helm(args, home, kubeconfig)?;
    let text = crate::procs::output_text(&out);
    if !out.status.success() {
        bail!("helm {} failed ({}):\n{text}", args.join(" "), out.status);
    }
    Ok(text)
}
