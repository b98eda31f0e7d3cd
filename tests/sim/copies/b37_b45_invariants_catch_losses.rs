//! The copy invariants fail on the losses they exist for (a check that cannot fail checks
//! nothing): B37/B39 `b37_b39_acknowledged_copies_held` and B45 `b45_every_copy_verified`, called
//! on a real grid after the damage is done by hand (the driver checks nothing here).
//!
//! Sequence: c0, c1, c2 → c0 writes A00001 with class RRD (C1 RUN, C2 Deferred) and the copies
//! settle → both invariants hold → an acknowledgement that leaves C1, a RUN cluster, out of its
//! copies without saying a copy was deferred is refused → one byte of C2's copy is flipped: B45
//! names C2 → C1's copy is removed: the acknowledged copy is missing (B37) and B45 names C1.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use vtgrid_core::Volser;
use vtgrid_node::Cluster;
use vtgrid_sim::client::{self, ensure};
use vtgrid_sim::grid::{GridControl, SimGrid};
use vtgrid_sim::invariants::{b37_b39_acknowledged_copies_held, b45_every_copy_verified};
use vtgrid_sim::ledger::Ledger;
use vtgrid_sim::seed::for_each_seed;

const SEEDS: &[u64] = &[45];

fn running(control: &GridControl) -> Vec<Arc<Cluster>> {
    control
        .voters()
        .into_iter()
        .filter_map(|id| control.cluster(id))
        .collect()
}

fn held(control: &GridControl, ledger: &Ledger) -> Result<(), String> {
    b37_b39_acknowledged_copies_held(&running(control), ledger, &mut BTreeSet::new())
}

fn fails_naming(result: Result<(), String>, needle: &str, what: &str) -> Result<(), String> {
    match result {
        Err(e) if e.contains(needle) => Ok(()),
        Err(e) => Err(format!("{what}: the failure should name {needle}: {e}")),
        Ok(()) => Err(format!("{what}: the invariant did not fail")),
    }
}

async fn scenario(
    control: GridControl,
    disks: [vtgrid_tvc::MemVolumeStore; 2],
) -> Result<(), Box<dyn std::error::Error>> {
    client::wait_grid_ready(&control, Duration::from_secs(60)).await?;
    client::insert(0, "A00000-A00001", "000F").await?;
    let ledger = Ledger::new();
    let request = client::with_class(client::specific("A00001"), "RRD");
    let done = client::write_job(0, request, &[7u8; 300_000], &ledger).await?;
    client::wait_copies_settled(&control, Duration::from_secs(30)).await?;
    client::wait_quiescent(&control, Duration::from_secs(30)).await?;
    held(&control, &ledger)?;
    b45_every_copy_verified(&running(&control))?;

    let volser: Volser = "A00001".parse()?;
    let mut short = done.clone();
    short.copies = vec![0];
    let lying = Ledger::new();
    lying.acknowledge_unload(volser, &short, 0);
    fails_naming(
        held(&control, &lying),
        "C1",
        "an unload that left out a RUN cluster without deferring",
    )?;

    let [c1, c2] = disks;
    c2.corrupt_byte(volser, done.version, 1234)?;
    fails_naming(
        b45_every_copy_verified(&running(&control)),
        "consistent at C2",
        "a corrupt copy at C2",
    )?;

    vtgrid_tvc::VolumeStore::remove(&c1, volser, done.version)?;
    fails_naming(held(&control, &ledger), "held by C1", "C1's copy removed")?;
    ensure(
        b45_every_copy_verified(&running(&control)).is_err(),
        "B45 fails with C1's copy gone",
    )?;
    Ok(())
}

fn run(seed: u64) -> Result<(), String> {
    let mut grid = SimGrid::new(seed, 3, 0);
    let disks = [grid.disks(1).volumes.clone(), grid.disks(2).volumes.clone()];
    grid.client("tape-host", scenario(grid.control(), disks));
    grid.run(|_| Ok(()))
}

#[test]
fn b37_b45_copy_invariants_fail_on_a_missing_or_corrupt_copy() {
    for_each_seed(
        "b37_b45_copy_invariants_fail_on_a_missing_or_corrupt_copy",
        SEEDS,
        run,
    );
}
