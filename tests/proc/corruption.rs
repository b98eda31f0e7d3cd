//! Bad bytes on disk are an error, never data (DESIGN §4; docs/decisions.md, "Reads stream the
//! mounted version and verify as they go").

use std::fs::OpenOptions;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

use vtgrid_proto::pb::Reason;
use vtgrid_proto::reason_of;
use vtgrid_tests::support::host::{mount, read_stream, rewind_unload, specific, write_volume};
use vtgrid_tests::support::{ok, Payload, TestGrid, MIB, PRIVATE_CATEGORY};

/// A byte flipped inside the second chunk of a stored version fails the read with
/// CHECKSUM_MISMATCH after the first chunk, and none of the corrupt chunk's bytes reach the host.
///
/// Sequence: node → insert A00000-A00009 into 000F → write 3 MiB to A00000 → flip one byte of
/// the second chunk's data in `tvc/A00000/…1.vol` while the node runs → gRPC: mount, read: the
/// stream fails with CHECKSUM_MISMATCH and what arrived is exactly the first 1 MiB of the
/// original → rewind-unload → CLI `volume read A00000` exits 2, stderr names CHECKSUM_MISMATCH →
/// the volume is not mounted (GetVolume) and a new mount works.
#[tokio::test(flavor = "multi_thread")]
async fn flipped_byte_is_checksum_mismatch_never_data() {
    let grid = TestGrid::start().await;
    grid.insert("A00000-A00009", PRIVATE_CATEGORY).await;
    let payload = Payload::mib(3, 3, 0);
    let mut host = grid.host().await;
    let done = write_volume(&mut host, "A00000", payload).await;

    let flipped_at = MIB + 12_345;
    flip_byte(
        &grid.version_path("A00000", done.version),
        vtgrid_tvc::format::data_offset(flipped_at),
    );

    let job = ok(
        mount(&mut host, specific("A00000")).await,
        "mount the corrupt volume",
    );
    let read = read_stream(&mut host, &job.mount_id).await;
    let error = read
        .error
        .expect("reading a corrupt chunk must fail the stream");
    assert_eq!(
        reason_of(&error),
        Some(Reason::ChecksumMismatch),
        "{error:?}"
    );
    assert!(
        read.data.len() as u64 <= MIB,
        "more than the first chunk arrived: {} bytes",
        read.data.len()
    );
    assert!(
        read.data == payload.slice(0, MIB),
        "the bytes before the error are the first chunk of the original ({} bytes arrived)",
        read.data.len()
    );
    ok(
        rewind_unload(&mut host, &job.mount_id).await,
        "unload after the failed read",
    );

    let cli = grid
        .cli_call(&["volume", "read", "A00000"])
        .hash_stdout()
        .run()
        .await;
    assert_eq!(
        cli.code(),
        Some(2),
        "volume read of a corrupt volume exits 2; stderr:\n{}",
        cli.stderr
    );
    assert!(
        cli.stderr.contains("CHECKSUM_MISMATCH"),
        "stderr names the reason:\n{}",
        cli.stderr
    );
    assert!(
        cli.stdout_len <= MIB,
        "the CLI printed {} bytes of a corrupt volume",
        cli.stdout_len
    );

    assert!(
        !grid.volume("A00000").await.mounted,
        "A00000 is left mounted"
    );
    let again = ok(
        mount(&mut host, specific("A00000")).await,
        "mount A00000 after the failed reads",
    );
    ok(
        rewind_unload(&mut host, &again.mount_id).await,
        "unload A00000",
    );
}

/// Invert the byte at `offset` of `path`, in place.
fn flip_byte(path: &Path, offset: u64) {
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    let mut byte = [0u8; 1];
    file.seek(SeekFrom::Start(offset))
        .expect("seek to the byte");
    file.read_exact(&mut byte).expect("read the byte");
    byte[0] ^= 0xFF;
    file.seek(SeekFrom::Start(offset)).expect("seek back");
    file.write_all(&byte).expect("write the flipped byte");
    file.sync_all().expect("fsync the corrupted file");
}
