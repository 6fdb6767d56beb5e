//! `canopy-aggregator`. The binary exists so the workspace has its final shape; its
//! subcommands arrive with the aggregator issue (see ARCHITECTURE.md).
#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    let arg = std::env::args().nth(1);
    match arg.as_deref() {
        Some("--version") | Some("-V") => {
            println!("canopy-aggregator {}", env!("CARGO_PKG_VERSION"));
            std::process::ExitCode::SUCCESS
        }
        _ => {
            eprintln!("canopy-aggregator {}: no subcommands in this release; only --version", env!("CARGO_PKG_VERSION"));
            std::process::ExitCode::from(2)
        }
    }
}
