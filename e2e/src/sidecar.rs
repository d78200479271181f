//! One sidecar: `weft agent` (certificate, SDS, the status port) and the
//! Envoy it starts and supervises, on the host or in a "pod" (a network
//! namespace whose traffic `weft agent iptables` captures); stopped with
//! SIGTERM so the agent stops its Envoy. On the host each sidecar gets
//! free ports (outbound, admin, `--status-port`, `--prometheus-port`,
//! `--health-port`); in a pod, Istio's (15001, 15000, 15020, 15090, 15021). Its `--workload-name` is
//! its spec's name. Used by [`crate::sidecars::SidecarPair`] and
//! [`crate::capture`].

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::client::{Reply, http_get, wait_for};
use crate::mesh::ENVOY_READY_TIMEOUT;
use crate::procs::{Process, free_port};
use crate::tools::weft_binary;

/// How long a sidecar gets to drain and stop on SIGTERM before SIGKILL.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// What one sidecar needs to start.
pub(crate) struct SidecarSpec<'a> {
    pub name: &'a str,
    /// Which instance of the workload `name` this is (1, 2, ...): its node
    /// ID is `NAME-REPLICA.NAMESPACE`, its files in `dir/NAME` (1) or
    /// `dir/NAME-REPLICA`.
    pub replica: u16,
    pub namespace: &'a str,
    /// In a pod: a network namespace whose traffic it captures.
    pub pod: Option<PodNet<'a>>,
    pub labels: &'a str,
    pub token: &'a str,
    pub xds_addr: SocketAddr,
    pub ca_addr: SocketAddr,
    pub ca_root: &'a Path,
    pub envoy: &'a Path,
    pub cert_ttl: Option<Duration>,
    pub dir: &'a Path,
    /// Where the app's metrics are, as Istio's injection writes
    /// `ISTIO_PROMETHEUS_ANNOTATIONS` (`{"port":"8080","path":"/metrics"}`).
    pub app_metrics: Option<&'a str>,
    /// The app's original probes, as Istio's injection writes
    /// `ISTIO_KUBE_APP_PROBERS`.
    pub app_probers: Option<&'a str>,
}

/// A sidecar in a "pod": the agent runs in `host`'s network namespace as
/// [`PROXY_UID`] with `--capture --instance-ip IP` (after `weft agent
/// iptables` ran there), Envoy's admin on 127.0.0.1:15000 inside.
pub(crate) struct PodNet<'a> {
    pub host: &'a crate::netns::TestHost,
    pub ip: Ipv4Addr,
}

/// The UID captured proxies run as (`weft agent iptables --proxy-uid`).
pub const PROXY_UID: u32 = 1337;

/// One workload's `weft agent` and the Envoy it runs.
#[derive(Debug)]
pub struct Sidecar {
    pub(crate) process: Process,
    pub(crate) outbound: SocketAddr,
    pub(crate) admin: SocketAddr,
    /// The agent's status port (merged metrics, readiness).
    status: SocketAddr,
    /// Envoy's `prometheus_stats` listener.
    prometheus: SocketAddr,
    /// Envoy's health listener (`/healthz/ready`).
    health: SocketAddr,
    /// The network namespace it runs in, if not this one.
    netns: Option<String>,
}

impl Sidecar {
    pub(crate) fn start(spec: &SidecarSpec<'_>) -> Result<Self> {
        let (outbound, admin, status, prometheus, health) = match spec.pod {
            Some(_) => (15001, 15000, 15020, 15090, 15021),
            None => (
                free_port()?,
                free_port()?,
                free_port()?,
                free_port()?,
                free_port()?,
            ),
        };
        let dir = match spec.replica {
            1 => spec.dir.join(spec.name),
            n => spec.dir.join(format!("{}-{n}", spec.name)),
        };
        std::fs::create_dir_all(&dir)?;
        let token_file = dir.join("token");
        std::fs::write(&token_file, spec.token)?;
        let ttl = spec
            .cert_ttl
            .map_or_else(|| "0s".to_string(), |t| format!("{}s", t.as_secs()));
        let mut command = match &spec.pod {
            None => Command::new(weft_binary()?),
            Some(pod) => {
                // The agent (and so Envoy) runs as the proxy UID, whose
                // traffic the capture rules leave alone.
                for path in [&dir, &token_file] {
                    std::os::unix::fs::chown(path, Some(PROXY_UID), Some(PROXY_UID))?;
                }
                let mut command = Command::new("ip");
                command
                    .args(["netns", "exec", pod.host.name(), "setpriv"])
                    .args(["--reuid", &PROXY_UID.to_string()])
                    .args(["--regid", &PROXY_UID.to_string(), "--clear-groups"])
                    .arg(weft_binary()?);
                command
            }
        };
        command
            .arg("agent")
            .args([
                "--node-id",
                &format!("{}-{}.{}", spec.name, spec.replica, spec.namespace),
            ])
            .args([
                "--namespace",
                spec.namespace,
                "--service-account",
                spec.name,
            ])
            .args(["--labels", spec.labels])
            .args(["--workload-name", spec.name])
            .args(["--xds-address", &spec.xds_addr.to_string()])
            .args(["--admin-port", &admin.to_string()])
            .args(["--ca-address", &spec.ca_addr.to_string()])
            .arg("--ca-root")
            .arg(spec.ca_root)
            .arg("--token-file")
            .arg(&token_file)
            .arg("--sds-socket")
            .arg(dir.join("sds.sock"))
            .arg("--bootstrap-out")
            .arg(dir.join("envoy.json"))
            .arg("--envoy-binary")
            .arg(spec.envoy)
            .args(["--cert-ttl", &ttl, "--drain-duration", "1s"])
            .env(
                "RUST_LOG",
                std::env::var("WEFT_E2E_RUST_LOG").unwrap_or_else(|_| "info".to_string()),
            )
            .env("NO_COLOR", "1");
        if let Some(annotations) = spec.app_metrics {
            command.env("ISTIO_PROMETHEUS_ANNOTATIONS", annotations);
        }
        if let Some(probers) = spec.app_probers {
            command.env("ISTIO_KUBE_APP_PROBERS", probers);
        }
        match &spec.pod {
            None => {
                command
                    .args(["--outbound-port", &outbound.to_string()])
                    .args(["--status-port", &status.to_string()])
                    .args(["--prometheus-port", &prometheus.to_string()])
                    .args(["--health-port", &health.to_string()]);
            }
            Some(pod) => {
                // Weft's CA certificate names localhost, not the address
                // the pod reaches it at.
                command
                    .args(["--capture", "--instance-ip", &pod.ip.to_string()])
                    .args(["--ca-server-name", "localhost"]);
            }
        }
        Ok(Self {
            process: Process::spawn(&format!("weft agent ({})", spec.name), command)?,
            outbound: SocketAddr::from((Ipv4Addr::LOCALHOST, outbound)),
            admin: SocketAddr::from((Ipv4Addr::LOCALHOST, admin)),
            status: SocketAddr::from((Ipv4Addr::LOCALHOST, status)),
            prometheus: SocketAddr::from((Ipv4Addr::LOCALHOST, prometheus)),
            health: SocketAddr::from((Ipv4Addr::LOCALHOST, health)),
            netns: spec.pod.as_ref().map(|p| p.host.name().to_string()),
        })
    }

    /// `GET path` from Envoy's admin listener (inside the sidecar's
    /// network namespace, if it has one).
    pub async fn admin_get(&self, path: &str) -> Result<Reply> {
        self.get(self.admin, path).await
    }

    /// `GET path` from the agent's status port.
    pub async fn status_get(&self, path: &str) -> Result<Reply> {
        self.get(self.status, path).await
    }

    /// `GET path` from Envoy's `prometheus_stats` listener.
    pub async fn prometheus_get(&self, path: &str) -> Result<Reply> {
        self.get(self.prometheus, path).await
    }

    async fn get(&self, addr: SocketAddr, path: &str) -> Result<Reply> {
        match &self.netns {
            None => http_get(addr, "localhost", path, &[]).await,
            Some(ns) => crate::netns::block_on_in(ns, http_get(addr, "localhost", path, &[]))?,
        }
    }

    /// Waits until Envoy's admin `/ready` answers 200.
    pub(crate) async fn wait_ready(&self) -> Result<()> {
        wait_for(
            &format!("{}'s Envoy to be ready", self.process.name()),
            ENVOY_READY_TIMEOUT,
            || async {
                if !self.process.is_running() {
                    return Some(Err(anyhow::anyhow!(
                        "{} exited: {}",
                        self.process.name(),
                        self.process.log_tail(30)
                    )));
                }
                let reply = self.admin_get("/ready").await.ok()?;
                (reply.status == 200).then_some(Ok(()))
            },
        )
        .await?
    }

    /// Envoy's admin `/config_dump`.
    pub async fn config_dump(&self) -> Result<String> {
        Ok(http_get(self.admin, "localhost", "/config_dump", &[])
            .await?
            .body)
    }

    /// The agent process (its log, pid).
    pub fn process(&self) -> &Process {
        &self.process
    }

    /// Envoy's outbound (router) listener: where the workload sends.
    pub fn outbound_addr(&self) -> SocketAddr {
        self.outbound
    }

    /// Envoy's admin listener.
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin
    }

    /// The agent's status port (`/stats/prometheus` merged,
    /// `/healthz/ready`), in the sidecar's network namespace.
    pub fn status_addr(&self) -> SocketAddr {
        self.status
    }

    /// Envoy's `/stats/prometheus` listener, in the sidecar's network
    /// namespace.
    pub fn prometheus_addr(&self) -> SocketAddr {
        self.prometheus
    }

    /// Envoy's health listener (`/healthz/ready`, Istio's 15021), in the
    /// sidecar's network namespace.
    pub fn health_addr(&self) -> SocketAddr {
        self.health
    }

    /// `GET path` from Envoy's health listener.
    pub async fn health_get(&self, path: &str) -> Result<Reply> {
        self.get(self.health, path).await
    }

    /// Serial numbers of the leaf certificates with URI SAN `spiffe_id`
    /// that Envoy holds (admin `/certs`), deduplicated.
    pub async fn cert_serials(&self, spiffe_id: &str) -> Result<Vec<String>> {
        let reply = self.admin_get("/certs").await?;
        if reply.status != 200 {
            bail!("Envoy's /certs answered {}: {}", reply.status, reply.body);
        }
        leaf_serials(&reply.body, spiffe_id)
    }

    /// SIGTERM, then waits for the agent to stop Envoy and exit.
    fn stop(&self) {
        let pid = self.process.pid().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let start = Instant::now();
        while self.process.is_running() && start.elapsed() < STOP_TIMEOUT {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Sidecar {
    fn drop(&mut self) {
        // SIGKILL (Process's drop) would leave the agent's Envoy running.
        self.stop();
    }
}

/// The values of `key` (e.g. `URI`, `By`, `Hash`) in an
/// `x-forwarded-client-cert` header.
pub fn xfcc_values<'a>(xfcc: &'a str, key: &str) -> Vec<&'a str> {
    xfcc.split([';', ','])
        .filter_map(|kv| kv.split_once('='))
        .filter(|(k, _)| k.trim().eq_ignore_ascii_case(key))
        .map(|(_, v)| v.trim_matches('"'))
        .collect()
}

/// The leaf serial numbers with URI SAN `spiffe_id` in Envoy's admin
/// `/certs` JSON.
fn leaf_serials(certs_json: &str, spiffe_id: &str) -> Result<Vec<String>> {
    let value: serde_json::Value =
        serde_json::from_str(certs_json).context("Envoy's /certs is not JSON")?;
    let mut serials: Vec<String> = value["certificates"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["cert_chain"].as_array()?.first())
        .filter(|leaf| {
            leaf["subject_alt_names"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|san| san["uri"].as_str() == Some(spiffe_id))
        })
        .filter_map(|leaf| leaf["serial_number"].as_str().map(str::to_string))
        .collect();
    serials.sort();
    serials.dedup();
    Ok(serials)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn leaf_serials_keep_only_the_identity_s_leaves() {
        let json = r#"{"certificates":[
          {"ca_cert":[{"serial_number":"01"}],
           "cert_chain":[{"serial_number":"aa","subject_alt_names":[{"uri":"spiffe://cluster.local/ns/default/sa/reviews"}]},
                         {"serial_number":"01"}]},
          {"cert_chain":[{"serial_number":"aa","subject_alt_names":[{"uri":"spiffe://cluster.local/ns/default/sa/reviews"}]}]},
          {"cert_chain":[{"serial_number":"bb","subject_alt_names":[{"uri":"spiffe://cluster.local/ns/default/sa/sleep"}]}]}
        ]}"#;
        assert_eq!(
            leaf_serials(json, "spiffe://cluster.local/ns/default/sa/reviews").unwrap(),
            vec!["aa"]
        );
        assert_eq!(
            leaf_serials(json, "spiffe://cluster.local/ns/default/sa/sleep").unwrap(),
            vec!["bb"]
        );
        assert!(leaf_serials("nope", "spiffe://x").is_err());
    }
}
