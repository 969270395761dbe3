//! `neurallog`: the log server (`serve`) and every client and offline command.
//!
//! `main` only parses arguments and hands over; the commands live in their own modules.

mod admin;
mod backup;
mod bench;
mod cli;
mod logs;
mod maintenance;
mod output;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(cli::dispatch(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One readable line: the error and its causes.
            eprintln!("error: {}", format!("{e:#}").replace('\n', " "));
            ExitCode::FAILURE
        }
    }
}
