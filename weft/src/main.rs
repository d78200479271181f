//! # weft: the binary
//!
//! The command line ([`cli`], clap) and the glue of every subcommand
//! ([`commands`]): flags become the libraries' plain config structs, and
//! the libraries run. What `weft standalone` and `weft operator` share
//! (monitoring, the xDS and quota servers, shutdown) is [`control_plane`];
//! the certificate service both can serve is [`certificate_service`]; the
//! mesh config over time, and the trust domain it settles, [`mesh_config`].
//!
//! ```text
//! weft standalone --config-dir DIR [--mesh-config FILE]
//!     files ─▶ weft_source::files ─▶ weft_config::ConfigStore ─▶ watch<MeshSnapshot>
//!     mesh config ─▶ mesh_config::MeshConfigState ─▶ ConfigStore::set_mesh_config
//!                                                                  │
//!                                         weft_xds::AdsServer ◀────┘ ─▶ Envoy (ADS, :15010)
//!     monitoring (:15014): /metrics, /healthz, /readyz, /debug/* (debug, behind
//!     debug::access; istiod's debug xDS types on :15010 too)
//! weft operator [--kubeconfig F]
//!     weft_operator::Stores (kube watches; the mesh config from ConfigMap istio) ─▶ Debouncer ─▶
//!     the same ConfigStore, xDS and monitoring; status, leader election, the CA on Secrets
//!     and the webhooks (weft_operator)
//! weft bootstrap ...   prints the Envoy bootstrap (weft_translate::bootstrap)
//! weft validate -f F   weft_source::files ─▶ weft_config::validate_documents: errors, warnings,
//!                      other kinds skipped (--strict: all of them errors)
//! weft analyze F|DIR [--kubeconfig K]  files and/or weft_operator::analyze's listing ─▶
//!                      weft_config::analyze: findings WA...., exit 79 on errors
//! weft inject -f F     the webhook's injection offline (weft_operator::inject)
//! weft proxy-status    every proxy's sync state, from a control plane's /debug/syncz
//! weft proxy-config P  a proxy's clusters, listeners, routes, endpoints, secrets
//! weft agent ...       the sidecar agent (weft_agent), its status port (:15020) and Envoy's
//!                      stats (:15090); `weft agent iptables` the capture rules
//! ```

mod certificate_service;
mod cli;
mod commands;
mod control_plane;
mod debug;
mod logging;
mod mesh_config;
mod monitoring;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::{AgentCommand, Cli, Command};
use crate::commands::{
    agent, analyze, bootstrap, inject, operator, proxy_config, proxy_status, standalone, validate,
};

/// mimalloc rather than the system allocator: every ADS push allocates and
/// frees a copy of each proxy's resources, and glibc's heaps, fragmented
/// by them, kept freed memory (about 400 KiB per connected proxy at 1,000
/// services, measured with `make bench`'s RSS per proxy).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<ExitCode> {
    let cli = Cli::parse();
    match cli.command {
        Command::Standalone(args) => {
            logging::init_logging();
            standalone::run(args).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Operator(args) => {
            logging::init_logging();
            operator::run(args).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Bootstrap(args) => {
            print!("{}", bootstrap::render(&args)?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Validate(args) => validate::run(&args),
        Command::Agent(AgentCommand::Iptables(args)) => {
            agent::iptables(&args)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Agent(AgentCommand::Run(args)) => {
            logging::init_logging();
            agent::run(args).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Inject(args) => inject::run(&args),
        Command::ProxyStatus(args) => proxy_status::run(&args).await,
        Command::ProxyConfig(args) => proxy_config::run(&args).await,
        Command::Analyze(args) => analyze::run(&args).await,
    }
}
