//! [`FileVolumeStore`]: one file per committed version under `<data_dir>/tvc` (DESIGN §4), with
//! blocking `std::fs` calls; async callers run it in `spawn_blocking`.
//!
//! ```text
//!  <dir>/
//!    .partial/<VOLSER>-<version>-<pid>-<n>.part   versions being written; open() deletes them
//!    .partial/<…>.part.sync                       its last sync point's marker (format.rs)
//!    .synced/<VOLSER>-<version>.vol, .sync         synced prefixes, framed as versions, + marker
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
//! never serves, or counts as space, a version it did not finish; unless a sync point left its
//! marker (B42, T17):
//!
//! ```text
//!  sync ── fsync file ── write <part>.sync.tmp, fsync, rename to <part>.sync ── fsync .partial/
//!  open / keep_synced: <part> with <part>.sync ── cut back to the marker's size, verify, trailer,
//!        fsync ── write .synced/<V>-<n>.sync (temp, fsync, rename) ── rename <part> to
//!        .synced/<V>-<n>.vol ── fsync .synced/ ── delete <part>.sync
//!  commit of a writer with a sync point: the same on a copy of <part> first (so a crash before
//!        the job's journal entry still leaves the prefix), then the commit as above
//! ```
//!
//! Every step can be cut by a crash and redone by the next `open`: a `.part` with its marker is
//! recovered again, a marker without its `.part` deleted, and a `.synced` pair whose marker and
//! trailer disagree is not listed. A partial whose bytes do not match its marker's digest is
//! deleted, never made a synced prefix. A partial with no marker is not made durable at all.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use vtgrid_core::{Digest, VersionNumber, Volser};

use crate::error::{IoOp, TvcError};
use crate::format::{
    close_prefix, stored_len, FrameReader, FrameWriter, FramedVersionReader, SyncMarker, Target,
};
use crate::space::{Reservation, Space};
use crate::store::{
    copy_base, QuarantinedVersion, SpaceUsage, SyncedPrefix, VersionMeta, VersionReader,
    VersionWriter, VolumeStore,
};

/// The directory under the store's `dir` holding versions being written.
pub const PARTIAL_DIR: &str = ".partial";
/// The directory under the store's `dir` holding quarantined versions.
pub const QUARANTINE_DIR: &str = ".quarantine";
/// The directory under the store's `dir` holding synced prefixes.
pub const SYNCED_DIR: &str = ".synced";

/// Where the synced prefix of `version` of `volser` lives:
/// `<dir>/.synced/<VOLSER>-<version, 20 digits>.vol`, its marker beside it as `.sync`.
pub fn synced_path(dir: &Path, volser: Volser, version: VersionNumber) -> PathBuf {
    dir.join(SYNCED_DIR)
        .join(format!("{volser}-{version:020}.vol"))
}

fn synced_marker_path(dir: &Path, volser: Volser, version: VersionNumber) -> PathBuf {
    synced_path(dir, volser, version).with_extension("sync")
}

/// The marker of a partial file: `<part>.sync`.
fn marker_path(part: &Path) -> PathBuf {
    let mut name = part.as_os_str().to_owned();
    name.push(".sync");
    PathBuf::from(name)
}

/// The volume and version a partial file name (`<VOLSER>-<version>-<pid>-<n>.part`) stands for.
fn parse_partial_name(name: &str) -> Option<(Volser, VersionNumber)> {
    let stem = name.strip_suffix(".part")?;
    let mut parts = stem.split('-');
    let (volser, version) = (parts.next()?, parts.next()?);
    if version.len() != 20 {
        return None;
    }
    Some((volser.parse().ok()?, version.parse().ok()?))
}

/// The volume and version a synced prefix name (`<VOLSER>-<version>.vol`) stands for.
fn parse_synced_name(name: &str) -> Option<(Volser, VersionNumber)> {
    let stem = name.strip_suffix(".vol")?;
    let (volser, version) = stem.split_once('-')?;
    if version.len() != 20 {
        return None;
    }
    Some((volser.parse().ok()?, version.parse().ok()?))
}

/// Write `bytes` at `path` durably: a temp name, fsync, rename, fsync of the directory.
fn write_durably(path: &Path, bytes: &[u8]) -> Result<(), TvcError> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    {
        use std::io::Write;
        let mut f = File::create(&tmp).map_err(io_err(IoOp::Create, &tmp))?;
        f.write_all(bytes).map_err(io_err(IoOp::Write, &tmp))?;
        f.sync_all().map_err(io_err(IoOp::Sync, &tmp))?;
    }
    fs::rename(&tmp, path).map_err(io_err(IoOp::Rename, path))?;
    sync_dir(path.parent().expect("store paths have a parent"))
}

fn read_marker(path: &Path) -> Result<Option<SyncMarker>, TvcError> {
    match fs::read(path) {
        Ok(bytes) => Ok(SyncMarker::decode(&bytes)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_err(IoOp::Read, path)(e)),
    }
}

/// Make the partial file `part` of (`volser`, `version`), whose last sync point left `marker`,
/// the synced prefix of that version (see the module doc). `Ok(None)`, and both files deleted,
/// when its bytes are not the prefix the marker recorded.
fn recover_prefix(
    dir: &Path,
    part: &Path,
    volser: Volser,
    version: VersionNumber,
    marker: &SyncMarker,
) -> Result<Option<VersionMeta>, TvcError> {
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(part)
        .map_err(io_err(IoOp::Read, part))?;
    let closed =
        close_prefix(&mut file, volser, version, marker).map_err(io_err(IoOp::Write, part))?;
    let Some(len) = closed else {
        drop(file);
        tracing::warn!(path = %part.display(), %volser, version, "a synced partial version does not match its sync point's digest; deleted, not kept");
        remove_if_there(&marker_path(part))?;
        remove_if_there(part)?;
        return Ok(None);
    };
    file.set_len(len).map_err(io_err(IoOp::Write, part))?;
    file.sync_all().map_err(io_err(IoOp::Sync, part))?;
    drop(file);
    write_durably(&synced_marker_path(dir, volser, version), &marker.encode())?;
    let to = synced_path(dir, volser, version);
    fs::rename(part, &to).map_err(io_err(IoOp::Rename, &to))?;
    sync_dir(&dir.join(SYNCED_DIR))?;
    remove_if_there(&marker_path(part))?;
    Ok(Some(VersionMeta {
        volser,
        version,
        size: marker.size,
        digest: marker.digest,
    }))
}

fn remove_if_there(path: &Path) -> Result<(), TvcError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err(IoOp::Remove, path)(e)),
    }
}

/// A synced prefix file whose marker and trailer agree, with the marker; `None` otherwise (a
/// recovery cut short, redone by the next open, or a damaged file).
fn read_synced(
    dir: &Path,
    volser: Volser,
    version: VersionNumber,
) -> Result<Option<(SyncedPrefix, u64)>, TvcError> {
    let Some(marker) = read_marker(&synced_marker_path(dir, volser, version))? else {
        return Ok(None);
    };
    let path = synced_path(dir, volser, version);
    let file = match File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err(IoOp::Read, &path)(e)),
    };
    let len = file.metadata().map_err(io_err(IoOp::Read, &path))?.len();
    let target = Target {
        volser,
        version,
        path,
    };
    let Ok(frames) = FrameReader::open(file, target) else {
        return Ok(None);
    };
    let meta = frames.meta().clone();
    if meta.size != marker.size || meta.digest != marker.digest {
        return Ok(None);
    }
    Ok(Some((
        SyncedPrefix {
            meta,
            note: marker.note,
        },
        len,
    )))
}

/// Every synced prefix in `dir` with its stored length, sorted.
fn scan_synced(dir: &Path) -> Result<Vec<(SyncedPrefix, u64)>, TvcError> {
    let sdir = dir.join(SYNCED_DIR);
    let mut names = Vec::new();
    for entry in fs::read_dir(&sdir).map_err(io_err(IoOp::List, &sdir))? {
        let entry = entry.map_err(io_err(IoOp::List, &sdir))?;
        if let Some(key) = entry.file_name().to_str().and_then(parse_synced_name) {
            names.push(key);
        }
    }
    names.sort_unstable();
    let mut out = Vec::new();
    for (volser, version) in names {
        if let Some(found) = read_synced(dir, volser, version)? {
            out.push(found);
        }
    }
    Ok(out)
}

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
    /// Open (creating if needed) the store in `dir`. Keeps, as synced prefixes, the partial
    /// versions a previous run left with a sync point; deletes every other partial version; then
    /// scans the committed versions once to count the space they use.
    pub fn open(dir: &Path, quota_bytes: Option<u64>) -> Result<Self, TvcError> {
        let partial_dir = dir.join(PARTIAL_DIR);
        fs::create_dir_all(&partial_dir).map_err(io_err(IoOp::Create, &partial_dir))?;
        for area in [QUARANTINE_DIR, SYNCED_DIR] {
            let area_dir = dir.join(area);
            if !area_dir.exists() {
                fs::create_dir_all(&area_dir).map_err(io_err(IoOp::Create, &area_dir))?;
                sync_dir(dir)?;
            }
        }
        let (kept, removed) = clear_partials(dir)?;
        if removed > 0 || kept > 0 {
            tracing::info!(dir = %dir.display(), removed, kept, "partial versions left by a previous run: deleted, or kept to their last sync point");
        }
        let committed = scan(dir)?.iter().map(|(_, _, len)| len).sum::<u64>()
            + scan_quarantine(dir)?
                .iter()
                .map(|(_, len)| len)
                .sum::<u64>()
            + scan_synced(dir)?.iter().map(|(_, len)| len).sum::<u64>();
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

/// Empty `.partial/`: a partial file with an intact sync marker becomes a synced prefix, and
/// everything else is deleted. Returns (kept, deleted).
fn clear_partials(dir: &Path) -> Result<(usize, usize), TvcError> {
    let partial_dir = &dir.join(PARTIAL_DIR);
    let mut entries = Vec::new();
    for entry in fs::read_dir(partial_dir).map_err(io_err(IoOp::List, partial_dir))? {
        let entry = entry.map_err(io_err(IoOp::List, partial_dir))?;
        entries.push(entry.path());
    }
    entries.sort_unstable();
    let mut kept = 0;
    // Partials with a marker first, so no marker is deleted before its partial is looked at.
    for path in &entries {
        let name = path.file_name().and_then(|n| n.to_str());
        let Some((volser, version)) = name.and_then(parse_partial_name) else {
            continue;
        };
        if let Some(marker) = read_marker(&marker_path(path))? {
            if recover_prefix(dir, path, volser, version, &marker)?.is_some() {
                kept += 1;
            }
        }
    }
    let mut removed = 0;
    for path in &entries {
        let is_dir = match fs::symlink_metadata(path) {
            Ok(meta) => meta.is_dir(),
            // Recovered into `.synced/`, or a marker deleted with its partial.
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io_err(IoOp::Read, path)(e)),
        };
        let gone = if is_dir {
            fs::remove_dir_all(path)
        } else {
            fs::remove_file(path)
        };
        match gone {
            Ok(()) => removed += 1,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err(IoOp::Remove, path)(e)),
        }
    }
    // The deletions matter only once they are durable (a marker must not come back without
    // the partial it was deleted with).
    sync_dir(partial_dir)?;
    Ok((kept, removed))
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
            synced: false,
            aborted: false,
        };
        let mut writer = Box::new(FileVersionWriter {
            frames: FrameWriter::new(file, target)?,
            reservation,
            partial,
            dir: self.dir.clone(),
            broken: false,
            synced: false,
            note: Vec::new(),
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

    fn synced(&self) -> Result<Vec<SyncedPrefix>, TvcError> {
        Ok(scan_synced(&self.dir)?
            .into_iter()
            .map(|(p, _)| p)
            .collect())
    }

    fn promote_synced(
        &self,
        volser: Volser,
        version: VersionNumber,
    ) -> Result<VersionMeta, TvcError> {
        let Some((prefix, _)) = read_synced(&self.dir, volser, version)? else {
            return Err(TvcError::NotFound { volser, version });
        };
        let from = synced_path(&self.dir, volser, version);
        verify_all(&from, volser, version)?;
        let to = version_path(&self.dir, volser, version);
        let volser_dir = volser_dir_durably(&self.dir, volser)?;
        // Under the space lock: the replaced version stops counting, the prefix's bytes move
        // from one area to the other.
        self.space.remove(|| {
            let replaced = match fs::metadata(&to) {
                Ok(meta) => meta.len(),
                Err(e) if e.kind() == io::ErrorKind::NotFound => 0,
                Err(e) => return Err(io_err(IoOp::Read, &to)(e)),
            };
            fs::rename(&from, &to).map_err(io_err(IoOp::Rename, &to))?;
            Ok(replaced)
        })?;
        sync_dir(&volser_dir)?;
        sync_dir(&self.dir.join(SYNCED_DIR))?;
        remove_if_there(&synced_marker_path(&self.dir, volser, version))?;
        Ok(prefix.meta)
    }

    fn remove_synced(&self, volser: Volser, version: VersionNumber) -> Result<(), TvcError> {
        let path = synced_path(&self.dir, volser, version);
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
        remove_if_there(&synced_marker_path(&self.dir, volser, version))?;
        if removed {
            sync_dir(&self.dir.join(SYNCED_DIR))?;
        }
        Ok(())
    }

    fn is_blocking(&self) -> bool {
        true
    }
}

/// Before a writer with a sync point commits its whole version: keep a copy of its bytes up to
/// the last sync point as the version's synced prefix (T17). The job's journal entry comes only
/// after the commit; a crash in between must not lose what the host was told is on the volume:
/// the restart then finds the prefix and publishes it as the version (`vtgrid-node`'s
/// `synced`). Once the whole version is published, the retention rule removes the prefix (its
/// digest is not the catalog's). Costs a copy of the partial file; it fails with
/// `StorageFull`, committing nothing, when the quota has no room for it.
fn keep_prefix_beside(
    dir: &Path,
    part: &Path,
    target: &Target,
    reservation: &Reservation,
) -> Result<(), TvcError> {
    let Some(marker) = read_marker(&marker_path(part))? else {
        return Ok(());
    };
    let (volser, version) = (target.volser, target.version);
    let extra = reservation.alongside(stored_len(marker.size))?;
    // A name `open` never keeps: a copy cut short by a crash is deleted with `.partial/`.
    let mut copy = part.as_os_str().to_owned();
    copy.push(".prefix");
    let copy = PathBuf::from(copy);
    fs::copy(part, &copy).map_err(io_err(IoOp::Write, &copy))?;
    let replaced = fs::metadata(synced_path(dir, volser, version)).map_or(0, |m| m.len());
    match recover_prefix(dir, &copy, volser, version, &marker)? {
        Some(meta) => extra.commit_as(stored_len(meta.size), || Ok(replaced)),
        // Cannot be (the writer's own bytes); the whole version still commits.
        None => {
            tracing::error!(%volser, version, "a committing writer's bytes do not match its sync point");
            Ok(())
        }
    }
}

/// `<dir>/<VOLSER>`, created if missing. A new directory is itself an entry in `dir`: both are
/// made durable before a version is renamed into it.
fn volser_dir_durably(dir: &Path, volser: Volser) -> Result<PathBuf, TvcError> {
    let volser_dir = dir.join(volser.as_str());
    match fs::create_dir(&volser_dir) {
        Ok(()) => {
            sync_dir(&volser_dir)?;
            sync_dir(dir)?;
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(io_err(IoOp::Create, &volser_dir)(e)),
    }
    Ok(volser_dir)
}

/// Read every chunk of the framed file at `path` as (`volser`, `version`), checking each CRC and
/// the whole digest against its trailer.
fn verify_all(path: &Path, volser: Volser, version: VersionNumber) -> Result<(), TvcError> {
    let file = File::open(path).map_err(io_err(IoOp::Read, path))?;
    let mut frames = FrameReader::open(
        file,
        Target {
            volser,
            version,
            path: path.to_path_buf(),
        },
    )?;
    while frames.next_chunk()?.is_some() {}
    Ok(())
}

/// The partial file of a writer; deleted on drop unless it was renamed into place, or it has
/// a sync point and was not aborted (then, as after a crash, the next open keeps its prefix).
struct PartialFile {
    path: PathBuf,
    renamed: bool,
    /// Its sync marker is on disk.
    synced: bool,
    /// `abort` was called: delete it, synced or not.
    aborted: bool,
}

impl Drop for PartialFile {
    fn drop(&mut self) {
        if self.renamed || (self.synced && !self.aborted) {
            return;
        }
        // The marker first: a partial without its marker is deleted at the next open, a marker
        // without its partial too; a partial kept with a stale marker would come back.
        if let Err(e) = remove_if_there(&marker_path(&self.path)) {
            tracing::warn!(path = %self.path.display(), error = %e, "could not delete a sync marker");
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
    /// A write or sync failed mid-way: the file's state is unknown, only abort (or keeping the
    /// prefix up to the last sync point, whose bytes were on disk before) is left.
    broken: bool,
    /// The last sync point's marker is on disk.
    synced: bool,
    /// Kept in the marker of each sync point.
    note: Vec<u8>,
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
        let marker = SyncMarker {
            size: self.frames.written(),
            digest: self.frames.prefix_digest(),
            note: self.note.clone(),
        };
        let result = self.frames.write_partial().and_then(|()| {
            let target = self.frames.target().clone();
            // sync_data: the data and the file length, which is all a reader needs.
            self.frames
                .sink_mut()
                .sync_data()
                .map_err(|e| target.io_error(IoOp::Sync, 0, e))?;
            // The marker's rename and the partial's own entry are durable with one fsync of
            // `.partial/` (write_durably's).
            write_durably(&marker_path(&self.partial.path), &marker.encode())
        });
        self.mark(result)?;
        self.synced = true;
        self.partial.synced = true;
        Ok(self.frames.written())
    }

    fn set_note(&mut self, note: Vec<u8>) {
        self.note = note;
    }

    fn keep_synced(self: Box<Self>) -> Result<Option<VersionMeta>, TvcError> {
        let FileVersionWriter {
            frames,
            reservation,
            mut partial,
            dir,
            synced,
            ..
        } = *self;
        if !synced {
            partial.aborted = true;
            return Ok(None);
        }
        let target = frames.target().clone();
        drop(frames.into_sink());
        let Some(marker) = read_marker(&marker_path(&partial.path))? else {
            partial.aborted = true;
            return Ok(None);
        };
        let replaced =
            fs::metadata(synced_path(&dir, target.volser, target.version)).map_or(0, |m| m.len());
        let kept = recover_prefix(&dir, &partial.path, target.volser, target.version, &marker)?;
        partial.renamed = kept.is_some();
        let Some(meta) = kept else {
            return Ok(None);
        };
        reservation.commit_as(stored_len(meta.size), || Ok(replaced))?;
        Ok(Some(meta))
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
        if partial.synced {
            keep_prefix_beside(&dir, &partial.path, &target, &reservation)?;
        }

        let final_path = version_path(&dir, target.volser, target.version);
        let volser_dir = volser_dir_durably(&dir, target.volser)?;
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
        // A marker left without its partial is deleted at the next open anyway.
        if let Err(e) = remove_if_there(&marker_path(&partial.path)) {
            tracing::warn!(path = %partial.path.display(), error = %e, "could not delete a sync marker");
        }
        Ok(VersionMeta {
            volser: target.volser,
            version: target.version,
            size,
            digest,
        })
    }

    fn abort(mut self: Box<Self>) {
        // Dropping the partial file guard and the reservation does the work.
        self.partial.aborted = true;
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

    /// Sequence: commit v1 → begin v2, write, no sync point → "crash" (forget the writer, drop
    /// the store) → reopen: the partial file is gone, v1 reads back, usage counts v1 only.
    #[test]
    fn reopen_deletes_partials_and_keeps_committed() {
        let guard = TempDir::new().unwrap();
        let dir = guard.path().join("tvc");
        let store = FileVolumeStore::open(&dir, None).unwrap();
        let data = pattern(CHUNK_SIZE + 3, 4);
        write_version(&store, v1(), 1, &data);
        let mut writer = store.begin(v1(), 2, Some(1)).unwrap();
        writer.write(&pattern(5000, 5)).unwrap();
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

    /// The partial file of a sync point is damaged before the restart (a byte inside the synced
    /// prefix flipped): it no longer matches the marker's digest, so it is refused, not kept as
    /// a synced prefix, and its files are gone.
    #[test]
    fn synced_partial_that_does_not_match_its_digest_is_refused() {
        for at in [10u64, CHUNK_SIZE as u64 + 10] {
            let (_g, store) = make(None);
            let mut writer = store.begin(v1(), 1, None).unwrap();
            writer.write(&pattern(CHUNK_SIZE + 100, 6)).unwrap();
            writer.sync().unwrap();
            let part = fs::read_dir(store.dir().join(PARTIAL_DIR))
                .unwrap()
                .map(|e| e.unwrap().path())
                .find(|p| p.extension().is_some_and(|e| e == "part"))
                .unwrap();
            flip(&part, data_offset(at));
            std::mem::forget(writer);
            let reopened = FileVolumeStore::open(store.dir(), None).unwrap();
            assert_eq!(reopened.synced().unwrap(), [], "flipped at {at}");
            assert_eq!(reopened.versions().unwrap(), []);
            assert_eq!(reopened.usage().used_bytes, 0);
            assert_eq!(
                fs::read_dir(store.dir().join(PARTIAL_DIR)).unwrap().count(),
                0
            );
        }
    }

    /// A synced prefix whose file was damaged after it was kept is not promoted: the promotion
    /// verifies every chunk first and leaves the prefix where it was.
    #[test]
    fn damaged_synced_prefix_is_not_promoted() {
        let (_g, store) = make(None);
        let mut writer = store.begin(v1(), 1, None).unwrap();
        writer.write(&pattern(CHUNK_SIZE + 100, 7)).unwrap();
        writer.sync().unwrap();
        writer.keep_synced().unwrap().unwrap();
        flip(&synced_path(store.dir(), v1(), 1), data_offset(5));
        let err = store.promote_synced(v1(), 1).unwrap_err();
        assert!(err.is_corruption(), "{err:?}");
        assert_eq!(store.versions().unwrap(), []);
        assert_eq!(store.synced().unwrap().len(), 1);
    }

    /// A restart cut short after the prefix's marker was written into `.synced/` but before the
    /// partial file moved: the next open does the recovery again, and the result is the same.
    #[test]
    fn recovery_cut_short_is_redone() {
        let guard = TempDir::new().unwrap();
        let dir = guard.path().join("tvc");
        let store = FileVolumeStore::open(&dir, None).unwrap();
        let data = pattern(3000, 8);
        let mut writer = store.begin(v1(), 3, None).unwrap();
        writer.write(&data).unwrap();
        writer.sync().unwrap();
        writer.write(&pattern(500, 9)).unwrap();
        std::mem::forget(writer);
        // What the first steps of a recovery leave: the synced marker, and a partial already
        // closed with its trailer.
        let part = fs::read_dir(dir.join(PARTIAL_DIR))
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.extension().is_some_and(|e| e == "part"))
            .unwrap();
        let marker = read_marker(&marker_path(&part)).unwrap().unwrap();
        let mut f = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&part)
            .unwrap();
        close_prefix(&mut f, v1(), 3, &marker).unwrap().unwrap();
        drop(f);
        write_durably(&synced_marker_path(&dir, v1(), 3), &marker.encode()).unwrap();
        drop(store);

        let store = FileVolumeStore::open(&dir, None).unwrap();
        let prefixes = store.synced().unwrap();
        assert_eq!(prefixes.len(), 1);
        assert_eq!(prefixes[0].meta.size, 3000);
        assert_eq!(store.usage().used_bytes, stored_len(3000));
        store.promote_synced(v1(), 3).unwrap();
        assert_eq!(read_all(&store, v1(), 3).unwrap(), data);
        assert_eq!(fs::read_dir(dir.join(PARTIAL_DIR)).unwrap().count(), 0);
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
