//! The pinned Istio source the harness uses: where Go's module cache holds
//! `istio.io/istio` (its CRD file comes from there), and the patched copy of
//! it that [`crate::k8s_tools`] builds `pilot-discovery` (istiod) from.
//!
//! `e2e/tools/istiod/go.mod` pins the head of Istio's release-1.30 branch
//! (proxy.golang.org serves no 1.30.x tag) and replaces the dependencies the
//! proxy refuses by published releases; its comments say which and why.
//! One dependency, `github.com/agentgateway/agentgateway/api`, is not on the
//! proxy at all. Only istiod's agentgateway controller uses it, and istiod
//! builds that controller only with `PILOT_ENABLE_AGENTGATEWAY=true`
//! (default false). So the build copies the module out of the cache,
//! replaces that one package by `e2e/tools/istiod/patch/`'s stub, and
//! builds with `-modfile` pointing at a copy of the wrapper's `go.mod` that
//! replaces `istio.io/istio` by the copy (`go build -overlay` would be
//! simpler, but it refuses files under GOMODCACHE). With the default flag,
//! the result computes and pushes the same xDS as upstream istiod.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use anyhow::{Context, Result, bail};

use crate::go_source::go_module_source;
use crate::k8s_tools::go_modules_dir;

/// The Go module path of Istio.
pub const ISTIO_MODULE: &str = "istio.io/istio";
/// The pinned commit of Istio's release-1.30 branch, as a Go pseudo-version.
pub const ISTIO_PSEUDO_VERSION: &str = "v0.0.0-20260826214018-9739e10eb9d7";
/// The wrapper module's directory, relative to `e2e/tools`.
pub const ISTIOD_MODULE_DIR: &str = "istiod";
/// The package, relative to the istio module, that is replaced.
const AGENTGATEWAY_PACKAGE: &str = "pilot/pkg/config/kube/agentgateway";
/// The stub that replaces it, relative to the wrapper module.
const AGENTGATEWAY_STUB: &str = "patch/agentgateway_controller.go.txt";
/// The stand-in module for `github.com/agentgateway/agentgateway/api`.
const AGENTGATEWAY_API_DIR: &str = "agentgateway-api";
/// Istio's CRDs, relative to the istio module.
const CRD_FILE: &str = "manifests/charts/base/files/crd-all.gen.yaml";

/// The wrapper module `e2e/tools/istiod`.
pub fn istiod_module_dir() -> PathBuf {
    go_modules_dir().join(ISTIOD_MODULE_DIR)
}

/// The pinned `istio.io/istio` in Go's module cache, downloaded from the
/// module proxy if needed (`go mod download -json`).
pub fn istio_module_dir() -> Result<PathBuf> {
    static FOUND: OnceLock<PathBuf> = OnceLock::new();
    if let Some(dir) = FOUND.get() {
        return Ok(dir.clone());
    }
    let dir = download_istio_module()?;
    Ok(FOUND.get_or_init(|| dir).clone())
}

fn download_istio_module() -> Result<PathBuf> {
    go_module_source(&istiod_module_dir(), ISTIO_MODULE, ISTIO_PSEUDO_VERSION)
}

/// Istio's CRD file (`crd-all.gen.yaml`) of the pinned release.
pub fn istio_crds_file() -> Result<PathBuf> {
    let file = istio_module_dir()?.join(CRD_FILE);
    if !file.is_file() {
        bail!(
            "{} is missing from the istio module; remove it from Go's module cache \
             (`go clean -modcache`) so it is downloaded again",
            file.display()
        );
    }
    Ok(file)
}

/// Writes the patched copy of the istio module into `dest` (replacing what
/// is there) and returns the `go.mod` to pass as `-modfile`: the wrapper's,
/// with its local replace made absolute and `istio.io/istio` replaced by
/// the copy. Callers hold the build lock.
pub(crate) fn prepare_patched_source(dest: &Path) -> Result<PathBuf> {
    let module = istio_module_dir()?;
    if dest.exists() {
        make_writable(dest)?;
        fs::remove_dir_all(dest).with_context(|| format!("removing {}", dest.display()))?;
    }
    let istio = dest.join("istio");
    copy_tree(&module, &istio)?;
    let package = istio.join(AGENTGATEWAY_PACKAGE);
    for entry in fs::read_dir(&package).with_context(|| format!("reading {}", package.display()))? {
        let path = entry?.path();
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
        if name.is_some_and(|n| n.ends_with(".go")) {
            fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))?;
        }
    }
    let wrapper = istiod_module_dir();
    fs::copy(
        wrapper.join(AGENTGATEWAY_STUB),
        package.join("agentgateway_controller.go"),
    )
    .with_context(|| format!("copying {AGENTGATEWAY_STUB} into {}", package.display()))?;

    let go_mod = fs::read_to_string(wrapper.join("go.mod"))
        .with_context(|| format!("reading {}/go.mod", wrapper.display()))?;
    let modfile = dest.join("go.mod");
    fs::write(&modfile, patched_go_mod(&go_mod, &wrapper, &istio)?)
        .with_context(|| format!("writing {}", modfile.display()))?;
    fs::copy(wrapper.join("go.sum"), dest.join("go.sum"))
        .with_context(|| format!("copying {}/go.sum", wrapper.display()))?;
    Ok(modfile)
}

/// The wrapper's `go.mod` with `./agentgateway-api` made absolute and a
/// replace of `istio.io/istio` by `istio_copy`. Pure.
fn patched_go_mod(go_mod: &str, wrapper: &Path, istio_copy: &Path) -> Result<String> {
    let local = format!("=> ./{AGENTGATEWAY_API_DIR}");
    if !go_mod.contains(&local) {
        bail!("e2e/tools/istiod/go.mod has no `{local}` replace; restore it");
    }
    let absolute = format!("=> {}", wrapper.join(AGENTGATEWAY_API_DIR).display());
    Ok(format!(
        "{}\nreplace {ISTIO_MODULE} => {}\n",
        go_mod.replace(&local, &absolute),
        istio_copy.display()
    ))
}

/// Copies the directory tree `from` to `to`, files 0644 and directories
/// 0755 (the module cache's are read-only, which would stop the next build
/// from removing the copy).
fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    fs::create_dir_all(to).with_context(|| format!("creating {}", to.display()))?;
    for entry in fs::read_dir(from).with_context(|| format!("reading {}", from.display()))? {
        let entry = entry?;
        let (source, target) = (entry.path(), to.join(entry.file_name()));
        let kind = entry.file_type()?;
        if kind.is_dir() {
            copy_tree(&source, &target)?;
        } else if kind.is_file() {
            fs::copy(&source, &target).with_context(|| format!("copying {}", source.display()))?;
            fs::set_permissions(&target, fs::Permissions::from_mode(0o644))?;
        }
    }
    fs::set_permissions(to, fs::Permissions::from_mode(0o755))?;
    Ok(())
}

/// Makes every directory under `dir` writable, so it can be removed.
fn make_writable(dir: &Path) -> Result<()> {
    fs::set_permissions(dir, fs::Permissions::from_mode(0o755))
        .with_context(|| format!("making {} writable", dir.display()))?;
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            make_writable(&entry.path())?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patched_go_mod_makes_the_stub_absolute_and_replaces_istio() {
        let go_mod =
            "module x\n\nreplace github.com/agentgateway/agentgateway/api => ./agentgateway-api\n";
        let out = patched_go_mod(go_mod, Path::new("/w/istiod"), Path::new("/c/src/istio"));
        assert_eq!(
            out.ok().as_deref(),
            Some(
                "module x\n\nreplace github.com/agentgateway/agentgateway/api => \
                 /w/istiod/agentgateway-api\n\nreplace istio.io/istio => /c/src/istio\n"
            )
        );
        assert!(patched_go_mod("module x\n", Path::new("/w"), Path::new("/c")).is_err());
    }
}
