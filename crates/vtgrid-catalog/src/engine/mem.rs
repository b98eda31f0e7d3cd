//! [`KvEngine`] in memory, for turmoil simulations: a crash loses exactly the unsynced writes.
//!
//! ```text
//!   write(batch, sync = false) --> visible += batch, unsynced.push(batch)
//!   write(batch, sync = true)  --> visible += batch, durable += unsynced.. + batch, unsynced = []
//!   crash()                    --> unsynced = [], visible = durable
//! ```
//!
//! This is the WAL's behaviour: batches reach the disk in order, and an fsync makes every earlier
//! batch durable with it. Batches are atomic, so a crash never keeps half of one.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use super::{Cf, KvEngine, KvOp, KvPair};
use crate::error::EngineError;

type Table = BTreeMap<Vec<u8>, Vec<u8>>;

/// One ordered map per column family.
#[derive(Clone, Default)]
struct Tables([Table; Cf::ALL.len()]);

impl Tables {
    fn table(&self, cf: Cf) -> &Table {
        &self.0[cf.index()]
    }

    fn apply(&mut self, op: &KvOp) {
        let table = &mut self.0[op.cf().index()];
        match op {
            KvOp::Put { key, value, .. } => {
                table.insert(key.clone(), value.clone());
            }
            KvOp::Delete { key, .. } => {
                table.remove(key);
            }
            // An empty or inverted range deletes nothing (BTreeMap::range would panic on it).
            KvOp::DeleteRange { from, to, .. } if from < to => {
                let doomed: Vec<Vec<u8>> = table
                    .range(from.clone()..to.clone())
                    .map(|(k, _)| k.clone())
                    .collect();
                for key in doomed {
                    table.remove(&key);
                }
            }
            KvOp::DeleteRange { .. } => {}
        }
    }
}

#[derive(Default)]
struct MemState {
    /// What survives a crash.
    durable: Tables,
    /// Batches written with `sync = false` since the last synced one, oldest first.
    unsynced: Vec<Vec<KvOp>>,
    /// What reads see: `durable` plus every unsynced batch.
    visible: Tables,
}

/// An in-memory [`KvEngine`] that keeps durable and unsynced writes apart.
///
/// Clones share the same store, so a simulation keeps one clone outside the crashed host, calls
/// [`MemEngine::crash`] and reopens the catalog on it.
#[derive(Clone, Default)]
pub struct MemEngine {
    state: Arc<Mutex<MemState>>,
}

impl std::fmt::Debug for MemEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemEngine")
            .field("unsynced_batches", &self.lock().unsynced.len())
            .finish()
    }
}

impl MemEngine {
    pub fn new() -> Self {
        Self::default()
    }

    /// Simulate a power loss: drop every batch not yet made durable by a synced write.
    pub fn crash(&self) {
        let mut state = self.lock();
        state.unsynced.clear();
        state.visible = state.durable.clone();
    }

    /// The lock never guards a half-done change (`Tables::apply` has no panicking path), so a
    /// poisoned lock still holds consistent maps and is safe to take over.
    fn lock(&self) -> MutexGuard<'_, MemState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl KvEngine for MemEngine {
    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>, EngineError> {
        Ok(self.lock().visible.table(cf).get(key).cloned())
    }

    fn write(&self, ops: Vec<KvOp>, sync: bool) -> Result<(), EngineError> {
        let mut state = self.lock();
        for op in &ops {
            state.visible.apply(op);
        }
        state.unsynced.push(ops);
        if sync {
            let MemState {
                durable, unsynced, ..
            } = &mut *state;
            for op in unsynced.drain(..).flatten() {
                durable.apply(&op);
            }
        }
        Ok(())
    }

    fn scan(
        &self,
        cf: Cf,
        from: &[u8],
        to: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<KvPair>, EngineError> {
        let state = self.lock();
        let pairs = state
            .visible
            .table(cf)
            .range(from.to_vec()..)
            .take_while(|(key, _)| to.is_none_or(|to| key.as_slice() < to))
            .take(limit)
            .map(|(key, value)| (key.clone(), value.clone()))
            .collect();
        Ok(pairs)
    }

    fn last(&self, cf: Cf) -> Result<Option<KvPair>, EngineError> {
        Ok(self
            .lock()
            .visible
            .table(cf)
            .last_key_value()
            .map(|(k, v)| (k.clone(), v.clone())))
    }

    fn is_blocking(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(key: &[u8], value: &[u8]) -> KvOp {
        KvOp::Put {
            cf: Cf::Journal,
            key: key.to_vec(),
            value: value.to_vec(),
        }
    }

    fn get(engine: &MemEngine, key: &[u8]) -> Option<Vec<u8>> {
        engine.get(Cf::Journal, key).unwrap()
    }

    #[test]
    fn mem_engine_crash_drops_unsynced_writes() {
        let engine = MemEngine::new();
        engine.write(vec![put(b"a", b"durable")], true).unwrap();
        engine
            .write(vec![put(b"b", b"lost"), put(b"a", b"overwritten")], false)
            .unwrap();
        engine
            .write(
                vec![KvOp::Delete {
                    cf: Cf::Journal,
                    key: b"a".to_vec(),
                }],
                false,
            )
            .unwrap();
        // Reads see unsynced writes before the crash...
        assert_eq!(get(&engine, b"a"), None);
        assert_eq!(get(&engine, b"b"), Some(b"lost".to_vec()));

        engine.crash();

        // ...and only the durable state after it.
        assert_eq!(get(&engine, b"a"), Some(b"durable".to_vec()));
        assert_eq!(get(&engine, b"b"), None);
    }

    #[test]
    fn mem_engine_sync_write_makes_earlier_writes_durable() {
        let engine = MemEngine::new();
        let clone = engine.clone();
        engine.write(vec![put(b"a", b"1")], false).unwrap();
        engine
            .write(
                vec![KvOp::DeleteRange {
                    cf: Cf::Journal,
                    from: b"a".to_vec(),
                    to: b"b".to_vec(),
                }],
                false,
            )
            .unwrap();
        engine.write(vec![put(b"b", b"2")], false).unwrap();
        engine.write(vec![put(b"c", b"3")], true).unwrap();
        engine.write(vec![put(b"d", b"4")], false).unwrap();

        clone.crash();

        assert_eq!(
            get(&engine, b"a"),
            None,
            "the synced delete-range came after the put"
        );
        assert_eq!(get(&engine, b"b"), Some(b"2".to_vec()));
        assert_eq!(get(&engine, b"c"), Some(b"3".to_vec()));
        assert_eq!(get(&engine, b"d"), None, "written after the last sync");
    }
}
