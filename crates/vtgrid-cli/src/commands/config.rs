//! `vtgrid config check FILE` and `vtgrid config embedded`.

use std::path::Path;

use vtgrid_node::config::{GridConfig, EMBEDDED_GRID};

use crate::args::ConfigCommand;
use crate::client::CliError;

pub fn run(cmd: ConfigCommand) -> Result<(), CliError> {
    match cmd {
        ConfigCommand::Check { file } => check(&file),
        ConfigCommand::Embedded => {
            print!("{EMBEDDED_GRID}");
            Ok(())
        }
    }
}

fn check(file: &Path) -> Result<(), CliError> {
    let grid = GridConfig::load(file)?;
    let voters = grid.voters().len();
    println!(
        "{}: grid {:?}, {} data cluster(s), {} witness(es), {} voter(s): ok",
        file.display(),
        grid.grid.name,
        grid.clusters.len(),
        grid.witnesses.len(),
        voters
    );
    if voters == 2 {
        println!(
            "warning: 2 voters: while either one is down, no catalog change (insert, takeover) \
             can commit; add a witness at a third place"
        );
    } else if voters % 2 == 0 {
        println!(
            "warning: {voters} voters: an even count tolerates no more failures than {} voters",
            voters - 1
        );
    }
    Ok(())
}
