//! The copy queue: the copies this cluster owes, durable, pulled by priority (DESIGN §4).
//!
//! Each cluster pulls its own copies. An entry names the version to fetch; the queue keeps them in
//! [`Cf::CopyQueue`] keyed so that byte order is pull order:
//!
//! ```text
//!   priority (u8: immediate 0 .. deferred 3) + seq (u64 BE) -> QueuedCopy
//!   b'v' + VOLSER                                           -> key of its entry (one per volume)
//! ```
//!
//! One entry per volume: a newer version replaces an older queued one, since only the current
//! version is worth copying.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};
use vtgrid_core::copy::CopyPriority;
use vtgrid_core::{Digest, VersionNumber, Volser};

use crate::codec::{decode, encode};
use crate::engine::{Cf, KvEngine, KvOp};
use crate::error::CatalogStorageError;

const BY_VOLUME: u8 = b'v';

/// One copy this cluster owes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueuedCopy {
    pub seq: u64,
    pub priority: CopyPriority,
    pub volser: Volser,
    pub version: VersionNumber,
    pub size: u64,
    pub digest: Digest,
    /// When it was queued, in milliseconds since the Unix epoch (for the queue's age; the pull
    /// order does not depend on it).
    #[serde(default)]
    pub queued_at_ms: u64,
}

/// The copy queue's storage. Object-safe; every write is synced (a queued copy survives restarts,
/// so copies resume with no operator action).
pub trait CopyQueue: Send + Sync + 'static {
    /// Queue a copy, replacing any queued copy of an older version of the same volume. Returns
    /// false (and changes nothing) when the same or a newer version is already queued.
    fn enqueue(
        &self,
        priority: CopyPriority,
        volser: Volser,
        version: VersionNumber,
        size: u64,
        digest: Digest,
        queued_at_ms: u64,
    ) -> Result<bool, CatalogStorageError>;
    /// Queued copies in pull order (highest priority, then oldest), at most `limit`.
    fn next(&self, limit: usize) -> Result<Vec<QueuedCopy>, CatalogStorageError>;
    /// The copy is done (or no longer owed).
    fn remove(&self, copy: &QueuedCopy) -> Result<(), CatalogStorageError>;
    fn is_blocking(&self) -> bool;
}

fn priority_byte(p: CopyPriority) -> u8 {
    match p {
        CopyPriority::Immediate => 0,
        CopyPriority::SyncDeferred => 1,
        CopyPriority::ImmediateDeferred => 2,
        CopyPriority::Deferred => 3,
    }
}

fn entry_key(priority: CopyPriority, seq: u64) -> Vec<u8> {
    let mut k = vec![priority_byte(priority)];
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

fn volume_key(volser: Volser) -> Vec<u8> {
    let mut k = vec![BY_VOLUME];
    k.extend_from_slice(volser.as_str().as_bytes());
    k
}

/// [`CopyQueue`] on a [`KvEngine`].
pub struct KvCopyQueue<E: KvEngine> {
    engine: E,
    next_seq: AtomicU64,
}

impl<E: KvEngine> KvCopyQueue<E> {
    pub fn open(engine: E) -> Result<Self, CatalogStorageError> {
        let entries = engine.scan(Cf::CopyQueue, &[0], Some(&[BY_VOLUME]), usize::MAX)?;
        let mut max = 0;
        for (k, v) in &entries {
            let copy: QueuedCopy = decode(Cf::CopyQueue, k, v)?;
            max = max.max(copy.seq);
        }
        Ok(KvCopyQueue {
            engine,
            next_seq: AtomicU64::new(max + 1),
        })
    }

    fn queued_for(&self, volser: Volser) -> Result<Option<QueuedCopy>, CatalogStorageError> {
        let Some(key) = self.engine.get(Cf::CopyQueue, &volume_key(volser))? else {
            return Ok(None);
        };
        match self.engine.get(Cf::CopyQueue, &key)? {
            Some(v) => Ok(Some(decode(Cf::CopyQueue, &key, &v)?)),
            None => Ok(None),
        }
    }
}

impl<E: KvEngine> CopyQueue for KvCopyQueue<E> {
    fn enqueue(
        &self,
        priority: CopyPriority,
        volser: Volser,
        version: VersionNumber,
        size: u64,
        digest: Digest,
        queued_at_ms: u64,
    ) -> Result<bool, CatalogStorageError> {
        let mut ops = Vec::new();
        if let Some(old) = self.queued_for(volser)? {
            if old.version >= version && old.priority <= priority {
                return Ok(false);
            }
            ops.push(KvOp::Delete {
                cf: Cf::CopyQueue,
                key: entry_key(old.priority, old.seq),
            });
        }
        let seq = self.next_seq.fetch_add(1, Ordering::SeqCst);
        let copy = QueuedCopy {
            seq,
            priority,
            volser,
            version,
            size,
            digest,
            queued_at_ms,
        };
        let key = entry_key(priority, seq);
        ops.push(KvOp::Put {
            cf: Cf::CopyQueue,
            key: key.clone(),
            value: encode(Cf::CopyQueue, &copy)?,
        });
        ops.push(KvOp::Put {
            cf: Cf::CopyQueue,
            key: volume_key(volser),
            value: key,
        });
        self.engine.write(ops, true)?;
        Ok(true)
    }

    fn next(&self, limit: usize) -> Result<Vec<QueuedCopy>, CatalogStorageError> {
        let pairs = self
            .engine
            .scan(Cf::CopyQueue, &[0], Some(&[BY_VOLUME]), limit)?;
        pairs
            .iter()
            .map(|(k, v)| decode(Cf::CopyQueue, k, v))
            .collect()
    }

    fn remove(&self, copy: &QueuedCopy) -> Result<(), CatalogStorageError> {
        let key = entry_key(copy.priority, copy.seq);
        let mut ops = vec![KvOp::Delete {
            cf: Cf::CopyQueue,
            key: key.clone(),
        }];
        // Drop the volume's index only if it still points at this entry.
        if self
            .engine
            .get(Cf::CopyQueue, &volume_key(copy.volser))?
            .as_deref()
            == Some(&key[..])
        {
            ops.push(KvOp::Delete {
                cf: Cf::CopyQueue,
                key: volume_key(copy.volser),
            });
        }
        self.engine.write(ops, true)?;
        Ok(())
    }

    fn is_blocking(&self) -> bool {
        self.engine.is_blocking()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{MemEngine, RocksEngine};

    fn v(s: &str) -> Volser {
        s.parse().unwrap()
    }

    fn copy_queue_pops_run_before_deferred<E: KvEngine>(engine: E) {
        let q = KvCopyQueue::open(engine).unwrap();
        q.enqueue(CopyPriority::Deferred, v("A00001"), 1, 10, Digest::EMPTY, 0)
            .unwrap();
        q.enqueue(
            CopyPriority::ImmediateDeferred,
            v("A00002"),
            1,
            10,
            Digest::EMPTY,
            0,
        )
        .unwrap();
        q.enqueue(
            CopyPriority::Immediate,
            v("A00003"),
            1,
            10,
            Digest::EMPTY,
            0,
        )
        .unwrap();
        q.enqueue(
            CopyPriority::SyncDeferred,
            v("A00004"),
            1,
            10,
            Digest::EMPTY,
            0,
        )
        .unwrap();
        q.enqueue(CopyPriority::Deferred, v("A00005"), 1, 10, Digest::EMPTY, 0)
            .unwrap();
        let order: Vec<String> = q
            .next(10)
            .unwrap()
            .iter()
            .map(|c| c.volser.to_string())
            .collect();
        assert_eq!(order, ["A00003", "A00004", "A00002", "A00001", "A00005"]);
    }

    fn newer_version_replaces_the_queued_one<E: KvEngine>(engine: E) {
        let q = KvCopyQueue::open(engine).unwrap();
        assert!(q
            .enqueue(CopyPriority::Deferred, v("A00001"), 1, 10, Digest::EMPTY, 0)
            .unwrap());
        assert!(
            !q.enqueue(CopyPriority::Deferred, v("A00001"), 1, 10, Digest::EMPTY, 0)
                .unwrap(),
            "same copy twice"
        );
        assert!(q
            .enqueue(CopyPriority::Deferred, v("A00001"), 2, 20, Digest::EMPTY, 0)
            .unwrap());
        let all = q.next(10).unwrap();
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].version, 2);
        q.remove(&all[0]).unwrap();
        assert!(q.next(10).unwrap().is_empty());
        assert!(
            q.enqueue(CopyPriority::Deferred, v("A00001"), 2, 20, Digest::EMPTY, 0)
                .unwrap(),
            "owed again"
        );
    }

    #[test]
    fn mem_copy_queue_pops_run_before_deferred() {
        copy_queue_pops_run_before_deferred(MemEngine::new());
    }

    #[test]
    fn rocks_copy_queue_pops_run_before_deferred() {
        let dir = tempfile::tempdir().unwrap();
        copy_queue_pops_run_before_deferred(RocksEngine::open(dir.path()).unwrap());
    }

    #[test]
    fn mem_newer_version_replaces_the_queued_one() {
        newer_version_replaces_the_queued_one(MemEngine::new());
    }

    #[test]
    fn rocks_newer_version_replaces_the_queued_one() {
        let dir = tempfile::tempdir().unwrap();
        newer_version_replaces_the_queued_one(RocksEngine::open(dir.path()).unwrap());
    }

    #[test]
    fn queued_copies_survive_a_crash_and_keep_their_order() {
        let engine = MemEngine::new();
        let q = KvCopyQueue::open(engine.clone()).unwrap();
        q.enqueue(CopyPriority::Deferred, v("A00001"), 1, 10, Digest::EMPTY, 0)
            .unwrap();
        q.enqueue(
            CopyPriority::Immediate,
            v("A00002"),
            1,
            10,
            Digest::EMPTY,
            0,
        )
        .unwrap();
        engine.crash();
        let q = KvCopyQueue::open(engine).unwrap();
        let order: Vec<String> = q
            .next(10)
            .unwrap()
            .iter()
            .map(|c| c.volser.to_string())
            .collect();
        assert_eq!(order, ["A00002", "A00001"]);
        assert!(q
            .enqueue(CopyPriority::Deferred, v("A00003"), 1, 10, Digest::EMPTY, 0)
            .unwrap());
        assert_eq!(
            q.next(10).unwrap().last().unwrap().seq,
            3,
            "sequence numbers continue after a restart"
        );
    }
}
