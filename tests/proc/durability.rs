//! What survives `kill -9`: a version exists once rewind-unload returned, and only then
//! (docs/decisions.md, "A version exists only once rewind-unload commits it"; "Mount ids die with
//! the process").

use std::time::Duration;

use vtgrid_proto::pb::Reason;
use vtgrid_tests::support::host::{
    mount, read_volume, rewind_unload, specific, write_stream, write_volume, OpenWriteStream,
    StreamEnd,
};
use vtgrid_tests::support::{
    assert_reason, ok, wait_for, Payload, TestGrid, MIB, PRIVATE_CATEGORY,
};

/// An acknowledged rewind-unload survives SIGKILL: the version reads back and the catalog holds
/// it with the digest the unload returned.
///
/// Sequence: node → insert A00000-A00009 into 000F → write 5 MiB + 3 bytes to A00000 →
/// rewind-unload returns version 1 and a digest → kill -9 → restart on the same data → read
/// A00000: identical → GetVolume: version 1, that digest (the BLAKE3 of the bytes), size.
#[tokio::test(flavor = "multi_thread")]
async fn kill9_after_rewind_unload_keeps_the_version() {
    let mut grid = TestGrid::start().await;
    grid.insert("A00000-A00009", PRIVATE_CATEGORY).await;
    let payload = Payload::mib(1, 5, 3);
    let unloaded = write_volume(&mut grid.host().await, "A00000", payload).await;
    assert_eq!(unloaded.version, 1);
    assert_eq!(
        unloaded.digest,
        payload.blake3_hex(),
        "the digest is the BLAKE3 of the bytes"
    );

    grid.kill9();
    grid.restart().await;

    let data = read_volume(&mut grid.host().await, "A00000").await;
    assert!(
        data == payload.to_vec(),
        "A00000 reads back identical after kill -9 ({} bytes)",
        data.len()
    );
    let volume = grid.volume("A00000").await;
    assert_eq!(volume.version, 1, "catalog version after restart");
    assert_eq!(
        volume.digest, unloaded.digest,
        "catalog digest after restart"
    );
    assert_eq!(volume.size, payload.len());
    assert!(!volume.mounted);
}

/// A crash in the middle of a write stream loses only that job: the volume keeps its last
/// committed version, the partial file is deleted, other volumes are untouched, the old mount id
/// is dead and the volume is free to mount.
///
/// Sequence: node → insert A00000-A00009 into 000F → A00000 v1 (3 MiB + 17 bytes) and A00001 v1
/// (2 MiB + 5 bytes) committed → mount A00000 again → open a write stream and send 4 MiB in 1 MiB
/// chunks, never ending it → wait until a file in `tvc/.partial/` is larger than 1 MiB → kill -9
/// while the stream is open → restart → `.partial/` is empty → the old mount id answers
/// UNKNOWN_MOUNT → A00000 mounts (not VOLUME_IN_USE) at version 1 and reads back v1 exactly;
/// catalog version 1 → A00001 reads back intact.
#[tokio::test(flavor = "multi_thread")]
async fn kill9_during_write_keeps_last_committed_version_and_drops_the_partial() {
    let mut grid = TestGrid::start().await;
    grid.insert("A00000-A00009", PRIVATE_CATEGORY).await;
    let a_v1 = Payload::mib(10, 3, 17);
    let b_v1 = Payload::mib(11, 2, 5);
    let mut host = grid.host().await;
    let a_done = write_volume(&mut host, "A00000", a_v1).await;
    write_volume(&mut host, "A00001", b_v1).await;

    let job = ok(
        mount(&mut host, specific("A00000")).await,
        "mount A00000 for a second version",
    );
    assert_eq!(job.version, 1);
    let stream = OpenWriteStream::open(&host, &job.mount_id).await;
    let a_v2 = Payload::mib(12, 4, 0);
    for chunk in a_v2.chunks(MIB as usize) {
        assert!(
            stream.send(chunk).await,
            "the node ended the write stream early"
        );
    }
    wait_for(
        "a partial version larger than 1 MiB in tvc/.partial/",
        Duration::from_secs(30),
        || async { grid.partial_files().into_iter().find(|(_, len)| *len > MIB) },
    )
    .await;

    grid.kill9();
    let broken = stream.finish().await;
    assert!(
        broken.is_err(),
        "the write stream of a killed node cannot succeed: {broken:?}"
    );
    grid.restart().await;

    assert_eq!(
        grid.partial_files(),
        Vec::new(),
        "partial versions left after restart"
    );
    let mut host = grid.host().await;
    assert_reason(
        rewind_unload(&mut host, &job.mount_id).await,
        Reason::UnknownMount,
        "rewind-unload with the mount id of the killed process",
    );
    let again = ok(
        mount(&mut host, specific("A00000")).await,
        "mount A00000 after the crash",
    );
    assert_eq!(
        again.version, 1,
        "the mount sees the last committed version"
    );
    ok(
        rewind_unload(&mut host, &again.mount_id).await,
        "unload A00000 without writing",
    );

    let data = read_volume(&mut host, "A00000").await;
    assert!(
        data == a_v1.to_vec(),
        "A00000 reads back as v1 ({} bytes, v1 has {})",
        data.len(),
        a_v1.len()
    );
    let a = grid.volume("A00000").await;
    assert_eq!(
        (a.version, a.size, a.digest.as_str()),
        (1, a_v1.len(), a_done.digest.as_str())
    );
    let data = read_volume(&mut host, "A00001").await;
    assert!(
        data == b_v1.to_vec(),
        "A00001 reads back intact ({} bytes)",
        data.len()
    );
}

/// T17 on a real file store: a `kill -9` after an acknowledged sync point leaves exactly the
/// bytes up to it as the volume's next version (tape semantics, B42), whatever the job wrote
/// after; nothing is left in `tvc/.partial/`.
///
/// Sequence: node → insert A00000-A00009 → A00000 v1 (1 MiB + 3) → mount A00000 → one write
/// call of 2 MiB + 9 bytes → Sync answers 2 MiB + 9 durable → a write stream of 3 MiB more, never
/// ended → wait until the partial file has grown past the synced bytes → kill -9 → restart →
/// `.partial/` is empty → A00000 is at v2, size and digest of the synced bytes → it reads back
/// as those bytes.
#[tokio::test(flavor = "multi_thread")]
async fn kill9_after_a_sync_point_keeps_the_synced_prefix_as_the_version() {
    let mut grid = TestGrid::start().await;
    grid.insert("A00000-A00009", PRIVATE_CATEGORY).await;
    let mut host = grid.host().await;
    write_volume(&mut host, "A00000", Payload::mib(20, 1, 3)).await;
    let job = ok(mount(&mut host, specific("A00000")).await, "mount A00000");
    let synced = Payload::mib(21, 2, 9);
    ok(
        write_stream(&mut host, &job.mount_id, synced, StreamEnd::Complete).await,
        "write the bytes before the sync point",
    );
    let durable = ok(
        host.sync(vtgrid_proto::pb::SyncRequest {
            mount_id: job.mount_id.clone(),
        })
        .await,
        "sync",
    )
    .into_inner()
    .durable_bytes;
    assert_eq!(durable, synced.len());
    let stream = OpenWriteStream::open(&host, &job.mount_id).await;
    for chunk in Payload::mib(22, 3, 0).chunks(MIB as usize) {
        assert!(
            stream.send(chunk).await,
            "the node ended the write stream early"
        );
    }
    let grown = synced.len() + 2 * MIB;
    wait_for(
        "the partial version growing past the sync point",
        Duration::from_secs(30),
        || async {
            grid.partial_files()
                .into_iter()
                .find(|(p, len)| p.extension().is_some_and(|e| e == "part") && *len > grown)
        },
    )
    .await;

    grid.kill9();
    let _ = stream.finish().await;
    grid.restart().await;

    assert_eq!(
        grid.partial_files(),
        Vec::new(),
        "partial files after restart"
    );
    let v = grid.volume("A00000").await;
    assert_eq!(
        (v.version, v.size, v.digest.as_str()),
        (2, synced.len(), synced.blake3_hex().as_str()),
        "A00000's new version is exactly the synced bytes"
    );
    let data = read_volume(&mut grid.host().await, "A00000").await;
    assert!(
        data == synced.to_vec(),
        "A00000 reads back as the synced bytes"
    );
}
