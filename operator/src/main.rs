use std::process::ExitCode;

use clap::Parser;
use weft_operator::cli::{AgentCommand, Cli, Command};
use weft_operator::{agent, bootstrap, inject, operator, standalone, telemetry, validate};

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
            telemetry::init_logging();
            standalone::run(args).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Operator(args) => {
            telemetry::init_logging();
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
            telemetry::init_logging();
            agent::run(args).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Inject(args) => inject::command::run(&args),
    }
}
