//! B16: insert needs the grid. An insert through a cluster cut off from the Raft majority fails
//! with CATALOG_UNAVAILABLE and inserts nothing, whether that cluster was the catalog's leader
//! (its log holds the entry, which the majority's new leader overwrites) or a follower.
//!
//! Sequence: c0, c1, c2 form one Raft group and the grid is quiet → the leader L is cut off from
//! the other two → an insert of L00000-L00004 through L fails with CATALOG_UNAVAILABLE → the
//! majority elects a new leader → the partition heals and the grid is quiet: no cluster knows
//! L00000, and GetVolume at L answers UNKNOWN_VOLUME → a follower F is cut off → an insert of
//! F00000-F00004 through F fails with CATALOG_UNAVAILABLE → heal, quiet: nowhere is F00000 → an
//! insert of G00000 through F, now connected, succeeds and every catalog has it (F owns it).

use std::time::Duration;

use vtgrid_core::Volser;
use vtgrid_proto::pb::Reason;
use vtgrid_sim::client::{self, expect_reason, wait_for};
use vtgrid_sim::grid::{GridControl, SimGrid};
use vtgrid_sim::invariants::Invariants;
use vtgrid_sim::ledger::Ledger;
use vtgrid_sim::seed::for_each_seed;

const SEEDS: &[u64] = &[16, 160];

/// The leader every running voter agrees on.
async fn agreed_leader(control: &GridControl) -> Result<u8, String> {
    let mut leader = None;
    wait_for(
        "one leader all voters agree on",
        Duration::from_secs(20),
        || {
            let seen: Vec<_> = control
                .voters()
                .into_iter()
                .filter_map(|id| control.cluster(id))
                .map(|c| c.probe().leader())
                .collect();
            leader = seen.first().copied().flatten();
            leader.is_some() && seen.iter().all(|l| *l == leader)
        },
    )
    .await?;
    Ok(leader.map(|l| l.get()).unwrap_or_default())
}

/// The clusters running now that know `volser`.
fn knowing(control: &GridControl, volser: &str) -> Vec<u8> {
    let volser: Volser = volser.parse().expect("a valid VOLSER");
    control
        .voters()
        .into_iter()
        .filter(|id| {
            control
                .cluster(*id)
                .is_some_and(|c| c.probe().view().read(|s| s.volumes.contains_key(&volser)))
        })
        .collect()
}

/// Cut `at` off, insert `range` through it (must fail), heal, and check nobody has it.
async fn insert_cut_off(
    control: &GridControl,
    at: u8,
    range: &str,
    first: &str,
) -> Result<(), Box<dyn std::error::Error>> {
    control.isolate(at);
    expect_reason(
        &format!("B16: insert of {range} through C{at}, cut off"),
        client::insert(at, range, "000F").await,
        Reason::CatalogUnavailable,
    )?;
    // The majority goes on with a leader of its own.
    let majority: Vec<u8> = control.voters().into_iter().filter(|c| *c != at).collect();
    wait_for(
        "a leader on the majority side",
        Duration::from_secs(20),
        || {
            majority.iter().all(|id| {
                control.cluster(*id).is_some_and(|c| {
                    c.probe()
                        .leader()
                        .is_some_and(|l| l.get() != at && majority.contains(&l.get()))
                })
            })
        },
    )
    .await?;
    control.heal();
    client::wait_quiescent(control, Duration::from_secs(60)).await?;
    let holders = knowing(control, first);
    if !holders.is_empty() {
        return Err(format!("{first} was inserted after all: known at {holders:?}").into());
    }
    expect_reason(
        &format!("GetVolume of {first} at C{at}"),
        client::volume(at, first).await,
        Reason::UnknownVolume,
    )?;
    Ok(())
}

async fn scenario(control: GridControl) -> Result<(), Box<dyn std::error::Error>> {
    client::wait_grid_ready(&control, Duration::from_secs(60)).await?;
    client::wait_quiescent(&control, Duration::from_secs(30)).await?;

    let leader = agreed_leader(&control).await?;
    insert_cut_off(&control, leader, "L00000-L00004", "L00000").await?;

    let leader = agreed_leader(&control).await?;
    let follower = (0..3).find(|c| *c != leader).ok_or("no follower")?;
    insert_cut_off(&control, follower, "F00000-F00004", "F00000").await?;

    let inserted = client::insert(follower, "G00000", "000F").await?;
    if inserted.count != 1 || inserted.owner != u32::from(follower) {
        return Err(format!("insert through C{follower}, connected: {inserted:?}").into());
    }
    client::wait_quiescent(&control, Duration::from_secs(30)).await?;
    if knowing(&control, "G00000").len() != 3 {
        return Err("G00000 is not in every catalog".into());
    }
    Ok(())
}

fn run(seed: u64) -> Result<(), String> {
    let mut grid = SimGrid::new(seed, 3, 0);
    grid.client("tape-host", scenario(grid.control()));
    Invariants::new(Ledger::new()).run(&mut grid)
}

#[test]
fn b16_insert_through_a_cut_off_cluster_fails_and_inserts_nothing() {
    for_each_seed(
        "b16_insert_through_a_cut_off_cluster_fails_and_inserts_nothing",
        SEEDS,
        run,
    );
}
