//! Sync mode between real processes (B42, B43): `vtgrid node` processes on loopback with RocksDB
//! and volume files; the duplex runs over the real grid network.
//!
//! Classes on C0: SYNCF = `SSN` (strict), SYNCD = `SSN` with `on_sync_failure = "defer"`.

use std::time::Duration;

use vtgrid_proto::pb::{self, Reason};
use vtgrid_tests::support::copy_watch::{is_consistent_at, read_sha256};
use vtgrid_tests::support::host::{
    mount, ok, rewind_unload, scratch, write_job, write_stream, StreamEnd,
};
use vtgrid_tests::support::{assert_reason, wait_until, Payload, ProcessGrid, SCRATCH_CATEGORY};

const CLASSES: &str = r#"
[[management_class]]
name = "SYNCF"
copy_modes = { C0 = "SSN", C1 = "SSN", C2 = "SSN" }

[[management_class]]
name = "SYNCD"
copy_modes = { C0 = "SSN", C1 = "SSN", C2 = "SSN" }
on_sync_failure = "defer"
"#;

/// B42 then B43 on real processes.
///
/// Sequence: C0, C1, C2 → an 8 MiB SYNCF job at C0: the unload lists C0 and C1, the catalog
/// counts C1 from the commit (no copy to wait for), and C1 reads the bytes → kill -9 C1 → a SYNCF job
/// at C0 fails with SYNC_PEER_UNAVAILABLE → a SYNCD job completes with `sync_deferred` and C0
/// shows SYNC_DEFERRED → restart C1: it pulls the sync-deferred copy by itself and the flag
/// clears.
#[tokio::test(flavor = "multi_thread")]
async fn b42_b43_sync_duplex_and_failed_sync_cluster_on_real_processes() {
    let mut grid = ProcessGrid::start_configured(3, 0, false, |layout| {
        layout.management_classes = Some(CLASSES.to_string());
    })
    .await;
    let (c0, c1) = (grid.endpoint(0), grid.endpoint(1));
    grid.insert(0, "Y00000-Y00009", SCRATCH_CATEGORY).await;
    let mut host = grid.host(0).await;

    let first = Payload::mib(0x5_1000, 8, 17);
    let done = ok(
        write_job(&mut host, scratch(SCRATCH_CATEGORY, "SYNCF"), first).await,
        "B42: a Sync job at C0",
    );
    assert!(
        done.copies.contains(&0) && done.copies.contains(&1) && !done.sync_deferred,
        "B42: both sync clusters hold the version when the unload returns: {done:?}"
    );
    let volser = done.volser.clone();
    assert!(
        is_consistent_at(&c1, &volser, 1).await || is_consistent_at(&c0, &volser, 1).await,
        "B42: the catalog counts C1 from the commit, with no copy to wait for"
    );
    let (sha, len) = read_sha256(&c1, &volser, Duration::from_secs(60)).await;
    assert_eq!(
        (sha, len),
        (first.sha256(), first.len()),
        "C1 reads what C0 wrote"
    );

    grid.kill9(1);
    let strict = async {
        let m = mount(&mut host, scratch(SCRATCH_CATEGORY, "SYNCF")).await?;
        write_stream(
            &mut host,
            &m.mount_id,
            Payload::mib(0x5_2000, 2, 0),
            StreamEnd::Complete,
        )
        .await?;
        rewind_unload(&mut host, &m.mount_id).await
    };
    assert_reason(
        strict.await,
        Reason::SyncPeerUnavailable,
        "B43 strict: a SYNCF job with C1 down",
    );

    let deferred = Payload::mib(0x5_3000, 4, 3);
    let done = ok(
        write_job(&mut host, scratch(SCRATCH_CATEGORY, "SYNCD"), deferred).await,
        "B43 deferred: a SYNCD job with C1 down",
    );
    assert!(
        done.sync_deferred && done.copies == [0],
        "B43: the job completed at C0 alone: {done:?}"
    );
    let flags = |endpoint: String| async move {
        let mut status = vtgrid_tests::support::host::status_client(&endpoint).await;
        status
            .get_grid_state(pb::GetGridStateRequest {})
            .await
            .map(|s| s.into_inner().flags)
            .unwrap_or_default()
    };
    wait_until("SYNC_DEFERRED at C0", Duration::from_secs(20), || {
        let f = flags(c0.clone());
        async move { f.await.iter().any(|f| f == "SYNC_DEFERRED") }
    })
    .await;

    grid.restart(1).await;
    let deferred_volser = done.volser.clone();
    wait_until(
        "C1 pulls the sync-deferred copy",
        Duration::from_secs(60),
        || is_consistent_at(&c0, &deferred_volser, 1),
    )
    .await;
    let (sha, len) = read_sha256(&c1, &deferred_volser, Duration::from_secs(60)).await;
    assert_eq!(
        (sha, len),
        (deferred.sha256(), deferred.len()),
        "C1's sync-deferred copy"
    );
    wait_until("SYNC_DEFERRED clears", Duration::from_secs(20), || {
        let f = flags(c0.clone());
        async move { !f.await.iter().any(|f| f == "SYNC_DEFERRED") }
    })
    .await;
}
