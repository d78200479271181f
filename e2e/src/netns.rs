//! Test hosts in network namespaces: an address of their own, off
//! loopback, that only this test run owns (`ip netns`, a veth pair, a /30).
//! For tests whose peers refuse loopback addresses, such as a
//! kube-apiserver validating EndpointSlices. Needs root and iproute2; a
//! test without them fails saying so.

use std::net::Ipv4Addr;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use anyhow::{Context, Result, bail};

use crate::procs::Process;

/// A network namespace with one veth link to this one. Deleted on drop
/// (which also removes the veth pair).
#[derive(Debug)]
pub struct TestHost {
    name: String,
    /// The host's address, reachable from this namespace.
    pub ip: Ipv4Addr,
    /// This namespace's end of the link.
    pub gateway_ip: Ipv4Addr,
}

fn ip_cmd(args: &[&str]) -> Result<()> {
    let out = Command::new("ip").args(args).output().map_err(|err| {
        anyhow::anyhow!("cannot run `ip` ({err}); install iproute2: apt-get install iproute2")
    })?;
    if !out.status.success() {
        bail!(
            "`ip {}` failed (network namespaces need root): {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

impl TestHost {
    /// Creates a namespace with address 10.213.<p>.<4n+2>/30, this side
    /// <4n+1>, where <p> comes from the process id and n counts hosts.
    pub fn create() -> Result<TestHost> {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        anyhow::ensure!(n < 64, "at most 64 test hosts per process");
        let pid = std::process::id();
        let third = u8::try_from(pid % 250).context("octet")?;
        let fourth = u8::try_from(4 * n).context("octet")?;
        let name = format!("weft-e2e-{pid}-{n}");
        let (outside, inside) = (
            format!("wo{}x{n}", pid % 100_000),
            format!("wi{}x{n}", pid % 100_000),
        );
        let gateway_ip = Ipv4Addr::new(10, 213, third, fourth + 1);
        let ip = Ipv4Addr::new(10, 213, third, fourth + 2);
        ip_cmd(&["netns", "add", &name])?;
        let host = TestHost {
            name,
            ip,
            gateway_ip,
        };
        ip_cmd(&[
            "link", "add", &outside, "type", "veth", "peer", "name", &inside,
        ])?;
        ip_cmd(&["link", "set", &inside, "netns", &host.name])?;
        ip_cmd(&["addr", "add", &format!("{gateway_ip}/30"), "dev", &outside])?;
        ip_cmd(&["link", "set", &outside, "up"])?;
        let inside_cmd = |args: &[&str]| {
            let mut full = vec!["netns", "exec", host.name.as_str(), "ip"];
            full.extend_from_slice(args);
            ip_cmd(&full)
        };
        inside_cmd(&["addr", "add", &format!("{ip}/30"), "dev", &inside])?;
        inside_cmd(&["link", "set", &inside, "up"])?;
        inside_cmd(&["link", "set", "lo", "up"])?;
        Ok(host)
    }

    /// Runs `program args...` inside the namespace, as a [`Process`].
    pub fn spawn(&self, label: &str, program: &std::path::Path, args: &[&str]) -> Result<Process> {
        let mut command = Command::new("ip");
        command
            .args(["netns", "exec", &self.name])
            .arg(program)
            .args(args);
        Process::spawn(label, command)
    }
}

impl Drop for TestHost {
    fn drop(&mut self) {
        // Deleting the namespace destroys its veth end, and with it the pair.
        let _ = ip_cmd(&["netns", "del", &self.name]);
    }
}
