//! `vtgrid node --config FILE --id N` and `vtgrid witness --config FILE --id N`: one voter of a
//! grid file as this process (see `vtgrid_node::process`); `vtgrid agent --config FILE --id N`:
//! the takeover agent beside data cluster N (see `vtgrid_agent::process`).

use std::path::Path;

use crate::client::CliError;

/// A data cluster (ids 0..7).
pub async fn run(config: &Path, id: u8) -> Result<(), CliError> {
    Ok(vtgrid_node::process::run_node(config, id).await?)
}

/// A witness (ids 8..15): the catalog only, no volumes, no hosts.
pub async fn run_witness(config: &Path, id: u8) -> Result<(), CliError> {
    Ok(vtgrid_node::process::run_witness(config, id).await?)
}

/// The takeover agent of data cluster `id`.
pub async fn run_agent(config: &Path, id: u8) -> Result<(), CliError> {
    Ok(vtgrid_agent::process::run_agent(config, id).await?)
}
