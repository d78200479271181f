//! The images `make images` writes (and the node tests run): each
//! archive's OCI layout and Docker manifest checked against each other and
//! its blobs' digests, then each image unpacked into a runc bundle and run
//! for real under Debian's `runc`, as the user its config names: the
//! control plane's `weft`, the proxy's `weft agent`, Envoy and iptables
//! (and its init container's `weft agent iptables` in a pod's network
//! namespace, read back with the image's `iptables-save`), the test app
//! answering HTTP, and pause. Needs root and runc (`apt-get install runc`):
//! without them the test fails saying so.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use weft_e2e::Process;
use weft_e2e::images::{ImageArchive, build_test_images};

/// What one archive holds: its Docker manifest's config and layer.
fn open_archive(archive: &Path) -> Result<(serde_json::Value, Vec<u8>)> {
    let mut files = BTreeMap::new();
    let mut tar = tar::Archive::new(File::open(archive)?);
    for entry in tar.entries()? {
        let mut entry = entry?;
        let name = entry.path()?.display().to_string();
        let mut data = Vec::new();
        entry.read_to_end(&mut data)?;
        files.insert(name, data);
    }
    let manifest: serde_json::Value = serde_json::from_slice(&files["manifest.json"])?;
    let config: serde_json::Value =
        serde_json::from_slice(&files[manifest[0]["Config"].as_str().context("Config")?])?;
    let layer = files
        .remove(manifest[0]["Layers"][0].as_str().context("Layers")?)
        .context("the layer blob")?;
    Ok((config, layer))
}

/// How a container runs besides its args: by default as the image's
/// user, in the host's network namespace, with runc's default
/// capabilities.
#[derive(Default)]
struct Options<'a> {
    /// As root (the injected `istio-init` container's `runAsUser: 0`).
    root: bool,
    /// Join this network namespace (`/var/run/netns/NAME`), as a pod's
    /// containers join its sandbox's.
    netns: Option<&'a Path>,
    /// Added to runc's defaults (`CAP_NET_ADMIN`, ...).
    capabilities: &'a [&'a str],
}

/// Checks an archive's structure the way `ctr images import` and `docker
/// load` read it: `oci-layout`; `index.json`'s one manifest, annotated
/// with `name:tag` and the tag; the manifest's config and single
/// uncompressed layer; `manifest.json` naming the same config, layer and
/// `name:tag`; the config's diff ID the layer's digest; every blob named by
/// its SHA-256 and as large as its descriptor says. Returns `name:tag` and
/// the manifest's digest.
fn check_archive(archive: &Path) -> Result<(String, String)> {
    let mut files = BTreeMap::new();
    let mut tar = tar::Archive::new(File::open(archive)?);
    for entry in tar.entries()? {
        let mut entry = entry?;
        if entry.header().entry_type().is_dir() {
            continue;
        }
        let name = entry.path()?.display().to_string();
        let mut data = Vec::new();
        entry.read_to_end(&mut data)?;
        if let Some(hex) = name.strip_prefix("blobs/sha256/") {
            let digest = ring::digest::digest(&ring::digest::SHA256, &data);
            let actual: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
            assert_eq!(actual, hex, "{name} in {}", archive.display());
        }
        files.insert(name, data);
    }
    let json = |name: &str| -> Result<serde_json::Value> {
        let data = files
            .get(name)
            .with_context(|| format!("no {name} in {}", archive.display()))?;
        serde_json::from_slice(data).with_context(|| format!("{name} is not JSON"))
    };
    let blob = |digest: &serde_json::Value| -> String {
        format!(
            "blobs/sha256/{}",
            digest.as_str().unwrap_or("").trim_start_matches("sha256:")
        )
    };
    let descriptor = |d: &serde_json::Value, media_type: &str| -> Result<String> {
        assert_eq!(d["mediaType"], media_type, "{d}");
        let path = blob(&d["digest"]);
        let data = files
            .get(&path)
            .with_context(|| format!("no blob {path}"))?;
        assert_eq!(d["size"], data.len(), "{d}");
        Ok(path)
    };
    assert_eq!(
        json("oci-layout")?,
        serde_json::json!({"imageLayoutVersion": "1.0.0"})
    );
    let index = json("index.json")?;
    let manifests = index["manifests"]
        .as_array()
        .context("index.json's manifests")?;
    assert_eq!(manifests.len(), 1, "{index}");
    let annotations = &manifests[0]["annotations"];
    let reference = annotations["io.containerd.image.name"]
        .as_str()
        .context("index.json names no image")?
        .to_string();
    let tag = reference.rsplit_once(':').map(|(_, tag)| tag);
    assert_eq!(
        annotations["org.opencontainers.image.ref.name"].as_str(),
        tag
    );
    let manifest_path = descriptor(&manifests[0], "application/vnd.oci.image.manifest.v1+json")?;
    let manifest = json(&manifest_path)?;
    let config_path = descriptor(
        &manifest["config"],
        "application/vnd.oci.image.config.v1+json",
    )?;
    let layers = manifest["layers"]
        .as_array()
        .context("the manifest's layers")?;
    assert_eq!(layers.len(), 1, "{manifest}");
    let layer_path = descriptor(&layers[0], "application/vnd.oci.image.layer.v1.tar")?;
    let config = json(&config_path)?;
    assert_eq!(
        config["rootfs"]["diff_ids"],
        serde_json::json!([layers[0]["digest"]])
    );
    assert_eq!(
        json("manifest.json")?,
        serde_json::json!([{
            "Config": config_path,
            "RepoTags": [reference],
            "Layers": [layer_path],
        }])
    );
    let digest = manifests[0]["digest"].as_str().unwrap_or("").to_string();
    Ok((reference, digest))
}

/// `GET /` on `addr` over plain HTTP/1.1 (the test is synchronous):
/// the status line and body.
fn http_get(addr: &str) -> Result<(String, String)> {
    use std::io::Write;
    let mut stream = std::net::TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    stream.write_all(b"GET / HTTP/1.1\r\nHost: echo\r\nConnection: close\r\n\r\n")?;
    let mut reply = String::new();
    stream.read_to_string(&mut reply)?;
    let status = reply.lines().next().unwrap_or("").to_string();
    let body = reply
        .split_once("\r\n\r\n")
        .map(|(_, b)| b)
        .unwrap_or("")
        .to_string();
    Ok((status, body))
}

/// A runc bundle of `archive`: its layer unpacked as the root filesystem,
/// and `runc spec`'s config running `args` as the image's user.
struct Bundle {
    dir: tempfile::TempDir,
    config: serde_json::Value,
}

impl Bundle {
    fn new(archive: &ImageArchive) -> Result<Self> {
        let (config, layer) = open_archive(&archive.path)?;
        let dir = tempfile::tempdir()?;
        let rootfs = dir.path().join("rootfs");
        let mut unpack = tar::Archive::new(layer.as_slice());
        unpack.set_preserve_ownerships(true);
        unpack.set_preserve_permissions(true);
        unpack.unpack(&rootfs)?;
        let out = Command::new("runc")
            .arg("spec")
            .current_dir(dir.path())
            .output()
            .context("running runc (install it: apt-get install runc)")?;
        if !out.status.success() {
            bail!("runc spec: {}", weft_e2e::output_text(&out));
        }
        Ok(Self { dir, config })
    }

    /// Runs `args` (the entrypoint when empty) in a container, returning
    /// the running process; `runc delete -f` on drop of the guard.
    fn spawn(&self, id: &str, args: &[&str]) -> Result<(Process, Container)> {
        self.spawn_with(id, args, &Options::default())
    }

    /// [`Bundle::spawn`] with [`Options`].
    fn spawn_with(
        &self,
        id: &str,
        args: &[&str],
        options: &Options,
    ) -> Result<(Process, Container)> {
        let image = &self.config["config"];
        let mut command: Vec<String> = if args.is_empty() {
            let mut all: Vec<String> = serde_json::from_value(image["Entrypoint"].clone())?;
            all.extend(
                serde_json::from_value::<Vec<String>>(image["Cmd"].clone()).unwrap_or_default(),
            );
            all
        } else {
            args.iter().map(|a| a.to_string()).collect()
        };
        if command.is_empty() {
            bail!("nothing to run");
        }
        let user = if options.root {
            "0:0"
        } else {
            image["User"].as_str().unwrap_or("0:0")
        };
        let (uid, gid) = user.split_once(':').unwrap_or((user, user));
        let spec_path = self.dir.path().join("config.json");
        let mut spec: serde_json::Value = serde_json::from_slice(&std::fs::read(&spec_path)?)?;
        let process = &mut spec["process"];
        process["terminal"] = false.into();
        process["args"] = std::mem::take(&mut command).into();
        process["user"] =
            serde_json::json!({"uid": uid.parse::<u32>()?, "gid": gid.parse::<u32>()?});
        process["env"] = image["Env"].clone();
        process["cwd"] = image["WorkingDir"]
            .as_str()
            .filter(|d| !d.is_empty())
            .unwrap_or("/")
            .into();
        // This VM cannot lower an OOM score (no CAP_SYS_RESOURCE).
        if let Some(process) = process.as_object_mut() {
            process.remove("oomScoreAdj");
        }
        spec["root"]["readonly"] = false.into();
        if let Some(sets) = spec["process"]["capabilities"].as_object_mut() {
            for (set, caps) in sets.iter_mut() {
                // Ambient capabilities would need the inheritable set.
                if let Some(caps) = caps.as_array_mut().filter(|_| set != "ambient") {
                    caps.extend(options.capabilities.iter().map(|c| (*c).into()));
                }
            }
        }
        // The spec is rewritten in place on every run, so the network
        // namespace is always set from scratch: the pod's, or the host's
        // (no entry; a new namespace's loopback is down).
        if let Some(namespaces) = spec["linux"]["namespaces"].as_array_mut() {
            namespaces.retain(|ns| ns["type"] != "network");
            if let Some(path) = options.netns {
                namespaces.push(serde_json::json!({
                    "type": "network",
                    "path": path.display().to_string(),
                }));
            }
        }
        std::fs::write(&spec_path, serde_json::to_vec_pretty(&spec)?)?;
        let mut run = Command::new("runc");
        run.args(["run", "--bundle"])
            .arg(self.dir.path())
            .arg(id)
            .stdin(Stdio::null());
        let process = Process::spawn(id, run)?;
        Ok((process, Container(id.to_string())))
    }

    /// Runs `args` to completion; its output, failing unless it exits 0.
    fn run(&self, id: &str, args: &[&str]) -> Result<String> {
        self.run_with(id, args, &Options::default())
    }

    /// [`Bundle::run`] with [`Options`].
    fn run_with(&self, id: &str, args: &[&str], options: &Options) -> Result<String> {
        let (process, _container) = self.spawn_with(id, args, options)?;
        let started = Instant::now();
        while process.is_running() {
            if started.elapsed() > Duration::from_secs(60) {
                bail!("{args:?} did not finish: {}", process.log_tail(20));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        std::thread::sleep(Duration::from_millis(100));
        let text = process.logs().join("\n");
        if !process.exit_status().is_some_and(|s| s.success()) {
            bail!("{args:?} failed ({:?}): {text}", process.exit_status());
        }
        Ok(text)
    }
}

/// A runc container id, deleted (killed first) on drop.
struct Container(String);

impl Drop for Container {
    fn drop(&mut self) {
        let _ = Command::new("runc")
            .args(["delete", "-f", &self.0])
            .output();
    }
}

fn unique(name: &str) -> String {
    format!("weft-e2e-image-{name}-{}", std::process::id())
}

/// Waits for a line containing `needle`, then checks the process still runs.
fn wait_for_line(process: &Process, needle: &str) -> Result<()> {
    let started = Instant::now();
    while !process.logs().iter().any(|l| l.contains(needle)) {
        if !process.is_running() || started.elapsed() > Duration::from_secs(30) {
            bail!(
                "no {needle:?} from {}: {}",
                process.name(),
                process.log_tail(20)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

#[test]
fn every_image_runs_its_entrypoint_under_runc() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let archives = build_test_images(dir.path())?;
    let by_name = |stem: &str| {
        archives
            .iter()
            .find(|a| a.path.file_stem().is_some_and(|s| s == stem))
            .cloned()
            .with_context(|| format!("no {stem} image"))
    };

    // Each archive is an OCI layout and a Docker archive that agree.
    assert_eq!(archives.len(), 4);
    for archive in &archives {
        let (reference, digest) = check_archive(&archive.path)?;
        assert_eq!(reference, archive.reference);
        assert_eq!(digest, archive.digest);
    }

    // The control plane: `weft` as 65532, whose default command is the
    // operator.
    let weft = Bundle::new(&by_name("weft")?)?;
    assert_eq!(weft.config["config"]["User"], "65532:65532");
    assert_eq!(weft.config["config"]["Cmd"][0], "operator");
    let version = weft.run(&unique("weft"), &["/usr/local/bin/weft", "--version"])?;
    assert!(version.starts_with("weft "), "{version}");
    let (operator, _c) = weft.spawn(&unique("operator"), &[])?;
    // Without a cluster it fails on the missing in-cluster config, which
    // shows the entrypoint and default command ran.
    let started = Instant::now();
    while operator.is_running() && started.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(50));
    }
    let text = operator.logs().join("\n");
    assert!(text.to_lowercase().contains("kube"), "{text}");

    // The proxy: the agent, Envoy 1.40.0 and iptables, as 1337.
    let proxy = Bundle::new(&by_name("proxy")?)?;
    assert_eq!(proxy.config["config"]["User"], "1337:1337");
    let help = proxy.run(&unique("agent"), &["weft", "agent", "--help"])?;
    assert!(help.contains("--ca-address"), "{help}");
    let envoy = proxy.run(&unique("envoy"), &["envoy", "--version"])?;
    assert!(envoy.contains("/1.40.0/"), "{envoy}");
    let iptables = proxy.run(&unique("iptables"), &["iptables-restore", "--version"])?;
    assert!(iptables.contains("iptables-restore v"), "{iptables}");
    // The injected init container: `weft agent iptables` as root with
    // NET_ADMIN and NET_RAW in a pod's network namespace (found on PATH, as
    // the injector's `command: [weft]` is); the image's own iptables-save
    // then reads back what it installed there.
    let host_before = host_capture_rules()?;
    let pod = weft_e2e::netns::TestHost::create()?;
    let netns = std::path::PathBuf::from(format!("/var/run/netns/{}", pod.name()));
    let init = Options {
        root: true,
        netns: Some(&netns),
        capabilities: &["CAP_NET_ADMIN", "CAP_NET_RAW"],
    };
    proxy.run_with(
        &unique("istio-init"),
        &["weft", "agent", "iptables", "--proxy-uid", "1337"],
        &init,
    )?;
    let rules = proxy.run_with(
        &unique("iptables-save"),
        &["iptables-save", "-t", "nat"],
        &init,
    )?;
    assert!(rules.contains("-j REDIRECT --to-ports 15001"), "{rules}");
    assert!(rules.contains("-j REDIRECT --to-ports 15006"), "{rules}");
    assert!(rules.contains("--uid-owner 1337"), "{rules}");
    drop(pod);
    // ...and nowhere else: the host's own nat table is as it was.
    assert_eq!(
        host_capture_rules()?,
        host_before,
        "the init container's rules reached the host's network namespace"
    );

    // The test app starts and listens.
    let echo = Bundle::new(&by_name("weft-echo")?)?;
    let listen = format!("127.0.0.1:{}", weft_e2e::free_port()?);
    let (app, _c) = echo.spawn(
        &unique("echo"),
        &[
            "/usr/local/bin/weft-echo",
            "--listen",
            &listen,
            "--identity",
            "v1",
        ],
    )?;
    wait_for_line(&app, &format!("listening on {listen}"))?;
    let (status, body) = http_get(&listen)?;
    assert!(status.contains(" 200 "), "{status}");
    assert_eq!(body, "v1");

    // pause runs until it is killed.
    let pause = Bundle::new(&by_name("pause")?)?;
    let (paused, _c) = pause.spawn(&unique("pause"), &[])?;
    std::thread::sleep(Duration::from_secs(1));
    assert!(paused.is_running(), "{}", paused.log_tail(10));
    Ok(())
}

/// The host network namespace's `ISTIO_` nat rules, from the host's
/// `iptables-save`.
fn host_capture_rules() -> Result<Vec<String>> {
    let out = Command::new("iptables-save").args(["-t", "nat"]).output()?;
    if !out.status.success() {
        bail!("iptables-save: {}", weft_e2e::output_text(&out));
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|line| line.contains("ISTIO_"))
        .map(str::to_string)
        .collect())
}
