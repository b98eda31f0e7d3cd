//! T12 (B14, B26, DESIGN §3 "a majority is not a direction"): an owner cut off alive keeps its
//! volumes; only a write takeover the majority commits moves them, and its misuse against a live
//! owner is detected, never merged silently.
//!
//! Sequence, three clusters: c0 inserts V00000 and writes v1 with RRD (a RUN copy at c1) →
//! quiet → c0 is isolated, alive → at c1 V00000 → OWNER_UNREACHABLE, again after the grace of a
//! few seconds (no automatic takeover) → c0 goes on serving V00000 (B15): writes v2 "A" → WOT at
//! c0 for c1, from the minority → TAKEOVER_NEEDS_MAJORITY → ROT at c1 for c0: c1 reads V00000
//! and gets v1 (older than c0's: recorded) → WOT at c1 for c0 (the misuse of B26: c0 is alive)
//! → c1 writes v2 "B" → heal → c0's v2 "A" is refused by epoch and quarantined at c0 with an
//! OWNERSHIP_CONFLICT event; the catalog keeps c1's v2 "B" and c1 as owner; the grant is
//! cleared once c0 is back.
//!
//! V00000 is exempt from B10 and from "one version number, one set of bytes": the misuse makes
//! both happen on purpose; the test checks they are detected.

use std::time::Duration;

use vtgrid_proto::pb::{self, Reason};
use vtgrid_sim::client::{self, ensure, expect_reason};
use vtgrid_sim::grid::{GridControl, SimGrid};
use vtgrid_sim::invariants::Invariants;
use vtgrid_sim::ledger::Ledger;
use vtgrid_sim::seed::for_each_seed;

const SEEDS: &[u64] = &[12, 120];

async fn scenario(control: GridControl, ledger: Ledger) -> Result<(), Box<dyn std::error::Error>> {
    client::wait_grid_ready(&control, Duration::from_secs(60)).await?;
    client::insert(0, "V00000", "000F").await?;
    let v1 = b"V00000 v1, grid whole".to_vec();
    client::write_job(
        0,
        client::with_class(client::specific("V00000"), "RRD"),
        &v1,
        &ledger,
    )
    .await?;
    client::wait_quiescent(&control, Duration::from_secs(30)).await?;

    control.isolate(0);
    for attempt in 0..2 {
        expect_reason(
            &format!("B14: V00000 at c1 while c0 is cut off (attempt {attempt})"),
            client::read_job(1, "V00000").await,
            Reason::OwnerUnreachable,
        )?;
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
    let a = b"V00000 v2 A, written at the cut-off owner".to_vec();
    let at_c0 = client::write_job(0, client::specific("V00000"), &a, &ledger).await?;
    ensure(at_c0.version == 2, "B15: c0 serves its volume cut off")?;
    expect_reason(
        "WOT from the minority side",
        client::set_takeover(0, 1, pb::TakeoverMode::Wot, false).await,
        Reason::TakeoverNeedsMajority,
    )?;

    client::set_takeover(1, 0, pb::TakeoverMode::Rot, false).await?;
    let (_, seen) = client::read_job(1, "V00000").await?;
    ensure(
        seen == v1,
        "T12: under ROT c1 reads V00000 v1, older than the cut-off owner's v2",
    )?;

    // B26: WOT against an owner that is in fact alive. The majority commits it.
    client::set_takeover(1, 0, pb::TakeoverMode::Wot, false).await?;
    let b = b"V00000 v2 B, written at c1 under a mistaken WOT".to_vec();
    let at_c1 = client::write_job(1, client::specific("V00000"), &b, &ledger).await?;
    ensure(at_c1.version == 2, "c1 writes its own v2")?;

    control.heal();
    client::wait_quarantined(&control, 0, "V00000", 2).await?;
    let c0 = control.cluster(0).ok_or("c0 runs")?;
    ensure(
        c0.probe()
            .events()
            .recent()
            .iter()
            .any(|e| e.code == "OWNERSHIP_CONFLICT"),
        "B26: c0 raises OWNERSHIP_CONFLICT",
    )?;
    let v = client::volume(2, "V00000").await?;
    ensure(
        v.owner == 1 && v.version == 2 && v.digest == client::digest_hex(&b),
        "the catalog keeps c1's v2 B, owned by c1",
    )?;
    client::wait_grants_cleared(&control, 1).await?;
    client::wait_quiescent(&control, Duration::from_secs(60)).await?;
    Ok(())
}

#[test]
fn t12_a_majority_takes_a_live_owners_volume_only_by_a_grant_and_the_misuse_is_detected() {
    for_each_seed(
        "t12_a_majority_takes_a_live_owners_volume_only_by_a_grant_and_the_misuse_is_detected",
        SEEDS,
        |seed| {
            let mut grid = SimGrid::new(seed, 3, 0);
            let ledger = Ledger::new();
            grid.client("tape-host", scenario(grid.control(), ledger.clone()));
            Invariants::new(ledger)
                .exempt("V00000".parse().expect("a VOLSER"))
                .run(&mut grid)
        },
    );
}
