//! The owner journal as the node uses it: durable entries plus an in-memory overlay, so this
//! cluster sees its own unpublished changes at once (local autonomy, B15; DESIGN §3).
//!
//! ```text
//!   rewind-unload ──append (fsync)──> OwnerJournal ──JournalPublisher──> Raft ──> catalog
//!        │                                 │                      │
//!        └── host acknowledged             └── overlay: effective └── committed: entry removed
//!                                              record = catalog       refused (stale epoch):
//!                                              + pending changes      quarantined + event
//! ```

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use vtgrid_catalog::{JournalEntry, OwnerJournal};
use vtgrid_core::catalog::{CatalogCommand, VolumeChange};
use vtgrid_core::{Volser, VolumeRecord};

use crate::error::NodeError;
use crate::tvc_io::offload;

/// The journal and its overlay of pending changes by volume.
pub struct Journal {
    store: Arc<dyn OwnerJournal>,
    pending: Mutex<BTreeMap<Volser, Vec<(u64, VolumeChange)>>>,
    /// Copies made here whose `CopyDone` is still in the journal.
    copies_done: Mutex<std::collections::BTreeSet<(Volser, u64)>>,
    /// Volumes whose surrender outcome is unknown (see `Cluster::in_doubt`); durable.
    doubtful: Mutex<std::collections::BTreeSet<Volser>>,
    /// Wakes the publisher when an entry is appended.
    pub appended: tokio::sync::Notify,
    /// Wakes waiters (a surrender flushing one volume) after each publishing round.
    pub published: tokio::sync::Notify,
}

impl Journal {
    /// Load the entries a previous run left unpublished.
    pub fn open(
        store: Arc<dyn OwnerJournal>,
    ) -> Result<Journal, vtgrid_catalog::CatalogStorageError> {
        let mut pending: BTreeMap<Volser, Vec<(u64, VolumeChange)>> = BTreeMap::new();
        let mut copies_done = std::collections::BTreeSet::new();
        for JournalEntry { seq, command } in store.entries()? {
            match command {
                CatalogCommand::UpdateVolume { volser, change, .. } => {
                    pending.entry(volser).or_default().push((seq, change));
                }
                CatalogCommand::CopyDone {
                    volser, version, ..
                } => {
                    copies_done.insert((volser, version));
                }
                _ => {}
            }
        }
        let doubtful = Mutex::new(store.doubts()?.into_iter().collect());
        Ok(Journal {
            store,
            pending: Mutex::new(pending),
            copies_done: Mutex::new(copies_done),
            doubtful,
            appended: tokio::sync::Notify::new(),
            published: tokio::sync::Notify::new(),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<Volser, Vec<(u64, VolumeChange)>>> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn store(&self) -> &Arc<dyn OwnerJournal> {
        &self.store
    }

    /// Record an owner's change durably; it is visible through [`Journal::overlay`] at once.
    pub async fn append(&self, command: CatalogCommand) -> Result<u64, NodeError> {
        let store = self.store.clone();
        let cmd = command.clone();
        let seq = offload(self.store.is_blocking(), move || store.append(&cmd))
            .await
            .map_err(NodeError::Journal)?;
        match command {
            CatalogCommand::UpdateVolume { volser, change, .. } => {
                self.lock().entry(volser).or_default().push((seq, change));
            }
            CatalogCommand::CopyDone {
                volser, version, ..
            } => {
                self.copies_done_lock().insert((volser, version));
            }
            _ => {}
        }
        self.appended.notify_one();
        Ok(seq)
    }

    /// The entry left the journal (committed or quarantined).
    pub fn forget(&self, volser: Volser, seq: u64) {
        let mut pending = self.lock();
        if let Some(list) = pending.get_mut(&volser) {
            list.retain(|(s, _)| *s != seq);
            if list.is_empty() {
                pending.remove(&volser);
            }
        }
    }

    fn copies_done_lock(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::BTreeSet<(Volser, u64)>> {
        self.copies_done.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A `CopyDone` for this version is in the journal, on its way to the catalog.
    pub fn copy_done_pending(&self, volser: Volser, version: u64) -> bool {
        self.copies_done_lock().contains(&(volser, version))
    }

    /// A `CopyDone` left the journal.
    pub fn forget_copy_done(&self, volser: Volser, version: u64) {
        self.copies_done_lock().remove(&(volser, version));
    }

    /// Every volume in doubt here, sorted.
    pub fn doubts(&self) -> Vec<Volser> {
        self.doubtful
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .copied()
            .collect()
    }

    pub fn in_doubt(&self, volser: &Volser) -> bool {
        self.doubtful
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(volser)
    }

    /// Durably mark `volser` in doubt (before proposing its transfer away).
    pub async fn mark_doubt(&self, volser: Volser) -> Result<(), NodeError> {
        let store = self.store.clone();
        offload(self.store.is_blocking(), move || store.mark_doubt(volser))
            .await
            .map_err(NodeError::Journal)?;
        self.doubtful
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(volser);
        Ok(())
    }

    /// The outcome is known: forget the doubt.
    pub async fn clear_doubt(&self, volser: Volser) -> Result<(), NodeError> {
        let store = self.store.clone();
        offload(self.store.is_blocking(), move || store.clear_doubt(volser))
            .await
            .map_err(NodeError::Journal)?;
        self.doubtful
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&volser);
        Ok(())
    }

    /// Wake the publisher and wait until nothing of `volser` is left in the journal, at most
    /// `limit`: true when the catalog has it all. Used before a surrender (the next owner must
    /// see every version) and before a rewind-unload answers the host (T14a).
    pub async fn published_within(&self, volser: &Volser, limit: std::time::Duration) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            // Registered before the check: a round that ends between the two still wakes us.
            let published = self.published.notified();
            let mut published = std::pin::pin!(published);
            published.as_mut().enable();
            if !self.has_pending(volser) {
                return true;
            }
            self.appended.notify_one();
            if tokio::time::timeout_at(deadline, published).await.is_err() {
                return false;
            }
        }
    }

    pub fn has_pending(&self, volser: &Volser) -> bool {
        self.lock().contains_key(volser)
    }

    pub fn pending_count(&self) -> usize {
        self.lock().values().map(Vec::len).sum()
    }

    /// The catalog's record with this cluster's unpublished changes applied, in order.
    pub fn overlay(&self, mut record: VolumeRecord) -> VolumeRecord {
        if let Some(changes) = self.lock().get(&record.volser) {
            for (_, change) in changes {
                change.apply_to(&mut record);
            }
        }
        record
    }

    /// The volumes with changes still only in the journal, sorted.
    pub fn pending_volumes(&self) -> Vec<Volser> {
        self.lock().keys().copied().collect()
    }

    /// Versions still only in the journal, per volume (kept by TVC reconciliation).
    pub fn pending_versions(&self) -> Vec<(Volser, u64)> {
        self.lock()
            .iter()
            .flat_map(|(v, list)| {
                list.iter()
                    .filter_map(move |(_, c)| c.version.as_ref().map(|n| (*v, n.version)))
            })
            .collect()
    }
}
