//! What a node does to the machine and how it is undone: the teardown
//! (see the parent module's docs for its order), the [`MachineState`]
//! checked after it, and the host commands both shell out to (`ctr`,
//! `ip`, `iptables`, mounts, cgroups).

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};

use super::{
    BRIDGE, KubeNode, LOG_TAIL_LINES, MACHINE_DIRS, NODE_CHAIN_PREFIXES, POD_STOP_TIMEOUT,
};
use crate::k8s_tools::kube_proxy_binary;

impl KubeNode {
    /// Stops the pods and everything else (see the module docs); each step
    /// runs even if one before it failed, and failures are reported.
    pub(super) fn teardown(&mut self) {
        let mut problems = Vec::new();
        for process in [self.scheduler.take(), self.controller_manager.take()]
            .into_iter()
            .flatten()
        {
            let _ = process.kill();
        }
        if let Err(err) = self.stop_pods() {
            problems.push(format!("{err:#}"));
        }
        if let Some(kubelet) = self.kubelet.take() {
            let _ = kubelet.kill();
        }
        let socket = self.dir.as_ref().map(|d| d.path().join("containerd.sock"));
        if let (Some(socket), Some(_)) = (&socket, &self.containerd) {
            remove_containers(socket, &mut problems);
        }
        if let Some(containerd) = self.containerd.take() {
            let _ = containerd.kill();
        }
        if let Some(dir) = &self.dir {
            kill_processes_mentioning(dir.path(), &mut problems);
        }
        if let Some(proxy) = self.kube_proxy.take() {
            let _ = proxy.kill();
            if let Ok(binary) = kube_proxy_binary() {
                match Command::new(binary)
                    .args(["--cleanup", "--proxy-mode=iptables"])
                    .output()
                {
                    Ok(out) if out.status.success() => {}
                    Ok(out) => problems.push(format!(
                        "kube-proxy --cleanup: {}",
                        crate::procs::output_text(&out)
                    )),
                    Err(err) => problems.push(format!("kube-proxy --cleanup: {err}")),
                }
            }
        }
        if let Some(coredns) = self.coredns.take() {
            let _ = coredns.kill();
        }
        for netns in cni_netns().difference(&self.netns_before) {
            if let Err(err) = run_quiet("ip", &["netns", "delete", netns]) {
                problems.push(format!("{err:#}"));
            }
        }
        if link_exists(BRIDGE)
            && let Err(err) = run_quiet("ip", &["link", "delete", BRIDGE])
        {
            problems.push(format!("{err:#}"));
        }
        if let Some(dir) = &self.dir {
            unmount_under(dir.path(), &mut problems);
            remove_log_links(dir.path(), &mut problems);
        }
        remove_cgroups(&self.cgroup_root, &mut problems);
        remove_new_chains(&self.chains_before, &mut problems);
        for dir in &self.created_dirs {
            if Path::new(dir).exists()
                && let Err(err) = fs::remove_dir_all(dir)
            {
                problems.push(format!("removing {dir}: {err}"));
            }
        }
        self.plane = None;
        if let Some(dir) = self.dir.take()
            && let Err(err) = dir.close()
        {
            problems.push(format!("removing the node's temp dir: {err}"));
        }
        if !problems.is_empty() {
            eprintln!(
                "weft-e2e: the node's teardown left problems:\n{}",
                problems.join("\n")
            );
        }
    }

    /// Deletes every pod (owners first, so nothing recreates them) and
    /// waits for the kubelet to stop their containers and sandboxes.
    fn stop_pods(&self) -> Result<()> {
        let (Some(plane), Some(kubelet)) = (&self.plane, &self.kubelet) else {
            return Ok(());
        };
        if !kubelet.is_running() {
            return Ok(());
        }
        let _ = plane.kubectl(&[
            "delete",
            "deployments,replicasets,daemonsets,statefulsets,jobs",
            "--all",
            "--all-namespaces",
            "--wait=false",
        ]);
        let _ = plane.kubectl(&[
            "delete",
            "pods",
            "--all",
            "--all-namespaces",
            "--grace-period=1",
            "--wait=false",
        ]);
        let socket = self.containerd_socket();
        let started = Instant::now();
        loop {
            let sandboxes = running_tasks(&socket)?;
            if sandboxes.is_empty() {
                return Ok(());
            }
            if started.elapsed() > POD_STOP_TIMEOUT {
                bail!(
                    "the kubelet did not stop {} container(s) within {POD_STOP_TIMEOUT:?}; \
                     its output ends with:\n{}",
                    sandboxes.len(),
                    kubelet.log_tail(LOG_TAIL_LINES)
                );
            }
            thread::sleep(Duration::from_millis(500));
        }
    }
}

impl Drop for KubeNode {
    fn drop(&mut self) {
        if thread::panicking() {
            eprintln!(
                "weft-e2e: the kubelet's output ends with:\n{}",
                self.kubelet_log_tail()
            );
        }
        self.teardown();
    }
}

/// What a node may leave on the machine, for checking that it left
/// nothing: `cni-*` network namespaces, the bridge, the node's iptables
/// chains, mounts and processes under a node directory, the kubelet's
/// cgroup roots, and the machine directories the components create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MachineState(BTreeSet<String>);

impl MachineState {
    pub fn capture() -> Self {
        let mut seen = BTreeSet::new();
        seen.extend(
            cni_netns()
                .into_iter()
                .map(|n| format!("network namespace {n}")),
        );
        if link_exists(BRIDGE) {
            seen.insert(format!("link {BRIDGE}"));
        }
        seen.extend(
            iptables_chains()
                .into_iter()
                .map(|(table, chain)| format!("iptables chain {table}/{chain}")),
        );
        let mountinfo = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        seen.extend(
            mountinfo
                .lines()
                .filter_map(|line| line.split(' ').nth(4))
                .filter(|point| point.contains("weft-e2e-node-"))
                .map(|point| format!("mount {point}")),
        );
        for entry in fs::read_dir("/proc").into_iter().flatten().flatten() {
            let cmdline = fs::read(entry.path().join("cmdline")).unwrap_or_default();
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            if cmdline.contains("weft-e2e-node-") {
                seen.insert(format!("process {}", cmdline.trim()));
            }
        }
        for hierarchy in fs::read_dir("/sys/fs/cgroup")
            .into_iter()
            .flatten()
            .flatten()
        {
            for entry in fs::read_dir(hierarchy.path())
                .into_iter()
                .flatten()
                .flatten()
            {
                let name = entry.file_name().to_string_lossy().to_string();
                if name.starts_with("weft-e2e-") && entry.path().is_dir() {
                    seen.insert(format!("cgroup {}", entry.path().display()));
                }
            }
        }
        seen.extend(
            MACHINE_DIRS
                .into_iter()
                .filter(|d| Path::new(d).exists())
                .map(|d| format!("directory {d}")),
        );
        Self(seen)
    }

    /// What is here now that was not in `before`.
    pub fn new_since(&self, before: &MachineState) -> Vec<String> {
        self.0.difference(&before.0).cloned().collect()
    }
}

/// `ctr --address SOCKET -n k8s.io ARGS`.
pub(super) fn ctr(socket: &Path, args: &[&str]) -> Result<Output> {
    Command::new("ctr")
        .arg("--address")
        .arg(socket)
        .args(["-n", "k8s.io"])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|err| anyhow!("running ctr ({err}); install it: apt-get install containerd"))
}

/// The ids of containerd's running tasks (containers and sandboxes).
fn running_tasks(socket: &Path) -> Result<Vec<String>> {
    let out = ctr(socket, &["tasks", "ls"])?;
    if !out.status.success() {
        bail!("ctr tasks ls: {}", crate::procs::output_text(&out));
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .skip(1)
        .filter(|line| line.contains("RUNNING") || line.contains("CREATED"))
        .filter_map(|line| line.split_whitespace().next().map(String::from))
        .collect())
}

/// Kills and deletes every task and container containerd still has.
fn remove_containers(socket: &Path, problems: &mut Vec<String>) {
    let Ok(out) = ctr(socket, &["containers", "ls", "-q"]) else {
        return;
    };
    for id in String::from_utf8_lossy(&out.stdout).split_whitespace() {
        let _ = ctr(socket, &["tasks", "kill", "-s", "SIGKILL", id]);
        let _ = ctr(socket, &["tasks", "delete", "-f", id]);
        match ctr(socket, &["containers", "delete", id]) {
            Ok(out) if out.status.success() => {}
            Ok(out) => problems.push(format!(
                "ctr containers delete {id}: {}",
                crate::procs::output_text(&out)
            )),
            Err(err) => problems.push(format!("{err:#}")),
        }
    }
}

/// SIGKILLs processes whose command line mentions `dir` (containerd's
/// shims, which outlive containerd).
fn kill_processes_mentioning(dir: &Path, problems: &mut Vec<String>) {
    let needle = dir.display().to_string();
    let me = std::process::id();
    let Ok(procs) = fs::read_dir("/proc") else {
        return;
    };
    for entry in procs.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        if u32::try_from(pid).is_ok_and(|p| p == me) {
            continue;
        }
        let cmdline = fs::read(entry.path().join("cmdline")).unwrap_or_default();
        if String::from_utf8_lossy(&cmdline).contains(&needle)
            && let Some(pid) = rustix::process::Pid::from_raw(pid)
            && let Err(err) = rustix::process::kill_process(pid, rustix::process::Signal::KILL)
        {
            problems.push(format!("killing process {pid:?}: {err}"));
        }
    }
}

/// The `cni-*` network namespaces (`ip netns`).
pub(super) fn cni_netns() -> BTreeSet<String> {
    fs::read_dir("/var/run/netns")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|name| name.starts_with("cni-"))
        .collect()
}

fn link_exists(name: &str) -> bool {
    Path::new("/sys/class/net").join(name).exists()
}

fn run_quiet(program: &str, args: &[&str]) -> Result<()> {
    let out = Command::new(program)
        .args(args)
        .output()
        .with_context(|| format!("running {program}"))?;
    if !out.status.success() {
        bail!(
            "`{program} {}` failed: {}",
            args.join(" "),
            crate::procs::output_text(&out)
        );
    }
    Ok(())
}

/// `(table, chain)` of every user-defined chain the node's components may
/// create, in iptables and ip6tables (`ip6:` tables).
pub(super) fn iptables_chains() -> BTreeSet<(String, String)> {
    let mut chains = BTreeSet::new();
    for (program, prefix) in [("iptables-save", ""), ("ip6tables-save", "ip6:")] {
        let Ok(out) = Command::new(program).output() else {
            continue;
        };
        let mut table = String::new();
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            if let Some(name) = line.strip_prefix('*') {
                table = format!("{prefix}{name}");
            } else if let Some(chain) = line.strip_prefix(':')
                && let Some(name) = chain.split_whitespace().next()
                && NODE_CHAIN_PREFIXES.iter().any(|p| name.starts_with(p))
            {
                chains.insert((table.clone(), name.to_string()));
            }
        }
    }
    chains
}

/// Removes the chains (and the rules jumping to them) that appeared since
/// `before`: the kubelet's canaries and firewall, what kube-proxy's
/// `--cleanup` left.
fn remove_new_chains(before: &BTreeSet<(String, String)>, problems: &mut Vec<String>) {
    let new: BTreeSet<(String, String)> = iptables_chains().difference(before).cloned().collect();
    for (save, restore, prefix) in [
        ("iptables-save", "iptables-restore", ""),
        ("ip6tables-save", "ip6tables-restore", "ip6:"),
    ] {
        let Ok(out) = Command::new(save).output() else {
            continue;
        };
        let mut script = String::new();
        let mut table = String::new();
        let mut body = String::new();
        let is_new =
            |table: &str, chain: &str| new.contains(&(table.to_string(), chain.to_string()));
        let flush = |table: &str, body: &mut String, script: &mut String| {
            let chains: Vec<&String> = new
                .iter()
                .filter(|(t, _)| t == table)
                .map(|(_, c)| c)
                .collect();
            if body.is_empty() && chains.is_empty() {
                return;
            }
            let name = table.trim_start_matches("ip6:");
            script.push_str(&format!("*{name}\n{body}"));
            for chain in &chains {
                script.push_str(&format!("-F {chain}\n"));
            }
            for chain in &chains {
                script.push_str(&format!("-X {chain}\n"));
            }
            script.push_str("COMMIT\n");
            body.clear();
        };
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            if let Some(name) = line.strip_prefix('*') {
                table = format!("{prefix}{name}");
            } else if line == "COMMIT" {
                flush(&table, &mut body, &mut script);
            } else if let Some(rule) = line.strip_prefix("-A ") {
                let chain = rule.split_whitespace().next().unwrap_or("");
                let target = rule
                    .split_whitespace()
                    .skip_while(|w| *w != "-j")
                    .nth(1)
                    .unwrap_or("");
                if !is_new(&table, chain) && is_new(&table, target) {
                    body.push_str(&format!("-D {rule}\n"));
                }
            }
        }
        if script.is_empty() {
            continue;
        }
        let result = Command::new(restore)
            .arg("--noflush")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .and_then(|mut child| {
                if let Some(mut stdin) = child.stdin.take() {
                    use std::io::Write as _;
                    stdin.write_all(script.as_bytes())?;
                }
                child.wait_with_output()
            });
        match result {
            Ok(out) if out.status.success() => {}
            Ok(out) => problems.push(format!(
                "{restore} removing the node's chains: {}\n{script}",
                crate::procs::output_text(&out)
            )),
            Err(err) => problems.push(format!("{restore}: {err}")),
        }
    }
}

/// Unmounts (lazily, deepest first) everything mounted under `dir`.
fn unmount_under(dir: &Path, problems: &mut Vec<String>) {
    let prefix = dir.display().to_string();
    let mountinfo = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut points: Vec<String> = mountinfo
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(|point| point.replace("\\040", " "))
        .filter(|point| point.starts_with(&prefix))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.len()));
    points.dedup();
    for point in points {
        if let Err(err) =
            rustix::mount::unmount(point.as_str(), rustix::mount::UnmountFlags::DETACH)
        {
            problems.push(format!("unmounting {point}: {err}"));
        }
    }
}

/// Removes the kubelet's `/var/log/containers` links into `dir`.
fn remove_log_links(dir: &Path, problems: &mut Vec<String>) {
    let Ok(entries) = fs::read_dir("/var/log/containers") else {
        return;
    };
    for entry in entries.flatten() {
        let points_here = fs::read_link(entry.path()).is_ok_and(|target| target.starts_with(dir));
        if points_here && let Err(err) = fs::remove_file(entry.path()) {
            problems.push(format!("removing {}: {err}", entry.path().display()));
        }
    }
}

/// Creates cgroup `root` in every v1 hierarchy (the kubelet wants its
/// cgroup root to exist), with the parent's CPUs and memory nodes for
/// cpuset (a new cpuset is empty otherwise).
pub(super) fn create_cgroups(root: &str) -> Result<()> {
    for hierarchy in fs::read_dir("/sys/fs/cgroup")
        .context("reading /sys/fs/cgroup (the kubelet needs cgroups)")?
        .flatten()
    {
        let name = hierarchy.file_name().to_string_lossy().to_string();
        if name == "unified" || !hierarchy.path().join("cgroup.procs").exists() {
            continue;
        }
        let dir = hierarchy.path().join(root.trim_start_matches('/'));
        fs::create_dir_all(&dir).with_context(|| format!("creating cgroup {}", dir.display()))?;
        if name == "cpuset" {
            for file in ["cpuset.cpus", "cpuset.mems"] {
                let value = fs::read_to_string(hierarchy.path().join(file))
                    .with_context(|| format!("reading the root {file}"))?;
                fs::write(dir.join(file), value.trim())
                    .with_context(|| format!("writing {}", dir.join(file).display()))?;
            }
        }
    }
    Ok(())
}

/// Removes the kubelet's cgroup tree `root` from every v1 hierarchy
/// (deepest first: a cgroup directory goes with `rmdir` once empty).
fn remove_cgroups(root: &str, problems: &mut Vec<String>) {
    let Ok(hierarchies) = fs::read_dir("/sys/fs/cgroup") else {
        return;
    };
    for hierarchy in hierarchies.flatten() {
        let top = hierarchy.path().join(root.trim_start_matches('/'));
        if !top.is_dir() {
            continue;
        }
        let mut dirs = Vec::new();
        collect_dirs(&top, &mut dirs);
        dirs.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
        for dir in dirs {
            if let Err(err) = fs::remove_dir(&dir) {
                problems.push(format!("removing cgroup {}: {err}", dir.display()));
            }
        }
    }
}

fn collect_dirs(dir: &Path, out: &mut Vec<PathBuf>) {
    out.push(dir.to_path_buf());
    for entry in fs::read_dir(dir).into_iter().flatten().flatten() {
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            collect_dirs(&entry.path(), out);
        }
    }
}
