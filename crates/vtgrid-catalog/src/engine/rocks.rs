//! [`KvEngine`] on RocksDB: what a node runs.

use std::path::Path;
use std::sync::Arc;

use rocksdb::{
    ColumnFamily, Direction, IteratorMode, Options, ReadOptions, WriteBatch, WriteOptions, DB,
};

use super::{batch_cf, Cf, KvEngine, KvOp, KvPair};
use crate::error::{EngineError, EngineFailure, EngineOp};

/// A RocksDB database with one column family per [`Cf`].
///
/// Cheap to clone: clones share the database, which closes when the last clone drops (reopening
/// the same path needs every clone gone, RocksDB holds a lock file).
#[derive(Clone)]
pub struct RocksEngine {
    db: Arc<DB>,
}

impl std::fmt::Debug for RocksEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RocksEngine")
            .field("path", &self.db.path())
            .finish()
    }
}

impl RocksEngine {
    /// Open (or create) the database at `path` with every column family.
    ///
    /// The WAL stays on (RocksDB's default): a `sync = true` write is durable once the WAL is
    /// fsynced, and all column families of one batch recover together.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, EngineError> {
        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        let db = DB::open_cf(&opts, path, Cf::ALL.map(Cf::name)).map_err(|e| EngineError {
            op: EngineOp::Open,
            cf: None,
            source: e.into(),
        })?;
        Ok(Self { db: Arc::new(db) })
    }

    fn handle(&self, cf: Cf, op: EngineOp) -> Result<&ColumnFamily, EngineError> {
        self.db.cf_handle(cf.name()).ok_or(EngineError {
            op,
            cf: Some(cf),
            source: EngineFailure::MissingColumnFamily,
        })
    }
}

fn failed(op: EngineOp, cf: Option<Cf>) -> impl FnOnce(rocksdb::Error) -> EngineError {
    move |e| EngineError {
        op,
        cf,
        source: e.into(),
    }
}

impl KvEngine for RocksEngine {
    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>, EngineError> {
        let handle = self.handle(cf, EngineOp::Read)?;
        self.db
            .get_cf(handle, key)
            .map_err(failed(EngineOp::Read, Some(cf)))
    }

    fn write(&self, ops: Vec<KvOp>, sync: bool) -> Result<(), EngineError> {
        let mut batch = WriteBatch::default();
        for op in &ops {
            let handle = self.handle(op.cf(), EngineOp::Write)?;
            match op {
                KvOp::Put { key, value, .. } => batch.put_cf(handle, key, value),
                KvOp::Delete { key, .. } => batch.delete_cf(handle, key),
                KvOp::DeleteRange { from, to, .. } => batch.delete_range_cf(handle, from, to),
            }
        }
        let mut write_opts = WriteOptions::default();
        write_opts.set_sync(sync);
        self.db
            .write_opt(batch, &write_opts)
            .map_err(failed(EngineOp::Write, batch_cf(&ops)))
    }

    fn scan(
        &self,
        cf: Cf,
        from: &[u8],
        to: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<KvPair>, EngineError> {
        let handle = self.handle(cf, EngineOp::Scan)?;
        let mut read_opts = ReadOptions::default();
        if let Some(to) = to {
            read_opts.set_iterate_upper_bound(to.to_vec());
        }
        let iter = self.db.iterator_cf_opt(
            handle,
            read_opts,
            IteratorMode::From(from, Direction::Forward),
        );
        iter.take(limit)
            .map(|item| {
                let (key, value) = item.map_err(failed(EngineOp::Scan, Some(cf)))?;
                Ok((key.into_vec(), value.into_vec()))
            })
            .collect()
    }

    fn last(&self, cf: Cf) -> Result<Option<KvPair>, EngineError> {
        let handle = self.handle(cf, EngineOp::Scan)?;
        match self.db.iterator_cf(handle, IteratorMode::End).next() {
            None => Ok(None),
            Some(item) => {
                let (key, value) = item.map_err(failed(EngineOp::Scan, Some(cf)))?;
                Ok(Some((key.into_vec(), value.into_vec())))
            }
        }
    }

    fn is_blocking(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rocks_engine_reopen_keeps_synced_writes() {
        let dir = tempfile::tempdir().unwrap();
        {
            let engine = RocksEngine::open(dir.path()).unwrap();
            let ops = vec![
                KvOp::Put {
                    cf: Cf::Logs,
                    key: vec![1],
                    value: b"one".to_vec(),
                },
                KvOp::Put {
                    cf: Cf::Logs,
                    key: vec![2],
                    value: b"two".to_vec(),
                },
                KvOp::Put {
                    cf: Cf::Meta,
                    key: b"vote".to_vec(),
                    value: b"v".to_vec(),
                },
            ];
            engine.write(ops, true).unwrap();
            engine
                .write(
                    vec![KvOp::Delete {
                        cf: Cf::Logs,
                        key: vec![1],
                    }],
                    true,
                )
                .unwrap();
        }
        let engine = RocksEngine::open(dir.path()).unwrap();
        assert_eq!(engine.get(Cf::Logs, &[1]).unwrap(), None);
        assert_eq!(engine.get(Cf::Logs, &[2]).unwrap(), Some(b"two".to_vec()));
        assert_eq!(engine.get(Cf::Meta, b"vote").unwrap(), Some(b"v".to_vec()));
        // Each column family is its own keyspace.
        assert_eq!(engine.get(Cf::Journal, &[2]).unwrap(), None);
    }
}
