use clap::Parser;
use weft_operator::cli::{Cli, Command};
use weft_operator::{bootstrap, standalone, telemetry};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Standalone(args) => {
            telemetry::init_logging();
            standalone::run(args).await
        }
        Command::Bootstrap(args) => {
            print!("{}", bootstrap::render(&args)?);
            Ok(())
        }
    }
}
