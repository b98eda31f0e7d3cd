//! T17 (spec §4.2; B42): data before an acknowledged sync point is on the volume, whatever
//! happens to the writer afterwards (the seed's tape semantics).
//!
//! Sequence: c0, c1, c2 → c0 inserts S00000-S00002 → the host mounts S00001 at c0 with class SSD
//! (C0 and C1 sync, C2 deferred) and writes b1..b5 → `Sync` answers 5 blocks durable → the host
//! writes b6..b8 → c0 crashes before the next sync point and restarts → once the grid is quiet,
//! S00001's current version is exactly b1..b5 (size, digest) and a mount at c0 reads b1..b5 →
//! C1, the other sync cluster, kept b1..b5 when the duplex broke and counts that as its copy of
//! the version without pulling one (B42: it holds the data up to the last sync point); C2 gets
//! its deferred copy; a read at c1 is b1..b5 too.

use std::time::Duration;

use vtgrid_proto::pb;
use vtgrid_sim::client::{self, deadline, ensure};
use vtgrid_sim::grid::{GridControl, SimGrid};
use vtgrid_sim::invariants::Invariants;
use vtgrid_sim::ledger::Ledger;
use vtgrid_sim::seed::for_each_seed;

const V: &str = "S00001";
const BLOCK: usize = 100_000;

fn block(n: u8) -> Vec<u8> {
    vec![n; BLOCK]
}

async fn scenario(control: GridControl, _ledger: Ledger) -> Result<(), Box<dyn std::error::Error>> {
    client::wait_grid_ready(&control, Duration::from_secs(60)).await?;
    client::insert(0, "S00000-S00002", "000F").await?;
    let mut host = client::host(0);
    let m = deadline(host.mount(client::with_class(client::specific(V), "SSD")))
        .await?
        .into_inner();
    let synced: Vec<u8> = (1..=5).flat_map(block).collect();
    client::write(&mut host, &m.mount_id, &synced).await?;
    let durable = deadline(host.sync(pb::SyncRequest {
        mount_id: m.mount_id.clone(),
    }))
    .await?
    .into_inner()
    .durable_bytes;
    ensure(
        durable == synced.len() as u64,
        &format!("Sync answered {durable} durable bytes"),
    )?;
    let after: Vec<u8> = (6..=8).flat_map(block).collect();
    client::write(&mut host, &m.mount_id, &after).await?;

    control.crash(0).await;
    control.restart(0).await;
    client::wait_ready(0, Duration::from_secs(60)).await?;
    client::wait_quiescent(&control, Duration::from_secs(60)).await?;
    let v = client::volume(0, V).await?;
    ensure(
        v.version == 1 && v.size == synced.len() as u64 && v.digest == client::digest_hex(&synced),
        &format!("T17: the current version holds exactly b1..b5: {v:?}"),
    )?;
    let (_, read) = client::read_job(0, V).await?;
    ensure(read == synced, "T17: a later mount reads b1..b5")?;
    client::wait_consistent(0, V, &[0, 1, 2], Duration::from_secs(60)).await?;
    let c1 = control.cluster(1).ok_or("c1 runs")?;
    ensure(
        c1.metrics.copies.get() == 0,
        "B42: C1 adopted the prefix it kept instead of pulling a copy",
    )?;
    ensure(
        c1.tvc.store().synced()?.is_empty(),
        "C1 has no synced prefix left once it holds the version",
    )?;
    let (_, read) = client::read_job(1, V).await?;
    ensure(read == synced, "T17: C1 has exactly b1..b5")?;
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
fn t17_writer_crash_keeps_the_synced_prefix() {
    for_each_seed("t17_writer_crash_keeps_the_synced_prefix", &[17, 71], run);
}
