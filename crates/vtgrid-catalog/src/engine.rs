//! A small key-value engine, so that the log store and the state machine are written once and
//! run on two backends (TiKV's `engine_traits` idea; STYLE.md, Traits at the I/O seams):
//!
//! - [`RocksEngine`]: RocksDB, one column family per [`Cf`], WAL on. What a node runs.
//! - [`MemEngine`]: ordered maps that keep apart what was made durable and what was not, so a
//!   turmoil simulation's crash loses exactly what a real crash would (DESIGN §8).
//!
//! The trait is synchronous on purpose: RocksDB's API is, and a memory map needs no `await`.
//! Async callers go through `on_engine`, which moves blocking backends off the runtime.

mod mem;
mod rocks;

pub use mem::MemEngine;
pub use rocks::RocksEngine;

use crate::error::{CatalogStorageError, EngineError};

/// A key and its value, as scans return them.
pub type KvPair = (Vec<u8>, Vec<u8>);

/// A column family: one keyspace per kind of record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Cf {
    /// Raft log entries, keyed by big-endian index so that byte order is log order.
    Logs,
    /// Raft's small records: vote, committed and last purged log ids.
    Meta,
    /// The current state machine snapshot: its meta and its data.
    Snapshot,
    /// The owner journal (DESIGN §3, local autonomy); used by later issues.
    Journal,
    /// The durable copy queue (DESIGN §4); used by later issues.
    CopyQueue,
}

impl Cf {
    /// Every column family, in a fixed order (`Cf::index` indexes into it).
    pub const ALL: [Cf; 5] = [Cf::Logs, Cf::Meta, Cf::Snapshot, Cf::Journal, Cf::CopyQueue];

    /// The column family's name on disk. Never change one: it would orphan existing data.
    pub fn name(self) -> &'static str {
        match self {
            Cf::Logs => "logs",
            Cf::Meta => "meta",
            Cf::Snapshot => "snapshot",
            Cf::Journal => "journal",
            Cf::CopyQueue => "copy_queue",
        }
    }

    /// Position in [`Cf::ALL`].
    pub fn index(self) -> usize {
        match self {
            Cf::Logs => 0,
            Cf::Meta => 1,
            Cf::Snapshot => 2,
            Cf::Journal => 3,
            Cf::CopyQueue => 4,
        }
    }
}

/// One change inside an atomic [`KvEngine::write`] batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KvOp {
    Put {
        cf: Cf,
        key: Vec<u8>,
        value: Vec<u8>,
    },
    Delete {
        cf: Cf,
        key: Vec<u8>,
    },
    /// Delete every key in `[from, to)`.
    DeleteRange {
        cf: Cf,
        from: Vec<u8>,
        to: Vec<u8>,
    },
}

impl KvOp {
    /// The column family this op changes.
    pub fn cf(&self) -> Cf {
        match self {
            KvOp::Put { cf, .. } | KvOp::Delete { cf, .. } | KvOp::DeleteRange { cf, .. } => *cf,
        }
    }
}

/// The column family a batch touches, if it touches exactly one (for error reports).
pub(crate) fn batch_cf(ops: &[KvOp]) -> Option<Cf> {
    let first = ops.first()?.cf();
    ops.iter().all(|op| op.cf() == first).then_some(first)
}

/// An ordered key-value store with column families, atomic batches and explicit durability.
pub trait KvEngine: Clone + Send + Sync + 'static {
    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>, EngineError>;

    /// Atomic batch. `sync = true`: durable (fsync of the WAL) before returning.
    fn write(&self, ops: Vec<KvOp>, sync: bool) -> Result<(), EngineError>;

    /// Ordered scan of [from, to) (to = None: to the end), at most `limit` pairs.
    fn scan(
        &self,
        cf: Cf,
        from: &[u8],
        to: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<KvPair>, EngineError>;

    /// The pair with the greatest key in `cf`. The log store needs the last entry at startup
    /// without scanning the whole log.
    fn last(&self, cf: Cf) -> Result<Option<KvPair>, EngineError>;

    /// Blocking backend (RocksDB): async callers use spawn_blocking. Memory: false.
    fn is_blocking(&self) -> bool;
}

/// Run `work` against `engine` where its backend wants it.
///
/// RocksDB calls (and their fsyncs) block, so they run on tokio's blocking pool and the runtime
/// keeps serving Raft heartbeats meanwhile. The memory engine is called inline: under turmoil a
/// blocking pool is a second scheduler that breaks determinism, and a map lookup needs none.
pub(crate) async fn on_engine<E, T, F>(engine: &E, work: F) -> Result<T, CatalogStorageError>
where
    E: KvEngine,
    T: Send + 'static,
    F: FnOnce(&E) -> Result<T, CatalogStorageError> + Send + 'static,
{
    if !engine.is_blocking() {
        return work(engine);
    }
    let engine = engine.clone();
    match tokio::task::spawn_blocking(move || work(&engine)).await {
        Ok(result) => result,
        // A panic in the storage code is a bug: let it surface where it would have inline.
        Err(join) if join.is_panic() => std::panic::resume_unwind(join.into_panic()),
        Err(join) => Err(CatalogStorageError::TaskCancelled(join)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(cf: Cf, key: &[u8], value: &[u8]) -> KvOp {
        KvOp::Put {
            cf,
            key: key.to_vec(),
            value: value.to_vec(),
        }
    }

    /// The same scan and last semantics on every backend: `[from, to)`, ordered, `limit` pairs.
    fn scan_respects_bounds_and_limit<E: KvEngine>(engine: E) {
        let ops = (0u8..10).map(|i| put(Cf::Logs, &[i], &[i * 2])).collect();
        engine.write(ops, true).unwrap();
        engine
            .write(vec![put(Cf::Meta, b"z", b"other cf")], true)
            .unwrap();

        let keys = |pairs: Vec<KvPair>| pairs.into_iter().map(|(k, _)| k[0]).collect::<Vec<_>>();
        assert_eq!(
            keys(engine.scan(Cf::Logs, &[3], Some(&[6]), usize::MAX).unwrap()),
            vec![3, 4, 5]
        );
        assert_eq!(
            keys(engine.scan(Cf::Logs, &[7], None, usize::MAX).unwrap()),
            vec![7, 8, 9]
        );
        assert_eq!(
            keys(engine.scan(Cf::Logs, &[0], None, 2).unwrap()),
            vec![0, 1]
        );
        assert_eq!(engine.last(Cf::Logs).unwrap(), Some((vec![9], vec![18])));
        assert_eq!(engine.last(Cf::Snapshot).unwrap(), None);

        let range = KvOp::DeleteRange {
            cf: Cf::Logs,
            from: vec![2],
            to: vec![8],
        };
        engine
            .write(
                vec![
                    range,
                    KvOp::Delete {
                        cf: Cf::Logs,
                        key: vec![9],
                    },
                ],
                true,
            )
            .unwrap();
        assert_eq!(
            keys(engine.scan(Cf::Logs, &[0], None, usize::MAX).unwrap()),
            vec![0, 1, 8]
        );
        assert_eq!(engine.get(Cf::Logs, &[8]).unwrap(), Some(vec![16]));
        assert_eq!(engine.get(Cf::Logs, &[5]).unwrap(), None);
    }

    #[test]
    fn mem_engine_scan_respects_bounds_and_limit() {
        scan_respects_bounds_and_limit(MemEngine::new());
    }

    #[test]
    fn rocks_engine_scan_respects_bounds_and_limit() {
        let dir = tempfile::tempdir().unwrap();
        scan_respects_bounds_and_limit(RocksEngine::open(dir.path()).unwrap());
    }
}
