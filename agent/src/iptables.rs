//! Transparent capture (`weft agent iptables`): the `nat` table rules that
//! send a pod's TCP traffic through its sidecar, as Istio's
//! `istio-iptables` installs them (REDIRECT mode, same chain names):
//!
//! ```text
//!   PREROUTING ─▶ ISTIO_INBOUND ─▶ ISTIO_IN_REDIRECT ─▶ REDIRECT :15006 (virtualInbound)
//!                 (15000-15090, excluded ports: RETURN)
//!   OUTPUT ────▶ ISTIO_OUTPUT ──▶ ISTIO_REDIRECT ────▶ REDIRECT :15001 (virtualOutbound)
//!                 (proxy UID, 127.0.0.1, excluded ports / CIDRs: RETURN)
//! ```
//!
//! [`render_rules`] is pure: options in, `iptables-restore` input out
//! (`--dry-run` prints it). [`apply`] pipes it to
//! `iptables-restore --noflush`. The chains are declared with `:CHAIN`
//! lines, which create them or, on a second run, flush them; the jumps from
//! `PREROUTING` / `OUTPUT` would then be there twice, which changes nothing
//! (the first jump decides).
//!
//! The proxy's own traffic (its UID, 1337 by default) is never redirected,
//! so Envoy's upstream connections leave the pod and its inbound forwards
//! to `127.0.0.1:PORT` reach the application, without loops.

use std::io::Write;
use std::net::IpAddr;
use std::process::{Command, Stdio};

/// Envoy's and the agent's own ports (admin 15000, capture 15001 / 15006,
/// Prometheus 15090, ...): inbound connections to them are not captured.
pub const PROXY_PORTS: (u16, u16) = (15000, 15090);

/// What to capture; defaults are Istio's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaptureOptions {
    /// The UID Envoy runs as: its traffic is never redirected.
    pub proxy_uid: u32,
    /// Where inbound connections are redirected (Envoy's `virtualInbound`).
    pub inbound_capture_port: u16,
    /// Where outbound connections are redirected (`virtualOutbound`).
    pub outbound_capture_port: u16,
    /// Which inbound ports are captured.
    pub include_inbound_ports: InboundPorts,
    /// Inbound ports never captured (with [`InboundPorts::All`]).
    pub exclude_inbound_ports: Vec<u16>,
    /// Outbound destination ports never captured.
    pub exclude_outbound_ports: Vec<u16>,
    /// Outbound destination ranges never captured (`10.0.0.0/8`).
    pub exclude_outbound_ip_ranges: Vec<Cidr>,
}

impl Default for CaptureOptions {
    fn default() -> Self {
        Self {
            proxy_uid: 1337,
            inbound_capture_port: 15006,
            outbound_capture_port: 15001,
            include_inbound_ports: InboundPorts::All,
            exclude_inbound_ports: Vec::new(),
            exclude_outbound_ports: Vec::new(),
            exclude_outbound_ip_ranges: Vec::new(),
        }
    }
}

/// `--include-inbound-ports`: `*` or a list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InboundPorts {
    All,
    Only(Vec<u16>),
}

/// An IPv4 address range, `ADDR/PREFIX` (a bare address is `/32`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    pub address: std::net::Ipv4Addr,
    pub prefix: u8,
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.address, self.prefix)
    }
}

/// What is wrong with the options or with running `iptables-restore`.
#[derive(Debug, thiserror::Error)]
pub enum IptablesError {
    #[error("{flag} {value:?}: {reason}")]
    BadOption {
        flag: &'static str,
        value: String,
        reason: String,
    },
    #[error(
        "{binary} was not found: install iptables (e.g. `apt-get install iptables`) in the image that runs `weft agent iptables`"
    )]
    MissingBinary { binary: String },
    #[error(
        "{binary} was refused permission ({stderr}): the container needs the NET_ADMIN (and NET_RAW) capabilities, or run it as root"
    )]
    NoPermission { binary: String, stderr: String },
    #[error("{binary} failed ({status}): {stderr}")]
    Failed {
        binary: String,
        status: String,
        stderr: String,
    },
    #[error("cannot run {binary}: {source}")]
    Io {
        binary: String,
        source: std::io::Error,
    },
}

impl IptablesError {
    /// A short, bounded label for metrics and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::BadOption { .. } => "bad_option",
            Self::MissingBinary { .. } => "missing_binary",
            Self::NoPermission { .. } => "no_permission",
            Self::Failed { .. } => "failed",
            Self::Io { .. } => "io",
        }
    }
}

/// Parses a comma-separated port list (`""` is none).
pub fn parse_ports(flag: &'static str, text: &str) -> Result<Vec<u16>, IptablesError> {
    split_list(text)
        .map(|p| {
            p.parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| IptablesError::BadOption {
                    flag,
                    value: p.to_string(),
                    reason: "not a port (1-65535); give a comma-separated list".to_string(),
                })
        })
        .collect()
}

/// Parses `--include-inbound-ports`: `*` or a port list.
pub fn parse_inbound_ports(text: &str) -> Result<InboundPorts, IptablesError> {
    if text.trim() == "*" {
        return Ok(InboundPorts::All);
    }
    parse_ports("--include-inbound-ports", text).map(InboundPorts::Only)
}

/// Parses a comma-separated list of IPv4 ranges (`10.0.0.0/8,1.2.3.4`).
pub fn parse_cidrs(flag: &'static str, text: &str) -> Result<Vec<Cidr>, IptablesError> {
    split_list(text).map(|c| parse_cidr(flag, c)).collect()
}

fn parse_cidr(flag: &'static str, text: &str) -> Result<Cidr, IptablesError> {
    let bad = |reason: &str| IptablesError::BadOption {
        flag,
        value: text.to_string(),
        reason: reason.to_string(),
    };
    let (address, prefix) = match text.split_once('/') {
        Some((a, p)) => (
            a,
            p.parse::<u8>()
                .map_err(|_| bad("the prefix length must be 0-32"))?,
        ),
        None => (text, 32),
    };
    if prefix > 32 {
        return Err(bad("the prefix length must be 0-32"));
    }
    match address.parse::<IpAddr>() {
        Ok(IpAddr::V4(address)) => Ok(Cidr { address, prefix }),
        Ok(IpAddr::V6(_)) => Err(bad(
            "only IPv4 ranges are supported (the rules are iptables, not ip6tables)",
        )),
        Err(_) => Err(bad("not an IPv4 address or ADDR/PREFIX range")),
    }
}

fn split_list(text: &str) -> impl Iterator<Item = &str> {
    text.split(',').map(str::trim).filter(|s| !s.is_empty())
}

/// The `iptables-restore` input for the `nat` table.
pub fn render_rules(options: &CaptureOptions) -> String {
    let uid = options.proxy_uid;
    let mut lines = vec![
        "* nat".to_string(),
        ":ISTIO_INBOUND - [0:0]".to_string(),
        ":ISTIO_IN_REDIRECT - [0:0]".to_string(),
        ":ISTIO_OUTPUT - [0:0]".to_string(),
        ":ISTIO_REDIRECT - [0:0]".to_string(),
        format!(
            "-A ISTIO_IN_REDIRECT -p tcp -j REDIRECT --to-ports {}",
            options.inbound_capture_port
        ),
        format!(
            "-A ISTIO_REDIRECT -p tcp -j REDIRECT --to-ports {}",
            options.outbound_capture_port
        ),
        // Inbound.
        "-A PREROUTING -p tcp -j ISTIO_INBOUND".to_string(),
        format!(
            "-A ISTIO_INBOUND -p tcp --dport {}:{} -j RETURN",
            PROXY_PORTS.0, PROXY_PORTS.1
        ),
    ];
    match &options.include_inbound_ports {
        InboundPorts::All => {
            lines.extend(
                options
                    .exclude_inbound_ports
                    .iter()
                    .map(|p| format!("-A ISTIO_INBOUND -p tcp --dport {p} -j RETURN")),
            );
            lines.push("-A ISTIO_INBOUND -p tcp -j ISTIO_IN_REDIRECT".to_string());
        }
        InboundPorts::Only(ports) => lines.extend(
            ports
                .iter()
                .map(|p| format!("-A ISTIO_INBOUND -p tcp --dport {p} -j ISTIO_IN_REDIRECT")),
        ),
    }
    // Outbound.
    lines.push("-A OUTPUT -p tcp -j ISTIO_OUTPUT".to_string());
    lines.push(format!(
        "-A ISTIO_OUTPUT -m owner --uid-owner {uid} -j RETURN"
    ));
    lines.push("-A ISTIO_OUTPUT -d 127.0.0.1/32 -j RETURN".to_string());
    lines.extend(
        options
            .exclude_outbound_ports
            .iter()
            .map(|p| format!("-A ISTIO_OUTPUT -p tcp --dport {p} -j RETURN")),
    );
    lines.extend(
        options
            .exclude_outbound_ip_ranges
            .iter()
            .map(|c| format!("-A ISTIO_OUTPUT -d {c} -j RETURN")),
    );
    lines.push("-A ISTIO_OUTPUT -j ISTIO_REDIRECT".to_string());
    lines.push("COMMIT".to_string());
    let mut text = lines.join("\n");
    text.push('\n');
    text
}

/// Installs `rules` with `<binary> --noflush` (the other tables and
/// chains are left alone).
pub fn apply(binary: &str, rules: &str) -> Result<(), IptablesError> {
    let io = |source| IptablesError::Io {
        binary: binary.to_string(),
        source,
    };
    let mut child = match Command::new(binary)
        .arg("--noflush")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(child) => child,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            return Err(IptablesError::MissingBinary {
                binary: binary.to_string(),
            });
        }
        Err(err) => return Err(io(err)),
    };
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(rules.as_bytes()).map_err(io)?;
    }
    let output = child.wait_with_output().map_err(io)?;
    if output.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&output.stderr).trim().to_string();
    Err(classify_failure(binary, &output.status.to_string(), stderr))
}

fn classify_failure(binary: &str, status: &str, stderr: String) -> IptablesError {
    let lower = stderr.to_lowercase();
    if lower.contains("permission denied")
        || lower.contains("operation not permitted")
        || lower.contains("must be root")
    {
        IptablesError::NoPermission {
            binary: binary.to_string(),
            stderr,
        }
    } else {
        IptablesError::Failed {
            binary: binary.to_string(),
            status: status.to_string(),
            stderr,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn iptables_default_rules_are_istios() {
        insta::assert_snapshot!(render_rules(&CaptureOptions::default()));
    }

    #[test]
    fn iptables_exclusions_and_included_ports() {
        let options = CaptureOptions {
            proxy_uid: 2000,
            inbound_capture_port: 16006,
            outbound_capture_port: 16001,
            include_inbound_ports: parse_inbound_ports("9080, 8443").unwrap(),
            exclude_inbound_ports: parse_ports("x", "22").unwrap(),
            exclude_outbound_ports: parse_ports("x", "5432,6379").unwrap(),
            exclude_outbound_ip_ranges: parse_cidrs("x", "10.0.0.0/8,169.254.169.254").unwrap(),
        };
        insta::assert_snapshot!(render_rules(&options));
    }

    #[test]
    fn iptables_excluded_inbound_ports_come_before_the_redirect() {
        let options = CaptureOptions {
            exclude_inbound_ports: vec![22, 8080],
            ..Default::default()
        };
        let rules = render_rules(&options);
        let excluded = rules.find("--dport 8080 -j RETURN").expect("excluded port");
        let redirect = rules
            .find("-A ISTIO_INBOUND -p tcp -j ISTIO_IN_REDIRECT")
            .expect("redirect");
        assert!(excluded < redirect, "{rules}");
        assert_eq!(
            parse_inbound_ports(" * ").unwrap(),
            InboundPorts::All,
            "Istio's default"
        );
    }

    #[test]
    fn iptables_bad_options_say_what_is_wrong() {
        let err = parse_ports("--exclude-outbound-ports", "80,http").unwrap_err();
        assert_eq!(
            err.to_string(),
            "--exclude-outbound-ports \"http\": not a port (1-65535); give a comma-separated list"
        );
        assert!(parse_ports("--x", "0").is_err());
        assert!(parse_ports("--x", "70000").is_err());
        assert_eq!(parse_ports("--x", "").unwrap(), Vec::<u16>::new());
        let err = parse_cidrs("--exclude-outbound-ip-ranges", "10.0.0.0/33").unwrap_err();
        assert!(err.to_string().contains("prefix length"), "{err}");
        let err = parse_cidrs("--exclude-outbound-ip-ranges", "fd00::/8").unwrap_err();
        assert!(err.to_string().contains("only IPv4"), "{err}");
        let err = parse_cidrs("--exclude-outbound-ip-ranges", "ten").unwrap_err();
        assert_eq!(err.kind(), "bad_option");
    }

    #[test]
    fn iptables_missing_binary_says_install_iptables() {
        let err = apply("/nonexistent/iptables-restore", "* nat\nCOMMIT\n").unwrap_err();
        assert_eq!(err.kind(), "missing_binary");
        assert!(err.to_string().contains("install iptables"), "{err}");
    }

    #[test]
    fn iptables_refusals_are_told_apart_from_other_failures() {
        let err = classify_failure(
            "iptables-restore",
            "exit status: 1",
            "iptables-restore v1.8.9 (nf_tables): Could not fetch rule set generation id: Permission denied (you must be root)".to_string(),
        );
        assert_eq!(err.kind(), "no_permission");
        assert!(err.to_string().contains("NET_ADMIN"), "{err}");
        let err = classify_failure(
            "iptables-restore",
            "exit status: 2",
            "line 3 failed".to_string(),
        );
        assert_eq!(err.kind(), "failed");
    }

    /// A real `iptables-restore` (it must be installed: `.ci/run` does)
    /// accepts the rules; `--test` checks them without touching the host.
    #[test]
    fn iptables_restore_accepts_the_rules() {
        let options = CaptureOptions {
            exclude_inbound_ports: vec![22],
            exclude_outbound_ports: vec![5432],
            exclude_outbound_ip_ranges: parse_cidrs("x", "10.0.0.0/8").unwrap(),
            ..Default::default()
        };
        let mut child = Command::new("iptables-restore")
            .args(["--noflush", "--test"])
            .stdin(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("iptables-restore is installed (apt-get install iptables)");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(render_rules(&options).as_bytes())
            .unwrap();
        let output = child.wait_with_output().unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}
