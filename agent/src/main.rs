//! `canopy-agent`. The binary exists so the workspace has its final shape; its
//! subcommands arrive with the agent issue (see ARCHITECTURE.md).
#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    let arg = std::env::args().nth(1);
    match arg.as_deref() {
        Some("--version") | Some("-V") => {
            println!("canopy-agent {}", env!("CARGO_PKG_VERSION"));
            std::process::ExitCode::SUCCESS
        }
        _ => {
            eprintln!("canopy-agent {}: no subcommands in this release; only --version", env!("CARGO_PKG_VERSION"));
            std::process::ExitCode::from(2)
        }
    }
}
