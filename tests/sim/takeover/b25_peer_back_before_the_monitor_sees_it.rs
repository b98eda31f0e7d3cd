//! B25 (never a write takeover against a live owner): the refusal does not rest on the link
//! monitor's last round alone. Found on real processes: a WOT asked right after start, before
//! the monitor had pinged the peer once, was granted against a peer that answered.
//!
//! Sequence, three clusters, no agents: c1 leads → c0 is isolated → c1's grid state shows c0 unreachable →
//! heal → at once (the monitor's next round is up to a second away) WOT at c1 for c0 →
//! PEER_ALIVE, and no grant is committed.

use std::time::Duration;

use vtgrid_proto::pb::{self, Reason};
use vtgrid_sim::client::{self, ensure, expect_reason};
use vtgrid_sim::grid::{GridControl, SimGrid};
use vtgrid_sim::invariants::Invariants;
use vtgrid_sim::ledger::Ledger;
use vtgrid_sim::seed::for_each_seed;

const SEEDS: &[u64] = &[25, 250];

async fn scenario(control: GridControl) -> Result<(), Box<dyn std::error::Error>> {
    client::wait_grid_ready(&control, Duration::from_secs(60)).await?;
    // c1 leads, so that a grant would commit at once: only the refusal stands in its way.
    client::make_leader(&control, 1, Duration::from_secs(30)).await?;
    control.isolate(0);
    client::wait_grid_state(1, "c0 unreachable", Duration::from_secs(30), |s| {
        s.links.iter().any(|l| l.peer == 0 && !l.reachable)
    })
    .await?;
    control.heal();
    expect_reason(
        "B25: WOT for c0 as soon as it answers again",
        client::set_takeover(1, 0, pb::TakeoverMode::Wot, false).await,
        Reason::PeerAlive,
    )?;
    let status = client::cluster_status(1).await?;
    ensure(
        status.takeovers.is_empty(),
        "no write-takeover grant is committed for c0",
    )?;
    client::wait_quiescent(&control, Duration::from_secs(30)).await?;
    Ok(())
}

#[test]
fn b25_a_write_takeover_is_refused_against_a_peer_that_answers_before_the_monitor_sees_it() {
    for_each_seed(
        "b25_a_write_takeover_is_refused_against_a_peer_that_answers_before_the_monitor_sees_it",
        SEEDS,
        |seed| {
            let mut grid = SimGrid::new(seed, 3, 0);
            grid.client("tape-host", scenario(grid.control()));
            Invariants::new(Ledger::new()).run(&mut grid)
        },
    );
}
