//! Crashes at the crash points of the copy paths (issue 9; `vtgrid_node::faults`): a copy cut
//! off after its file is stored, or after its CopyDone is journalled, or a Sync duplex cut off
//! after the sync cluster committed, is made (or adopted) after the restart; every owed copy
//! ends up held and verified, the writer's acknowledged version is never lost, and nothing is
//! left reserved or quarantined.
//!
//! Sequence, per (point, cluster, class) and seed: c0, c1, c2 → the host inserts A00000 at C0
//! → the driver arms the point → the host writes A00000 v1 at C0 (RRD: RUN at C1, Deferred at
//! C2; SYNCDEF: Sync at C1, going on without it when it fails) → the armed cluster reaches its
//! point and is crashed right after that step; the unload still succeeds (a RUN or Sync copy
//! that fails is deferred, and the host is told so) → the host restarts the cluster → every
//! owed copy is made: each data cluster's catalog names C0, C1 and C2 consistent at v1 and each
//! one's TVC holds v1 with the acknowledged digest → nothing left behind, no quarantine.
//!
//! Found a bug: with the deferred copy at C2 crashed at `CopyAfterStore`, the restarted C2
//! adopted the file (CopyDone journalled) while the copy was still queued, and its copy engine
//! spun on the in-hand copy without ever yielding, so the simulation hung (fixed in
//! `vtgrid_copy::engine`: such a round waits to be woken).

use std::time::Duration;

use vtgrid_core::Volser;
use vtgrid_node::faults::FaultPoint;
use vtgrid_sim::client::{self, digest_hex};
use vtgrid_sim::grid::{GridControl, SimGrid};
use vtgrid_sim::invariants::{self, Invariants};
use vtgrid_sim::ledger::Ledger;
use vtgrid_sim::seed::for_each_seed;

const SEEDS: &[u64] = &[8, 88];

/// (point, armed cluster, class).
const CASES: [(FaultPoint, u8, &str); 5] = [
    // The RUN copy at C1: stored, then the crash; the writer hears nothing and defers it.
    (FaultPoint::CopyAfterStore, 1, "RRD"),
    // The deferred copy at C2, from its queue: stored, nothing recorded.
    (FaultPoint::CopyAfterStore, 2, "RRD"),
    // The deferred copy at C2: its CopyDone journalled, the engine not told.
    (FaultPoint::CopyAfterCopyDone, 2, "RRD"),
    // The Sync copy at C1 committed, the writer never acknowledged: C1 owes a sync-deferred copy
    // it already holds, and adopts it.
    (FaultPoint::DuplexAfterCommit, 1, "SYNCDEF"),
    // The writer's own unload, with a Sync peer: crashed after the journal append.
    (FaultPoint::UnloadAfterJournal, 0, "SYNCDEF"),
];

const V: &str = "A00000";

async fn scenario(
    control: GridControl,
    ledger: Ledger,
    (point, at, class): (FaultPoint, u8, &'static str),
) -> Result<(), Box<dyn std::error::Error>> {
    client::wait_grid_ready(&control, Duration::from_secs(60)).await?;
    client::insert(0, "A00000-A00001", "000F").await?;
    client::wait_quiescent(&control, Duration::from_secs(30)).await?;

    control.arm(at, point, 1);
    let data = format!("{V} v1 while {point:?} is armed at C{at}")
        .repeat(100)
        .into_bytes();
    let request = client::with_class(client::specific(V), class);
    let outcome = client::write_job(0, request, &data, &ledger).await;
    client::wait_point_crash(&control, at, point, Duration::from_secs(60)).await?;
    match (&outcome, at) {
        (Err(_), 0) => {}
        (Ok(done), 1..) if done.version == 1 && done.digest == digest_hex(&data) => {}
        _ => return Err(format!("the unload of {V} with {point:?} at C{at}: {outcome:?}").into()),
    }
    control.restart(at).await;
    client::wait_grid_ready(&control, Duration::from_secs(60)).await?;
    client::wait_quiescent(&control, Duration::from_secs(60)).await?;
    client::wait_copies_settled(&control, Duration::from_secs(120)).await?;

    let v: Volser = V.parse()?;
    for id in 0..3u8 {
        let c = control.cluster(id).ok_or("every cluster runs")?;
        let (version, digest, holders) = c
            .probe()
            .view()
            .read(|s| {
                s.volumes.get(&v).map(|r| {
                    (
                        r.version,
                        r.digest.to_hex(),
                        r.consistent_clusters().map(|c| c.get()).collect::<Vec<_>>(),
                    )
                })
            })
            .ok_or("the volume is in the catalog")?;
        client::ensure(
            version == 1 && digest == digest_hex(&data) && holders == [0, 1, 2],
            &format!("C{id}'s catalog has {V} v{version} ({digest}) consistent at {holders:?}"),
        )?;
        let held = c
            .probe()
            .store()
            .open(v, 1)
            .map(|r| r.meta().digest.to_hex());
        client::ensure(
            held.as_deref().ok() == Some(digest.as_str()),
            &format!("C{id}'s TVC holds {V} v1: {held:?}"),
        )?;
    }

    client::wait_settled(&control).await?;
    let running: Vec<_> = (0..3).filter_map(|id| control.cluster(id)).collect();
    invariants::no_quarantine(&running)?;
    Ok(())
}

fn run(seed: u64, case: (FaultPoint, u8, &'static str)) -> Result<(), String> {
    let mut grid = SimGrid::new(seed, 3, 0);
    let ledger = Ledger::new();
    grid.client("tape-host", scenario(grid.control(), ledger.clone(), case));
    Invariants::new(ledger)
        .run(&mut grid)
        .map_err(|e| format!("crash at {:?} on C{} ({}): {e}", case.0, case.1, case.2))
}

#[test]
fn crash_at_each_copy_point_still_makes_every_owed_copy() {
    for_each_seed(
        "crash_at_each_copy_point_still_makes_every_owed_copy",
        SEEDS,
        |seed| CASES.iter().try_for_each(|case| run(seed, *case)),
    );
}
