//! The conformance suite every [`VolumeStore`] passes: the file store against a temp directory,
//! the in-memory store as is (STYLE, Traits at the I/O seams; shaped like openraft's
//! `testing::Suite`).
//!
//! [`run_suite`] takes a builder, `quota -> (guard, store)`, and runs each case on a fresh, empty
//! store; the guard (a `TempDir`, or `()`) lives until the case ends. Each case is also a public
//! function named after the property it checks, so a failing one says what broke. Cases panic on
//! failure, as tests do.
//!
//! Corruption cases are not here: damaging a stored version differs per backend, so each store's
//! own tests do it (`flipped_data_byte_is_chunk_corrupt`, `corrupt_byte_is_chunk_corrupt`).

use vtgrid_core::{Digest, VersionNumber, Volser};

use crate::error::TvcError;
use crate::format::{stored_len, CHUNK_SIZE};
use crate::store::{QuarantinedVersion, SyncedPrefix, VersionMeta, VolumeStore};
use crate::{FileVolumeStore, MemVolumeStore};

/// A store the suite can crash: [`Reopen::crash_reopen`] gives the store as it comes back after
/// a power cut, holding exactly what was durable. Writers begun before are lost; the case drops
/// them afterwards.
pub trait Reopen: VolumeStore + Sized {
    fn crash_reopen(&self) -> Self;
}

impl Reopen for FileVolumeStore {
    fn crash_reopen(&self) -> Self {
        FileVolumeStore::open(self.dir(), self.usage().quota_bytes).expect("reopen the store")
    }
}

impl Reopen for MemVolumeStore {
    fn crash_reopen(&self) -> Self {
        self.crash();
        self.clone()
    }
}

/// The quota [`run_suite`] gives the store for [`quota_rejects_write_with_storage_full`]: room for
/// two full chunks.
pub const SUITE_QUOTA: u64 = stored_len(2 * CHUNK_SIZE as u64);

/// One case: a property checked on a fresh store.
pub type Case<S> = fn(&S);

/// Every case with the quota its store needs, by name.
pub fn cases<S: Reopen>() -> Vec<(&'static str, Option<u64>, Case<S>)> {
    vec![
        (
            "write_commit_read_roundtrip",
            None,
            write_commit_read_roundtrip::<S>,
        ),
        (
            "digest_is_blake3_of_bytes",
            None,
            digest_is_blake3_of_bytes::<S>,
        ),
        (
            "partial_version_is_invisible_until_commit",
            None,
            partial_version_is_invisible_until_commit::<S>,
        ),
        (
            "abort_leaves_previous_version_intact",
            None,
            abort_leaves_previous_version_intact::<S>,
        ),
        (
            "append_starts_from_base_bytes",
            None,
            append_starts_from_base_bytes::<S>,
        ),
        (
            "quota_rejects_write_with_storage_full",
            Some(SUITE_QUOTA),
            quota_rejects_write_with_storage_full::<S>,
        ),
        (
            "usage_counts_committed_bytes",
            None,
            usage_counts_committed_bytes::<S>,
        ),
        ("remove_frees_space", None, remove_frees_space::<S>),
        (
            "open_missing_is_not_found",
            None,
            open_missing_is_not_found::<S>,
        ),
        (
            "versions_lists_committed_only",
            None,
            versions_lists_committed_only::<S>,
        ),
        (
            "quarantine_moves_a_version_into_its_own_area",
            None,
            quarantine_moves_a_version_into_its_own_area::<S>,
        ),
        (
            "quarantined_version_survives_writes_of_its_number",
            None,
            quarantined_version_survives_writes_of_its_number::<S>,
        ),
        (
            "quarantine_checks_the_recorded_digest",
            None,
            quarantine_checks_the_recorded_digest::<S>,
        ),
        (
            "remove_quarantined_frees_space",
            None,
            remove_quarantined_frees_space::<S>,
        ),
        (
            "synced_prefix_survives_a_crash_cut_to_its_sync_point",
            None,
            synced_prefix_survives_a_crash_cut_to_its_sync_point::<S>,
        ),
        (
            "unsynced_partial_is_lost_on_crash",
            None,
            unsynced_partial_is_lost_on_crash::<S>,
        ),
        (
            "keep_synced_keeps_the_prefix_without_a_crash",
            None,
            keep_synced_keeps_the_prefix_without_a_crash::<S>,
        ),
        (
            "dropped_synced_writer_leaves_its_prefix_to_the_next_crash",
            None,
            dropped_synced_writer_leaves_its_prefix_to_the_next_crash::<S>,
        ),
        (
            "promoted_prefix_replaces_nothing_but_its_number",
            None,
            promoted_prefix_replaces_nothing_but_its_number::<S>,
        ),
    ]
}

/// Run every case, each on a fresh store from `make(quota)`.
pub fn run_suite<G, S: Reopen>(make: impl Fn(Option<u64>) -> (G, S)) {
    for (_, quota, case) in cases::<S>() {
        let (_guard, store) = make(quota);
        case(&store);
    }
}

/// Run the case called `name` on a fresh store from `make(quota)`.
///
/// # Panics
/// If there is no such case.
pub fn run_case<G, S: Reopen>(make: impl Fn(Option<u64>) -> (G, S), name: &str) {
    let Some((_, quota, case)) = cases::<S>().into_iter().find(|(n, _, _)| *n == name) else {
        panic!("no suite case named {name}");
    };
    let (_guard, store) = make(quota);
    case(&store);
}

/// `len` bytes that differ with `seed` and do not repeat with any chunk-sized period, so a
/// misplaced or reordered chunk cannot pass for the right one.
pub fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            // xorshift64*
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 56) as u8
        })
        .collect()
}

/// Read a whole committed version, checking each chunk is [`CHUNK_SIZE`] except the last.
pub fn read_all<S: VolumeStore + ?Sized>(
    store: &S,
    volser: Volser,
    version: VersionNumber,
) -> Result<Vec<u8>, TvcError> {
    let mut reader = store.open(volser, version)?;
    let size = reader.meta().size;
    let mut out = Vec::new();
    while let Some(chunk) = reader.next_chunk()? {
        let expected = (size - out.len() as u64).min(CHUNK_SIZE as u64);
        assert_eq!(
            chunk.len() as u64,
            expected,
            "chunk at {} of {volser} {version}",
            out.len()
        );
        out.extend_from_slice(&chunk);
    }
    assert_eq!(out.len() as u64, size, "{volser} {version}: size");
    Ok(out)
}

/// Write `data` as `version` of `volser` in one call and commit it.
pub fn write_version<S: VolumeStore + ?Sized>(
    store: &S,
    volser: Volser,
    version: VersionNumber,
    data: &[u8],
) -> VersionMeta {
    let mut writer = store.begin(volser, version, None).expect("begin");
    writer.write(data).expect("write");
    writer.commit().expect("commit")
}

fn volser(s: &str) -> Volser {
    s.parse().expect("suite VOLSERs are valid")
}

/// Call sizes that straddle chunk boundaries in every way: tiny, odd, just past a chunk.
const CALL_SIZES: [usize; 6] = [1, 7, 4093, 65_537, CHUNK_SIZE + 3, 13];

/// Bytes written in calls of odd sizes, with sync points in between, read back identical, cut
/// into chunks of `CHUNK_SIZE` by the store whatever the call sizes.
pub fn write_commit_read_roundtrip<S: VolumeStore>(store: &S) {
    let v = volser("RT0001");
    let sizes = [0, 1, CHUNK_SIZE - 1, CHUNK_SIZE, 3 * CHUNK_SIZE + 17];
    for (version, size) in (1..).zip(sizes) {
        let data = pattern(size, version);
        let mut writer = store.begin(v, version, None).expect("begin");
        let mut done = 0;
        for (call, want) in CALL_SIZES.iter().cycle().enumerate() {
            if done == data.len() {
                break;
            }
            let n = (*want).min(data.len() - done);
            writer.write(&data[done..done + n]).expect("write");
            done += n;
            if call % 3 == 2 {
                assert_eq!(
                    writer.sync().expect("sync"),
                    done as u64,
                    "sync returns bytes so far"
                );
            }
        }
        assert_eq!(writer.bytes_written(), size as u64);
        let meta = writer.commit().expect("commit");
        assert_eq!(
            meta,
            VersionMeta {
                volser: v,
                version,
                size: size as u64,
                digest: meta.digest
            }
        );
        assert_eq!(
            read_all(store, v, version).expect("read back"),
            data,
            "size {size}"
        );
        assert_eq!(store.open(v, version).expect("open").meta(), &meta);
    }
}

/// A version's digest is BLAKE3 of its bytes; the empty version's is `Digest::EMPTY`.
pub fn digest_is_blake3_of_bytes<S: VolumeStore>(store: &S) {
    let v = volser("DG0001");
    for (version, size) in (1..).zip([0, 4096, CHUNK_SIZE + 1]) {
        let data = pattern(size, 100 + version);
        let meta = write_version(store, v, version, &data);
        assert_eq!(
            meta.digest,
            Digest(*blake3::hash(&data).as_bytes()),
            "size {size}"
        );
        assert_eq!(
            store.open(v, version).expect("open").meta().digest,
            meta.digest
        );
    }
    let empty = store.open(v, 1).expect("open empty");
    assert_eq!(empty.meta().digest, Digest::EMPTY);
}

/// Until commit returns, a version cannot be opened or listed, even after a sync point.
pub fn partial_version_is_invisible_until_commit<S: VolumeStore>(store: &S) {
    let v = volser("PV0001");
    let mut writer = store.begin(v, 1, None).expect("begin");
    writer.write(&pattern(1000, 1)).expect("write");
    assert_eq!(writer.sync().expect("sync"), 1000);
    assert!(
        matches!(store.open(v, 1), Err(TvcError::NotFound { .. })),
        "open before commit"
    );
    assert_eq!(store.versions().expect("versions"), []);
    writer.commit().expect("commit");
    assert_eq!(store.versions().expect("versions"), [(v, 1)]);
    assert_eq!(read_all(store, v, 1).expect("read"), pattern(1000, 1));
}

/// Aborting (or dropping) a writer of the same or the next version leaves the committed
/// version's bytes and space as they were.
pub fn abort_leaves_previous_version_intact<S: VolumeStore>(store: &S) {
    let v = volser("AB0001");
    let data = pattern(CHUNK_SIZE + 10, 1);
    write_version(store, v, 1, &data);
    let before = store.usage();

    let mut same = store.begin(v, 1, None).expect("begin rewrite");
    same.write(&pattern(500, 2)).expect("write");
    same.sync().expect("sync");
    same.abort();

    let mut next = store.begin(v, 2, Some(1)).expect("begin append");
    next.write(&pattern(CHUNK_SIZE, 3)).expect("write");
    next.abort();

    let mut dropped = store.begin(v, 2, None).expect("begin");
    dropped.write(&pattern(10, 4)).expect("write");
    drop(dropped);

    assert_eq!(read_all(store, v, 1).expect("read"), data);
    assert_eq!(store.versions().expect("versions"), [(v, 1)]);
    assert_eq!(
        store.usage(),
        before,
        "aborted writers give back their space"
    );
}

/// An append mount starts from the base version's bytes; the base is unchanged.
pub fn append_starts_from_base_bytes<S: VolumeStore>(store: &S) {
    let v = volser("AP0001");
    let base = pattern(CHUNK_SIZE + 5, 1);
    write_version(store, v, 1, &base);

    let mut writer = store.begin(v, 2, Some(1)).expect("begin append");
    assert_eq!(writer.bytes_written(), base.len() as u64);
    let more = pattern(2 * CHUNK_SIZE - 3, 2);
    for piece in more.chunks(65_537) {
        writer.write(piece).expect("write");
    }
    let meta = writer.commit().expect("commit");

    let whole = [base.as_slice(), more.as_slice()].concat();
    assert_eq!(meta.size, whole.len() as u64);
    assert_eq!(meta.digest, Digest(*blake3::hash(&whole).as_bytes()));
    assert_eq!(read_all(store, v, 2).expect("read appended"), whole);
    assert_eq!(read_all(store, v, 1).expect("read base"), base);

    write_version(store, v, 3, &[]);
    let from_empty = store.begin(v, 4, Some(3)).expect("append to empty");
    assert_eq!(from_empty.bytes_written(), 0);
}

/// A write past the quota fails with `StorageFull` and changes nothing: the writer can still
/// write what fits and abort, and usage returns to what it was. Needs a store with a quota.
pub fn quota_rejects_write_with_storage_full<S: VolumeStore>(store: &S) {
    let quota = store
        .usage()
        .quota_bytes
        .expect("this case needs a store with a quota");
    let v = volser("QU0001");
    write_version(store, v, 1, &pattern(1000, 1));
    let committed = store.usage();
    assert_eq!(committed.used_bytes, stored_len(1000));

    let mut writer = store.begin(v, 2, None).expect("begin");
    writer
        .write(&pattern(CHUNK_SIZE, 2))
        .expect("write within quota");
    let before = store.usage();
    match writer.write(&pattern(2 * CHUNK_SIZE, 3)) {
        Err(TvcError::StorageFull {
            volser: full,
            needed,
            available,
        }) => {
            assert_eq!(full, v);
            assert_eq!(available, quota - before.used_bytes);
            assert!(needed > available, "needed {needed} available {available}");
        }
        other => panic!("expected StorageFull, got {other:?}"),
    }
    assert_eq!(store.usage(), before, "a refused write takes no space");
    assert_eq!(writer.bytes_written(), CHUNK_SIZE as u64);
    writer
        .write(&pattern(10, 4))
        .expect("a write that fits still works");
    writer.abort();
    assert_eq!(store.usage(), committed);
    assert_eq!(read_all(store, v, 1).expect("read"), pattern(1000, 1));
}

/// Usage is the stored length of each committed version plus what writers in flight hold;
/// recommitting a version replaces its bytes rather than adding to them.
pub fn usage_counts_committed_bytes<S: VolumeStore>(store: &S) {
    assert_eq!(store.usage().used_bytes, 0);
    let (a, b) = (volser("US0001"), volser("US0002"));
    write_version(store, a, 1, &pattern(100, 1));
    write_version(store, b, 1, &pattern(CHUNK_SIZE + 1, 2));
    let committed = stored_len(100) + stored_len(CHUNK_SIZE as u64 + 1);
    assert_eq!(store.usage().used_bytes, committed);

    let mut writer = store.begin(a, 2, None).expect("begin");
    writer.write(&pattern(5000, 3)).expect("write");
    assert_eq!(
        store.usage().used_bytes,
        committed + stored_len(5000),
        "in flight counts"
    );
    writer.commit().expect("commit");
    assert_eq!(store.usage().used_bytes, committed + stored_len(5000));

    write_version(store, a, 1, &pattern(10, 4));
    let now = committed - stored_len(100) + stored_len(10) + stored_len(5000);
    assert_eq!(store.usage().used_bytes, now, "recommit replaces");
    assert_eq!(read_all(store, a, 1).expect("read"), pattern(10, 4));
}

/// Removing a version frees its stored length; removing a missing one is not an error.
pub fn remove_frees_space<S: VolumeStore>(store: &S) {
    let v = volser("RM0001");
    write_version(store, v, 1, &pattern(CHUNK_SIZE + 7, 1));
    write_version(store, v, 2, &pattern(300, 2));
    let before = store.usage().used_bytes;
    store.remove(v, 1).expect("remove");
    assert_eq!(
        store.usage().used_bytes,
        before - stored_len(CHUNK_SIZE as u64 + 7)
    );
    assert!(matches!(store.open(v, 1), Err(TvcError::NotFound { .. })));
    assert_eq!(store.versions().expect("versions"), [(v, 2)]);
    store
        .remove(v, 1)
        .expect("removing a missing version is fine");
    store
        .remove(volser("RM0009"), 5)
        .expect("removing an unknown volume is fine");
    assert_eq!(read_all(store, v, 2).expect("read"), pattern(300, 2));
}

/// Opening (or appending to) a version the store does not hold is `NotFound` naming it.
pub fn open_missing_is_not_found<S: VolumeStore>(store: &S) {
    let v = volser("NF0001");
    match store.open(v, 1) {
        Err(TvcError::NotFound {
            volser: got,
            version: 1,
        }) => assert_eq!(got, v),
        Err(other) => panic!("expected NotFound, got {other:?}"),
        Ok(_) => panic!("expected NotFound, got a reader"),
    }
    write_version(store, v, 1, b"x");
    assert!(matches!(
        store.open(v, 2),
        Err(TvcError::NotFound { version: 2, .. })
    ));
    assert!(matches!(
        store.begin(v, 3, Some(2)),
        Err(TvcError::NotFound { version: 2, .. })
    ));
    assert_eq!(
        store.usage().used_bytes,
        stored_len(1),
        "a failed begin holds no space"
    );
}

/// `versions` lists committed versions only, sorted, whatever the commit order.
pub fn versions_lists_committed_only<S: VolumeStore>(store: &S) {
    let (a, b, c) = (volser("VL0001"), volser("VL0002"), volser("VL0003"));
    for (v, version) in [(b, 1), (a, 3), (a, 1), (a, 2)] {
        write_version(store, v, version, &pattern(10, version));
    }
    let mut open = store.begin(c, 1, None).expect("begin");
    open.write(b"in flight").expect("write");
    open.sync().expect("sync");
    let aborted = store.begin(a, 4, None).expect("begin");
    aborted.abort();
    assert_eq!(
        store.versions().expect("versions"),
        [(a, 1), (a, 2), (a, 3), (b, 1)]
    );
    open.commit().expect("commit");
    assert_eq!(
        store.versions().expect("versions"),
        [(a, 1), (a, 2), (a, 3), (b, 1), (c, 1)]
    );
}

/// Quarantining moves a committed version out of the cache into its own area, atomically and at
/// no cost in space; moving it again is a no-op, and a version in neither place is `NotFound`.
pub fn quarantine_moves_a_version_into_its_own_area<S: VolumeStore>(store: &S) {
    let v = volser("QA0001");
    write_version(store, v, 1, &pattern(100, 1));
    let data = pattern(CHUNK_SIZE + 9, 2);
    let meta = write_version(store, v, 2, &data);
    let before = store.usage();
    store.quarantine(v, 2, meta.digest).expect("quarantine");
    assert_eq!(store.versions().expect("versions"), [(v, 1)]);
    assert!(matches!(store.open(v, 2), Err(TvcError::NotFound { .. })));
    assert_eq!(
        store.quarantined().expect("quarantined"),
        [QuarantinedVersion {
            volser: v,
            version: 2,
            digest: meta.digest
        }]
    );
    assert_eq!(store.usage(), before, "a move takes no space");
    let mut reader = store
        .open_quarantined(v, 2, meta.digest)
        .expect("open quarantined");
    assert_eq!(reader.meta(), &meta);
    let mut read = Vec::new();
    while let Some(chunk) = reader.next_chunk().expect("chunk") {
        read.extend_from_slice(&chunk);
    }
    assert_eq!(read, data);
    store
        .quarantine(v, 2, meta.digest)
        .expect("quarantining again is a no-op");
    assert!(matches!(
        store.quarantine(v, 3, meta.digest),
        Err(TvcError::NotFound { version: 3, .. })
    ));
}

/// Once quarantined, a version is untouched by a later write, a recommit or a `remove` of the
/// same number: those act on the cache only.
pub fn quarantined_version_survives_writes_of_its_number<S: VolumeStore>(store: &S) {
    let v = volser("QW0001");
    let ours = pattern(5000, 1);
    let meta = write_version(store, v, 2, &ours);
    store.quarantine(v, 2, meta.digest).expect("quarantine");
    let theirs = pattern(7000, 2);
    let copy = write_version(store, v, 2, &theirs);
    assert_ne!(copy.digest, meta.digest);
    write_version(store, v, 2, &pattern(10, 3));
    store.remove(v, 2).expect("remove the cache's v2");
    write_version(store, v, 2, &theirs);
    assert_eq!(read_all(store, v, 2).expect("cache"), theirs);
    let mut reader = store.open_quarantined(v, 2, meta.digest).expect("open");
    let mut read = Vec::new();
    while let Some(chunk) = reader.next_chunk().expect("chunk") {
        read.extend_from_slice(&chunk);
    }
    assert_eq!(read, ours, "the quarantined bytes are the ones quarantined");
    assert!(
        matches!(
            store.quarantine(v, 2, meta.digest),
            Ok(()) | Err(TvcError::DigestMismatch { .. })
        ),
        "a second version 2 with other bytes is never moved over the quarantined one"
    );
    assert_eq!(read_all(store, v, 2).expect("cache"), theirs);
}

/// The digest is part of the identity: quarantining a version whose trailer records another
/// digest moves nothing (`DigestMismatch`), and a quarantined version is found only under the
/// digest it was quarantined with.
pub fn quarantine_checks_the_recorded_digest<S: VolumeStore>(store: &S) {
    let v = volser("QD0001");
    let meta = write_version(store, v, 1, &pattern(300, 1));
    let other = Digest([7; 32]);
    assert!(matches!(
        store.quarantine(v, 1, other),
        Err(TvcError::DigestMismatch { version: 1, .. })
    ));
    assert_eq!(
        store.versions().expect("versions"),
        [(v, 1)],
        "nothing moved"
    );
    assert_eq!(store.quarantined().expect("quarantined"), []);
    store.quarantine(v, 1, meta.digest).expect("quarantine");
    assert!(matches!(
        store.open_quarantined(v, 1, other),
        Err(TvcError::NotFound { .. })
    ));
    assert!(store.open_quarantined(v, 1, meta.digest).is_ok());
}

/// Removing a quarantined version frees its space; removing a missing one is not an error.
pub fn remove_quarantined_frees_space<S: VolumeStore>(store: &S) {
    let v = volser("QR0001");
    let meta = write_version(store, v, 4, &pattern(CHUNK_SIZE + 1, 1));
    store.quarantine(v, 4, meta.digest).expect("quarantine");
    assert_eq!(store.usage().used_bytes, stored_len(CHUNK_SIZE as u64 + 1));
    store
        .remove_quarantined(v, 4, meta.digest)
        .expect("remove quarantined");
    assert_eq!(store.usage().used_bytes, 0);
    assert_eq!(store.quarantined().expect("quarantined"), []);
    store
        .remove_quarantined(v, 4, meta.digest)
        .expect("removing a missing one is fine");
}

fn prefix_meta(v: Volser, version: VersionNumber, data: &[u8]) -> VersionMeta {
    VersionMeta {
        volser: v,
        version,
        size: data.len() as u64,
        digest: Digest(*blake3::hash(data).as_bytes()),
    }
}

/// Sequence: begin an append of v2 on committed v1 → write past a chunk boundary → set a note →
/// sync → write more, filling the chunk the sync left short and starting another → crash →
/// the store holds v1 and a synced prefix of v2 that is exactly base + bytes up to the sync
/// point, with its note; it counts as space; promoted, it reads back byte for byte and verifies.
pub fn synced_prefix_survives_a_crash_cut_to_its_sync_point<S: Reopen>(store: &S) {
    let v = volser("SY0001");
    let base = pattern(1000, 1);
    write_version(store, v, 1, &base);
    let mut writer = store.begin(v, 2, Some(1)).expect("begin");
    let synced = pattern(CHUNK_SIZE + 4093, 2);
    writer.write(&synced).expect("write");
    writer.set_note(b"note at the sync point".to_vec());
    assert_eq!(
        writer.sync().expect("sync"),
        (base.len() + synced.len()) as u64
    );
    writer
        .write(&pattern(CHUNK_SIZE + 7, 3))
        .expect("write after the sync point");
    let store = store.crash_reopen();
    drop(writer);

    let prefix: Vec<u8> = [base.as_slice(), synced.as_slice()].concat();
    let expected = SyncedPrefix {
        meta: prefix_meta(v, 2, &prefix),
        note: b"note at the sync point".to_vec(),
    };
    assert_eq!(
        store.synced().expect("synced"),
        std::slice::from_ref(&expected)
    );
    assert_eq!(
        store.versions().expect("versions"),
        [(v, 1)],
        "not a version yet"
    );
    let used = stored_len(base.len() as u64) + stored_len(prefix.len() as u64);
    assert_eq!(store.usage().used_bytes, used);
    assert_eq!(store.usage().in_flight_bytes, 0);

    let meta = store.promote_synced(v, 2).expect("promote");
    assert_eq!(meta, expected.meta);
    assert_eq!(
        read_all(&store, v, 2).expect("read the promoted prefix"),
        prefix
    );
    assert_eq!(store.synced().expect("synced"), []);
    assert_eq!(store.versions().expect("versions"), [(v, 1), (v, 2)]);
    assert_eq!(
        store.usage().used_bytes,
        used,
        "promoting moves bytes, adds none"
    );
    assert!(matches!(
        store.promote_synced(v, 2),
        Err(TvcError::NotFound { .. })
    ));
}

/// Sequence: a writer with no sync point, a writer synced then aborted, and a writer synced then
/// committed → crash → only the committed version, and beside it the committed writer's prefix
/// up to its sync point (T17: kept until the whole version is published, so a crash before the
/// job's journal entry loses nothing the host was told is durable), and no space but theirs →
/// `remove_synced` frees the prefix's.
pub fn unsynced_partial_is_lost_on_crash<S: Reopen>(store: &S) {
    let v = volser("SY0002");
    let mut unsynced = store.begin(v, 1, None).expect("begin");
    unsynced.write(&pattern(5000, 4)).expect("write");
    let mut aborted = store.begin(v, 2, None).expect("begin");
    aborted.write(&pattern(6000, 5)).expect("write");
    aborted.sync().expect("sync");
    aborted.abort();
    let mut committed = store.begin(v, 3, None).expect("begin");
    committed.write(&pattern(7000, 6)).expect("write");
    committed.sync().expect("sync");
    committed.write(b"tail").expect("write");
    let meta = committed.commit().expect("commit");
    let store = store.crash_reopen();
    drop(unsynced);

    let synced = store.synced().expect("synced");
    assert_eq!(synced.len(), 1, "{synced:?}");
    assert_eq!((synced[0].meta.volser, synced[0].meta.version), (v, 3));
    assert_eq!(synced[0].meta.size, 7000, "the prefix up to the sync point");
    assert_eq!(
        synced[0].meta.digest,
        Digest(*blake3::hash(&pattern(7000, 6)).as_bytes())
    );
    assert_eq!(store.versions().expect("versions"), [(v, 3)]);
    assert_eq!(meta.size, 7004);
    assert_eq!(
        store.usage().used_bytes,
        stored_len(7004) + stored_len(7000)
    );
    store.remove_synced(v, 3).expect("remove the prefix");
    assert_eq!(store.synced().expect("synced"), []);
    assert_eq!(store.usage().used_bytes, stored_len(7004));
    assert_eq!(
        read_all(&store, v, 3).expect("read"),
        [pattern(7000, 6), b"tail".to_vec()].concat()
    );
}

/// Sequence: write, sync, write, sync, write → `keep_synced` (the job abended, no crash) → the
/// prefix up to the second sync point is kept and counted, the bytes after it are not; a
/// writer with no sync point keeps nothing; `remove_synced` frees the space.
pub fn keep_synced_keeps_the_prefix_without_a_crash<S: Reopen>(store: &S) {
    let v = volser("SY0003");
    let (a, b) = (pattern(3000, 7), pattern(2 * CHUNK_SIZE, 8));
    let mut writer = store.begin(v, 4, None).expect("begin");
    writer.write(&a).expect("write");
    writer.sync().expect("sync");
    writer.write(&b).expect("write");
    writer.sync().expect("sync");
    writer.write(b"never synced").expect("write");
    let kept = writer
        .keep_synced()
        .expect("keep")
        .expect("there was a sync point");
    let prefix: Vec<u8> = [a.as_slice(), b.as_slice()].concat();
    assert_eq!(kept, prefix_meta(v, 4, &prefix));
    assert_eq!(store.synced().expect("synced")[0].meta, kept);
    assert_eq!(store.usage().used_bytes, stored_len(prefix.len() as u64));
    assert_eq!(store.usage().in_flight_bytes, 0);

    let mut none = store.begin(v, 5, None).expect("begin");
    none.write(b"no sync point").expect("write");
    assert_eq!(none.keep_synced().expect("keep"), None);
    assert_eq!(store.synced().expect("synced").len(), 1);

    let store = store.crash_reopen();
    assert_eq!(
        store.synced().expect("synced")[0].meta,
        kept,
        "kept durably"
    );
    store.remove_synced(v, 4).expect("remove");
    assert_eq!(store.synced().expect("synced"), []);
    assert_eq!(store.usage().used_bytes, 0);
    store
        .remove_synced(v, 4)
        .expect("removing a missing one is fine");
}

/// A writer dropped without `abort` (what a simulated crash does to the crashed host's tasks)
/// leaves its sync point for the next crash or open, like a power cut; one with no sync point
/// leaves nothing. Its space is not counted until then.
pub fn dropped_synced_writer_leaves_its_prefix_to_the_next_crash<S: Reopen>(store: &S) {
    let v = volser("SY0005");
    let mut synced = store.begin(v, 1, None).expect("begin");
    synced.write(&pattern(2500, 9)).expect("write");
    synced.sync().expect("sync");
    synced.write(b"after").expect("write");
    drop(synced);
    let mut unsynced = store.begin(v, 2, None).expect("begin");
    unsynced.write(b"no sync point").expect("write");
    drop(unsynced);
    assert_eq!(store.usage().in_flight_bytes, 0);
    let store = store.crash_reopen();
    let prefixes = store.synced().expect("synced");
    assert_eq!(prefixes.len(), 1);
    assert_eq!(prefixes[0].meta, prefix_meta(v, 1, &pattern(2500, 9)));
    assert_eq!(store.usage().used_bytes, stored_len(2500));
}

/// A synced prefix of a number that is committed already (a stale one) replaces that version
/// only when promoted, and a later prefix of the same number replaces an earlier one.
pub fn promoted_prefix_replaces_nothing_but_its_number<S: Reopen>(store: &S) {
    let v = volser("SY0004");
    write_version(store, v, 1, b"committed one");
    for data in [&b"first prefix"[..], &b"second, longer prefix"[..]] {
        let mut writer = store.begin(v, 1, None).expect("begin");
        writer.write(data).expect("write");
        writer.sync().expect("sync");
        writer.keep_synced().expect("keep").expect("synced");
    }
    assert_eq!(read_all(store, v, 1).expect("read"), b"committed one");
    let prefixes = store.synced().expect("synced");
    assert_eq!(prefixes.len(), 1);
    assert_eq!(
        prefixes[0].meta,
        prefix_meta(v, 1, b"second, longer prefix")
    );
    assert_eq!(
        store.usage().used_bytes,
        stored_len(13) + stored_len(21),
        "the replaced prefix stops counting"
    );
    store.promote_synced(v, 1).expect("promote");
    assert_eq!(
        read_all(store, v, 1).expect("read"),
        b"second, longer prefix"
    );
    assert_eq!(store.usage().used_bytes, stored_len(21));
}

/// One `#[test]` per suite case, for a store built by `$make: Fn(Option<u64>) -> (G, S)`, plus a
/// check that no case is missing from the list.
#[cfg(test)]
macro_rules! suite_tests {
    ($make:expr) => {
        suite_tests!(@cases $make;
            write_commit_read_roundtrip,
            digest_is_blake3_of_bytes,
            partial_version_is_invisible_until_commit,
            abort_leaves_previous_version_intact,
            append_starts_from_base_bytes,
            quota_rejects_write_with_storage_full,
            usage_counts_committed_bytes,
            remove_frees_space,
            open_missing_is_not_found,
            versions_lists_committed_only,
            quarantine_moves_a_version_into_its_own_area,
            quarantined_version_survives_writes_of_its_number,
            quarantine_checks_the_recorded_digest,
            remove_quarantined_frees_space,
            synced_prefix_survives_a_crash_cut_to_its_sync_point,
            unsynced_partial_is_lost_on_crash,
            keep_synced_keeps_the_prefix_without_a_crash,
            dropped_synced_writer_leaves_its_prefix_to_the_next_crash,
            promoted_prefix_replaces_nothing_but_its_number,
        );
    };
    (@cases $make:expr; $($case:ident,)*) => {
        mod suite {
            #[allow(unused_imports)]
            use super::*;
            $(
                #[test]
                fn $case() {
                    $crate::testing::run_case($make, stringify!($case));
                }
            )*

            #[test]
            fn every_suite_case_has_a_test() {
                fn names<S: $crate::testing::Reopen, G>(_: impl Fn(Option<u64>) -> (G, S)) -> Vec<&'static str> {
                    $crate::testing::cases::<S>().into_iter().map(|(n, _, _)| n).collect()
                }
                assert_eq!(names($make), [$(stringify!($case)),*]);
            }
        }
    };
}
