//! Crashes at the crash points of the rewind-unload and publish paths (issue 9;
//! `vtgrid_node::faults`): whatever the point, the version exists after the restart exactly when
//! its journal entry was written, it is published once (no second version, no quarantine), the
//! volume takes the next job, and every invariant holds after every step.
//!
//! Sequence, per point P and seed: c0, c1, c2 (class RRD: RUN at C0 and C1, Deferred at C2) →
//! the host inserts A00000-A00002 at C0 and writes A00000 v1 → the driver arms C0 at P → the
//! host writes A00001 at C0 → C0 reaches P and is crashed right after that step → the host
//! waits for the crash, restarts C0, waits for a quiet grid → A00001 is at v1 with the job's
//! digest when P comes after the journal append (UnloadAfterJournal, PublishAfterCommit), at v0
//! before it (UnloadAfterStoreCommit, UnloadAfterRunCopies); an unload the crash cut off was
//! not answered → the host writes A00001 again: the next version number, its bytes read back
//! through C0 and C1 → every owed copy is made, nothing is left mounted, held, in doubt or
//! reserved, nothing is quarantined; A00000 v1 is intact.

use std::time::Duration;

use vtgrid_node::faults::FaultPoint;
use vtgrid_sim::client::{self, digest_hex};
use vtgrid_sim::grid::{GridControl, SimGrid};
use vtgrid_sim::invariants::{self, Invariants};
use vtgrid_sim::ledger::Ledger;
use vtgrid_sim::seed::for_each_seed;

const SEEDS: &[u64] = &[3, 31];

const POINTS: [FaultPoint; 4] = [
    FaultPoint::UnloadAfterStoreCommit,
    FaultPoint::UnloadAfterRunCopies,
    FaultPoint::UnloadAfterJournal,
    FaultPoint::PublishAfterCommit,
];

/// Is the version in the owner journal when the crash comes at `point`?
fn journalled(point: FaultPoint) -> bool {
    matches!(
        point,
        FaultPoint::UnloadAfterJournal | FaultPoint::PublishAfterCommit
    )
}

fn rrd(volser: &str) -> vtgrid_proto::pb::MountRequest {
    client::with_class(client::specific(volser), "RRD")
}

async fn scenario(
    control: GridControl,
    ledger: Ledger,
    point: FaultPoint,
) -> Result<(), Box<dyn std::error::Error>> {
    client::wait_grid_ready(&control, Duration::from_secs(60)).await?;
    client::insert(0, "A00000-A00002", "000F").await?;
    client::wait_quiescent(&control, Duration::from_secs(30)).await?;
    let first = b"A00000 v1, written before any crash".repeat(40);
    client::write_job(0, rrd("A00000"), &first, &ledger).await?;
    client::wait_quiescent(&control, Duration::from_secs(30)).await?;

    control.arm(0, point, 1);
    let cut = format!("A00001 written as {point:?} fires")
        .repeat(50)
        .into_bytes();
    let outcome = client::write_job(0, rrd("A00001"), &cut, &ledger).await;
    client::wait_point_crash(&control, 0, point, Duration::from_secs(30)).await?;
    if point != FaultPoint::PublishAfterCommit {
        client::ensure(
            outcome.is_err(),
            &format!("the unload cut off at {point:?} was not answered: {outcome:?}"),
        )?;
    }
    control.restart(0).await;
    client::wait_grid_ready(&control, Duration::from_secs(60)).await?;
    client::wait_quiescent(&control, Duration::from_secs(60)).await?;

    let seen = client::volume(1, "A00001").await?;
    let expected = u64::from(journalled(point));
    client::ensure(
        seen.version == expected,
        &format!(
            "after a crash at {point:?} A00001 is at v{}, expected v{expected}",
            seen.version
        ),
    )?;
    if journalled(point) {
        client::ensure(
            seen.digest == digest_hex(&cut),
            &format!("A00001 v1 has the job's bytes ({})", seen.digest),
        )?;
    }

    let next = format!("A00001 after the restart ({point:?})")
        .repeat(30)
        .into_bytes();
    let done = client::write_job(0, rrd("A00001"), &next, &ledger).await?;
    client::ensure(
        done.version == expected + 1 && done.digest == digest_hex(&next),
        &format!("the next job wrote v{} ({})", done.version, done.digest),
    )?;
    for at in [0, 1] {
        let (_, bytes) = client::read_job(at, "A00001").await?;
        client::ensure(bytes == next, &format!("A00001 reads back through C{at}"))?;
    }
    let (_, bytes) = client::read_job(0, "A00000").await?;
    client::ensure(bytes == first, "A00000 v1 is intact")?;

    client::wait_settled(&control).await?;
    let running: Vec<_> = (0..3).filter_map(|id| control.cluster(id)).collect();
    invariants::no_quarantine(&running)?;
    client::wait_quiescent(&control, Duration::from_secs(60)).await?;
    Ok(())
}

fn run(seed: u64, point: FaultPoint) -> Result<(), String> {
    let mut grid = SimGrid::new(seed, 3, 0);
    let ledger = Ledger::new();
    grid.client("tape-host", scenario(grid.control(), ledger.clone(), point));
    Invariants::new(ledger)
        .run(&mut grid)
        .map_err(|e| format!("crash at {point:?}: {e}"))
}

#[test]
fn crash_at_each_unload_and_publish_point_publishes_the_version_once_or_not_at_all() {
    for_each_seed(
        "crash_at_each_unload_and_publish_point_publishes_the_version_once_or_not_at_all",
        SEEDS,
        |seed| POINTS.iter().try_for_each(|p| run(seed, *p)),
    );
}
