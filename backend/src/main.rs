//! `backend serve | run | emulator | batch | journal export`: parse the command line, set up logging, hand over.

use std::process::ExitCode;

use backend::config::{Cli, Command, JournalCommand};
use clap::Parser;

mod cli;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = std::env::var("RUST_LOG").unwrap_or_else(|_| "info".to_owned());
    backend::telemetry::init(Some(&filter));
    let result = match cli.command {
        Command::Serve(args) => cli::serve(args).await,
        Command::Run(args) => cli::run_once(args).await,
        Command::Emulator(args) => cli::emulator(args).await,
        Command::Batch(args) => cli::batch::submit_and_follow(args).await,
        Command::Journal(JournalCommand::Export(args)) => cli::journal_export(args).await,
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
