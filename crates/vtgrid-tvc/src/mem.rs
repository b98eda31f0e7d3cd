//! [`MemVolumeStore`]: the volume store in memory, for turmoil simulations (STYLE, Traits at the
//! I/O seams).
//!
//! Each committed version is kept as the exact bytes the file store would write (see
//! [`crate::format`]), so chunk CRCs, the trailer digest and every corruption check behave the
//! same, and [`MemVolumeStore::corrupt_byte`] lets tests damage a version.
//!
//! [`MemVolumeStore::crash`] stands for a node losing power: committed versions survive (commit
//! means durable), every version being written is lost, as the file store's restart deletes
//! `.partial/`. A writer started before the crash fails every later call with
//! [`TvcError::Crashed`]; the store's space generation tells it so. A writer's bytes up to its
//! last sync point survive, as in the file store: each sync keeps a snapshot of the framed prefix
//! (what the file store's reopen cuts the partial file back to), and `crash()` turns every
//! snapshot into a synced prefix.

use std::collections::BTreeMap;
use std::io::Cursor;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use bytes::Bytes;
use vtgrid_core::{Digest, VersionNumber, Volser};

use crate::error::TvcError;
use crate::format::{
    close_prefix, data_offset, stored_len, FrameReader, FrameWriter, FramedVersionReader,
    SyncMarker, Target, TRAILER_LEN,
};
use crate::space::{Reservation, Space};
use crate::store::{
    copy_base, QuarantinedVersion, SpaceUsage, SyncedPrefix, VersionMeta, VersionReader,
    VersionWriter, VolumeStore,
};

/// An in-memory volume store. Clones share the same versions, so a simulation keeps a handle
/// across [`MemVolumeStore::crash`].
#[derive(Clone)]
pub struct MemVolumeStore {
    inner: Arc<MemInner>,
}

struct MemInner {
    /// Committed versions in their stored (framed) form. A `BTreeMap` so `versions()` comes out
    /// sorted and deterministic.
    versions: Mutex<BTreeMap<(Volser, VersionNumber), Bytes>>,
    /// Quarantined versions under their own identity, in stored form (lock after `versions`).
    quarantine: Mutex<QuarantineMap>,
    /// Committed plus in-flight bytes; its generation counts crashes.
    space: Arc<Space>,
    /// Synced prefixes: stored form and note (lock after `quarantine`).
    synced: Mutex<SyncedMap>,
    /// Each live writer's last sync point, by writer id: what a crash keeps (lock after `synced`).
    sync_points: Mutex<BTreeMap<u64, SyncPoint>>,
    next_writer: AtomicU64,
    /// The disk faults a test put in force (see [`crate::faults`]).
    faults: crate::faults::FaultPlan,
}

type SyncedMap = BTreeMap<(Volser, VersionNumber), (Bytes, Vec<u8>)>;

/// A writer's prefix at its last sync point, framed as a version.
struct SyncPoint {
    volser: Volser,
    version: VersionNumber,
    stored: Bytes,
    note: Vec<u8>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Each change is a single insert or remove: a panic elsewhere cannot leave it half-changed.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn target(volser: Volser, version: VersionNumber) -> Target {
    Target {
        volser,
        version,
        path: mem_path(volser, version),
    }
}

/// Quarantined versions by identity (VOLSER, version, digest bytes), in stored form.
type QuarantineMap = BTreeMap<(Volser, VersionNumber, [u8; 32]), Bytes>;

/// The name errors use for a version held in memory.
fn mem_path(volser: Volser, version: VersionNumber) -> PathBuf {
    PathBuf::from(format!("mem:{volser}/{version:020}.vol"))
}

impl MemVolumeStore {
    /// An empty store with an optional quota.
    pub fn new(quota_bytes: Option<u64>) -> Self {
        MemVolumeStore {
            inner: Arc::new(MemInner {
                versions: Mutex::new(BTreeMap::new()),
                quarantine: Mutex::new(BTreeMap::new()),
                space: Space::new(quota_bytes, 0),
                synced: Mutex::new(BTreeMap::new()),
                sync_points: Mutex::new(BTreeMap::new()),
                next_writer: AtomicU64::new(0),
                faults: Default::default(),
            }),
        }
    }

    fn versions_map(&self) -> MutexGuard<'_, BTreeMap<(Volser, VersionNumber), Bytes>> {
        // Each change to the map is a single insert or remove: a panic elsewhere cannot leave it
        // half-changed.
        self.inner
            .versions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn quarantine_map(&self) -> MutexGuard<'_, QuarantineMap> {
        self.inner
            .quarantine
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The disk faults in force on this store (see [`crate::faults`]).
    pub(crate) fn fault_plan(&self) -> &crate::faults::FaultPlan {
        &self.inner.faults
    }

    /// Simulate a crash and restart: committed versions stay, every version in flight is lost
    /// with its space but for its bytes up to its last sync point, which become a synced
    /// prefix, and writers begun before now can no longer write or commit.
    pub fn crash(&self) {
        let mut synced = lock(&self.inner.synced);
        let mut points = lock(&self.inner.sync_points);
        let mut kept = 0u64;
        for (_, p) in std::mem::take(&mut *points) {
            kept += p.stored.len() as u64;
            if let Some((old, _)) = synced.insert((p.volser, p.version), (p.stored, p.note)) {
                kept -= old.len() as u64;
            }
        }
        self.inner.space.crash(kept);
    }

    /// Keep a writer's last sync point as the synced prefix of its version, its bytes counted
    /// on `reservation` (the one it replaces stops counting).
    fn keep_prefix(&self, reservation: Reservation, p: SyncPoint) -> Result<(), TvcError> {
        let mut synced = lock(&self.inner.synced);
        let len = p.stored.len() as u64;
        reservation.commit_as(len, || {
            Ok(synced
                .insert((p.volser, p.version), (p.stored, p.note))
                .map_or(0, |(b, _)| b.len() as u64))
        })
    }

    /// Flip every bit of data byte `offset` of a synced prefix (for tests).
    ///
    /// # Panics
    /// If `offset` is not below the prefix's size.
    pub fn corrupt_synced_byte(
        &self,
        volser: Volser,
        version: VersionNumber,
        offset: u64,
    ) -> Result<(), TvcError> {
        let mut synced = lock(&self.inner.synced);
        let (stored, _) = synced
            .get_mut(&(volser, version))
            .ok_or(TvcError::NotFound { volser, version })?;
        let at = data_offset(offset);
        assert!(
            at < stored.len() as u64 - TRAILER_LEN,
            "offset {offset} is past the data"
        );
        let mut bytes = stored.to_vec();
        bytes[at as usize] ^= 0xff;
        *stored = Bytes::from(bytes);
        Ok(())
    }

    /// Flip every bit of data byte `offset` of a committed version, as a disk error would (for
    /// tests). Readers opened before keep the old bytes.
    ///
    /// # Panics
    /// If `offset` is not below the version's size.
    pub fn corrupt_byte(
        &self,
        volser: Volser,
        version: VersionNumber,
        offset: u64,
    ) -> Result<(), TvcError> {
        let mut map = self.versions_map();
        let stored = map
            .get_mut(&(volser, version))
            .ok_or(TvcError::NotFound { volser, version })?;
        let at = data_offset(offset);
        assert!(
            at < stored.len() as u64 - TRAILER_LEN,
            "offset {offset} is past the data of {volser} {version}"
        );
        let mut bytes = stored.to_vec();
        bytes[at as usize] ^= 0xff;
        *stored = Bytes::from(bytes);
        Ok(())
    }
}

impl Default for MemVolumeStore {
    fn default() -> Self {
        MemVolumeStore::new(None)
    }
}

impl VolumeStore for MemVolumeStore {
    fn begin(
        &self,
        volser: Volser,
        version: VersionNumber,
        base: Option<VersionNumber>,
    ) -> Result<Box<dyn VersionWriter>, TvcError> {
        let reservation = self.inner.space.reserve(volser, version, stored_len(0))?;
        let target = Target {
            volser,
            version,
            path: mem_path(volser, version),
        };
        self.fault_plan().on_write(&target, stored_len(0))?;
        let mut writer = Box::new(MemVersionWriter {
            frames: FrameWriter::new(Cursor::new(Vec::new()), target)?,
            reservation,
            store: self.clone(),
            broken: false,
            note: Vec::new(),
            point: SyncPointSlot {
                store: self.clone(),
                id: self.inner.next_writer.fetch_add(1, Ordering::Relaxed),
            },
        });
        if let Some(base) = base {
            copy_base(self.open(volser, base)?.as_mut(), writer.as_mut())?;
        }
        Ok(writer)
    }

    fn open(
        &self,
        volser: Volser,
        version: VersionNumber,
    ) -> Result<Box<dyn VersionReader>, TvcError> {
        let stored = self.versions_map().get(&(volser, version)).cloned();
        let stored = stored.ok_or(TvcError::NotFound { volser, version })?;
        let target = Target {
            volser,
            version,
            path: mem_path(volser, version),
        };
        Ok(Box::new(FramedVersionReader(FrameReader::open(
            Cursor::new(stored),
            target,
        )?)))
    }

    fn remove(&self, volser: Volser, version: VersionNumber) -> Result<(), TvcError> {
        let mut map = self.versions_map();
        self.inner
            .space
            .remove(|| Ok(map.remove(&(volser, version)).map_or(0, |b| b.len() as u64)))
    }

    fn versions(&self) -> Result<Vec<(Volser, VersionNumber)>, TvcError> {
        Ok(self.versions_map().keys().copied().collect())
    }

    fn usage(&self) -> SpaceUsage {
        self.inner.space.usage()
    }

    fn quarantine(
        &self,
        volser: Volser,
        version: VersionNumber,
        digest: Digest,
    ) -> Result<(), TvcError> {
        let mut map = self.versions_map();
        let mut quarantine = self.quarantine_map();
        let key = (volser, version, digest.0);
        let Some(stored) = map.get(&(volser, version)).cloned() else {
            return if quarantine.contains_key(&key) {
                Ok(())
            } else {
                Err(TvcError::NotFound { volser, version })
            };
        };
        let reader = FrameReader::open(Cursor::new(stored.clone()), target(volser, version))?;
        if reader.meta().digest != digest {
            return Err(TvcError::DigestMismatch { volser, version });
        }
        map.remove(&(volser, version));
        quarantine.insert(key, stored);
        Ok(())
    }

    fn open_quarantined(
        &self,
        volser: Volser,
        version: VersionNumber,
        digest: Digest,
    ) -> Result<Box<dyn VersionReader>, TvcError> {
        let stored = self
            .quarantine_map()
            .get(&(volser, version, digest.0))
            .cloned();
        let stored = stored.ok_or(TvcError::NotFound { volser, version })?;
        let frames = FrameReader::open(Cursor::new(stored), target(volser, version))?;
        if frames.meta().digest != digest {
            return Err(TvcError::DigestMismatch { volser, version });
        }
        Ok(Box::new(FramedVersionReader(frames)))
    }

    fn remove_quarantined(
        &self,
        volser: Volser,
        version: VersionNumber,
        digest: Digest,
    ) -> Result<(), TvcError> {
        let mut quarantine = self.quarantine_map();
        self.inner.space.remove(|| {
            Ok(quarantine
                .remove(&(volser, version, digest.0))
                .map_or(0, |b| b.len() as u64))
        })
    }

    fn quarantined(&self) -> Result<Vec<QuarantinedVersion>, TvcError> {
        Ok(self
            .quarantine_map()
            .keys()
            .map(|(volser, version, digest)| QuarantinedVersion {
                volser: *volser,
                version: *version,
                digest: Digest(*digest),
            })
            .collect())
    }

    fn synced(&self) -> Result<Vec<SyncedPrefix>, TvcError> {
        let synced = lock(&self.inner.synced);
        let mut out = Vec::new();
        for ((volser, version), (stored, note)) in synced.iter() {
            // A prefix is framed when it is kept, so its framing is sound.
            if let Ok(r) = FrameReader::open(Cursor::new(stored.clone()), target(*volser, *version))
            {
                out.push(SyncedPrefix {
                    meta: r.meta().clone(),
                    note: note.clone(),
                });
            }
        }
        Ok(out)
    }

    fn promote_synced(
        &self,
        volser: Volser,
        version: VersionNumber,
    ) -> Result<VersionMeta, TvcError> {
        let stored = lock(&self.inner.synced)
            .get(&(volser, version))
            .map(|(s, _)| s.clone())
            .ok_or(TvcError::NotFound { volser, version })?;
        let mut reader = FrameReader::open(Cursor::new(stored.clone()), target(volser, version))?;
        while reader.next_chunk()?.is_some() {}
        let meta = reader.meta().clone();
        let mut map = self.versions_map();
        let mut synced = lock(&self.inner.synced);
        self.inner.space.remove(|| {
            synced.remove(&(volser, version));
            Ok(map
                .insert((volser, version), stored)
                .map_or(0, |b| b.len() as u64))
        })?;
        Ok(meta)
    }

    fn remove_synced(&self, volser: Volser, version: VersionNumber) -> Result<(), TvcError> {
        let mut synced = lock(&self.inner.synced);
        self.inner.space.remove(|| {
            Ok(synced
                .remove(&(volser, version))
                .map_or(0, |(b, _)| b.len() as u64))
        })
    }

    fn is_blocking(&self) -> bool {
        false
    }

    fn fsync_delay(&self) -> Option<std::time::Duration> {
        self.fault_plan().fsync_delay()
    }
}

/// A writer's entry in the store's sync points; removed when the writer commits, aborts or
/// keeps its prefix. A writer merely dropped leaves it to the next `crash()`, as the file store
/// leaves a synced partial file to its next open: a simulated crash drops the crashed host's
/// writers (turmoil runs their destructors), which a power cut would not.
struct SyncPointSlot {
    store: MemVolumeStore,
    id: u64,
}

impl SyncPointSlot {
    fn take(&self) -> Option<SyncPoint> {
        lock(&self.store.inner.sync_points).remove(&self.id)
    }
}

/// Writes one version into a buffer; `commit` moves it into the store's map.
struct MemVersionWriter {
    frames: FrameWriter<Cursor<Vec<u8>>>,
    /// Space held; also tells whether a crash came since `begin`.
    reservation: Reservation,
    store: MemVolumeStore,
    /// A write or fsync failed (a disk fault, [`crate::faults`]): only abort is left, as in the
    /// file store.
    broken: bool,
    /// Kept with each sync point.
    note: Vec<u8>,
    /// This writer's last sync point in the store.
    point: SyncPointSlot,
}

impl MemVersionWriter {
    fn check_usable(&self) -> Result<(), TvcError> {
        let target = self.frames.target();
        if self.reservation.is_lost() {
            return Err(TvcError::Crashed {
                volser: target.volser,
                version: target.version,
            });
        }
        if self.broken {
            return Err(target.broken());
        }
        Ok(())
    }
}

impl VersionWriter for MemVersionWriter {
    fn write(&mut self, data: &[u8]) -> Result<(), TvcError> {
        self.check_usable()?;
        self.reservation
            .grow_to(stored_len(self.frames.written() + data.len() as u64))?;
        let result = self
            .store
            .fault_plan()
            .on_write(self.frames.target(), data.len() as u64)
            .and_then(|()| self.frames.write(data));
        self.broken = result.is_err();
        result
    }

    fn sync(&mut self) -> Result<u64, TvcError> {
        self.check_usable()?;
        // An fsync that fails leaves the writer unusable (its bytes are not known durable) and
        // records no sync point.
        let fsynced = self.store.fault_plan().on_fsync(self.frames.target());
        self.broken = fsynced.is_err();
        fsynced?;
        // The prefix as the file store's reopen would leave it: framed as a version of the
        // bytes so far (the store keeps it across a crash).
        self.frames.write_partial()?;
        let marker = SyncMarker {
            size: self.frames.written(),
            digest: self.frames.prefix_digest(),
            note: self.note.clone(),
        };
        let target = self.frames.target().clone();
        let mut prefix = Cursor::new(self.frames.sink_mut().get_ref().clone());
        let closed = close_prefix(&mut prefix, target.volser, target.version, &marker)
            .map_err(|e| target.io_error(crate::IoOp::Write, 0, e))?;
        let len = closed.expect("a prefix framed in memory matches its own digest");
        let mut stored = prefix.into_inner();
        stored.truncate(len as usize);
        lock(&self.store.inner.sync_points).insert(
            self.point.id,
            SyncPoint {
                volser: target.volser,
                version: target.version,
                stored: Bytes::from(stored),
                note: marker.note,
            },
        );
        Ok(self.frames.written())
    }

    fn set_note(&mut self, note: Vec<u8>) {
        self.note = note;
    }

    fn keep_synced(self: Box<Self>) -> Result<Option<VersionMeta>, TvcError> {
        self.check_usable()?;
        let MemVersionWriter {
            reservation,
            store,
            point,
            ..
        } = *self;
        let Some(p) = point.take() else {
            return Ok(None);
        };
        let meta = FrameReader::open(Cursor::new(p.stored.clone()), target(p.volser, p.version))?
            .meta()
            .clone();
        store.keep_prefix(reservation, p)?;
        Ok(Some(meta))
    }

    fn bytes_written(&self) -> u64 {
        self.frames.written()
    }

    fn commit(self: Box<Self>) -> Result<VersionMeta, TvcError> {
        self.check_usable()?;
        // The trailer's write and the fsync; a failure makes nothing visible.
        self.store.fault_plan().on_fsync(self.frames.target())?;
        let MemVersionWriter {
            frames,
            reservation,
            store,
            point,
            ..
        } = *self;
        let target = frames.target().clone();
        let (cursor, size, digest) = frames.finish()?;
        let stored = Bytes::from(cursor.into_inner());
        // As the file store: the bytes up to the last sync point stay as a synced prefix until
        // the whole version is published (T17: a crash before the job's journal entry).
        if let Some(p) = point.take() {
            let extra = reservation.alongside(p.stored.len() as u64)?;
            store.keep_prefix(extra, p)?;
        }
        let mut map = store.versions_map();
        // Fails with Crashed, inserting nothing, if a crash came after the check above.
        reservation.commit(|| {
            let replaced = map.insert((target.volser, target.version), stored);
            Ok(replaced.map_or(0, |b| b.len() as u64))
        })?;
        drop(map);
        Ok(VersionMeta {
            volser: target.volser,
            version: target.version,
            size,
            digest,
        })
    }

    fn abort(self: Box<Self>) {
        // Dropping the reservation gives back the space; the buffer goes with the writer.
        self.point.take();
        drop(self);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{pattern, read_all, write_version};
    use crate::CHUNK_SIZE;

    fn make(quota: Option<u64>) -> ((), MemVolumeStore) {
        ((), MemVolumeStore::new(quota))
    }

    suite_tests!(super::make);

    #[test]
    fn run_suite_passes() {
        crate::testing::run_suite(make);
    }

    fn v1() -> Volser {
        "A00001".parse().unwrap()
    }

    /// Sequence: commit v1 → begin v2 (append) and write, no sync point → crash → v1 is intact,
    /// v2 never existed, and the space v2 held is free.
    #[test]
    fn crash_loses_in_flight_keeps_committed() {
        let store = MemVolumeStore::new(None);
        let handle = store.clone();
        let data = pattern(CHUNK_SIZE + 1, 1);
        write_version(&store, v1(), 1, &data);
        let mut writer = store.begin(v1(), 2, Some(1)).unwrap();
        writer.write(&pattern(4000, 2)).unwrap();
        handle.crash();
        assert_eq!(store.versions().unwrap(), [(v1(), 1)]);
        assert_eq!(read_all(&store, v1(), 1).unwrap(), data);
        assert_eq!(store.usage().used_bytes, stored_len(data.len() as u64));
        drop(writer);
        assert_eq!(
            store.usage().used_bytes,
            stored_len(data.len() as u64),
            "no double give-back"
        );
    }

    #[test]
    fn writer_from_before_crash_cannot_commit() {
        let store = MemVolumeStore::new(None);
        let mut writer = store.begin(v1(), 1, None).unwrap();
        writer.write(b"before").unwrap();
        store.crash();
        assert!(matches!(
            writer.write(b"after"),
            Err(TvcError::Crashed { .. })
        ));
        assert!(matches!(writer.sync(), Err(TvcError::Crashed { .. })));
        assert!(matches!(
            writer.commit(),
            Err(TvcError::Crashed { version: 1, .. })
        ));
        assert_eq!(store.versions().unwrap(), []);

        let meta = write_version(&store, v1(), 1, b"after the crash");
        assert_eq!(meta.size, 15);
        assert_eq!(store.usage().used_bytes, stored_len(15));
    }

    #[test]
    fn corrupt_byte_is_chunk_corrupt() {
        let store = MemVolumeStore::new(None);
        let data = pattern(2 * CHUNK_SIZE + 5, 3);
        write_version(&store, v1(), 1, &data);
        store
            .corrupt_byte(v1(), 1, 2 * CHUNK_SIZE as u64 + 4)
            .unwrap();
        let mut reader = store.open(v1(), 1).unwrap();
        assert!(reader.next_chunk().unwrap().is_some());
        assert!(reader.next_chunk().unwrap().is_some());
        let err = reader.next_chunk().unwrap_err();
        assert!(
            matches!(err, TvcError::ChunkCorrupt { chunk: 2, .. }),
            "{err:?}"
        );
        assert!(err.is_corruption());
        assert!(matches!(
            store.corrupt_byte(v1(), 9, 0),
            Err(TvcError::NotFound { .. })
        ));
    }

    /// A synced prefix damaged in memory is not promoted: the promotion verifies it first and
    /// leaves it where it was.
    #[test]
    fn damaged_synced_prefix_is_not_promoted() {
        let store = MemVolumeStore::new(None);
        let mut writer = store.begin(v1(), 1, None).unwrap();
        writer.write(&pattern(CHUNK_SIZE + 9, 4)).unwrap();
        writer.sync().unwrap();
        store.crash();
        store.corrupt_synced_byte(v1(), 1, 3).unwrap();
        let err = store.promote_synced(v1(), 1).unwrap_err();
        assert!(err.is_corruption(), "{err:?}");
        assert_eq!(store.versions().unwrap(), []);
        assert_eq!(store.synced().unwrap().len(), 1);
    }

    #[test]
    fn mem_store_is_not_blocking() {
        assert!(!MemVolumeStore::default().is_blocking());
    }
}
