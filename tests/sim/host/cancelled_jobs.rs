//! Host calls that are cancelled mid-way (a client that gives up, a deadline that expires) never
//! wedge a volume, and a cancelled rewind-unload never loses or replaces an acknowledged version
//! (issue 9, "Safety first"; B1: a job whose call fails abends, and the host reruns it).
//!
//! A cancelled call drops the handler's future at whatever `.await` it was at. What must happen
//! anyway (demount, dropping the partial version, finishing a commit that was under way) may not
//! depend on that future surviving.

use std::time::Duration;

use bytes::Bytes;
use tokio_stream::wrappers::ReceiverStream;
use vtgrid_core::Volser;
use vtgrid_proto::pb::{self, write_request, Reason};
use vtgrid_proto::reason_of;
use vtgrid_sim::client::{self, deadline, digest_hex, ensure};
use vtgrid_sim::cluster::host_name;
use vtgrid_sim::grid::{GridControl, SimGrid};
use vtgrid_sim::invariants::Invariants;
use vtgrid_sim::ledger::Ledger;
use vtgrid_sim::seed::for_each_seed;

const SEEDS: &[u64] = &[9, 900];

/// How long a host may have to wait, after it cancelled a call, until the volume mounts again.
const FREED_WITHIN: Duration = Duration::from_secs(15);

/// Mount `volser` at `at`, retrying while it answers VOLUME_IN_USE, for at most `within` of
/// simulated time. Any other refusal fails at once.
async fn mount_when_free(
    at: u8,
    request: pb::MountRequest,
    within: Duration,
) -> Result<pb::MountResponse, String> {
    let until = tokio::time::Instant::now() + within;
    loop {
        match deadline(client::host(at).mount(request.clone())).await {
            Ok(m) => return Ok(m.into_inner()),
            Err(s) if reason_of(&s) == Some(Reason::VolumeInUse) => {}
            Err(s) => return Err(format!("mount at C{at}: {s:?}")),
        }
        if tokio::time::Instant::now() > until {
            return Err(format!(
                "the volume was still mounted {within:?} after the host cancelled its call"
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Sequence: c0, c1, c2 → insert A00000 into private 000F at c0 → the host mounts A00000 at
/// c0 with Sync class SSD (C0 and C1 sync clusters, B42) → c0's messages to c1 are held, so
/// the first chunk waits for the duplex to open → the host opens a write stream, sends three
/// chunks but never its end, and gives up after 500 ms (the call's future is dropped, which
/// cancels the stream while the handler waits on the duplex) → the messages are released → a
/// new mount of A00000 succeeds within 15 s → that job writes and unloads version 1 with its own
/// bytes → the catalog holds exactly that version.
async fn write_cancelled(
    control: GridControl,
    ledger: Ledger,
) -> Result<(), Box<dyn std::error::Error>> {
    client::wait_grid_ready(&control, Duration::from_secs(60)).await?;
    client::insert(0, "A00000", "000F").await?;
    let mut host = client::host(0);
    let m = deadline(host.mount(client::with_class(client::specific("A00000"), "SSD")))
        .await?
        .into_inner();

    turmoil::hold(host_name(0), host_name(1));
    let (tx, rx) = tokio::sync::mpsc::channel(8);
    tx.send(pb::WriteRequest {
        msg: Some(write_request::Msg::Open(pb::WriteOpen {
            mount_id: m.mount_id.clone(),
        })),
    })
    .await?;
    for _ in 0..3 {
        tx.send(pb::WriteRequest {
            msg: Some(write_request::Msg::Chunk(Bytes::from(vec![5u8; 64 * 1024]))),
        })
        .await?;
    }
    let cancelled = tokio::time::timeout(
        Duration::from_millis(500),
        host.write(ReceiverStream::new(rx)),
    )
    .await;
    ensure(
        cancelled.is_err(),
        "a write stream without its end has no answer yet",
    )?;
    // The call's future is gone; the stream's sender goes only now, so the server sees a reset
    // stream, not an end of stream.
    drop(tx);
    turmoil::release(host_name(0), host_name(1));

    let again = mount_when_free(0, client::specific("A00000"), FREED_WITHIN).await?;
    ensure(
        again.version == 0,
        "the cancelled job left no version behind",
    )?;
    let data = vec![6u8; 100_000];
    client::write(&mut host, &again.mount_id, &data).await?;
    let done = client::unload(&mut host, &again.mount_id).await?;
    ledger.acknowledge_unload("A00000".parse()?, &done, 0);
    ensure(
        done.written && done.version == 1 && done.digest == digest_hex(&data),
        "the rerun job commits version 1 with its own bytes",
    )?;
    client::wait_quiescent(&control, Duration::from_secs(30)).await?;
    Ok(())
}

fn run_write_cancelled(seed: u64) -> Result<(), String> {
    let mut grid = SimGrid::new(seed, 3, 0);
    let ledger = Ledger::new();
    grid.client("tape-host", write_cancelled(grid.control(), ledger.clone()));
    Invariants::new(ledger).run(&mut grid)
}

#[test]
fn cancel_write_mid_stream_frees_the_volume() {
    for_each_seed(
        "cancel_write_mid_stream_frees_the_volume",
        SEEDS,
        run_write_cancelled,
    );
}

/// Sequence B: c0, c1, c2 → insert A00001 into private 000F at c0 → the host mounts A00001 at
/// c0 with class RRD (C1 RUN) and writes 300 000 bytes → c0's messages to c1 are held, so the
/// RUN copy waits → the host's rewind-unload gives up after 300 ms (the call's future is dropped
/// while the commit is under way) → the messages are released → the host retries rewind-unload with the same
/// mount id: it answers the outcome of the commit that was under way, version 1 with the host's
/// digest (B37/B39: the RUN copy was deferred or made) → a new mount of A00001 succeeds within
/// 15 s and sees version 1 → a second job writes version 2 → the catalog holds version 2 with
/// the second job's digest; version 1 was never replaced under its number.
async fn unload_cancelled(
    control: GridControl,
    ledger: Ledger,
) -> Result<(), Box<dyn std::error::Error>> {
    client::wait_grid_ready(&control, Duration::from_secs(60)).await?;
    client::insert(0, "A00001", "000F").await?;
    client::wait_quiescent(&control, Duration::from_secs(30)).await?;
    let volser: Volser = "A00001".parse()?;
    let mut host = client::host(0);
    let m = deadline(host.mount(client::with_class(client::specific("A00001"), "RRD")))
        .await?
        .into_inner();
    let first = vec![1u8; 300_000];
    client::write(&mut host, &m.mount_id, &first).await?;

    turmoil::hold(host_name(0), host_name(1));
    let request = pb::RewindUnloadRequest {
        mount_id: m.mount_id.clone(),
    };
    let cancelled = tokio::time::timeout(
        Duration::from_millis(300),
        host.rewind_unload(request.clone()),
    )
    .await;
    ensure(
        cancelled.is_err(),
        "the unload waits for its RUN copy, longer than the host does",
    )?;
    ledger.in_doubt(volser, &digest_hex(&first));
    turmoil::release(host_name(0), host_name(1));

    let retried = deadline(client::host(0).rewind_unload(request))
        .await?
        .into_inner();
    ensure(
        retried.written && retried.version == 1 && retried.digest == digest_hex(&first),
        &format!("the retried unload answers the commit that was under way: {retried:?}"),
    )?;
    ledger.acknowledge_unload(volser, &retried, 0);

    let again = mount_when_free(0, client::specific("A00001"), FREED_WITHIN).await?;
    ensure(
        again.version == 1,
        &format!("the next job sees the committed version 1: {again:?}"),
    )?;
    let second = vec![2u8; 50_000];
    client::write(&mut host, &again.mount_id, &second).await?;
    let done = client::unload(&mut host, &again.mount_id).await?;
    ledger.acknowledge_unload(volser, &done, 0);
    ensure(
        done.version == 2 && done.digest == digest_hex(&second),
        &format!("the second job commits version 2: {done:?}"),
    )?;
    client::wait_copies_settled(&control, Duration::from_secs(60)).await?;
    client::wait_quiescent(&control, Duration::from_secs(30)).await?;
    for at in 0..3 {
        let v = client::volume(at, "A00001").await?;
        ensure(
            v.version == 2 && v.digest == digest_hex(&second),
            &format!("C{at} holds version 2 with the second job's digest: {v:?}"),
        )?;
    }
    Ok(())
}

fn run_unload_cancelled(seed: u64) -> Result<(), String> {
    let mut grid = SimGrid::new(seed, 3, 0);
    let ledger = Ledger::new();
    grid.client(
        "tape-host",
        unload_cancelled(grid.control(), ledger.clone()),
    );
    Invariants::new(ledger).run(&mut grid)
}

#[test]
fn b_cancelled_unload_keeps_the_acknowledged_version() {
    for_each_seed(
        "b_cancelled_unload_keeps_the_acknowledged_version",
        SEEDS,
        run_unload_cancelled,
    );
}
