//! The TVC (tape volume cache): where one cluster keeps the bytes of the volume versions it holds.
//!
//! DESIGN §4: each version lives as one file in `tvc/`, written under a temp name, fsynced and
//! renamed; its chunks carry CRC32C and the version a BLAKE3 digest of all its bytes. Every read
//! verifies, and a bad chunk is an error, never data. Space is counted against an optional cache
//! quota.
//!
//! # Layout
//! - [`store`]: the seam: [`VolumeStore`], [`VersionWriter`], [`VersionReader`], [`VersionMeta`],
//!   [`SpaceUsage`], and the quarantine area ([`QuarantinedVersion`]: refused versions under
//!   their own identity, DESIGN §3), and synced prefixes ([`SyncedPrefix`]: the bytes up to the
//!   last sync point of a version whose writer did not commit, B42/T17).
//! - [`format`](mod@format): the stored framing (header, CRC32C chunks, trailer), drawn as a table.
//! - [`file`](mod@file): [`FileVolumeStore`], one file per version under `<data_dir>/tvc`, blocking `std::fs`.
//! - [`mem`]: [`MemVolumeStore`], the same framing in memory, with `crash()` for turmoil.
//! - [`faults`]: disk faults a test puts in force on a [`MemVolumeStore`] (ENOSPC, EIO on write
//!   and fsync, a slow fsync), returned as the file store returns the OS errors.
//! - `space` (private): quota accounting shared by both stores.
//! - [`testing`]: the conformance suite both stores pass.
//! - [`error`]: [`TvcError`] and [`IoOp`].
//!
//! What it leaves out on purpose: which versions to keep (the volume-removal policy decides and
//! calls `remove`), moving versions between clusters (the copy engine), and async: every call
//! blocks, and async callers use `spawn_blocking` when [`VolumeStore::is_blocking`] says so.

// First, so the test-only `suite_tests!` macro it defines is in scope in `file` and `mem`.
#[macro_use]
pub mod testing;

pub mod error;
pub mod faults;
pub mod file;
pub mod format;
pub mod mem;
mod space;
pub mod store;

pub use error::{IoOp, TvcError};
pub use faults::DiskFaults;
pub use file::{version_path, FileVolumeStore};
pub use format::CHUNK_SIZE;
pub use mem::MemVolumeStore;
pub use store::{
    QuarantinedVersion, SpaceUsage, SyncedPrefix, VersionMeta, VersionReader, VersionWriter,
    VolumeStore,
};
