//! A real Kubernetes control plane for tests: etcd and kube-apiserver on
//! loopback ports, started the way controller-runtime's envtest starts
//! them, plus kubectl with an admin kubeconfig.
//!
//! ```text
//!  ControlPlane::start()
//!    temp dir ── pki/   serving CA + apiserver cert (localhost, 127.0.0.1),
//!            │          client CA + admin cert (CN=admin, O=system:masters),
//!            │          service-account signing key (sa.key / sa.pub)
//!            ├── etcd/  etcd data (--unsafe-no-fsync)
//!            └── kubeconfig (admin, certificate files by path)
//!    etcd            http://127.0.0.1:<free>   ready: GET /health = 200
//!    kube-apiserver  https://127.0.0.1:<free>  ready: /readyz = 200 with the
//!                                              admin cert, and namespace
//!                                              `default` exists
//! ```
//!
//! There is no kubelet, scheduler or controller-manager: objects are stored
//! and validated (schemas, admission, RBAC) but nothing acts on them. The
//! `ServiceAccount` admission plugin is off, as in envtest, because no
//! controller creates the `default` service accounts it would wait for.
//!
//! [`ControlPlane::start_for_node`] is the variant a real node
//! ([`crate::node`]) runs against: the apiserver listens on the host's
//! address, which pods reach and which the `kubernetes` Service's endpoint
//! advertises, and the `ServiceAccount` admission plugin is on (a
//! controller-manager creates the accounts, and pods get their tokens).
//!
//! [`ControlPlane::stop_apiserver`] and [`ControlPlane::start_apiserver`]
//! take the apiserver down and bring it back on the same port, with the
//! same certificates and etcd (which keeps running), for outage tests.
//!
//! Dropping a [`ControlPlane`] kills and reaps both processes (also when a
//! test panics, which prints their last log lines) and then removes the temp
//! dir. The binaries come from [`crate::k8s_tools`] (built once, cached).

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use tempfile::TempDir;

use crate::k8s_tools::{etcd_binary, kube_apiserver_binary, kubectl_binary};
use crate::procs::{Process, free_port, free_port_on};
use crate::tools::workspace_dir;

/// How long etcd may take to answer `/health`.
pub const ETCD_START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long kube-apiserver may take to be ready (it installs its built-in
/// objects and RBAC roles first; a busy two-core machine needs the margin).
pub const APISERVER_START_TIMEOUT: Duration = Duration::from_secs(180);
/// The range Services get cluster IPs from.
pub const SERVICE_CLUSTER_IP_RANGE: &str = "10.96.0.0/16";
/// The `kubernetes` Service's cluster IP: the range's first address.
pub const KUBERNETES_SERVICE_IP: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 1);
/// Start attempts when a port picked as free was taken before the child
/// bound it.
const START_ATTEMPTS: usize = 3;
/// Log lines quoted in errors.
const LOG_TAIL_LINES: usize = 40;

/// A running etcd + kube-apiserver, with an admin kubeconfig; torn down on
/// drop.
#[derive(Debug)]
pub struct ControlPlane {
    // Fields drop in order: the apiserver before etcd, both before the dir.
    apiserver: Process,
    etcd: Process,
    /// The kube-apiserver binary and secure port, to start it again on the
    /// same port after [`ControlPlane::stop_apiserver`].
    apiserver_bin: PathBuf,
    port: u16,
    kubectl: PathBuf,
    kubeconfig: PathBuf,
    server_url: String,
    etcd_url: String,
    pki: Pki,
    /// Where the apiserver listens (loopback, or a node's host address).
    address: Ipv4Addr,
    dir: TempDir,
}

/// Paths of the certificates and keys a [`ControlPlane`] wrote.
#[derive(Debug, Clone)]
pub struct Pki {
    /// The CA that signed the apiserver's serving certificate: what clients
    /// trust.
    pub serving_ca: PathBuf,
    pub serving_cert: PathBuf,
    pub serving_key: PathBuf,
    /// The CA the apiserver accepts client certificates from.
    pub client_ca: PathBuf,
    /// The admin client certificate (CN=admin, O=system:masters).
    pub admin_cert: PathBuf,
    pub admin_key: PathBuf,
    /// The service-account token signing key and its public key.
    pub service_account_key: PathBuf,
    pub service_account_pub: PathBuf,
}

impl ControlPlane {
    /// Builds the tools if needed (see [`crate::k8s_tools`]), starts etcd
    /// and kube-apiserver on free loopback ports, and returns once the
    /// apiserver is ready and the `default` namespace exists.
    pub fn start() -> Result<Self> {
        Self::start_on(None)
    }

    /// [`ControlPlane::start`] for a real node: the apiserver listens on
    /// `address` (a host address pods can reach; the serving certificate
    /// names it and the `kubernetes` Service's cluster IP), advertises it as
    /// the `kubernetes` Service's endpoint, and admits pods with the
    /// `ServiceAccount` plugin.
    pub fn start_for_node(address: Ipv4Addr) -> Result<Self> {
        Self::start_on(Some(address))
    }

    fn start_on(node_address: Option<Ipv4Addr>) -> Result<Self> {
        let etcd_bin = etcd_binary()?;
        let apiserver_bin = kube_apiserver_binary()?;
        let kubectl = kubectl_binary()?;
        let started = Instant::now();
        let mut attempt = 1;
        loop {
            match Self::start_once(&etcd_bin, &apiserver_bin, &kubectl, node_address) {
                Ok(plane) => {
                    eprintln!(
                        "weft-e2e: kube-apiserver ready at {} in {:.1?}",
                        plane.server_url,
                        started.elapsed()
                    );
                    return Ok(plane);
                }
                Err(err)
                    if attempt < START_ATTEMPTS
                        && format!("{err:#}").contains("address already in use") =>
                {
                    eprintln!("weft-e2e: a control plane port was taken, retrying: {err:#}");
                    attempt += 1;
                }
                Err(err) => return Err(err),
            }
        }
    }

    fn start_once(
        etcd_bin: &Path,
        apiserver_bin: &Path,
        kubectl: &Path,
        node_address: Option<Ipv4Addr>,
    ) -> Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("weft-e2e-k8s-")
            .tempdir()
            .context("creating the control plane's temp dir")?;
        let address = node_address.unwrap_or(Ipv4Addr::LOCALHOST);
        let pki = write_pki(&dir.path().join("pki"), address)?;

        let etcd_port = free_port()?;
        let peer_port = free_port()?;
        let etcd_url = format!("http://127.0.0.1:{etcd_port}");
        let peer_url = format!("http://127.0.0.1:{peer_port}");
        let mut command = Command::new(etcd_bin);
        command
            .arg("--name=weft-e2e")
            .arg(format!("--data-dir={}", dir.path().join("etcd").display()))
            .arg(format!("--listen-client-urls={etcd_url}"))
            .arg(format!("--advertise-client-urls={etcd_url}"))
            .arg(format!("--listen-peer-urls={peer_url}"))
            .arg(format!("--initial-advertise-peer-urls={peer_url}"))
            .arg(format!("--initial-cluster=weft-e2e={peer_url}"))
            .arg("--unsafe-no-fsync=true")
            .arg("--log-level=warn")
            .current_dir(dir.path());
        let etcd = Process::spawn("etcd", command)?;
        wait_for_etcd(&etcd, etcd_port)?;

        let port = free_port_on(address.into())?;
        let server_url = format!("https://{address}:{port}");
        let mut command = Command::new(apiserver_bin);
        command
            .args(apiserver_args(&pki, &etcd_url, address, port))
            .current_dir(dir.path());
        let apiserver = Process::spawn("kube-apiserver", command)?;

        let kubeconfig = dir.path().join("kubeconfig");
        std::fs::write(&kubeconfig, admin_kubeconfig(&server_url, &pki))
            .with_context(|| format!("writing {}", kubeconfig.display()))?;

        let plane = Self {
            apiserver,
            etcd,
            apiserver_bin: apiserver_bin.to_path_buf(),
            port,
            kubectl: kubectl.to_path_buf(),
            kubeconfig,
            server_url,
            etcd_url,
            pki,
            address,
            dir,
        };
        plane.wait_ready()?;
        Ok(plane)
    }

    /// Polls `/readyz` with the admin certificate, then for the `default`
    /// namespace (created by the apiserver itself shortly after start).
    fn wait_ready(&self) -> Result<()> {
        let started = Instant::now();
        for (what, args) in [
            ("/readyz to answer 200", &["get", "--raw", "/readyz"][..]),
            (
                "the default namespace",
                &["get", "namespace", "default", "-o", "name"][..],
            ),
        ] {
            loop {
                if !self.apiserver.is_running() || !self.etcd.is_running() {
                    // Let the reader threads drain the pipes.
                    thread::sleep(Duration::from_millis(100));
                    bail!(
                        "kube-apiserver ({:?}) or etcd ({:?}) exited while starting; \
                         kube-apiserver's output ends with:\n{}\netcd's with:\n{}",
                        self.apiserver.exit_status(),
                        self.etcd.exit_status(),
                        self.apiserver.log_tail(LOG_TAIL_LINES),
                        self.etcd.log_tail(LOG_TAIL_LINES)
                    );
                }
                let mut full = vec!["--request-timeout=5s"];
                full.extend_from_slice(args);
                let out = self.kubectl(&full)?;
                if out.status.success() {
                    break;
                }
                let last = String::from_utf8_lossy(&out.stderr).trim().to_string();
                if started.elapsed() >= APISERVER_START_TIMEOUT {
                    bail!(
                        "kube-apiserver at {} was not ready within {APISERVER_START_TIMEOUT:?} \
                         (waiting for {what}; kubectl said: {last}); its output ends with:\n{}",
                        self.server_url,
                        self.apiserver.log_tail(LOG_TAIL_LINES)
                    );
                }
                thread::sleep(Duration::from_millis(250));
            }
        }
        Ok(())
    }

    /// The admin kubeconfig (certificates referenced by path).
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// `https://127.0.0.1:<port>` (or the node address's).
    pub fn server_url(&self) -> &str {
        &self.server_url
    }

    /// Creates (or keeps) namespace `namespace` and ServiceAccount `name`
    /// in it; returns the ServiceAccount's uid.
    pub fn create_service_account(&self, namespace: &str, name: &str) -> Result<String> {
        self.kubectl_stdin_ok(
            &["apply", "-f", "-"],
            &format!(
                "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {namespace}\n---\n\
                 apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: {name}\n  \
                 namespace: {namespace}\n"
            ),
        )?;
        let uid = self.kubectl_ok(&[
            "get",
            "serviceaccount",
            name,
            "-n",
            namespace,
            "-o",
            "jsonpath={.metadata.uid}",
        ])?;
        Ok(uid.trim().to_string())
    }

    /// The issuer of the apiserver's service-account tokens
    /// (`--service-account-issuer`).
    pub fn service_account_issuer(&self) -> String {
        format!("{}/", self.server_url)
    }

    /// `http://127.0.0.1:<port>`.
    pub fn etcd_url(&self) -> &str {
        &self.etcd_url
    }

    /// The certificate and key files.
    pub fn pki(&self) -> &Pki {
        &self.pki
    }

    /// The temp dir holding the PKI, etcd's data and the kubeconfig.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn apiserver(&self) -> &Process {
        &self.apiserver
    }

    pub fn etcd(&self) -> &Process {
        &self.etcd
    }

    /// Kills kube-apiserver (SIGKILL, as a crash or a lost node would) and
    /// reaps it; etcd keeps running with every object. Clients see
    /// connections refused until [`ControlPlane::start_apiserver`].
    pub fn stop_apiserver(&self) -> Result<()> {
        self.apiserver.kill()
    }

    /// Starts kube-apiserver again after [`ControlPlane::stop_apiserver`],
    /// on the same port with the same certificates and etcd, so existing
    /// kubeconfigs and the objects stay valid; returns once it is ready.
    /// Blocks (polls with kubectl): from async code, call it inside
    /// `tokio::task::block_in_place` or `spawn_blocking`.
    pub fn start_apiserver(&mut self) -> Result<()> {
        if self.apiserver.is_running() {
            bail!(
                "kube-apiserver is already running at {}; stop it first",
                self.server_url
            );
        }
        let started = Instant::now();
        let mut command = Command::new(&self.apiserver_bin);
        command
            .args(apiserver_args(
                &self.pki,
                &self.etcd_url,
                self.address,
                self.port,
            ))
            .current_dir(self.dir.path());
        // The old process is reaped: dropping it here only releases its logs.
        self.apiserver = Process::spawn("kube-apiserver", command)?;
        self.wait_ready()?;
        eprintln!(
            "weft-e2e: kube-apiserver restarted at {} in {:.1?}",
            self.server_url,
            started.elapsed()
        );
        Ok(())
    }

    /// The last lines of kube-apiserver's output, for error messages.
    pub fn apiserver_log_tail(&self) -> String {
        self.apiserver.log_tail(LOG_TAIL_LINES)
    }

    /// Runs kubectl with the admin kubeconfig, in the workspace root (so
    /// `-f examples/bookinfo` works), and returns its output whatever its
    /// exit status.
    pub fn kubectl(&self, args: &[&str]) -> Result<Output> {
        self.kubectl_command(args)
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("running kubectl {}", args.join(" ")))
    }

    /// Like [`ControlPlane::kubectl`], writing `stdin` to kubectl's input
    /// (for `-f -`).
    pub fn kubectl_stdin(&self, args: &[&str], stdin: &str) -> Result<Output> {
        let mut child = self
            .kubectl_command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("running kubectl {}", args.join(" ")))?;
        let mut input = child
            .stdin
            .take()
            .ok_or_else(|| anyhow!("kubectl's stdin is not piped"))?;
        input
            .write_all(stdin.as_bytes())
            .context("writing to kubectl's stdin")?;
        drop(input);
        child
            .wait_with_output()
            .with_context(|| format!("waiting for kubectl {}", args.join(" ")))
    }

    /// Runs kubectl and returns its stdout; a non-zero exit is an error
    /// with kubectl's stderr and the apiserver's last log lines.
    pub fn kubectl_ok(&self, args: &[&str]) -> Result<String> {
        let out = self.kubectl(args)?;
        self.expect_success(args, out)
    }

    /// [`ControlPlane::kubectl_stdin`], then as [`ControlPlane::kubectl_ok`].
    pub fn kubectl_stdin_ok(&self, args: &[&str], stdin: &str) -> Result<String> {
        let out = self.kubectl_stdin(args, stdin)?;
        self.expect_success(args, out)
    }

    fn expect_success(&self, args: &[&str], out: Output) -> Result<String> {
        if !out.status.success() {
            bail!(
                "kubectl {} failed ({}):\n{}{}\nkube-apiserver's output ends with:\n{}",
                args.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stderr),
                String::from_utf8_lossy(&out.stdout),
                self.apiserver_log_tail()
            );
        }
        String::from_utf8(out.stdout).context("kubectl printed non-UTF-8")
    }

    fn kubectl_command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(&self.kubectl);
        command
            .arg(format!("--kubeconfig={}", self.kubeconfig.display()))
            .arg(format!(
                "--cache-dir={}",
                self.dir.path().join("kube-cache").display()
            ))
            .args(args)
            .env_remove("KUBECONFIG")
            .current_dir(workspace_dir());
        command
    }

    /// Writes a kubeconfig that acts as the ServiceAccount `namespace/name`
    /// (which must exist): a one-hour token from the TokenRequest API
    /// (`kubectl create token`), this apiserver's URL and serving CA.
    /// Returns its path, in the control plane's directory.
    pub fn service_account_kubeconfig(&self, namespace: &str, name: &str) -> Result<PathBuf> {
        let token =
            self.kubectl_ok(&["create", "token", name, "-n", namespace, "--duration", "1h"])?;
        let token = token.trim();
        if token.is_empty() {
            bail!("kubectl create token {name} -n {namespace} printed no token");
        }
        // Single-quoted YAML scalars: only `'` needs escaping (as `''`).
        let quote = |s: &str| format!("'{}'", s.replace('\'', "''"));
        let kubeconfig = format!(
            "apiVersion: v1
kind: Config
clusters:
- name: weft-e2e
  cluster:
    server: {server}
    certificate-authority: {ca}
users:
- name: {user}
  user:
    token: {token}
contexts:
- name: weft-e2e
  context:
    cluster: weft-e2e
    user: {user}
    namespace: {namespace}
current-context: weft-e2e
",
            server = quote(&self.server_url),
            ca = quote(&self.pki.serving_ca.display().to_string()),
            user = quote(&format!("system:serviceaccount:{namespace}:{name}")),
            token = quote(token),
            namespace = quote(namespace),
        );
        let path = self
            .dir
            .path()
            .join(format!("kubeconfig-{namespace}-{name}"));
        std::fs::write(&path, kubeconfig).with_context(|| format!("writing {}", path.display()))?;
        Ok(path)
    }
}

/// kube-apiserver's flags: envtest's set, with certificates given as files.
/// On a node's address (not loopback), pods are admitted with their
/// service accounts and the `kubernetes` Service gets the address as its
/// endpoint.
fn apiserver_args(pki: &Pki, etcd_url: &str, address: Ipv4Addr, port: u16) -> Vec<String> {
    let path = |p: &Path| p.display().to_string();
    let mut args = vec![
        format!("--etcd-servers={etcd_url}"),
        format!("--bind-address={address}"),
        format!("--advertise-address={address}"),
        format!("--secure-port={port}"),
        format!("--tls-cert-file={}", path(&pki.serving_cert)),
        format!("--tls-private-key-file={}", path(&pki.serving_key)),
        format!("--client-ca-file={}", path(&pki.client_ca)),
        format!("--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}"),
        "--allow-privileged=true".to_string(),
        "--authorization-mode=RBAC".to_string(),
        format!("--service-account-issuer=https://{address}:{port}/"),
        format!(
            "--service-account-key-file={}",
            path(&pki.service_account_pub)
        ),
        format!(
            "--service-account-signing-key-file={}",
            path(&pki.service_account_key)
        ),
    ];
    if address.is_loopback() {
        args.extend([
            "--disable-admission-plugins=ServiceAccount".to_string(),
            // The `kubernetes` Service's endpoints would be the loopback
            // address, which Endpoints validation refuses every 10 s; tests
            // do not reach the apiserver through that Service.
            "--endpoint-reconciler-type=none".to_string(),
        ]);
    } else {
        // Webhooks are called at their Services' endpoints (the pods), not
        // through a cluster IP.
        args.push("--enable-aggregator-routing=true".to_string());
    }
    args
}

/// GET /health on etcd's client port until it answers 200.
fn wait_for_etcd(etcd: &Process, port: u16) -> Result<()> {
    let started = Instant::now();
    let addr = SocketAddr::new(Ipv4Addr::LOCALHOST.into(), port);
    loop {
        let last = match http_status(addr, "/health") {
            Ok(200) => return Ok(()),
            Ok(status) => format!("status {status}"),
            Err(err) => format!("{err:#}"),
        };
        if !etcd.is_running() {
            thread::sleep(Duration::from_millis(100));
            bail!(
                "etcd exited ({:?}) while starting; its output ends with:\n{}",
                etcd.exit_status(),
                etcd.log_tail(LOG_TAIL_LINES)
            );
        }
        if started.elapsed() >= ETCD_START_TIMEOUT {
            bail!(
                "etcd on {addr} did not answer /health with 200 within {ETCD_START_TIMEOUT:?} \
                 ({last}); its output ends with:\n{}",
                etcd.log_tail(LOG_TAIL_LINES)
            );
        }
        thread::sleep(Duration::from_millis(100));
    }
}

/// The status code of a plain HTTP/1.0 GET.
fn http_status(addr: SocketAddr, path: &str) -> Result<u16> {
    let timeout = Duration::from_secs(2);
    let mut stream = TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n")?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response)?;
    let text = String::from_utf8_lossy(&response);
    let status = text
        .lines()
        .next()
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| anyhow!("not an HTTP response: {:?}", text.lines().next()))?;
    Ok(status)
}

/// Writes the CAs, certificates and keys into `dir`.
fn write_pki(dir: &Path, address: Ipv4Addr) -> Result<Pki> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let write = |name: &str, pem: &str| -> Result<PathBuf> {
        let path = dir.join(name);
        std::fs::write(&path, pem).with_context(|| format!("writing {}", path.display()))?;
        Ok(path)
    };

    let (serving_ca_pem, serving_issuer) = new_ca("weft-e2e serving CA")?;
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params
        .distinguished_name
        .push(DnType::CommonName, "kube-apiserver");
    for name in [
        "localhost",
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
        "kubernetes.default.svc.cluster.local",
    ] {
        params
            .subject_alt_names
            .push(SanType::DnsName(name.try_into()?));
    }
    // 127.0.0.1 and the node address for the tests and pods, and the
    // `kubernetes` Service's cluster IP.
    for ip in [Ipv4Addr::LOCALHOST, address, KUBERNETES_SERVICE_IP] {
        params.subject_alt_names.push(SanType::IpAddress(ip.into()));
    }
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let serving_key = KeyPair::generate()?;
    let serving_cert = params.signed_by(&serving_key, &serving_issuer)?;

    let (client_ca_pem, client_issuer) = new_ca("weft-e2e client CA")?;
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.distinguished_name.push(DnType::CommonName, "admin");
    params
        .distinguished_name
        .push(DnType::OrganizationName, "system:masters");
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let admin_key = KeyPair::generate()?;
    let admin_cert = params.signed_by(&admin_key, &client_issuer)?;

    let service_account_key = KeyPair::generate()?;

    Ok(Pki {
        serving_ca: write("serving-ca.crt", &serving_ca_pem)?,
        serving_cert: write("apiserver.crt", &serving_cert.pem())?,
        serving_key: write("apiserver.key", &serving_key.serialize_pem())?,
        client_ca: write("client-ca.crt", &client_ca_pem)?,
        admin_cert: write("admin.crt", &admin_cert.pem())?,
        admin_key: write("admin.key", &admin_key.serialize_pem())?,
        service_account_key: write("sa.key", &service_account_key.serialize_pem())?,
        service_account_pub: write("sa.pub", &service_account_key.public_key_pem())?,
    })
}

/// A self-signed CA (ECDSA P-256): its PEM and an issuer for leaves.
fn new_ca(name: &str) -> Result<(String, Issuer<'static, KeyPair>)> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let key = KeyPair::generate()?;
    let cert = params.self_signed(&key)?;
    Ok((cert.pem(), Issuer::new(params, key)))
}

/// An admin kubeconfig for `server`, referring to the PKI files by path.
fn admin_kubeconfig(server: &str, pki: &Pki) -> String {
    // Single-quoted YAML scalars: only `'` needs escaping (as `''`).
    let quote = |p: &Path| format!("'{}'", p.display().to_string().replace('\'', "''"));
    format!(
        "apiVersion: v1
kind: Config
clusters:
- name: weft-e2e
  cluster:
    server: '{server}'
    certificate-authority: {ca}
users:
- name: admin
  user:
    client-certificate: {cert}
    client-key: {key}
contexts:
- name: weft-e2e
  context:
    cluster: weft-e2e
    user: admin
    namespace: default
current-context: weft-e2e
",
        ca = quote(&pki.serving_ca),
        cert = quote(&pki.admin_cert),
        key = quote(&pki.admin_key),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pki_and_kubeconfig_are_written() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let pki = write_pki(dir.path(), Ipv4Addr::LOCALHOST)?;
        for path in [
            &pki.serving_ca,
            &pki.serving_cert,
            &pki.serving_key,
            &pki.client_ca,
            &pki.admin_cert,
            &pki.admin_key,
            &pki.service_account_key,
            &pki.service_account_pub,
        ] {
            let text = std::fs::read_to_string(path)?;
            assert!(
                text.starts_with("-----BEGIN "),
                "{}: {text}",
                path.display()
            );
        }
        let kubeconfig = admin_kubeconfig("https://127.0.0.1:1", &pki);
        let parsed: serde_yaml::Value = serde_yaml::from_str(&kubeconfig)?;
        assert_eq!(
            parsed["users"][0]["user"]["client-key"].as_str(),
            Some(pki.admin_key.display().to_string().as_str())
        );
        assert_eq!(
            parsed["clusters"][0]["cluster"]["server"].as_str(),
            Some("https://127.0.0.1:1")
        );
        Ok(())
    }
}
