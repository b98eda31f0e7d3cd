//! Errors of the catalog storage layer (STYLE.md, Errors).
//!
//! Two levels, each wrapping the one below it instead of flattening it:
//!
//! ```text
//!   openraft StorageError { subject: Log(id) | Vote | Apply(id) | Snapshot(..), verb }
//!       '- CatalogStorageError   what this crate was doing (decoding an entry, installing a snapshot)
//!              '- EngineError    which engine call failed, on which column family
//!                     '- EngineFailure (rocksdb::Error, missing column family)
//! ```
//!
//! Every one of them is fatal for the node: openraft stops a Raft node whose storage fails rather
//! than guess what reached the disk. The variants still say what and where, so an operator can
//! tell a full disk from a corrupt record.

use openraft::{AnyError, ErrorSubject, ErrorVerb, StorageIOError};
use thiserror::Error;

use crate::engine::Cf;
use crate::types::{LogId, NodeId, StorageError};

/// The engine call that failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EngineOp {
    Open,
    Read,
    Write,
    Scan,
}

/// Why an engine call failed, below the [`KvEngine`](crate::engine::KvEngine) trait.
#[derive(Debug, Error)]
pub enum EngineFailure {
    #[error(transparent)]
    Rocks(#[from] rocksdb::Error),
    /// The database was opened without this column family (a bug in `RocksEngine::open`).
    #[error("column family is not open")]
    MissingColumnFamily,
}

/// A failed engine call: what (`op`), where (`cf`; `None` for `Open` and for a batch that spans
/// several column families) and why (`source`).
#[derive(Debug, Error)]
#[error("engine {op:?} on column family {cf:?} failed")]
pub struct EngineError {
    pub op: EngineOp,
    pub cf: Option<Cf>,
    #[source]
    pub source: EngineFailure,
}

/// What went wrong while the catalog storage read or wrote its records.
#[derive(Debug, Error)]
pub enum CatalogStorageError {
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// A stored value does not decode: the record under `key` in `cf` is corrupt or was written
    /// by an incompatible version.
    #[error("record {key:?} in column family {cf:?} does not decode")]
    Corrupt {
        cf: Cf,
        key: Vec<u8>,
        #[source]
        source: serde_json::Error,
    },
    /// A value could not be encoded for `cf`.
    #[error("record for column family {cf:?} does not encode")]
    Encode {
        cf: Cf,
        #[source]
        source: serde_json::Error,
    },
    /// Snapshot bytes (built here or received from the leader) do not decode into a catalog.
    #[error("snapshot {snapshot_id} does not decode")]
    SnapshotUnreadable {
        snapshot_id: String,
        #[source]
        source: serde_json::Error,
    },
    /// A snapshot's metadata and its data disagree on the last log entry they include.
    #[error(
        "snapshot {snapshot_id}: meta says it includes up to {meta:?}, its data up to {data:?}"
    )]
    SnapshotMismatch {
        snapshot_id: String,
        meta: Option<LogId>,
        data: Option<LogId>,
    },
    /// The stored snapshot has metadata but no data. Both are written in one atomic batch, so this
    /// means the snapshot column family was damaged.
    #[error("stored snapshot {snapshot_id} has no data")]
    SnapshotIncomplete { snapshot_id: String },
    /// The blocking task running a RocksDB call was cancelled (the runtime is shutting down).
    #[error("blocking storage task was cancelled")]
    TaskCancelled(#[source] tokio::task::JoinError),
}

impl CatalogStorageError {
    /// Wrap into openraft's error, naming the subject and the verb openraft reports.
    pub fn into_raft(self, subject: ErrorSubject<NodeId>, verb: ErrorVerb) -> StorageError {
        StorageIOError::new(subject, verb, AnyError::new(&self)).into()
    }
}
