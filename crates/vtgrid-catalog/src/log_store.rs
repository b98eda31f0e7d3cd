//! The Raft log and vote, on any [`KvEngine`] (openraft storage-v2 `RaftLogStorage`).
//!
//! Layout:
//!
//! ```text
//!   Cf::Logs  be_u64(index)  -> JSON Entry
//!   Cf::Meta  "vote"         -> JSON Vote
//!             "committed"    -> JSON LogId   (what a restart re-applies up to)
//!             "last_purged"  -> JSON LogId
//! ```
//!
//! Every write is one atomic batch with `sync = true`: Raft may only count a vote or an entry
//! once it survives a crash, so `append` reports the entries flushed (the `LogFlushed` callback)
//! only after the synced write returned. Writes are serialised because each method awaits its
//! write before returning, and openraft calls them one at a time.

use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};

use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{ErrorSubject, ErrorVerb, OptionalSend, RaftLogReader};
use serde::de::DeserializeOwned;

use crate::codec::{decode, encode, index_key};
use crate::engine::{on_engine, Cf, KvEngine, KvOp};
use crate::error::CatalogStorageError;
use crate::types::{Entry, LogId, LogState, StorageError, TypeConfig, Vote};

pub(crate) const VOTE: &[u8] = b"vote";
pub(crate) const COMMITTED: &[u8] = b"committed";
pub(crate) const LAST_PURGED: &[u8] = b"last_purged";

/// The catalog's Raft log store. Cheap to clone: a clone is also its own log reader, since the
/// engine serves concurrent reads.
#[derive(Clone, Debug)]
pub struct LogStore<E> {
    engine: E,
}

impl<E: KvEngine> LogStore<E> {
    pub fn new(engine: E) -> Self {
        Self { engine }
    }

    async fn read_meta<T>(&self, key: &'static [u8]) -> Result<Option<T>, CatalogStorageError>
    where
        T: DeserializeOwned + Send + 'static,
    {
        on_engine(&self.engine, move |engine| read_meta(engine, key)).await
    }

    /// Write `ops` as one durable batch.
    async fn write_synced(&self, ops: Vec<KvOp>) -> Result<(), CatalogStorageError> {
        on_engine(&self.engine, move |engine| Ok(engine.write(ops, true)?)).await
    }
}

pub(crate) fn read_meta<E: KvEngine, T: DeserializeOwned>(
    engine: &E,
    key: &[u8],
) -> Result<Option<T>, CatalogStorageError> {
    match engine.get(Cf::Meta, key)? {
        Some(bytes) => Ok(Some(decode(Cf::Meta, key, &bytes)?)),
        None => Ok(None),
    }
}

pub(crate) fn put_meta<T: serde::Serialize>(
    key: &[u8],
    value: &T,
) -> Result<KvOp, CatalogStorageError> {
    Ok(KvOp::Put {
        cf: Cf::Meta,
        key: key.to_vec(),
        value: encode(Cf::Meta, value)?,
    })
}

/// `[start, end)` of a range of log indexes (`end = None`: to the last entry), or `None` when
/// the range holds no index at all.
fn index_bounds(range: &impl RangeBounds<u64>) -> Option<(u64, Option<u64>)> {
    let start = match range.start_bound() {
        Bound::Included(&i) => i,
        Bound::Excluded(&i) => i.checked_add(1)?,
        Bound::Unbounded => 0,
    };
    let end = match range.end_bound() {
        Bound::Included(&i) => i.checked_add(1),
        Bound::Excluded(&i) => Some(i),
        Bound::Unbounded => None,
    };
    match end {
        Some(end) if end <= start => None,
        _ => Some((start, end)),
    }
}

/// Delete every entry with index in `[from, to]`. A range plus a point delete, so that `to =
/// u64::MAX` needs no overflowing exclusive bound.
pub(crate) fn delete_entries(from: u64, to: u64) -> [KvOp; 2] {
    [
        KvOp::DeleteRange {
            cf: Cf::Logs,
            from: index_key(from),
            to: index_key(to),
        },
        KvOp::Delete {
            cf: Cf::Logs,
            key: index_key(to),
        },
    ]
}

impl<E: KvEngine> RaftLogReader<TypeConfig> for LogStore<E> {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        let Some((start, end)) = index_bounds(&range) else {
            return Ok(Vec::new());
        };
        on_engine(&self.engine, move |engine| {
            let to = end.map(index_key);
            let pairs = engine.scan(Cf::Logs, &index_key(start), to.as_deref(), usize::MAX)?;
            pairs
                .into_iter()
                .map(|(key, value)| decode(Cf::Logs, &key, &value))
                .collect()
        })
        .await
        .map_err(|e| e.into_raft(ErrorSubject::Logs, ErrorVerb::Read))
    }
}

impl<E: KvEngine> RaftLogStorage<TypeConfig> for LogStore<E> {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState, StorageError> {
        let state = on_engine(&self.engine, |engine| {
            let last_purged_log_id: Option<LogId> = read_meta(engine, LAST_PURGED)?;
            let last_entry: Option<Entry> = match engine.last(Cf::Logs)? {
                Some((key, value)) => Some(decode(Cf::Logs, &key, &value)?),
                None => None,
            };
            // With no entry left, the last log id is the last purged one (openraft's contract).
            let last_log_id = last_entry.map(|entry| entry.log_id).or(last_purged_log_id);
            Ok(LogState {
                last_purged_log_id,
                last_log_id,
            })
        });
        state
            .await
            .map_err(|e| e.into_raft(ErrorSubject::Logs, ErrorVerb::Read))
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), StorageError> {
        let write = async { self.write_synced(vec![put_meta(VOTE, vote)?]).await };
        write
            .await
            .map_err(|e| e.into_raft(ErrorSubject::Vote, ErrorVerb::Write))
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, StorageError> {
        self.read_meta(VOTE)
            .await
            .map_err(|e| e.into_raft(ErrorSubject::Vote, ErrorVerb::Read))
    }

    /// Synced like every other write: after a crash, the state machine is rebuilt from the
    /// snapshot plus the log up to this id, so a node comes back with everything it had applied
    /// instead of an older catalog it would serve until the leader's next commit.
    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        let write = async {
            let op = match &committed {
                Some(log_id) => put_meta(COMMITTED, log_id)?,
                None => KvOp::Delete {
                    cf: Cf::Meta,
                    key: COMMITTED.to_vec(),
                },
            };
            self.write_synced(vec![op]).await
        };
        write
            .await
            .map_err(|e| e.into_raft(ErrorSubject::Store, ErrorVerb::Write))
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        self.read_meta(COMMITTED)
            .await
            .map_err(|e| e.into_raft(ErrorSubject::Store, ErrorVerb::Read))
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let write = async {
            let ops = entries
                .into_iter()
                .map(|entry| {
                    let value = encode(Cf::Logs, &entry)?;
                    Ok(KvOp::Put {
                        cf: Cf::Logs,
                        key: index_key(entry.log_id.index),
                        value,
                    })
                })
                .collect::<Result<Vec<_>, CatalogStorageError>>()?;
            self.write_synced(ops).await
        };
        write
            .await
            .map_err(|e| e.into_raft(ErrorSubject::Logs, ErrorVerb::Write))?;
        // Only now are the entries on disk; openraft may count them towards a quorum.
        callback.log_io_completed(Ok(()));
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        tracing::debug!(%log_id, "truncating the log from this entry on");
        self.write_synced(delete_entries(log_id.index, u64::MAX).to_vec())
            .await
            .map_err(|e| e.into_raft(ErrorSubject::Log(log_id), ErrorVerb::Delete))
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        tracing::debug!(%log_id, "purging the log up to this entry");
        let write = async {
            // One batch: the purged mark and the deletion land together, so no crash leaves
            // entries missing that `last_purged` does not account for.
            let mut ops = vec![put_meta(LAST_PURGED, &log_id)?];
            ops.extend(delete_entries(0, log_id.index));
            self.write_synced(ops).await
        };
        write
            .await
            .map_err(|e| e.into_raft(ErrorSubject::Log(log_id), ErrorVerb::Delete))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_bounds_are_half_open() {
        assert_eq!(index_bounds(&(3..7)), Some((3, Some(7))));
        assert_eq!(index_bounds(&(3..=7)), Some((3, Some(8))));
        assert_eq!(index_bounds(&(3..)), Some((3, None)));
        assert_eq!(index_bounds(&(..=u64::MAX)), Some((0, None)));
        assert_eq!(index_bounds(&(3..3)), None);
        assert_eq!(
            index_bounds(&(Bound::Included(5), Bound::Excluded(3))),
            None
        );
    }
}
