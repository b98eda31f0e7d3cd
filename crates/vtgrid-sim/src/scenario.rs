//! The usual shape of a scenario test: one tape host runs a script on a new grid while the
//! invariants are checked after every step and at the end (`invariants::Invariants::run`).

use std::future::Future;

use crate::grid::{GridControl, SimGrid};
use crate::invariants::Invariants;
use crate::ledger::Ledger;

/// The body of a tape host: it drives the grid through `GridControl` and records what it was
/// told in the `Ledger`, which the invariants hold the grid to.
pub type HostResult = Result<(), Box<dyn std::error::Error>>;

/// Run `script` as the host `tape-host` on a new grid of `clusters` data clusters and
/// `witnesses` witnesses for `seed`, with no exemptions from the invariants.
pub fn run_host<F, Fut>(seed: u64, clusters: u8, witnesses: u8, script: F) -> Result<(), String>
where
    F: FnOnce(GridControl, Ledger) -> Fut,
    Fut: Future<Output = HostResult> + 'static,
{
    let mut grid = SimGrid::new(seed, clusters, witnesses);
    let ledger = Ledger::new();
    grid.client("tape-host", script(grid.control(), ledger.clone()));
    Invariants::new(ledger).run(&mut grid)
}
