//! `vtgrid node --config FILE --id N`.

use std::path::Path;

use crate::client::CliError;

pub async fn run(config: &Path, id: u8) -> Result<(), CliError> {
    Ok(vtgrid_node::process::run_node(config, id).await?)
}
