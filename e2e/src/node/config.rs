//! The configuration files of the node's components: containerd's, the
//! kubelet's, and the `kube-dns` Service in front of CoreDNS.

use std::net::Ipv4Addr;
use std::path::Path;

use super::DNS_SERVICE_IP;

/// containerd's config: everything under `dir`, the CRI plugin with the
/// local sandbox image, the CNI directories and runc.
pub(super) fn containerd_config(dir: &Path, sandbox_image: &str) -> String {
    let d = |sub: &str| dir.join(sub).display().to_string();
    format!(
        r#"version = 2
root = "{root}"
state = "{state}"
[grpc]
  address = "{socket}"
[ttrpc]
  address = "{ttrpc}"
[plugins."io.containerd.internal.v1.opt"]
  path = "{opt}"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{sandbox_image}"
  # This VM has no CAP_SYS_RESOURCE: never lower an OOM score.
  restrict_oom_score_adj = true
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{cni_bin}"
    conf_dir = "{cni_conf}"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
"#,
        root = d("containerd/root"),
        state = d("containerd/state"),
        socket = d("containerd.sock"),
        ttrpc = d("containerd.ttrpc.sock"),
        opt = d("containerd/opt"),
        cni_bin = d("cni/bin"),
        cni_conf = d("cni/net.d"),
    )
}

/// The kubelet's configuration (see the module docs for why each
/// machine-specific line is there).
pub(super) fn kubelet_config(
    dir: &Path,
    containerd: &Path,
    client_ca: &Path,
    cgroup_root: &str,
    port: u16,
) -> String {
    format!(
        r#"apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
containerRuntimeEndpoint: unix://{containerd}
cgroupDriver: cgroupfs
cgroupRoot: {cgroup_root}
failCgroupV1: false
failSwapOn: false
address: 127.0.0.1
port: {port}
readOnlyPort: 0
healthzPort: 0
authentication:
  anonymous:
    enabled: false
  webhook:
    enabled: true
  x509:
    clientCAFile: {client_ca}
authorization:
  mode: Webhook
clusterDomain: cluster.local
clusterDNS: [{DNS_SERVICE_IP}]
resolvConf: ""
podLogsDir: {logs}
registerNode: true
serializeImagePulls: false
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard:
  memory.available: "1Mi"
  nodefs.available: "1%"
  imagefs.available: "1%"
  nodefs.inodesFree: "1%"
syncFrequency: 5s
fileCheckFrequency: 5s
nodeStatusUpdateFrequency: 5s
"#,
        containerd = containerd.display(),
        client_ca = client_ca.display(),
        logs = dir.join("pod-logs").display(),
    )
}

/// Service `kube-system/kube-dns` (the kubelet's cluster DNS) and its
/// EndpointSlice: CoreDNS on the host's `address:port`.
pub(super) fn dns_service(address: Ipv4Addr, port: u16) -> String {
    format!(
        r#"apiVersion: v1
kind: Service
metadata:
  name: kube-dns
  namespace: kube-system
  labels: {{k8s-app: kube-dns}}
spec:
  clusterIP: {DNS_SERVICE_IP}
  ports:
  - {{name: dns, port: 53, protocol: UDP, targetPort: {port}}}
  - {{name: dns-tcp, port: 53, protocol: TCP, targetPort: {port}}}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: kube-dns-host
  namespace: kube-system
  labels:
    kubernetes.io/service-name: kube-dns
    endpointslice.kubernetes.io/managed-by: weft-e2e
addressType: IPv4
endpoints:
- addresses: ["{address}"]
  conditions: {{ready: true}}
ports:
- {{name: dns, port: {port}, protocol: UDP}}
- {{name: dns-tcp, port: {port}, protocol: TCP}}
"#
    )
}
