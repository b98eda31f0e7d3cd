//! Crashes at the crash points of the ownership handshake and the mount (issue 9;
//! `vtgrid_node::faults`): at no step can two clusters write the volume (B10, checked after
//! every step with no exemption), and once the crashed cluster is back the volume is usable:
//! the requester obtains it, writes the next version, and nothing stays held or in doubt.
//!
//! Sequence, per point P (at the owner C0 for the surrender points, at the requester C1 for
//! the obtain and mount points) and seed: c0, c1, c2 → the host inserts A00000 at C0 and writes
//! v1 there (class RRD: C0 and C1 hold it) → the driver arms P → the host mounts A00000 at C1,
//! which asks C0 to surrender → the cluster at P is crashed right after that step; the mount
//! fails (the crash cut it off) → the host restarts that cluster and waits for a ready grid →
//! the host writes v2 at C1, retrying while the ownership settles (within a deadline) → v2 is
//! the catalog's version, owned by C1, and reads back through C1 → nothing left mounted, held,
//! in doubt or reserved; no quarantine.

use std::time::Duration;

use vtgrid_node::faults::FaultPoint;
use vtgrid_sim::client::{self, digest_hex};
use vtgrid_sim::grid::{GridControl, SimGrid};
use vtgrid_sim::invariants::{self, Invariants};
use vtgrid_sim::ledger::Ledger;
use vtgrid_sim::seed::for_each_seed;

const SEEDS: &[u64] = &[5, 55];

/// Each point and the cluster armed with it.
const POINTS: [(FaultPoint, u8); 5] = [
    (FaultPoint::SurrenderAfterFlush, 0),
    (FaultPoint::SurrenderAfterDoubt, 0),
    (FaultPoint::SurrenderAfterTransfer, 0),
    (FaultPoint::ObtainAfterReply, 1),
    (FaultPoint::MountAfterObtain, 1),
];

const V: &str = "A00000";

fn rrd() -> vtgrid_proto::pb::MountRequest {
    client::with_class(client::specific(V), "RRD")
}

async fn scenario(
    control: GridControl,
    ledger: Ledger,
    point: FaultPoint,
    at: u8,
) -> Result<(), Box<dyn std::error::Error>> {
    client::wait_grid_ready(&control, Duration::from_secs(60)).await?;
    client::insert(0, "A00000-A00001", "000F").await?;
    client::wait_quiescent(&control, Duration::from_secs(30)).await?;
    client::write_job(0, rrd(), b"v1 at the owner", &ledger).await?;
    client::wait_copies_settled(&control, Duration::from_secs(60)).await?;
    client::wait_quiescent(&control, Duration::from_secs(30)).await?;

    control.arm(at, point, 1);
    let mut host = client::host(1);
    let mount = client::deadline(host.mount(rrd())).await;
    client::wait_point_crash(&control, at, point, Duration::from_secs(30)).await?;
    client::ensure(
        mount.is_err(),
        &format!("the mount cut off at {point:?} failed: {mount:?}"),
    )?;
    control.restart(at).await;
    client::wait_grid_ready(&control, Duration::from_secs(60)).await?;

    let v2 = format!("v2 at C1 after a crash at {point:?}").into_bytes();
    let until = tokio::time::Instant::now() + Duration::from_secs(90);
    let done = loop {
        match client::write_job(1, rrd(), &v2, &ledger).await {
            Ok(done) => break done,
            Err(e) if tokio::time::Instant::now() < until => {
                vtgrid_sim::trace::note(|| format!("host {V} not usable at C1 yet: {e}"));
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => return Err(format!("{V} still unusable at C1 after {point:?}: {e}").into()),
        }
    };
    client::ensure(
        done.version == 2 && done.digest == digest_hex(&v2),
        &format!("C1 wrote v{} ({})", done.version, done.digest),
    )?;
    client::wait_quiescent(&control, Duration::from_secs(60)).await?;
    let seen = client::volume(2, V).await?;
    client::ensure(
        seen.owner == 1 && seen.version == 2,
        &format!("{V} is owned by C{} at v{}", seen.owner, seen.version),
    )?;
    let (_, bytes) = client::read_job(1, V).await?;
    client::ensure(bytes == v2, "v2 reads back through C1")?;

    client::wait_settled(&control).await?;
    let running: Vec<_> = (0..3).filter_map(|id| control.cluster(id)).collect();
    invariants::no_quarantine(&running)?;
    client::wait_quiescent(&control, Duration::from_secs(60)).await?;
    Ok(())
}

fn run(seed: u64, point: FaultPoint, at: u8) -> Result<(), String> {
    let mut grid = SimGrid::new(seed, 3, 0);
    let ledger = Ledger::new();
    grid.client(
        "tape-host",
        scenario(grid.control(), ledger.clone(), point, at),
    );
    Invariants::new(ledger)
        .run(&mut grid)
        .map_err(|e| format!("crash at {point:?} on C{at}: {e}"))
}

#[test]
fn crash_at_each_handshake_point_keeps_one_writable_owner_and_the_volume_usable() {
    for_each_seed(
        "crash_at_each_handshake_point_keeps_one_writable_owner_and_the_volume_usable",
        SEEDS,
        |seed| POINTS.iter().try_for_each(|(p, at)| run(seed, *p, *at)),
    );
}
