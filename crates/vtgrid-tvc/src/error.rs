//! `TvcError`: everything a volume store can answer instead of bytes.
//!
//! The variants split the way the copy engine acts on them (STYLE, Errors):
//! - corruption ([`TvcError::is_corruption`]): this copy is bad; drop it and pull the version from
//!   another consistent cluster;
//! - [`TvcError::NotFound`]: this cluster does not hold the version;
//! - [`TvcError::StorageFull`]: the cache is full; throttle writes or remove volumes (DESIGN §4,
//!   Capacity);
//! - [`TvcError::Crashed`] and [`TvcError::Broken`]: this writer or reader is spent; start again;
//! - [`TvcError::Io`]: the disk failed; what and where are in the variant.

use std::fmt;
use std::io;
use std::path::PathBuf;

use vtgrid_core::{VersionNumber, Volser};

/// Why a volume store call failed.
#[derive(Debug, thiserror::Error)]
pub enum TvcError {
    /// This store holds no committed `version` of `volser` (or, for `begin`, no such base version).
    #[error("{volser} version {version} is not in this TVC")]
    NotFound {
        volser: Volser,
        version: VersionNumber,
    },

    /// Chunk number `chunk` (counting data chunks from 0) failed its CRC32C, or its length field is
    /// not the one the framing requires. Its bytes were not handed out.
    #[error("{volser} version {version}: chunk {chunk} is corrupt")]
    ChunkCorrupt {
        volser: Volser,
        version: VersionNumber,
        chunk: u64,
    },

    /// Every chunk passed its CRC but the whole version's BLAKE3 digest differs from the trailer's,
    /// or the trailer itself fails its CRC32C (then the stored size and digest cannot be trusted).
    #[error("{volser} version {version}: bytes do not match the trailer's digest")]
    DigestMismatch {
        volser: Volser,
        version: VersionNumber,
    },

    /// The stored length disagrees with the framing: the file has no trailer, or is shorter (or
    /// longer) than its trailer's size says. Most often a file cut short.
    #[error("{volser} version {version}: stored version is truncated")]
    Truncated {
        volser: Volser,
        version: VersionNumber,
    },

    /// The header's magic, VOLSER or version is not the one asked for: the file under this
    /// version's name holds something else.
    #[error("{volser} version {version}: header does not name this version")]
    HeaderMismatch {
        volser: Volser,
        version: VersionNumber,
    },

    /// Writing `needed` more bytes for `volser` would pass the cache quota, or the file system
    /// reported ENOSPC (then `available` is 0: the OS does not say how much is left).
    #[error("no space for {volser}: {needed} bytes needed, {available} available")]
    StorageFull {
        volser: Volser,
        needed: u64,
        available: u64,
    },

    /// The writer was started before a simulated crash ([`crate::MemVolumeStore::crash`]); its
    /// partial version is gone and it can never commit. Only the in-memory store returns this.
    #[error("{volser} version {version}: writer lost in a crash")]
    Crashed {
        volser: Volser,
        version: VersionNumber,
    },

    /// An earlier call on this writer or reader failed, leaving it in an unknown state. Drop (or
    /// abort) it and start again.
    #[error("{volser} version {version}: an earlier call on this writer or reader failed")]
    Broken {
        volser: Volser,
        version: VersionNumber,
    },

    /// A file system call failed: `op` says what was attempted, `path` on what.
    #[error("{op} {} failed", .path.display())]
    Io {
        op: IoOp,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl TvcError {
    /// True when this copy of the version is damaged (bad chunk, digest, length or header): the
    /// caller should drop it and use another consistent cluster's copy, not retry here.
    pub fn is_corruption(&self) -> bool {
        match self {
            TvcError::ChunkCorrupt { .. }
            | TvcError::DigestMismatch { .. }
            | TvcError::Truncated { .. }
            | TvcError::HeaderMismatch { .. } => true,
            TvcError::NotFound { .. }
            | TvcError::StorageFull { .. }
            | TvcError::Crashed { .. }
            | TvcError::Broken { .. }
            | TvcError::Io { .. } => false,
        }
    }
}

/// The file system operation an [`TvcError::Io`] was doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IoOp {
    /// Creating a file or directory.
    Create,
    Write,
    /// `fsync` of a file or directory.
    Sync,
    Rename,
    /// Opening for reading, reading, or reading metadata.
    Read,
    Remove,
    /// Listing a directory.
    List,
}

impl fmt::Display for IoOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            IoOp::Create => "create",
            IoOp::Write => "write",
            IoOp::Sync => "fsync",
            IoOp::Rename => "rename",
            IoOp::Read => "read",
            IoOp::Remove => "remove",
            IoOp::List => "list",
        })
    }
}
