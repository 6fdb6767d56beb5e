//! `canopy`: the operator's command line. Parses flags and hands over to the library.
#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = canopy::cli::Cli::parse();
    canopy::cli::init_tracing(cli.log_format);
    match canopy::cli::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
