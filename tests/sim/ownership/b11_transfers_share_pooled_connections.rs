//! B11 over pooled connections (DESIGN §7, `vtgrid_transport::Peers`): ownership transfers
//! between two clusters ride the one control connection each keeps to the other, and that
//! connection is replaced once after a partition, not per call.
//!
//! Sequence: c0, c1, c2 form one Raft group → c0 inserts P00000 and writes it → P00000 is written
//! in turn at c1, c0, c1, ... (each job a transfer: the mount cluster asks the owner to
//! surrender) → across those transfers c0 and c1 dial each other at most a few times (without
//! pooling each Surrender, ping and forwarded proposal dials afresh) → c0 and c1 are partitioned
//! until each sees the other gone, then healed; turmoil's TCP drops what crosses a partition, so
//! the connections open before it never carry a byte again and must be re-dialled → the same
//! transfers work again, again on a bounded number of dials.

use std::time::Duration;

use vtgrid_proto::pb;
use vtgrid_sim::client::{self, ensure, wait_grid_state, wait_ready};
use vtgrid_sim::grid::{GridControl, SimGrid};
use vtgrid_sim::invariants::Invariants;
use vtgrid_sim::ledger::Ledger;
use vtgrid_sim::net::dials;
use vtgrid_sim::seed::for_each_seed;

const VOLSER: &str = "P00000";
const HOPS: usize = 12;
/// Dials between c0 and c1 (both ways) allowed across one run of [`HOPS`] transfers: a control
/// connection each way and a re-dial or two if a call times out under the seed's latencies.
const DIALS_PER_RUN: u64 = 4;

fn between_c0_c1() -> u64 {
    dials("c0", "c1") + dials("c1", "c0")
}

fn reachable(s: &pb::GridState, peer: u32) -> bool {
    s.links.iter().any(|l| l.peer == peer && l.reachable)
}

/// `HOPS` write jobs alternating c1, c0: each moves the volume's token across the pair.
async fn transfers(ledger: &Ledger, run: &str) -> Result<(), Box<dyn std::error::Error>> {
    let before = between_c0_c1();
    for hop in 0..HOPS {
        let at = if hop % 2 == 0 { 1 } else { 0 };
        let data = format!("{VOLSER} {run} hop {hop}").repeat(50).into_bytes();
        let done = client::write_job(at, client::specific(VOLSER), &data, ledger)
            .await
            .map_err(|e| format!("{run} hop {hop} at C{at}: {e}"))?;
        ensure(
            done.written,
            &format!("{run} hop {hop}: unload at C{at} wrote nothing"),
        )?;
        let v = client::volume(at, VOLSER).await?;
        ensure(
            v.owner == u32::from(at),
            &format!("{run} hop {hop}: C{at} sees owner {}", v.owner),
        )?;
    }
    let dialled = between_c0_c1() - before;
    ensure(
        dialled <= DIALS_PER_RUN,
        &format!("{run}: {HOPS} transfers between c0 and c1 dialled {dialled} connections"),
    )
}

async fn scenario(control: GridControl, ledger: Ledger) -> Result<(), Box<dyn std::error::Error>> {
    for id in 0..3 {
        wait_ready(id, Duration::from_secs(60)).await?;
    }
    client::insert(0, VOLSER, "000F").await?;
    client::write_job(0, client::specific(VOLSER), b"first", &ledger).await?;
    transfers(&ledger, "before the partition").await?;

    let (c0_dials, c1_dials) = (dials("c0", "c1"), dials("c1", "c0"));
    turmoil::partition("c0", "c1");
    for (at, peer) in [(0u8, 1u32), (1, 0)] {
        wait_grid_state(at, "the peer gone", Duration::from_secs(20), |s| {
            !reachable(s, peer)
        })
        .await?;
    }
    turmoil::repair("c0", "c1");
    for (at, peer) in [(0u8, 1u32), (1, 0)] {
        wait_grid_state(at, "the peer back", Duration::from_secs(30), |s| {
            reachable(s, peer)
        })
        .await?;
    }
    ensure(
        dials("c0", "c1") > c0_dials && dials("c1", "c0") > c1_dials,
        "each side re-dialled the other after the partition",
    )?;
    // Raft may elect anew after the heal: the catalog answers again first.
    client::wait_for("one leader all agree on", Duration::from_secs(30), || {
        client::agreed_leader(&control).is_some()
    })
    .await?;
    transfers(&ledger, "after the partition healed").await?;
    client::wait_quiescent(&control, Duration::from_secs(60)).await?;
    Ok(())
}

fn run(seed: u64) -> Result<(), String> {
    let mut grid = SimGrid::new(seed, 3, 0);
    let ledger = Ledger::new();
    grid.client("tape-host", scenario(grid.control(), ledger.clone()));
    Invariants::new(ledger).run(&mut grid)
}

#[test]
fn b11_transfers_share_pooled_connections() {
    for_each_seed("b11_transfers_share_pooled_connections", &[3, 31], run);
}
