//! B14 and B15 with the owner partitioned away, on a two-cluster grid with a witness, a
//! three-cluster grid and a four-cluster grid.
//!
//! Sequence: the voters form one Raft group → c0 inserts A00000-A00004 (private) and
//! S00000-S00001 (scratch), so c0 owns them (B16) → c0 writes A00001 v1, published and applied everywhere → c0 is cut
//! off from every other voter → at every other data cluster, a mount of A00002 fails with
//! OWNER_UNREACHABLE (B14: no automatic takeover, even with a majority) → meanwhile c0 keeps
//! serving what it owns (B15): it writes A00001 v2 and A00002 v1, re-categorises scratch
//! S00001 to private, and a scratch mount gets S00000, which it writes; every change is journalled at c0
//! (the journal holds them, c0's view shows them) while the majority's catalog still shows
//! A00001 at v1 → the partition heals → the journal drains, every catalog converges and shows
//! c0's changes (A00001 v2, A00002 v1, S00000 v1 in 000F, S00001 in 000F). B10 and B37 are
//! checked after every step.

use std::time::Duration;

use vtgrid_proto::pb::Reason;
use vtgrid_sim::client::{self, expect_reason, wait_grid_ready};
use vtgrid_sim::grid::{GridControl, SimGrid};
use vtgrid_sim::invariants::Invariants;
use vtgrid_sim::ledger::Ledger;
use vtgrid_sim::seed::for_each_seed;

const SEEDS: &[u64] = &[8, 31];

fn check(cond: bool, what: String) -> Result<(), Box<dyn std::error::Error>> {
    if cond {
        Ok(())
    } else {
        Err(what.into())
    }
}

async fn scenario(control: GridControl, ledger: Ledger) -> Result<(), Box<dyn std::error::Error>> {
    wait_grid_ready(&control, Duration::from_secs(60)).await?;
    client::insert(0, "A00000-A00004", "000F").await?;
    client::insert(0, "S00000-S00001", "0001").await?;
    client::write_job(
        0,
        client::specific("A00001"),
        b"A00001 v1, grid whole",
        &ledger,
    )
    .await?;
    // Published, and every view has it (else a lagging view answers CATALOG_UNAVAILABLE).
    client::wait_quiescent(&control, Duration::from_secs(30)).await?;
    let c0 = control.cluster(0).ok_or("c0 not running")?;

    control.isolate(0);
    let majority: Vec<u8> = control
        .data_clusters()
        .into_iter()
        .filter(|c| *c != 0)
        .collect();
    for &at in &majority {
        let mut host = client::host(at);
        expect_reason(
            &format!("B14: mount of c0's A00002 at C{at}"),
            client::deadline(host.mount(client::specific("A00002"))).await,
            Reason::OwnerUnreachable,
        )?;
    }

    // B15: the isolated owner serves its own volumes.
    let v2 = client::write_job(
        0,
        client::specific("A00001"),
        b"A00001 v2, cut off",
        &ledger,
    )
    .await?;
    check(
        v2.version == 2,
        format!("c0 committed A00001 v{}", v2.version),
    )?;
    client::write_job(
        0,
        client::specific("A00002"),
        b"A00002 v1, cut off",
        &ledger,
    )
    .await?;
    let moved = client::change_category(0, "S00001", "000F").await?;
    check(
        moved.category == "000F",
        format!("S00001 moved to {}", moved.category),
    )?;
    let scratch =
        client::write_job(0, client::scratch("0001"), b"scratch job, cut off", &ledger).await?;
    check(
        scratch.volser == "S00000" && scratch.category == "000F",
        format!(
            "the scratch job wrote {} into {}",
            scratch.volser, scratch.category
        ),
    )?;
    check(
        c0.probe().journal().pending_count() == 4,
        format!(
            "c0 journals its 4 changes, holds {}",
            c0.probe().journal().pending_count()
        ),
    )?;
    let seen = client::volume(majority[0], "A00001").await?;
    check(
        seen.version == 1,
        format!(
            "the majority's catalog shows A00001 v{} while c0 is cut off",
            seen.version
        ),
    )?;

    control.heal();
    client::wait_quiescent(&control, Duration::from_secs(60)).await?;
    for &at in &majority {
        let a1 = client::volume(at, "A00001").await?;
        let a2 = client::volume(at, "A00002").await?;
        let s0 = client::volume(at, "S00000").await?;
        let s1 = client::volume(at, "S00001").await?;
        check(
            (
                a1.version,
                a2.version,
                s0.version,
                s0.category.as_str(),
                s1.category.as_str(),
            ) == (2, 1, 1, "000F", "000F"),
            format!("C{at} after the heal: {a1:?} {a2:?} {s0:?} {s1:?}"),
        )?;
    }
    Ok(())
}

fn run(seed: u64, clusters: u8, witnesses: u8) -> Result<(), String> {
    let mut grid = SimGrid::new(seed, clusters, witnesses);
    let ledger = Ledger::new();
    grid.client("tape-host", scenario(grid.control(), ledger.clone()));
    Invariants::new(ledger).run(&mut grid)
}

#[test]
fn b14_b15_owner_partitioned_away_two_clusters_and_a_witness() {
    for_each_seed(
        "b14_b15_owner_partitioned_away_two_clusters_and_a_witness",
        SEEDS,
        |seed| run(seed, 2, 1),
    );
}

#[test]
fn b14_b15_owner_partitioned_away_three_clusters() {
    for_each_seed(
        "b14_b15_owner_partitioned_away_three_clusters",
        SEEDS,
        |seed| run(seed, 3, 0),
    );
}

#[test]
fn b14_b15_owner_partitioned_away_four_clusters() {
    for_each_seed(
        "b14_b15_owner_partitioned_away_four_clusters",
        SEEDS,
        |seed| run(seed, 4, 0),
    );
}
