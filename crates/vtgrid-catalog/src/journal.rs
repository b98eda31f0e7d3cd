//! The owner journal and the quarantine (DESIGN §3, "Local autonomy", B15).
//!
//! Using an ownership token needs no consensus: the owner records each change to its own volumes
//! (a new version, a category change) in this journal, durably, and acknowledges the host. A
//! publisher in the node proposes the entries to Raft in order and removes each once committed.
//! An entry the catalog rejects because the volume's ownership moved on while this cluster was cut
//! off is moved, in the same atomic write, to the quarantine: it is never dropped silently.
//!
//! Both live in [`Cf::Journal`] under their own key prefixes:
//!
//! ```text
//!   b'j' + seq (u64 BE)              -> JournalEntry      (order = publish order)
//!   b'q' + VOLSER + version (u64 BE) -> QuarantineRecord
//!   b'd' + VOLSER                    -> (empty): a surrender whose outcome is unknown
//! ```

use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};
use vtgrid_core::catalog::{CatalogCommand, CatalogRejection};
use vtgrid_core::{Digest, Epoch, VersionNumber, Volser};

use crate::codec::{decode, encode};
use crate::engine::{Cf, KvEngine, KvOp};
use crate::error::CatalogStorageError;

const DOUBT: u8 = b'd';
const ENTRY: u8 = b'j';
const QUARANTINE: u8 = b'q';

/// One change waiting to reach the catalog.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JournalEntry {
    pub seq: u64,
    pub command: CatalogCommand,
}

/// A version this cluster committed locally that the catalog refused.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuarantineRecord {
    pub volser: Volser,
    pub version: VersionNumber,
    pub size: u64,
    pub digest: Digest,
    /// The epoch this cluster held when it wrote the version.
    pub epoch: Epoch,
    /// What the catalog answered.
    pub rejection: CatalogRejection,
}

/// The journal's storage. Object-safe, so a node holds it without knowing the engine. Every
/// write is synced: an acknowledged host change must survive a crash.
pub trait OwnerJournal: Send + Sync + 'static {
    /// Append a command; returns its sequence number.
    fn append(&self, command: &CatalogCommand) -> Result<u64, CatalogStorageError>;
    /// Every pending entry, oldest first.
    fn entries(&self) -> Result<Vec<JournalEntry>, CatalogStorageError>;
    /// The entry reached the catalog.
    fn remove(&self, seq: u64) -> Result<(), CatalogStorageError>;
    /// The catalog refused the entry: move it to the quarantine in one atomic write.
    fn quarantine(&self, seq: u64, record: &QuarantineRecord) -> Result<(), CatalogStorageError>;
    fn quarantined(&self) -> Result<Vec<QuarantineRecord>, CatalogStorageError>;
    /// Forget a quarantined version (the operator decided). False when there was none.
    fn discard(&self, volser: Volser, version: VersionNumber) -> Result<bool, CatalogStorageError>;
    /// Record that a transfer of `volser` away from this cluster may have committed, before
    /// proposing it, so that a crash cannot make the cluster forget it (B10).
    fn mark_doubt(&self, volser: Volser) -> Result<(), CatalogStorageError>;
    /// The transfer's outcome is known.
    fn clear_doubt(&self, volser: Volser) -> Result<(), CatalogStorageError>;
    fn doubts(&self) -> Result<Vec<Volser>, CatalogStorageError>;
    /// Blocking backend: async callers use `spawn_blocking`.
    fn is_blocking(&self) -> bool;
}

/// [`OwnerJournal`] on a [`KvEngine`].
pub struct KvJournal<E: KvEngine> {
    engine: E,
    next_seq: AtomicU64,
}

fn entry_key(seq: u64) -> Vec<u8> {
    let mut k = vec![ENTRY];
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

fn quarantine_key(volser: Volser, version: VersionNumber) -> Vec<u8> {
    let mut k = vec![QUARANTINE];
    k.extend_from_slice(volser.as_str().as_bytes());
    k.extend_from_slice(&version.to_be_bytes());
    k
}

impl<E: KvEngine> KvJournal<E> {
    /// Open the journal on `engine`; sequence numbers continue after the last stored entry.
    pub fn open(engine: E) -> Result<Self, CatalogStorageError> {
        let entries = engine.scan(Cf::Journal, &[ENTRY], Some(&[ENTRY + 1]), usize::MAX)?;
        let next = match entries.last() {
            Some((key, _)) => {
                let mut seq = [0u8; 8];
                seq.copy_from_slice(&key[1..9]);
                u64::from_be_bytes(seq) + 1
            }
            None => 1,
        };
        Ok(KvJournal {
            engine,
            next_seq: AtomicU64::new(next),
        })
    }
}

impl<E: KvEngine> OwnerJournal for KvJournal<E> {
    fn append(&self, command: &CatalogCommand) -> Result<u64, CatalogStorageError> {
        let seq = self.next_seq.fetch_add(1, Ordering::SeqCst);
        let value = encode(
            Cf::Journal,
            &JournalEntry {
                seq,
                command: command.clone(),
            },
        )?;
        self.engine.write(
            vec![KvOp::Put {
                cf: Cf::Journal,
                key: entry_key(seq),
                value,
            }],
            true,
        )?;
        Ok(seq)
    }

    fn entries(&self) -> Result<Vec<JournalEntry>, CatalogStorageError> {
        let pairs = self
            .engine
            .scan(Cf::Journal, &[ENTRY], Some(&[ENTRY + 1]), usize::MAX)?;
        pairs
            .iter()
            .map(|(k, v)| decode(Cf::Journal, k, v))
            .collect()
    }

    fn remove(&self, seq: u64) -> Result<(), CatalogStorageError> {
        self.engine.write(
            vec![KvOp::Delete {
                cf: Cf::Journal,
                key: entry_key(seq),
            }],
            true,
        )?;
        Ok(())
    }

    fn quarantine(&self, seq: u64, record: &QuarantineRecord) -> Result<(), CatalogStorageError> {
        let value = encode(Cf::Journal, record)?;
        let ops = vec![
            KvOp::Delete {
                cf: Cf::Journal,
                key: entry_key(seq),
            },
            KvOp::Put {
                cf: Cf::Journal,
                key: quarantine_key(record.volser, record.version),
                value,
            },
        ];
        self.engine.write(ops, true)?;
        Ok(())
    }

    fn quarantined(&self) -> Result<Vec<QuarantineRecord>, CatalogStorageError> {
        let pairs = self.engine.scan(
            Cf::Journal,
            &[QUARANTINE],
            Some(&[QUARANTINE + 1]),
            usize::MAX,
        )?;
        pairs
            .iter()
            .map(|(k, v)| decode(Cf::Journal, k, v))
            .collect()
    }

    fn discard(&self, volser: Volser, version: VersionNumber) -> Result<bool, CatalogStorageError> {
        let key = quarantine_key(volser, version);
        if self.engine.get(Cf::Journal, &key)?.is_none() {
            return Ok(false);
        }
        self.engine.write(
            vec![KvOp::Delete {
                cf: Cf::Journal,
                key,
            }],
            true,
        )?;
        Ok(true)
    }

    fn mark_doubt(&self, volser: Volser) -> Result<(), CatalogStorageError> {
        let op = KvOp::Put {
            cf: Cf::Journal,
            key: doubt_key(volser),
            value: Vec::new(),
        };
        self.engine.write(vec![op], true)?;
        Ok(())
    }

    fn clear_doubt(&self, volser: Volser) -> Result<(), CatalogStorageError> {
        self.engine.write(
            vec![KvOp::Delete {
                cf: Cf::Journal,
                key: doubt_key(volser),
            }],
            true,
        )?;
        Ok(())
    }

    fn doubts(&self) -> Result<Vec<Volser>, CatalogStorageError> {
        let pairs = self
            .engine
            .scan(Cf::Journal, &[DOUBT], Some(&[DOUBT + 1]), usize::MAX)?;
        pairs
            .iter()
            .map(|(k, _)| {
                let text = String::from_utf8_lossy(&k[1..]).into_owned();
                text.parse().map_err(|_| CatalogStorageError::Corrupt {
                    cf: Cf::Journal,
                    key: k.clone(),
                    source: <serde_json::Error as serde::de::Error>::custom("not a VOLSER"),
                })
            })
            .collect()
    }

    fn is_blocking(&self) -> bool {
        self.engine.is_blocking()
    }
}

fn doubt_key(volser: Volser) -> Vec<u8> {
    let mut k = vec![DOUBT];
    k.extend_from_slice(volser.as_str().as_bytes());
    k
}

#[cfg(test)]
mod tests {
    use vtgrid_core::catalog::VolumeChange;
    use vtgrid_core::{Category, ClusterId};

    use super::*;
    use crate::engine::{MemEngine, RocksEngine};

    fn update(volser: &str, n: u16) -> CatalogCommand {
        CatalogCommand::UpdateVolume {
            volser: volser.parse().unwrap(),
            by: ClusterId::new(0).unwrap(),
            epoch: Epoch(1),
            change: VolumeChange {
                category: Some(Category(n)),
                ..VolumeChange::default()
            },
        }
    }

    fn record(volser: &str, version: u64) -> QuarantineRecord {
        let volser: Volser = volser.parse().unwrap();
        QuarantineRecord {
            volser,
            version,
            size: 3,
            digest: Digest::EMPTY,
            epoch: Epoch(1),
            rejection: CatalogRejection::StaleEpoch {
                volser,
                held: Epoch(1),
                current: Epoch(2),
            },
        }
    }

    fn entries_keep_order_and_survive_reopen<E: KvEngine>(engine: E, reopen: impl Fn() -> E) {
        let j = KvJournal::open(engine).unwrap();
        let a = j.append(&update("A00001", 1)).unwrap();
        let b = j.append(&update("A00002", 2)).unwrap();
        assert!(b > a);
        j.remove(a).unwrap();
        drop(j);
        let j = KvJournal::open(reopen()).unwrap();
        let left = j.entries().unwrap();
        assert_eq!(
            left,
            vec![JournalEntry {
                seq: b,
                command: update("A00002", 2)
            }]
        );
        assert!(
            j.append(&update("A00003", 3)).unwrap() > b,
            "sequence numbers never go back"
        );
    }

    fn quarantine_moves_the_entry_atomically<E: KvEngine>(engine: E) {
        let j = KvJournal::open(engine).unwrap();
        let seq = j.append(&update("A00001", 1)).unwrap();
        j.quarantine(seq, &record("A00001", 4)).unwrap();
        assert!(j.entries().unwrap().is_empty());
        assert_eq!(j.quarantined().unwrap(), vec![record("A00001", 4)]);
        assert!(j.discard("A00001".parse().unwrap(), 4).unwrap());
        assert!(!j.discard("A00001".parse().unwrap(), 4).unwrap());
        assert!(j.quarantined().unwrap().is_empty());
    }

    #[test]
    fn doubts_survive_a_crash_until_cleared() {
        let engine = MemEngine::new();
        let j = KvJournal::open(engine.clone()).unwrap();
        j.mark_doubt("A00001".parse().unwrap()).unwrap();
        j.mark_doubt("A00002".parse().unwrap()).unwrap();
        j.clear_doubt("A00001".parse().unwrap()).unwrap();
        engine.crash();
        let j = KvJournal::open(engine).unwrap();
        assert_eq!(
            j.doubts().unwrap(),
            vec!["A00002".parse::<Volser>().unwrap()]
        );
        assert!(
            j.entries().unwrap().is_empty(),
            "doubts are not journal entries"
        );
    }

    #[test]
    fn mem_journal_entries_keep_order_and_survive_a_crash() {
        let engine = MemEngine::new();
        let again = engine.clone();
        entries_keep_order_and_survive_reopen(engine, move || {
            again.crash();
            again.clone()
        });
    }

    #[test]
    fn rocks_journal_entries_keep_order_and_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_path_buf();
        let engine = RocksEngine::open(&path).unwrap();
        let holder = std::sync::Mutex::new(Some(engine.clone()));
        entries_keep_order_and_survive_reopen(engine, move || {
            holder.lock().unwrap().take();
            RocksEngine::open(&path).unwrap()
        });
    }

    #[test]
    fn mem_quarantine_moves_the_entry_atomically() {
        quarantine_moves_the_entry_atomically(MemEngine::new());
    }

    #[test]
    fn rocks_quarantine_moves_the_entry_atomically() {
        let dir = tempfile::tempdir().unwrap();
        quarantine_moves_the_entry_atomically(RocksEngine::open(dir.path()).unwrap());
    }
}
