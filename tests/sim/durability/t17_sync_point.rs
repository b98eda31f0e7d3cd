//! T17 (spec §4.2; B42): data before an acknowledged sync point is on the volume, whatever
//! happens to the writer afterwards (the seed's tape semantics). Four scenarios: the writer
//! crashes (below), the job abends without a crash (`abended`), the sync peer crashes and the
//! job goes on (`peer_crash`), the writer crashes inside its unload (`crash_in_the_unload`).
//!
//! Sequence: c0, c1, c2 → c0 inserts S00000-S00002 → the host mounts S00001 at c0 with class SSD
//! (C0 and C1 sync, C2 deferred) and writes b1..b5 → `Sync` answers 5 blocks durable → the host
//! writes b6..b8 → c0 crashes before the next sync point and restarts → once the grid is quiet,
//! S00001's current version is exactly b1..b5 (size, digest) and a mount at c0 reads b1..b5 →
//! C1, the other sync cluster, kept b1..b5 when the duplex broke and counts that as its copy of
//! the version without pulling one (B42: it holds the data up to the last sync point); C2 gets
//! its deferred copy; a read at c1 is b1..b5 too.

use std::time::Duration;

use bytes::Bytes;
use vtgrid_proto::pb::{self, write_request, Reason};
use vtgrid_sim::client::{self, deadline, ensure, expect_reason};
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
        c1.probe().metrics().copies.get() == 0,
        "B42: C1 adopted the prefix it kept instead of pulling a copy",
    )?;
    ensure(
        c1.probe().store().synced()?.is_empty(),
        "C1 has no synced prefix left once it holds the version",
    )?;
    let (_, read) = client::read_job(1, V).await?;
    ensure(read == synced, "T17: C1 has exactly b1..b5")?;
    client::wait_quiescent(&control, Duration::from_secs(60)).await?;
    Ok(())
}

type Host = pb::host_service_client::HostServiceClient<tonic::transport::Channel>;

/// A `Write` call whose stream ends without its `End` message: the host's job abends mid-write
/// (`TRUNCATED_STREAM`).
async fn broken_write(host: &mut Host, mount_id: &str, data: &[u8]) -> Result<(), tonic::Status> {
    let mut msgs = vec![pb::WriteRequest {
        msg: Some(write_request::Msg::Open(pb::WriteOpen {
            mount_id: mount_id.into(),
        })),
    }];
    msgs.extend(data.chunks(64 * 1024).map(|c| pb::WriteRequest {
        msg: Some(write_request::Msg::Chunk(Bytes::copy_from_slice(c))),
    }));
    deadline(host.write(futures::stream::iter(msgs))).await?;
    Ok(())
}

async fn sync_point(host: &mut Host, mount_id: &str) -> Result<u64, Box<dyn std::error::Error>> {
    Ok(deadline(host.sync(pb::SyncRequest {
        mount_id: mount_id.into(),
    }))
    .await?
    .into_inner()
    .durable_bytes)
}

/// Mount `volser` at c0 with `class`, write `synced`, take a sync point, then write `after`.
async fn write_past_a_sync_point(
    volser: &str,
    class: &str,
    synced: &[u8],
    after: &[u8],
) -> Result<(Host, String), Box<dyn std::error::Error>> {
    let mut host = client::host(0);
    let m = deadline(host.mount(client::with_class(client::specific(volser), class)))
        .await?
        .into_inner();
    client::write(&mut host, &m.mount_id, synced).await?;
    let durable = sync_point(&mut host, &m.mount_id).await?;
    ensure(
        durable == synced.len() as u64,
        &format!("{volser}: Sync answered {durable} durable bytes"),
    )?;
    client::write(&mut host, &m.mount_id, after).await?;
    Ok((host, m.mount_id))
}

/// The volume's current version is `version`, holding exactly `data`.
async fn expect_version(
    volser: &str,
    version: u64,
    data: &[u8],
    what: &str,
) -> Result<(), Box<dyn std::error::Error>> {
    let v = client::volume(0, volser).await?;
    ensure(
        v.version == version && v.size == data.len() as u64 && v.digest == client::digest_hex(data),
        &format!("{what}: {v:?}"),
    )?;
    Ok(())
}

/// T17 without a crash (tape semantics, B42): a job that abends after an acknowledged sync
/// point leaves exactly the bytes up to it as the volume's new version, and the sync peer's
/// own copy of that prefix becomes its copy without a pull.
///
/// Sequence: c0, c1, c2 → insert S00000-S00004 → (1) S00001, class SSD: write b1..b5, Sync,
/// write b6..b8, then a write stream that breaks (`TRUNCATED_STREAM`) → S00001 v1 is b1..b5,
/// the job is gone (`UNKNOWN_MOUNT`/`NOT_WRITABLE` for the unload), a mount at c0 reads b1..b5;
/// C1, the sync peer, kept its prefix when the duplex closed and is consistent at v1 with no
/// copy made, and its prefix is gone; C2 gets its deferred copy → (2) S00002: the same, but
/// an operator force-demounts the job → v1 is the prefix → (3) S00003: no sync point, the
/// stream breaks → S00003 stays at v0, no prefix anywhere.
async fn abended(control: GridControl, ledger: Ledger) -> Result<(), Box<dyn std::error::Error>> {
    client::wait_grid_ready(&control, Duration::from_secs(60)).await?;
    client::insert(0, "S00000-S00004", "000F").await?;
    let synced: Vec<u8> = (1..=5).flat_map(block).collect();
    let after: Vec<u8> = (6..=8).flat_map(block).collect();

    // (1) The host's write stream breaks after the sync point.
    let (mut host, mount_id) = write_past_a_sync_point("S00001", "SSD", &synced, &after).await?;
    expect_reason(
        "a write stream that ends without End",
        broken_write(&mut host, &mount_id, &block(9)).await,
        Reason::TruncatedStream,
    )?;
    expect_version("S00001", 1, &synced, "the abended job left b1..b5 as v1").await?;
    ledger.acknowledge("S00001".parse()?, 1, &client::digest_hex(&synced), 0);
    let unload = client::unload(&mut host, &mount_id).await;
    ensure(unload.is_err(), "the abended job cannot unload any more")?;
    let (_, read) = client::read_job(0, "S00001").await?;
    ensure(read == synced, "a later mount reads b1..b5")?;
    client::wait_consistent(0, "S00001", &[0, 1, 2], Duration::from_secs(60)).await?;
    let c1 = control.cluster(1).ok_or("c1 runs")?;
    ensure(
        c1.probe().metrics().copies.get() == 0,
        "C1 counted the prefix it kept as its copy (no pull)",
    )?;
    ensure(
        c1.probe().store().synced()?.is_empty(),
        "C1 has no prefix left",
    )?;
    ensure(
        control
            .cluster(0)
            .ok_or("c0 runs")?
            .probe()
            .store()
            .synced()?
            .is_empty(),
        "C0 has no prefix left",
    )?;
    let (_, read) = client::read_job(1, "S00001").await?;
    ensure(read == synced, "C1's copy is b1..b5")?;

    // (2) An operator ends the job after the sync point.
    let (_host, _) = write_past_a_sync_point("S00002", "SSD", &synced, &after).await?;
    deadline(client::admin(0).force_demount(pb::ForceDemountRequest {
        volser: "S00002".into(),
    }))
    .await?;
    client::wait_for(
        "S00002's synced prefix published",
        Duration::from_secs(30),
        || {
            control.cluster(0).is_some_and(|c| {
                c.effective(&"S00002".parse().expect("volser"))
                    .is_ok_and(|r| r.version == 1)
            })
        },
    )
    .await?;
    expect_version("S00002", 1, &synced, "the force-demounted job left b1..b5").await?;
    ledger.acknowledge("S00002".parse()?, 1, &client::digest_hex(&synced), 0);

    // (3) No sync point: nothing of the job stays.
    let mut host = client::host(0);
    let m = deadline(host.mount(client::with_class(client::specific("S00003"), "SSD")))
        .await?
        .into_inner();
    client::write(&mut host, &m.mount_id, &synced).await?;
    expect_reason(
        "a write stream that ends without End",
        broken_write(&mut host, &m.mount_id, &after).await,
        Reason::TruncatedStream,
    )?;
    expect_version("S00003", 0, &[], "a job with no sync point leaves nothing").await?;
    client::wait_consistent(0, "S00002", &[0, 1, 2], Duration::from_secs(60)).await?;
    client::wait_quiescent(&control, Duration::from_secs(60)).await?;
    for at in 0..3 {
        let c = control.cluster(at).ok_or("every cluster runs")?;
        let left = c.probe().store().synced()?;
        ensure(
            left.is_empty(),
            &format!("C{at} holds no synced prefix at the end: {left:?}"),
        )?;
    }
    Ok(())
}

/// The sync peer crashes after a sync point and restarts while the job goes on (B43,
/// sync-deferred): the job completes at C0 alone, its unload publishes the whole version, and
/// C1 ends up with that version and without the prefix it kept from the broken duplex.
///
/// Sequence: c0, c1, c2 → insert → the host mounts S00001 at c0 with SYNCDEF and writes b1..b5,
/// Sync (both durable) → c1 crashes and restarts (its b1..b5 prefix survives as a synced
/// prefix) → the host writes b6..b8, Sync (C0 only), unload: v1 = b1..b8, sync-deferred → C1
/// gets its copy of v1 (b1..b8) and, by the retention rule, drops its stale prefix.
async fn peer_crash(
    control: GridControl,
    ledger: Ledger,
) -> Result<(), Box<dyn std::error::Error>> {
    client::wait_grid_ready(&control, Duration::from_secs(60)).await?;
    client::insert(0, "S00000-S00002", "000F").await?;
    let synced: Vec<u8> = (1..=5).flat_map(block).collect();
    let after: Vec<u8> = (6..=8).flat_map(block).collect();
    let mut host = client::host(0);
    let m = deadline(host.mount(client::with_class(client::specific(V), "SYNCDEF")))
        .await?
        .into_inner();
    client::write(&mut host, &m.mount_id, &synced).await?;
    sync_point(&mut host, &m.mount_id).await?;
    control.crash(1).await;
    control.restart(1).await;
    client::wait_ready(1, Duration::from_secs(60)).await?;
    client::wait_for("C1 kept its synced prefix", Duration::from_secs(30), || {
        control.cluster(1).is_some_and(|c| {
            c.probe()
                .store()
                .synced()
                .is_ok_and(|p| p.len() == 1 && p[0].meta.size == synced.len() as u64)
        })
    })
    .await?;
    client::write(&mut host, &m.mount_id, &after).await?;
    let whole = [synced.as_slice(), after.as_slice()].concat();
    let durable = sync_point(&mut host, &m.mount_id).await?;
    ensure(
        durable == whole.len() as u64,
        "the sync point after the peer's crash holds at C0",
    )?;
    let done = client::unload(&mut host, &m.mount_id).await?;
    ledger.acknowledge_unload(V.parse()?, &done, 0);
    ensure(
        done.version == 1 && done.sync_deferred && done.digest == client::digest_hex(&whole),
        &format!("the unload publishes the whole version, sync-deferred: {done:?}"),
    )?;
    client::wait_consistent(0, V, &[0, 1, 2], Duration::from_secs(60)).await?;
    client::wait_for(
        "C1 dropped its stale prefix",
        Duration::from_secs(90),
        || {
            control
                .cluster(1)
                .is_some_and(|c| c.probe().store().synced().is_ok_and(|p| p.is_empty()))
        },
    )
    .await?;
    let (_, read) = client::read_job(1, V).await?;
    ensure(read == whole, "C1 holds the whole version")?;
    client::wait_quiescent(&control, Duration::from_secs(60)).await?;
    Ok(())
}

/// T17 across the unload itself: a crash after the job's whole version is committed in the TVC
/// but before its journal entry (crash points `UnloadAfterStoreCommit`, `UnloadAfterRunCopies`)
/// leaves the unload unanswered, and the bytes up to the acknowledged sync point must still be
/// the volume's next version (or, had the entry been written, the whole one).
///
/// Sequence, per point: c0, c1, c2 → insert S00000-S00002 → S00001 at c0, class SSD: write
/// b1..b5, Sync (5 blocks durable), write b6..b8 → arm c0 at the point → rewind-unload → c0
/// crashes at the point, the unload is not answered → restart c0, quiet grid → S00001 v1 is
/// exactly b1..b5 and reads back so at c0 and at c1 → the next job at c0 writes v2 → settled.
/// Before the fix the whole file's commit deleted the sync marker, so the restart found an
/// unpublished whole version and no prefix: S00001 stayed at v0.
async fn crash_in_the_unload(
    control: GridControl,
    ledger: Ledger,
) -> Result<(), Box<dyn std::error::Error>> {
    use vtgrid_node::faults::FaultPoint;
    client::wait_grid_ready(&control, Duration::from_secs(60)).await?;
    client::insert(0, "S00000-S00002", "000F").await?;
    let synced: Vec<u8> = (1..=5).flat_map(block).collect();
    let after: Vec<u8> = (6..=8).flat_map(block).collect();
    for (point, volser) in [
        (FaultPoint::UnloadAfterStoreCommit, "S00001"),
        (FaultPoint::UnloadAfterRunCopies, "S00002"),
    ] {
        let (mut host, mount_id) = write_past_a_sync_point(volser, "SSD", &synced, &after).await?;
        control.arm(0, point, 1);
        let unload = client::unload(&mut host, &mount_id).await;
        client::wait_point_crash(&control, 0, point, Duration::from_secs(30)).await?;
        ensure(
            unload.is_err(),
            &format!("{point:?}: the cut-off unload was not answered: {unload:?}"),
        )?;
        control.restart(0).await;
        client::wait_ready(0, Duration::from_secs(60)).await?;
        client::wait_quiescent(&control, Duration::from_secs(60)).await?;
        expect_version(
            volser,
            1,
            &synced,
            &format!("T17, crash at {point:?}: v1 is exactly b1..b5"),
        )
        .await?;
        client::wait_consistent(0, volser, &[0, 1, 2], Duration::from_secs(60)).await?;
        for at in [0, 1] {
            let (_, read) = client::read_job(at, volser).await?;
            ensure(
                read == synced,
                &format!("T17: {volser} reads b1..b5 at c{at}"),
            )?;
        }
        let next = format!("{volser} v2 after the restart")
            .repeat(100)
            .into_bytes();
        let done = client::write_job(
            0,
            client::with_class(client::specific(volser), "SSD"),
            &next,
            &ledger,
        )
        .await?;
        ensure(
            done.version == 2,
            &format!("the next job wrote v{}", done.version),
        )?;
    }
    client::wait_settled(&control).await?;
    Ok(())
}

type Scenario = fn(
    GridControl,
    Ledger,
) -> std::pin::Pin<
    Box<dyn std::future::Future<Output = Result<(), Box<dyn std::error::Error>>>>,
>;

fn run_with(seed: u64, body: Scenario) -> Result<(), String> {
    let mut grid = SimGrid::new(seed, 3, 0);
    let ledger = Ledger::new();
    grid.client("tape-host", body(grid.control(), ledger.clone()));
    Invariants::new(ledger).run(&mut grid)
}

#[test]
fn t17_writer_crash_keeps_the_synced_prefix() {
    for_each_seed(
        "t17_writer_crash_keeps_the_synced_prefix",
        &[17, 71],
        |seed| run_with(seed, |c, l| Box::pin(scenario(c, l))),
    );
}

#[test]
fn t17_abended_job_leaves_its_synced_prefix_as_the_version() {
    for_each_seed(
        "t17_abended_job_leaves_its_synced_prefix_as_the_version",
        &[17, 71],
        |seed| run_with(seed, |c, l| Box::pin(abended(c, l))),
    );
}

#[test]
fn t17_sync_peer_crash_after_a_sync_point_ends_with_the_whole_version() {
    for_each_seed(
        "t17_sync_peer_crash_after_a_sync_point_ends_with_the_whole_version",
        &[17, 71],
        |seed| run_with(seed, |c, l| Box::pin(peer_crash(c, l))),
    );
}

#[test]
fn t17_crash_inside_the_unload_after_a_sync_point_keeps_the_synced_prefix() {
    for_each_seed(
        "t17_crash_inside_the_unload_after_a_sync_point_keeps_the_synced_prefix",
        &[17, 71],
        |seed| run_with(seed, |c, l| Box::pin(crash_in_the_unload(c, l))),
    );
}
