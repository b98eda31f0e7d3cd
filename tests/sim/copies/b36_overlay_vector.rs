//! B36: a version carries the copy-mode vector of the class it was written with, as defined on
//! its writer, also while it is still only in the writer's owner journal (B15): the writer's
//! effective record (catalog plus journal) must say what the catalog will say once the entry is
//! published. Found by the copy invariant in the randomized schedules (seed 0, jobs anywhere:
//! S20000 v2 written with one class showed the vector of v1's class until it was published).
//!
//! Sequence: c0, c1, c2 → c0 inserts A00000-A00001 → c0 writes A00001 v1 with class DDR → quiet
//! → c0 is isolated (its journal cannot publish) → c0 writes v2 with STANDARD (RUN at C0 only:
//! the unload needs no peer) → c0's effective record of A00001 is v2 with STANDARD's vector at
//! C0, `RNN` → heal → the catalog records v2 with `RNN` too.

use std::time::Duration;

use vtgrid_core::{CopyModeVector, Volser};
use vtgrid_sim::client::{self, ensure};
use vtgrid_sim::grid::{GridControl, SimGrid};
use vtgrid_sim::invariants::Invariants;
use vtgrid_sim::ledger::Ledger;
use vtgrid_sim::seed::for_each_seed;

const SEEDS: &[u64] = &[36];

async fn scenario(control: GridControl, ledger: Ledger) -> Result<(), Box<dyn std::error::Error>> {
    client::wait_grid_ready(&control, Duration::from_secs(60)).await?;
    client::insert(0, "A00000-A00001", "000F").await?;
    let volser: Volser = "A00001".parse()?;
    let request = |class| client::with_class(client::specific("A00001"), class);
    client::write_job(0, request("DDR"), b"v1, class DDR", &ledger).await?;
    client::wait_copies_settled(&control, Duration::from_secs(30)).await?;
    client::wait_quiescent(&control, Duration::from_secs(30)).await?;

    control.isolate(0);
    let v2 = client::write_job(0, request("STANDARD"), b"v2, class STANDARD", &ledger).await?;
    ensure(
        v2.version == 2,
        &format!("v2 committed at c0 cut off: {v2:?}"),
    )?;
    let standard: CopyModeVector = "RNN".parse()?;
    let c0 = control.cluster(0).ok_or("c0 runs")?;
    let effective = c0.effective(&volser)?;
    ensure(
        effective.version == 2 && effective.copy_modes.as_ref() == Some(&standard),
        &format!(
            "B36: c0's effective record of unpublished v2 carries STANDARD's vector RNN, not \
             {:?} (v1's)",
            effective.copy_modes
        ),
    )?;

    control.heal();
    client::wait_quiescent(&control, Duration::from_secs(60)).await?;
    let published = c0
        .probe()
        .view()
        .read(|s| s.volumes.get(&volser).cloned())
        .ok_or("A00001 in c0's catalog")?;
    ensure(
        published.version == 2 && published.copy_modes == Some(standard),
        &format!(
            "the catalog records v2 with RNN: {:?}",
            published.copy_modes
        ),
    )?;
    Ok(())
}

fn run(seed: u64) -> Result<(), String> {
    let mut grid = SimGrid::new(seed, 3, 0);
    let ledger = Ledger::new();
    grid.client("tape-host", scenario(grid.control(), ledger.clone()));
    Invariants::new(ledger).run(&mut grid)
}

#[test]
fn b36_unpublished_version_carries_its_own_copy_modes() {
    for_each_seed(
        "b36_unpublished_version_carries_its_own_copy_modes",
        SEEDS,
        run,
    );
}
