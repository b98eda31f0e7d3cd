//! Disk faults in a cluster's volume store (issue 9; `vtgrid_tvc::faults`): a job the disk
//! fails is told why (`STORAGE_FULL` for ENOSPC, `INTERNAL` for EIO), commits nothing, leaves
//! nothing mounted or reserved, and the acknowledged version before it stays readable; once the
//! disk heals the volume takes the next job. A slow fsync only makes the unload slower.
//!
//! Sequence, per seed: c0, c1 → the host inserts A00000-A00001 at C0 and writes A00000 v1 →
//! C0's disk fills (ENOSPC) → a write of A00000 fails with STORAGE_FULL → the disk gets EIO on
//! every fsync → a job with a host sync point fails at the sync with INTERNAL → the disk heals:
//! A00000 is still at v1, reads back, nothing is left behind → every fsync of C0 takes 2 s → a
//! write of A00000 succeeds as v2 and its unload took at least 2 s → C1's disk gets EIO on
//! every write → a write of A00001 at C0 with class SSD (strict Sync at C0 and C1) fails with
//! SYNC_PEER_UNAVAILABLE and commits nothing → healed, the same job commits A00001 v1 at both.

use std::time::Duration;

use vtgrid_proto::pb::{self, Reason};
use vtgrid_sim::client::{self, digest_hex, expect_reason};
use vtgrid_sim::grid::GridControl;
use vtgrid_sim::invariants;
use vtgrid_sim::ledger::Ledger;
use vtgrid_sim::scenario;
use vtgrid_sim::seed::for_each_seed;
use vtgrid_tvc::DiskFaults;

const SEEDS: &[u64] = &[2, 22];

/// Mount A00000 at C0, write half of `data`, take a host sync point, write the rest, unload.
async fn sync_point_job(
    data: &[u8],
    ledger: &Ledger,
) -> Result<pb::RewindUnloadResponse, tonic::Status> {
    let mut host = client::host(0);
    let m = client::deadline(host.mount(client::specific("A00000")))
        .await?
        .into_inner();
    let (a, b) = data.split_at(data.len() / 2);
    let written = async {
        client::write(&mut host, &m.mount_id, a).await?;
        client::deadline(host.sync(pb::SyncRequest {
            mount_id: m.mount_id.clone(),
        }))
        .await?;
        client::write(&mut host, &m.mount_id, b).await
    }
    .await;
    if let Err(e) = written {
        let _ = client::unload(&mut host, &m.mount_id).await;
        return Err(e);
    }
    let done = client::unload(&mut host, &m.mount_id).await?;
    ledger.acknowledge_unload(
        "A00000"
            .parse()
            .map_err(|_| tonic::Status::internal("volser"))?,
        &done,
        0,
    );
    Ok(done)
}

fn left_behind(control: &GridControl) -> Result<(), String> {
    let running: Vec<_> = (0..2).filter_map(|id| control.cluster(id)).collect();
    invariants::nothing_left_behind(&running)
}

async fn scenario(control: GridControl, ledger: Ledger) -> Result<(), Box<dyn std::error::Error>> {
    client::wait_grid_ready(&control, Duration::from_secs(60)).await?;
    client::insert(0, "A00000-A00001", "000F").await?;
    client::wait_quiescent(&control, Duration::from_secs(30)).await?;
    let v1 = b"A00000 v1 on a healthy disk".repeat(20);
    client::write_job(0, client::specific("A00000"), &v1, &ledger).await?;
    let disk = control.volumes(0).ok_or("C0's volume store")?;

    disk.set_faults(DiskFaults::no_space());
    let full = client::write_job(0, client::specific("A00000"), b"no room for this", &ledger).await;
    expect_reason("a write on a full disk", full, Reason::StorageFull)?;

    disk.set_faults(DiskFaults::fsync_eio());
    let eio = sync_point_job(b"the sync point of this job fails", &ledger).await;
    expect_reason("a sync point whose fsync fails", eio, Reason::Internal)?;
    client::ensure(disk.faults_injected() >= 2, "both faults were hit")?;

    disk.clear_faults();
    client::wait_for("nothing left behind", Duration::from_secs(30), || {
        left_behind(&control).is_ok()
    })
    .await
    .map_err(|e| format!("{e}: {:?}", left_behind(&control)))?;
    client::wait_quiescent(&control, Duration::from_secs(30)).await?;
    let seen = client::volume(1, "A00000").await?;
    client::ensure(
        seen.version == 1 && seen.digest == digest_hex(&v1),
        &format!(
            "A00000 is still v1 after the failed jobs: v{}",
            seen.version
        ),
    )?;
    let (_, bytes) = client::read_job(0, "A00000").await?;
    client::ensure(bytes == v1, "A00000 v1 reads back")?;

    disk.set_faults(DiskFaults::slow_fsync(Duration::from_secs(2)));
    let v2 = b"A00000 v2 on a slow disk".repeat(20);
    let started = tokio::time::Instant::now();
    let done = sync_point_job(&v2, &ledger).await?;
    let took = started.elapsed();
    client::ensure(
        done.version == 2 && done.digest == digest_hex(&v2) && took >= Duration::from_secs(4),
        &format!(
            "the slow job committed v{} after {took:?} (a sync point and a commit, 2 s each)",
            done.version
        ),
    )?;
    disk.clear_faults();

    let peer = control.volumes(1).ok_or("C1's volume store")?;
    peer.set_faults(DiskFaults::write_eio());
    let ssd = || client::with_class(client::specific("A00001"), "SSD");
    let data = b"A00001 duplexed to C1".repeat(30);
    let strict = client::write_job(0, ssd(), &data, &ledger).await;
    expect_reason(
        "a strict Sync job whose peer's disk fails",
        strict,
        Reason::SyncPeerUnavailable,
    )?;
    peer.clear_faults();
    client::wait_quiescent(&control, Duration::from_secs(30)).await?;
    client::ensure(
        client::volume(0, "A00001").await?.version == 0,
        "the failed Sync job committed nothing",
    )?;
    let done = client::write_job(0, ssd(), &data, &ledger).await?;
    client::ensure(
        done.version == 1 && done.copies.contains(&1) && !done.sync_deferred,
        &format!("healed, the Sync job commits at both: {done:?}"),
    )?;

    client::wait_quiescent(&control, Duration::from_secs(60)).await?;
    client::wait_for("nothing left behind", Duration::from_secs(30), || {
        left_behind(&control).is_ok()
    })
    .await
    .map_err(|e| format!("{e}: {:?}", left_behind(&control)))?;
    let running: Vec<_> = (0..2).filter_map(|id| control.cluster(id)).collect();
    invariants::no_quarantine(&running)?;
    Ok(())
}

#[test]
fn disk_faults_fail_the_job_with_their_reason_and_lose_nothing() {
    for_each_seed(
        "disk_faults_fail_the_job_with_their_reason_and_lose_nothing",
        SEEDS,
        |seed| scenario::run_host(seed, 2, 0, scenario),
    );
}
