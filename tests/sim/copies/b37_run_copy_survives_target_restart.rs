//! B37: a RUN copy the host was told about survives a restart of the cluster holding it, also
//! while the writer's new version has not reached the catalog yet (the writer is cut off from the
//! catalog's majority but not from the RUN cluster, B15).
//!
//! Sequence: c0, c1, c2 and witness w8 → c0 inserts A00000-A00001 → C2 made the catalog leader →
//! c0 is cut from c2 and w8 (it still reaches c1; its journal cannot publish) → c0 writes A00001
//! with class RRD: C1 pulls the RUN copy and the unload lists C0 and C1 → C1's catalog still has
//! A00001 at version 0 (C1's `CopyDone` waits for the writer's entry) → c0 is cut from c1 too;
//! c1 and c2 crash; c1 restarts first and c2 2 s later (so that C1, campaigning alone, often
//! leads afterwards: a cluster that starts as the leader prunes volume files newer than its
//! catalog) → a leader among c1, c2, w8 → C1 must still hold v1 throughout (checked after every
//! step by the copy invariant) → heal → every copy owed is made and every copy verified.

use std::time::Duration;

use vtgrid_sim::client::{self, ensure};
use vtgrid_sim::grid::{GridControl, SimGrid};
use vtgrid_sim::invariants::Invariants;
use vtgrid_sim::ledger::Ledger;
use vtgrid_sim::seed::for_each_seed;

const SEEDS: &[u64] = &[11, 370];

async fn scenario(control: GridControl, ledger: Ledger) -> Result<(), Box<dyn std::error::Error>> {
    client::wait_grid_ready(&control, Duration::from_secs(60)).await?;
    client::insert(0, "A00000-A00001", "000F").await?;
    client::make_leader(&control, 2, Duration::from_secs(60)).await?;
    client::wait_quiescent(&control, Duration::from_secs(30)).await?;

    control.partition(0, 2);
    control.partition(0, 8);
    let request = client::with_class(client::specific("A00001"), "RRD");
    let done = client::write_job(0, request, &[5u8; 200_000], &ledger).await?;
    ensure(
        done.copies == [0, 1] && !done.immediate_copy_deferred,
        &format!("the RUN copy at C1 is made with C0 cut from the majority: {done:?}"),
    )?;
    let c1 = control.cluster(1).ok_or("c1 runs")?;
    let seen = c1.effective(&"A00001".parse()?)?;
    ensure(
        seen.version == 0,
        &format!("C1's catalog does not have v1 yet (C0's entry is unpublished): {seen:?}"),
    )?;
    drop(c1);

    // C0 goes out of reach entirely; C1 and the leader C2 crash, and C1 comes back first, so
    // that C1, campaigning while C2 is down, is likely to lead once C2 is back (only a leader
    // prunes volume files newer than its catalog at start).
    control.isolate(0);
    control.crash(1).await;
    control.crash(2).await;
    control.restart(1).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    control.restart(2).await;
    client::wait_ready(1, Duration::from_secs(60)).await?;
    client::wait_for("a leader among c1, c2, w8", Duration::from_secs(60), || {
        let seen: Vec<_> = [1u8, 2, 8]
            .iter()
            .map(|v| control.cluster(*v).and_then(|c| c.probe().leader()))
            .collect();
        seen[0].is_some() && seen.iter().all(|l| *l == seen[0])
    })
    .await?;
    // Give the copy invariant steps to look at C1's store after its restart.
    tokio::time::sleep(Duration::from_secs(2)).await;

    control.heal();
    client::wait_grid_ready(&control, Duration::from_secs(60)).await?;
    client::wait_quiescent(&control, Duration::from_secs(60)).await?;
    client::wait_copies_settled(&control, Duration::from_secs(60)).await?;
    client::wait_quiescent(&control, Duration::from_secs(30)).await?;
    Ok(())
}

fn run(seed: u64) -> Result<(), String> {
    let mut grid = SimGrid::new(seed, 3, 1);
    let ledger = Ledger::new();
    grid.client("tape-host", scenario(grid.control(), ledger.clone()));
    Invariants::new(ledger).run(&mut grid)
}

#[test]
fn b37_run_copy_survives_a_restart_of_its_cluster_before_the_version_is_published() {
    for_each_seed(
        "b37_run_copy_survives_a_restart_of_its_cluster_before_the_version_is_published",
        SEEDS,
        run,
    );
}
