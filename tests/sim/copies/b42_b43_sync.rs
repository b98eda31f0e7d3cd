//! Sync mode (B42) and a failed sync cluster under both policies (B43).
//!
//! Grid c0, c1, c2; classes defined on C0: SYNCF = `SSD`, on_sync_failure fail; SYNCD = `SSD`,
//! on_sync_failure defer.
//!
//! - B42: a job at c0 with SYNCF writes, takes a sync point, writes more and unloads: the unload
//!   lists C0 and C1, nothing deferred; the catalog has C1 consistent with no copy made (the bytes
//!   were duplexed), and a read at c1 comes from c1's own TVC; C2 gets its deferred copy.
//! - B43 strict: with c0 cut from c1, a SYNCF job fails with `SYNC_PEER_UNAVAILABLE` and the
//!   volume keeps its last version.
//! - B43 deferred: the same cut, a SYNCD job completes with `sync_deferred`, C0 raises
//!   SYNC_DEFERRED (event and grid flag); after the repair C1 pulls the sync-deferred copy and the
//!   flag clears.
//! - A sync cluster crashing mid-job: SYNCD completes alone and c1 catches up after its restart;
//!   SYNCF fails the job at its next sync point, and the bytes up to the sync point before are
//!   the new version (tape semantics, T17), nothing after it.
//!
//! - Appends under Sync: the sync cluster starts from its own copy of the base, or fetches the
//!   base from C0 when a No Copy class left it there alone.
//!
//! The grid invariants run after every step (acknowledged versions survive, one writer).

use std::time::Duration;

use bytes::Bytes;
use vtgrid_proto::pb::{self, write_request, Reason};
use vtgrid_sim::client::{self, deadline, ensure, expect_reason};
use vtgrid_sim::grid::{GridControl, SimGrid};
use vtgrid_sim::invariants::Invariants;
use vtgrid_sim::ledger::Ledger;
use vtgrid_sim::seed::for_each_seed;

const SEEDS: &[u64] = &[5, 42];

type Host = pb::host_service_client::HostServiceClient<tonic::transport::Channel>;

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ (i >> 11) as u8)
        .collect()
}

async fn define(name: &str, policy: &str) -> Result<(), tonic::Status> {
    let class = pb::ManagementClass {
        name: name.into(),
        copy_modes: [(0, "SSD".to_string())].into(),
        on_sync_failure: policy.into(),
    };
    deadline(
        client::admin(0).define_management_class(pb::DefineManagementClassRequest {
            management_class: Some(class),
        }),
    )
    .await?;
    Ok(())
}

fn with_class(volser: &str, class: &str) -> pb::MountRequest {
    let mut m = client::specific(volser);
    m.constructs = Some(pb::Constructs {
        management_class: class.into(),
        ..Default::default()
    });
    m
}

/// One `Write` call of a job: open, the bytes in 64 KiB chunks, end.
async fn write_part(host: &mut Host, mount_id: &str, data: &[u8]) -> Result<(), tonic::Status> {
    let mut msgs = vec![pb::WriteRequest {
        msg: Some(write_request::Msg::Open(pb::WriteOpen {
            mount_id: mount_id.into(),
        })),
    }];
    msgs.extend(data.chunks(64 * 1024).map(|c| pb::WriteRequest {
        msg: Some(write_request::Msg::Chunk(Bytes::copy_from_slice(c))),
    }));
    msgs.push(pb::WriteRequest {
        msg: Some(write_request::Msg::End(pb::WriteEnd {
            total_bytes: data.len() as u64,
        })),
    });
    deadline(host.write(futures::stream::iter(msgs))).await?;
    Ok(())
}

async fn sync_point(host: &mut Host, mount_id: &str) -> Result<u64, tonic::Status> {
    Ok(deadline(host.sync(pb::SyncRequest {
        mount_id: mount_id.into(),
    }))
    .await?
    .into_inner()
    .durable_bytes)
}

async fn wait_flag(
    at: u8,
    flag: &str,
    set: bool,
    within: Duration,
) -> Result<pb::GridState, String> {
    let what = format!("{flag} {}", if set { "set" } else { "clear" });
    client::wait_grid_state(at, &what, within, |s| client::has_flag(s, flag) == set).await
}

async fn setup(control: &GridControl) -> Result<(), Box<dyn std::error::Error>> {
    client::wait_grid_ready(control, Duration::from_secs(60)).await?;
    define("SYNCF", "fail").await?;
    define("SYNCD", "defer").await?;
    client::insert(0, "S00000-S00009", "000F").await?;
    Ok(())
}

async fn duplexed_and_strict(
    control: GridControl,
    ledger: Ledger,
) -> Result<(), Box<dyn std::error::Error>> {
    setup(&control).await?;

    // B42: duplexed while written; a sync point in the middle; both hold it at unload.
    let (a, b) = (pattern(200_000, 1), pattern(150_000, 2));
    let mut host = client::host(0);
    let m = deadline(host.mount(with_class("S00001", "SYNCF")))
        .await?
        .into_inner();
    write_part(&mut host, &m.mount_id, &a).await?;
    let durable = sync_point(&mut host, &m.mount_id).await?;
    ensure(
        durable == a.len() as u64,
        "B42: the sync point covers every byte so far",
    )?;
    write_part(&mut host, &m.mount_id, &b).await?;
    let done = client::unload(&mut host, &m.mount_id).await?;
    let whole = [a.as_slice(), b.as_slice()].concat();
    ledger.acknowledge("S00001".parse()?, done.version, &done.digest, 0);
    ensure(
        done.written && !done.sync_deferred && done.copies.contains(&0) && done.copies.contains(&1),
        "B42: unload returns with the version durable at both sync clusters",
    )?;
    let c1 = control.cluster(1).ok_or("c1 runs")?;
    ensure(
        c1.probe().metrics().copies.get() == 0,
        "B42: C1 holds the version without a copy (duplexed while written)",
    )?;
    client::wait_consistent(0, "S00001", &[0, 1, 2], Duration::from_secs(30)).await?;
    let (_, read) = client::read_job(1, "S00001").await?;
    ensure(
        read == whole,
        "the version read at C1 is what the host wrote",
    )?;

    // B43 strict: the second sync cluster is cut off; the job fails, nothing changes.
    control.partition(0, 1);
    let mut host = client::host(0);
    let m = deadline(host.mount(with_class("S00002", "SYNCF")))
        .await?
        .into_inner();
    let wrote = write_part(&mut host, &m.mount_id, &pattern(100_000, 3)).await;
    let outcome = match wrote {
        Ok(()) => client::unload(&mut host, &m.mount_id).await.map(|_| ()),
        Err(e) => Err(e),
    };
    expect_reason(
        "B43 strict: a SYNCF job with C1 cut off",
        outcome,
        Reason::SyncPeerUnavailable,
    )?;
    let v = client::volume(0, "S00002").await?;
    ensure(
        v.version == 0,
        "B43 strict: the failed job committed nothing",
    )?;
    control.repair(0, 1);
    client::wait_quiescent(&control, Duration::from_secs(60)).await?;
    Ok(())
}

async fn deferred_and_crashes(
    control: GridControl,
    ledger: Ledger,
) -> Result<(), Box<dyn std::error::Error>> {
    setup(&control).await?;

    // B43 deferred: cut off before the job; it completes alone and says so.
    control.partition(0, 1);
    let data = pattern(120_000, 4);
    let done = client::write_job(0, with_class("S00003", "SYNCD"), &data, &ledger).await?;
    ensure(
        done.written && done.sync_deferred && done.copies == [0],
        "B43 deferred: the job completes at C0 alone, sync_deferred",
    )?;
    let events = deadline(
        pb::status_service_client::StatusServiceClient::new(client::channel(0))
            .list_events(pb::ListEventsRequest::default()),
    )
    .await?
    .into_inner()
    .events;
    ensure(
        events
            .iter()
            .any(|e| e.code == "SYNC_DEFERRED" && e.volser == "S00003"),
        "B43: C0 raised SYNC_DEFERRED for S00003",
    )?;
    wait_flag(0, "SYNC_DEFERRED", true, Duration::from_secs(10)).await?;
    control.repair(0, 1);
    client::wait_consistent(0, "S00003", &[0, 1, 2], Duration::from_secs(60)).await?;
    wait_flag(0, "SYNC_DEFERRED", false, Duration::from_secs(10)).await?;

    // The sync cluster crashes in the middle of a SYNCD job: the job goes on alone.
    let (a, b) = (pattern(90_000, 5), pattern(90_000, 6));
    let mut host = client::host(0);
    let m = deadline(host.mount(with_class("S00004", "SYNCD")))
        .await?
        .into_inner();
    write_part(&mut host, &m.mount_id, &a).await?;
    sync_point(&mut host, &m.mount_id).await?;
    control.crash(1).await;
    write_part(&mut host, &m.mount_id, &b).await?;
    let durable = sync_point(&mut host, &m.mount_id).await?;
    ensure(
        durable == (a.len() + b.len()) as u64,
        "the sync point after the crash holds at C0",
    )?;
    let done = client::unload(&mut host, &m.mount_id).await?;
    ledger.acknowledge("S00004".parse()?, done.version, &done.digest, 0);
    ensure(
        done.sync_deferred && done.copies == [0],
        "B43 deferred: C1 crashed mid-job; the job completed at C0 alone",
    )?;
    control.restart(1).await;
    client::wait_grid_ready(&control, Duration::from_secs(60)).await?;
    client::wait_consistent(0, "S00004", &[0, 1, 2], Duration::from_secs(60)).await?;
    let (_, read) = client::read_job(1, "S00004").await?;
    ensure(
        read == [a.as_slice(), b.as_slice()].concat(),
        "C1's sync-deferred copy is the job's bytes",
    )?;

    // The same crash under SYNCF fails the job at its next sync point; what stays is the version
    // of the bytes up to the sync point before it.
    let mut host = client::host(0);
    let m = deadline(host.mount(with_class("S00004", "SYNCF")))
        .await?
        .into_inner();
    write_part(&mut host, &m.mount_id, &a).await?;
    sync_point(&mut host, &m.mount_id).await?;
    control.crash(1).await;
    let wrote = write_part(&mut host, &m.mount_id, &b).await;
    let outcome = match wrote {
        Ok(()) => sync_point(&mut host, &m.mount_id).await.map(|_| ()),
        Err(e) => Err(e),
    };
    expect_reason(
        "B43 strict: C1 crashed mid-job",
        outcome,
        Reason::SyncPeerUnavailable,
    )?;
    // Tape semantics (T17): the bytes up to the job's last acknowledged sync point are on the
    // volume; nothing written after it is.
    let v = client::volume(0, "S00004").await?;
    ensure(
        v.version == done.version + 1
            && v.size == a.len() as u64
            && v.digest == client::digest_hex(&a),
        &format!("B43 strict: the failed job leaves the bytes up to its sync point: {v:?}"),
    )?;
    ledger.acknowledge("S00004".parse()?, v.version, &v.digest, 0);
    control.restart(1).await;
    client::wait_grid_ready(&control, Duration::from_secs(60)).await?;
    client::wait_quiescent(&control, Duration::from_secs(60)).await?;
    Ok(())
}

/// Appends under Sync: the sync cluster starts the new version from its own copy of the base
/// when it holds one, and fetches the base from a holder when it does not.
async fn appends(control: GridControl, ledger: Ledger) -> turmoil::Result {
    setup(&control).await?;
    let class = pb::ManagementClass {
        name: "LOCAL".into(),
        copy_modes: [(0, "RNN".to_string())].into(),
        on_sync_failure: String::new(),
    };
    deadline(
        client::admin(0).define_management_class(pb::DefineManagementClassRequest {
            management_class: Some(class),
        }),
    )
    .await?;
    let (a, b, c) = (pattern(70_000, 7), pattern(50_000, 8), pattern(30_000, 9));

    // Base at both sync clusters: C1 appends to its own copy.
    client::write_job(0, with_class("S00005", "SYNCF"), &a, &ledger).await?;
    let mut append = with_class("S00005", "SYNCF");
    append.append = true;
    let done = client::write_job(0, append.clone(), &b, &ledger).await?;
    ensure(
        done.copies.contains(&1),
        "the appended version is duplexed to C1",
    )?;
    let (_, read) = client::read_job(1, "S00005").await?;
    ensure(
        read == [a.as_slice(), b.as_slice()].concat(),
        "C1 holds base + appended bytes",
    )?;

    // Base at C0 only: C1 fetches it from C0 before taking the appended bytes.
    client::write_job(0, with_class("S00006", "LOCAL"), &a, &ledger).await?;
    let v = client::volume(0, "S00006").await?;
    ensure(
        !v.consistent_at.contains_key(&1),
        "LOCAL keeps the base at C0 only",
    )?;
    let mut append = with_class("S00006", "SYNCF");
    append.append = true;
    let done = client::write_job(0, append, &c, &ledger).await?;
    ensure(
        done.copies.contains(&1) && !done.sync_deferred,
        "the append is duplexed although C1 lacked the base",
    )?;
    let (_, read) = client::read_job(1, "S00006").await?;
    ensure(
        read == [a.as_slice(), c.as_slice()].concat(),
        "C1 built base + appended bytes",
    )?;
    client::wait_quiescent(&control, Duration::from_secs(60)).await?;
    Ok(())
}

type Scenario = std::pin::Pin<Box<dyn std::future::Future<Output = turmoil::Result>>>;

fn run_with(seed: u64, body: fn(GridControl, Ledger) -> Scenario) -> Result<(), String> {
    let mut grid = SimGrid::new(seed, 3, 0);
    let ledger = Ledger::new();
    grid.client("tape-host", body(grid.control(), ledger.clone()));
    Invariants::new(ledger).run(&mut grid)
}

#[test]
fn b42_b43_sync_duplexes_and_strict_fails_when_cut_off() {
    for_each_seed(
        "b42_b43_sync_duplexes_and_strict_fails_when_cut_off",
        SEEDS,
        |seed| run_with(seed, |c, l| Box::pin(duplexed_and_strict(c, l))),
    );
}

#[test]
fn b43_sync_deferred_when_cut_off_or_crashed_and_caught_up() {
    for_each_seed(
        "b43_sync_deferred_when_cut_off_or_crashed_and_caught_up",
        SEEDS,
        |seed| run_with(seed, |c, l| Box::pin(deferred_and_crashes(c, l))),
    );
}

#[test]
fn b42_sync_appends_start_from_the_base_wherever_it_is() {
    for_each_seed(
        "b42_sync_appends_start_from_the_base_wherever_it_is",
        SEEDS,
        |seed| run_with(seed, |c, l| Box::pin(appends(c, l))),
    );
}
