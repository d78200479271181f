//! Source trees of pinned Go modules, from Go's module cache: downloaded
//! from the module proxy (GOPROXY) the first time (`go mod download
//! -json`), read-only after.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, anyhow, bail};

use crate::k8s_tools::go_binary;

/// The directory of `module` at `version` in Go's module cache, run from
/// `dir` (a wrapper module whose `go.mod` and `go.sum` pin it, or any
/// directory).
pub fn go_module_source(dir: &Path, module: &str, version: &str) -> Result<PathBuf> {
    let go = go_binary()?;
    let module = format!("{module}@{version}");
    let out = Command::new(&go)
        .current_dir(dir)
        .env("GOTOOLCHAIN", "local")
        .env("GOWORK", "off")
        .args(["mod", "download", "-json", &module])
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {}", go.display()))?;
    // On failure `-json` still prints the object, with an "Error" field.
    let info: serde_json::Value = serde_json::from_slice(&out.stdout).with_context(|| {
        format!(
            "`go mod download -json {module}` printed no JSON ({}): {}",
            out.status,
            crate::procs::output_text(&out).trim()
        )
    })?;
    if let Some(err) = info.get("Error").and_then(|e| e.as_str()) {
        bail!("downloading {module} from the Go module proxy (GOPROXY) failed: {err}");
    }
    let dir = info
        .get("Dir")
        .and_then(|d| d.as_str())
        .ok_or_else(|| anyhow!("`go mod download -json {module}` printed no Dir: {info}"))?;
    Ok(PathBuf::from(dir))
}
