//! The `vtgrid` binary: parse the command line and hand it to [`vtgrid_cli::run`].

use clap::Parser;

fn main() -> std::process::ExitCode {
    vtgrid_cli::run(vtgrid_cli::Cli::parse())
}
