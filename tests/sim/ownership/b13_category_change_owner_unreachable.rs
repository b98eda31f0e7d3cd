//! B13 with B14: a category change is the owner's to make; when the owner cannot be reached it
//! fails like a mount does (OWNER_UNREACHABLE), and changes nothing.
//!
//! Sequence: c0, c1, c2 form one Raft group → c0 inserts A00000-A00001 into private 000F (c0
//! owns them) → the grid is quiet → c0 is cut off from c1 and c2 → at c1, changing A00000 to
//! scratch 0001 fails with OWNER_UNREACHABLE; so does it at c2 for A00001 → c1 and c2 still see
//! both volumes in 000F, owned by c0 at epoch 1 → the partition heals → at c1 the same change of
//! A00000 now succeeds: c1 obtains ownership (epoch 2) and A00000 is in 0001 everywhere once the
//! grid is quiet; A00001 is untouched.

use std::time::Duration;

use vtgrid_proto::pb::Reason;
use vtgrid_sim::client::{self, expect_reason};
use vtgrid_sim::grid::{GridControl, SimGrid};
use vtgrid_sim::invariants::Invariants;
use vtgrid_sim::ledger::Ledger;
use vtgrid_sim::seed::for_each_seed;

const SEEDS: &[u64] = &[13, 1300];

fn check(cond: bool, what: String) -> Result<(), Box<dyn std::error::Error>> {
    if cond {
        Ok(())
    } else {
        Err(what.into())
    }
}

async fn scenario(control: GridControl) -> Result<(), Box<dyn std::error::Error>> {
    client::wait_grid_ready(&control, Duration::from_secs(60)).await?;
    client::insert(0, "A00000-A00001", "000F").await?;
    client::wait_quiescent(&control, Duration::from_secs(30)).await?;

    control.isolate(0);
    expect_reason(
        "B13: category change of c0's A00000 at c1",
        client::change_category(1, "A00000", "0001").await,
        Reason::OwnerUnreachable,
    )?;
    expect_reason(
        "B13: category change of c0's A00001 at c2",
        client::change_category(2, "A00001", "0001").await,
        Reason::OwnerUnreachable,
    )?;
    for at in [1, 2] {
        for volser in ["A00000", "A00001"] {
            let v = client::volume(at, volser).await?;
            check(
                (v.category.as_str(), v.owner, v.epoch) == ("000F", 0, 1),
                format!("C{at} after the refused change: {v:?}"),
            )?;
        }
    }

    control.heal();
    let changed = client::change_category(1, "A00000", "0001").await?;
    check(
        (changed.category.as_str(), changed.owner, changed.epoch) == ("0001", 1, 2),
        format!("the change at c1 after the heal: {changed:?}"),
    )?;
    client::wait_quiescent(&control, Duration::from_secs(60)).await?;
    for at in [0, 2] {
        let a0 = client::volume(at, "A00000").await?;
        let a1 = client::volume(at, "A00001").await?;
        check(
            a0.category == "0001" && a0.owner == 1 && a1.category == "000F" && a1.owner == 0,
            format!("C{at} once quiet: {a0:?} {a1:?}"),
        )?;
    }
    Ok(())
}

fn run(seed: u64) -> Result<(), String> {
    let mut grid = SimGrid::new(seed, 3, 0);
    grid.client("tape-host", scenario(grid.control()));
    Invariants::new(Ledger::new()).run(&mut grid)
}

#[test]
fn b13_category_change_fails_while_the_owner_is_unreachable() {
    for_each_seed(
        "b13_category_change_fails_while_the_owner_is_unreachable",
        SEEDS,
        run,
    );
}
