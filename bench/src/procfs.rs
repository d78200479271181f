//! What a control-plane process costs, read from `/proc/PID`: resident
//! memory (`VmRSS` of `status`) and CPU time (user + system ticks of
//! `stat`). The parsers are pure; [`sample`] reads the files.

use std::time::Duration;

use anyhow::{Context, Result, anyhow};

/// Clock ticks per second of `/proc/PID/stat` (`USER_HZ`, 100 on Linux).
const TICKS_PER_SECOND: u64 = 100;

/// One reading of a process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    pub rss_bytes: u64,
    pub cpu: Duration,
}

/// Reads `/proc/PID/status` and `/proc/PID/stat`.
pub fn sample(pid: u32) -> Result<Sample> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status (has the process exited?)"))?;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("reading /proc/{pid}/stat"))?;
    Ok(Sample {
        rss_bytes: rss_bytes(&status)?,
        cpu: cpu_time(&stat)?,
    })
}

/// `VmRSS` of a `/proc/PID/status` text, in bytes.
pub fn rss_bytes(status: &str) -> Result<u64> {
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .ok_or_else(|| anyhow!("no VmRSS line in /proc/PID/status"))?;
    let kib: u64 = line
        .split_whitespace()
        .nth(1)
        .ok_or_else(|| anyhow!("VmRSS line without a value: {line}"))?
        .parse()
        .with_context(|| format!("VmRSS is not a number: {line}"))?;
    Ok(kib * 1024)
}

/// utime + stime of a `/proc/PID/stat` text. The command name (field 2)
/// may hold spaces and parentheses, so fields are counted after its last
/// `)`: utime and stime are fields 14 and 15.
pub fn cpu_time(stat: &str) -> Result<Duration> {
    let rest = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .ok_or_else(|| anyhow!("unexpected /proc/PID/stat: {stat}"))?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |n: usize| -> Result<u64> {
        // `rest` starts at field 3 (state).
        fields
            .get(n - 3)
            .ok_or_else(|| anyhow!("/proc/PID/stat has no field {n}"))?
            .parse()
            .with_context(|| format!("field {n} of /proc/PID/stat is not a number"))
    };
    let ticks = field(14)? + field(15)?;
    Ok(Duration::from_millis(ticks * 1000 / TICKS_PER_SECOND))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_rss_in_bytes() {
        let status = "Name:\tweft\nVmPeak:\t  9000 kB\nVmRSS:\t   12345 kB\nThreads: 3\n";
        assert_eq!(rss_bytes(status).ok(), Some(12345 * 1024));
        assert!(rss_bytes("Name: x\n").is_err());
    }

    #[test]
    fn reads_user_plus_system_time_after_a_name_with_spaces() {
        let stat = "42 (pilot (disc) x) S 1 42 42 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 12 0";
        assert_eq!(cpu_time(stat).ok(), Some(Duration::from_millis(3250)));
    }

    #[test]
    fn reads_this_process() {
        let me = sample(std::process::id());
        assert!(me.is_ok_and(|s| s.rss_bytes > 0));
    }
}
