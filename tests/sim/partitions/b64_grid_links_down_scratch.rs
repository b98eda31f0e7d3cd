//! B64 (failover scenario 2) with B8: every grid link between c0 and c1 fails in a two-cluster
//! grid with a witness; both clusters stay up and both still reach the witness.
//!
//! Sequence: c0, c1 and witness w8 form one Raft group → c0 inserts scratch S00000-S00001 and
//! private P00000, c1 inserts scratch T00000-T00001 and private Q00000 (B16: each owns its own)
//! → c0 writes P00000 v1 → the grid is quiet → the c0↔c1 link is cut → on each side, scratch
//! mounts succeed while that side owns a free scratch volume (c0 gets S00000 then S00001, c1
//! gets T00000 then T00001; each job writes and unloads, which moves the volume to private),
//! and the next scratch mount fails with NO_SCRATCH_AVAILABLE (B8: the other side's scratch
//! volumes cannot be obtained) → a specific mount at c1 of c0's P00000 fails with
//! OWNER_UNREACHABLE (B14), while c0 still mounts and reads P00000 (B15) → the link is repaired
//! → journals drain and the catalogs converge, showing all four scratch volumes private at v1.

use std::time::Duration;

use vtgrid_proto::pb::Reason;
use vtgrid_sim::client::{self, expect_reason, wait_grid_ready};
use vtgrid_sim::grid::{GridControl, SimGrid};
use vtgrid_sim::invariants::Invariants;
use vtgrid_sim::ledger::Ledger;
use vtgrid_sim::seed::for_each_seed;

const SEEDS: &[u64] = &[4, 64];

fn check(cond: bool, what: String) -> Result<(), Box<dyn std::error::Error>> {
    if cond {
        Ok(())
    } else {
        Err(what.into())
    }
}

/// Two scratch jobs at `at` get `expected`, in order; the third finds no scratch volume.
async fn use_up_scratch(
    at: u8,
    expected: [&str; 2],
    ledger: &Ledger,
) -> Result<(), Box<dyn std::error::Error>> {
    for volser in expected {
        let data = format!("scratch job at C{at} on {volser}");
        let done = client::write_job(at, client::scratch("0001"), data.as_bytes(), ledger).await?;
        check(
            done.volser == volser && done.version == 1 && done.category == "000F",
            format!("scratch job at C{at}: expected {volser}, got {done:?}"),
        )?;
    }
    let mut host = client::host(at);
    expect_reason(
        &format!("B8: scratch mount at C{at} once its own scratch volumes are used"),
        client::deadline(host.mount(client::scratch("0001"))).await,
        Reason::NoScratchAvailable,
    )?;
    Ok(())
}

async fn scenario(control: GridControl, ledger: Ledger) -> Result<(), Box<dyn std::error::Error>> {
    wait_grid_ready(&control, Duration::from_secs(60)).await?;
    client::insert(0, "S00000-S00001", "0001").await?;
    client::insert(0, "P00000", "000F").await?;
    client::insert(1, "T00000-T00001", "0001").await?;
    client::insert(1, "Q00000", "000F").await?;
    let p0 = b"P00000 v1, written at c0";
    client::write_job(0, client::specific("P00000"), p0, &ledger).await?;
    client::wait_quiescent(&control, Duration::from_secs(30)).await?;

    control.partition(0, 1);
    use_up_scratch(0, ["S00000", "S00001"], &ledger).await?;
    use_up_scratch(1, ["T00000", "T00001"], &ledger).await?;
    let mut c1 = client::host(1);
    expect_reason(
        "B14: mount at c1 of c0's P00000 with the links down",
        client::deadline(c1.mount(client::specific("P00000"))).await,
        Reason::OwnerUnreachable,
    )?;
    let (_, bytes) = client::read_job(0, "P00000").await?;
    check(bytes == p0, "B15: c0 reads its own P00000".into())?;

    control.repair(0, 1);
    client::wait_quiescent(&control, Duration::from_secs(60)).await?;
    for volser in ["S00000", "S00001", "T00000", "T00001"] {
        let v = client::volume(1, volser).await?;
        check(
            v.version == 1 && v.category == "000F",
            format!("{volser} after the repair: {v:?}"),
        )?;
    }
    Ok(())
}

fn run(seed: u64) -> Result<(), String> {
    let mut grid = SimGrid::new(seed, 2, 1);
    let ledger = Ledger::new();
    grid.client("tape-host", scenario(grid.control(), ledger.clone()));
    Invariants::new(ledger).run(&mut grid)
}

#[test]
fn b64_grid_links_down_scratch_mounts_until_own_scratch_is_used() {
    for_each_seed(
        "b64_grid_links_down_scratch_mounts_until_own_scratch_is_used",
        SEEDS,
        run,
    );
}
