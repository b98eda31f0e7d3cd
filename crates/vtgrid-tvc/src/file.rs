//! [`FileVolumeStore`]: one file per committed version under `<data_dir>/tvc` (DESIGN §4), with
//! blocking `std::fs` calls; async callers run it in `spawn_blocking`.
//!
//! ```text
//!  <dir>/
//!    .partial/<VOLSER>-<version>-<pid>-<n>.part   versions being written; open() deletes them
//!    <VOLSER>/<version, 20 digits>.vol            committed versions (see crate::format)
//!    .quarantine/<VOLSER>-<version>-<digest>.vol  quarantined versions, under their own identity
//! ```
//!
//! Quarantining is one rename from `<VOLSER>/` into `.quarantine/` (then both directories are
//! fsynced): a crash leaves the version in exactly one of the two places.
//!
//! A version becomes visible only through a rename, and only after it is complete on disk:
//!
//! ```text
//!  begin ── create .partial/… ── write chunks ── (sync: fsync) ──┐
//!  commit ── trailer ── fsync file ── mkdir <VOLSER> (fsync it and <dir> if new)
//!         ── rename .partial/… → <VOLSER>/<version>.vol ── fsync <VOLSER>   ──► durable
//! ```
//!
//! A crash before the rename leaves only a partial file, which the next `open` deletes: a node
//! never serves, or counts as space, a version it did not finish. Partial files are therefore not
//! made durable themselves (no fsync of `.partial/`).

use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use vtgrid_core::{Digest, VersionNumber, Volser};

use crate::error::{IoOp, TvcError};
use crate::format::{stored_len, FrameReader, FrameWriter, FramedVersionReader, Target};
use crate::space::{Reservation, Space};
use crate::store::{
    copy_base, QuarantinedVersion, SpaceUsage, VersionMeta, VersionReader, VersionWriter,
    VolumeStore,
};

/// The directory under the store's `dir` holding versions being written.
pub const PARTIAL_DIR: &str = ".partial";
/// The directory under the store's `dir` holding quarantined versions.
pub const QUARANTINE_DIR: &str = ".quarantine";

/// Where quarantined `version` of `volser` with `digest` lives:
/// `<dir>/.quarantine/<VOLSER>-<version, 20 digits>-<digest, hex>.vol`.
pub fn quarantine_path(
    dir: &Path,
    volser: Volser,
    version: VersionNumber,
    digest: Digest,
) -> PathBuf {
    dir.join(QUARANTINE_DIR)
        .join(format!("{volser}-{version:020}-{}.vol", digest.to_hex()))
}

/// The identity a quarantine file name stands for, or `None` for a name the store did not make.
fn parse_quarantine_name(name: &str) -> Option<QuarantinedVersion> {
    let stem = name.strip_suffix(".vol")?;
    let mut parts = stem.split('-');
    let (volser, version, hex) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || version.len() != 20 || hex.len() != 64 {
        return None;
    }
    let mut digest = [0u8; 32];
    for (i, b) in digest.iter_mut().enumerate() {
        *b = u8::from_str_radix(hex.get(i * 2..i * 2 + 2)?, 16).ok()?;
    }
    Some(QuarantinedVersion {
        volser: volser.parse().ok()?,
        version: version.parse().ok()?,
        digest: Digest(digest),
    })
}

/// Every quarantined version in `dir` with its stored length, sorted.
fn scan_quarantine(dir: &Path) -> Result<Vec<(QuarantinedVersion, u64)>, TvcError> {
    let qdir = dir.join(QUARANTINE_DIR);
    let mut out = Vec::new();
    for entry in fs::read_dir(&qdir).map_err(io_err(IoOp::List, &qdir))? {
        let entry = entry.map_err(io_err(IoOp::List, &qdir))?;
        let Some(q) = entry.file_name().to_str().and_then(parse_quarantine_name) else {
            continue;
        };
        match entry.metadata() {
            Ok(meta) => out.push((q, meta.len())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err(IoOp::Read, &entry.path())(e)),
        }
    }
    out.sort_unstable_by_key(|(q, _)| q.key());
    Ok(out)
}

/// Where committed `version` of `volser` lives: `<dir>/<VOLSER>/<version, 20 digits>.vol`. Zero
/// padding makes a directory listing sort by version.
pub fn version_path(dir: &Path, volser: Volser, version: VersionNumber) -> PathBuf {
    dir.join(volser.as_str()).join(format!("{version:020}.vol"))
}

/// The version a committed file name stands for, or `None` for a name the store did not make.
fn parse_version_name(name: &str) -> Option<VersionNumber> {
    let digits = name.strip_suffix(".vol")?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Makes every partial file name unique within the process; the pid separates processes.
static NEXT_PARTIAL: AtomicU64 = AtomicU64::new(0);

fn io_err(op: IoOp, path: &Path) -> impl FnOnce(io::Error) -> TvcError + '_ {
    move |source| TvcError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// fsync a directory. A rename or a new entry changes the directory, not the file: until the
/// directory itself is on disk, a power loss can bring back the old entries, leaving a durable
/// file without its name.
fn sync_dir(path: &Path) -> Result<(), TvcError> {
    File::open(path)
        .and_then(|dir| dir.sync_all())
        .map_err(io_err(IoOp::Sync, path))
}

/// The per-cluster volume store on a local file system.
pub struct FileVolumeStore {
    /// `<data_dir>/tvc`: one directory per VOLSER, plus [`PARTIAL_DIR`].
    dir: PathBuf,
    /// Committed plus in-flight bytes against the quota; shared with the writers.
    space: Arc<Space>,
}

impl FileVolumeStore {
    /// Open (creating if needed) the store in `dir`. Deletes every partial version a previous run
    /// left behind, then scans the committed versions once to count the space they use.
    pub fn open(dir: &Path, quota_bytes: Option<u64>) -> Result<Self, TvcError> {
        let partial_dir = dir.join(PARTIAL_DIR);
        fs::create_dir_all(&partial_dir).map_err(io_err(IoOp::Create, &partial_dir))?;
        let removed = clear_partials(&partial_dir)?;
        if removed > 0 {
            tracing::info!(dir = %dir.display(), removed, "deleted partial versions left by a previous run");
        }
        let quarantine_dir = dir.join(QUARANTINE_DIR);
        if !quarantine_dir.exists() {
            fs::create_dir_all(&quarantine_dir).map_err(io_err(IoOp::Create, &quarantine_dir))?;
            sync_dir(dir)?;
        }
        let committed = scan(dir)?.iter().map(|(_, _, len)| len).sum::<u64>()
            + scan_quarantine(dir)?
                .iter()
                .map(|(_, len)| len)
                .sum::<u64>();
        Ok(FileVolumeStore {
            dir: dir.to_path_buf(),
            space: Space::new(quota_bytes, committed),
        })
    }

    /// The directory the store lives in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// Delete everything in `.partial/`, returning how many entries went.
fn clear_partials(partial_dir: &Path) -> Result<usize, TvcError> {
    let mut removed = 0;
    for entry in fs::read_dir(partial_dir).map_err(io_err(IoOp::List, partial_dir))? {
        let entry = entry.map_err(io_err(IoOp::List, partial_dir))?;
        let path = entry.path();
        let is_dir = entry
            .file_type()
            .map_err(io_err(IoOp::Read, &path))?
            .is_dir();
        let gone = if is_dir {
            fs::remove_dir_all(&path)
        } else {
            fs::remove_file(&path)
        };
        gone.map_err(io_err(IoOp::Remove, &path))?;
        removed += 1;
    }
    Ok(removed)
}

/// Every committed version in `dir` with its stored length, sorted. Names the store did not make
/// (including `.partial`) are skipped.
fn scan(dir: &Path) -> Result<Vec<(Volser, VersionNumber, u64)>, TvcError> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_err(IoOp::List, dir))? {
        let entry = entry.map_err(io_err(IoOp::List, dir))?;
        let Some(volser) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<Volser>().ok())
        else {
            continue;
        };
        let volser_dir = entry.path();
        if !entry
            .file_type()
            .map_err(io_err(IoOp::Read, &volser_dir))?
            .is_dir()
        {
            continue;
        }
        for file in fs::read_dir(&volser_dir).map_err(io_err(IoOp::List, &volser_dir))? {
            let file = file.map_err(io_err(IoOp::List, &volser_dir))?;
            let Some(version) = file.file_name().to_str().and_then(parse_version_name) else {
                continue;
            };
            match file.metadata() {
                Ok(meta) => out.push((volser, version, meta.len())),
                // Removed while we listed: no longer held.
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_err(IoOp::Read, &file.path())(e)),
            }
        }
    }
    out.sort_unstable();
    Ok(out)
}

impl VolumeStore for FileVolumeStore {
    fn begin(
        &self,
        volser: Volser,
        version: VersionNumber,
        base: Option<VersionNumber>,
    ) -> Result<Box<dyn VersionWriter>, TvcError> {
        let reservation = self.space.reserve(volser, version, stored_len(0))?;
        let n = NEXT_PARTIAL.fetch_add(1, Ordering::Relaxed);
        let name = format!("{volser}-{version:020}-{}-{n}.part", std::process::id());
        let path = self.dir.join(PARTIAL_DIR).join(name);
        let target = Target {
            volser,
            version,
            path: path.clone(),
        };
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| target.io_error(IoOp::Create, 0, e))?;
        let partial = PartialFile {
            path,
            renamed: false,
        };
        let mut writer = Box::new(FileVersionWriter {
            frames: FrameWriter::new(file, target)?,
            reservation,
            partial,
            dir: self.dir.clone(),
            broken: false,
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
        let path = version_path(&self.dir, volser, version);
        let file = match File::open(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(TvcError::NotFound { volser, version })
            }
            Err(e) => return Err(io_err(IoOp::Read, &path)(e)),
        };
        let frames = FrameReader::open(
            file,
            Target {
                volser,
                version,
                path,
            },
        )?;
        Ok(Box::new(FramedVersionReader(frames)))
    }

    fn remove(&self, volser: Volser, version: VersionNumber) -> Result<(), TvcError> {
        let path = version_path(&self.dir, volser, version);
        let mut removed = false;
        self.space.remove(|| {
            let len = match fs::metadata(&path) {
                Ok(meta) => meta.len(),
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
                Err(e) => return Err(io_err(IoOp::Read, &path)(e)),
            };
            fs::remove_file(&path).map_err(io_err(IoOp::Remove, &path))?;
            removed = true;
            Ok(len)
        })?;
        if removed {
            // So that a crash cannot bring the version back after the caller was told it is gone.
            sync_dir(&self.dir.join(volser.as_str()))?;
        }
        Ok(())
    }

    fn versions(&self) -> Result<Vec<(Volser, VersionNumber)>, TvcError> {
        Ok(scan(&self.dir)?
            .into_iter()
            .map(|(volser, version, _)| (volser, version))
            .collect())
    }

    fn usage(&self) -> SpaceUsage {
        self.space.usage()
    }

    fn quarantine(
        &self,
        volser: Volser,
        version: VersionNumber,
        digest: Digest,
    ) -> Result<(), TvcError> {
        let from = version_path(&self.dir, volser, version);
        let to = quarantine_path(&self.dir, volser, version, digest);
        // Under the space lock, so a commit of the same number cannot slip in between the check
        // of the trailer and the rename.
        self.space.remove(|| {
            match self.open(volser, version) {
                Ok(reader) if reader.meta().digest == digest => {}
                Ok(_) => return Err(TvcError::DigestMismatch { volser, version }),
                Err(TvcError::NotFound { .. }) if to.exists() => return Ok(0),
                Err(e) => return Err(e),
            }
            fs::rename(&from, &to).map_err(io_err(IoOp::Rename, &to))?;
            Ok(0)
        })?;
        sync_dir(&self.dir.join(QUARANTINE_DIR))?;
        sync_dir(&self.dir.join(volser.as_str()))
    }

    fn open_quarantined(
        &self,
        volser: Volser,
        version: VersionNumber,
        digest: Digest,
    ) -> Result<Box<dyn VersionReader>, TvcError> {
        let path = quarantine_path(&self.dir, volser, version, digest);
        let file = match File::open(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(TvcError::NotFound { volser, version })
            }
            Err(e) => return Err(io_err(IoOp::Read, &path)(e)),
        };
        let frames = FrameReader::open(
            file,
            Target {
                volser,
                version,
                path,
            },
        )?;
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
        let path = quarantine_path(&self.dir, volser, version, digest);
        let mut removed = false;
        self.space.remove(|| {
            let len = match fs::metadata(&path) {
                Ok(meta) => meta.len(),
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
                Err(e) => return Err(io_err(IoOp::Read, &path)(e)),
            };
            fs::remove_file(&path).map_err(io_err(IoOp::Remove, &path))?;
            removed = true;
            Ok(len)
        })?;
        if removed {
            sync_dir(&self.dir.join(QUARANTINE_DIR))?;
        }
        Ok(())
    }

    fn quarantined(&self) -> Result<Vec<QuarantinedVersion>, TvcError> {
        Ok(scan_quarantine(&self.dir)?
            .into_iter()
            .map(|(q, _)| q)
            .collect())
    }

    fn is_blocking(&self) -> bool {
        true
    }
}

/// The partial file of a writer; deleted on drop unless it was renamed into place.
struct PartialFile {
    path: PathBuf,
    renamed: bool,
}

impl Drop for PartialFile {
    fn drop(&mut self) {
        if self.renamed {
            return;
        }
        match fs::remove_file(&self.path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            // Not fatal: the next open() of the store deletes it.
            Err(e) => {
                tracing::warn!(path = %self.path.display(), error = %e, "could not delete partial version")
            }
        }
    }
}

/// Writes one version into a partial file. Dropping it (or `abort`) deletes the file and gives
/// back its space.
struct FileVersionWriter {
    frames: FrameWriter<File>,
    /// Space held: the stored length of what was written so far.
    reservation: Reservation,
    partial: PartialFile,
    /// The store's directory, parent of the VOLSER directories.
    dir: PathBuf,
    /// A write or sync failed mid-way: the file's state is unknown, only abort is left.
    broken: bool,
}

impl FileVersionWriter {
    fn check_usable(&self) -> Result<(), TvcError> {
        if self.broken {
            return Err(self.frames.target().broken());
        }
        Ok(())
    }

    fn mark<T>(&mut self, result: Result<T, TvcError>) -> Result<T, TvcError> {
        if result.is_err() {
            self.broken = true;
        }
        result
    }
}

impl VersionWriter for FileVersionWriter {
    fn write(&mut self, data: &[u8]) -> Result<(), TvcError> {
        self.check_usable()?;
        // Quota first: a refusal changes nothing, and the writer stays usable.
        self.reservation
            .grow_to(stored_len(self.frames.written() + data.len() as u64))?;
        let result = self.frames.write(data);
        self.mark(result)
    }

    fn sync(&mut self) -> Result<u64, TvcError> {
        self.check_usable()?;
        let result = self.frames.write_partial().and_then(|()| {
            let target = self.frames.target().clone();
            // sync_data: the data and the file length, which is all a reader needs.
            self.frames
                .sink_mut()
                .sync_data()
                .map_err(|e| target.io_error(IoOp::Sync, 0, e))
        });
        self.mark(result)?;
        Ok(self.frames.written())
    }

    fn bytes_written(&self) -> u64 {
        self.frames.written()
    }

    fn commit(self: Box<Self>) -> Result<VersionMeta, TvcError> {
        self.check_usable()?;
        let FileVersionWriter {
            frames,
            reservation,
            mut partial,
            dir,
            ..
        } = *self;
        let target = frames.target().clone();
        let (file, size, digest) = frames.finish()?;
        file.sync_all()
            .map_err(|e| target.io_error(IoOp::Sync, 0, e))?;
        drop(file);

        let final_path = version_path(&dir, target.volser, target.version);
        let volser_dir = dir.join(target.volser.as_str());
        match fs::create_dir(&volser_dir) {
            // A new directory is itself an entry in `dir`: make both durable before relying on it.
            Ok(()) => {
                sync_dir(&volser_dir)?;
                sync_dir(&dir)?;
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(io_err(IoOp::Create, &volser_dir)(e)),
        }
        reservation.commit(|| {
            let replaced = match fs::metadata(&final_path) {
                Ok(meta) => meta.len(),
                Err(e) if e.kind() == io::ErrorKind::NotFound => 0,
                Err(e) => return Err(io_err(IoOp::Read, &final_path)(e)),
            };
            fs::rename(&partial.path, &final_path).map_err(io_err(IoOp::Rename, &final_path))?;
            partial.renamed = true;
            Ok(replaced)
        })?;
        // Without this the rename may not survive a power loss. If it fails the version is
        // visible but not known durable: the caller sees the error and must not report it committed.
        sync_dir(&volser_dir)?;
        Ok(VersionMeta {
            volser: target.volser,
            version: target.version,
            size,
            digest,
        })
    }

    fn abort(self: Box<Self>) {
        // Dropping the partial file guard and the reservation does the work.
        drop(self);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::{data_offset, encode_trailer, TRAILER_LEN};
    use crate::testing::{pattern, read_all, write_version};
    use crate::CHUNK_SIZE;
    use std::io::{Seek, SeekFrom, Write};
    use tempfile::TempDir;
    use vtgrid_core::Digest;

    fn make(quota: Option<u64>) -> (TempDir, FileVolumeStore) {
        let guard = TempDir::new().unwrap();
        let store = FileVolumeStore::open(&guard.path().join("tvc"), quota).unwrap();
        (guard, store)
    }

    suite_tests!(super::make);

    fn v1() -> Volser {
        "A00001".parse().unwrap()
    }

    /// Overwrite the byte at `offset` of a stored file with its complement.
    fn flip(path: &Path, offset: u64) {
        let mut bytes = fs::read(path).unwrap();
        bytes[offset as usize] ^= 0xff;
        fs::write(path, bytes).unwrap();
    }

    #[test]
    fn version_path_is_volser_dir_and_padded_version() {
        let p = version_path(Path::new("/d/tvc"), v1(), 42);
        assert_eq!(p, Path::new("/d/tvc/A00001/00000000000000000042.vol"));
        assert_eq!(parse_version_name("00000000000000000042.vol"), Some(42));
        assert_eq!(parse_version_name("42.vol"), None);
    }

    /// A flipped byte in chunk 1 is reported as chunk 1, after chunk 0 was served and before any
    /// of chunk 1's bytes are.
    #[test]
    fn flipped_data_byte_is_chunk_corrupt() {
        let (_g, store) = make(None);
        let data = pattern(3 * CHUNK_SIZE + 17, 1);
        write_version(&store, v1(), 1, &data);
        flip(
            &version_path(store.dir(), v1(), 1),
            data_offset(CHUNK_SIZE as u64 + 5),
        );

        let mut reader = store.open(v1(), 1).unwrap();
        assert_eq!(reader.next_chunk().unwrap().unwrap(), data[..CHUNK_SIZE]);
        let err = reader.next_chunk().unwrap_err();
        assert!(
            matches!(
                err,
                TvcError::ChunkCorrupt {
                    chunk: 1,
                    version: 1,
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(err.is_corruption());
        assert!(
            matches!(reader.next_chunk(), Err(TvcError::Broken { .. })),
            "the reader is spent"
        );
    }

    /// A flipped trailer byte fails the trailer's CRC at open; a trailer whose CRC is fine but
    /// whose digest is wrong is caught after the last chunk.
    #[test]
    fn flipped_trailer_is_digest_mismatch_or_corrupt() {
        let (_g, store) = make(None);
        let data = pattern(CHUNK_SIZE + 100, 2);
        write_version(&store, v1(), 1, &data);
        let path = version_path(store.dir(), v1(), 1);
        let len = fs::metadata(&path).unwrap().len();
        flip(&path, len - 20);
        let err = store.open(v1(), 1).err().unwrap();
        assert!(matches!(err, TvcError::DigestMismatch { .. }), "{err:?}");
        assert!(err.is_corruption());

        let mut file = OpenOptions::new().write(true).open(&path).unwrap();
        file.seek(SeekFrom::Start(len - TRAILER_LEN)).unwrap();
        file.write_all(&encode_trailer(data.len() as u64, &Digest([7; 32])))
            .unwrap();
        drop(file);
        let mut reader = store.open(v1(), 1).unwrap();
        assert!(reader.next_chunk().unwrap().is_some());
        assert!(reader.next_chunk().unwrap().is_some());
        let err = reader.next_chunk().unwrap_err();
        assert!(matches!(err, TvcError::DigestMismatch { .. }), "{err:?}");
    }

    #[test]
    fn truncated_file_is_reported() {
        let (_g, store) = make(None);
        write_version(&store, v1(), 1, &pattern(2 * CHUNK_SIZE + 9, 3));
        let path = version_path(store.dir(), v1(), 1);
        let len = fs::metadata(&path).unwrap().len();
        for cut in [
            len - 1,
            len - TRAILER_LEN,
            len - 100,
            data_offset(CHUNK_SIZE as u64),
            10,
            0,
        ] {
            OpenOptions::new()
                .write(true)
                .open(&path)
                .unwrap()
                .set_len(cut)
                .unwrap();
            let err = store.open(v1(), 1).err().unwrap();
            assert!(
                matches!(err, TvcError::Truncated { .. }),
                "cut at {cut}: {err:?}"
            );
            assert!(err.is_corruption());
        }
    }

    #[test]
    fn file_under_another_versions_name_is_header_mismatch() {
        let (_g, store) = make(None);
        write_version(&store, v1(), 1, b"version one");
        fs::copy(
            version_path(store.dir(), v1(), 1),
            version_path(store.dir(), v1(), 2),
        )
        .unwrap();
        let err = store.open(v1(), 2).err().unwrap();
        assert!(
            matches!(err, TvcError::HeaderMismatch { version: 2, .. }),
            "{err:?}"
        );
    }

    /// Sequence: commit v1 → begin v2, write, sync → "crash" (forget the writer, drop the store)
    /// → reopen: the partial file is gone, v1 reads back, usage counts v1 only.
    #[test]
    fn reopen_deletes_partials_and_keeps_committed() {
        let guard = TempDir::new().unwrap();
        let dir = guard.path().join("tvc");
        let store = FileVolumeStore::open(&dir, None).unwrap();
        let data = pattern(CHUNK_SIZE + 3, 4);
        write_version(&store, v1(), 1, &data);
        let mut writer = store.begin(v1(), 2, Some(1)).unwrap();
        writer.write(&pattern(5000, 5)).unwrap();
        writer.sync().unwrap();
        std::mem::forget(writer);
        drop(store);
        assert_eq!(fs::read_dir(dir.join(PARTIAL_DIR)).unwrap().count(), 1);

        let store = FileVolumeStore::open(&dir, Some(1 << 30)).unwrap();
        assert_eq!(fs::read_dir(dir.join(PARTIAL_DIR)).unwrap().count(), 0);
        assert_eq!(store.versions().unwrap(), [(v1(), 1)]);
        assert_eq!(read_all(&store, v1(), 1).unwrap(), data);
        let expected = SpaceUsage {
            used_bytes: stored_len(data.len() as u64),
            in_flight_bytes: 0,
            quota_bytes: Some(1 << 30),
        };
        assert_eq!(store.usage(), expected);
    }

    #[test]
    fn open_skips_names_it_did_not_make() {
        let (_g, store) = make(None);
        write_version(&store, v1(), 1, b"x");
        fs::write(store.dir().join("README"), b"hi").unwrap();
        fs::create_dir(store.dir().join("lower")).unwrap();
        fs::write(store.dir().join("A00001").join("notes.txt"), b"hi").unwrap();
        let reopened = FileVolumeStore::open(store.dir(), None).unwrap();
        assert_eq!(reopened.versions().unwrap(), [(v1(), 1)]);
        assert_eq!(reopened.usage().used_bytes, stored_len(1));
    }

    /// A quarantine file whose trailer records another digest than its name (someone put other
    /// bytes under the quarantined identity) is `DigestMismatch`, never data; and the
    /// quarantine's space is counted again after a reopen.
    #[test]
    fn quarantined_file_is_checked_against_its_recorded_digest() {
        let (_g, store) = make(None);
        let ours = write_version(&store, v1(), 2, b"ours");
        let theirs = write_version(&store, v1(), 3, b"theirs, other bytes");
        store.quarantine(v1(), 2, ours.digest).unwrap();
        fs::copy(
            version_path(store.dir(), v1(), 3),
            quarantine_path(store.dir(), v1(), 2, theirs.digest),
        )
        .unwrap();
        let err = store
            .open_quarantined(v1(), 2, theirs.digest)
            .err()
            .unwrap();
        assert!(
            matches!(
                err,
                TvcError::HeaderMismatch { .. } | TvcError::DigestMismatch { .. }
            ),
            "{err:?}"
        );
        assert!(err.is_corruption());
        fs::copy(
            quarantine_path(store.dir(), v1(), 2, ours.digest),
            quarantine_path(store.dir(), v1(), 2, Digest([1; 32])),
        )
        .unwrap();
        let err = store
            .open_quarantined(v1(), 2, Digest([1; 32]))
            .err()
            .unwrap();
        assert!(matches!(err, TvcError::DigestMismatch { .. }), "{err:?}");
        assert_eq!(read_all(&store, v1(), 3).unwrap(), b"theirs, other bytes");

        let reopened = FileVolumeStore::open(store.dir(), None).unwrap();
        // The two files copied in by hand are counted too.
        assert_eq!(
            reopened.usage().used_bytes,
            store.usage().used_bytes + stored_len(19) + stored_len(4)
        );
        assert_eq!(reopened.quarantined().unwrap().len(), 3);
    }

    #[test]
    fn file_store_is_blocking() {
        let (_g, store) = make(None);
        assert!(store.is_blocking());
    }
}
