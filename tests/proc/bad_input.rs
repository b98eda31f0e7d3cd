//! Every refusal a host or operator can provoke, asserted by its stable reason (docs/errors.md),
//! plus malformed grid files, B84 blank mounts and the CLI's `--json` output.
//!
//! Each test starts its own node; a test never depends on another's state.

use std::path::Path;
use std::time::Duration;

use vtgrid_proto::pb::{self, Reason};
use vtgrid_tests::support::host::{
    chunk_message, end_message, mount, open_message, read_stream, read_volume, rewind_unload,
    scratch, specific, write_job, write_stream, write_volume, HostClient, StreamEnd,
};
use vtgrid_tests::support::{
    assert_reason, ok, wait_until, CliCall, GridFile, GridOptions, Payload, TestGrid, MIB,
    PRIVATE_CATEGORY, SCRATCH_CATEGORY, STANDARD_CLASS,
};

/// A VOLSER or range that is not 6 × `[A-Z0-9]` is INVALID_VOLSER, for a mount and an insert.
///
/// Sequence: node → mount "abc123" → INVALID_VOLSER → insert range "A0000-B0000" → INVALID_VOLSER
/// → no volume was inserted.
#[tokio::test(flavor = "multi_thread")]
async fn malformed_volser_is_invalid_volser_for_mount_and_insert() {
    let grid = TestGrid::start().await;
    assert_reason(
        mount(&mut grid.host().await, specific("abc123")).await,
        Reason::InvalidVolser,
        "mount abc123",
    );
    let insert = pb::InsertVolumesRequest {
        range: "A0000-B0000".into(),
        category: String::new(),
    };
    assert_reason(
        grid.admin().await.insert_volumes(insert).await,
        Reason::InvalidVolser,
        "insert range A0000-B0000",
    );
    assert_eq!(list_volumes(&grid).await.len(), 0, "nothing was inserted");
}

/// A mount of a VOLSER the catalog does not hold is UNKNOWN_VOLUME.
///
/// Sequence: node → insert A00000-A00009 → mount ZZZ999 → UNKNOWN_VOLUME.
#[tokio::test(flavor = "multi_thread")]
async fn mount_of_absent_volser_is_unknown_volume() {
    let grid = TestGrid::start().await;
    grid.insert("A00000-A00009", "").await;
    assert_reason(
        mount(&mut grid.host().await, specific("ZZZ999")).await,
        Reason::UnknownVolume,
        "mount ZZZ999",
    );
}

/// A mount naming a management class that is not defined is UNKNOWN_CLASS, before anything is
/// mounted (B36).
///
/// Sequence: node → insert A00000-A00009 into 000F → mount A00000 with management class NOPE →
/// UNKNOWN_CLASS → A00000 is not mounted: a mount without the class works.
#[tokio::test(flavor = "multi_thread")]
async fn mount_with_undefined_management_class_is_unknown_class() {
    let grid = TestGrid::start().await;
    grid.insert("A00000-A00009", PRIVATE_CATEGORY).await;
    let mut host = grid.host().await;
    let mut req = specific("A00000");
    req.constructs = Some(pb::Constructs {
        management_class: "NOPE".into(),
        ..Default::default()
    });
    assert_reason(
        mount(&mut host, req).await,
        Reason::UnknownClass,
        "mount A00000 with class NOPE",
    );
    let m = ok(
        mount(&mut host, specific("A00000")).await,
        "mount A00000 without a class",
    );
    ok(rewind_unload(&mut host, &m.mount_id).await, "unload A00000");
}

/// One mount of a volume at a time: a second mount and a category change of a mounted volume
/// are VOLUME_IN_USE.
///
/// Sequence: node → insert A00000-A00009 → mount A00001 → mount A00001 again → VOLUME_IN_USE →
/// ChangeCategory(A00001, 000F) → VOLUME_IN_USE → unload → the category change now works.
#[tokio::test(flavor = "multi_thread")]
async fn mounted_volume_is_in_use_for_a_second_mount_and_a_category_change() {
    let grid = TestGrid::start().await;
    grid.insert("A00000-A00009", "").await;
    let mut host = grid.host().await;
    let first = ok(
        mount(&mut host, specific("A00001")).await,
        "first mount of A00001",
    );
    assert_reason(
        mount(&mut host, specific("A00001")).await,
        Reason::VolumeInUse,
        "second mount of A00001",
    );
    let change = pb::ChangeCategoryRequest {
        volser: "A00001".into(),
        category: PRIVATE_CATEGORY.into(),
    };
    assert_reason(
        host.change_category(change.clone()).await,
        Reason::VolumeInUse,
        "category change of mounted A00001",
    );
    ok(
        rewind_unload(&mut host, &first.mount_id).await,
        "unload A00001",
    );
    let changed = ok(
        host.change_category(change).await,
        "category change after the unload",
    )
    .into_inner();
    assert_eq!(
        changed.volume.expect("the changed volume").category,
        PRIVATE_CATEGORY
    );
}

/// B8: a scratch mount finds no volume when every volume of the Fast Ready category is private or
/// mounted: NO_SCRATCH_AVAILABLE.
///
/// Sequence: node → insert A00000-A00001 (0001) → scratch write to one of them (it moves to 000F)
/// → specific mount of the other (held) → scratch mount on 0001 → NO_SCRATCH_AVAILABLE.
#[tokio::test(flavor = "multi_thread")]
async fn scratch_mount_with_every_volume_private_or_mounted_is_no_scratch_available() {
    let grid = TestGrid::start().await;
    grid.insert("A00000-A00001", "").await;
    let mut host = grid.host().await;
    let written = ok(
        write_job(
            &mut host,
            scratch(SCRATCH_CATEGORY, STANDARD_CLASS),
            Payload::new(8, 1000),
        )
        .await,
        "scratch write",
    );
    assert_eq!(
        written.category, PRIVATE_CATEGORY,
        "the scratch job's volume moved to the private category"
    );
    let other = if written.volser == "A00000" {
        "A00001"
    } else {
        "A00000"
    };
    let held = ok(
        mount(&mut host, specific(other)).await,
        "specific mount of the other volume",
    );
    assert_reason(
        mount(&mut host, scratch(SCRATCH_CATEGORY, STANDARD_CLASS)).await,
        Reason::NoScratchAvailable,
        "scratch mount with one volume private and one mounted",
    );
    ok(
        rewind_unload(&mut host, &held.mount_id).await,
        "unload the held volume",
    );
}

/// An insert that overlaps existing VOLSERs is DUPLICATE_VOLSER and inserts nothing of its range.
///
/// Sequence: node → insert A00000-A00009 (10) → insert A00005-A00014 → DUPLICATE_VOLSER →
/// ListVolumes still counts 10 → A00010 is UNKNOWN_VOLUME.
#[tokio::test(flavor = "multi_thread")]
async fn overlapping_insert_is_duplicate_volser_and_inserts_nothing() {
    let grid = TestGrid::start().await;
    assert_eq!(grid.insert("A00000-A00009", "").await, 10);
    let overlap = pb::InsertVolumesRequest {
        range: "A00005-A00014".into(),
        category: String::new(),
    };
    assert_reason(
        grid.admin().await.insert_volumes(overlap).await,
        Reason::DuplicateVolser,
        "insert A00005-A00014 over A00000-A00009",
    );
    assert_eq!(
        list_volumes(&grid).await.len(),
        10,
        "volumes after the refused insert"
    );
    let absent = pb::GetVolumeRequest {
        volser: "A00010".into(),
        ..Default::default()
    };
    assert_reason(
        grid.admin().await.get_volume(absent).await,
        Reason::UnknownVolume,
        "GetVolume A00010",
    );
}

/// A write stream the client closes without `WriteEnd` is TRUNCATED_STREAM: the job is aborted,
/// the volume demounted, the partial version deleted and the committed version kept.
///
/// Sequence: node → A00000 v1 committed → mount A00000 → write 2 MiB + 9 bytes and close the stream
/// without WriteEnd → TRUNCATED_STREAM → no file in `.partial/` → the old mount id is
/// UNKNOWN_MOUNT → a new mount works (version 1) → A00000 reads back as v1.
#[tokio::test(flavor = "multi_thread")]
async fn write_stream_closed_without_end_is_truncated_and_keeps_the_committed_version() {
    truncated_job_keeps_the_committed_version(StreamEnd::Omitted).await;
}

/// A `WriteEnd` whose `total_bytes` disagrees with the bytes sent is TRUNCATED_STREAM, with the
/// same outcome as a stream without `WriteEnd`.
///
/// Sequence: as above, with WriteEnd claiming one byte more than was sent.
#[tokio::test(flavor = "multi_thread")]
async fn write_end_with_wrong_byte_count_is_truncated_and_keeps_the_committed_version() {
    truncated_job_keeps_the_committed_version(StreamEnd::Claims(Payload::mib(21, 2, 9).len() + 1))
        .await;
}

async fn truncated_job_keeps_the_committed_version(end: StreamEnd) {
    let grid = TestGrid::start().await;
    grid.insert("A00000-A00009", PRIVATE_CATEGORY).await;
    let v1 = Payload::mib(20, 1, 77);
    let mut host = grid.host().await;
    write_volume(&mut host, "A00000", v1).await;

    let job = ok(
        mount(&mut host, specific("A00000")).await,
        "mount A00000 for v2",
    );
    let broken = Payload::mib(21, 2, 9);
    assert_reason(
        write_stream(&mut host, &job.mount_id, broken, end).await,
        Reason::TruncatedStream,
        &format!("write stream ending {end:?}"),
    );
    assert_eq!(
        grid.partial_files(),
        Vec::new(),
        "partial version left after the aborted job"
    );
    assert_reason(
        rewind_unload(&mut host, &job.mount_id).await,
        Reason::UnknownMount,
        "rewind-unload of the aborted job",
    );
    let again = ok(
        mount(&mut host, specific("A00000")).await,
        "mount A00000 after the aborted job",
    );
    assert_eq!(again.version, 1, "the committed version stays");
    ok(
        rewind_unload(&mut host, &again.mount_id).await,
        "unload A00000",
    );
    let data = read_volume(&mut host, "A00000").await;
    assert!(
        data == v1.to_vec(),
        "A00000 reads back as v1 ({} bytes)",
        data.len()
    );
    assert_eq!(grid.volume("A00000").await.version, 1);
}

/// A chunk over the 64 MiB message limit is MESSAGE_TOO_LARGE (INVALID_ARGUMENT: a client bug a
/// retry repeats), never TRUNCATED_STREAM; the job is aborted like any broken stream.
///
/// Sequence: node → A00000 v1 committed → mount A00000 → open, 1 MiB, a 64 MiB + 1 chunk →
/// MESSAGE_TOO_LARGE → no partial file → the mount id is UNKNOWN_MOUNT → A00000 is still v1.
#[tokio::test(flavor = "multi_thread")]
async fn a_chunk_over_the_message_limit_is_message_too_large_and_aborts_the_job() {
    refused_stream_aborts_the_job(Reason::MessageTooLarge, |mount_id| {
        vec![
            open_message(mount_id),
            chunk_message(bytes::Bytes::from(vec![1u8; MIB as usize])),
            chunk_message(bytes::Bytes::from(vec![2u8; (64 * MIB) as usize + 1])),
            end_message(65 * MIB + 1),
        ]
    })
    .await;
}

/// A second `WriteOpen` in one write stream is STREAM_ALREADY_OPEN and aborts the job.
///
/// Sequence: node → A00000 v1 committed → mount A00000 → open, 1 MiB, open again →
/// STREAM_ALREADY_OPEN → no partial file → the mount id is UNKNOWN_MOUNT → A00000 is still v1.
#[tokio::test(flavor = "multi_thread")]
async fn a_second_open_in_one_write_stream_is_stream_already_open_and_aborts_the_job() {
    refused_stream_aborts_the_job(Reason::StreamAlreadyOpen, |mount_id| {
        vec![
            open_message(mount_id),
            chunk_message(bytes::Bytes::from(vec![1u8; MIB as usize])),
            open_message(mount_id),
            end_message(MIB),
        ]
    })
    .await;
}

/// A00000 v1 committed, a mount for v2, the write stream `messages` makes for that mount (sent
/// by a client without a size limit of its own): refused INVALID_ARGUMENT with `want`, and the
/// job aborted.
async fn refused_stream_aborts_the_job(
    want: Reason,
    messages: impl FnOnce(&str) -> Vec<pb::WriteRequest>,
) {
    let grid = TestGrid::start().await;
    grid.insert("A00000-A00009", PRIVATE_CATEGORY).await;
    let v1 = Payload::mib(30, 1, 5);
    let mut host = grid.host().await;
    write_volume(&mut host, "A00000", v1).await;
    let job = ok(mount(&mut host, specific("A00000")).await, "mount A00000");
    let mut unlimited = host.clone().max_encoding_message_size(usize::MAX);
    let refused = assert_reason(
        unlimited
            .write(futures::stream::iter(messages(&job.mount_id)))
            .await,
        want,
        &format!("a write stream refused with {want:?}"),
    );
    assert_eq!(refused.code(), tonic::Code::InvalidArgument);
    assert_job_aborted(&grid, &mut host, &job.mount_id, v1).await;
}

/// After an aborted job: nothing partial left, its mount gone, the committed version intact.
async fn assert_job_aborted(grid: &TestGrid, host: &mut HostClient, mount_id: &str, v1: Payload) {
    assert_eq!(grid.partial_files(), Vec::new(), "partial version left");
    assert_reason(
        rewind_unload(host, mount_id).await,
        Reason::UnknownMount,
        "rewind-unload of the aborted job",
    );
    assert!(read_volume(host, "A00000").await == v1.to_vec());
    assert_eq!(grid.volume("A00000").await.version, 1);
}

/// A write that would exceed the cache quota is STORAGE_FULL: the job is aborted, its space given
/// back, and committed volumes kept.
///
/// Sequence: node with `cache_quota_bytes = 4194304` → insert A00000-A00009 into 000F → A00000 v1
/// (1 MiB + 100 bytes) committed → note GetStatus.cache_used_bytes → write 8 MiB to A00001 →
/// STORAGE_FULL → usage is back to the noted value → no partial file → A00000 reads back intact →
/// A00001 is demounted (a new mount works) and still has no version.
#[tokio::test(flavor = "multi_thread")]
async fn write_over_the_cache_quota_is_storage_full_and_frees_its_space() {
    let grid = TestGrid::start_with(GridOptions {
        cache_quota_bytes: Some(4 * MIB),
        ..GridOptions::default()
    })
    .await;
    assert_eq!(grid.status().await.cache_quota_bytes, Some(4 * MIB));
    grid.insert("A00000-A00009", PRIVATE_CATEGORY).await;
    let v1 = Payload::mib(30, 1, 100);
    let mut host = grid.host().await;
    write_volume(&mut host, "A00000", v1).await;
    let used = grid.status().await.cache_used_bytes;
    assert!(
        used >= v1.len(),
        "usage {used} counts A00000's {} bytes",
        v1.len()
    );

    assert_reason(
        write_job(&mut host, specific("A00001"), Payload::mib(31, 8, 0)).await,
        Reason::StorageFull,
        "write 8 MiB under a 4 MiB quota",
    );
    wait_until(
        "cache usage back to its value before the refused job",
        Duration::from_secs(10),
        || async { grid.status().await.cache_used_bytes == used },
    )
    .await;
    assert_eq!(
        grid.partial_files(),
        Vec::new(),
        "partial version left after STORAGE_FULL"
    );
    let data = read_volume(&mut host, "A00000").await;
    assert!(
        data == v1.to_vec(),
        "A00000 reads back intact ({} bytes)",
        data.len()
    );
    let b = ok(
        mount(&mut host, specific("A00001")).await,
        "mount A00001 after the refused job",
    );
    assert_eq!(b.version, 0, "the refused job made no version");
    ok(rewind_unload(&mut host, &b.mount_id).await, "unload A00001");
}

/// B84: a specific mount of a volume in a Fast Ready category is blank, and moving the volume
/// back to a private category shows its data again, untouched.
///
/// Sequence: node → insert A00000-A00009 → scratch write 2 MiB + 5 bytes (the volume lands in
/// 000F, version 1) → ChangeCategory to 0001 → specific mount: blank, reads no bytes → unload
/// without writing: written = false, version 1 → ChangeCategory to 000F → specific mount: not
/// blank, version 1, reads back identical.
#[tokio::test(flavor = "multi_thread")]
async fn b84_specific_mount_in_fast_ready_category_is_blank_and_keeps_the_data() {
    let grid = TestGrid::start().await;
    grid.insert("A00000-A00009", "").await;
    let mut host = grid.host().await;
    let data = Payload::mib(84, 2, 5);
    let written = ok(
        write_job(&mut host, scratch(SCRATCH_CATEGORY, STANDARD_CLASS), data).await,
        "scratch write",
    );
    assert_eq!(
        (written.category.as_str(), written.version),
        (PRIVATE_CATEGORY, 1)
    );
    let volser = written.volser;

    let to = |category: &str| pb::ChangeCategoryRequest {
        volser: volser.clone(),
        category: category.into(),
    };
    ok(
        host.change_category(to(SCRATCH_CATEGORY)).await,
        "return to scratch (0001)",
    );
    let blank = ok(
        mount(&mut host, specific(&volser)).await,
        "specific mount in the Fast Ready category",
    );
    assert!(
        blank.blank,
        "a specific mount in a Fast Ready category is blank: {blank:?}"
    );
    let read = read_stream(&mut host, &blank.mount_id).await;
    assert!(
        read.error.is_none(),
        "reading a blank mount: {:?}",
        read.error
    );
    assert_eq!(read.data.len(), 0, "a blank mount reads no bytes");
    let unloaded = ok(
        rewind_unload(&mut host, &blank.mount_id).await,
        "unload the blank mount",
    );
    assert!(!unloaded.written, "nothing was written");
    assert_eq!(
        unloaded.version, 1,
        "an unload without writing keeps the version"
    );

    ok(
        host.change_category(to(PRIVATE_CATEGORY)).await,
        "back to 000F",
    );
    let full = ok(
        mount(&mut host, specific(&volser)).await,
        "specific mount in 000F",
    );
    assert!(!full.blank, "a private mount is not blank: {full:?}");
    assert_eq!((full.version, full.size), (1, data.len()));
    ok(rewind_unload(&mut host, &full.mount_id).await, "unload");
    let back = read_volume(&mut host, &volser).await;
    assert!(
        back == data.to_vec(),
        "{volser} reads back identical ({} bytes)",
        back.len()
    );
}

/// `--json` output is JSON with the documented fields.
///
/// Sequence: node → `volume insert A00000-A00002` → `volume list --json`: an array of 3 volumes
/// (volser, category 0001, owner 0, version 0, not mounted) → `status --json`: ready, grid,
/// cluster 0, raft role leader, 3 volumes, cache usage.
#[tokio::test(flavor = "multi_thread")]
async fn json_output_of_volume_list_and_status_parses() {
    let grid = TestGrid::start().await;
    grid.cli(&["volume", "insert", "A00000-A00002"])
        .await
        .assert_success();

    let list = grid
        .cli(&["volume", "list", "--json"])
        .await
        .assert_success()
        .json();
    let volumes = list
        .as_array()
        .unwrap_or_else(|| panic!("volume list --json is an array: {list}"));
    let volsers: Vec<&str> = volumes
        .iter()
        .map(|v| v["volser"].as_str().expect("volser is a string"))
        .collect();
    assert_eq!(volsers, ["A00000", "A00001", "A00002"]);
    for v in volumes {
        assert_eq!(v["category"], SCRATCH_CATEGORY, "{v}");
        assert_eq!(v["owner"], 0, "{v}");
        assert_eq!(v["version"], 0, "{v}");
        assert_eq!(v["size"], 0, "{v}");
        assert_eq!(v["mounted"], false, "{v}");
        assert!(v["constructs"].is_object(), "{v}");
    }

    let status = grid
        .cli(&["status", "--json"])
        .await
        .assert_success()
        .json();
    assert_eq!(status["ready"], true, "{status}");
    assert_eq!(status["grid"], "proc-test", "{status}");
    assert_eq!(status["cluster"], 0, "{status}");
    assert_eq!(status["name"], "C0", "{status}");
    assert_eq!(status["raft"]["role"], "leader", "{status}");
    assert_eq!(status["raft"]["leader"], 0, "{status}");
    assert_eq!(status["volumes"], 3, "{status}");
    assert_eq!(status["mounts"], 0, "{status}");
    assert!(status["cache"]["used_bytes"].is_u64(), "{status}");
}

/// A grid file whose `cluster[0].grid` is not an address is refused by `config check` and by
/// `node`, naming the field.
#[tokio::test(flavor = "multi_thread")]
async fn grid_file_with_bad_address_is_refused_naming_the_field() {
    assert_grid_file_refused(
        |good, file| good.replace(&format!("grid = \"{}\"", file.grid), "grid = \"nowhere\""),
        |_| vec!["cluster[0].grid".into(), "nowhere".into()],
    )
    .await;
}

/// A grid file whose copy-mode vector has a letter that is no copy mode is refused, naming
/// `management_class[0].copy_modes.C0`.
#[tokio::test(flavor = "multi_thread")]
async fn grid_file_with_bad_copy_mode_vector_is_refused_naming_the_field() {
    assert_grid_file_refused(
        |good, _| good.replace("C0 = \"R\"", "C0 = \"X\""),
        |_| vec!["management_class[0].copy_modes.C0".into()],
    )
    .await;
}

/// A grid file with a key the format does not have is refused, and the error names the key.
#[tokio::test(flavor = "multi_thread")]
async fn grid_file_with_unknown_key_is_refused_naming_the_key() {
    assert_grid_file_refused(
        |good, _| good.replace("name = \"C0\"", "name = \"C0\"\nhots = \"x\""),
        |_| vec!["hots".into()],
    )
    .await;
}

/// A grid file that is not TOML is refused, and the error names the line.
#[tokio::test(flavor = "multi_thread")]
async fn grid_file_with_invalid_toml_is_refused_naming_the_line() {
    assert_grid_file_refused(
        |good, _| good.replace("[[cluster]]", "[[cluster]"),
        |broken| {
            let line = broken
                .lines()
                .position(|l| l == "[[cluster]")
                .expect("the broken header")
                + 1;
            vec![format!("line {line}")]
        },
    )
    .await;
}

/// Sequence: a valid grid file passes `config check` → `edit` breaks it → `vtgrid config check F`
/// and `vtgrid node --config F --id 0` each exit non-zero, and stderr names the file and every
/// string `names` lists for the broken text.
async fn assert_grid_file_refused(
    edit: impl FnOnce(&str, &GridFile) -> String,
    names: impl FnOnce(&str) -> Vec<String>,
) {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = GridFile::on_free_ports(dir.path().join("c0"), None);
    let good = file.to_toml();
    let good_path = dir.path().join("good.toml");
    std::fs::write(&good_path, &good).expect("write the valid grid file");
    CliCall::new(&["config", "check", &path_arg(&good_path)])
        .run()
        .await
        .assert_success();

    let broken = edit(&good, &file);
    assert_ne!(broken, good, "the edit changed the grid file");
    let path = dir.path().join("broken.toml");
    std::fs::write(&path, &broken).expect("write the broken grid file");
    let mut expected = names(&broken);
    expected.push(path_arg(&path));

    let calls = [
        CliCall::new(&["config", "check", &path_arg(&path)]),
        CliCall::new(&["node", "--config", &path_arg(&path), "--id", "0"])
            .timeout(Duration::from_secs(30)),
    ];
    for call in calls {
        let run = call.run().await;
        assert!(
            !run.status.success(),
            "vtgrid {:?} accepted the broken grid file:\n{broken}",
            run.args
        );
        for name in &expected {
            assert!(
                run.stderr.contains(name.as_str()),
                "vtgrid {:?}: stderr does not name {name:?}:\n{}",
                run.args,
                run.stderr
            );
        }
    }
    assert!(
        !dir.path().join("c0").exists(),
        "a node with a broken grid file created its data dir"
    );
}

fn path_arg(path: &Path) -> String {
    path.to_str().expect("temp paths are UTF-8").to_string()
}

/// Every volume in the catalog, through ListVolumes.
async fn list_volumes(grid: &TestGrid) -> Vec<pb::Volume> {
    let mut admin = grid.admin().await;
    ok(
        vtgrid_proto::paging::list_volumes(&mut admin, Default::default(), 0).await,
        "ListVolumes",
    )
}
