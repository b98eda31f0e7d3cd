//! Calls a host gives up on, and stopping a node with streams open (issue 9, "Safety first"):
//! a cancelled write stream or an expired deadline never leaves the volume mounted, an operator
//! can demount a volume whose host vanished, `vtgrid volume write` tells its unload's outcome,
//! and SIGTERM stops a node even while a `WatchEvents` follower is attached.

use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use tokio_stream::wrappers::ReceiverStream;
use vtgrid_proto::pb::{self, write_request, Reason};
use vtgrid_proto::reason_of;
use vtgrid_tests::support::host::{mount, specific, status_client, write_volume};
use vtgrid_tests::support::{assert_reason, ok, Payload, TestGrid, PRIVATE_CATEGORY};

/// How long a host may wait after a cancelled call until the volume mounts again.
const FREED_WITHIN: Duration = Duration::from_secs(5);

/// Mount `volser`, retrying while it answers VOLUME_IN_USE for at most [`FREED_WITHIN`].
async fn mount_when_free(grid: &TestGrid, volser: &str, round: usize) -> pb::MountResponse {
    let until = Instant::now() + FREED_WITHIN;
    loop {
        match mount(&mut grid.host().await, specific(volser)).await {
            Ok(m) => return m,
            Err(s) if reason_of(&s) == Some(Reason::VolumeInUse) && Instant::now() < until => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(s) => panic!(
                "round {round}: {volser} did not mount within {FREED_WITHIN:?} of the cancelled call: {s:?}"
            ),
        }
    }
}

/// Sequence: node → insert A00000 → 32 times: mount A00000, open a write stream, send three
/// 256 KiB chunks and no end, then give up: even rounds drop the call (the client resets the
/// stream), odd rounds let a 300 ms gRPC deadline expire at the server → every next mount
/// succeeds within 5 s → a whole job then writes version 1 → no partial file is left behind.
#[tokio::test(flavor = "multi_thread")]
async fn cancelled_write_streams_never_wedge_the_volume() {
    let grid = TestGrid::start().await;
    grid.insert("A00000", PRIVATE_CATEGORY).await;
    for round in 0..32 {
        let m = mount_when_free(&grid, "A00000", round).await;
        let (tx, rx) = tokio::sync::mpsc::channel(8);
        tx.send(pb::WriteRequest {
            msg: Some(write_request::Msg::Open(pb::WriteOpen {
                mount_id: m.mount_id.clone(),
            })),
        })
        .await
        .expect("queue the open");
        for _ in 0..3 {
            tx.send(pb::WriteRequest {
                msg: Some(write_request::Msg::Chunk(Bytes::from(vec![
                    round as u8;
                    256 * 1024
                ]))),
            })
            .await
            .expect("queue a chunk");
        }
        let mut host = grid.host().await;
        if round % 2 == 0 {
            let call = host.write(ReceiverStream::new(rx));
            let given_up = tokio::time::timeout(Duration::from_millis(300), call).await;
            assert!(
                given_up.is_err(),
                "round {round}: a stream without its end has no answer"
            );
        } else {
            let mut request = tonic::Request::new(ReceiverStream::new(rx));
            request.set_timeout(Duration::from_millis(300));
            let answer = host.write(request).await;
            assert!(
                answer.is_err(),
                "round {round}: the deadline expired: {answer:?}"
            );
        }
        drop(tx);
    }
    let m = mount_when_free(&grid, "A00000", 32).await;
    assert_eq!(m.version, 0, "no cancelled job left a version");
    let done = ok(
        vtgrid_tests::support::host::rewind_unload(&mut grid.host().await, &m.mount_id).await,
        "unload the last mount",
    );
    assert!(!done.written);
    let done = write_volume(&mut grid.host().await, "A00000", Payload::new(5, 100_000)).await;
    assert_eq!(done.version, 1);
    let until = Instant::now() + FREED_WITHIN;
    while !grid.partial_files().is_empty() && Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        grid.partial_files().is_empty(),
        "partial versions left: {:?}",
        grid.partial_files()
    );
}

/// Sequence: node → insert A00001 → a host mounts A00001 and vanishes → `vtgrid admin demount
/// A00001` ends the job → a new mount succeeds, and the old mount id is gone (UNKNOWN_MOUNT on
/// unload) → a second `vtgrid admin demount A00001` after that job unloads exits 2 with
/// NOT_MOUNTED.
#[tokio::test(flavor = "multi_thread")]
async fn admin_demount_frees_a_volume_whose_host_vanished() {
    let grid = TestGrid::start().await;
    grid.insert("A00001", PRIVATE_CATEGORY).await;
    let vanished = ok(
        mount(&mut grid.host().await, specific("A00001")).await,
        "mount A00001",
    );
    assert_reason(
        mount(&mut grid.host().await, specific("A00001")).await,
        Reason::VolumeInUse,
        "mount while the vanished host's job holds it",
    );
    let run = grid.cli(&["admin", "demount", "A00001", "--json"]).await;
    run.assert_success();
    assert_eq!(run.json()["mount_id"], vanished.mount_id.as_str());

    let next = ok(
        mount(&mut grid.host().await, specific("A00001")).await,
        "mount after the demount",
    );
    assert_reason(
        vtgrid_tests::support::host::rewind_unload(&mut grid.host().await, &vanished.mount_id)
            .await,
        Reason::UnknownMount,
        "the demounted job's mount id",
    );
    ok(
        vtgrid_tests::support::host::rewind_unload(&mut grid.host().await, &next.mount_id).await,
        "unload the next job",
    );
    let again = grid.cli(&["admin", "demount", "A00001"]).await;
    assert_eq!(again.code(), Some(2), "{again:?}");
    assert!(again.stderr.contains("NOT_MOUNTED"), "{}", again.stderr);
}

/// Sequence: node → insert A00002 → `vtgrid volume write A00002 --json` with 1000 bytes → the
/// JSON carries the unload's `copies` (C0), `immediate_copy_deferred` and `sync_deferred`
/// (false) → the same write without --json prints the VOLSER on stdout and the outcome line on
/// stderr.
#[tokio::test(flavor = "multi_thread")]
async fn volume_write_reports_the_unload_outcome() {
    let grid = TestGrid::start().await;
    grid.insert("A00002", PRIVATE_CATEGORY).await;
    let run = grid
        .cli_call(&["volume", "write", "A00002", "--json"])
        .stdin(Payload::new(2, 1000))
        .run()
        .await;
    run.assert_success();
    let out = run.json();
    assert_eq!(out["copies"], serde_json::json!([0]), "{out}");
    assert_eq!(out["immediate_copy_deferred"], false, "{out}");
    assert_eq!(out["sync_deferred"], false, "{out}");
    assert_eq!(out["version"], 1, "{out}");

    let run = grid
        .cli_call(&["volume", "write", "A00002"])
        .stdin(Payload::new(3, 1000))
        .run()
        .await;
    run.assert_success();
    assert_eq!(run.stdout.trim(), "A00002");
    assert!(
        run.stderr.contains("A00002 version 2: held by C0"),
        "{}",
        run.stderr
    );
}

/// Sequence: node → a `WatchEvents` follower attaches (a tonic client stream) → SIGTERM → the
/// node exits 0 within 15 s and the follower's stream ends.
#[tokio::test(flavor = "multi_thread")]
async fn sigterm_stops_a_node_with_a_watch_events_stream_open() {
    let mut grid = TestGrid::start().await;
    let mut status = status_client(&grid.endpoint()).await;
    let mut events = status
        .watch_events(pb::WatchEventsRequest::default())
        .await
        .expect("watch events")
        .into_inner();
    let follower = tokio::spawn(async move { while let Some(Ok(_)) = events.next().await {} });
    let asked = Instant::now();
    tokio::task::block_in_place(|| grid.stop());
    let took = asked.elapsed();
    assert!(
        took < Duration::from_secs(15),
        "the node took {took:?} to stop"
    );
    tokio::time::timeout(Duration::from_secs(5), follower)
        .await
        .expect("the follower's stream ends with the node")
        .expect("follower task");
}
