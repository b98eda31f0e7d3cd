//! The seam between vtgrid and wherever a cluster keeps volume bytes (STYLE, Traits at the I/O
//! seams): [`VolumeStore`] hands out a [`VersionWriter`] per version being written and a
//! [`VersionReader`] per committed version being read.
//!
//! ```text
//!  begin(volser, v, base) ──► VersionWriter ── write/sync ──► commit ──► committed version v
//!                                  │                                        │
//!                                  └── abort / drop / crash: gone           └─► open ─► VersionReader
//!                                      (but see below: bytes up to the last sync point stay)
//!
//!  sync ── fsync data ── marker {size, BLAKE3 of the prefix, note} (temp, fsync, rename)
//!  crash, or keep_synced ──► synced prefix (volser, v) ── promote_synced ──► committed version v
//!                                                      └── remove_synced ──► gone
//! ```
//!
//! A synced prefix is what a tape holds after a sync point (B42, T17): the data up to the last
//! acknowledged sync point of a version whose writer never committed. It is kept (and counted as
//! space) until the node either makes it the version or the retention rule lets it go.
//!
//! Every call may block on the disk: async callers check [`VolumeStore::is_blocking`] and run
//! blocking stores inside `tokio::task::spawn_blocking` (fsync and BLAKE3 over hundreds of MiB
//! would otherwise stall every task on the thread; STYLE, What to avoid).

use vtgrid_core::{Digest, VersionNumber, Volser};

use crate::error::TvcError;

/// The identity of a version in the quarantine area: its number and its digest, so two versions
/// of one number (the refused one and the catalog's) never share a name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QuarantinedVersion {
    pub volser: Volser,
    pub version: VersionNumber,
    pub digest: Digest,
}

impl QuarantinedVersion {
    /// A total order for sorted listings (`Digest` has none of its own).
    pub(crate) fn key(&self) -> (Volser, VersionNumber, [u8; 32]) {
        (self.volser, self.version, self.digest.0)
    }
}

/// What a committed version is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VersionMeta {
    pub volser: Volser,
    pub version: VersionNumber,
    /// Number of data bytes (what the host wrote), not counting framing.
    pub size: u64,
    /// BLAKE3 of the data bytes: what the catalog records and copies are checked against.
    pub digest: Digest,
}

/// The bytes of a version being written up to its last sync point, kept after its writer was
/// lost (a crash) or given up ([`VersionWriter::keep_synced`]). Its framing is checked and its
/// bytes verified against the digest recorded at the sync point before it is listed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyncedPrefix {
    /// The prefix's volume, version number, size and BLAKE3 digest.
    pub meta: VersionMeta,
    /// What the writer's owner asked to keep with it ([`VersionWriter::set_note`]).
    pub note: Vec<u8>,
}

/// How much of the cache is in use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SpaceUsage {
    /// Stored bytes (data plus framing, see [`crate::format::stored_len`]) of every committed
    /// version, plus what writers in flight have written so far.
    pub used_bytes: u64,
    /// The part of `used_bytes` reserved by writers still in flight (zero once every job and copy
    /// has committed or given up: the simulation checks nothing is left reserved).
    pub in_flight_bytes: u64,
    /// The cache quota, if the cluster has one. Writes that would pass it fail with
    /// [`TvcError::StorageFull`].
    pub quota_bytes: Option<u64>,
}

/// A cluster's volume store: committed versions by `(Volser, VersionNumber)`.
pub trait VolumeStore: Send + Sync + 'static {
    /// Start writing `version` of `volser`. With `base = Some(v)`, the new version starts as a copy
    /// of committed version v's bytes (append mount); they are verified while copying, so a
    /// corrupt base fails here rather than spreading into the new version.
    ///
    /// Committing a version that is already held replaces it.
    fn begin(
        &self,
        volser: Volser,
        version: VersionNumber,
        base: Option<VersionNumber>,
    ) -> Result<Box<dyn VersionWriter>, TvcError>;

    /// Open a committed version for reading.
    fn open(
        &self,
        volser: Volser,
        version: VersionNumber,
    ) -> Result<Box<dyn VersionReader>, TvcError>;

    /// Delete a committed version (missing is not an error).
    fn remove(&self, volser: Volser, version: VersionNumber) -> Result<(), TvcError>;

    /// Every committed version held, sorted. Versions being written are not listed.
    fn versions(&self) -> Result<Vec<(Volser, VersionNumber)>, TvcError>;

    /// Current space use and quota.
    fn usage(&self) -> SpaceUsage;

    /// Move committed `version` of `volser` into the quarantine area, under its own identity
    /// `(volser, version, digest)` (DESIGN §3): from then on no write, copy or `remove` of that
    /// version number touches it, and it is no longer listed by [`VolumeStore::versions`] nor
    /// opened by [`VolumeStore::open`]. The move is atomic and durable, and changes no space use.
    ///
    /// The version's trailer must record `digest`: otherwise it is not the quarantined version
    /// (`DigestMismatch`) and nothing moves. Idempotent: when the version is already in the
    /// quarantine area and gone from the cache, `Ok`; when it is in neither, `NotFound`.
    fn quarantine(
        &self,
        volser: Volser,
        version: VersionNumber,
        digest: Digest,
    ) -> Result<(), TvcError>;

    /// Open a quarantined version for reading, checked against the `digest` the quarantine
    /// recorded: a version whose trailer records another digest is `DigestMismatch`, never data.
    /// The reader then verifies every chunk and the whole digest, as for any version.
    fn open_quarantined(
        &self,
        volser: Volser,
        version: VersionNumber,
        digest: Digest,
    ) -> Result<Box<dyn VersionReader>, TvcError>;

    /// Delete a quarantined version (the operator discarded it; missing is not an error).
    fn remove_quarantined(
        &self,
        volser: Volser,
        version: VersionNumber,
        digest: Digest,
    ) -> Result<(), TvcError>;

    /// Every version in the quarantine area, sorted.
    fn quarantined(&self) -> Result<Vec<QuarantinedVersion>, TvcError>;

    /// Every synced prefix held, sorted by (volser, version): at most one per version number (a
    /// later one of the same number replaces an earlier).
    fn synced(&self) -> Result<Vec<SyncedPrefix>, TvcError>;

    /// Make the synced prefix of (`volser`, `version`) that committed version, replacing any
    /// committed version of that number, after verifying every chunk and the whole digest. A
    /// prefix whose bytes do not match is `DigestMismatch` (or `ChunkCorrupt`) and stays where it
    /// is; a missing one is `NotFound`. Durable when it returns; changes no space use but the
    /// replaced version's.
    fn promote_synced(
        &self,
        volser: Volser,
        version: VersionNumber,
    ) -> Result<VersionMeta, TvcError>;

    /// Delete the synced prefix of (`volser`, `version`) (missing is not an error).
    fn remove_synced(&self, volser: Volser, version: VersionNumber) -> Result<(), TvcError>;

    /// True when calls do real blocking I/O (the file store): async callers must use
    /// `spawn_blocking`.
    fn is_blocking(&self) -> bool;

    /// How long an fsync takes beyond the call itself: a slow disk simulated by a store that is
    /// called inline on a simulated clock ([`crate::faults`]). Async callers wait it before
    /// [`VersionWriter::sync`] and [`VersionWriter::commit`]. None for real stores.
    fn fsync_delay(&self) -> Option<std::time::Duration> {
        None
    }
}

/// One version being written. Nothing of it is visible to [`VolumeStore::open`] or
/// [`VolumeStore::versions`] until [`VersionWriter::commit`] returns.
pub trait VersionWriter: Send {
    /// Append bytes; the writer cuts them into chunks of [`crate::CHUNK_SIZE`] itself, whatever the
    /// sizes of the calls, so a version's framing depends only on its size.
    fn write(&mut self, data: &[u8]) -> Result<(), TvcError>;

    /// A durable point: everything written so far is on stable storage (fsync), and so is a
    /// marker recording its size, digest and note, so the prefix survives a crash as a
    /// [`SyncedPrefix`]. Returns the bytes written so far.
    fn sync(&mut self) -> Result<u64, TvcError>;

    /// Bytes to keep with the synced prefix from the next sync point on (the node records what
    /// the version would be published with). Empty by default.
    fn set_note(&mut self, note: Vec<u8>);

    /// End the writer, keeping the bytes up to its last sync point as a synced prefix (the job
    /// abended after a sync point). Returns the prefix, or `None` when there was no sync point
    /// (then it is an abort). Works on a writer broken by a failed write too: the bytes before
    /// the last sync point were on disk already.
    fn keep_synced(self: Box<Self>) -> Result<Option<VersionMeta>, TvcError>;

    /// Data bytes written so far, including those copied from the base version.
    fn bytes_written(&self) -> u64;

    /// Close the version: trailer with total size and BLAKE3 digest, fsync, rename to the final
    /// name, fsync the directory. After `Ok` the version survives a crash.
    fn commit(self: Box<Self>) -> Result<VersionMeta, TvcError>;

    /// Drop the partial version, synced or not, and give back its space. Dropping the writer
    /// does the same for a writer with no sync point; one with a sync point is left as a crash
    /// leaves it (its prefix comes back at the next open), since a simulated crash drops
    /// writers too.
    fn abort(self: Box<Self>);
}

/// One committed version being read, chunk by chunk.
pub trait VersionReader: Send {
    /// The size and digest the version's trailer records.
    fn meta(&self) -> &VersionMeta;

    /// The next chunk's bytes, verified against its CRC32C before they are returned; `None` at the
    /// end, after the whole-version BLAKE3 digest and size have been checked against the trailer.
    /// Corruption is an error, never data.
    fn next_chunk(&mut self) -> Result<Option<bytes::Bytes>, TvcError>;
}

/// Feed every verified chunk of `base` into `writer`: the start of an append mount. Any
/// corruption in the base stops the copy with the reader's error.
pub(crate) fn copy_base(
    base: &mut dyn VersionReader,
    writer: &mut dyn VersionWriter,
) -> Result<(), TvcError> {
    while let Some(chunk) = base.next_chunk()? {
        writer.write(&chunk)?;
    }
    Ok(())
}
