//! A real one-node Kubernetes cluster on this machine: the [`KubeNode`]
//! fixture runs pods as real containers.
//!
//! ```text
//!  ControlPlane::start_for_node(host address)   etcd + kube-apiserver on the host's address
//!  containerd   (Debian's; its own root, state and socket in the node's temp dir;
//!                CRI with restrict_oom_score_adj, the local pause image)
//!    └─ runc    (Debian's) runs every container
//!  CNI          bridge `weft-e2e0` 10.244.0.1/24 + host-local IPAM + loopback
//!  kubelet      cgroupfs driver under cgroup root /weft-e2e-<pid>, pod logs in the temp dir
//!  kube-controller-manager   Deployments, ReplicaSets, EndpointSlices, ServiceAccounts,
//!                            kube-root-ca.crt ConfigMaps
//!  kube-scheduler
//!  kube-proxy   iptables mode (--masquerade-all: replies to cluster IPs come back
//!               through the host, with no bridge netfilter needed)
//!  CoreDNS      on a free port of the host's address, behind Service kube-system/kube-dns
//!               (10.96.0.10:53, an EndpointSlice of the test's), the kubelet's cluster DNS
//! ```
//!
//! Images come from archives the test built ([`crate::images`]), imported
//! into containerd's `k8s.io` namespace: nothing is pulled, pods use
//! `imagePullPolicy: IfNotPresent` or `Never`.
//!
//! What this machine needed (a VM with cgroup v1 and no `CAP_SYS_RESOURCE`):
//! kubelet `cgroupDriver: cgroupfs`, `failCgroupV1: false`, `failSwapOn:
//! false`; containerd's CRI `restrict_oom_score_adj = true` (without it
//! runc cannot lower a sandbox's OOM score and every sandbox fails).
//!
//! Cleanup, on drop, in this order, leaves nothing behind: the scheduler and
//! controller-manager stop (nothing is recreated), every pod is deleted
//! and the kubelet stops their containers and sandboxes (CNI DEL removes
//! each pod's network namespace and veth); then the kubelet stops, any
//! container left is killed through `ctr`, containerd and its shims stop,
//! kube-proxy removes its iptables rules (`--cleanup`), CoreDNS stops, the
//! bridge, leftover `cni-*` network namespaces of this node, mounts under
//! its directory, its cgroups and its `/var/log/containers` links are
//! removed, and finally the control plane and the temp dir go.
//!
//! One node runs per machine at a time (a file lock): the bridge, the pod
//! range and kube-proxy's chains are machine-wide. Everything needs root,
//! Debian's `containerd` and `runc`, `iptables` and `iproute2`; a missing
//! one is an error saying what to install.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use tempfile::TempDir;

use crate::client::non_loopback_ip;
use crate::control_plane::ControlPlane;
use crate::k8s_tools::{
    cni_plugin_binaries, coredns_binary, kube_controller_manager_binary, kube_proxy_binary,
    kube_scheduler_binary, kubelet_binary,
};
use crate::procs::{Process, free_port_on};

mod config;
mod machine;

use config::{containerd_config, dns_service, kubelet_config};
pub use machine::MachineState;
use machine::{cni_netns, create_cgroups, ctr, iptables_chains};

/// The node's name (the kubelet registers it).
pub const NODE_NAME: &str = "weft-e2e-node";
/// The pods' range: a /24 no network of this machine uses.
pub const POD_CIDR: &str = "10.244.0.0/24";
/// The bridge the pods' veths attach to; the host's address on it is the
/// pods' gateway.
pub const BRIDGE: &str = "weft-e2e0";
/// The cluster DNS Service's address (in [`crate::control_plane`]'s
/// Service range).
pub const DNS_SERVICE_IP: &str = "10.96.0.10";
/// How long the node may take to register and be Ready.
pub const NODE_READY_TIMEOUT: Duration = Duration::from_secs(180);
/// How long the teardown waits for the kubelet to stop the pods.
const POD_STOP_TIMEOUT: Duration = Duration::from_secs(90);
/// Log lines quoted in errors.
const LOG_TAIL_LINES: usize = 40;
/// Directories outside the node's own that its components create
/// (containerd's CNI result cache and shim sockets, runc's state, the
/// kubelet's log links).
const MACHINE_DIRS: [&str; 4] = [
    "/var/lib/cni",
    "/run/containerd",
    "/var/log/containers",
    "/var/log/pods",
];
/// The iptables chain prefixes of the kubelet, kube-proxy and CNI.
const NODE_CHAIN_PREFIXES: [&str; 2] = ["KUBE-", "CNI-"];

/// What the node runs pods from.
#[derive(Debug, Clone)]
pub struct NodeImages {
    /// Image archives (OCI or docker-archive tars) imported into
    /// containerd before the kubelet starts.
    pub archives: Vec<PathBuf>,
    /// The pod sandbox image (`name:tag`), one of the archives'.
    pub sandbox_image: String,
}

/// A running one-node cluster; torn down on drop (see the module docs).
#[derive(Debug)]
pub struct KubeNode {
    plane: Option<ControlPlane>,
    containerd: Option<Process>,
    kubelet: Option<Process>,
    controller_manager: Option<Process>,
    scheduler: Option<Process>,
    kube_proxy: Option<Process>,
    coredns: Option<Process>,
    host_ip: Ipv4Addr,
    cgroup_root: String,
    /// `cni-*` network namespaces that existed before this node started.
    netns_before: BTreeSet<String>,
    /// `(table, chain)` of the iptables chains that existed before.
    chains_before: BTreeSet<(String, String)>,
    /// Machine directories the node's components create that did not exist
    /// before (removed at the end).
    created_dirs: Vec<&'static str>,
    /// The machine before the node started (with the lock held).
    machine_before: MachineState,
    _lock: File,
    dir: Option<TempDir>,
}

impl KubeNode {
    /// Builds the tools if needed, starts everything (see the module docs)
    /// and returns once the node is Ready, CoreDNS answers through its
    /// Service and namespace `default` has its ServiceAccount. Blocks: from
    /// async code, call it in `spawn_blocking`.
    pub fn start(images: &NodeImages) -> Result<Self> {
        require_root_tools()?;
        let lock = machine_lock()?;
        let machine_before = MachineState::capture();
        let started = Instant::now();
        let kubelet_bin = kubelet_binary()?;
        let controller_manager_bin = kube_controller_manager_binary()?;
        let scheduler_bin = kube_scheduler_binary()?;
        let proxy_bin = kube_proxy_binary()?;
        let coredns_bin = coredns_binary()?;
        let cni = cni_plugin_binaries()?;
        let host_ip = match non_loopback_ip()? {
            std::net::IpAddr::V4(ip) => ip,
            other => bail!("the node needs an IPv4 host address, found only {other}"),
        };

        let dir = tempfile::Builder::new()
            .prefix("weft-e2e-node-")
            .tempdir_in("/tmp")
            .context("creating the node's temp dir")?;
        let cgroup_root = format!("/weft-e2e-{}", std::process::id());
        let mut node = Self {
            plane: None,
            containerd: None,
            kubelet: None,
            controller_manager: None,
            scheduler: None,
            kube_proxy: None,
            coredns: None,
            host_ip,
            cgroup_root,
            machine_before,
            netns_before: cni_netns(),
            chains_before: iptables_chains(),
            created_dirs: MACHINE_DIRS
                .into_iter()
                .filter(|d| !Path::new(d).exists())
                .collect(),
            _lock: lock,
            dir: Some(dir),
        };
        // Any failure from here on drops `node`, which cleans up what ran.
        node.plane = Some(ControlPlane::start_for_node(host_ip)?);
        node.start_containerd(images)?;
        node.write_cni(&cni)?;
        node.start_control_loops(&controller_manager_bin, &scheduler_bin)?;
        node.start_kube_proxy(&proxy_bin)?;
        node.start_coredns(&coredns_bin)?;
        node.start_kubelet(&kubelet_bin)?;
        node.wait_ready()?;
        eprintln!(
            "weft-e2e: node {NODE_NAME} Ready at {host_ip} in {:.1?}",
            started.elapsed()
        );
        Ok(node)
    }

    /// The cluster's apiserver, etcd and kubectl.
    pub fn plane(&self) -> &ControlPlane {
        self.plane
            .as_ref()
            .unwrap_or_else(|| unreachable!("the control plane runs until drop"))
    }

    /// The host's address (the apiserver's, the node's InternalIP).
    pub fn host_ip(&self) -> Ipv4Addr {
        self.host_ip
    }

    /// `kubectl` with the admin kubeconfig, failing unless it exits 0.
    pub fn kubectl_ok(&self, args: &[&str]) -> Result<String> {
        self.plane().kubectl_ok(args)
    }

    /// `kubectl apply -f -` of `yaml`.
    pub fn apply(&self, yaml: &str) -> Result<String> {
        self.plane().kubectl_stdin_ok(&["apply", "-f", "-"], yaml)
    }

    fn dir(&self) -> &Path {
        self.dir
            .as_ref()
            .map(TempDir::path)
            .unwrap_or_else(|| unreachable!("the dir lives until drop"))
    }

    fn kubeconfig(&self) -> PathBuf {
        self.plane().kubeconfig().to_path_buf()
    }

    fn containerd_socket(&self) -> PathBuf {
        self.dir().join("containerd.sock")
    }

    /// The logs of every container of `pod` in `namespace`, as the kubelet
    /// wrote them (`<container>: <line>`), for error messages.
    pub fn pod_logs(&self, namespace: &str, pod: &str) -> String {
        let prefix = format!("{namespace}_{pod}_");
        let mut text = String::new();
        let Ok(pods) = fs::read_dir(self.dir().join("pod-logs")) else {
            return text;
        };
        for entry in pods.flatten() {
            if !entry.file_name().to_string_lossy().starts_with(&prefix) {
                continue;
            }
            let Ok(containers) = fs::read_dir(entry.path()) else {
                continue;
            };
            for container in containers.flatten() {
                let name = container.file_name().to_string_lossy().to_string();
                let Ok(files) = fs::read_dir(container.path()) else {
                    continue;
                };
                let mut files: Vec<PathBuf> = files.flatten().map(|f| f.path()).collect();
                files.sort();
                for file in files {
                    for line in fs::read_to_string(&file).unwrap_or_default().lines() {
                        // CRI format: <time> <stream> <tag> <message>.
                        let message = line.splitn(4, ' ').nth(3).unwrap_or(line);
                        text.push_str(&format!("{name}: {message}\n"));
                    }
                }
            }
        }
        text
    }

    /// The last lines of the kubelet's own log.
    pub fn kubelet_log_tail(&self) -> String {
        self.kubelet
            .as_ref()
            .map(|k| k.log_tail(LOG_TAIL_LINES))
            .unwrap_or_default()
    }

    /// Runs `command` in the network namespace of `pod`'s sandbox (through
    /// `nsenter`, with the host's binaries): what the pod's network looks
    /// like from inside.
    pub fn exec_in_pod_network(
        &self,
        namespace: &str,
        pod: &str,
        command: &[&str],
    ) -> Result<String> {
        let socket = self.containerd_socket();
        let filter = format!(
            "labels.\"io.kubernetes.pod.name\"=={pod},labels.\"io.kubernetes.pod.namespace\"=={namespace},labels.\"io.cri-containerd.kind\"==sandbox"
        );
        let out = ctr(&socket, &["containers", "ls", "-q", &filter])?;
        let ids: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .map(String::from)
            .collect();
        let tasks = ctr(&socket, &["tasks", "ls"])?;
        let tasks = String::from_utf8_lossy(&tasks.stdout);
        let pid = tasks
            .lines()
            .filter_map(|line| {
                let mut fields = line.split_whitespace();
                let id = fields.next()?;
                let pid = fields.next()?;
                let running = line.contains("RUNNING");
                (running && ids.iter().any(|i| i == id)).then(|| pid.to_string())
            })
            .next()
            .with_context(|| format!("no running sandbox for pod {namespace}/{pod} ({ids:?})"))?;
        let out = Command::new("nsenter")
            .arg(format!("--net=/proc/{pid}/ns/net"))
            .arg("--")
            .args(command)
            .output()
            .context("running nsenter (apt-get install util-linux)")?;
        if !out.status.success() {
            bail!(
                "`{}` in pod {namespace}/{pod}'s network failed: {}",
                command.join(" "),
                crate::procs::output_text(&out)
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Imports an image archive into containerd's `k8s.io` namespace.
    pub fn import_image(&self, archive: &Path) -> Result<()> {
        let started = Instant::now();
        let socket = self.containerd_socket();
        let out = ctr(
            &socket,
            &[
                "images",
                "import",
                "--no-unpack=false",
                &archive.display().to_string(),
            ],
        )?;
        if !out.status.success() {
            bail!(
                "`ctr images import {}` failed: {}",
                archive.display(),
                crate::procs::output_text(&out)
            );
        }
        eprintln!(
            "weft-e2e: imported {} in {:.1?}",
            archive.display(),
            started.elapsed()
        );
        Ok(())
    }

    fn start_containerd(&mut self, images: &NodeImages) -> Result<()> {
        let dir = self.dir().to_path_buf();
        let config = dir.join("containerd.toml");
        fs::write(&config, containerd_config(&dir, &images.sandbox_image))
            .with_context(|| format!("writing {}", config.display()))?;
        let mut command = Command::new("containerd");
        command.arg("--config").arg(&config);
        let containerd = Process::spawn("containerd", command)?;
        let socket = self.containerd_socket();
        let started = Instant::now();
        loop {
            if ctr(&socket, &["version"]).is_ok_and(|out| out.status.success()) {
                break;
            }
            if !containerd.is_running() || started.elapsed() > Duration::from_secs(30) {
                thread::sleep(Duration::from_millis(100));
                bail!(
                    "containerd did not answer on {} ({:?}); its output ends with:\n{}",
                    socket.display(),
                    containerd.exit_status(),
                    containerd.log_tail(LOG_TAIL_LINES)
                );
            }
            thread::sleep(Duration::from_millis(100));
        }
        self.containerd = Some(containerd);
        for archive in &images.archives {
            self.import_image(archive)?;
        }
        Ok(())
    }

    fn write_cni(&self, plugins: &[(&str, PathBuf)]) -> Result<()> {
        let bin = self.dir().join("cni/bin");
        let conf = self.dir().join("cni/net.d");
        for dir in [&bin, &conf] {
            fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        for (name, binary) in plugins {
            std::os::unix::fs::symlink(binary, bin.join(name))
                .with_context(|| format!("linking CNI plugin {name}"))?;
        }
        let conflist = serde_json::json!({
            "cniVersion": "1.0.0",
            "name": "weft-e2e",
            "plugins": [{
                "type": "bridge",
                "bridge": BRIDGE,
                "isGateway": true,
                "ipMasq": false,
                "hairpinMode": true,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": POD_CIDR}]],
                    "routes": [{"dst": "0.0.0.0/0"}],
                    "dataDir": self.dir().join("cni/ipam").display().to_string(),
                },
            }],
        });
        let path = conf.join("10-weft-e2e.conflist");
        fs::write(&path, serde_json::to_string_pretty(&conflist)?)
            .with_context(|| format!("writing {}", path.display()))
    }

    fn start_control_loops(&mut self, controller_manager: &Path, scheduler: &Path) -> Result<()> {
        let pki = self.plane().pki().clone();
        let mut command = self.control_loop_command(controller_manager, "kcm")?;
        command
            .arg(format!(
                "--service-cluster-ip-range={}",
                crate::control_plane::SERVICE_CLUSTER_IP_RANGE
            ))
            .arg(format!("--root-ca-file={}", pki.serving_ca.display()))
            .arg(format!(
                "--service-account-private-key-file={}",
                pki.service_account_key.display()
            ))
            .arg("--use-service-account-credentials=false");
        self.controller_manager = Some(Process::spawn("kube-controller-manager", command)?);
        let command = self.control_loop_command(scheduler, "scheduler")?;
        self.scheduler = Some(Process::spawn("kube-scheduler", command)?);
        Ok(())
    }

    /// The flags kube-controller-manager and kube-scheduler share: the
    /// admin kubeconfig for everything, no leader election, their secure
    /// port on a free loopback port with a certificate in `cert_dir`.
    fn control_loop_command(&self, binary: &Path, cert_dir: &str) -> Result<Command> {
        let kubeconfig = self.kubeconfig().display().to_string();
        let mut command = Command::new(binary);
        command
            .arg(format!("--kubeconfig={kubeconfig}"))
            .arg(format!("--authentication-kubeconfig={kubeconfig}"))
            .arg(format!("--authorization-kubeconfig={kubeconfig}"))
            .arg("--leader-elect=false")
            .arg("--bind-address=127.0.0.1")
            .arg(format!(
                "--secure-port={}",
                free_port_on(Ipv4Addr::LOCALHOST.into())?
            ))
            .arg(format!(
                "--cert-dir={}",
                self.dir().join(cert_dir).display()
            ))
            .arg("--v=1");
        Ok(command)
    }

    fn kube_proxy_command(&self, proxy: &Path) -> Result<Command> {
        let localhost = Ipv4Addr::LOCALHOST;
        let mut command = Command::new(proxy);
        command
            .arg(format!("--kubeconfig={}", self.kubeconfig().display()))
            .arg("--proxy-mode=iptables")
            .arg(format!("--hostname-override={NODE_NAME}"))
            .arg(format!("--cluster-cidr={POD_CIDR}"))
            .arg("--masquerade-all=true")
            // Leave the machine's conntrack settings alone.
            .arg("--conntrack-max-per-core=0")
            .arg("--conntrack-tcp-timeout-established=0")
            .arg("--conntrack-tcp-timeout-close-wait=0")
            .arg(format!(
                "--healthz-bind-address={localhost}:{}",
                free_port_on(localhost.into())?
            ))
            .arg(format!(
                "--metrics-bind-address={localhost}:{}",
                free_port_on(localhost.into())?
            ))
            .arg("--v=1");
        Ok(command)
    }

    fn start_kube_proxy(&mut self, proxy: &Path) -> Result<()> {
        let command = self.kube_proxy_command(proxy)?;
        self.kube_proxy = Some(Process::spawn("kube-proxy", command)?);
        Ok(())
    }

    fn start_coredns(&mut self, coredns: &Path) -> Result<()> {
        let port = free_port_on(self.host_ip.into())?;
        let corefile = self.dir().join("Corefile");
        fs::write(
            &corefile,
            format!(
                ".:{port} {{
    bind {host}
    errors
    ready 127.0.0.1:{ready}
    kubernetes cluster.local in-addr.arpa ip6.arpa {{
        kubeconfig {kubeconfig} weft-e2e
        pods insecure
        ttl 5
    }}
    cache 5
}}
",
                host = self.host_ip,
                ready = free_port_on(Ipv4Addr::LOCALHOST.into())?,
                kubeconfig = self.kubeconfig().display(),
            ),
        )
        .with_context(|| format!("writing {}", corefile.display()))?;
        let mut command = Command::new(coredns);
        command.arg("-conf").arg(&corefile);
        let process = Process::spawn("coredns", command)?;
        self.coredns = Some(process);
        self.apply(&dns_service(self.host_ip, port))?;
        Ok(())
    }

    fn start_kubelet(&mut self, kubelet: &Path) -> Result<()> {
        create_cgroups(&self.cgroup_root)?;
        let dir = self.dir().to_path_buf();
        let config = dir.join("kubelet.yaml");
        fs::write(
            &config,
            kubelet_config(
                &dir,
                &self.containerd_socket(),
                &self.plane().pki().client_ca,
                &self.cgroup_root,
                free_port_on(Ipv4Addr::LOCALHOST.into())?,
            ),
        )
        .with_context(|| format!("writing {}", config.display()))?;
        let mut command = Command::new(kubelet);
        command
            .arg(format!("--config={}", config.display()))
            .arg(format!("--kubeconfig={}", self.kubeconfig().display()))
            .arg(format!("--root-dir={}", dir.join("kubelet").display()))
            .arg(format!("--cert-dir={}", dir.join("kubelet/pki").display()))
            .arg(format!("--hostname-override={NODE_NAME}"))
            .arg(format!("--node-ip={}", self.host_ip))
            .arg("--v=1");
        self.kubelet = Some(Process::spawn("kubelet", command)?);
        Ok(())
    }

    /// The node Ready, the `default` ServiceAccount created, and DNS
    /// answering through the Service.
    fn wait_ready(&self) -> Result<()> {
        let started = Instant::now();
        let checks: [(&str, &[&str], &str); 2] = [
            (
                "the node to be Ready",
                &[
                    "get",
                    "node",
                    NODE_NAME,
                    "-o",
                    "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}",
                ],
                "True",
            ),
            (
                "ServiceAccount default/default",
                &["get", "serviceaccount", "default", "-o", "name"],
                "serviceaccount/default",
            ),
        ];
        for (what, args, expected) in checks {
            loop {
                self.check_running()?;
                let out = self.plane().kubectl(args)?;
                let text = String::from_utf8_lossy(&out.stdout);
                if out.status.success() && text.trim() == expected {
                    break;
                }
                if started.elapsed() > NODE_READY_TIMEOUT {
                    bail!(
                        "waited {NODE_READY_TIMEOUT:?} for {what} (last: {} {}); the kubelet's \
                         output ends with:\n{}",
                        text.trim(),
                        String::from_utf8_lossy(&out.stderr).trim(),
                        self.kubelet_log_tail()
                    );
                }
                thread::sleep(Duration::from_millis(500));
            }
        }
        Ok(())
    }

    /// Fails if a component exited, quoting its output.
    pub fn check_running(&self) -> Result<()> {
        for process in [
            &self.containerd,
            &self.kubelet,
            &self.controller_manager,
            &self.scheduler,
            &self.kube_proxy,
            &self.coredns,
        ]
        .into_iter()
        .flatten()
        {
            if !process.is_running() {
                thread::sleep(Duration::from_millis(100));
                bail!(
                    "{} exited ({:?}); its output ends with:\n{}",
                    process.name(),
                    process.exit_status(),
                    process.log_tail(LOG_TAIL_LINES)
                );
            }
        }
        Ok(())
    }

    /// Waits until the pods `selector` picks in `namespace` are all Ready
    /// (at least `count` of them); returns their names.
    pub fn wait_pods_ready(
        &self,
        namespace: &str,
        selector: &str,
        count: usize,
        timeout: Duration,
    ) -> Result<Vec<String>> {
        let started = Instant::now();
        loop {
            self.check_running()?;
            let pods = self.pods(namespace, selector)?;
            let ready: Vec<String> = pods
                .iter()
                .filter(|p| p.ready && !p.terminating)
                .map(|p| p.name.clone())
                .collect();
            if ready.len() >= count && pods.iter().all(|p| p.ready || p.terminating) {
                return Ok(ready);
            }
            if started.elapsed() > timeout {
                let mut report = String::new();
                for pod in &pods {
                    report.push_str(&format!(
                        "pod {}/{}: phase {}, ready {}\n{}",
                        namespace,
                        pod.name,
                        pod.phase,
                        pod.ready,
                        self.pod_logs(namespace, &pod.name)
                    ));
                }
                let events = self
                    .plane()
                    .kubectl(&["get", "events", "-n", namespace])
                    .map(|out| crate::procs::output_text(&out))
                    .unwrap_or_default();
                bail!(
                    "waited {timeout:?} for {count} Ready pod(s) {selector} in {namespace}:\n\
                     {report}events:\n{events}\nthe kubelet's output ends with:\n{}",
                    self.kubelet_log_tail()
                );
            }
            thread::sleep(Duration::from_millis(500));
        }
    }

    /// The pods `selector` picks in `namespace`.
    pub fn pods(&self, namespace: &str, selector: &str) -> Result<Vec<PodState>> {
        let out =
            self.kubectl_ok(&["get", "pods", "-n", namespace, "-l", selector, "-o", "json"])?;
        let list: serde_json::Value = serde_json::from_str(&out).context("kubectl get pods")?;
        let items = list["items"].as_array().cloned().unwrap_or_default();
        Ok(items.iter().map(PodState::from_json).collect())
    }

    /// Tears the node down (as dropping it does) and checks, with the
    /// machine lock still held, that it left nothing behind: an error lists
    /// what survived.
    pub fn shutdown(mut self) -> Result<()> {
        self.teardown();
        let left = MachineState::capture().new_since(&self.machine_before);
        if !left.is_empty() {
            bail!("the node left behind: {left:#?}");
        }
        Ok(())
    }
}

/// A pod as [`KubeNode::pods`] reports it.
#[derive(Debug, Clone)]
pub struct PodState {
    pub name: String,
    pub phase: String,
    pub ready: bool,
    pub terminating: bool,
    pub ip: Option<Ipv4Addr>,
    /// Names of the init containers and containers, in order.
    pub init_containers: Vec<String>,
    pub containers: Vec<String>,
    /// When each running container started (RFC 3339, by name).
    pub started_at: BTreeMap<String, String>,
    /// The exit code of each container that ran to its end (by name).
    pub exit_codes: BTreeMap<String, i64>,
}

impl PodState {
    fn from_json(pod: &serde_json::Value) -> Self {
        let names = |list: &serde_json::Value| -> Vec<String> {
            list.as_array()
                .into_iter()
                .flatten()
                .filter_map(|c| c["name"].as_str().map(String::from))
                .collect()
        };
        let ready = pod["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| c["type"] == "Ready" && c["status"] == "True");
        let statuses = ["initContainerStatuses", "containerStatuses"]
            .into_iter()
            .flat_map(|key| pod["status"][key].as_array().cloned().unwrap_or_default());
        let (mut started_at, mut exit_codes) = (BTreeMap::new(), BTreeMap::new());
        for status in statuses {
            let name = status["name"].as_str().unwrap_or("").to_string();
            if let Some(at) = status["state"]["running"]["startedAt"].as_str() {
                started_at.insert(name.clone(), at.to_string());
            }
            if let Some(code) = status["state"]["terminated"]["exitCode"].as_i64() {
                exit_codes.insert(name, code);
            }
        }
        Self {
            started_at,
            exit_codes,
            name: pod["metadata"]["name"].as_str().unwrap_or("").to_string(),
            phase: pod["status"]["phase"].as_str().unwrap_or("").to_string(),
            ready,
            terminating: !pod["metadata"]["deletionTimestamp"].is_null(),
            ip: pod["status"]["podIP"]
                .as_str()
                .and_then(|ip| ip.parse().ok()),
            init_containers: names(&pod["spec"]["initContainers"]),
            containers: names(&pod["spec"]["containers"]),
        }
    }
}

/// Whether this machine can run a [`KubeNode`]: root, the host tools it
/// shells out to, and cgroups. The error says what is missing.
pub fn can_run_pods() -> Result<()> {
    require_root_tools()?;
    if !Path::new("/sys/fs/cgroup/cpu").is_dir()
        && !Path::new("/sys/fs/cgroup/cgroup.controllers").is_file()
    {
        bail!("no cgroup hierarchy is mounted at /sys/fs/cgroup");
    }
    Ok(())
}

/// Root, and the host tools the node shells out to.
fn require_root_tools() -> Result<()> {
    if !rustix::process::geteuid().is_root() {
        bail!("a real node (kubelet, containerd, runc) needs root");
    }
    for (tool, package) in [
        ("containerd", "containerd"),
        ("containerd-shim-runc-v2", "containerd"),
        ("ctr", "containerd"),
        ("runc", "runc"),
        ("iptables", "iptables"),
        ("ip", "iproute2"),
        ("mount", "mount"),
    ] {
        let found = std::env::var_os("PATH")
            .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(tool).is_file()));
        if !found {
            bail!("{tool} is not on PATH; install it: apt-get install {package}");
        }
    }
    Ok(())
}

/// An exclusive lock on `/tmp/weft-e2e-node.lock`, held while a node runs.
fn machine_lock() -> Result<File> {
    let path = Path::new("/tmp/weft-e2e-node.lock");
    let file = File::create(path).with_context(|| format!("creating {}", path.display()))?;
    if file.try_lock().is_err() {
        eprintln!("weft-e2e: waiting for another test's node to stop");
        file.lock()
            .with_context(|| format!("locking {}", path.display()))?;
    }
    Ok(file)
}
