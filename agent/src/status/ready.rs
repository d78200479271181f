//! The readiness rule of `/healthz/ready` (pure): what the kubelet asks
//! the proxy's readiness and startup probes, on the agent's status port
//! (15020) and through Envoy's health listener (15021).
//!
//! As Istio's agent decides it (`pilot-agent`'s `ready.Probe`), from one
//! read of Envoy's admin `/stats` ([`READY_STATS_PATH`]):
//!
//! 1. Envoy has its first config: `cluster_manager.cds.update_success`
//!    and `listener_manager.lds.update_success` are both above zero;
//! 2. Envoy is LIVE: `server.state` is 0 (the state admin `/server_info`
//!    reports as `LIVE`; 1 is `DRAINING`, 2 `PRE_INITIALIZING`, 3
//!    `INITIALIZING`);
//! 3. its workers have started: `listener_manager.workers_started` is 1;
//!
//! and, Weft's addition, the agent holds a certificate (without one every
//! mTLS connection would fail, though Envoy is LIVE).

/// Envoy's admin path for the four stats the rule reads (the filter is a
/// regex, percent-encoded: `^(server\.state|listener_manager\.workers_started|
/// cluster_manager\.cds\.update_success|listener_manager\.lds\.update_success)$`).
pub const READY_STATS_PATH: &str = "/stats?filter=%5E%28server%5C.state%7Clistener_manager%5C.workers_started%7Ccluster_manager%5C.cds%5C.update_success%7Clistener_manager%5C.lds%5C.update_success%29%24";

const SERVER_STATE: &str = "server.state";
const WORKERS_STARTED: &str = "listener_manager.workers_started";
const CDS_SUCCESS: &str = "cluster_manager.cds.update_success";
const LDS_SUCCESS: &str = "listener_manager.lds.update_success";

/// The stats the rule reads; a missing stat is `None`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EnvoyStats {
    pub server_state: Option<u64>,
    pub workers_started: Option<u64>,
    pub cds_update_success: Option<u64>,
    pub lds_update_success: Option<u64>,
}

impl EnvoyStats {
    /// Reads admin `/stats`' text (`name: value` lines); other lines are
    /// ignored.
    pub fn parse(text: &str) -> EnvoyStats {
        let mut stats = EnvoyStats::default();
        for line in text.lines() {
            let Some((name, value)) = line.split_once(':') else {
                continue;
            };
            let Ok(value) = value.trim().parse::<u64>() else {
                continue;
            };
            let slot = match name.trim() {
                SERVER_STATE => &mut stats.server_state,
                WORKERS_STARTED => &mut stats.workers_started,
                CDS_SUCCESS => &mut stats.cds_update_success,
                LDS_SUCCESS => &mut stats.lds_update_success,
                _ => continue,
            };
            *slot = Some(value);
        }
        stats
    }
}

/// Why the proxy is not ready; its text is the 503's body.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NotReady {
    #[error(
        "Envoy has no config from the control plane yet (is it reachable?): cds updates {cds}, lds updates {lds}"
    )]
    NoConfig { cds: u64, lds: u64 },
    #[error("Envoy is not LIVE: its state is {0}")]
    NotLive(&'static str),
    #[error("Envoy's workers have not started")]
    WorkersNotStarted,
    #[error("the agent has no certificate yet (is the CA reachable?)")]
    NoCertificate,
    #[error("cannot read Envoy's admin stats: {0}")]
    Envoy(String),
}

impl NotReady {
    pub fn kind(&self) -> &'static str {
        match self {
            NotReady::NoConfig { .. } => "no_config",
            NotReady::NotLive(_) => "not_live",
            NotReady::WorkersNotStarted => "workers_not_started",
            NotReady::NoCertificate => "no_certificate",
            NotReady::Envoy(_) => "envoy",
        }
    }
}

/// Envoy's `server.state` by name.
fn state_name(state: Option<u64>) -> &'static str {
    match state {
        Some(0) => "LIVE",
        Some(1) => "DRAINING",
        Some(2) => "PRE_INITIALIZING",
        Some(3) => "INITIALIZING",
        Some(_) => "unknown",
        None => "not reported",
    }
}

/// The rule, for a proxy with Envoy (`stats`) or without (`None`: only
/// the certificate counts).
pub fn check_ready(stats: Option<&EnvoyStats>, has_certificate: bool) -> Result<(), NotReady> {
    if let Some(stats) = stats {
        let (cds, lds) = (
            stats.cds_update_success.unwrap_or(0),
            stats.lds_update_success.unwrap_or(0),
        );
        if cds == 0 || lds == 0 {
            return Err(NotReady::NoConfig { cds, lds });
        }
        if stats.server_state != Some(0) {
            return Err(NotReady::NotLive(state_name(stats.server_state)));
        }
        if stats.workers_started != Some(1) {
            return Err(NotReady::WorkersNotStarted);
        }
    }
    if !has_certificate {
        return Err(NotReady::NoCertificate);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIVE: &str = "\
cluster_manager.cds.update_success: 2
listener_manager.lds.update_success: 1
listener_manager.workers_started: 1
server.state: 0
";

    #[test]
    fn stats_are_read_from_admin_text() {
        assert_eq!(
            EnvoyStats::parse(LIVE),
            EnvoyStats {
                server_state: Some(0),
                workers_started: Some(1),
                cds_update_success: Some(2),
                lds_update_success: Some(1),
            }
        );
        // Other stats, odd lines and a prefix-sharing name are ignored.
        let odd = "server.state_x: 3\nnonsense\nserver.state: oops\nlistener_manager.lds.update_success: 4\n";
        assert_eq!(
            EnvoyStats::parse(odd),
            EnvoyStats {
                lds_update_success: Some(4),
                ..EnvoyStats::default()
            }
        );
    }

    #[test]
    fn ready_needs_config_live_workers_and_a_certificate() {
        let live = EnvoyStats::parse(LIVE);
        assert_eq!(check_ready(Some(&live), true), Ok(()));
        assert_eq!(
            check_ready(Some(&live), false),
            Err(NotReady::NoCertificate)
        );
        let no_lds = EnvoyStats {
            lds_update_success: None,
            ..live
        };
        assert_eq!(
            check_ready(Some(&no_lds), true),
            Err(NotReady::NoConfig { cds: 2, lds: 0 })
        );
        let initializing = EnvoyStats {
            server_state: Some(3),
            ..live
        };
        assert_eq!(
            check_ready(Some(&initializing), true),
            Err(NotReady::NotLive("INITIALIZING"))
        );
        let draining = EnvoyStats {
            server_state: Some(1),
            ..live
        };
        assert_eq!(
            check_ready(Some(&draining), true).map_err(|e| e.to_string()),
            Err("Envoy is not LIVE: its state is DRAINING".to_string())
        );
        let idle = EnvoyStats {
            workers_started: Some(0),
            ..live
        };
        assert_eq!(
            check_ready(Some(&idle), true),
            Err(NotReady::WorkersNotStarted)
        );
        // Config is checked first: a fresh Envoy says what it waits for.
        assert_eq!(
            check_ready(Some(&EnvoyStats::default()), false),
            Err(NotReady::NoConfig { cds: 0, lds: 0 })
        );
        // Without Envoy only the certificate counts.
        assert_eq!(check_ready(None, true), Ok(()));
        assert_eq!(check_ready(None, false), Err(NotReady::NoCertificate));
    }
}
