//! The loadgen's own cost, read from `/proc/self`: resident set size (now
//! and peak) and CPU time (user and system). Linux only; the CLI prints it
//! so a benchmark can tell the loadgen's load from the control plane's.

use std::time::Duration;

use anyhow::{Context, Result};

/// Clock ticks per second of `/proc/self/stat` times (`_SC_CLK_TCK`,
/// 100 on every Linux the loadgen runs on).
const TICKS_PER_SECOND: u64 = 100;

/// What the process has cost so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    pub rss_kib: u64,
    pub peak_rss_kib: u64,
    pub user: Duration,
    pub system: Duration,
}

/// Reads the current process's usage.
pub fn read() -> Result<Usage> {
    let status =
        std::fs::read_to_string("/proc/self/status").context("reading /proc/self/status")?;
    let stat = std::fs::read_to_string("/proc/self/stat").context("reading /proc/self/stat")?;
    let (user, system) = cpu_ticks(&stat).context("parsing /proc/self/stat")?;
    let tick = |t: u64| Duration::from_millis(t * 1000 / TICKS_PER_SECOND);
    Ok(Usage {
        rss_kib: kib_field(&status, "VmRSS:").context("no VmRSS in /proc/self/status")?,
        peak_rss_kib: kib_field(&status, "VmHWM:").context("no VmHWM in /proc/self/status")?,
        user: tick(user),
        system: tick(system),
    })
}

/// The value of a `Name:   1234 kB` line.
fn kib_field(status: &str, name: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(name))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}

/// utime and stime (fields 14 and 15) of a `/proc/PID/stat` line; the
/// command name (field 2) may hold spaces, so fields count from its `)`.
fn cpu_ticks(stat: &str) -> Option<(u64, u64)> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    let mut fields = after_name.split_whitespace().skip(11);
    Some((fields.next()?.parse().ok()?, fields.next()?.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_status_and_stat_lines() {
        let status = "Name:\tx\nVmHWM:\t  2048 kB\nVmRSS:\t  1024 kB\n";
        assert_eq!(kib_field(status, "VmRSS:"), Some(1024));
        assert_eq!(kib_field(status, "VmHWM:"), Some(2048));
        assert_eq!(kib_field(status, "VmSwap:"), None);
        let stat = "42 (weft loadgen) S 1 42 42 0 -1 4194560 100 0 0 0 250 30 0 0 20 0 1 0";
        assert_eq!(cpu_ticks(stat), Some((250, 30)));
    }

    #[test]
    fn reads_this_process() {
        let usage = read().map_err(|e| e.to_string());
        assert!(usage.is_ok_and(|u| u.rss_kib > 0 && u.peak_rss_kib >= u.rss_kib));
    }
}
