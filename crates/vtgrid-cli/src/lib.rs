//! The `vtgrid` command line: run clusters and witnesses (`node`, `witness`, `grid up`) and talk
//! to them (`volume`, `category`, `class`, `status`).
//!
//! # Layout
//! - [`args`]: the clap definitions, one enum per command group.
//! - [`client`]: connecting to a cluster and turning a refused call into `error: REASON: message`.
//! - [`commands`]: one module per command group.
//!
//! Exit status: 0 success, 2 a request the grid refused (the reason is printed), 1 anything else.

pub mod args;
pub mod client;
pub mod commands;

use std::process::ExitCode;

pub use args::Cli;
use args::Command;
use client::CliError;

/// Run one command to completion.
pub fn run(cli: Cli) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: starting the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let result = runtime.block_on(dispatch(cli));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

async fn dispatch(cli: Cli) -> Result<(), CliError> {
    let global = cli.global;
    client::set_credentials(global.token.as_deref(), global.ca.as_deref())?;
    match cli.command {
        Command::Node { config, id } => commands::node::run(&config, id).await,
        Command::Witness { config, id } => commands::node::run_witness(&config, id).await,
        Command::Agent { config, id } => commands::node::run_agent(&config, id).await,
        Command::Grid(cmd) => commands::grid::run(cmd).await,
        Command::Config(cmd) => commands::config::run(cmd),
        Command::Volume(cmd) => commands::volume::run(&global, cmd).await,
        Command::Category(cmd) => commands::constructs::run_category(&global, cmd).await,
        Command::Class(cmd) => commands::constructs::run_class(&global, cmd).await,
        Command::Status => commands::status::run(&global).await,
        Command::Bench(cmd) => commands::bench::run(cmd).await,
        Command::Quarantine(cmd) => commands::quarantine::run(&global, cmd).await,
        Command::Admin(cmd) => commands::admin::run(&global, cmd).await,
        Command::Events { follow, from } => {
            commands::quarantine::events(&global, follow, from).await
        }
        Command::Copies { volumes } => commands::status::copies(&global, volumes).await,
        Command::Certs(cmd) => commands::security::certs(cmd),
        Command::Token(cmd) => commands::security::token(cmd),
    }
}
