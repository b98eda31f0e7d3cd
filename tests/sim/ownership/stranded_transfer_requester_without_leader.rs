//! A requester that cannot reach a leader must not ask an owner to surrender (issue 9, "found on
//! real processes in network namespaces"; DESIGN §3).
//!
//! The sequence that was found: three sites, C0 leading, only the C0-C1 grid path cut. A mount at
//! C1 of a C2-owned volume asked C2 to surrender; C2 committed `Transfer{V, 2 → 1}` through the
//! leader, but C1, with no leader, could not apply it and answered `CATALOG_UNAVAILABLE` after 5 s.
//! C0 and C2 then recorded owner C1 while C1 still saw C2: until the heal nobody could mount V.
//!
//! Sequence: c0, c1, c2 agree on a leader L; R and O are the two followers → O inserts V and
//! writes v1 → quiet → the grid path L-R is cut (R still reaches O) → a mount of V at R fails
//! (retryably) → V's owner is still O at O and L, and O mounts and writes V v2 → heal, quiet → R
//! mounts V (the handshake works again) and reads v2. Per-step invariants throughout.

use std::time::Duration;

use vtgrid_sim::client::{self, wait_for};
use vtgrid_sim::grid::{GridControl, SimGrid};
use vtgrid_sim::invariants::Invariants;
use vtgrid_sim::ledger::Ledger;
use vtgrid_sim::seed::for_each_seed;

const SEEDS: &[u64] = &[3, 33];
const V: &str = "A00000";

async fn scenario(control: GridControl, ledger: Ledger) -> Result<(), Box<dyn std::error::Error>> {
    client::wait_grid_ready(&control, Duration::from_secs(60)).await?;
    client::wait_quiescent(&control, Duration::from_secs(30)).await?;
    wait_for(
        "one leader all voters agree on",
        Duration::from_secs(20),
        || client::agreed_leader(&control).is_some(),
    )
    .await?;
    let l = client::agreed_leader(&control).ok_or("no leader")?;
    let followers: Vec<u8> = (0..3).filter(|c| *c != l).collect();
    let (r, o) = (followers[0], followers[1]);

    client::insert(o, V, "000F").await?;
    client::write_job(o, client::specific(V), b"V v1, written at O", &ledger).await?;
    client::wait_quiescent(&control, Duration::from_secs(30)).await?;

    control.partition(l, r);
    let at_r = client::read_job(r, V).await;
    if at_r.is_ok() {
        return Err(format!("C{r}, cut off from the leader C{l}, mounted {V}").into());
    }
    for id in [o, l] {
        let owner = client::volume(id, V).await?.owner;
        if owner != u32::from(o) {
            return Err(format!(
                "the mount at C{r} (cut off from leader C{l}) stranded {V}: C{id} records owner \
                 C{owner}, C{r} could not apply it ({at_r:?})"
            )
            .into());
        }
    }
    client::write_job(o, client::specific(V), b"V v2, written at O", &ledger)
        .await
        .map_err(|e| format!("the owner C{o} could not write {V} after the failed request: {e}"))?;

    control.heal();
    client::wait_quiescent(&control, Duration::from_secs(60)).await?;
    let (m, bytes) = client::read_job(r, V).await?;
    if bytes != b"V v2, written at O" {
        return Err(format!(
            "C{r} read {V} v{} as {:?}",
            m.version,
            String::from_utf8_lossy(&bytes)
        )
        .into());
    }
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
fn stranded_transfer_a_requester_without_a_leader_does_not_ask_for_a_surrender() {
    for_each_seed(
        "stranded_transfer_a_requester_without_a_leader_does_not_ask_for_a_surrender",
        SEEDS,
        run,
    );
}
