//! The images `make images` writes (and the node tests run), each unpacked
//! into a runc bundle and run for real under Debian's `runc`, as the user
//! its config names: the control plane's `weft`, the proxy's `weft agent`,
//! Envoy and iptables, the test app, and pause. Needs root and runc
//! (`apt-get install runc`): without them the test fails saying so.

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
        let user = image["User"].as_str().unwrap_or("0:0");
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
        // The host's network (a new namespace's loopback is down).
        if let Some(namespaces) = spec["linux"]["namespaces"].as_array_mut() {
            namespaces.retain(|ns| ns["type"] != "network");
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
        let (process, _container) = self.spawn(id, args)?;
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

    // pause runs until it is killed.
    let pause = Bundle::new(&by_name("pause")?)?;
    let (paused, _c) = pause.spawn(&unique("pause"), &[])?;
    std::thread::sleep(Duration::from_secs(1));
    assert!(paused.is_running(), "{}", paused.log_tail(10));
    Ok(())
}
