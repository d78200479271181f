//! `weft-echo --listen ADDR --identity ID`: the e2e echo upstream as a
//! process of its own, for tests that run upstreams inside a network
//! namespace ([`weft_e2e::netns::TestHost`]). Prints `listening on ADDR`
//! once it accepts connections, and serves until it is killed.

use std::net::SocketAddr;
use std::process::ExitCode;

use anyhow::{Context, Result};
use weft_e2e::Upstream;

fn arg(name: &str) -> Result<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
        .with_context(|| format!("usage: weft-echo --listen ADDR --identity ID (missing {name})"))
}

async fn run() -> Result<()> {
    let listen: SocketAddr = arg("--listen")?
        .parse()
        .context("--listen must be IP:PORT")?;
    let upstream = Upstream::bind(&arg("--identity")?, listen).await?;
    println!("listening on {}", upstream.addr());
    tokio::signal::ctrl_c().await?;
    Ok(())
}

fn main() -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("weft-echo: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("weft-echo: {err:#}");
            ExitCode::FAILURE
        }
    }
}
