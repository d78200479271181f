//! Building (once) the Go tools the harness runs: kube-apiserver and
//! kubectl v1.36.2, etcd 3.6.8, helm v4.2.4, the node's kubelet,
//! kube-controller-manager, kube-scheduler and kube-proxy v1.36.2, CNI
//! plugins v1.10.0 and CoreDNS v1.15.0 (see [`crate::node`]), istiod (`pilot-discovery`, the
//! head of Istio's release-1.30 branch) as the reference control plane for
//! benchmarks, istioctl from the same source (Istio's own `proxy-status`
//! against Weft), and the telemetry tools: Jaeger v2.12.0 (traces, see
//! [`crate::jaeger`]) and fortio v1.66.5 (Istio's load generator, see
//! [`crate::fortio`]).
//!
//! None of them can be `go install`ed (their own modules replace packages
//! by local paths), so `e2e/tools/` holds small Go modules of ours with
//! committed `go.sum` files: `e2e/tools/go.mod` requires `k8s.io/kubernetes`
//! and replaces each staging module (`k8s.io/api`, ...) by its published
//! `v0.36.2`; `e2e/tools/etcd/go.mod` requires `go.etcd.io/etcd/server/v3`
//! on its own, without those replaces; `e2e/tools/cni/go.mod` and
//! `e2e/tools/coredns/go.mod` pin the CNI plugins and CoreDNS, each on its
//! own; `e2e/tools/helm/go.mod` pins
//! `helm.sh/helm/v4`; `e2e/tools/istiod/go.mod` pins `istio.io/istio` and
//! is built from a patched copy of it (see [`crate::istio_source`]);
//! `e2e/tools/jaeger/go.mod` pins `github.com/jaegertracing/jaeger` (and
//! repeats its one replace) and `e2e/tools/fortio/go.mod` pins
//! `fortio.org/fortio`. The machine's `go` (>= 1.26, used
//! as is: `GOTOOLCHAIN=local`) builds them from the Go module proxy into
//! `~/.cache/weft-tools/<name>-<version>` (`WEFT_TOOLS_CACHE` overrides the
//! directory), where later runs find them after checking `--version`.
//!
//! A build takes minutes the first time (istiod and kube-apiserver are the
//! long ones),
//! seconds later. Parallel tests and processes are serialised per tool by a
//! file lock next to the binary; a build writes a temporary file and renames
//! it, so a binary that is there is complete. A missing or old Go, or a
//! failing build, is an error saying what to install, with the tail of the
//! build's output: the test fails, it never skips.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Instant;

use anyhow::{Context, Result, anyhow, bail};

use crate::istio_source::{ISTIOD_MODULE_DIR, prepare_patched_source};
use crate::tools::workspace_dir;

/// The Kubernetes release of kube-apiserver and kubectl.
pub const KUBERNETES_VERSION: &str = "v1.36.2";
/// The etcd release (the one envtest pairs with Kubernetes 1.36).
pub const ETCD_VERSION: &str = "3.6.8";
/// The helm release.
pub const HELM_VERSION: &str = "v4.2.4";
/// The Istio build of `pilot-discovery`: release-1.30 at commit
/// [`ISTIO_COMMIT`] (see [`crate::istio_source`]).
pub const ISTIO_VERSION: &str = "1.30-9739e10eb9d7";
/// The istio.io/istio commit [`ISTIO_VERSION`] is built from.
pub const ISTIO_COMMIT: &str = "9739e10eb9d7";
/// The Jaeger v2 release: Go module `github.com/jaegertracing/jaeger`
/// v1.75.0 (the module keeps v1 numbers; its v2 binary is `cmd/jaeger`).
pub const JAEGER_VERSION: &str = "v2.12.0";
/// The fortio release (newer ones need `grol.io` modules the proxy here
/// does not serve).
pub const FORTIO_VERSION: &str = "v1.66.5";
/// The CNI plugins release (bridge, host-local, loopback) the e2e node
/// networks pods with.
pub const CNI_PLUGINS_VERSION: &str = "v1.10.0";
/// The CoreDNS release the e2e node resolves Service names with.
pub const COREDNS_VERSION: &str = "v1.15.0";
/// The oldest Go that builds Kubernetes 1.36, as (major, minor).
pub const MIN_GO: (u32, u32) = (1, 26);
/// Set this to a directory to cache the built tools there instead of
/// `~/.cache/weft-tools`.
pub const TOOLS_CACHE_ENV: &str = "WEFT_TOOLS_CACHE";
/// Set this to a `go` binary to build with it instead of the one on `PATH`.
pub const GO_ENV: &str = "WEFT_GO";

/// Lines of a failed build's output quoted in the error.
const BUILD_TAIL_LINES: usize = 40;

/// What `go build` makes, from which wrapper module, and how to check it.
struct GoTool {
    name: &'static str,
    version: &'static str,
    /// The wrapper module's directory, relative to `e2e/tools`.
    module: &'static str,
    package: &'static str,
    /// How the release is stamped into the binary.
    stamp: Stamp,
    version_args: &'static [&'static str],
    /// What `--version` prints for the right build.
    version_text: &'static str,
    /// A cold build's duration on two cores, for the log line.
    cold_minutes: u32,
    /// What `go build` compiles.
    source: Source,
}

/// Where a tool's source comes from.
#[derive(Clone, Copy)]
enum Source {
    /// The wrapper module's requirements, from the Go module proxy.
    Proxy,
    /// A patched copy of istio.io/istio (see [`crate::istio_source`]),
    /// built as upstream builds it (`-tags=vtprotobuf,disable_pgv`).
    PatchedIstio,
}

const KUBE_APISERVER: GoTool = GoTool {
    name: "kube-apiserver",
    version: KUBERNETES_VERSION,
    module: ".",
    package: "k8s.io/kubernetes/cmd/kube-apiserver",
    stamp: Stamp::Kubernetes,
    version_args: &["--version"],
    version_text: "Kubernetes v1.36.2",
    cold_minutes: 6,
    source: Source::Proxy,
};

const KUBECTL: GoTool = GoTool {
    name: "kubectl",
    version: KUBERNETES_VERSION,
    module: ".",
    package: "k8s.io/kubernetes/cmd/kubectl",
    stamp: Stamp::Kubernetes,
    version_args: &["version", "--client"],
    version_text: "Client Version: v1.36.2",
    cold_minutes: 1,
    source: Source::Proxy,
};

/// A Kubernetes node component from the same wrapper module as
/// kube-apiserver.
const fn kubernetes_component(name: &'static str, package: &'static str) -> GoTool {
    GoTool {
        name,
        version: KUBERNETES_VERSION,
        module: ".",
        package,
        stamp: Stamp::Kubernetes,
        version_args: &["--version"],
        version_text: "Kubernetes v1.36.2",
        cold_minutes: 3,
        source: Source::Proxy,
    }
}

const KUBELET: GoTool = kubernetes_component("kubelet", "k8s.io/kubernetes/cmd/kubelet");
const KUBE_CONTROLLER_MANAGER: GoTool = kubernetes_component(
    "kube-controller-manager",
    "k8s.io/kubernetes/cmd/kube-controller-manager",
);
const KUBE_SCHEDULER: GoTool =
    kubernetes_component("kube-scheduler", "k8s.io/kubernetes/cmd/kube-scheduler");
const KUBE_PROXY: GoTool = kubernetes_component("kube-proxy", "k8s.io/kubernetes/cmd/kube-proxy");

/// A CNI plugin of `github.com/containernetworking/plugins`; run without a
/// `CNI_COMMAND` it prints `CNI <name> plugin <version>`.
const fn cni_plugin(
    name: &'static str,
    package: &'static str,
    version_text: &'static str,
) -> GoTool {
    GoTool {
        name,
        version: CNI_PLUGINS_VERSION,
        module: "cni",
        package,
        stamp: Stamp::Cni,
        version_args: &[],
        version_text,
        cold_minutes: 1,
        source: Source::Proxy,
    }
}

const CNI_BRIDGE: GoTool = cni_plugin(
    "cni-bridge",
    "github.com/containernetworking/plugins/plugins/main/bridge",
    "CNI bridge plugin v1.10.0",
);
const CNI_HOST_LOCAL: GoTool = cni_plugin(
    "cni-host-local",
    "github.com/containernetworking/plugins/plugins/ipam/host-local",
    "CNI host-local plugin v1.10.0",
);
const CNI_LOOPBACK: GoTool = cni_plugin(
    "cni-loopback",
    "github.com/containernetworking/plugins/plugins/main/loopback",
    "CNI loopback plugin v1.10.0",
);

const COREDNS: GoTool = GoTool {
    name: "coredns",
    version: COREDNS_VERSION,
    module: "coredns",
    package: "github.com/coredns/coredns",
    // CoreDNS's version is in its source.
    stamp: Stamp::None,
    version_args: &["-version"],
    version_text: "CoreDNS-1.15.0",
    cold_minutes: 6,
    source: Source::Proxy,
};

const ETCD: GoTool = GoTool {
    name: "etcd",
    version: ETCD_VERSION,
    module: "etcd",
    package: "go.etcd.io/etcd/server/v3",
    stamp: Stamp::None,
    version_args: &["--version"],
    version_text: "etcd Version: 3.6.8",
    cold_minutes: 1,
    source: Source::Proxy,
};

const HELM: GoTool = GoTool {
    name: "helm",
    version: HELM_VERSION,
    module: "helm",
    package: "helm.sh/helm/v4/cmd/helm",
    stamp: Stamp::Helm,
    version_args: &["version"],
    version_text: "Version:\"v4.2.4\"",
    cold_minutes: 2,
    source: Source::Proxy,
};

const ISTIOD: GoTool = GoTool {
    name: "pilot-discovery",
    version: ISTIO_VERSION,
    module: ISTIOD_MODULE_DIR,
    package: "istio.io/istio/pilot/cmd/pilot-discovery",
    stamp: Stamp::Istio,
    version_args: &["version", "--short"],
    version_text: ISTIO_VERSION,
    cold_minutes: 10,
    source: Source::PatchedIstio,
};

const ISTIOCTL: GoTool = GoTool {
    name: "istioctl",
    version: ISTIO_VERSION,
    module: ISTIOD_MODULE_DIR,
    package: "istio.io/istio/istioctl/cmd/istioctl",
    stamp: Stamp::Istio,
    version_args: &["version", "--remote=false", "--short"],
    version_text: ISTIO_VERSION,
    cold_minutes: 8,
    source: Source::PatchedIstio,
};

const JAEGER: GoTool = GoTool {
    name: "jaeger",
    version: JAEGER_VERSION,
    module: "jaeger",
    package: "github.com/jaegertracing/jaeger/cmd/jaeger",
    stamp: Stamp::Jaeger,
    // Prints {"gitCommit":"","gitVersion":"v2.12.0","buildDate":""}.
    version_args: &["version"],
    version_text: "\"gitVersion\":\"v2.12.0\"",
    cold_minutes: 9,
    source: Source::Proxy,
};

const FORTIO: GoTool = GoTool {
    name: "fortio",
    version: FORTIO_VERSION,
    module: "fortio",
    package: "fortio.org/fortio",
    // Nothing to stamp: fortio reads its version from the build info, where
    // the main package's module is fortio.org/fortio itself; `buildinfo`
    // prints it as "mod\tfortio.org/fortio\tv1.66.5\th1:...".
    stamp: Stamp::None,
    version_args: &["buildinfo"],
    version_text: "fortio.org/fortio\tv1.66.5\t",
    cold_minutes: 1,
    source: Source::Proxy,
};

/// The `-X` flags a tool's build needs to report its own release.
#[derive(Clone, Copy)]
enum Stamp {
    /// Nothing to stamp (etcd's version is in its source).
    None,
    /// Kubernetes' version (`/version`, kubectl's version skew checks).
    Kubernetes,
    /// Helm's version (its source says only `v4.2`).
    Helm,
    /// Istio's version (`pilot-discovery version`, istiod's logs).
    Istio,
    /// Jaeger's version (`jaeger version`; empty otherwise).
    Jaeger,
    /// The CNI plugins' version (`version unknown` otherwise).
    Cni,
}

/// kube-apiserver v1.36.2, built once (see the module docs).
pub fn kube_apiserver_binary() -> Result<PathBuf> {
    static FOUND: OnceLock<PathBuf> = OnceLock::new();
    cached(&FOUND, &KUBE_APISERVER)
}

/// kubectl v1.36.2, built once (see the module docs).
pub fn kubectl_binary() -> Result<PathBuf> {
    static FOUND: OnceLock<PathBuf> = OnceLock::new();
    cached(&FOUND, &KUBECTL)
}

/// etcd 3.6.8, built once (see the module docs).
pub fn etcd_binary() -> Result<PathBuf> {
    static FOUND: OnceLock<PathBuf> = OnceLock::new();
    cached(&FOUND, &ETCD)
}

/// helm v4.2.4, built once (see the module docs).
pub fn helm_binary() -> Result<PathBuf> {
    static FOUND: OnceLock<PathBuf> = OnceLock::new();
    cached(&FOUND, &HELM)
}

/// istiod (`pilot-discovery`) [`ISTIO_VERSION`], built once (see the
/// module docs).
pub fn istiod_binary() -> Result<PathBuf> {
    static FOUND: OnceLock<PathBuf> = OnceLock::new();
    cached(&FOUND, &ISTIOD)
}

/// istioctl [`ISTIO_VERSION`], from the same patched Istio source as
/// istiod, built once (see the module docs).
pub fn istioctl_binary() -> Result<PathBuf> {
    static FOUND: OnceLock<PathBuf> = OnceLock::new();
    cached(&FOUND, &ISTIOCTL)
}

/// Jaeger [`JAEGER_VERSION`] (`cmd/jaeger`, the v2 collector and query
/// service in one binary), built once (see the module docs).
pub fn jaeger_binary() -> Result<PathBuf> {
    static FOUND: OnceLock<PathBuf> = OnceLock::new();
    cached(&FOUND, &JAEGER)
}

/// fortio [`FORTIO_VERSION`], built once (see the module docs).
pub fn fortio_binary() -> Result<PathBuf> {
    static FOUND: OnceLock<PathBuf> = OnceLock::new();
    cached(&FOUND, &FORTIO)
}

/// kubelet v1.36.2, built once (see the module docs).
pub fn kubelet_binary() -> Result<PathBuf> {
    static FOUND: OnceLock<PathBuf> = OnceLock::new();
    cached(&FOUND, &KUBELET)
}

/// kube-controller-manager v1.36.2, built once (see the module docs).
pub fn kube_controller_manager_binary() -> Result<PathBuf> {
    static FOUND: OnceLock<PathBuf> = OnceLock::new();
    cached(&FOUND, &KUBE_CONTROLLER_MANAGER)
}

/// kube-scheduler v1.36.2, built once (see the module docs).
pub fn kube_scheduler_binary() -> Result<PathBuf> {
    static FOUND: OnceLock<PathBuf> = OnceLock::new();
    cached(&FOUND, &KUBE_SCHEDULER)
}

/// kube-proxy v1.36.2, built once (see the module docs).
pub fn kube_proxy_binary() -> Result<PathBuf> {
    static FOUND: OnceLock<PathBuf> = OnceLock::new();
    cached(&FOUND, &KUBE_PROXY)
}

/// The CNI plugins the e2e node uses, as `(plugin name, binary)`: each
/// built once (see the module docs); a CNI bin directory links each
/// binary under its plugin name.
pub fn cni_plugin_binaries() -> Result<Vec<(&'static str, PathBuf)>> {
    static BRIDGE: OnceLock<PathBuf> = OnceLock::new();
    static HOST_LOCAL: OnceLock<PathBuf> = OnceLock::new();
    static LOOPBACK: OnceLock<PathBuf> = OnceLock::new();
    Ok(vec![
        ("bridge", cached(&BRIDGE, &CNI_BRIDGE)?),
        ("host-local", cached(&HOST_LOCAL, &CNI_HOST_LOCAL)?),
        ("loopback", cached(&LOOPBACK, &CNI_LOOPBACK)?),
    ])
}

/// CoreDNS [`COREDNS_VERSION`], built once (see the module docs).
pub fn coredns_binary() -> Result<PathBuf> {
    static FOUND: OnceLock<PathBuf> = OnceLock::new();
    cached(&FOUND, &COREDNS)
}

/// `$WEFT_TOOLS_CACHE`, else `$XDG_CACHE_HOME/weft-tools`, else
/// `~/.cache/weft-tools`.
pub fn tools_cache_dir() -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os(TOOLS_CACHE_ENV) {
        return Ok(PathBuf::from(dir));
    }
    if let Some(dir) = std::env::var_os("XDG_CACHE_HOME").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(dir).join("weft-tools"));
    }
    let home = std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .ok_or_else(|| anyhow!("HOME is not set; set {TOOLS_CACHE_ENV} to a cache directory"))?;
    Ok(PathBuf::from(home).join(".cache").join("weft-tools"))
}

/// The directory of the committed Go wrapper modules.
pub fn go_modules_dir() -> PathBuf {
    workspace_dir().join("e2e").join("tools")
}

fn cached(found: &OnceLock<PathBuf>, tool: &GoTool) -> Result<PathBuf> {
    if let Some(path) = found.get() {
        return Ok(path.clone());
    }
    let path =
        ensure_built(tool).with_context(|| format!("installing {} {}", tool.name, tool.version))?;
    Ok(found.get_or_init(|| path).clone())
}

fn ensure_built(tool: &GoTool) -> Result<PathBuf> {
    let cache = tools_cache_dir()?;
    let binary = cache.join(format!("{}-{}", tool.name, tool.version));
    if check_version(tool, &binary).is_ok() {
        return Ok(binary);
    }
    fs::create_dir_all(&cache).with_context(|| format!("creating {}", cache.display()))?;
    let lock_path = cache.join(format!("{}-{}.lock", tool.name, tool.version));
    let lock = File::create(&lock_path)
        .with_context(|| format!("creating lock file {}", lock_path.display()))?;
    if lock.try_lock().is_err() {
        eprintln!(
            "weft-e2e: waiting for another build of {} {} to finish (lock {})",
            tool.name,
            tool.version,
            lock_path.display()
        );
        lock.lock()
            .with_context(|| format!("locking {}", lock_path.display()))?;
    }
    // The lock is released when `lock` is dropped, on every path out.
    let result = build_locked(tool, &binary);
    drop(lock);
    result
}

fn build_locked(tool: &GoTool, binary: &Path) -> Result<PathBuf> {
    // Another process may have built it while this one waited.
    if check_version(tool, binary).is_ok() {
        return Ok(binary.to_path_buf());
    }
    let go = go_binary()?;
    let cache = binary
        .parent()
        .ok_or_else(|| anyhow!("{} has no parent directory", binary.display()))?;
    remove_stale_builds(tool, cache);
    eprintln!(
        "weft-e2e: building {} {} from the Go module proxy, about {} min once on two cores (less with a \
         warm Go build cache), cached in {}",
        tool.name,
        tool.version,
        tool.cold_minutes,
        cache.display()
    );
    let started = Instant::now();
    let temp = cache.join(format!(
        ".{}-{}.building-{}",
        tool.name,
        tool.version,
        std::process::id()
    ));
    let module_dir = go_modules_dir().join(tool.module);
    let mut command = Command::new(&go);
    command
        .current_dir(&module_dir)
        .env("GOTOOLCHAIN", "local")
        .env("CGO_ENABLED", "0")
        .env("GOWORK", "off")
        .args(["build", "-mod=readonly", "-buildvcs=false"]);
    // A patched source tree, removed after the build (success or not).
    let patched = match tool.source {
        Source::Proxy => None,
        Source::PatchedIstio => {
            let dir = cache.join(format!(".{}-{}.src", tool.name, tool.version));
            let modfile = prepare_patched_source(&dir).with_context(|| {
                format!("preparing the patched istio source in {}", dir.display())
            })?;
            command
                .arg(format!("-modfile={}", modfile.display()))
                .args(["-trimpath", "-tags=vtprotobuf,disable_pgv"]);
            Some(dir)
        }
    };
    match tool.stamp {
        Stamp::None => {}
        Stamp::Kubernetes => {
            command
                .arg("-ldflags")
                .arg(kubernetes_ldflags(tool.version)?);
        }
        Stamp::Helm => {
            command.arg("-ldflags").arg(format!(
                "-X helm.sh/helm/v4/internal/version.version={}",
                tool.version
            ));
        }
        Stamp::Istio => {
            command.arg("-ldflags").arg(istio_ldflags(tool.version));
        }
        Stamp::Jaeger => {
            command.arg("-ldflags").arg(format!(
                "-X github.com/jaegertracing/jaeger/internal/version.latestVersion={}",
                tool.version
            ));
        }
        Stamp::Cni => {
            command.arg("-ldflags").arg(format!(
                "-X github.com/containernetworking/plugins/pkg/utils/buildversion.BuildVersion={}",
                tool.version
            ));
        }
    }
    command
        .arg("-o")
        .arg(&temp)
        .arg(tool.package)
        .stdin(Stdio::null());
    let out = command
        .output()
        .with_context(|| format!("running {}", go.display()));
    if let Some(dir) = &patched {
        remove_patched_source(dir);
    }
    let out = out?;
    if !out.status.success() {
        let _ = fs::remove_file(&temp);
        let mut output = String::from_utf8_lossy(&out.stdout).into_owned();
        output.push_str(&String::from_utf8_lossy(&out.stderr));
        bail!(
            "`go build {}` in {} failed ({}). It needs Go >= {}.{} and the Go module proxy \
             (GOPROXY); the output ends with:\n{}",
            tool.package,
            module_dir.display(),
            out.status,
            MIN_GO.0,
            MIN_GO.1,
            tail(&output, BUILD_TAIL_LINES)
        );
    }
    if let Err(err) = check_version(tool, &temp) {
        let _ = fs::remove_file(&temp);
        return Err(err.context(format!("the freshly built {}", tool.name)));
    }
    fs::rename(&temp, binary)
        .with_context(|| format!("renaming {} to {}", temp.display(), binary.display()))?;
    eprintln!(
        "weft-e2e: built {} {} in {:.0?}",
        tool.name,
        tool.version,
        started.elapsed()
    );
    Ok(binary.to_path_buf())
}

/// Removes what builds of `tool` that were killed left behind (this process
/// holds the tool's lock, so no build of it is running).
fn remove_stale_builds(tool: &GoTool, cache: &Path) {
    let prefix = format!(".{}-{}.building-", tool.name, tool.version);
    let Ok(entries) = fs::read_dir(cache) else {
        return;
    };
    for entry in entries.flatten() {
        if entry.file_name().to_string_lossy().starts_with(&prefix) {
            let _ = fs::remove_file(entry.path());
        }
    }
}

/// Removes a patched source tree (read-only files and all); a failure only
/// costs disk space, so it is reported and ignored.
fn remove_patched_source(dir: &Path) {
    if let Err(err) = fs::remove_dir_all(dir) {
        eprintln!(
            "weft-e2e: could not remove {}: {err}; delete it by hand",
            dir.display()
        );
    }
}

/// `-X` flags that make `pilot-discovery version` (and istiod's logs)
/// report the build instead of `unknown`.
fn istio_ldflags(version: &str) -> String {
    let pkg = "istio.io/istio/pkg/version";
    format!(
        "-X {pkg}.buildVersion={version} -X {pkg}.buildGitRevision={ISTIO_COMMIT} \
         -X {pkg}.buildStatus=Clean -X {pkg}.buildTag={version}"
    )
}

/// `-X` flags that make `/version` and `kubectl version` report the real
/// release instead of `v0.0.0-master`.
fn kubernetes_ldflags(version: &str) -> Result<String> {
    let numbers = version.trim_start_matches('v');
    let mut parts = numbers.split('.');
    let (Some(major), Some(minor)) = (parts.next(), parts.next()) else {
        bail!("{version} is not a vMAJOR.MINOR.PATCH version");
    };
    let pkg = "k8s.io/component-base/version";
    Ok(format!(
        "-X {pkg}.gitVersion={version} -X {pkg}.gitMajor={major} -X {pkg}.gitMinor={minor}"
    ))
}

fn check_version(tool: &GoTool, binary: &Path) -> Result<()> {
    if !binary.is_file() {
        bail!("{} does not exist", binary.display());
    }
    let out = Command::new(binary)
        .args(tool.version_args)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {}", binary.display()))?;
    // Most print their version on stdout; CNI plugins on stderr.
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if !out.status.success() || !text.contains(tool.version_text) {
        bail!(
            "`{} {}` does not report {:?}: {}",
            binary.display(),
            tool.version_args.join(" "),
            tool.version_text,
            tail(&text, 5)
        );
    }
    Ok(())
}

/// The `go` to build with: `$WEFT_GO`, else `go` on `PATH`, else
/// `/usr/local/go/bin/go`; checked to be at least [`MIN_GO`].
pub fn go_binary() -> Result<PathBuf> {
    let install = format!(
        "install Go {}.{} or newer (https://go.dev/doc/install) and put its `go` on PATH, \
         or set {GO_ENV} to it",
        MIN_GO.0, MIN_GO.1
    );
    let candidates: Vec<PathBuf> = match std::env::var_os(GO_ENV) {
        Some(go) => vec![PathBuf::from(go)],
        None => vec![PathBuf::from("go"), PathBuf::from("/usr/local/go/bin/go")],
    };
    let mut problems = Vec::new();
    for go in candidates {
        let out = match Command::new(&go)
            .arg("version")
            .env("GOTOOLCHAIN", "local")
            .stdin(Stdio::null())
            .output()
        {
            Ok(out) => out,
            Err(err) => {
                problems.push(format!("{}: {err}", go.display()));
                continue;
            }
        };
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        match parse_go_version(&text) {
            Some(version) if version >= MIN_GO => return Ok(go),
            Some((major, minor)) => {
                problems.push(format!("{} is Go {major}.{minor}, too old", go.display()))
            }
            None => problems.push(format!(
                "{} version printed {:?}",
                go.display(),
                text.trim()
            )),
        }
    }
    bail!(
        "building kube-apiserver, kubectl, etcd, helm, istiod, jaeger and fortio for the end-to-end \
         tests needs Go >= {}.{} \
         ({}); {install}",
        MIN_GO.0,
        MIN_GO.1,
        problems.join("; ")
    )
}

/// `(major, minor)` from `go version go1.26.8 linux/amd64`.
fn parse_go_version(text: &str) -> Option<(u32, u32)> {
    let word = text.split_whitespace().find(|w| w.starts_with("go1"))?;
    let mut parts = word.trim_start_matches("go").split(['.', 'r', 'b']);
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_go_versions() {
        assert_eq!(
            parse_go_version("go version go1.26.8 linux/amd64"),
            Some((1, 26))
        );
        assert_eq!(
            parse_go_version("go version go1.27rc1 linux/amd64"),
            Some((1, 27))
        );
        assert_eq!(
            parse_go_version("go version go1.9 linux/amd64"),
            Some((1, 9))
        );
        assert_eq!(parse_go_version("something else"), None);
    }

    #[test]
    fn stamps_the_istio_version() {
        let flags = istio_ldflags(ISTIO_VERSION);
        assert!(flags.contains("istio.io/istio/pkg/version.buildVersion=1.30-9739e10eb9d7 "));
        assert!(flags.contains("version.buildGitRevision=9739e10eb9d7 "));
        assert!(!flags.contains('\\'), "{flags}");
    }

    #[test]
    fn stamps_the_kubernetes_version() {
        assert_eq!(
            kubernetes_ldflags("v1.36.2").ok().as_deref(),
            Some(
                "-X k8s.io/component-base/version.gitVersion=v1.36.2 \
                 -X k8s.io/component-base/version.gitMajor=1 \
                 -X k8s.io/component-base/version.gitMinor=36"
            )
        );
    }
}
