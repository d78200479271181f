//! Test hosts in network namespaces: an address of their own, off
//! loopback, that only this test run owns (`ip netns`, a veth pair, a /30).
//! For tests whose peers refuse loopback addresses, such as a
//! kube-apiserver validating EndpointSlices. Needs root and iproute2; a
//! test without them fails saying so.
//!
//! Two hosts can also be linked to each other ([`TestHost::link_to`], a
//! second veth pair and /30, as two pods on one node network), commands run
//! inside one ([`TestHost::exec`], [`TestHost::spawn`]), and test code run
//! with its sockets inside one ([`TestHost::block_on`]: a client app, or a
//! server app bound there).

use std::future::Future;
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

    /// The namespace's name (`ip netns exec NAME ...`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Links this host and `peer` directly with a veth pair and a /30 of
    /// 10.214.<p>.0/24 (counted like [`TestHost::create`]); returns this
    /// side's address and the peer's.
    pub fn link_to(&self, peer: &TestHost) -> Result<(Ipv4Addr, Ipv4Addr)> {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        anyhow::ensure!(n < 64, "at most 64 links per process");
        let pid = std::process::id();
        let third = u8::try_from(pid % 250).context("octet")?;
        let fourth = u8::try_from(4 * n).context("octet")?;
        let (mine, theirs) = (
            format!("lm{}x{n}", pid % 100_000),
            format!("lp{}x{n}", pid % 100_000),
        );
        let my_ip = Ipv4Addr::new(10, 214, third, fourth + 1);
        let peer_ip = Ipv4Addr::new(10, 214, third, fourth + 2);
        ip_cmd(&[
            "link", "add", &mine, "type", "veth", "peer", "name", &theirs,
        ])?;
        for (host, link, ip) in [(self, &mine, my_ip), (peer, &theirs, peer_ip)] {
            ip_cmd(&["link", "set", link, "netns", &host.name])?;
            let address = format!("{ip}/30");
            for args in [
                vec!["addr", "add", address.as_str(), "dev", link],
                vec!["link", "set", link, "up"],
            ] {
                let mut full = vec!["netns", "exec", host.name.as_str(), "ip"];
                full.extend(args);
                ip_cmd(&full)?;
            }
        }
        Ok((my_ip, peer_ip))
    }

    /// Runs `program args...` inside the namespace to completion; its
    /// stdout, or an error with its stderr.
    pub fn exec(&self, program: &std::path::Path, args: &[&str]) -> Result<String> {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.name])
            .arg(program)
            .args(args)
            .output()
            .context("cannot run `ip netns exec`; install iproute2")?;
        if !out.status.success() {
            bail!(
                "`{} {}` in {} failed: {}{}",
                program.display(),
                args.join(" "),
                self.name,
                String::from_utf8_lossy(&out.stderr).trim(),
                String::from_utf8_lossy(&out.stdout).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Runs `future` to completion on a thread that moved into this
    /// namespace, driven by the current (multi-threaded) tokio runtime:
    /// sockets it creates (a client's connection, a server's listener) are
    /// this host's, and keep working after it returns.
    pub fn block_on<F>(&self, future: F) -> Result<F::Output>
    where
        F: Future + Send,
        F::Output: Send,
    {
        block_on_in(&self.name, future)
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

/// [`TestHost::block_on`] for the namespace named `name`.
pub fn block_on_in<F>(name: &str, future: F) -> Result<F::Output>
where
    F: Future + Send,
    F::Output: Send,
{
    let handle = tokio::runtime::Handle::current();
    let path = format!("/run/netns/{name}");
    tokio::task::block_in_place(|| {
        std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    let ns = std::fs::File::open(&path)
                        .with_context(|| format!("cannot open {path}"))?;
                    rustix::thread::move_into_link_name_space(
                        std::os::fd::AsFd::as_fd(&ns),
                        Some(rustix::thread::LinkNameSpaceType::Network),
                    )
                    .with_context(|| format!("cannot enter network namespace {path} (root?)"))?;
                    Ok(handle.block_on(future))
                })
                .join()
                .map_err(|_| anyhow::anyhow!("the thread in {path} panicked"))?
        })
    })
}
